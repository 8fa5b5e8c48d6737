import { z } from 'zod';
import type { EngineReport, NotificationRecord, ResponseRecord, TaskReport } from './investigation';

/**
 * Dome9 / CloudGuard compliance findings, as Dome9 CloudBots consumed them (README.md, "Compliance
 * events"; docs/compliance.md): parsing what `POST /v1/events/compliance` receives, reading the `AUTO:` tags, planning
 * the remediation, and choosing the account whose credentials it runs with.
 */

/** Says "required" when a field is absent, so `entity.region: required` points at the gap. */
function expected(what: string) {
  return { error: (issue: { input?: unknown }) => (issue.input === undefined ? 'required' : `expected ${what}`) };
}

const requiredText = () => z.string(expected('text')).min(1, 'must not be empty');
const optionalText = () => z.string().nullish();

/** Dome9 sends ids as strings, but bundle and rule ids have been numbers; both become text. */
const idLike = () => z.union([z.string(), z.number()], expected('text or a number')).transform(String);

const Status = z.string(expected('Passed or Failed')).transform((value, ctx) => {
  const status = value.trim().toLowerCase();
  if (status === 'passed') return 'Passed' as const;
  if (status === 'failed') return 'Failed' as const;
  ctx.addIssue({ code: 'custom', message: `expected Passed or Failed, got ${JSON.stringify(value)}` });
  return z.NEVER;
});

/**
 * One finding in Dome9's format. Only what remediation and the idempotency key need is required;
 * everything else is optional, may be null (Dome9 sends nulls), and unknown fields are kept so the
 * responder engine sees the finding as Dome9 sent it.
 */
export const ComplianceFinding = z.looseObject({
  reportTime: z.string(expected('an ISO 8601 time'))
    .refine((time) => !Number.isNaN(Date.parse(time)), 'expected an ISO 8601 time such as 2024-05-01T10:00:00Z'),
  status: Status,
  findingKey: optionalText(),
  region: optionalText(),
  policy: z.looseObject({ name: optionalText(), description: optionalText() }).nullish(),
  bundle: z.looseObject({ name: optionalText(), id: idLike().nullish() }).nullish(),
  rule: z.looseObject({
    name: requiredText(),
    ruleId: idLike().nullish(),
    description: optionalText(),
    remediation: optionalText(),
    /** `|`-separated; empty when the rule has no tags. */
    complianceTags: z.string(expected('text (empty when the rule has no tags)')),
    logic: optionalText(),
    severity: optionalText(),
  }, expected('an object')),
  account: z.looseObject({
    id: idLike().refine((id) => id.length > 0, 'must not be empty'),
    name: optionalText(),
    vendor: optionalText(),
  }, expected('an object')),
  entity: z.looseObject({
    id: idLike().refine((id) => id.length > 0, 'must not be empty'),
    name: z.string(expected('text')),
    /** Empty for global entities (IAM, say); see remediationRegion. */
    region: z.string(expected('text')),
    type: optionalText(),
  }, expected('an object')),
}, expected('a Dome9 finding object'));
export type ComplianceFinding = z.infer<typeof ComplianceFinding>;

/** Bounds the workflows one request can start. */
export const MAX_FINDINGS_PER_EVENT = 1000;
const MAX_REPORTED_ISSUES = 10;

const FindingBatch = z.array(ComplianceFinding, expected('a list of findings'))
  .max(MAX_FINDINGS_PER_EVENT, `at most ${MAX_FINDINGS_PER_EVENT} findings per event`);

/** SubscribeURL is fetched by the gateway, so only an SNS endpoint is accepted (no SSRF by a forged body). */
const SNS_ENDPOINT = /^https:\/\/sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?\//;

const SnsNotification = z.looseObject({
  Type: z.literal('Notification'),
  Message: z.string(expected('text holding the JSON finding or batch')),
  MessageId: optionalText(),
  TopicArn: optionalText(),
});

const SnsSubscriptionConfirmation = z.looseObject({
  Type: z.literal('SubscriptionConfirmation'),
  SubscribeURL: z.string(expected('text')).regex(SNS_ENDPOINT, 'not an https://sns.<region>.amazonaws.com URL: refusing to confirm'),
  Token: requiredText(),
  TopicArn: requiredText(),
  MessageId: optionalText(),
});

