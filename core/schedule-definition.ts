import { z } from 'zod';
import { ENGINE_NAME, describeIssues } from './engine-manifest';
import { Observable } from './investigation';
import { parseDuration } from './units';

/**
 * One `schedules/*.yaml` definition (README.md, "Schedules"), the successor of CloudPassage's
 * celery-beat .conf files; the reconciler turns each into a Temporal Schedule.
 */

/** Appears in the Temporal Schedule ID, the API path and Slack commands, so it stays a plain slug. */
export const SCHEDULE_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

const MINUTE_MS = 60_000;

/**
 * A duration with its unit written out: a bare `15` would be read as seconds by parseDuration,
 * which is rarely what someone writing a schedule meant.
 */
const duration = (minimumMs: number, minimumText: string) =>
  z.string({ error: (issue) => (issue.input === undefined ? 'required' : 'expected a duration such as 15m, 1h or 1d') })
    .transform((text, ctx) => {
      const ms = /[a-z]\s*$/i.test(text) ? parseDuration(text) : undefined;
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: `expected a duration with its unit, such as 15m, 1h or 1d, got ${JSON.stringify(text)}` });
        return z.NEVER;
      }
      if (ms < minimumMs) {
        ctx.addIssue({ code: 'custom', message: `at least ${minimumText}, got ${JSON.stringify(text)}` });
        return z.NEVER;
      }
      return ms;
    });

/** The macros Temporal's cron parser accepts besides five fields. */
const CRON_MACROS = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'];

interface CronField {
  name: string;
  min: number;
  max: number;
  /** Names in order, the first standing for `min`. */
  names?: string[];
  question?: boolean;
}

const CRON_FIELDS: CronField[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31, question: true },
  { name: 'month', min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] },
  // 7 is Sunday too, as in most crons.
  { name: 'day of week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'], question: true },
];

function cronValue(text: string, field: CronField): number | undefined {
  if (/^\d+$/.test(text)) {
    const value = Number(text);
    return value >= field.min && value <= field.max ? value : undefined;
  }
  const index = field.names?.indexOf(text.toLowerCase()) ?? -1;
  return index >= 0 ? field.min + index : undefined;
}

function cronFieldProblem(text: string, field: CronField): string | undefined {
  const allowed = `${field.min}-${field.max}${field.names ? ` or ${field.names[0].toUpperCase()}-${field.names[field.names.length - 1].toUpperCase()}` : ''}`;
  for (const item of text.split(',')) {
    const [range, step, ...extra] = item.split('/');
    if (extra.length > 0) return `${JSON.stringify(item)} has more than one /`;
    if (step !== undefined && !/^[1-9]\d*$/.test(step)) return `step ${JSON.stringify(step)} is not a positive whole number`;
    if (range === '*' || (range === '?' && field.question)) continue;
    const bounds = range.split('-');
    if (bounds.length > 2) return `${JSON.stringify(range)} is not a value or a range`;
    const values = bounds.map((bound) => cronValue(bound, field));
    const bad = bounds.find((_, i) => values[i] === undefined);
    if (bad !== undefined) return `${JSON.stringify(bad)} is not a valid ${field.name} (${allowed})`;
    if (values.length === 2 && (values[0] as number) > (values[1] as number)) return `range ${range} runs backwards`;
  }
  return undefined;
}

/** Returns what is wrong with a cron expression, or undefined when Temporal can take it. */
export function cronProblem(expression: string): string | undefined {
  const text = expression.trim();
  if (text.startsWith('@')) {
    return CRON_MACROS.includes(text.toLowerCase()) ? undefined : `unknown macro ${text}: use one of ${CRON_MACROS.join(', ')}`;
  }
  const fields = text.split(/\s+/).filter((field) => field.length > 0);
  if (fields.length !== CRON_FIELDS.length) {
    return `expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @hourly, got ${fields.length}`;
  }
  for (let i = 0; i < fields.length; i += 1) {
    const problem = cronFieldProblem(fields[i], CRON_FIELDS[i]);
    if (problem) return `${CRON_FIELDS[i].name}: ${problem}`;
  }
  return undefined;
}

const Cron = z.string().transform((text, ctx) => {
  const problem = cronProblem(text);
  if (problem) {
    ctx.addIssue({ code: 'custom', message: problem });
    return z.NEVER;
  }
  return text.trim().split(/\s+/).join(' ');
});

/** `Europe/Paris`, `America/Argentina/Buenos_Aires`, `Etc/GMT+5`, `UTC`: the shape only; Temporal knows the names. */
const TIMEZONE = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+){0,2}$/;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const WHOLE_PLACEHOLDER = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;

/**
 * `${NAME}` stays unexpanded in the schedule and is read from the worker's environment when the
 * engine runs, so secrets never enter the Temporal Schedule or workflow history. Only a whole value
 * may be a placeholder.
 */
const EnvValue = z.string().refine(
  (value) => WHOLE_PLACEHOLDER.test(value) || !value.includes('${'),
  'a literal, or ${NAME} alone to take NAME from the worker environment',
);

/** Says "required" when a field is absent rather than zod's "expected string, received undefined". */
const requiredText = () => z.string({ error: (issue) => (issue.input === undefined ? 'required' : 'expected text') });

const engineName = requiredText().regex(ENGINE_NAME, 'an engine name: lower-case letters, digits, - and _');

const whenObject = { when: (payload: { value: unknown }) => typeof payload.value === 'object' && payload.value !== null };

