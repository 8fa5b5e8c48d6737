import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { statusQuery, WorkflowType } from '../../contract/messages';
import { InvestigationInput, type InvestigationReport } from '../../core/investigation';
import type { BlobStore } from '../../infra/blob-store';
import { imageExists, run } from '../../scripts/lib/images';
import { observableSubject, runEngineOnce, tempBlobStore, testManifest } from '../helpers/engines';
import { enginesFolder, getJson } from '../helpers/fixtures';
import { poll, ROOT, startTestSystem, type TestSystem } from '../helpers/system';

/**
 * Images written the way TheHive-Project's Cortex-Analyzers writes them run unchanged, and engines
 * that do not apply (file type, TLP, PAP) are skipped before any container starts, never failed.
 */
const IMAGE = 'docket/test-cortex-style:1';
const reference = JSON.parse(readFileSync(join(ROOT, 'test/engines/cortex-style-analyzer/MyAnalyzer/reference.json'), 'utf8')) as Record<string, string>;
const everyType = { name: 'every-type', image: IMAGE, protocol: 'cortex', accepts: ['domain', 'file'], timeout: '60s', cache: '0' };

async function buildCortexStyleImage(): Promise<void> {
  if (await imageExists(IMAGE)) return;
  const wheels = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'docket', 'wheels');
  mkdirSync(wheels, { recursive: true });
  const wheel = () => readdirSync(wheels).filter((name) => name.startsWith('cortexutils-2.2.1'));
  if (!wheel().length) execFileSync('python3', ['-m', 'pip', 'download', '--no-deps', '--dest', wheels, 'cortexutils==2.2.1'], { stdio: 'pipe' });
  const context = mkdtempSync(join(tmpdir(), 'docket-cortex-style-'));
  cpSync(join(ROOT, 'test/engines/cortex-style-analyzer'), context, { recursive: true });
  for (const name of wheel()) cpSync(join(wheels, name), join(context, name));
  // Offline, as Docket's images are built: everything the image needs is in its context.
  await run('docker', ['build', '--quiet', '--network', 'none', '--tag', IMAGE, context]);
}

function sampleManifest(name: string): Record<string, unknown> {
  return parseYaml(readFileSync(join(ROOT, 'engines', name, 'engine.yaml'), 'utf8')) as Record<string, unknown>;
}

describe('stock Cortex-Analyzers images', () => {
  let blobs: BlobStore;
  beforeAll(async () => {
    await buildCortexStyleImage();
    blobs = await tempBlobStore();
  });

  it('runs an image with WORKDIR /worker and a relative entry point in its own working directory, as Cortex does', async () => {
    const { outcome } = await runEngineOnce(testManifest(everyType), observableSubject('domain', 'evil.example'), blobs);
    expect(outcome).toMatchObject({ status: 'success', exitCode: 0 });
    const output = JSON.parse((await blobs.read(outcome.result!.sha256)).toString());
    expect(output.full).toMatchObject({ seen: 'evil.example', cwd: '/worker', uid: 65534 });
    expect(outcome.taxonomies).toEqual([{ level: 'suspicious', namespace: 'EveryType', predicate: 'Artifacts', value: String(Object.keys(reference).length + 1) }]);
  });

  it('reads an artifact of every Cortex data type, the file one with its attachment from output/ kept as a blob', async () => {
    const { outcome } = await runEngineOnce(testManifest(everyType), observableSubject('domain', 'evil.example'), blobs);
    const byType = new Map(outcome.artifacts.map((artifact) => [artifact.type, artifact]));
    expect([...byType.keys()].sort()).toEqual([...Object.keys(reference), 'file'].sort());
    for (const [type, data] of Object.entries(reference)) expect(byType.get(type)).toMatchObject({ data, tags: ['every-type'] });
    const file = byType.get('file')!;
    expect(file.message).toBe('dropped file');
    expect(file.file).toMatchObject({ filename: 'dropped-payload.bin', contentType: 'application/x-dosexec', size: 25 });
    expect((await blobs.read(file.file!.sha256)).toString()).toBe('MZ dropped by the sample\n');
  });

  it("passes Cortex's TLP and PAP config keys: checks on at the manifest's maxTlp / maxPap, off without them", async () => {
    const limited = await runEngineOnce(testManifest({ ...everyType, maxTlp: 2, maxPap: 1 }), observableSubject('domain', 'evil.example'), blobs, { tlp: 2, pap: 1 });
    const output = JSON.parse((await blobs.read(limited.outcome.result!.sha256)).toString());
    expect(output.full).toMatchObject({ tlp: 2, pap: 1, config: { check_tlp: true, max_tlp: 2, check_pap: true, max_pap: 1 } });
    const open = await runEngineOnce(testManifest(everyType), observableSubject('domain', 'evil.example'), blobs);
    const openOutput = JSON.parse((await blobs.read(open.outcome.result!.sha256)).toString());
    expect(openOutput.full.config).toEqual({ check_tlp: false, max_tlp: 4, check_pap: false, max_pap: 3 });
  });
});