const SnsUnsubscribeConfirmation = z.looseObject({
  Type: z.literal('UnsubscribeConfirmation'),
  TopicArn: requiredText(),
});

export type ComplianceEvent =
  | { ok: true; kind: 'findings'; findings: ComplianceFinding[]; sns?: { messageId?: string; topicArn?: string } }
  /** The gateway confirms by fetching `subscribeUrl` after verifying the SNS signature. */
  | { ok: true; kind: 'subscription-confirmation'; subscribeUrl: string; token: string; topicArn: string }
  /** Nothing to do but acknowledge. */
  | { ok: true; kind: 'unsubscribe-confirmation'; topicArn: string }
  | { ok: false; error: string };

type Failure = { ok: false; error: string };

/** `findings[2].entity.region`: list positions in brackets, as a person reads them. */
function fieldPath(prefix: string, path: readonly PropertyKey[]): string {
  let text = prefix;
  for (const key of path) {
    if (typeof key === 'number') text += `[${key}]`;
    else text += text ? `.${String(key)}` : String(key);
  }
  return text || '(top level)';
}

function describe(error: z.ZodError, prefix: string): string {
  const lines = error.issues.slice(0, MAX_REPORTED_ISSUES).map((issue) => `${fieldPath(prefix, issue.path)}: ${issue.message}`);
  const more = error.issues.length - MAX_REPORTED_ISSUES;
  if (more > 0) lines.push(`(and ${more} more)`);
  return lines.join('; ');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJson(text: string, what: string): { ok: true; value: unknown } | Failure {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return { ok: false, error: `${what} is not JSON: ${(error as Error).message}` };
  }
}

function isSnsEnvelope(doc: unknown): doc is Record<string, unknown> {
  return isRecord(doc) && typeof doc.Type === 'string' && ('Message' in doc || 'TopicArn' in doc || 'SubscribeURL' in doc);
}

/**
 * A batch is either a JSON array of findings or an object whose `findings` is that array; anything
 * else is one finding. A batch with one bad finding is refused whole, so the sender sees the problem:
 * re-sending the good ones is safe because each finding's key is its workflow's idempotency key.
 */
function parseFindings(doc: unknown): { ok: true; findings: ComplianceFinding[] } | Failure {
  const batch = Array.isArray(doc) ? doc : isRecord(doc) && Array.isArray(doc.findings) ? doc.findings : undefined;
  if (batch) {
    const parsed = FindingBatch.safeParse(batch);
    if (!parsed.success) return { ok: false, error: describe(parsed.error, 'findings') };
    return { ok: true, findings: parsed.data };
  }
  const parsed = ComplianceFinding.safeParse(doc);
  if (!parsed.success) return { ok: false, error: describe(parsed.error, '') };
  return { ok: true, findings: [parsed.data] };
}

function parseSns(envelope: Record<string, unknown>): ComplianceEvent {
  switch (envelope.Type) {
    case 'Notification': {
      const parsed = SnsNotification.safeParse(envelope);
      if (!parsed.success) return { ok: false, error: `SNS Notification: ${describe(parsed.error, '')}` };
      const message = parseJson(parsed.data.Message, 'SNS Notification Message');
      if (!message.ok) return message;
      if (isSnsEnvelope(message.value)) return { ok: false, error: 'SNS Notification Message: an SNS envelope inside another is not accepted' };
      const findings = parseFindings(message.value);
      if (!findings.ok) return { ok: false, error: `SNS Notification Message: ${findings.error}` };
      const sns = { messageId: parsed.data.MessageId ?? undefined, topicArn: parsed.data.TopicArn ?? undefined };
      return { ok: true, kind: 'findings', findings: findings.findings, sns };
    }
    case 'SubscriptionConfirmation': {
      const parsed = SnsSubscriptionConfirmation.safeParse(envelope);
      if (!parsed.success) return { ok: false, error: `SNS SubscriptionConfirmation: ${describe(parsed.error, '')}` };
      const { SubscribeURL, Token, TopicArn } = parsed.data;
      return { ok: true, kind: 'subscription-confirmation', subscribeUrl: SubscribeURL, token: Token, topicArn: TopicArn };
    }
    case 'UnsubscribeConfirmation': {
      const parsed = SnsUnsubscribeConfirmation.safeParse(envelope);
      if (!parsed.success) return { ok: false, error: `SNS UnsubscribeConfirmation: ${describe(parsed.error, '')}` };
      return { ok: true, kind: 'unsubscribe-confirmation', topicArn: parsed.data.TopicArn };
    }
    default:
      return { ok: false, error: `Type: unsupported SNS message type ${JSON.stringify(envelope.Type)}` };
  }
}

