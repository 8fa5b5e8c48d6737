import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { DocketClient } from '../contract/client';
import { WorkflowType } from '../contract/messages';
import type { ComplianceReport } from '../core/compliance';
import { STATS_WINDOWS, statsRange } from '../core/stats';
import { errorResponses, jsonSchema, requestSchema } from './schemas';

/**
 * `GET /v1/compliance/findings`: the console's compliance page. Findings that started a remediation
 * are `compliance` workflows (their ID is the finding key), listed through visibility with their
 * reports; findings answered `skipped` or `refused` start nothing in Temporal, so the gateway that
 * answered them keeps the newest in memory (FindingLedger), and says so.
 */

const MAX_FINDINGS = 200;
const PARALLEL = 4;
/** Skipped and refused findings this gateway remembers; the oldest go first. */
const LEDGER_SIZE = 200;

export interface UnstartedFinding {
  at: string;
  key: string;
  rule: string;
  entity: string;
  account: string;
  result: 'skipped' | 'refused';
  reason: string;
}

/** The findings this gateway answered without starting a remediation, newest last. */
export class FindingLedger {
  private readonly entries: UnstartedFinding[] = [];
  readonly since = new Date().toISOString();

  record(finding: Omit<UnstartedFinding, 'at'>, at = new Date()): void {
    this.entries.push({ ...finding, at: at.toISOString() });
    if (this.entries.length > LEDGER_SIZE) this.entries.splice(0, this.entries.length - LEDGER_SIZE);
  }

  after(from: Date): UnstartedFinding[] {
    return this.entries.filter((entry) => Date.parse(entry.at) >= from.getTime()).reverse();
  }
}

const FindingsQuery = z.object({
  window: z.enum(STATS_WINDOWS).default('7d').describe('findings received in the last 24h, 7d or 30d'),
});

const BotRow = z.object({ bot: z.string(), params: z.array(z.string()), outcome: z.enum(['passed', 'failed']), message: z.string() });

const FindingsBody = z.object({
  window: z.enum(STATS_WINDOWS),
  from: z.string(),
  remediations: z.array(z.object({
    workflowId: z.string().describe('the finding key'),
    status: z.string().describe('Temporal execution status'),
    startedAt: z.string().optional(),
    closedAt: z.string().optional(),
    rule: z.string().optional(),
    entity: z.object({ id: z.string(), name: z.string(), type: z.string().nullable().optional() }).optional(),
    accountId: z.string().optional(),
    region: z.string().optional(),
    outcome: z.enum(['Success', 'Fail']).optional().describe('once completed: Success when every bot passed'),
    bots: z.array(BotRow),
  })).describe('findings that started a remediation, newest first'),
  more: z.boolean().describe('more than 200 remediations started in the window; the newest are listed'),
  byBot: z.array(z.object({ bot: z.string(), passed: z.number().int(), failed: z.number().int() })),
  unstarted: z.object({
    since: z.string().describe('this gateway remembers skipped and refused findings from here (its start), the newest 200'),
    findings: z.array(z.object({
      at: z.string(), key: z.string(), rule: z.string(), entity: z.string(), account: z.string(), result: z.enum(['skipped', 'refused']), reason: z.string(),
    })),
  }),
});
type FindingsBody = z.infer<typeof FindingsBody>;

export async function listFindings(temporal: DocketClient, ledger: FindingLedger, window: (typeof STATS_WINDOWS)[number], now = new Date()): Promise<FindingsBody> {
  const { from } = statsRange(window, now);
  const { workflows, more } = await temporal.listWorkflows({ types: [WorkflowType.compliance], startedSince: from }, MAX_FINDINGS);
  const remediations: FindingsBody['remediations'] = [];
  let next = 0;
  const lane = async () => {
    while (next < workflows.length) {
      const index = next++;
      const workflow = workflows[index];
      const row: FindingsBody['remediations'][number] = {
        workflowId: workflow.id, status: workflow.status, startedAt: workflow.startedAt, closedAt: workflow.closedAt, bots: [],
      };
      if (workflow.status === 'Completed') {
        const report = await temporal.closedResult<ComplianceReport>(workflow.id, workflow.runId).catch(() => undefined);
        if (report) {
          Object.assign(row, {
            rule: report.rule, entity: report.entity, accountId: report.accountId, region: report.region, outcome: report.status,
            bots: report.bots.map(({ bot, params, outcome, message }) => ({ bot, params, outcome, message })),
          });
        }
      }
      remediations[index] = row;
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, workflows.length) }, lane));

  const byBot = new Map<string, { bot: string; passed: number; failed: number }>();
  for (const bot of remediations.flatMap((row) => row.bots)) {
    const tally = byBot.get(bot.bot) ?? { bot: bot.bot, passed: 0, failed: 0 };
    tally[bot.outcome] += 1;
    byBot.set(bot.bot, tally);
  }
  return {
    window,
    from: from.toISOString(),
    remediations,
    more,
    byBot: [...byBot.values()].sort((a, b) => a.bot.localeCompare(b.bot)),
    unstarted: { since: ledger.since, findings: ledger.after(from) },
  };
}

export async function findingsRoutes(app: FastifyInstance, deps: { temporal: DocketClient; ledger: FindingLedger }): Promise<void> {
  app.get<{ Querystring: z.infer<typeof FindingsQuery> }>('/v1/compliance/findings', {
    config: { role: 'read' },
    schema: {
      tags: ['compliance'],
      summary: 'Compliance findings received: remediations and each bot\'s outcome, and the findings skipped or refused with the reason',
      querystring: requestSchema(FindingsQuery, 'query'),
      response: { 200: jsonSchema(FindingsBody), ...errorResponses(400) },
    },
  }, (request) => listFindings(deps.temporal, deps.ledger, request.query.window));
}
