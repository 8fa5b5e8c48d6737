import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { InvestigationInput, type InvestigationReport, MAX_INLINE_ARTIFACTS, MAX_REPORT_BYTES } from '../../core/investigation';
import { ensureImage, run } from '../../scripts/lib/images';
import { buildTestImage, docker, leftovers, leftoversGone, readVolumeFile } from '../helpers/engines';
import { enginesFolder, fileinfoManifest } from '../helpers/fixtures';
import { poll, ROOT, startTestSystem, type TestSystem } from '../helpers/system';
import { WorkflowType } from '../../contract/messages';

/** Engine jobs through Temporal: retries, faults, concurrency, reloads and a worker killed mid-run. */
const sleeper = (name: string, seconds: number, extra: Record<string, unknown> = {}) => ({
  name, kind: 'analyzer', image: 'docket/base:bookworm', accepts: ['other'], protocol: 'stdout',
  command: ['/bin/sh', '-c', `sleep ${seconds}; echo slept ${seconds}s`], timeout: '60s', ...extra,
});
const other = (data: string) => [{ type: 'other', data }];

async function investigate(docket: TestSystem, fields: Record<string, unknown>): Promise<InvestigationReport> {
  const input = InvestigationInput.parse({ source: 'cli', ...fields });
  return docket.client.workflow.execute(WorkflowType.investigation, {
    taskQueue: `${docket.config.DOCKET_QUEUE_PREFIX}docket`, workflowId: `t-${randomBytes(6).toString('hex')}`, args: [input],
  });
}

