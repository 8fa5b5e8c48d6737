/**
 * 200 jobs of a trivial engine through Docket at concurrency 4, beside 200 raw `docker run`s of the
 * same image at parallelism 4, in the same script; prints both wall times and their ratio (target
 * <= 1.3). Usage: npm run bench:engines [-- <jobs>]
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../infra/log';
import { loadConfig } from '../core/config';
import { TaskInput, type TaskReport } from '../core/investigation';
import { startSystem } from '../system/start-system';
import { freePort, startDevServer } from '../system/temporal-dev';
import { enginesFolder } from '../test/helpers/fixtures';
import { exec, reportFigures, timed } from './lib';
import { WorkflowType } from '../contract/messages';

const IMAGE = 'docket/base:bookworm';
const PARALLEL = 4;

async function main(): Promise<void> {
  const jobs = Number(process.argv[2] ?? 200);
  const dir = mkdtempSync(join(tmpdir(), 'docket-bench-'));
  const temporal = await startDevServer({ port: await freePort(), logFile: join(dir, 'temporal.log') });
  const engines = enginesFolder([{
    name: 'trivial', kind: 'analyzer', image: IMAGE, accepts: ['other'], protocol: 'stdout',
    command: ['/bin/echo', 'ok'], concurrency: PARALLEL, timeout: '60s', cache: 0,
  }]);
  // No schedules: the repository's would be reconciled against an engine folder that lacks their engines.
  mkdirSync(join(dir, 'schedules'));
  const config = loadConfig({
    TEMPORAL_ADDRESS: temporal.address, DOCKET_DATA_DIR: join(dir, 'data'), DOCKET_ENGINES_DIR: engines, DOCKET_PORT: '0',
    DOCKET_SCHEDULES_DIR: join(dir, 'schedules'),
  });
  const system = await startSystem({ config, log: createLogger('warn'), gateway: false });
  try {
    const warm = async (index: number) => runTask(system.client, `warm-${index}`);
    await timed(PARALLEL, PARALLEL, warm);
    await exec('docker', ['run', '--rm', '--network', 'none', IMAGE, '/bin/echo', 'ok']);

    const raw = await timed(jobs, PARALLEL, async () => { await exec('docker', ['run', '--rm', '--network', 'none', IMAGE, '/bin/echo', 'ok']); });
    const batch = randomBytes(3).toString('hex');
    // Four workflows per container slot are open at a time, so the engine worker's concurrency (4) is what
    // bounds the containers and its queue never runs dry; starting all 200 at once made starts on a busy
    // machine run past the client's 10 s call deadline (system/temporal-deadline.ts).
    const docket = await timed(jobs, PARALLEL * 4, (index) => runTask(system.client, `${batch}-${index}`));

    console.log(`engines bench: ${jobs} jobs, parallelism ${PARALLEL}, image ${IMAGE}`);
    console.log(`  raw docker run : ${(raw / 1000).toFixed(1)} s  (${(raw / jobs).toFixed(0)} ms/job)`);
    console.log(`  through Docket : ${(docket / 1000).toFixed(1)} s  (${(docket / jobs).toFixed(0)} ms/job)`);
    console.log(`  ratio Docket / raw = ${(docket / raw).toFixed(2)} (target <= 1.3)`);
    reportFigures('engines', [{
      figure: `${jobs} trivial engine jobs, ${PARALLEL} at once (wall time)`,
      docket: `${(docket / 1000).toFixed(1)} s`,
      baseline: `docker run --rm --network none, ${PARALLEL} at once: ${(raw / 1000).toFixed(1)} s`,
      ratio: docket / raw,
      goal: '≤ 1.3',
    }]);
  } catch (error) {
    // Said before the system stops: a stop with workflows still being awaited can end the process first.
    console.error(`engines bench: ${(error as Error).stack ?? error}`);
    process.exitCode = 1;
  } finally {
    await system.stop();
    await temporal.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runTask(client: Awaited<ReturnType<typeof startSystem>>['client'], id: string): Promise<void> {
  const report = await client.workflow.execute(WorkflowType.task, {
    taskQueue: 'docket', workflowId: `bench-${id}`, args: [TaskInput.parse({ engine: 'trivial', source: 'cli' })],
  }) as TaskReport;
  if (report.status !== 'Success') throw new Error(`job ${id} failed: ${report.report?.errorMessage ?? report.errors.join('; ')}`);
}

main().catch((error) => {
  console.error(`engines bench: ${(error as Error).message}`);
  process.exit(1);
});
