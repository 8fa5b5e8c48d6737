/**
 * Hostile engines in the chaos run: the confinement suite's misbehaving engine (test/engines/hostile)
 * as real engines of the chaos stack, each mode its own engine served by one `engines` process, sent
 * the way a user would (`POST /v1/investigations` naming the engine). Each mode has one right outcome,
 * the one test/integration/confinement.test.ts expects of it, and a fault must not change it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ensureImage } from '../../scripts/lib/images';
import { ROOT } from './system';

export const HOSTILE_IMAGE = 'docket/test-hostile:1';

export type HostileMode = 'memory' | 'loop' | 'fill' | 'forkbomb' | 'garbage';

/** What the investigation's report must say: the report's status and its one engine job's. */
interface Expected {
  report: 'Success' | 'Fail';
  status: 'success' | 'failure' | 'timeout';
  /** The job's exact errorMessage (none for a success). */
  message?: string;
  truncated: boolean;
  /** A check of the job's summary (the first bytes of its result), answering what is wrong or undefined. */
  summary?: (summary: string) => string | undefined;
}

interface HostileCase {
  /** Manifest fields beyond the ones every hostile engine shares. */
  manifest: Record<string, unknown>;
  expected: Expected;
}

const GARBAGE = 'this is {not json\n';

/** The message JSON.parse gives for the garbage output.json, from the same Node the workers run on. */
function garbageParseError(): string {
  try {
    JSON.parse(GARBAGE);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('the garbage output.json parsed as JSON');
}

/** The pids limit of the fork bomb: it must get some children and be stopped below the limit. */
const FORKBOMB_PIDS = 32;

const CASES: Record<HostileMode, HostileCase> = {
  memory: {
    manifest: { protocol: 'stdout', limits: { memory: '64m' } },
    expected: { report: 'Fail', status: 'failure', truncated: false, message: 'engine hostile-memory was killed: out of memory (limit 64.0 MiB)' },
  },
  loop: {
    // A small CPU share: each of its attempts spins until the timeout, on a machine others share.
    manifest: { protocol: 'stdout', timeout: '2s', limits: { cpus: 0.25 } },
    expected: { report: 'Fail', status: 'timeout', truncated: false, message: 'engine hostile-loop ran past its timeout of 2s and was killed' },
  },
  fill: {
    manifest: { protocol: 'cortex', limits: { output: '4m', tmp: '8m' } },
    expected: { report: 'Fail', status: 'failure', truncated: true, message: 'engine hostile-fill wrote past its output limit of 4.0 MiB and was stopped' },
  },
  forkbomb: {
    manifest: { protocol: 'stdout', limits: { pids: FORKBOMB_PIDS } },
    expected: {
      report: 'Success', status: 'success', truncated: false,
      summary: (summary) => {
        const spawned = Number(/^spawned: (\d+)$/.exec(summary.trim())?.[1]);
        return spawned > 5 && spawned < FORKBOMB_PIDS ? undefined : `the fork bomb's summary ${JSON.stringify(summary)} is not "spawned: N" with 5 < N < ${FORKBOMB_PIDS}`;
      },
    },
  },
  garbage: {
    manifest: { protocol: 'cortex' },
    expected: {
      report: 'Fail', status: 'failure', truncated: false,
      message: `engine hostile-garbage wrote an output.json Docket cannot read (${garbageParseError()}); it starts: ${JSON.stringify(GARBAGE)}`,
    },
  },
};

export const HOSTILE_MODES = Object.keys(CASES) as HostileMode[];
export const HOSTILE_ENGINES = HOSTILE_MODES.map((mode) => `hostile-${mode}`);

/**
 * Builds the hostile image on the machine's Docker (rebuilt every time, as the confinement suite does:
 * Docker's cache makes it quick, and a tag built before a mode was added never runs).
 */
export async function buildHostileImage(): Promise<void> {
  await ensureImage(HOSTILE_IMAGE, join(ROOT, 'test/engines/hostile'), { force: true });
}

/**
 * One manifest per mode in the chaos stack's engines folder. They accept only `other`, so the URL
 * investigations of the rest of the mix never reach them; retries as the sample engines have, so a
 * fault during an attempt is retried rather than taken for the engine's outcome.
 */
export function writeHostileManifests(dir: string): void {
  for (const mode of HOSTILE_MODES) {
    const name = `hostile-${mode}`;
    const { limits, ...rest } = CASES[mode].manifest as { limits?: Record<string, unknown> };
    const manifest = {
      name, kind: 'analyzer', description: `the confinement suite's hostile engine, mode ${mode}`, image: HOSTILE_IMAGE,
      accepts: ['other'], command: ['/hostile', mode], timeout: '60s', retries: 2, concurrency: 2, network: 'none',
      ...rest, limits: { ...limits },
    };
    mkdirSync(join(dir, name), { recursive: true });
    writeFileSync(join(dir, name, 'engine.yaml'), stringify(manifest));
  }
}

/** The mode of the `nth` hostile job: the modes in turn. */
export function hostileMode(nth: number): HostileMode {
  return HOSTILE_MODES[nth % HOSTILE_MODES.length];
}

/** The investigation a user sends to run one hostile engine on `data` (unique per job, so no cached result answers it). */
export function hostileInvestigation(mode: HostileMode, data: string): Record<string, unknown> {
  return { observables: [{ type: 'other', data }], engines: [`hostile-${mode}`] };
}

/** Whether a completed investigation's report is the mode's one right outcome: what is wrong, or undefined. */
export function judgeHostile(mode: HostileMode, report: Record<string, any>): string | undefined {
  const engine = `hostile-${mode}`;
  const { expected } = CASES[mode];
  const jobs = (report.jobs ?? []) as Array<Record<string, any>>;
  if (jobs.length !== 1 || jobs[0].engine !== engine) return `expected one job of ${engine}, got ${jobs.map((one) => one.engine).join(', ') || 'none'}`;
  const [job] = jobs;
  // Each job's data is its own, so a cached answer can only be this job's own earlier run: an attempt
  // that cached its success before its answer to Temporal was lost, found by the retry. That is right.
  if (job.cached && job.status !== 'success') return `${engine} answered a ${job.status} from the result cache, which keeps only successes`;
  if (job.status !== expected.status) return `${engine} ended ${job.status}, not ${expected.status} (${job.errorMessage ?? job.summary})`;
  if ((job.errorMessage ?? undefined) !== expected.message) return `${engine} said ${JSON.stringify(job.errorMessage)}, not ${JSON.stringify(expected.message)}`;
  if (Boolean(job.truncated) !== expected.truncated) return `${engine}'s report says truncated: ${job.truncated}, not ${expected.truncated}`;
  const summary = expected.summary?.(String(job.summary ?? ''));
  if (summary) return summary;
  if (report.status !== expected.report) return `its report says ${report.status}, not ${expected.report}`;
  return undefined;
}
