import { z } from 'zod';
import { describeIssues } from './engine-manifest';
import { settingList, webhookAllowEntryProblem } from './notify-targets';
import { parseDuration } from './units';

const DAY_MS = 86_400_000;
/** DOCKET_MAX_WAIT's ceiling: Cortex's `waitreport` never waited longer. */
const MAX_WAIT_CEILING_MS = 10 * 60_000;
/**
 * Every setting Docket reads from its environment, with its default, in one place.
 * The README's "Configuration" table mirrors this schema.
 */
const port = z.coerce.number().int().min(0).max(65535);
// A name, an IPv4 address, an IPv6 address with or without brackets, or `*`.
const HOST_ENTRY = /^(\*|\[[0-9a-f:.]+\]|[0-9a-f.]*:[0-9a-f.]*:[0-9a-f:.]*|[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?)$/i;

export const ConfigSchema = z.object({
  DOCKET_DATA_DIR: z.string().default('data'),
  /**
   * Where blobs and cached results live: unset, folders under DOCKET_DATA_DIR; `s3://bucket/prefix`, an
   * S3-compatible bucket that every host shares (README, "Blob store"), reached with the AWS_* settings below.
   */
  DOCKET_BLOB_URL: z.string().regex(
    /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/[A-Za-z0-9._\/-]*)?$/,
    's3://bucket or s3://bucket/prefix (a bucket name, then letters, digits, . _ - and /)',
  ).refine((url) => !/\/\.{1,2}(\/|$)/.test(url.slice(5)), 'a prefix without . or .. segments').optional(),
  /** `auto`: path-style addressing (endpoint/bucket/key) when an endpoint is set, as most S3-compatible servers need. */
  DOCKET_BLOB_PATH_STYLE: z.enum(['auto', 'on', 'off']).default('auto'),
  /** The blob store's S3 endpoint, region and credentials: AWS's standard variables; unset ones come from the AWS SDK's chain (profiles, roles). */
  AWS_ENDPOINT_URL_S3: z.string().url().optional(),
  AWS_ENDPOINT_URL: z.string().url().optional(),
  AWS_REGION: z.string().optional(),
  AWS_ACCESS_KEY_ID: z.string().optional(),
  AWS_SECRET_ACCESS_KEY: z.string().optional(),
  AWS_SESSION_TOKEN: z.string().optional(),
  DOCKET_ENGINES_DIR: z.string().default('engines'),
  DOCKET_HOST: z.string().default('127.0.0.1'),
  DOCKET_PORT: port.default(8100),
  /**
   * Host names the gateway answers to besides `localhost`, IP addresses and a DOCKET_HOST that is a name
   * (comma-separated; `*` for any, behind a proxy that checks Host itself): a page under another name
   * may be DNS rebinding (README, "Cross-site requests and Host names").
   */
  DOCKET_ALLOWED_HOSTS: z.string().default('').superRefine((value, context) => {
    for (const entry of value.split(',').map((name) => name.trim()).filter(Boolean)) {
      if (HOST_ENTRY.test(entry)) continue;
      context.addIssue({
        code: 'custom',
        message: `${JSON.stringify(entry)} is not a host name: list names without scheme or port (docket.example.org), or * for any`,
      });
    }
  }),
  /**
   * The worker and engines roles' own HTTP listener (/healthz, /readyz, /metrics; system/role-server.ts):
   * one setting per role, so one environment file serves every role on a host; 0 turns it off.
   */
  DOCKET_WORKER_PORT: port.default(8101),
  DOCKET_ENGINES_PORT: port.default(8102),
  DOCKET_ROLE_HOST: z.string().default('127.0.0.1'),
  /** An existing Temporal cluster; when unset, `npm start` runs a dev server. */
  TEMPORAL_ADDRESS: z.string().optional(),
  TEMPORAL_NAMESPACE: z.string().default('default'),
  /**
   * How long Temporal keeps a finished investigation's history (and so its report, `/result`, its search
   * attributes): applied to TEMPORAL_NAMESPACE at start, the dev server's included. Temporal's floor is a day.
   */
  DOCKET_RETENTION: z.string().default('30d').superRefine((value, context) => {
    const ms = parseDuration(value);
    if (ms === undefined) context.addIssue({ code: 'custom', message: `${JSON.stringify(value)} is not a duration: write it like 30d or 720h` });
    else if (ms < DAY_MS) context.addIssue({ code: 'custom', message: `${value} is shorter than Temporal's minimum retention of one day (1d)` });
  }),
  DOCKET_TEMPORAL_PORT: port.default(7233),
  DOCKET_TEMPORAL_UI_PORT: port.default(8233),
  /** Where people reach the Temporal Web UI, for links from the console and Slack. */
  DOCKET_TEMPORAL_UI_URL: z.string().optional(),
  DOCKET_TASK_QUEUE: z.string().default('docket'),
  /** Prepended to every task queue, so two Docket installations can share one namespace. */
  DOCKET_QUEUE_PREFIX: z.string().default(''),
  /** Engines this process serves (comma-separated); empty means all. */
  DOCKET_ENGINES: z.string().default(''),
  /** The response policy (YAML); absent file = no automatic responses. */
  DOCKET_POLICY_FILE: z.string().default('policy.yaml'),
  /** A webhook every investigation reports to, signed Standard-Webhooks style with the secret. */
  DOCKET_WEBHOOK_URL: z.string().url().optional(),
  DOCKET_WEBHOOK_SECRET: z.string().optional(),
  /**
   * Where an investigation's own `notify.webhook` may point (comma-separated): each entry an http(s)
   * origin with an optional path, matched by origin and at a `/` of the path; none by default.
   */
  DOCKET_WEBHOOK_ALLOW: z.string().default('').superRefine((value, context) => {
    for (const entry of settingList(value)) {
      const problem = webhookAllowEntryProblem(entry);
      if (problem) context.addIssue({ code: 'custom', message: problem });
    }
  }),
  /** `on` lets `runner: process` engines run local commands, unconfined (TheHive's process runner). */
  DOCKET_PROCESS_RUNNER: z.enum(['on', 'off']).default('off'),
  DOCKET_LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  /**
   * What callers without an API key may do: `auto` = analyze while the gateway listens on loopback and
   * no key has been created yet, otherwise nothing; `none`, `read` or `analyze` say so outright.
   */
  DOCKET_ANONYMOUS: z.enum(['auto', 'none', 'read', 'analyze']).default('auto'),
  /** Gateway requests a minute per API key (per address without one); 0 turns the limit off. */
  DOCKET_RATE_LIMIT: z.coerce.number().int().min(0).default(600),
  /** State-changing gateway requests (uploads, starts, decisions) in progress at once; past it 503 + Retry-After; 0 = no bound. */
  DOCKET_MAX_INFLIGHT_STARTS: z.coerce.number().int().min(0).default(64),
  /**
   * The longest the gateway holds a read open waiting for a job to finish: `?wait=` (60 s at most
   * whatever this says) and Cortex's `waitreport` `atMost` (10 minutes at most); a longer wait is
   * refused with 400 (`?wait=`) or cut to it (`atMost`). Lower it below a proxy's idle timeout; 0 turns waiting off.
   */
  DOCKET_MAX_WAIT: z.string().default('10m').superRefine((value, context) => {
    const ms = parseDuration(value);
    if (ms === undefined) context.addIssue({ code: 'custom', message: `${JSON.stringify(value)} is not a duration: write it like 30s, 500ms or 10m` });
    else if (ms > MAX_WAIT_CEILING_MS) context.addIssue({ code: 'custom', message: `${value} is longer than the 10 minutes a read may be held open` });
  }),
  /** Schedule definitions (`*.yaml`) reconciled into Temporal Schedules at start (README, "Schedules"). */
  DOCKET_SCHEDULES_DIR: z.string().default('schedules'),
  /** Cloud accounts compliance bots act in, and their credentials' variable names (README, "Compliance events"). */
  DOCKET_ACCOUNTS_FILE: z.string().default('accounts.yaml'),
  /**
   * Warm job folders the Docker runner keeps ready per folder shape (a tmpfs volume and its running holder
   * container each; docs/engines.md, "The job folder"): they take the holder's start off each job's path. 0 turns them off.
   */
  DOCKET_WARM_FOLDERS: z.coerce.number().int().min(0).max(16).default(2),
  /**
   * The Docker network `network: egress` engines join: Docket creates it, and keeps it off the Docker host,
   * unless a network of that name exists that Docket did not create (docs/engines.md, "The egress network").
   */
  DOCKET_EGRESS_NETWORK: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'a Docker network name').default('docket-egress'),
  /** Slack (README, "Slack"): the bot token, and the signing secret (HTTP mode) or app token (Socket Mode). */
  SLACK_BOT_TOKEN: z.string().optional(),
  SLACK_SIGNING_SECRET: z.string().optional(),
  SLACK_APP_TOKEN: z.string().optional(),
  /** Channel ids where anyone may ask Docket (comma-separated); their members may ask anywhere. Empty: everyone. */
  DOCKET_SLACK_CHANNELS: z.string().default(''),
  /** Slack user ids who may press approval buttons (comma-separated); empty: nobody from Slack. */
  DOCKET_SLACK_APPROVERS: z.string().default(''),
  /** Where the Slack Web API is (Bolt's slackApiUrl): an enterprise proxy, or a fake Slack in tests. */
  DOCKET_SLACK_API_URL: z.string().url().optional(),
  /** Where people reach the console, for links from Slack; the gateway's own /console/ by default. */
  DOCKET_CONSOLE_URL: z.string().url().optional(),
});

