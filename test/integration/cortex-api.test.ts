import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { KeyStore } from '../../gateway/keys';
import { buildCortexutilsImage, cortex4py, ensureCortex4py } from '../helpers/cortex4py';
import { docker, readVolumeFile } from '../helpers/engines';
import { enginesFolder } from '../helpers/fixtures';
import { poll, ROOT, startTestSystem, type TestSystem } from '../helpers/system';

/**
 * TheHive's Cortex API under /api, driven by cortex4py 2.1.0 (TheHive's Python client, from PyPI) and
 * by raw requests in the shape TheHive 5's Cortex client sends them. Real Temporal, real Docker, real
 * cortexutils engines; every Cortex job must also be a Docket investigation.
 */
const ANALYZER_IMAGE = 'docket/test-cortexutils:2.2.1';
const RESPONDER_IMAGE = 'docket/test-cortexutils-responder:2.2.1';
const ANALYZER_ID = 'keyword_2_2';
const RESPONDER_ID = 'tagcase_1_0';
/** The repository's blocklist responder, which acts on observables (url, domain, ip, fqdn), on a volume of this test's own. */
const BLOCKLIST_ID = 'blocklist_1_0';
const blocklistVolume = `docket-blocklist-cortex-${randomBytes(4).toString('hex')}`;
const blocklistManifest = parseYaml(readFileSync(join(ROOT, 'engines/blocklist/engine.yaml'), 'utf8'));

const engines = enginesFolder([
  {
    name: 'keyword', kind: 'analyzer', version: '2.2', author: 'Docket tests', license: 'AGPL-V3', url: 'https://example.org/keyword',
    description: 'finds keywords', image: ANALYZER_IMAGE, protocol: 'cortex', accepts: ['domain', 'other', 'file'], timeout: '60s',
    sizelimit: '64k', config: { keywords: ['evil', 'payload'] },
  },
  {
    name: 'tagcase', kind: 'responder', description: 'tags a case observable', image: RESPONDER_IMAGE, protocol: 'cortex',
    accepts: ['thehive:case_artifact'], timeout: '60s', config: { tag: 'docket:seen' },
  },
  { ...blocklistManifest, volumes: [{ name: blocklistVolume, target: '/blocklist' }] },
]);

/** A case observable as TheHive 5 sends it to a responder. */
const CASE_ARTIFACT = {
  _id: '~41112', _type: 'case_artifact', dataType: 'domain', data: 'evil.example.com', tlp: 2, pap: 2, ioc: true, sighted: false,
  tags: ['phishing'], message: 'seen in a mail', case: { _id: '~40960', title: 'Phishing wave', caseId: 7 },
};

