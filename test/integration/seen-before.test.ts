import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { InvestigationReport } from '../../core/investigation';
import { INDEX_BYTES } from '../../core/observable-index';
import type { ListedInvestigation } from '../../contract/client';
import { deliver, FakeSlack, slashCommand } from '../helpers/fake-slack';
import { enginesFolder } from '../helpers/fixtures';
import { poll, ROOT, startTestSystem, type TestSystem } from '../helpers/system';

/**
 * "Have we seen this before?" on real Temporal visibility and real engine containers: an
 * investigation of text holding a URL, another of a file in which strings-ioc finds that URL and
 * its domain as artifacts (analyzed in turn by ioc-lookup), searched through the API and Slack.
 */
const sample = (name: string) => parseYaml(readFileSync(join(ROOT, 'engines', name, 'engine.yaml'), 'utf8'));
const secret = randomBytes(16).toString('hex');
const botToken = `xoxb-test-${randomBytes(8).toString('hex')}`;
const SOC = 'CSOC0002';
const BOB = 'UBOB0002';

/** Unique to this run, so another run's investigations in the shared test server never match. */
const run = randomBytes(4).toString('hex');
// strings-ioc takes a bare name for a domain only under a real TLD.
const host = `evil-${run}.example.com`;
const url = `https://${host}/Gate.php?id=7`;

type Listed = { investigations: ListedInvestigation[]; nextPageToken?: string };