export type Config = z.infer<typeof ConfigSchema> & {
  temporalAddress: string;
  temporalUiUrl: string;
  /** DOCKET_RETENTION in milliseconds. */
  retentionMs: number;
  /** DOCKET_MAX_WAIT in milliseconds. */
  maxWaitMs: number;
  engineFilter: string[];
  consoleUrl: string;
};

export class ConfigError extends Error {}

export function loadConfig(env: Record<string, string | undefined>): Config {
  const defined = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = ConfigSchema.safeParse(defined);
  if (!parsed.success) throw new ConfigError(`invalid configuration: ${describeIssues(parsed.error)}`);
  const config = parsed.data;
  return {
    ...config,
    temporalAddress: config.TEMPORAL_ADDRESS ?? `127.0.0.1:${config.DOCKET_TEMPORAL_PORT}`,
    temporalUiUrl: config.DOCKET_TEMPORAL_UI_URL ?? `http://localhost:${config.DOCKET_TEMPORAL_UI_PORT}`,
    retentionMs: parseDuration(config.DOCKET_RETENTION)!,
    maxWaitMs: parseDuration(config.DOCKET_MAX_WAIT)!,
    engineFilter: config.DOCKET_ENGINES.split(',').map((name) => name.trim()).filter(Boolean),
    consoleUrl: config.DOCKET_CONSOLE_URL ?? `http://localhost:${config.DOCKET_PORT}/console/`,
  };
}