/**
 * Reads a compliance event body: one finding, a batch, or either wrapped in an SNS Notification.
 * A string body is parsed as JSON, because SNS posts with `Content-Type: text/plain`. Verifying the
 * SNS signature needs the network, so it is the gateway's job, before acting on the result.
 */
export function parseComplianceEvent(body: unknown): ComplianceEvent {
  let doc = body;
  if (typeof body === 'string') {
    const parsed = parseJson(body, 'body');
    if (!parsed.ok) return parsed;
    doc = parsed.value;
  }
  if (doc === undefined || doc === null || typeof doc !== 'object') {
    return { ok: false, error: `(top level): expected a Dome9 finding, a batch of findings or an SNS notification, got ${doc === null ? 'null' : typeof doc}` };
  }
  if (isSnsEnvelope(doc)) return parseSns(doc);
  const findings = parseFindings(doc);
  if (!findings.ok) return findings;
  return { ok: true, kind: 'findings', findings: findings.findings };
}

export interface AutoTag {
  /** A Docket engine name when well formed; anything else is simply never a known bot. */
  bot: string;
  params: string[];
}

const AUTO_PREFIX = /^auto:\s*/i;

/**
 * `AUTO: tag_ec2_resource owner security-team | PCI` gives one tag. CloudBots required the space
 * after the colon; it is optional here. An `AUTO:` with no bot name asks for nothing and is ignored.
 */
export function parseAutoTags(complianceTags: string): AutoTag[] {
  const tags: AutoTag[] = [];
  for (const part of complianceTags.split('|')) {
    const tag = part.trim();
    const prefix = AUTO_PREFIX.exec(tag);
    if (!prefix) continue;
    const [bot, ...params] = tag.slice(prefix[0].length).split(/\s+/).filter((word) => word.length > 0);
    if (!bot) continue;
    tags.push({ bot: bot.toLowerCase(), params });
  }
  return tags;
}

export interface RemediationAction extends AutoTag {
  /** False when no responder engine has this name: reported, and the other actions still run. */
  known: boolean;
}

export type RemediationPlan =
  | { kind: 'skip'; reason: string }
  | { kind: 'remediate'; actions: RemediationAction[] };

export function planRemediation(finding: ComplianceFinding, knownBots: string[]): RemediationPlan {
  if (finding.status === 'Passed') return { kind: 'skip', reason: 'status Passed: nothing to remediate' };
  const tags = parseAutoTags(finding.rule.complianceTags);
  if (tags.length === 0) return { kind: 'skip', reason: 'no AUTO: tag in rule.complianceTags: nothing to remediate' };
  const known = new Set(knownBots);
  return { kind: 'remediate', actions: tags.map((tag) => ({ ...tag, known: known.has(tag.bot) })) };
}

const FNV64_OFFSET = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;

/**
 * 64-bit FNV-1a over the UTF-16 code units (low byte, then high byte): pure, with no TextEncoder, and
 * only ever compared with itself, so it need not match a UTF-8 FNV elsewhere.
 */
function fnv1a64(text: string): string {
  let hash = FNV64_OFFSET;
  for (let i = 0; i < text.length; i += 1) {
    const unit = text.charCodeAt(i);
    hash = BigInt.asUintN(64, (hash ^ BigInt(unit & 0xff)) * FNV64_PRIME);
    hash = BigInt.asUintN(64, (hash ^ BigInt(unit >> 8)) * FNV64_PRIME);
  }
  return hash.toString(16).padStart(16, '0');
}