describe('seen before', () => {
  let docket: TestSystem;
  let slack: FakeSlack;
  let engines: string;
  let textRun: { id: string; report: InvestigationReport };
  let fileRun: { id: string; report: InvestigationReport; sha256: string };

  beforeAll(async () => {
    slack = await new FakeSlack(botToken).start();
    slack.members.set(SOC, [BOB]);
    engines = enginesFolder([sample('ioc-lookup'), sample('strings-ioc')]);
    docket = await startTestSystem({
      enginesDir: engines,
      env: {
        SLACK_BOT_TOKEN: botToken,
        SLACK_SIGNING_SECRET: secret,
        DOCKET_SLACK_API_URL: slack.apiUrl,
        DOCKET_SLACK_CHANNELS: SOC,
        DOCKET_CONSOLE_URL: 'http://docket.test/console/',
      },
    });
  });

  afterAll(async () => {
    await docket?.close();
    await slack?.close();
    if (engines) rmSync(engines, { recursive: true, force: true });
  });

  const api = (path: string) => fetch(`${docket.baseUrl}${path}`);
  const search = async (value: string) => {
    const response = await api(`/v1/investigations?observable=${encodeURIComponent(value)}`);
    return { status: response.status, body: (await response.json()) as Listed & { error?: { message: string } } };
  };
  const finished = async (id: string) => (await docket.client.workflow.getHandle(id).result()) as InvestigationReport;
  const start = async (body: RequestInit['body'], headers: Record<string, string> = {}) => {
    const response = await fetch(`${docket.baseUrl}/v1/investigations`, { method: 'POST', headers, body });
    expect(response.status).toBe(202);
    return ((await response.json()) as { id: string }).id;
  };
  const ids = (listed: Listed) => listed.investigations.map((item) => item.id);

  it('finds an investigation that was sent a URL and a later one that found it in a file, newest first, each with its verdict', async () => {
    const textId = await start(JSON.stringify({ text: `beacon seen at hxxps://${host.replace('.', '[.]')}/Gate.php?id=7 yesterday` }), { 'content-type': 'application/json' });
    textRun = { id: textId, report: await finished(textId) };

    const content = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1]), Buffer.from(`GET ${url} HTTP/1.1\nfallback ${host}\n`, 'latin1'), Buffer.from([0, 0])]);
    const form = new FormData();
    form.append('file', new Blob([content]), 'implant.bin');
    const fileId = await start(form);
    fileRun = { id: fileId, report: await finished(fileId), sha256: createHash('sha256').update(content).digest('hex') };
    expect(fileRun.report.jobs.map((job) => job.engine).sort()).toEqual(['ioc-lookup', 'ioc-lookup', 'strings-ioc']);

    // Defanged and in other case, as an analyst pastes it: case never matters (core/observable-index.ts).
    const found = await poll(() => search(`hxxps://${host.toUpperCase().replace('.', '[.]')}/Gate.php?id=7`), (answer) => ids(answer.body).length >= 2, 'both investigations in visibility');
    expect(found.status).toBe(200);
    expect(ids(found.body)).toEqual([fileRun.id, textRun.id]);
    const [byFile, byText] = found.body.investigations;
    expect(byFile.verdict).toBe(fileRun.report.verdicts.overall);
    expect(byText.verdict).toBe(textRun.report.verdicts.overall);
    expect(byFile.verdict).toBeDefined();
    expect(byText.verdict).toBeDefined();
    expect(ids((await search(`https://${host}/GATE.PHP?id=7`)).body)).toEqual([fileRun.id, textRun.id]);
    expect(ids((await search(`https://${host}/other.php`)).body)).toEqual([]);

    // The domain was only ever an artifact of the file; the file is found by its hash.
    expect(ids((await search(host.toUpperCase())).body)).toEqual([fileRun.id]);
    expect(ids((await search(fileRun.sha256.toUpperCase())).body)).toEqual([fileRun.id]);
    expect(byFile.observableTypes?.sort()).toEqual(['domain', 'file', 'url']);
    expect(byText.observableTypes).toEqual(['url']);
  });

  it('says in the list what each investigation was asked about, with the searches of its values', async () => {
    const { body } = await search(url);
    const [byFile, byText] = body.investigations;
    expect(byFile.what).toEqual({ items: [{ label: 'implant.bin', search: fileRun.sha256 }], more: 0 });
    expect(byText.what).toEqual({ items: [{ label: url, search: url.toLowerCase() }], more: 0 });
    expect(byFile.observablesIndexed).toEqual({ indexed: 3, of: 3 });
    expect(fileRun.report.observablesIndexed).toEqual({ indexed: 3, of: 3 });
    // Each search link leads back to the investigation it came from.
    expect(ids((await search(byText.what!.items[0].search!)).body)).toContain(textRun.id);
  });

  it(`indexes values up to ${INDEX_BYTES} bytes and says how many, finds odd values by their exact form, and completes`, async () => {
    const odd = [`it's "${run}"\\`, `Зло-${run}.example`, `heart♡${run}`];
    const many = Array.from({ length: 150 }, (_, i) => `bound-${run}-${i}-${'x'.repeat(20)}`);
    const observables = [...odd, ...many].map((data) => ({ type: 'other', data }));
    const id = await start(JSON.stringify({ observables }), { 'content-type': 'application/json' });
    const report = await finished(id);
    expect(report.observablesIndexed!.of).toBe(153);
    expect(report.observablesIndexed!.indexed).toBeLessThan(153);
    expect(report.observablesIndexed!.indexed).toBeGreaterThan(20);

    await poll(() => search(odd[0]), (answer) => ids(answer.body).length === 1, 'the bounded investigation in visibility');
    for (const value of odd) expect(ids((await search(value)).body)).toEqual([id]);
    expect(ids((await search(many[0])).body)).toEqual([id]);
    // Past the bound: analyzed and reported, not searchable, and the list says so.
    expect(report.observables.map((o) => o.data)).toContain(many[149]);
    const last = await search(many[149]);
    expect(ids(last.body)).toEqual([]);
    const listed = (await search(odd[1])).body.investigations[0];
    expect(listed.observablesIndexed).toEqual(report.observablesIndexed);
    expect(listed.what).toEqual({ items: odd.map((label) => expect.objectContaining({ label })), more: 150 });
  });

  it('answers hostile searches with 200 and nothing found, or 400 saying what to send, never a server error', async () => {
    const hostile = ["' OR 1=1", "') OR WorkflowType != ('", '" OR "1"="1', 'a\\', '`x`', '%27', 'x'.repeat(4096), '♡', '\u0000\u0007', 'Ωmega ünïcode'];
    for (const value of hostile) {
      const answer = await search(value);
      expect(answer.status).toBe(200);
      expect(ids(answer.body)).toEqual([]);
    }
    const empty = await search('   ');
    expect(empty.status).toBe(400);
    expect(empty.body.error?.message).toContain('give the value to look for');
    const huge = await search('y'.repeat(9000));
    expect(huge.status).toBe(400);
  });

  it('answers `seen <value>` in Slack with the investigations, their verdicts and the value defanged', async () => {
    const ask = async (text: string) => {
      const command = slashCommand(slack, SOC, BOB, text);
      const responseUrl = (command as { form: Record<string, string> }).form.response_url;
      expect((await deliver(docket.baseUrl, command, { secret })).status).toBe(200);
      const [answer] = await poll(async () => slack.responses.filter((response) => responseUrl.endsWith(response.path)), (found) => found.length > 0, `the answer to ${text}`);
      return `${answer.body.text}\n${JSON.stringify(answer.body.blocks ?? [])}`;
    };
    const answer = await ask(`seen hxxps://${host.replace('.', '[.]')}/Gate.php?id=7`);
    expect(answer).toContain('Seen in 2 investigation(s), newest first');
    expect(answer.indexOf(fileRun.id)).toBeGreaterThan(-1);
    expect(answer.indexOf(fileRun.id)).toBeLessThan(answer.indexOf(textRun.id));
    expect(answer).toContain(`*${fileRun.report.verdicts.overall}*`);
    expect(answer).toContain('implant[.]bin');
    expect(answer).not.toContain(`https://${host}`);
    expect(await ask(`seen never-${run}.example`)).toContain('Not seen');
  });
});
