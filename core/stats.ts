import type { EngineReport, TaxonomyLevel } from './investigation';

/**
 * The dashboard's numbers over a window, computed from what Temporal keeps (visibility and the
 * reports of closed workflows). Pure, so the gateway route only gathers and this only counts.
 */

export const STATS_WINDOWS = ['24h', '7d', '30d'] as const;
export type StatsWindow = (typeof STATS_WINDOWS)[number];

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const WINDOW_MS: Record<StatsWindow, number> = { '24h': DAY_MS, '7d': 7 * DAY_MS, '30d': 30 * DAY_MS };

/** A verdict bar's stack: the four taxonomy levels, and `none` for investigations without one yet (running, failed). */
export const VERDICT_STACK = ['malicious', 'suspicious', 'safe', 'info', 'none'] as const;
export type VerdictOrNone = (typeof VERDICT_STACK)[number];

export const JOB_OUTCOMES = ['success', 'failure', 'timeout', 'error'] as const;
export type JobOutcome = (typeof JOB_OUTCOMES)[number];

/** Where a failure came from, named as an analyst acts on it. */
export const FAILURE_CLASSES = [
  'engine failure', 'engine timeout', 'image missing', 'infrastructure error',
  'investigation failed', 'investigation timed out', 'investigation terminated',
] as const;
export type FailureClass = (typeof FAILURE_CLASSES)[number];

export interface StatsRange {
  from: Date;
  to: Date;
  /** 24 h is drawn per hour, longer windows per (UTC) day. */
  bucket: 'hour' | 'day';
  /** The start of every bucket, oldest first; the first may begin before `from`. */
  starts: Date[];
}

export function statsRange(window: StatsWindow, now: Date): StatsRange {
  const to = now;
  const from = new Date(now.getTime() - WINDOW_MS[window]);
  const bucket = window === '24h' ? 'hour' : 'day';
  const size = bucket === 'hour' ? HOUR_MS : DAY_MS;
  const starts: Date[] = [];
  for (let start = Math.floor(from.getTime() / size) * size; start <= to.getTime(); start += size) starts.push(new Date(start));
  return { from, to, bucket, starts };
}

/** One investigation as visibility lists it. */
export interface ListedRun {
  startedAt?: string;
  /** Temporal's execution status name: Running, Completed, Failed, Canceled, Terminated, TimedOut. */
  status: string;
  verdict?: string;
}

export interface VerdictBucket {
  start: string;
  counts: Record<VerdictOrNone, number>;
}

const emptyVerdicts = (): Record<VerdictOrNone, number> => ({ malicious: 0, suspicious: 0, safe: 0, info: 0, none: 0 });
const LEVELS = new Set<string>(['malicious', 'suspicious', 'safe', 'info'] satisfies TaxonomyLevel[]);

/** Investigations per bucket of their start, stacked by verdict. */
export function verdictBuckets(range: StatsRange, runs: ListedRun[]): VerdictBucket[] {
  const size = range.bucket === 'hour' ? HOUR_MS : DAY_MS;
  const buckets = range.starts.map((start) => ({ start: start.toISOString(), counts: emptyVerdicts() }));
  const first = range.starts[0]?.getTime() ?? 0;
  for (const run of runs) {
    const started = Date.parse(run.startedAt ?? '');
    if (!Number.isFinite(started)) continue;
    const bucket = buckets[Math.floor((started - first) / size)];
    if (!bucket) continue;
    const verdict = run.verdict && LEVELS.has(run.verdict) ? (run.verdict as VerdictOrNone) : 'none';
    bucket.counts[verdict] += 1;
  }
  return buckets;
}

/** One engine job as read from a closed workflow's report, with the workflow that ran it. */
export interface ReportedJob {
  workflowId: string;
  report: Pick<EngineReport, 'engine' | 'status' | 'startedAt' | 'finishedAt' | 'cached' | 'errorMessage' | 'summary'>;
}

export interface RecentJob {
  workflowId: string;
  status: JobOutcome;
  finishedAt: string;
  durationMs: number | null;
  cached: boolean;
  summary: string;
}

export interface EngineStats {
  engine: string;
  outcomes: Record<JobOutcome, number>;
  /** Results reused from the cache: counted in outcomes, left out of run times (no container ran), as are errors. */
  cached: number;
  /** Median and 95th percentile (nearest rank) of the jobs that ran a container; null when none did. */
  medianMs: number | null;
  p95Ms: number | null;
  /** The newest jobs first. */
  recent: RecentJob[];
}

const RECENT_PER_ENGINE = 5;

function durationOf(report: ReportedJob['report']): number | null {
  const ms = Date.parse(report.finishedAt) - Date.parse(report.startedAt);
  return Number.isFinite(ms) && ms >= 0 ? ms : null;
}

/** The nearest-rank percentile of sorted values: the smallest value at or above `p` of them. */
export function percentile(sorted: number[], p: number): number | null {
  if (!sorted.length) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1];
}

export function engineStats(jobs: ReportedJob[]): EngineStats[] {
  const byEngine = new Map<string, ReportedJob[]>();
  for (const job of jobs) {
    const list = byEngine.get(job.report.engine) ?? [];
    list.push(job);
    byEngine.set(job.report.engine, list);
  }
  return [...byEngine.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([engine, list]) => {
    const outcomes: Record<JobOutcome, number> = { success: 0, failure: 0, timeout: 0, error: 0 };
    const times: number[] = [];
    let cached = 0;
    for (const { report } of list) {
      if ((JOB_OUTCOMES as readonly string[]).includes(report.status)) outcomes[report.status] += 1;
      if (report.cached) {
        cached += 1;
        continue;
      }
      // An `error` is an infrastructure fault (image missing, Docker unreachable): no container ran to time.
      if (report.status === 'error') continue;
      const ms = durationOf(report);
      if (ms !== null) times.push(ms);
    }
    times.sort((a, b) => a - b);
    const recent = [...list]
      .sort((a, b) => Date.parse(b.report.finishedAt) - Date.parse(a.report.finishedAt))
      .slice(0, RECENT_PER_ENGINE)
      .map(({ workflowId, report }): RecentJob => ({
        workflowId, status: report.status, finishedAt: report.finishedAt, durationMs: durationOf(report), cached: Boolean(report.cached), summary: report.summary,
      }));
    return { engine, outcomes, cached, medianMs: percentile(times, 50), p95Ms: percentile(times, 95), recent };
  });
}

/** The message runEngine's missing-image failure carries (activities/errors.ts). */
const IMAGE_MISSING = /not found on the Docker host/;

/** Failures counted by class: engine jobs that did not succeed, and workflows that ended without a report. */
export function failureClasses(jobs: ReportedJob[], runs: ListedRun[]): Array<{ class: FailureClass; count: number }> {
  const counts = new Map<FailureClass, number>(FAILURE_CLASSES.map((name) => [name, 0]));
  const add = (name: FailureClass) => counts.set(name, (counts.get(name) ?? 0) + 1);
  for (const { report } of jobs) {
    if (report.status === 'failure') add('engine failure');
    else if (report.status === 'timeout') add('engine timeout');
    else if (report.status === 'error') add(IMAGE_MISSING.test(report.errorMessage ?? '') ? 'image missing' : 'infrastructure error');
  }
  for (const run of runs) {
    if (run.status === 'Failed') add('investigation failed');
    else if (run.status === 'TimedOut') add('investigation timed out');
    else if (run.status === 'Terminated') add('investigation terminated');
  }
  return FAILURE_CLASSES.map((name) => ({ class: name, count: counts.get(name) ?? 0 }));
}
