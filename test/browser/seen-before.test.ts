import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { parse as parseYaml } from 'yaml';
import { launchChromium, SCREENSHOTS, type TestBrowser, watchProblems } from '../helpers/chromium';
import { enginesFolder } from '../helpers/fixtures';
import { poll, ROOT, startTestSystem, type TestSystem } from '../helpers/system';

/**
 * The console's "Seen before?" search and the list's "What" column, in Debian's Chromium against a
 * whole Docket (real Temporal, the ioc-lookup engine in its container).
 */
const sample = (name: string) => parseYaml(readFileSync(join(ROOT, 'engines', name, 'engine.yaml'), 'utf8'));

const run = randomBytes(4).toString('hex');
const host = `evil-${run}.example.com`;
const url = `https://${host}/login.php`;

describe('console: seen before', () => {
  let docket: TestSystem;
  let engines: string;
  let browser: TestBrowser;
  let page: Page;
  let problems: string[];
  let byText: string;
  let byList: string;

  const start = async (body: Record<string, unknown>) => {
    const response = await fetch(`${docket.baseUrl}/v1/investigations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(response.status).toBe(202);
    const { id } = (await response.json()) as { id: string };
    await docket.client.workflow.getHandle(id).result();
    return id;
  };

  beforeAll(async () => {
    engines = enginesFolder([sample('ioc-lookup')]);
    // Callers without a key may read and analyze (the default on a gateway without keys): the console needs no sign-in.
    docket = await startTestSystem({ enginesDir: engines, env: { DOCKET_ANONYMOUS: 'analyze' } });
    byText = await start({ text: `phishing page at hxxps://${host.replace('.', '[.]')}/login.php` });
    byList = await start({
      observables: [
        { type: 'domain', data: host },
        { type: 'url', data: url },
        ...[7, 8, 9, 10].map((octet) => ({ type: 'ip', data: `198.51.100.${octet}` })),
      ],
    });
    // Visibility follows the workflows closely, not at once.
    await poll(
      async () => (await (await fetch(`${docket.baseUrl}/v1/investigations?observable=${encodeURIComponent(url)}`)).json()) as { investigations: unknown[] },
      (listed) => listed.investigations.length === 2,
      'both investigations in visibility',
    );
    browser = await launchChromium();
    page = await browser.context.newPage();
    problems = watchProblems(page);
  });

  afterAll(async () => {
    await browser?.close();
    await docket?.close();
    if (engines) rmSync(engines, { recursive: true, force: true });
  });

  afterEach(() => {
    expect(problems).toEqual([]);
  });

  const rows = () => page.locator('table.list tbody tr');
  const rowOf = (id: string) => rows().filter({ has: page.getByRole('link', { name: id, exact: true }) });

  it('shows in the list what each investigation was asked about, and how many more values it held', async () => {
    await page.goto(`${docket.baseUrl}/console/#/`);
    await rowOf(byList).waitFor();
    await page.getByRole('columnheader', { name: 'What' }).waitFor();
    expect(await rowOf(byText).locator('td.what').textContent()).toBe(url);
    expect(await rowOf(byList).locator('td.what').textContent()).toBe(`${host}, ${url}, 198.51.100.7 +3 more`);
    expect(await page.locator('main').textContent()).not.toContain('null');
    await page.screenshot({ path: join(SCREENSHOTS, 'seen-before-list-what.png'), fullPage: true });
  });

  it('finds both investigations from a defanged value typed into "Seen before?", newest first, with their verdicts', async () => {
    await page.goto(`${docket.baseUrl}/console/#/`);
    await page.getByLabel('Seen before?').fill(`hxxps://${host.toUpperCase().replace('.', '[.]')}/login.php`);
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForURL(/observable=/);
    await page.getByText('Investigations that analyzed').waitFor();
    await poll(() => rows().count(), (count) => count === 2, 'two rows');
    const listed = await rows().locator('td:first-child').allTextContents();
    expect(listed).toEqual([byList, byText]);
    const verdicts = await rows().locator('td.verdict').allTextContents();
    expect(verdicts.every((verdict) => ['info', 'safe', 'suspicious', 'malicious'].includes(verdict))).toBe(true);
    await page.screenshot({ path: join(SCREENSHOTS, 'seen-before-search.png'), fullPage: true });
  });

  it('links each value in the list to its own search, and says when a value was never seen', async () => {
    await page.goto(`${docket.baseUrl}/console/#/`);
    await rowOf(byList).getByRole('link', { name: host, exact: true }).click();
    await page.waitForURL(new RegExp(`observable=${host.replace(/[.]/g, '\\.')}`));
    await poll(() => rows().locator('td:first-child').allTextContents(), (ids) => ids.length === 1, 'one row');
    expect(await rows().locator('td:first-child').allTextContents()).toEqual([byList]);
    expect(await page.getByLabel('Seen before?').inputValue()).toBe(host);

    await page.getByLabel('Seen before?').fill(`never-${run}.example`);
    await page.getByLabel('Seen before?').press('Enter');
    await page.getByText(`Not seen: no investigation that Temporal still keeps analyzed never-${run}.example.`).waitFor();
    await page.screenshot({ path: join(SCREENSHOTS, 'seen-before-not-seen.png'), fullPage: true });
  });
});