const KEY_PART = /^[A-Za-z0-9._:@-]{1,64}$/;
const KEY_PART_MAX = 64;
const KEY_PREFIX = 'compliance';
const READABLE_MAX = 32;

/** The longest key findingKey returns, well under Temporal's workflow-ID limit. */
export const FINDING_KEY_MAX_LENGTH = KEY_PREFIX.length + 4 * (1 + KEY_PART_MAX);

/**
 * A part that is short and made of safe characters is kept as it is. Any other part becomes a readable
 * sanitized prefix, `=`, and the hash of the exact text: `=` never appears in a kept part, so two
 * different parts never give the same text (short of a 64-bit hash collision).
 */
function keyPart(value: string): string {
  if (KEY_PART.test(value)) return value;
  const readable = value.replace(/[^A-Za-z0-9._:@-]+/g, '-').slice(0, READABLE_MAX);
  return `${readable}=${fnv1a64(value)}`;
}

/**
 * The idempotency key of one remediation, used as its workflow ID:
 * `compliance~<account>~<ruleId, or rule name without one>~<entity>~<reportTime>`. The report time is
 * part of it, so the same failure reported again later is remediated again; Dome9's own `findingKey`
 * stays the same across reports, which is why it is not used. Parts are joined with `~`, which no part
 * contains, and the result has no whitespace or control characters.
 */