describe('engines that do not apply are skipped, never failed', () => {
  let docket: TestSystem;
  beforeAll(async () => {
    await buildCortexStyleImage();
    const enginesDir = enginesFolder([
      { ...sampleManifest('fileinfo'), timeout: '60s' },
      sampleManifest('apktool'),
      { ...everyType, kind: 'analyzer', maxTlp: 2, maxPap: 2, filetypes: ['text/*'] },
      {
        ...everyType, name: 'needs-key', kind: 'analyzer', accepts: ['fqdn'],
        config: { key: '${DOCKET_TEST_UNSET_KEY}' }, configItems: [{ name: 'key', type: 'string', required: true }],
      },
    ]);
    docket = await startTestSystem({ enginesDir });
  });
  afterAll(async () => {
    await docket?.close();
  });

  async function finished(id: string): Promise<InvestigationReport> {
    const { body } = await poll(() => getJson(`${docket.baseUrl}/v1/investigations/${id}`), (answer) => answer.body.state !== 'running', `investigation ${id}`);
    expect(body.state).toBe('completed');
    return body.report as InvestigationReport;
  }

  async function engineActivities(id: string): Promise<number> {
    const history = await docket.client.workflow.getHandle(id).fetchHistory();
    return (history.events ?? []).filter((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'runEngine').length;
  }

  it('does not run apktool on a plain text file (whatever type the client claimed), lists it skipped, and is Success', async () => {
    const form = new FormData();
    form.append('file', new Blob(['Meeting notes: call back about evil.example on Monday.\n'], { type: 'application/vnd.android.package-archive' }), 'notes.apk');
    form.append('depth', '0');
    const response = await fetch(`${docket.baseUrl}/v1/investigations`, { method: 'POST', body: form });
    expect(response.status).toBe(202);
    const { id } = (await response.json()) as { id: string };
    const report = await finished(id);
    expect(report.status).toBe('Success');
    expect(report.jobs.map((job) => [job.engine, job.status]).sort()).toEqual([['every-type', 'success'], ['fileinfo', 'success']]);
    expect(report.jobs[0].subject).toMatchObject({ kind: 'file', file: { filename: 'notes.apk', contentType: 'text/plain' } });
    expect(report.skipped).toEqual([{
      engine: 'apktool', subject: report.jobs[0].subject,
      reason: 'apktool does not take text/plain files (it takes application/vnd.android.package-archive)',
    }]);
    expect(await engineActivities(id)).toBe(2);
  });

  it('skips an engine above its maxTlp before any container starts, and shows it in the status with its reason', async () => {
    const input = InvestigationInput.parse({ source: 'cli', observables: [{ type: 'domain', data: 'evil.example' }], tlp: 3 });
    const id = `t-${randomBytes(6).toString('hex')}`;
    const handle = await docket.client.workflow.start(WorkflowType.investigation, { taskQueue: `${docket.config.DOCKET_QUEUE_PREFIX}docket`, workflowId: id, args: [input] });
    await handle.result();
    const status = await handle.query(statusQuery);
    expect(status.jobs).toEqual([{ engine: 'every-type', subject: 'domain evil.example', state: 'skipped', reason: expect.stringContaining('TLP 3') }]);
    const { body } = await getJson(`${docket.baseUrl}/v1/investigations/${id}`);
    const report = body.report as InvestigationReport;
    expect(report.skipped).toEqual([{
      engine: 'every-type', subject: { kind: 'observable', observable: { type: 'domain', data: 'evil.example' } },
      reason: 'the data is TLP 3 and every-type takes data up to TLP 2 (maxTlp); lower the TLP only if the data may go to it',
    }]);
    // Nothing ran, so the investigation did none of its work; the engine itself is listed skipped, not failed.
    expect(report.jobs).toEqual([]);
    expect(report.status).toBe('Fail');
    expect(await engineActivities(id)).toBe(0);
  });

  it('refuses data above maxPap before any container starts', async () => {
    const report = await docket.client.workflow.execute(WorkflowType.investigation, {
      taskQueue: `${docket.config.DOCKET_QUEUE_PREFIX}docket`, workflowId: `t-${randomBytes(6).toString('hex')}`,
      args: [InvestigationInput.parse({ source: 'cli', observables: [{ type: 'domain', data: 'evil.example' }], tlp: 1, pap: 3 })],
    }) as InvestigationReport;
    expect(report.skipped?.[0].reason).toBe('the data is PAP 3 and every-type acts up to PAP 2 (maxPap)');
    expect(report.jobs).toEqual([]);
  });

  it('fails a job whose required config item is empty without starting it, naming the variable to set', async () => {
    const report = await docket.client.workflow.execute(WorkflowType.investigation, {
      taskQueue: `${docket.config.DOCKET_QUEUE_PREFIX}docket`, workflowId: `t-${randomBytes(6).toString('hex')}`,
      args: [InvestigationInput.parse({ source: 'cli', observables: [{ type: 'fqdn', data: 'c2.evil.example' }] })],
    }) as InvestigationReport;
    expect(report.jobs).toHaveLength(1);
    expect(report.jobs[0]).toMatchObject({
      engine: 'needs-key', status: 'failure', attempt: 1,
      errorMessage: "engine needs-key needs config key, which is empty: set DOCKET_TEST_UNSET_KEY in the engine worker's environment; the job was not started",
    });
    expect(report.jobs[0].imageId).toBeUndefined();
  });

  it('answers a Menagerie upload of a text file to apktool with Fail and the reason as its summary', async () => {
    const form = new FormData();
    form.append('upload', new Blob(['just text, no Android here\n']), 'app.apk');
    const response = await fetch(`${docket.baseUrl}/apktool/upload`, { method: 'POST', body: form });
    expect(response.status).toBe(200);
    const { jobid } = (await response.json()) as { jobid: string };
    const { body } = await poll(() => getJson(`${docket.baseUrl}/result/${jobid}`), (answer) => ['Success', 'Fail'].includes(answer.body.status), `Menagerie job ${jobid}`);
    expect(body).toMatchObject({ status: 'Fail', summary: 'apktool skipped: apktool does not take text/plain files (it takes application/vnd.'.slice(0, 80) });
  });
});
