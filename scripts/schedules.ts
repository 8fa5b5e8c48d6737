/**
 * Docket's schedules from a terminal, straight against Temporal (what `/v1/schedules` does):
 *
 *   npm run schedules -- list
 *   npm run schedules -- pause <id> [--note <why>]      unpause <id> [--note <why>]
 *   npm run schedules -- trigger <id> [--overlap <policy>]
 *   npm run schedules -- backfill <id> --start <ISO time> --end <ISO time> [--overlap <policy>]
 *   npm run schedules -- reconcile                       make Temporal match DOCKET_SCHEDULES_DIR now
 */
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DocketClient } from '../contract/client';
import { EngineRegistry } from '../infra/engine-registry';
import { createLogger } from '../infra/log';
import { BackfillTooLargeError, DocketSchedules, type ListedSchedule, reconcileSchedules, UnknownScheduleError } from '../infra/schedule-control';
import { ConfigError, loadConfig } from '../core/config';
import { OverlapPolicy } from '../core/schedule-definition';
import { table } from './lib/table';

const USAGE = 'usage: npm run schedules -- list | pause <id> [--note <why>] | unpause <id> [--note <why>] | trigger <id> [--overlap <policy>]'
  + ' | backfill <id> --start <ISO time> --end <ISO time> [--overlap <policy>] | reconcile';

class UsageError extends Error {}

function when(schedule: ListedSchedule): string {
  if (schedule.cron) return `cron ${schedule.cron}`;
  if (schedule.intervalMs) return `every ${schedule.intervalMs / 60_000}m`;
  return '';
}

function lastRun(schedule: ListedSchedule): string {
  const [run] = schedule.recentRuns;
  if (!run) return 'never';
  return `${run.startedAt} ${run.outcome ?? run.status}`;
}

function overlapOf(value: string | undefined): OverlapPolicy | undefined {
  if (value === undefined) return undefined;
  const parsed = OverlapPolicy.safeParse(value);
  if (!parsed.success) throw new UsageError(`--overlap: one of ${OverlapPolicy.options.join(', ')}`);
  return parsed.data;
}

function timeOf(value: string | undefined, flag: string): Date {
  const time = value === undefined ? Number.NaN : Date.parse(value);
  if (Number.isNaN(time)) throw new UsageError(`${flag}: an ISO time such as 2026-01-31T00:00:00Z\n${USAGE}`);
  return new Date(time);
}

async function main(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { note: { type: 'string' }, overlap: { type: 'string' }, start: { type: 'string' }, end: { type: 'string' } },
  });
  const [command, id, ...extra] = positionals;
  const needsId = ['pause', 'unpause', 'trigger', 'backfill'].includes(command);
  if (!command || extra.length || (needsId ? !id : id !== undefined)) throw new UsageError(USAGE);
  const config = loadConfig(process.env);
  const connection = await Connection.connect({ address: config.temporalAddress });
  try {
    const taskQueue = `${config.DOCKET_QUEUE_PREFIX}${config.DOCKET_TASK_QUEUE}`;
    const temporal = new DocketClient(new Client({ connection, namespace: config.TEMPORAL_NAMESPACE }), taskQueue);
    const schedules = new DocketSchedules(temporal, config.DOCKET_QUEUE_PREFIX);
    const note = (what: string) => values.note ?? `${what} by ${process.env.USER ?? 'someone'} with npm run schedules`;
    switch (command) {
      case 'list': {
        const listed = await schedules.list();
        if (!listed.length) {
          console.log(`no schedules: add YAML files to ${config.DOCKET_SCHEDULES_DIR}/ and run npm run schedules -- reconcile`);
          return;
        }
        const rows = listed.map((s) => [s.id, s.action === 'run' ? `run ${s.engine ?? ''}` : 'investigate', when(s), s.paused ? 'yes' : 'no', s.nextRuns[0] ?? '', lastRun(s)]);
        console.log(table(['ID', 'ACTION', 'WHEN', 'PAUSED', 'NEXT RUN', 'LAST RUN'], rows));
        return;
      }
      case 'pause':
        await schedules.pause(id, note('paused'));
        console.log(`${id}: paused`);
        return;
      case 'unpause':
        await schedules.unpause(id, note('unpaused'));
        console.log(`${id}: unpaused`);
        return;
      case 'trigger':
        await schedules.trigger(id, overlapOf(values.overlap));
        console.log(`${id}: triggered`);
        return;
      case 'backfill': {
        const { estimatedRuns } = await schedules.backfill(id, timeOf(values.start, '--start'), timeOf(values.end, '--end'), overlapOf(values.overlap));
        console.log(`${id}: backfilled${estimatedRuns === undefined ? '' : ` (up to ${estimatedRuns} runs)`}`);
        return;
      }
      case 'reconcile': {
        const registry = await EngineRegistry.load(config.DOCKET_ENGINES_DIR);
        const report = await reconcileSchedules({
          client: temporal.client, dir: config.DOCKET_SCHEDULES_DIR, taskQueue,
          queuePrefix: config.DOCKET_QUEUE_PREFIX, log: createLogger(config.DOCKET_LOG_LEVEL), engines: registry.names(),
          responders: registry.list().filter((engine) => engine.manifest.kind === 'responder').map((engine) => engine.manifest.name),
          webhookAllow: [config.DOCKET_WEBHOOK_URL ?? '', ...config.DOCKET_WEBHOOK_ALLOW.split(',').map((prefix) => prefix.trim())].filter(Boolean),
        });
        if (report.errors.length) process.exitCode = 1;
        return;
      }
      default:
        throw new UsageError(USAGE);
    }
  } finally {
    await connection.close();
  }
}

main(process.argv.slice(2)).catch((error) => {
  const known = error instanceof UsageError || error instanceof ConfigError || error instanceof UnknownScheduleError
    || error instanceof BackfillTooLargeError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
  console.error(known ? (error as Error).message : error);
  process.exit(1);
});
