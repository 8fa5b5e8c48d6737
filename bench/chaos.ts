/**
 * `npm run bench:chaos [-- --jobs 100 --faults gateway,worker,…|none]`: the full chaos run (test/helpers/chaos.ts)
 * on a production stack of its own (PostgreSQL, the Go-built Temporal server, versitygw, a dockerd of
 * its own, each role a process), every fault by default, dockerd included. Prints the figures the
 * README's reliability section quotes; exits 1 when a promise did not hold. Needs root (PostgreSQL as
 * its own user, a second dockerd) and `bash scripts/provision.sh` done. Never run in CI.
 */
import { ALL_FAULTS, type ChaosFigures, type Fault, runChaos } from '../test/helpers/chaos';

function option(name: string): string | undefined {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

function faultsFrom(value: string | undefined): Fault[] {
  if (!value) return ALL_FAULTS;
  // No fault at all: the load and the checks alone, a quick look at the stack and the checks themselves.
  if (value === 'none') return [];
  const asked = value.split(',').map((one) => one.trim()).filter(Boolean);
  const unknown = asked.filter((one) => !ALL_FAULTS.includes(one as Fault));
  if (unknown.length) throw new Error(`unknown fault ${unknown.join(', ')}: choose from ${ALL_FAULTS.join(', ')}`);
  return asked as Fault[];
}

function print(figures: ChaosFigures): void {
  const rows: Array<[string, number]> = [
    ['faults injected', figures.faultsInjected],
    ['jobs submitted', figures.jobsSubmitted],
    ['jobs accepted', figures.jobsAccepted],
    ['jobs completed (right result)', figures.jobsCompleted],
    ['duplicate responder actions', figures.duplicates],
    ['orphaned blobs', figures.orphans],
    ['workflows whose id the client never learned', figures.workflowsUnknownToClient],
    ['blobs only those workflows reference', figures.blobsOfUnknownWorkflows],
    ['leftover containers / volumes', figures.leftoverContainers + figures.leftoverVolumes],
    ['blobs stored, never started (documented)', figures.documentedLeftoverBlobs],
    ['blobs of engine attempts whose answer was lost (documented)', figures.lostAttemptBlobs],
    ['temporaries of killed uploads (documented)', figures.documentedLeftoverTemporaries],
    ['503 answers / without Retry-After', figures.answers503],
    ['other 5xx answers', figures.serverErrors],
    ['requests that hung', figures.hangs],
    ['uploads cut off / given a job id', figures.cutUploads],
  ];
  const extra = new Map<string, string>([
    ['503 answers / without Retry-After', ` / ${figures.answers503WithoutRetryAfter}`],
    ['uploads cut off / given a job id', ` / ${figures.cutUploadsGivenAnId}`],
  ]);
  for (const [name, value] of rows) console.log(`${name.padEnd(44)} ${value}${extra.get(name) ?? ''}`);
  for (const report of figures.faults) {
    const down = report.readyzDown.length ? `; /readyz named ${report.readyzDown.join(', ')}` : '';
    const answers = report.answersWhileDown.length ? `; answers while down ${report.answersWhileDown.join(', ')}` : '';
    console.log(`  ${report.fault.padEnd(18)} ${report.problems.length ? `PROBLEMS: ${report.problems.join('; ')}` : 'held'}${down}${answers}`);
  }
  if (figures.finalProblems.length) console.log(`at the end: ${figures.finalProblems.join('; ')}`);
  console.log(`the blob check on its own cases: ${figures.blobCheckProblems.length ? `PROBLEMS: ${figures.blobCheckProblems.join('; ')}` : 'reports a planted orphan, not the blobs of a workflow the client never learned of'}`);
}

async function main(): Promise<void> {
  const jobs = Number(option('jobs') ?? 100);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 1000) throw new Error('--jobs takes a whole number from 1 to 1000');
  const faults = faultsFrom(option('faults'));
  const started = performance.now();
  const figures = await runChaos({ jobs, faults, log: (line) => console.log(line) });
  console.log(`\nchaos: ${jobs} jobs, ${faults.length} faults, ${((performance.now() - started) / 60_000).toFixed(1)} min`);
  print(figures);
  const broken = figures.faults.some((report) => report.problems.length) || figures.finalProblems.length > 0 || figures.blobCheckProblems.length > 0;
  process.exitCode = broken ? 1 : 0;
}

main().catch((error) => {
  console.error(`bench:chaos: ${(error as Error).message}`);
  process.exit(1);
});
