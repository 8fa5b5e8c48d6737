import { z } from 'zod';
import { parseDuration, parseSize } from './units';

/** One engine: a container image declared by a YAML manifest (docs/engines.md, "Manifest fields"). */

const size = (what: string) =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const bytes = parseSize(value);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: `${what}: expected a size such as 256m, 1g or 4096, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return bytes;
  });

const duration = (what: string) =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `${what}: expected a duration such as 240s, 5m or 1h, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return ms;
  });

export const ObservableType = z.enum([
  'ip', 'ipv6', 'domain', 'fqdn', 'url', 'mail', 'md5', 'sha1', 'sha256', 'hash', 'cve', 'file', 'filename',
  'registry', 'user-agent', 'uri_path', 'asn', 'other',
]);
export type ObservableType = z.infer<typeof ObservableType>;

export const ENGINE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export const EngineManifest = z.strictObject({
  name: z.string().regex(ENGINE_NAME, 'lower-case letters, digits, - and _, starting with a letter or digit'),
  kind: z.enum(['analyzer', 'responder']),
  description: z.string().default(''),
  image: z.string().min(1).refine((image) => !/\s/.test(image), 'an image reference has no spaces'),
  accepts: z.array(ObservableType).min(1),
  protocol: z.enum(['cortex', 'file', 'stdout']),
  command: z.array(z.string()).optional(),
  timeout: duration('timeout').default(240_000),
  retries: z.number().int().min(0).max(10).default(2),
  concurrency: z.number().int().min(1).max(64).default(2),
  limits: z.strictObject({
    memory: size('limits.memory').default(256 * 1024 ** 2),
    cpus: z.number().positive().max(64).default(1),
    pids: z.number().int().min(8).max(65536).default(128),
    /** Caps stdout, stderr and the output files each, and sizes the job folder (input + output + 1 MiB). */
    output: size('limits.output').default(16 * 1024 ** 2),
    /** Size of the tmpfs at /tmp, the engine's only writable scratch space besides its job folder. */
    tmp: size('limits.tmp').default(64 * 1024 ** 2),
  }).prefault({}),
  /** `docker` (confined, the default) or `process`: TheHive's process runner, unconfined, off unless DOCKET_PROCESS_RUNNER=on. */
  runner: z.enum(['docker', 'process']).default('docker'),
  /** `egress` joins DOCKET_EGRESS_NETWORK, which Docket creates and keeps off the Docker host. */
  network: z.enum(['none', 'egress']).default('none'),
  sizelimit: size('sizelimit').default(50 * 1024 ** 2),
  cache: duration('cache').default(600_000),
  /** Menagerie's file protocol: where the input lands and under which name. */
  mountpoint: z.string().regex(/^\/[^\0]*$/, 'an absolute path inside the container').default('/data'),
  inputfilename: z.string().regex(/^[^/\0]+$/, 'a file name without a slash').default('input'),
  /** Container user; a non-root user is used when unset. */
  user: z.string().regex(/^[a-z0-9_.-]+(:[a-z0-9_.-]+)?$/i).optional(),
  /**
   * Named Docker volumes shared across jobs (a responder's blocklist, say), mounted at `target`.
   * Only named volumes: host paths are refused, so the Docker host may be remote.
   */
  volumes: z.array(z.strictObject({
    name: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'a Docker volume name, not a host path'),
    target: z.string().regex(/^\/[^\0]*$/, 'an absolute path inside the container'),
    readonly: z.boolean().default(false),
  })).max(8).default([]),
  /** Environment for the container; `${NAME}` is taken from the worker's environment. */
  env: z.record(z.string(), z.string()).default({}),
  /** Passed to the engine (Cortex `config`); `${NAME}` is taken from the worker's environment. */
  config: z.record(z.string(), z.unknown()).default({}),
});
export type EngineManifest = z.infer<typeof EngineManifest>;

/** Renders zod issues as `field: what is wrong` lines a person can act on. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const field = issue.path.length ? issue.path.join('.') : '(top level)';
      return `${field}: ${issue.message}`;
    })
    .join('; ');
}

export type ManifestResult = { ok: true; manifest: EngineManifest } | { ok: false; error: string };

/** Validates an already-parsed manifest document; `source` names the file in errors. */
export function validateManifest(doc: unknown, source: string): ManifestResult {
  const parsed = EngineManifest.safeParse(doc);
  if (!parsed.success) return { ok: false, error: `${source}: ${describeIssues(parsed.error)}` };
  return { ok: true, manifest: parsed.data };
}

const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Expands `${NAME}` from `env` in every string inside `value`; unknown names become empty. */
export function expandEnv<T>(value: T, env: Record<string, string | undefined>): T {
  // Own names only: `${constructor}` in a manifest must expand to nothing, not to Object's source text.
  if (typeof value === 'string') return value.replace(PLACEHOLDER, (_, name: string) => (Object.hasOwn(env, name) ? env[name] ?? '' : '')) as T;
  if (Array.isArray(value)) return value.map((item) => expandEnv(item, env)) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandEnv(v, env)])) as T;
  }
  return value;
}

export function engineTaskQueue(name: string, prefix = ''): string {
  return `${prefix}engine.${name}`;
}