/** The attempt numbers of the engine activities that started, read from the workflow's history. */
async function startedAttempt(docket: TestSystem, workflowId: string): Promise<number[]> {
  const history = await docket.client.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  const engineActivities = new Set(events
    .filter((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'runEngine')
    .map((event) => String(event.eventId)));
  return events.flatMap((event) => {
    const started = event.activityTaskStartedEventAttributes;
    return started && engineActivities.has(String(started.scheduledEventId)) ? [started.attempt ?? 0] : [];
  });
}

describe('engine jobs on Temporal', () => {
  let docket: TestSystem;
  const enginesDir = enginesFolder([
    sleeper('nap', 2, { concurrency: 1 }),
    sleeper('nap-pair', 2, { concurrency: 2 }),
    { ...sleeper('stuck', 600), timeout: '2s', retries: 1 },
    { ...fileinfoManifest, name: 'ghost', image: 'docket/ghost:0.0', accepts: ['other'], retries: 3 },
    {
      name: 'local-python', kind: 'analyzer', image: 'local', accepts: ['other'], protocol: 'cortex', runner: 'process',
      command: ['python3', '-c', [
        'import json, sys',
        'job = sys.argv[1]',
        'data = json.load(open(job + "/input/input.json"))["data"]',
        'json.dump({"success": True, "full": {"reversed": data[::-1]}, "summary": {"taxonomies": [{"level": "info", "namespace": "Local", "predicate": "Len", "value": len(data)}]}}, open(job + "/output/output.json", "w"))',
      ].join('\n')],
    },
    fileinfoManifest,
    { name: 'chatty', kind: 'analyzer', image: 'docket/test-hostile:1', accepts: ['other'], protocol: 'cortex', command: ['/hostile', 'artifacts'] },
  ]);

  beforeAll(async () => {
    await buildTestImage('hostile', 'docket/test-hostile:1');
    docket = await startTestSystem({ enginesDir, env: { DOCKET_PROCESS_RUNNER: 'on' } });
  });
  afterAll(async () => {
    await docket?.close();
  });

  it('retries a timed-out engine up to its retries, then reports a timeout', async () => {
    const report = await investigate(docket, { observables: other('forever'), engines: ['stuck'] });
    expect(report.jobs[0]).toMatchObject({ status: 'timeout', errorMessage: 'engine stuck ran past its timeout of 2s and was killed' });
    expect(await startedAttempt(docket, report.id)).toEqual([2]);
    expect(await leftoversGone(() => leftovers(report.id))).toEqual({ containers: 0, volumes: 0 });
  });

  it('does not retry a missing image, and says how to build it', async () => {
    const report = await investigate(docket, { observables: other('x'), engines: ['ghost'] });
    expect(report.jobs[0].status).toBe('error');
    expect(report.jobs[0].errorMessage).toContain('image docket/ghost:0.0 for engine ghost not found on the Docker host: run npm run engines:build');
    expect(await startedAttempt(docket, report.id)).toEqual([1]);
  });

  it('fails a job whose input file is gone from the blob store, once, and keeps the worker serving', async () => {
    const gone = { sha256: randomBytes(32).toString('hex'), size: 10, filename: 'vanished.bin' };
    const report = await investigate(docket, { files: [gone], engines: ['fileinfo'] });
    expect(report.jobs[0].status).toBe('error');
    expect(report.jobs[0].errorMessage).toContain("the job's input is gone from the blob store");
    expect(await startedAttempt(docket, report.id)).toEqual([1]);
    const after = await investigate(docket, { files: [await sampleFile(docket)], engines: ['fileinfo'] });
    expect(after.jobs[0].status).toBe('success');
  });

  it('runs a local command with the process runner when it is on', async () => {
    const report = await investigate(docket, { observables: other('docket'), engines: ['local-python'] });
    expect(report.jobs[0]).toMatchObject({ status: 'success', imageId: 'process:python3', taxonomies: [{ level: 'info', namespace: 'Local', predicate: 'Len', value: '6' }] });
    const output = JSON.parse((await docket.blobs.read(report.jobs[0].result!.sha256)).toString());
    expect(output.full.reversed).toBe('tekcod');
  });

  it.each([['nap', 1], ['nap-pair', 2]])('runs at most the manifest concurrency of %s at once (%i)', async (engine, concurrency) => {
    let most = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const running = await docker.listContainers({ filters: { label: [`docket.engine=${engine}`], status: ['running'] } });
        most = Math.max(most, running.length);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const report = await investigate(docket, { observables: [...other('a'), ...other('b'), ...other('c')], engines: [engine] });
    watching = false;
    await watcher;
    expect(report.jobs.map((job) => job.status)).toEqual(['success', 'success', 'success']);
    expect(most).toBe(concurrency);
  });

  it('keeps large reports out of workflow history and serves them whole (claim check)', async () => {
    const observables = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].flatMap(other);
    const trimmed = await investigate(docket, { observables, engines: ['chatty'] });
    expect(trimmed.reportRef).toBeDefined();
    expect(JSON.stringify(trimmed).length).toBeLessThan(MAX_REPORT_BYTES);
    expect(trimmed.jobs.every((job) => job.artifacts.length === 0)).toBe(true);

    const whole = await (await fetch(`${docket.baseUrl}/v1/investigations/${trimmed.id}`)).json() as { report: InvestigationReport };
    expect(whole.report.jobs).toHaveLength(8);
    expect(whole.report.jobs[0].artifacts).toHaveLength(MAX_INLINE_ARTIFACTS);
    const all = JSON.parse((await docket.blobs.read(whole.report.jobs[0].artifactsRef!.sha256)).toString());
    expect(all).toHaveLength(300);
    expect(all[299].data).toBe('300-'.repeat(200));
  });

  it('records the image ID of every job, and a reloaded manifest changes new jobs only', async () => {
    const first = await investigate(docket, { files: [await sampleFile(docket)], engines: ['fileinfo'] });
    const derived = `docket/fileinfo:reload-${randomBytes(3).toString('hex')}`;
    const context = enginesFolder([]);
    writeFileSync(join(context, 'Dockerfile'), `FROM docket/fileinfo:1.0\nLABEL docket.test.reload="${derived}"\n`);
    await ensureImage(derived, context);
    writeFileSync(join(enginesDir, 'fileinfo', 'engine.yaml'), stringify({ ...fileinfoManifest, image: derived }));
    await docket.reload();
    try {
      const second = await investigate(docket, { files: [await sampleFile(docket)], engines: ['fileinfo'], force: true });
      const [oldId, newId] = await Promise.all(['docket/fileinfo:1.0', derived].map(async (image) => (await docker.getImage(image).inspect()).Id));
      expect(first.jobs[0].imageId).toBe(oldId);
      expect(second.jobs[0].imageId).toBe(newId);
      expect(newId).not.toBe(oldId);
    } finally {
      writeFileSync(join(enginesDir, 'fileinfo', 'engine.yaml'), stringify(fileinfoManifest));
      await docket.reload();
      await run('docker', ['rmi', derived]).catch(() => undefined);
    }
  });
});

