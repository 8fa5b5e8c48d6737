import { readFile } from 'node:fs/promises';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { DocketClient } from '../contract/client';
import type { FastifyInstance } from 'fastify';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { EngineRegistry } from '../infra/engine-registry';
import type { Logger } from '../infra/log';
import {
  accountFor,
  type ComplianceAccount,
  type ComplianceAccounts,
  type ComplianceFinding,
  type ComplianceInput,
  parseComplianceEvent,
  planRemediation,
  remediationRegion,
  singleAccountIdOf,
  validateComplianceAccounts,
} from '../core/compliance';
import { complianceWorkflowId } from '../contract/messages';
import { ApiError, badRequest } from './errors';
import type { FindingLedger } from './findings-routes';
import { errorResponses, JSON_BODY_ERRORS, jsonSchema, requestSchema } from './schemas';

/**
 * `POST /v1/events/compliance` (README.md, "Compliance events"): Dome9 / CloudGuard findings, one, a
 * batch or SNS-wrapped, become one `compliance` workflow per finding that asks for remediation. The
 * workflow ID is the finding key, so a finding sent twice is remediated once.
 */

export type ComplianceAccountsState =
  | { ok: true; config: ComplianceAccounts; file: string; missing?: boolean }
  | { ok: false; error: string };

const NO_ACCOUNTS: ComplianceAccounts = { singleAccount: false, accounts: {} };

/**
 * Reads the accounts file (DOCKET_ACCOUNTS_FILE) once at start. A missing file means no account is
 * configured, so every finding is refused with a reason; a broken one is reported with its field.
 */
export async function loadComplianceAccounts(file: string): Promise<ComplianceAccountsState> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, config: NO_ACCOUNTS, file, missing: true };
    return { ok: false, error: `${file}: cannot be read: ${(error as Error).message}` };
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    return { ok: false, error: `${file}: not valid YAML: ${(error as Error).message.split('\n')[0]}` };
  }
  const result = validateComplianceAccounts(doc ?? {}, file);
  return result.ok ? { ok: true, config: result.config, file } : result;
}

const reference = (name: string) => `\${${name}}`;

/**
 * The container environment a bot gets for one account: `${NAME}` references to the variables that
 * hold the secrets, expanded by the engine worker, never the secrets themselves. With a role and no
 * keys of its own, the account uses the worker's own credentials to assume the role.
 */
export function botEnvironment(account: ComplianceAccount, region: string): Record<string, string> {
  const env: Record<string, string> = { AWS_REGION: region, AWS_DEFAULT_REGION: region };
  if (account.accessKeyIdEnv && account.secretAccessKeyEnv) {
    env.AWS_ACCESS_KEY_ID = reference(account.accessKeyIdEnv);
    env.AWS_SECRET_ACCESS_KEY = reference(account.secretAccessKeyEnv);
    if (account.sessionTokenEnv) env.AWS_SESSION_TOKEN = reference(account.sessionTokenEnv);
  } else {
    env.AWS_ACCESS_KEY_ID = reference('AWS_ACCESS_KEY_ID');
    env.AWS_SECRET_ACCESS_KEY = reference('AWS_SECRET_ACCESS_KEY');
    env.AWS_SESSION_TOKEN = reference('AWS_SESSION_TOKEN');
  }
  // A role ARN is no secret; the bot assumes it with the credentials above.
  if (account.roleArn) env.DOCKET_ROLE_ARN = account.roleArn;
  return env;
}

const FindingAnswer = z.object({
  index: z.number().int().describe('position in the event (0 for a single finding)'),
  key: z.string().describe('the finding key: account, rule, entity and report time'),
  rule: z.string(),
  entity: z.string(),
  account: z.string(),
  result: z.enum(['skipped', 'started', 'duplicate', 'refused']),
  reason: z.string().optional().describe('why it was skipped, refused or not started again'),
  workflowId: z.string().optional().describe('the remediation workflow (= the finding key)'),
  bots: z.array(z.object({ bot: z.string(), params: z.array(z.string()), known: z.boolean() })).optional(),
  unknownBots: z.array(z.string()).optional().describe('AUTO: bots no responder engine answers to; reported, the others still run'),
});
type FindingAnswer = z.infer<typeof FindingAnswer>;

const FindingsAnswer = z.object({
  kind: z.literal('findings'),
  started: z.number().int(),
  findings: z.array(FindingAnswer),
});

/**
 * What the route takes, loosely: parseComplianceEvent reads the fields and names the one that is wrong,
 * and a finding carries far more than Docket reads.
 */
const ComplianceEventBody = z.union([
  z.looseObject({}).describe('a Dome9 / CloudGuard finding, an object with a `findings` batch, or an SNS notification whose Message is one of those'),
  z.array(z.looseObject({})).describe('a batch of findings'),
]);

const SnsAnswer = z.object({
  kind: z.enum(['subscription-confirmation', 'unsubscribe-confirmation']),
  topicArn: z.string(),
  confirmed: z.boolean(),
  message: z.string().describe('what the operator has to do, if anything'),
  subscribeUrl: z.string().optional(),
});

export interface ComplianceRouteDeps {
  /** Temporal; remediations start on its task queue, the main worker's. */
  temporal: DocketClient;
  /** Its responder engines are the bots AUTO: tags may name; read per request, so a reload counts. */
  registry: EngineRegistry;
  accounts?: ComplianceAccountsState;
  log?: Logger;
  /** Told of the findings answered `skipped` or `refused`, which start nothing Temporal would list. */
  ledger?: Pick<FindingLedger, 'record'>;
}

