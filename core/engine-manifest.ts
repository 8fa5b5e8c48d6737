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

/**
 * TheHive's objects that responders act on (Cortex's `thehive:*` data types): not observables, so
 * never extracted from text, but a responder's manifest may accept them.
 */
export const CortexObjectType = z.enum(['thehive:case', 'thehive:case_artifact', 'thehive:alert', 'thehive:case_task', 'thehive:case_task_log']);
export type CortexObjectType = z.infer<typeof CortexObjectType>;

/** What an engine may accept: an observable type, or (responders) one of TheHive's objects. */
export const EngineDataType = z.union([ObservableType, CortexObjectType]);
export type EngineDataType = z.infer<typeof EngineDataType>;

/** A MIME type (`text/plain`), a family (`text/*`), or either after `!` to exclude it. */
const FILETYPE = /^!?[a-z0-9][a-z0-9!#$&^_.+-]*\/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$/;

/** A configuration item, as Cortex's `configurationItems` declare them: checked and typed when a job starts. */
export const ConfigItem = z.strictObject({
  name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,99}$/, 'a config key: letters, digits, _ . -'),
  type: z.enum(['string', 'number', 'boolean']).default('string'),
  multi: z.boolean().default(false),
  required: z.boolean().default(false),
  description: z.string().max(1000).optional(),
  /** Used when the value is missing or expands to nothing. */
  default: z.unknown().optional(),
});
export type ConfigItem = z.infer<typeof ConfigItem>;

export const ENGINE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export const EngineManifest = z.strictObject({
  name: z.string().regex(ENGINE_NAME, 'lower-case letters, digits, - and _, starting with a letter or digit'),
  kind: z.enum(['analyzer', 'responder']),
  description: z.string().default(''),
  /** Cortex reports these per analyzer (and TheHive shows them); a flavor import copies them. */
  version: z.union([z.string(), z.number()]).transform(String).pipe(z.string().min(1).max(64)).default('1.0'),
  author: z.string().max(200).optional(),
  license: z.string().max(100).optional(),
  url: z.string().max(500).optional(),
  image: z.string().min(1).refine((image) => !/\s/.test(image), 'an image reference has no spaces'),
  accepts: z.array(EngineDataType).min(1),
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
  /**
   * Files the engine takes, by MIME type detected from their bytes (IntelOwl's supported_filetypes):
   * `text/*` a family, `!type` an exclusion. None listed, or only exclusions: every other file.
   * A file it does not take is skipped, with the reason, before a container starts.
   */
  filetypes: z.array(z.string().toLowerCase().regex(FILETYPE, 'a MIME type such as application/pdf, a family such as text/*, or either after ! to exclude it')).max(100).default([]),
  /** Cortex's max_tlp / max_pap: a job above them is skipped, with the reason, before a container starts. */
  maxTlp: z.number().int().min(0).max(4).optional(),
  maxPap: z.number().int().min(0).max(3).optional(),
  /** What a `stdout` engine prints: its result as text, as JSON, or base64 (CloudPassage's tasks), decoded before it is kept. */
  stdout: z.enum(['text', 'json', 'base64']).default('text'),
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
  /** Declared config keys (a Cortex flavor's configurationItems): typed, defaulted and required when a job starts. */
  configItems: z.array(ConfigItem).max(100).default([]),
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

export type ConfigResult = { ok: true; config: Record<string, unknown> } | { ok: false; error: string };

/**
 * The config a job gets: `${NAME}` expanded from `env`, then each declared item (configItems) typed,
 * split when `multi` (a JSON array, or values separated by commas), defaulted when missing or empty,
 * and refused, naming the variable to set, when it is required and still missing.
 */
export function resolveConfig(manifest: Pick<EngineManifest, 'name' | 'config' | 'configItems'>, env: Record<string, string | undefined>): ConfigResult {
  const config = expandEnv(manifest.config, env);
  for (const item of manifest.configItems) {
    const value = Object.hasOwn(config, item.name) ? config[item.name] : undefined;
    if (value === undefined || value === '') {
      if (item.default !== undefined && item.default !== null) {
        config[item.name] = item.default;
      } else if (item.required) {
        const names = placeholders(manifest.config[item.name]);
        const fix = names.length ? `set ${names.join(' or ')} in the engine worker's environment` : `give config.${item.name} in the manifest`;
        return { ok: false, error: `engine ${manifest.name} needs config ${item.name}, which is empty: ${fix}` };
      } else {
        delete config[item.name];
      }
      continue;
    }
    const typed = typeConfigValue(item, value);
    if (!typed.ok) return { ok: false, error: `engine ${manifest.name}: config ${item.name} ${typed.error}` };
    config[item.name] = typed.value;
  }
  return { ok: true, config };
}

function placeholders(value: unknown): string[] {
  if (typeof value !== 'string') return [];
  return [...value.matchAll(PLACEHOLDER)].map((match) => match[1]);
}

type Typed = { ok: true; value: unknown } | { ok: false; error: string };

function typeConfigValue(item: ConfigItem, value: unknown): Typed {
  if (!item.multi) return typeOne(item.type, value);
  let values: unknown[];
  if (Array.isArray(value)) values = value;
  else if (typeof value === 'string' && value.trim().startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(value);
      if (!Array.isArray(parsed)) return { ok: false, error: 'is not a JSON array' };
      values = parsed;
    } catch {
      return { ok: false, error: `is not a JSON array: ${JSON.stringify(value.slice(0, 40))}` };
    }
  } else values = String(value).split(',').map((part) => part.trim()).filter(Boolean);
  const typed: unknown[] = [];
  for (const one of values) {
    const result = typeOne(item.type, one);
    if (!result.ok) return result;
    typed.push(result.value);
  }
  return { ok: true, value: typed };
}

function typeOne(type: ConfigItem['type'], value: unknown): Typed {
  if (type === 'string') return typeof value === 'object' ? { ok: false, error: 'must be text' } : { ok: true, value: String(value) };
  if (type === 'number') {
    const number = typeof value === 'number' ? value : Number(String(value).trim());
    return Number.isFinite(number) && String(value).trim() !== '' ? { ok: true, value: number } : { ok: false, error: `must be a number, got ${JSON.stringify(value)}` };
  }
  if (typeof value === 'boolean') return { ok: true, value };
  const text = String(value).trim().toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(text)) return { ok: true, value: true };
  if (['false', 'no', 'off', '0'].includes(text)) return { ok: true, value: false };
  return { ok: false, error: `must be true or false, got ${JSON.stringify(value)}` };
}

/**
 * Whether `filetypes` takes a file of MIME type `type`: an exclusion wins; with no type listed
 * (or only exclusions) every other file is taken.
 */
export function takesFiletype(filetypes: readonly string[], type: string): boolean {
  const mime = type.split(';')[0].trim().toLowerCase();
  const matches = (pattern: string) => pattern === mime || (pattern.endsWith('/*') && mime.startsWith(pattern.slice(0, -1)));
  const excluded = filetypes.filter((pattern) => pattern.startsWith('!')).map((pattern) => pattern.slice(1));
  if (excluded.some(matches)) return false;
  const included = filetypes.filter((pattern) => !pattern.startsWith('!'));
  return !included.length || included.some(matches);
}

export function engineTaskQueue(name: string, prefix = ''): string {
  return `${prefix}engine.${name}`;
}