async function sampleFile(docket: TestSystem) {
  const stored = await docket.blobs.putBuffer(`sample ${randomBytes(4).toString('hex')}`);
  return { sha256: stored.sha256, size: stored.size, filename: 'sample.txt' };
}

describe('a worker killed mid-run', () => {
  const volume = `docket-blocklist-kill-${randomBytes(4).toString('hex')}`;
  let workers: ChildProcess | undefined;
  afterAll(async () => {
    if (workers?.exitCode === null) process.kill(-workers.pid!, 'SIGKILL');
    await docker.getVolume(volume).remove().catch(() => undefined);
  });

  it('loses nothing: the investigation completes after a restart, the responder acts once, no container is left', async () => {
    await buildTestImage('hostile', 'docket/test-hostile:1');
    const policyFile = join(enginesFolder([]), 'policy.yaml');
    writeFileSync(policyFile, stringify({ rules: [{ name: 'block', when: { types: ['domain'] }, respond: ['blocklist'], approval: 'none' }] }));
    const enginesDir = enginesFolder([
      { ...sleeper('slow-intel', 6), accepts: ['domain'] },
      { ...parse(readFileSync(join(ROOT, 'engines/blocklist/engine.yaml'), 'utf8')), volumes: [{ name: volume, target: '/blocklist' }] },
    ]);
    const main = await startTestSystem({ enginesDir, engineWorkers: false, env: { DOCKET_POLICY_FILE: policyFile } });
    const startWorkers = () => spawn(process.execPath, [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'scripts/run.ts'), 'engines'], {
      cwd: ROOT,
      // Its own process group, so a kill reaches tsx's worker process too, as a crash of the host would.
      detached: true,
      stdio: ['ignore', 'ignore', 'inherit'],
      env: {
        ...process.env, TEMPORAL_ADDRESS: main.config.temporalAddress, DOCKET_QUEUE_PREFIX: main.config.DOCKET_QUEUE_PREFIX,
        DOCKET_ENGINES_DIR: enginesDir, DOCKET_DATA_DIR: main.dataDir, DOCKET_LOG_LEVEL: 'warn', DOCKET_ENGINES_PORT: '0',
      },
    });
    try {
      workers = startWorkers();
      const input = InvestigationInput.parse({ source: 'cli', observables: [{ type: 'domain', data: 'killed-worker.example' }] });
      const handle = await main.client.workflow.start(WorkflowType.investigation, {
        taskQueue: `${main.config.DOCKET_QUEUE_PREFIX}docket`, workflowId: `kill-${randomBytes(6).toString('hex')}`, args: [input],
      });
      await poll(() => leftovers(handle.workflowId), (l) => l.containers === 1, 'the slow container to run', 60_000);
      const exited = new Promise((resolve) => workers!.once('exit', resolve));
      process.kill(-workers.pid!, 'SIGKILL');
      await exited;
      expect((await leftovers(handle.workflowId)).containers).toBe(1);

      workers = startWorkers();
      const report = (await handle.result()) as InvestigationReport;
      expect(report.status).toBe('Success');
      expect(report.jobs[0]).toMatchObject({ engine: 'slow-intel', status: 'success', attempt: 2 });
      expect(report.responses[0]).toMatchObject({ responder: 'blocklist', report: { status: 'success' } });
      const lines = (await readVolumeFile(volume, '/volume/blocklist.txt')).split('\n').filter((line) => line === 'killed-worker.example');
      expect(lines).toHaveLength(1);
      expect(await leftoversGone(() => leftovers(handle.workflowId))).toEqual({ containers: 0, volumes: 0 });
    } finally {
      if (workers?.exitCode === null) process.kill(-workers.pid!, 'SIGTERM');
      await main.close();
    }
  });
});