export async function complianceRoutes(app: FastifyInstance, deps: ComplianceRouteDeps): Promise<void> {
  const accounts = deps.accounts ?? { ok: true, config: NO_ACCOUNTS, file: '(none)', missing: true };
  if (!accounts.ok) deps.log?.warn(`compliance: ${accounts.error}; every compliance event is refused until it is fixed`);
  else if (accounts.missing) deps.log?.info(`compliance: no accounts file ${accounts.file}, so compliance findings are refused (README, "Compliance events")`);

  app.post('/v1/events/compliance', {
    config: { role: 'respond' },
    schema: {
      tags: ['compliance'],
      summary: 'Remediate Dome9 / CloudGuard findings (one, a batch, or SNS-wrapped) with their AUTO: bots',
      description: 'The body is JSON, sent as application/json or text/plain (as SNS posts it). Each failed finding with an '
        + '`AUTO: <bot> <params…>` tag starts one remediation workflow whose ID is the finding key; a finding sent again is '
        + 'answered `duplicate` and not remediated twice.',
      body: {
        content: {
          'application/json': { schema: requestSchema(ComplianceEventBody, 'compliance event', { replace: false }) },
          'text/plain': { schema: requestSchema(z.string().describe('the same JSON, as SNS posts it'), 'compliance event', { replace: false }) },
        },
      },
      response: { 200: jsonSchema(z.union([FindingsAnswer, SnsAnswer])), 202: jsonSchema(FindingsAnswer), ...errorResponses(...JSON_BODY_ERRORS) },
    },
  }, async (request, reply) => {
    if (!accounts.ok) {
      throw new ApiError(503, 'not_configured', `the compliance accounts configuration is not valid (${accounts.error}): fix it and restart Docket`);
    }
    const event = parseComplianceEvent(request.body);
    if (!event.ok) throw badRequest(`the compliance event is not valid: ${event.error}`);
    if (event.kind === 'subscription-confirmation') {
      const message = `SNS topic ${event.topicArn} wants to deliver here. Docket does not confirm subscriptions by itself `
        + '(it would have to call out to AWS on the word of an unsigned request): an operator confirms it by opening the '
        + `subscribeUrl once, or with: aws sns confirm-subscription --topic-arn ${event.topicArn} --token <the Token in this message>`;
      deps.log?.warn(`compliance: ${message}; subscribeUrl: ${event.subscribeUrl}`);
      return { kind: event.kind, topicArn: event.topicArn, confirmed: false, message, subscribeUrl: event.subscribeUrl };
    }
    if (event.kind === 'unsubscribe-confirmation') {
      return { kind: event.kind, topicArn: event.topicArn, confirmed: true, message: 'unsubscribed: nothing to do' };
    }
    const bots = deps.registry.list().map((engine) => engine.manifest).filter((manifest) => manifest.kind === 'responder').map((manifest) => manifest.name);
    const requester = request.caller?.kind === 'key' ? request.caller.key.name : 'anonymous';
    const findings: FindingAnswer[] = [];
    for (const [index, finding] of event.findings.entries()) {
      const answer = await remediate(deps, accounts.config, finding, index, bots, requester);
      findings.push(answer);
      if ((answer.result === 'skipped' || answer.result === 'refused') && answer.reason) {
        deps.ledger?.record({ key: answer.key, rule: answer.rule, entity: answer.entity, account: answer.account, result: answer.result, reason: answer.reason });
      }
    }
    const started = findings.filter((answer) => answer.result === 'started').length;
    return reply.status(started > 0 ? 202 : 200).send({ kind: 'findings', started, findings });
  });
}

async function remediate(
  deps: ComplianceRouteDeps,
  config: ComplianceAccounts,
  finding: ComplianceFinding,
  index: number,
  bots: string[],
  requester: string,
): Promise<FindingAnswer> {
  const key = complianceWorkflowId(finding);
  const base = { index, key, rule: finding.rule.name, entity: finding.entity.id, account: finding.account.id };
  const plan = planRemediation(finding, bots);
  if (plan.kind === 'skip') return { ...base, result: 'skipped', reason: plan.reason };
  const choice = accountFor(finding, config.accounts, singleAccountIdOf(config));
  if (!choice.ok) return { ...base, result: 'refused', reason: choice.reason };
  const region = remediationRegion(finding, choice.account);
  const input: ComplianceInput = {
    finding, accountId: choice.accountId, region, actions: plan.actions, env: botEnvironment(choice.account, region), requester,
  };
  const answer = {
    ...base,
    workflowId: key,
    bots: plan.actions.map(({ bot, params, known }) => ({ bot, params, known })),
    unknownBots: plan.actions.filter((action) => !action.known).map((action) => action.bot),
  };
  try {
    // Refused even after the first run closed: a re-sent finding must not remediate twice.
    await deps.temporal.startCompliance(input);
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) {
      return { ...answer, result: 'duplicate', reason: 'this finding was received before and its remediation started then; it is not remediated twice' };
    }
    throw error;
  }
  deps.log?.info(`compliance: finding ${key} from ${requester}: remediating with ${plan.actions.map((action) => action.bot).join(', ')}`);
  return { ...answer, result: 'started' };
}
