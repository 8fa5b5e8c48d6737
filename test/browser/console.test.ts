import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { parse as parseYaml } from 'yaml';
import { KeyStore } from '../../gateway/keys';
import { launchChromium, SCREENSHOTS, type TestBrowser, watchProblems } from '../helpers/chromium';
import { docker, readVolumeFile } from '../helpers/engines';
import { enginesFolder, writeApprovalPolicy } from '../helpers/fixtures';
import { poll, ROOT, startTestSystem, type TestSystem } from '../helpers/system';

/**
 * The console in a real browser (Debian's Chromium, driven by playwright-core) against a whole
 * Docket: real Temporal, real engine containers, a policy that asks for approval before blocking.
 */
const WAIT_MS = 120_000;

const sample = (name: string) => parseYaml(readFileSync(join(ROOT, 'engines', name, 'engine.yaml'), 'utf8'));
const blocklistVolume = `docket-blocklist-console-${randomBytes(4).toString('hex')}`;
const policyFile = join(tmpdir(), `docket-console-policy-${randomBytes(4).toString('hex')}.yaml`);

describe('console', () => {
  let docket: TestSystem;
  let engines: string;
  let browser: TestBrowser;
  let adminKey: string;
  let page: Page;
  // What the page reported as broken: script errors and refusals by the Content-Security-Policy.
  let pageProblems: string[];

  beforeAll(async () => {
    writeApprovalPolicy(policyFile);
    engines = enginesFolder([
      sample('ioc-lookup'),
      sample('fileinfo'),
      { ...sample('blocklist'), volumes: [{ name: blocklistVolume, target: '/blocklist' }] },
    ]);
    // No anonymous access: the console must sign in with a key for everything it shows.
    docket = await startTestSystem({ enginesDir: engines, env: { DOCKET_POLICY_FILE: policyFile, DOCKET_ANONYMOUS: 'none' } });
    adminKey = (await new KeyStore(join(docket.dataDir, 'keys.json')).create('console-admin', 'admin')).key;
    browser = await launchChromium({ acceptDownloads: true });
  });

  afterAll(async () => {
    await browser?.close();
    await docket?.close();
    rmSync(policyFile, { force: true });
    if (engines) rmSync(engines, { recursive: true, force: true });
    await docker.getVolume(blocklistVolume).remove().catch(() => undefined);
  });

  // Each test has its own tab, so its own sessionStorage: it starts signed out.
  beforeEach(async () => {
    page = await browser.context.newPage();
    pageProblems = watchProblems(page);
  });

  afterEach(async () => {
    const name = (expect.getState().currentTestName ?? 'test').replace(/^console\s+/, '').replace(/[^a-z0-9]+/gi, '-').toLowerCase().slice(0, 80);
    await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true }).catch(() => undefined);
    await page.close();
    expect(pageProblems).toEqual([]);
  });

  const open = async (hash = '') => {
    await page.goto(`${docket.baseUrl}/${hash ? `console/${hash}` : ''}`);
  };
  const signIn = async () => {
    await open('#/sign-in');
    await page.getByLabel('API key').fill(adminKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Investigations', level: 1 }).waitFor();
  };
  const submitText = async (text: string) => {
    await page.getByRole('link', { name: 'New investigation' }).first().click();
    await page.getByLabel('Text', { exact: true }).fill(text);
    await page.getByRole('button', { name: 'Start investigation' }).click();
    await page.waitForURL(/#\/investigations\/[0-9a-f-]+$/);
    return decodeURIComponent(page.url().split('#/investigations/')[1]);
  };
  const completed = () => page.locator('.summary').getByText('completed', { exact: true }).waitFor({ timeout: WAIT_MS });
  const pendingCard = (responder: string) => page.locator('li.card.pending').filter({ hasText: responder });

  it('asks for a key when the gateway takes no calls without one, and refuses a bad key with a visible message', async () => {
    await open();
    await page.waitForURL(/\/console\/#\/sign-in$/);
    await page.getByText('This gateway takes no calls without a key').waitFor();
    await page.getByLabel('API key').fill('dk_this-key-was-never-issued');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    expect(await alert.textContent()).toContain('this key is not valid');
    expect(await page.evaluate("sessionStorage.getItem('docket.key')")).toBeNull();
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Sign in');
  });

  it('serves the console with a strict Content-Security-Policy from / and its own files', async () => {
    const response = await page.goto(`${docket.baseUrl}/`);
    expect(response?.url()).toBe(`${docket.baseUrl}/console/`);
    expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
    expect(response?.headers()['content-security-policy']).not.toContain('unsafe-inline');
    const script = await page.request.get(`${docket.baseUrl}/console/app.js`);
    expect(script.headers()['content-type']).toMatch(/^text\/javascript/);
    expect((await page.request.get(`${docket.baseUrl}/console/..%2fconsole.ts`)).status()).toBe(404);
  });

  it('signs in, submits text with a defanged URL, shows it waiting for approval, approves the blocklist and shows the report', async () => {
    await signIn();
    expect(await page.getByText('Signed in with an API key').isVisible()).toBe(true);
    const id = await submitText('Users clicked hxxps://evil[.]example/a in a mail this morning.');

    const pending = pendingCard('blocklist');
    await pending.waitFor({ timeout: WAIT_MS });
    expect(await pending.textContent()).toContain('url https://evil.example/a');
    expect(await page.locator('.summary').textContent()).toContain('running');
    await page.screenshot({ path: join(SCREENSHOTS, 'waiting-for-approval.png'), fullPage: true });
    await pending.getByLabel('Reason (optional)').fill('confirmed phishing');
    await pending.getByRole('button', { name: 'Approve' }).click();

    await completed();
    expect(await page.locator('.summary .level-malicious').textContent()).toBe('malicious');
    const response = page.locator('li.card.response').filter({ hasText: 'blocklist' });
    expect(await response.textContent()).toContain('approved by console-admin');
    await page.locator('li.card.response .state-good', { hasText: 'success' }).waitFor();
    const report = page.locator('li.card.report').filter({ hasText: 'ioc-lookup' });
    expect(await report.locator('.badges .level-malicious').first().textContent()).toBe('malicious: IOC:Feeds=1 hit(s)');
    expect(await page.locator('.summary a', { hasText: 'Temporal Web UI' }).getAttribute('href')).toContain(`/workflows/${id}`);

    await report.getByRole('button', { name: 'View result' }).click();
    const viewed = await report.locator('pre.result').textContent();
    expect(JSON.parse(viewed ?? '')).toMatchObject({ success: true, summary: { taxonomies: [expect.objectContaining({ level: 'malicious' })] } });
    expect((await readVolumeFile(blocklistVolume, '/volume/blocklist.txt')).split('\n')).toContain('https://evil.example/a');
  });

  it('submits a file, watches it finish, opens its fileinfo report and downloads the result', async () => {
    const content = Buffer.from(`a sample the console uploads ${randomBytes(8).toString('hex')}\n`);
    const sha256 = createHash('sha256').update(content).digest('hex');
    await signIn();
    await page.getByRole('link', { name: 'New investigation' }).first().click();
    await page.getByLabel('Files').setInputFiles({ name: 'sample.txt', mimeType: 'text/plain', buffer: content });
    await page.getByText(`sample.txt (${content.length} B)`).waitFor();
    await page.screenshot({ path: join(SCREENSHOTS, 'new-investigation-form.png'), fullPage: true });
    await page.getByRole('button', { name: 'Start investigation' }).click();
    await page.waitForURL(/#\/investigations\//);
    await completed();

    const report = page.locator('li.card.report').filter({ hasText: 'fileinfo' });
    expect(await report.textContent()).toContain('file sample.txt');
    await report.getByRole('button', { name: 'View result' }).click();
    expect(await report.locator('pre.result').textContent()).toContain(sha256);

    const [download] = await Promise.all([page.waitForEvent('download'), report.getByRole('button', { name: /^Download result/ }).click()]);
    expect(download.suggestedFilename()).toMatch(/-fileinfo\.json$/);
    const saved = JSON.parse(readFileSync((await download.path())!, 'utf8'));
    expect(JSON.stringify(saved)).toContain(sha256);
  });

  it('rejects a pending response with a reason, and records who rejected it', async () => {
    await signIn();
    await page.getByRole('link', { name: 'New investigation' }).first().click();
    await page.getByLabel('Observables').fill('domain phish.example.net');
    await page.getByRole('button', { name: 'Start investigation' }).click();
    const pending = pendingCard('blocklist');
    await pending.waitFor({ timeout: WAIT_MS });
    await pending.getByLabel('Reason (optional)').fill('shared hosting');
    await pending.getByRole('button', { name: 'Reject' }).click();
    await completed();
    const response = page.locator('li.card.response').filter({ hasText: 'blocklist' });
    expect(await response.textContent()).toContain('rejected by console-admin');
    expect(await response.textContent()).toContain('(shared hosting)');
    expect(await readVolumeFile(blocklistVolume, '/volume/blocklist.txt')).not.toContain('phish.example.net');
  });

  it('cancels an investigation that waits for approval', async () => {
    await signIn();
    await submitText('seen talking to 203.0.113.66');
    await pendingCard('blocklist').waitFor({ timeout: WAIT_MS });
    await page.getByLabel('Reason for cancelling (optional)').fill('duplicate');
    await page.getByRole('button', { name: 'Cancel investigation' }).click();
    await completed();
    expect(await page.locator('.summary').textContent()).toContain('cancelled');
    expect(await page.locator('section', { hasText: 'Errors' }).textContent()).toContain('cancelled by console-admin: duplicate');
  });

  it('shows what an investigation holds as text, never as markup', async () => {
    await signIn();
    const hostile = '<img src=x onerror="document.title=\'pwned\'">';
    await page.getByRole('link', { name: 'New investigation' }).first().click();
    await page.getByLabel('Observables').fill(`other ${hostile}`);
    await page.getByRole('button', { name: 'Start investigation' }).click();
    await completed();
    expect(await page.locator('.summary').textContent()).toContain(hostile);
    expect(await page.locator('main img').count()).toBe(0);
    expect(await page.title()).toMatch(/^Investigation .* · Docket$/);
  });

  it('lists investigations, filters them by verdict and pages through them', async () => {
    // Temporal's visibility store lags the workflows a little: wait until it lists the five started above.
    await poll(async () => {
      const response = await fetch(`${docket.baseUrl}/v1/investigations?status=Completed&pageSize=100`, { headers: { authorization: `Bearer ${adminKey}` } });
      return ((await response.json()) as { investigations: Array<{ verdict?: string }> }).investigations;
    }, (listed) => listed.length >= 5 && listed.filter((item) => item.verdict === 'malicious').length >= 2, 'the investigations in the list', WAIT_MS);
    await signIn();
    const rows = page.locator('table.list tbody tr');
    await rows.first().waitFor();
    expect(await rows.count()).toBeGreaterThanOrEqual(5);
    await page.screenshot({ path: join(SCREENSHOTS, 'investigations-list.png'), fullPage: true });

    await page.getByLabel('Verdict').selectOption('malicious');
    await page.getByLabel('Status').selectOption('Completed');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForURL(/verdict=malicious/);
    await page.locator('table.list tbody tr').first().waitFor();
    const verdicts = await page.locator('table.list tbody tr td.verdict').allTextContents();
    expect(verdicts.length).toBeGreaterThan(0);
    expect(new Set(verdicts)).toEqual(new Set(['malicious']));

    await open('#/?pageSize=1');
    await page.getByRole('button', { name: 'Next page' }).click();
    await page.waitForURL(/pageToken=/);
    await page.locator('table.list tbody tr').first().waitFor();
    expect(await page.locator('table.list tbody tr').count()).toBe(1);
    const second = await page.locator('table.list tbody tr td:first-child a').textContent();
    await page.getByRole('button', { name: 'Previous page' }).click();
    await page.waitForURL((url) => !url.hash.includes('pageToken'));
    await page.locator('table.list tbody tr').first().waitFor();
    expect(await page.locator('table.list tbody tr td:first-child a').textContent()).not.toBe(second);
  });
});