export function findingKey(finding: ComplianceFinding): string {
  const rule = finding.rule.ruleId || finding.rule.name;
  const parts = [finding.account.id, rule, finding.entity.id, finding.reportTime].map(keyPart);
  return [KEY_PREFIX, ...parts].join('~');
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const envName = () => z.string().regex(ENV_NAME, 'an environment variable name such as DOCKET_AWS_KEY_ID');
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const AWS_REGION = /^[a-z]{2}(-[a-z]+)+-\d$/;

/**
 * How Docket acts in one cloud account. Secrets never sit in configuration: only the names of the
 * environment variables that hold them. With both keys and roleArn, the keys assume the role; with
 * roleArn alone, the worker's own credentials do.
 */
export const ComplianceAccount = z.strictObject({
  name: z.string().optional(),
  accessKeyIdEnv: envName().optional(),
  secretAccessKeyEnv: envName().optional(),
  sessionTokenEnv: envName().optional(),
  roleArn: z.string().regex(ROLE_ARN, 'an IAM role ARN such as arn:aws:iam::123456789012:role/docket-remediation').optional(),
  /** For entities Dome9 reports without a region (global ones such as IAM). */
  region: z.string().regex(AWS_REGION, 'an AWS region such as us-east-1').default('us-east-1'),
}).superRefine((account, ctx) => {
  const hasKeys = account.accessKeyIdEnv !== undefined || account.secretAccessKeyEnv !== undefined;
  if (account.accessKeyIdEnv === undefined && hasKeys) {
    ctx.addIssue({ code: 'custom', path: ['accessKeyIdEnv'], message: 'required with secretAccessKeyEnv' });
  }
  if (account.secretAccessKeyEnv === undefined && hasKeys) {
    ctx.addIssue({ code: 'custom', path: ['secretAccessKeyEnv'], message: 'required with accessKeyIdEnv' });
  }
  if (account.sessionTokenEnv !== undefined && !hasKeys) {
    ctx.addIssue({ code: 'custom', path: ['sessionTokenEnv'], message: 'only meaningful with accessKeyIdEnv and secretAccessKeyEnv' });
  }
  if (!hasKeys && account.roleArn === undefined) {
    ctx.addIssue({ code: 'custom', path: [], message: 'give accessKeyIdEnv and secretAccessKeyEnv, or roleArn to assume' });
  }
});
export type ComplianceAccount = z.infer<typeof ComplianceAccount>;

const ACCOUNT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Accounts by Dome9 account id (the cloud account number). In single-account mode Docket serves one
 * account, the only entry, and refuses findings from any other, as a CloudBots deployment did.
 */
export const ComplianceAccounts = z.strictObject({
  singleAccount: z.boolean().default(false),
  accounts: z.record(z.string().regex(ACCOUNT_ID, 'an account id'), ComplianceAccount).default({}),
}).superRefine((config, ctx) => {
  const count = Object.keys(config.accounts).length;
  if (config.singleAccount && count !== 1) {
    ctx.addIssue({ code: 'custom', path: ['singleAccount'], message: `single-account mode needs exactly one entry in accounts, found ${count}` });
  }
});
export type ComplianceAccounts = z.infer<typeof ComplianceAccounts>;

export type AccountsResult = { ok: true; config: ComplianceAccounts } | { ok: false; error: string };

/** Validates an already-parsed accounts document; `source` names its file or variable in errors. */
export function validateComplianceAccounts(doc: unknown, source: string): AccountsResult {
  const parsed = ComplianceAccounts.safeParse(doc);
  if (!parsed.success) return { ok: false, error: `${source}: ${describe(parsed.error, '')}` };
  return { ok: true, config: parsed.data };
}

/** The account accountFor must restrict findings to, in single-account mode. */
export function singleAccountIdOf(config: ComplianceAccounts): string | undefined {
  return config.singleAccount ? Object.keys(config.accounts)[0] : undefined;
}

export type AccountChoice =
  | { ok: true; accountId: string; account: ComplianceAccount }
  | { ok: false; reason: string };

export function accountFor(
  finding: ComplianceFinding,
  accounts: Record<string, ComplianceAccount>,
  singleAccountId?: string,
): AccountChoice {
  const accountId = finding.account.id;
  if (singleAccountId !== undefined && accountId !== singleAccountId) {
    return {
      ok: false,
      reason: `single-account mode: findings from other accounts are refused (finding from ${accountId}, serving ${singleAccountId})`,
    };
  }
  // Object.hasOwn, so an account id such as "constructor" is not found on the prototype.
  if (!Object.hasOwn(accounts, accountId)) {
    return { ok: false, reason: `account ${accountId} is not configured: add it to the compliance accounts configuration` };
  }
  return { ok: true, accountId, account: accounts[accountId] };
}

/**
 * The AWS region a bot acts in: Dome9 writes regions with underscores (`us_west_2`), and global
 * entities have none, so those use the account's default region.
 */
export function remediationRegion(finding: ComplianceFinding, account: ComplianceAccount): string {
  const region = finding.entity.region.trim().toLowerCase().replace(/_/g, '-');
  if (region === '' || region === 'global') return account.region;
  return region;
}

/** What the gateway starts a compliance workflow with; the workflow ID is the finding key (findingKey). */
export interface ComplianceInput {
  finding: ComplianceFinding;
  accountId: string;
  /** Where the bots act: the entity's region, or the account's default for global entities. */
  region: string;
  actions: RemediationAction[];
  /**
   * Every bot's container environment: the account's credentials as `${ENV_NAME}` references, which
   * the engine worker expands, so no secret is ever in workflow history.
   */
  env: Record<string, string>;
  requester?: string;
}

export interface BotResult {
  bot: string;
  params: string[];
  outcome: 'passed' | 'failed';
  message: string;
  report?: EngineReport;
}

export interface ComplianceReport {
  id: string;
  status: 'Success' | 'Fail';
  source: 'event';
  accountId: string;
  region: string;
  rule: string;
  entity: { id: string; name: string; type?: string | null };
  reportTime: string;
  startedAt: string;
  finishedAt: string;
  bots: BotResult[];
  /** Bots that a policy rule made wait for a person, and what was decided. */
  responses?: ResponseRecord[];
  notifications: NotificationRecord[];
}

/**
 * One bot's outcome as the notification targets receive it: a task report (one engine run, so the
 * webhook and Slack render it as they render any task) plus the finding it remediated.
 */
export interface BotNotification extends TaskReport {
  compliance: {
    workflowId: string;
    rule: string;
    ruleId?: string | null;
    severity?: string | null;
    entity: { id: string; name: string; type?: string | null };
    accountId: string;
    region: string;
    bot: string;
    params: string[];
    outcome: BotResult['outcome'];
    message: string;
  };
}
