import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { DocketClient, ListedWorkflow } from '../contract/client';
import { statusQuery, WorkflowType } from '../contract/messages';
import type { ComplianceReport } from '../core/compliance';
import type { EngineReport, InvestigationReport, ResponseRecord, TaskReport } from '../core/investigation';
import {
  engineStats, FAILURE_CLASSES, failureClasses, JOB_OUTCOMES, type ReportedJob, STATS_WINDOWS, statsRange, verdictBuckets, VERDICT_STACK,
} from '../core/stats';
import { errorResponses, jsonSchema, requestSchema } from './schemas';
import { withTimeout } from './timeout';

/**
 * `GET /v1/stats`: the console dashboard's numbers over a window, from Temporal alone. Investigations
 * come from visibility (start time, status, the DocketVerdict search attribute); engine jobs, their
 * run times and their failures from the reports of the workflows that closed in the window (the
 * Prometheus counters on /metrics count since their process started, and live in the engines
 * role's process when roles run apart, so they cannot answer "over the last 7 days"); approvals
 * waiting from the running workflows' status query.
 */

/** Investigations listed for the per-bucket chart; past this the chart says it counted only these. */
const MAX_LISTED = 5000;
/** Closed workflows whose reports are read for engine jobs; the newest first. */
const MAX_REPORTS = 300;
/** Running workflows asked for their pending approvals. */
const MAX_WAITING = 100;
/** Reports read, and status queries asked, at once. */
const PARALLEL = 4;
/** A status query needs a worker; without one the approvals list says so rather than waiting. */
const QUERY_TIMEOUT_MS = 3000;

const StatsQuery = z.object({
  window: z.enum(STATS_WINDOWS).default('7d').describe('how far back: 24h (per hour), 7d or 30d (per day)'),
});

const count = z.number().int();
const Verdicts = z.object(Object.fromEntries(VERDICT_STACK.map((verdict) => [verdict, count])) as Record<(typeof VERDICT_STACK)[number], typeof count>);
const Outcomes = z.object(Object.fromEntries(JOB_OUTCOMES.map((outcome) => [outcome, count])) as Record<(typeof JOB_OUTCOMES)[number], typeof count>);

const StatsBody = z.object({
  window: z.enum(STATS_WINDOWS),
  from: z.string(),
  to: z.string(),
  bucket: z.enum(['hour', 'day']),
  investigations: z.object({
    total: count.describe('investigations started in the window (a visibility count)'),
    counted: count.describe('how many of them the buckets hold; fewer than total when more than 5000 started'),
    byStatus: z.record(z.string(), count).describe('Temporal execution status → investigations'),
    buckets: z.array(z.object({ start: z.string(), counts: Verdicts })).describe('investigations by the bucket they started in, by verdict (`none`: no verdict yet, or it failed)'),
  }),
  engines: z.object({
    reportsRead: count.describe('closed investigations, tasks and compliance runs whose engine jobs are counted'),
    reportsLeftOut: count.describe('closed in the window but not read: past the 300 newest, or unreadable'),
    jobs: z.array(z.object({
      engine: z.string(),
      outcomes: Outcomes,
      cached: count.describe('results reused from the cache (counted in outcomes, not in run times)'),
      medianMs: z.number().nullable(),
      p95Ms: z.number().nullable(),
      recent: z.array(z.object({
        workflowId: z.string(), status: z.enum(JOB_OUTCOMES), finishedAt: z.string(), durationMs: z.number().nullable(), cached: z.boolean(), summary: z.string(),
      })).describe('the newest jobs first'),
    })),
  }),
  approvals: z.object({
    waiting: z.array(z.object({
      workflowId: z.string(),
      workflowType: z.string(),
      responseId: z.string(),
      responder: z.string(),
      subject: z.string().describe('what the response would act on'),
      rule: z.string(),
      since: z.string().describe("the workflow's start: the approval has waited at most this long"),
      expiresAt: z.string().optional(),
    })),
    unanswered: count.describe('running workflows that did not answer the status query in time (no worker?)'),
  }),
  failures: z.array(z.object({ class: z.enum(FAILURE_CLASSES), count })),
});
type StatsBody = z.infer<typeof StatsBody>;

/** `work` over `items`, at most `limit` at once; results in the items' order. */
async function inTurn<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