/** Starts an investigation, as an analyst would with these observables or this text. */
export const InvestigateAction = z.strictObject({
  observables: z.array(Observable).max(1000).default([]),
  engines: z.array(engineName).min(1).max(100).optional(),
  /** Responders asked for by name: each waits for approval unless the policy says `approval: none` for it. */
  respond: z.array(engineName).min(1).max(20).optional(),
  text: z.string().min(1).max(1_000_000).optional(),
}).refine((action) => action.observables.length > 0 || action.text !== undefined, {
  path: ['observables'],
  message: 'give at least one observable, or text to extract them from',
});
export type InvestigateAction = z.infer<typeof InvestigateAction>;

/** Runs one engine with arguments, as chatops' `run <engine> <args>` does. */
export const RunAction = z.strictObject({
  engine: engineName,
  args: z.array(z.string().max(4096)).max(64).default([]),
  env: z.record(z.string().regex(ENV_NAME, 'an environment variable name'), EnvValue).default({}),
});
export type RunAction = z.infer<typeof RunAction>;

export const ScheduleAction = z.strictObject({
  investigate: InvestigateAction.optional(),
  run: RunAction.optional(),
}, { error: (issue) => (issue.input === undefined ? 'required: investigate or run' : undefined) }).superRefine((action, ctx) => {
  const given = [action.investigate, action.run].filter((value) => value !== undefined).length;
  if (given === 0) ctx.addIssue({ code: 'custom', message: 'give investigate or run' });
  if (given > 1) ctx.addIssue({ code: 'custom', message: 'give investigate or run, not both' });
}, whenObject);
export type ScheduleAction = z.infer<typeof ScheduleAction>;

const WEBHOOK_URL = /^https?:\/\/[^\s/?#]+[^\s]*$/i;
/** `#channel-name`, or a channel ID such as C0123ABCD. */
const SLACK_CHANNEL = /^(#[a-z0-9][a-z0-9_-]{0,79}|[CGD][A-Z0-9]{6,})$/;

export const NotifyTarget = z.strictObject({
  webhook: z.string().regex(WEBHOOK_URL, 'an http(s) URL').optional(),
  slack: z.string().regex(SLACK_CHANNEL, 'a Slack channel such as #security or C0123ABCD').optional(),
}).superRefine((target, ctx) => {
  const given = [target.webhook, target.slack].filter((value) => value !== undefined).length;
  if (given === 0) ctx.addIssue({ code: 'custom', message: 'give webhook or slack' });
  if (given > 1) ctx.addIssue({ code: 'custom', message: 'one target per entry: webhook or slack, not both' });
}, whenObject);
export type NotifyTarget = z.infer<typeof NotifyTarget>;

export const OverlapPolicy = z.enum(['skip', 'buffer_one', 'buffer_all', 'cancel_other', 'terminate_other', 'allow_all']);
export type OverlapPolicy = z.infer<typeof OverlapPolicy>;

/**
 * Exactly one of `cron` and `interval` is set. Durations come out in milliseconds. The cross-field
 * checks run even when a field is wrong, so one pass reports every mistake in the file.
 */
export const ScheduleDefinition = z.strictObject({
  id: requiredText().regex(SCHEDULE_ID, 'a slug: lower-case letters, digits, - and _, starting with a letter or digit'),
  description: z.string().default(''),
  cron: Cron.optional(),
  interval: duration(MINUTE_MS, '1m').optional(),
  /** Shifts interval runs: `interval: 1h, offset: 15m` runs at a quarter past. */
  offset: z.string().transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a duration such as 5m, got ${JSON.stringify(text)}` });
      return z.NEVER;
    }
    return ms;
  }).optional(),
  timezone: z.string().max(64).regex(TIMEZONE, 'an IANA time zone name such as UTC or Europe/Paris').default('UTC'),
  action: ScheduleAction,
  overlap: OverlapPolicy.default('skip'),
  // Temporal does not catch up over less than ten seconds.
  catchupWindow: duration(10_000, '10s').default(MINUTE_MS),
  paused: z.boolean().default(false),
  notify: z.array(NotifyTarget).max(16).default([]),
}).superRefine((schedule, ctx) => {
  const hasCron = schedule.cron !== undefined;
  const hasInterval = schedule.interval !== undefined;
  if (!hasCron && !hasInterval) {
    ctx.addIssue({ code: 'custom', path: ['cron'], message: "required: give cron (such as '0 * * * *') or interval (such as 15m)" });
  }
  if (hasCron && hasInterval) {
    ctx.addIssue({ code: 'custom', path: ['interval'], message: 'give cron or interval, not both' });
  }
  if (schedule.offset !== undefined && !hasInterval) {
    ctx.addIssue({ code: 'custom', path: ['offset'], message: 'only meaningful with interval' });
  }
  if (typeof schedule.offset === 'number' && typeof schedule.interval === 'number' && schedule.offset >= schedule.interval) {
    ctx.addIssue({ code: 'custom', path: ['offset'], message: 'must be shorter than interval' });
  }
}, whenObject);
export type ScheduleDefinition = z.infer<typeof ScheduleDefinition>;

export type ScheduleResult = { ok: true; schedule: ScheduleDefinition } | { ok: false; error: string };

/** Validates an already-parsed schedule document; `source` names the file in errors. */
export function validateSchedule(doc: unknown, source: string): ScheduleResult {
  const parsed = ScheduleDefinition.safeParse(doc);
  if (!parsed.success) return { ok: false, error: `${source}: ${describeIssues(parsed.error)}` };
  return { ok: true, schedule: parsed.data };
}