describe('the Cortex API', () => {
  let docket: TestSystem;
  let python: string;
  let url: string;
  const keys: Record<string, string> = {};

  const api = async (method: string, path: string, options: { key?: string | null; json?: unknown; body?: FormData | string } = {}) => {
    const headers: Record<string, string> = {};
    const key = options.key === undefined ? keys.respond : options.key;
    if (key) headers.authorization = `Bearer ${key}`;
    if (options.json !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${url}${path}`, { method, headers, body: options.json !== undefined ? JSON.stringify(options.json) : options.body });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
  };
  const blobFiles = () => readdirSync(join(docket.dataDir, 'blobs'), { recursive: true }).map(String).sort();
  const py = (script: string, key = keys.respond) => cortex4py(python, url, key, script);

  beforeAll(async () => {
    [python] = await Promise.all([
      ensureCortex4py(),
      buildCortexutilsImage(ANALYZER_IMAGE, 'test/engines/cortexutils-analyzer'),
      buildCortexutilsImage(RESPONDER_IMAGE, 'test/engines/cortexutils-responder'),
    ]);
    const policy = join(mkdtempSync(join(tmpdir(), 'docket-cortex-policy-')), 'policy.yaml');
    writeFileSync(policy, 'rules: []\n');
    docket = await startTestSystem({ enginesDir: engines, env: { DOCKET_POLICY_FILE: policy, DOCKET_ANONYMOUS: 'none' } });
    url = docket.baseUrl;
    const store = new KeyStore(join(docket.dataDir, 'keys.json'));
    for (const role of ['read', 'analyze', 'respond', 'admin'] as const) keys[role] = (await store.create(`thehive-${role}`, role)).key;
  }, 600_000);

  afterAll(async () => {
    await docket?.close();
    await docker.getVolume(blocklistVolume).remove().catch(() => undefined);
  });

  /** An attachment fetched as TheHive's CortexClient.getAttachment does: a GET with the key, the body kept as bytes. */
  const download = async (id: string, query = '', key: string | null = keys.read) => {
    const response = await fetch(`${url}/api/datastore/${id}${query}`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
    const bytes = Buffer.from(await response.arrayBuffer());
    return { status: response.status, headers: response.headers, bytes, json: () => JSON.parse(bytes.toString('utf8')) };
  };
  /** Lines the blocklist responder wrote for `entry`: how many times it acted on it. */
  const blocked = async (entry: string) => {
    const text = await readVolumeFile(blocklistVolume, '/volume/blocklist.txt').catch(() => '');
    return text.split('\n').filter((line) => line === entry).length;
  };

  describe('with cortex4py', () => {
    it('reads the status and the current user with Cortex roles', async () => {
      const answer = await py("out({'status': api.status().json(), 'user': api.do_get('user/current').json()})", keys.analyze);
      expect(answer.status.versions.Cortex).toEqual(expect.any(String));
      expect(answer.user).toMatchObject({ id: 'thehive-analyze', roles: ['read', 'analyze'], organization: 'docket', status: 'Ok' });
    });

    it('lists, gets and searches analyzers with Eq, And, Or, Not and Contains, with range and sort', async () => {
      const answer = await py(`
out({
  'all': [a.json() for a in api.analyzers.find_all({}, range='all')],
  'byName': api.analyzers.get_by_name('keyword').json(),
  'byId': api.analyzers.get_by_id('${ANALYZER_ID}').json(),
  'byType': [a.id for a in api.analyzers.get_by_type('domain')],
  'noneByType': [a.id for a in api.analyzers.get_by_type('ip')],
  'and': [a.id for a in api.analyzers.find_all(And(Eq('dataTypeList', 'file'), Eq('name', 'keyword')), range='all')],
  'or': [a.id for a in api.analyzers.find_all(Or(Eq('name', 'nothing'), Eq('dataTypeList', 'other')), range='0-1', sort='-name')],
  'not': [a.id for a in api.analyzers.find_all(Not(Eq('name', 'keyword')), range='all')],
  'contains': [a.id for a in api.analyzers.find_all(Contains('dataTypeList'), range='all')],
  'responders': [r.id for r in api.responders.find_all({}, range='all')],
  'respondersByType': [r.id for r in api.responders.get_by_type('thehive:case_artifact')],
})`);
      expect(answer.all).toHaveLength(1);
      // Every field cortex4py's Analyzer model reads.
      expect(answer.byName).toMatchObject({
        id: ANALYZER_ID, name: 'keyword', workerDefinitionId: ANALYZER_ID, description: 'finds keywords', version: '2.2',
        author: 'Docket tests', url: 'https://example.org/keyword', license: 'AGPL-V3', dataTypeList: ['domain', 'other', 'file'],
        jobCache: 10, maxTlp: 4, maxPap: 3,
      });
      expect(answer.byName).not.toHaveProperty('configuration');
      expect(answer.byId).toEqual(answer.byName);
      expect(answer.byType).toEqual([ANALYZER_ID]);
      expect(answer.noneByType).toEqual([]);
      expect(answer.and).toEqual([ANALYZER_ID]);
      expect(answer.or).toEqual([ANALYZER_ID]);
      expect(answer.not).toEqual([]);
      expect(answer.contains).toEqual([ANALYZER_ID]);
      expect([...answer.responders].sort()).toEqual([BLOCKLIST_ID, RESPONDER_ID]);
      expect([...answer.respondersByType].sort()).toEqual([BLOCKLIST_ID, RESPONDER_ID]);
    });

    it('lists the analyzer definitions to an admin key', async () => {
      const answer = await py("out([d.json() for d in api.analyzers.definitions()])", keys.admin);
      expect(answer).toEqual([expect.objectContaining({ id: ANALYZER_ID, name: 'keyword', version: '2.2', dataTypeList: ['domain', 'other', 'file'] })]);
    });

    it('runs an analyzer on a domain, waits for the report, lists its artifacts, deletes the job, and the job is a Docket investigation', async () => {
      const answer = await py(`
job = api.analyzers.run_by_name('keyword', {'data': 'evil-payload.example.com', 'dataType': 'domain', 'tlp': 1, 'pap': 2,
  'message': 'from a case', 'parameters': {'case': 7}}, force=1)
report = api.jobs.get_report_async(job.id, '1minute')
artifacts = api.jobs.get_artifacts(job.id)
out({'job': job.json(), 'report': report.json(), 'artifacts': [a.json() for a in artifacts]})`);
      const { job, report, artifacts } = answer;
      // Every field cortex4py's Job model reads.
      expect(job).toMatchObject({
        id: expect.stringMatching(/^cortex-/), type: 'analyzer', organization: 'docket', workerId: ANALYZER_ID, workerDefinitionId: ANALYZER_ID,
        workerName: 'keyword', status: 'Waiting', dataType: 'domain', tlp: 1, data: 'evil-payload.example.com', parameters: { case: 7 },
        message: 'from a case', date: expect.any(Number),
      });
      expect(report).toMatchObject({ id: job.id, status: 'Success', startDate: expect.any(Number), endDate: expect.any(Number) });
      expect(report.report.success).toBe(true);
      expect(report.report.summary.taxonomies).toEqual([{ level: 'malicious', namespace: 'Keyword', predicate: 'Hits', value: '2' }]);
      expect(report.report.full).toMatchObject({ keywords: ['evil', 'payload'], seen: 'evil-payload.example.com' });
      expect(report.report.operations).toEqual([]);
      const fileArtifact = report.report.artifacts.find((artifact: any) => artifact.dataType === 'file');
      expect(fileArtifact).toMatchObject({ message: 'analyst note', tlp: 1, attachment: { name: 'keyword-note.txt', id: expect.stringMatching(/^[0-9a-f]{64}$/) } });
      expect(artifacts.length).toBe(report.report.artifacts.length);
      expect(artifacts[0]).toMatchObject({ id: expect.any(String), dataType: expect.any(String), tlp: 1 });
      const note = await download(fileArtifact.attachment.id);
      expect({ status: note.status, text: note.bytes.toString('utf8') }).toEqual({ status: 200, text: 'keywords found: evil, payload\n' });

      const v1 = await api('GET', `/v1/investigations/${job.id}`, { key: keys.read });
      expect(v1.body).toMatchObject({ state: 'completed', report: { source: 'cortex', jobs: [{ engine: 'keyword', status: 'success' }] } });
      const listed = await api('GET', '/v1/investigations?source=cortex&pageSize=100', { key: keys.read });
      expect(listed.body.investigations.map((item: any) => item.id)).toContain(job.id);

      const deleted = await py(`
ok = api.jobs.delete('${job.id}')
out({'deleted': ok, 'job': api.jobs.get_by_id('${job.id}').json(), 'report': api.jobs.get_report('${job.id}').json(),
     'found': [j.id for j in api.jobs.find_all({}, range='all')]})`);
      expect(deleted.deleted).toBe(true);
      expect(deleted.job.status).toBe('Deleted');
      expect(deleted.report.report).toBe('Deleted');
      expect(deleted.found).not.toContain(job.id);
      // No other job reported this note: with its only job deleted, no reader of the Cortex API can read it.
      expect(await download(fileArtifact.attachment.id)).toMatchObject({ status: 404 });
    });

    it('runs an analyzer on a file sent as multipart, and answers a second run from the result cache', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'docket-cortex-file-'));
      const sample = join(dir, 'notes.txt');
      writeFileSync(sample, `a harmless text ${randomBytes(6).toString('hex')}`);
      const answer = await py(`
first = api.analyzers.run_by_id('${ANALYZER_ID}', {'data': '${sample}', 'dataType': 'file', 'tlp': 2})
first_report = api.jobs.get_report_async(first.id, '1minute')
second = api.analyzers.run_by_id('${ANALYZER_ID}', {'data': '${sample}', 'dataType': 'file', 'tlp': 2})
second_report = api.jobs.get_report_async(second.id, '1minute')
out({'first': first.json(), 'report': first_report.json(), 'second': second_report.json()})`);
      expect(answer.first).toMatchObject({ dataType: 'file', attachment: { name: 'notes.txt', contentType: 'text/plain', id: expect.stringMatching(/^[0-9a-f]{64}$/) } });
      expect(answer.first).not.toHaveProperty('data');
      expect(answer.report).toMatchObject({ status: 'Success', report: { success: true, summary: { taxonomies: [{ level: 'safe', value: '0' }] } } });
      expect(answer.report.report.full.seen).toMatch(/^a harmless text /);
      expect(answer.second).toMatchObject({ status: 'Success', fromCache: true });
      const input = await download(answer.first.attachment.id);
      expect(input.status).toBe(200);
      expect(input.bytes).toEqual(readFileSync(sample));
      expect(input.headers.get('content-disposition')).toBe('attachment; filename="notes.txt"; filename*=UTF-8\'\'notes.txt');
    });

    it('runs a cortexutils responder on a thehive:case_artifact after approval, and returns its operations as Cortex does', async () => {
      const started = await py(`out(api.responders.run_by_id('${RESPONDER_ID}', {'dataType': 'thehive:case_artifact', 'tlp': 2, 'data': json.loads(${JSON.stringify(JSON.stringify(CASE_ARTIFACT))})}).json())`);
      expect(started).toMatchObject({ type: 'responder', workerId: RESPONDER_ID, dataType: 'thehive:case_artifact', data: CASE_ARTIFACT, status: 'Waiting' });
      await poll(() => api('GET', `/v1/investigations/${started.id}`), (answer) => answer.body.status?.responses?.[0]?.approval?.state === 'pending', 'the response to wait for approval');
      const waiting = await api('GET', `/api/job/${started.id}/waitreport?atMost=1second`);
      expect(waiting.body).toMatchObject({ status: 'Waiting', report: 'Waiting' });

      const approved = await api('POST', `/v1/investigations/${started.id}/approve`, { json: { reason: 'TheHive analyst asked' } });
      expect(approved.status).toBe(200);
      const done = await py(`out(api.jobs.get_report_async('${started.id}', '1minute').json())`);
      expect(done).toMatchObject({ status: 'Success', report: { success: true } });
      expect(done.report.operations).toEqual([{ type: 'AddTagToArtifact', tag: 'docket:seen' }, { type: 'AddTagToCase', tag: 'docket' }]);
      expect(done.report.full).toMatchObject({ message: 'tagged domain evil.example.com', seen: CASE_ARTIFACT });
    });
  });

  describe('in the shape TheHive 5 sends', () => {
    it('lists analyzers with range=all and searches them by data type, each with the fields TheHive reads', async () => {
      const listed = await api('GET', '/api/analyzer?range=all', { key: keys.read });
      expect(listed.status).toBe(200);
      expect(listed.headers.get('x-total')).toBe('1');
      const searched = await api('POST', '/api/analyzer/_search', { key: keys.read, json: { query: { _field: 'dataTypeList', _value: 'domain' }, range: 'all' } });
      for (const worker of [...listed.body, ...searched.body]) {
        expect(worker).toMatchObject({ id: ANALYZER_ID, name: 'keyword', version: '2.2', description: 'finds keywords', dataTypeList: expect.any(Array), maxTlp: 4, maxPap: 3 });
      }
      const responders = await api('POST', '/api/responder/_search', { key: keys.read, json: { query: { _field: 'dataTypeList', _value: 'thehive:case_artifact' }, range: 'all' } });
      expect(responders.body.map((worker: any) => worker.id).sort()).toEqual([BLOCKLIST_ID, RESPONDER_ID]);
      const user = await api('GET', '/api/user/current', { key: keys.read });
      expect(user.body).toMatchObject({ id: 'thehive-read', roles: ['read'] });
    });

    it('runs an analyzer as TheHive does and polls waitreport until the job is done', async () => {
      const started = await api('POST', `/api/analyzer/${ANALYZER_ID}/run`, {
        key: keys.analyze,
        json: { tlp: 2, pap: 2, dataType: 'other', message: 'case #7', data: `nothing here ${randomBytes(4).toString('hex')}`, parameters: {} },
      });
      expect(started.status).toBe(200);
      // TheHive's OutputJob needs these, typed so.
      expect(started.body).toMatchObject({ id: expect.any(String), workerId: ANALYZER_ID, date: expect.any(Number), status: 'Waiting', organization: 'docket', dataType: 'other', type: 'analyzer' });
      let report = await api('GET', `/api/job/${started.body.id}/waitreport?atMost=${encodeURIComponent('1 minute')}`, { key: keys.read });
      for (let polls = 0; polls < 5 && ['Waiting', 'InProgress'].includes(report.body.status); polls += 1) {
        report = await api('GET', `/api/job/${started.body.id}/waitreport?atMost=${encodeURIComponent('1 minute')}`, { key: keys.read });
      }
      expect(report.body).toMatchObject({ status: 'Success', endDate: expect.any(Number), report: { success: true, summary: { taxonomies: [{ level: 'safe' }] } } });
      const job = await api('GET', `/api/job/${started.body.id}`, { key: keys.read });
      expect(job.body).toMatchObject({ id: started.body.id, status: 'Success' });
      const found = await api('POST', '/api/job/_search', { key: keys.read, json: { query: { _and: [{ _field: 'dataType', _value: 'other' }, { _field: 'status', _value: 'Success' }] }, range: 'all' } });
      expect(found.body.map((item: any) => item.id)).toContain(started.body.id);
    });

    it('serves a file artifact of a finished job at /api/datastore/<attachment.id>, as TheHive imports it, named after the artifact', async () => {
      const started = await api('POST', `/api/analyzer/${ANALYZER_ID}/run`, {
        key: keys.analyze, json: { tlp: 2, pap: 2, dataType: 'other', data: `an evil thing ${randomBytes(4).toString('hex')}`, parameters: {} },
      });
      expect(started.status).toBe(200);
      const report = await api('GET', `/api/job/${started.body.id}/waitreport?atMost=1minute`, { key: keys.read });
      expect(report.body).toMatchObject({ status: 'Success', report: { success: true } });
      const artifact = report.body.report.artifacts.find((candidate: any) => candidate.dataType === 'file');
      expect(artifact).toMatchObject({ attachment: { name: 'keyword-note.txt', contentType: expect.any(String), size: 21 } });

      const note = await download(artifact.attachment.id);
      expect(note.status).toBe(200);
      expect(note.bytes.toString('utf8')).toBe('keywords found: evil\n');
      expect(createHash('sha256').update(note.bytes).digest('hex')).toBe(artifact.attachment.id);
      expect(note.headers.get('content-type')).toBe('application/octet-stream');
      expect(note.headers.get('x-content-type-options')).toBe('nosniff');
      expect(note.headers.get('content-disposition')).toBe('attachment; filename="keyword-note.txt"; filename*=UTF-8\'\'keyword-note.txt');

      // Cortex's ?name= renames the download; a hostile name loses its path, quotes and line breaks.
      const renamed = await download(artifact.attachment.id, `?name=${encodeURIComponent('../../etc/"passwd"\r\nx: é.txt')}`);
      expect(renamed.status).toBe(200);
      expect(renamed.headers.get('content-disposition')).toBe('attachment; filename="_passwd_x: _.txt"; filename*=UTF-8\'\'%22passwd%22x%3A%20%C3%A9.txt');
      expect(await download(artifact.attachment.id, '', null)).toMatchObject({ status: 401 });
    });

    it('runs an observable responder (blocklist) on a thehive:case_artifact once, on the case observable\'s own value, after approval', async () => {
      const target = `https://blocked-${randomBytes(4).toString('hex')}.example/gate.php`;
      const observable = { ...CASE_ARTIFACT, _id: '~41200', dataType: 'url', data: target };
      const started = await api('POST', `/api/responder/${BLOCKLIST_ID}/run`, { json: { label: 'block it', data: observable, dataType: 'thehive:case_artifact', tlp: 2, pap: 2, parameters: {} } });
      expect(started.status).toBe(200);
      expect(started.body).toMatchObject({ type: 'responder', workerId: BLOCKLIST_ID, dataType: 'thehive:case_artifact', data: observable, status: 'Waiting' });
      await poll(() => api('GET', `/v1/investigations/${started.body.id}`), (answer) => answer.body.status?.responses?.[0]?.approval?.state === 'pending', 'the response to wait for approval');
      expect(await blocked(target)).toBe(0);

      expect((await api('POST', `/v1/investigations/${started.body.id}/approve`, { json: { reason: 'TheHive analyst asked' } })).status).toBe(200);
      const report = await api('GET', `/api/job/${started.body.id}/waitreport?atMost=1minute`, { key: keys.read });
      expect(report.body).toMatchObject({ status: 'Success', report: { success: true, full: { entry: target, added: true } } });
      expect(await blocked(target)).toBe(1);
      const v1 = await api('GET', `/v1/investigations/${started.body.id}`, { key: keys.read });
      expect(v1.body.report.responses).toEqual([expect.objectContaining({ responder: 'blocklist', observable: expect.objectContaining({ type: 'url', data: target }) })]);
    });

    it('runs a responder with TheHive\'s action body (label, data object, dataType, tlp, pap, parameters)', async () => {
      const started = await api('POST', `/api/responder/${RESPONDER_ID}/run`, {
        json: { label: 'tag it', data: CASE_ARTIFACT, dataType: 'thehive:case_artifact', tlp: 2, pap: 2, parameters: { user: 'alice' } },
      });
      expect(started.status).toBe(200);
      expect(started.body).toMatchObject({ type: 'responder', status: 'Waiting', label: 'tag it', parameters: { user: 'alice' } });
      await poll(() => api('GET', `/v1/investigations/${started.body.id}`), (answer) => answer.body.status?.responses?.[0]?.approval?.state === 'pending', 'the response to wait for approval');
      const rejected = await api('POST', `/v1/investigations/${started.body.id}/reject`, { json: { reason: 'not this one' } });
      expect(rejected.status).toBe(200);
      const report = await api('GET', `/api/job/${started.body.id}/waitreport?atMost=1minute`, { key: keys.read });
      expect(report.body).toMatchObject({ status: 'Failure', report: { success: false, errorMessage: expect.stringContaining('rejected') } });
    });
  });

  describe('refusals, in Cortex\'s error shape', () => {
    const cortexError = (type: string) => ({ type, message: expect.any(String) });

    it('answers an unknown analyzer, responder or job with 404 naming what to use', async () => {
      const analyzer = await api('POST', '/api/analyzer/nothing_1_0/run', { key: keys.analyze, json: { dataType: 'domain', data: 'example.org' } });
      expect(analyzer).toMatchObject({ status: 404, body: cortexError('AnalyzerNotFoundError') });
      expect(analyzer.body.message).toContain(ANALYZER_ID);
      expect(await api('GET', '/api/responder/nothing_1_0', { key: keys.read })).toMatchObject({ status: 404, body: cortexError('ResponderNotFoundError') });
      for (const id of ['cortex-nothing', 'not-a-cortex-job', '__proto__']) {
        expect(await api('GET', `/api/job/${id}/report`, { key: keys.read })).toMatchObject({ status: 404, body: cortexError('JobNotFoundError') });
      }
      expect(await api('DELETE', '/api/job/cortex-nothing', { key: keys.analyze })).toMatchObject({ status: 404, body: cortexError('JobNotFoundError') });
      expect(await api('GET', '/api/nothing', { key: keys.read })).toMatchObject({ status: 404, body: cortexError('NotFoundError') });
    });

    it('refuses a data type the analyzer does not take, missing data, and a bad body with 400', async () => {
      const badType = await api('POST', `/api/analyzer/${ANALYZER_ID}/run`, { key: keys.analyze, json: { dataType: 'ip', data: '203.0.113.9' } });
      expect(badType).toMatchObject({ status: 400, body: cortexError('BadRequest') });
      expect(badType.body.message).toContain('domain, other, file');
      const missing = await api('POST', `/api/analyzer/${ANALYZER_ID}/run`, { key: keys.analyze, json: { dataType: 'domain' } });
      expect(missing).toMatchObject({ status: 400, body: { type: 'BadRequest', message: expect.stringContaining('data is missing') } });
      const fileWithoutAttachment = await api('POST', `/api/analyzer/${ANALYZER_ID}/run`, { key: keys.analyze, json: { dataType: 'file', data: 'x' } });
      expect(fileWithoutAttachment).toMatchObject({ status: 400, body: cortexError('BadRequest') });
      const badTlp = await api('POST', `/api/analyzer/${ANALYZER_ID}/run`, { key: keys.analyze, json: { dataType: 'domain', data: 'example.org', tlp: 9 } });
      expect(badTlp).toMatchObject({ status: 400, body: cortexError('BadRequest') });
      const notAnObject = await api('POST', `/api/responder/${RESPONDER_ID}/run`, { json: { dataType: 'thehive:case_artifact', data: 'evil.example.com' } });
      expect(notAnObject).toMatchObject({ status: 400, body: cortexError('BadRequest') });
      const wrongObject = await api('POST', `/api/responder/${RESPONDER_ID}/run`, { json: { dataType: 'thehive:case', data: { title: 'x' } } });
      expect(wrongObject).toMatchObject({ status: 400, body: cortexError('BadRequest') });
      const hashObservable = await api('POST', `/api/responder/${BLOCKLIST_ID}/run`, { json: { dataType: 'thehive:case_artifact', data: { ...CASE_ARTIFACT, dataType: 'hash', data: 'd41d8cd98f00b204e9800998ecf8427e' } } });
      expect(hashObservable).toMatchObject({ status: 400, body: { type: 'BadRequest', message: expect.stringContaining('this case observable is a hash') } });
      const search = await api('POST', '/api/analyzer/_search', { key: keys.read, json: { query: { _script: 'x' } } });
      expect(search).toMatchObject({ status: 400, body: cortexError('SearchError') });
      const range = await api('GET', '/api/analyzer?range=ten', { key: keys.read });
      expect(range).toMatchObject({ status: 400, body: cortexError('SearchError') });
      const deep = await api('POST', '/api/job/_search', { key: keys.read, json: { query: JSON.parse(`${'{"_not":'.repeat(40)}{}${'}'.repeat(40)}`) } });
      expect(deep).toMatchObject({ status: 400, body: cortexError('SearchError') });
    });

    it('refuses a malformed attachment id with 400, and answers 404 for a blob no Cortex job shows, even one Docket holds', async () => {
      const malformed = await download('not-a-hash');
      expect({ status: malformed.status, body: malformed.json() }).toEqual({ status: 400, body: cortexError('BadRequest') });
      const unknown = await download(randomBytes(32).toString('hex'));
      expect({ status: unknown.status, body: unknown.json() }).toEqual({ status: 404, body: cortexError('NotFoundError') });

      // A Menagerie upload: Docket holds its bytes, but it is no Cortex job's attachment.
      const content = `not for the datastore ${randomBytes(6).toString('hex')}`;
      const form = new FormData();
      form.append('upload', new Blob([content]), 'private.txt');
      const uploaded = await fetch(`${url}/keyword/upload`, { method: 'POST', headers: { authorization: `Bearer ${keys.analyze}` }, body: form });
      expect(uploaded.status).toBe(200);
      const sha256 = createHash('sha256').update(content).digest('hex');
      expect(blobFiles().some((file) => file.endsWith(sha256))).toBe(true);
      const held = await download(sha256, '', keys.admin);
      expect({ status: held.status, body: held.json() }).toEqual({ status: 404, body: cortexError('NotFoundError') });
    });

    it('refuses an attachment over the analyzer\'s sizelimit with 413 and keeps nothing', async () => {
      const form = new FormData();
      form.append('_json', JSON.stringify({ dataType: 'file', tlp: 2 }));
      form.append('attachment', new Blob([Buffer.alloc(70 * 1024, 'a')]), 'big.txt');
      const before = blobFiles();
      const answer = await api('POST', `/api/analyzer/${ANALYZER_ID}/run`, { key: keys.analyze, body: form });
      expect(answer).toMatchObject({ status: 413, body: cortexError('PayloadTooLarge') });
      expect(blobFiles()).toEqual(before);
    });

    it('refuses a responder run to an analyze key with 403, and any call without a valid key with 401', async () => {
      const analyzeKey = await api('POST', `/api/responder/${RESPONDER_ID}/run`, { key: keys.analyze, json: { dataType: 'thehive:case_artifact', data: CASE_ARTIFACT } });
      expect(analyzeKey).toMatchObject({ status: 403, body: cortexError('AuthorizationError') });
      expect(analyzeKey.body.message).toContain('respond');
      expect(await api('GET', '/api/analyzer', { key: null })).toMatchObject({ status: 401, body: cortexError('AuthenticationError') });
      expect(await api('GET', '/api/analyzer', { key: 'dk_not_a_key' })).toMatchObject({ status: 401, body: cortexError('AuthenticationError') });
      expect(await api('GET', '/api/analyzerdefinition', { key: keys.analyze })).toMatchObject({ status: 403, body: cortexError('AuthorizationError') });
      expect(await api('GET', '/api/job/cortex-x/waitreport?atMost=forever', { key: keys.read })).toMatchObject({ status: 400, body: cortexError('BadRequest') });
    });
  });
});
