/**
 * How fast the gateway acks Slack: 200 signed `/docket analyze …` slash commands, 20 at a time, to a
 * real gateway whose listeners go on to start real investigations on a Temporal dev server started
 * here, which a real main worker then runs (engine workers are off, so the engine jobs wait in their
 * queues and no container runs). Docket runs as it is deployed, the gateway and the worker each in
 * its own process (scripts/run.ts), so the load generator and the fake Slack in this process do not
 * share their event loop. Slack gives an app 3 s to ack; Docket aims for p99 under 100 ms. The
 * baseline, measured in the same run, is the gateway's floor: `GET /healthz` at the same
 * parallelism. Loopback only.
 *
 *   npm run bench:slack
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { freePort, startDevServer } from '../system/temporal-dev';
import { deliver, FakeSlack, slashCommand } from '../test/helpers/fake-slack';
import { percentile, reportFigures, timed } from './lib';

const COMMANDS = 200;
const PARALLEL = 20;
const SLACK_BUDGET_MS = 3_000;
const TARGET_P99_MS = 100;
const STARTED_WAIT_MS = 120_000;
const WARM_UP = 40;
const START_WAIT_MS = 180_000;

async function main(): Promise<void> {
  const root = resolve(__dirname, '..');
  const dir = mkdtempSync(join(tmpdir(), 'docket-bench-slack-'));
  const secret = randomBytes(16).toString('hex');
  const botToken = `xoxb-bench-${randomBytes(6).toString('hex')}`;
  const slack = await new FakeSlack(botToken).start();
  const temporal = await startDevServer({ port: await freePort(), logFile: join(dir, 'temporal.log') });
  const children: ChildProcess[] = [];
  let client: Client | undefined;
  try {
    const port = await freePort();
    const env = {
      ...process.env,
      TEMPORAL_ADDRESS: temporal.address,
      DOCKET_DATA_DIR: join(dir, 'data'),
      DOCKET_ENGINES_DIR: join(root, 'engines'),
      DOCKET_SCHEDULES_DIR: join(dir, 'no-schedules'),
      DOCKET_PORT: String(port),
      DOCKET_HOST: '127.0.0.1',
      DOCKET_LOG_LEVEL: 'info',
      SLACK_BOT_TOKEN: botToken,
      SLACK_SIGNING_SECRET: secret,
      DOCKET_SLACK_API_URL: slack.apiUrl,
    };
    process.stdout.write('starting Temporal, the main worker (it bundles the workflows) and the gateway…\n');
    children.push(await startRole('worker', env, root), await startRole('gateway', env, root));
    const url = `http://127.0.0.1:${port}`;
    const connection = await Connection.connect({ address: temporal.address });
    client = new Client({ connection });

    // Warm-up, not counted: the first requests through a fresh process pay for compiling the code paths.
    await timed(WARM_UP, PARALLEL, async () => {
      await deliver(url, slashCommand(slack, 'CWARM001', 'UBENCH01', 'help'), { secret });
      await (await fetch(`${url}/healthz`)).text();
    });

    const floor: number[] = [];
    await timed(COMMANDS, PARALLEL, async () => {
      const started = performance.now();
      await (await fetch(`${url}/healthz`)).text();
      floor.push(performance.now() - started);
    });

    const acks: number[] = [];
    const failures: string[] = [];
    const triggers: string[] = [];
    const wall = await timed(COMMANDS, PARALLEL, async (index) => {
      const command = slashCommand(slack, 'CBENCH01', 'UBENCH01', `analyze 198.51.100.${(index % 250) + 1} seen at hxxps://bench-${index}[.]example/login`);
      triggers.push((command as { form: Record<string, string> }).form.trigger_id);
      const answer = await deliver(url, command, { secret });
      acks.push(answer.ms);
      if (answer.status !== 200) failures.push(`${answer.status} ${answer.text.slice(0, 120)}`);
    });

    // Each ack was followed by a posted message and a started investigation; wait for all of them.
    const deadline = Date.now() + STARTED_WAIT_MS;
    let started = 0;
    while (Date.now() < deadline) {
      started = slack.callsTo('chat.postMessage').filter((call) => call.args.channel === 'CBENCH01').length;
      if (started >= COMMANDS) break;
      await new Promise((resolvePoll) => setTimeout(resolvePoll, 250));
    }
    let running = 0;
    for (const trigger of triggers) {
      try {
        await client.workflow.getHandle(`slack-${trigger}`).describe();
        running += 1;
      } catch {
        // Counted as missing below.
      }
    }

    const sorted = [...acks].sort((a, b) => a - b);
    const floorSorted = [...floor].sort((a, b) => a - b);
    const p50 = percentile(sorted, 50);
    const p99 = percentile(sorted, 99);
    const ms = (value: number) => `${value.toFixed(1)} ms`;
    const lines = [
      `slack ack latency: ${COMMANDS} signed /docket analyze commands, ${PARALLEL} at a time, in ${(wall / 1000).toFixed(2)} s`,
      `  ack   p50 ${ms(p50)}  p99 ${ms(p99)}  max ${ms(sorted[sorted.length - 1])}`,
      `  floor p50 ${ms(percentile(floorSorted, 50))}  p99 ${ms(percentile(floorSorted, 99))}  (GET /healthz, same parallelism)`,
      `  p99 / Slack's 3 s budget: ${(p99 / SLACK_BUDGET_MS).toFixed(4)} (${((p99 / SLACK_BUDGET_MS) * 100).toFixed(2)}%)`,
      `  p50 / Slack's 3 s budget: ${(p50 / SLACK_BUDGET_MS).toFixed(4)}`,
      `  p99 / floor p99: ${(p99 / percentile(floorSorted, 99)).toFixed(2)}x; target p99 < ${TARGET_P99_MS} ms: ${p99 < TARGET_P99_MS ? 'met' : 'MISSED'}`,
      `  non-200 acks: ${failures.length}${failures.length ? ` (${failures.slice(0, 3).join('; ')})` : ''}`,
      `  messages posted: ${started}/${COMMANDS}; investigations started: ${running}/${COMMANDS}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    reportFigures('slack', [{
      figure: `Slack ack, ${COMMANDS} signed /docket analyze commands, ${PARALLEL} at a time (p99)`,
      docket: ms(p99),
      baseline: `GET /healthz, same parallelism: ${ms(percentile(floorSorted, 99))}`,
      ratio: p99 / percentile(floorSorted, 99),
      goal: `p99 < ${TARGET_P99_MS} ms`,
    }]);
    if (failures.length || running < COMMANDS) process.exitCode = 1;
  } finally {
    await Promise.all(children.map(stop));
    await client?.connection.close();
    await temporal.stop();
    await slack.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts one of Docket's processes and resolves once it says it runs. */
function startRole(role: 'gateway' | 'worker', env: NodeJS.ProcessEnv, root: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'scripts/run.ts'), role], { env, cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolveStart, reject) => {
    const timer = setTimeout(() => reject(new Error(`docket ${role} did not start within ${START_WAIT_MS / 1000} s`)), START_WAIT_MS);
    let seen = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      if (seen.includes(`docket ${role}: running`)) return;
      seen = (seen + chunk.toString()).slice(-4096);
      if (seen.includes(`docket ${role}: running`)) {
        clearTimeout(timer);
        resolveStart(child);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`docket ${role} exited with ${code}`));
    });
  });
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolveStop) => {
    if (child.exitCode !== null) return resolveStop();
    const force = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', () => {
      clearTimeout(force);
      resolveStop();
    });
    child.kill('SIGTERM');
  });
}

main().catch((error) => {
  console.error(`bench:slack: ${(error as Error).stack ?? error}`);
  process.exit(1);
});