/** The engine reports a closed workflow's result holds, whichever workflow it was. */
function reportsOf(workflow: ListedWorkflow, result: unknown): EngineReport[] {
  if (!result || typeof result !== 'object') return [];
  if (workflow.type === WorkflowType.investigation) {
    const report = result as Partial<InvestigationReport>;
    return [...(report.jobs ?? []), ...(report.responses ?? []).flatMap((response) => (response.report ? [response.report] : []))];
  }
  if (workflow.type === WorkflowType.task) {
    const report = (result as Partial<TaskReport>).report;
    return report ? [report] : [];
  }
  if (workflow.type === WorkflowType.compliance) {
    return ((result as Partial<ComplianceReport>).bots ?? []).flatMap((bot) => (bot.report ? [bot.report] : []));
  }
  return [];
}

function subjectOf(response: ResponseRecord): string {
  return `${response.observable.type} ${response.observable.data}`;
}

export async function computeStats(temporal: DocketClient, window: (typeof STATS_WINDOWS)[number], now = new Date()): Promise<StatsBody> {
  const range = statsRange(window, now);
  const started = { types: [WorkflowType.investigation], startedSince: range.from };
  const closed = { types: [WorkflowType.investigation, WorkflowType.task, WorkflowType.compliance], status: 'Completed' as const, closedSince: range.from };
  const [total, listed, reportable, closedTotal, running] = await Promise.all([
    temporal.countWorkflows(started),
    temporal.listWorkflows(started, MAX_LISTED),
    temporal.listWorkflows(closed, MAX_REPORTS),
    temporal.countWorkflows(closed),
    temporal.listWorkflows({ types: [WorkflowType.investigation, WorkflowType.compliance], status: 'Running' }, MAX_WAITING),
  ]);
  const runs = listed.workflows;

  const byStatus: Record<string, number> = {};
  for (const run of runs) byStatus[run.status] = (byStatus[run.status] ?? 0) + 1;

  let read = 0;
  const jobs: ReportedJob[] = (await inTurn(reportable.workflows, PARALLEL, async (workflow) => {
    try {
      const reports = reportsOf(workflow, await temporal.closedResult(workflow.id, workflow.runId));
      read += 1;
      return reports.map((report) => ({ workflowId: workflow.id, report }));
    } catch {
      return [];
    }
  })).flat();

  // An investigation asks for approval only in its responding phase (its memo says which); a compliance run may at any bot.
  const asking = running.workflows.filter((workflow) => workflow.type !== WorkflowType.investigation || workflow.memo.phase === 'responding');
  let unanswered = 0;
  const waiting = (await inTurn(asking, PARALLEL, async (workflow) => {
    try {
      const status = await withTimeout(temporal.query(workflow.id, statusQuery), QUERY_TIMEOUT_MS);
      return status.responses.filter((response) => response.approval.state === 'pending').map((response) => ({
        workflowId: workflow.id,
        workflowType: workflow.type,
        responseId: response.id,
        responder: response.responder,
        subject: subjectOf(response),
        rule: response.rule,
        since: workflow.startedAt ?? range.to.toISOString(),
        expiresAt: response.approval.expiresAt,
      }));
    } catch {
      unanswered += 1;
      return [];
    }
  })).flat().sort((a, b) => Date.parse(a.since) - Date.parse(b.since));

  return {
    window,
    from: range.from.toISOString(),
    to: range.to.toISOString(),
    bucket: range.bucket,
    investigations: { total, counted: runs.length, byStatus, buckets: verdictBuckets(range, runs) },
    engines: { reportsRead: read, reportsLeftOut: Math.max(0, closedTotal - read), jobs: engineStats(jobs) },
    approvals: { waiting, unanswered },
    failures: failureClasses(jobs, runs),
  };
}

export async function statsRoutes(app: FastifyInstance, deps: { temporal: DocketClient }): Promise<void> {
  app.get<{ Querystring: z.infer<typeof StatsQuery> }>('/v1/stats', {
    config: { role: 'read' },
    schema: {
      tags: ['operations'],
      summary: 'What happened over a window: investigations by verdict, engine jobs and run times, approvals waiting, failures by class',
      querystring: requestSchema(StatsQuery, 'query'),
      response: { 200: jsonSchema(StatsBody), ...errorResponses(400) },
    },
  }, (request) => computeStats(deps.temporal, request.query.window));
}
