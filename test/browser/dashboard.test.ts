import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { parse as parseYaml, stringify } from 'yaml';
import { KeyStore } from '../../gateway/keys';
import { launchChromium, SCREENSHOTS, type TestBrowser, watchProblems } from '../helpers/chromium';
import { docker } from '../helpers/engines';
import { enginesFolder, writeApprovalPolicy } from '../helpers/fixtures';
import { poll, ROOT, startTestSystem, type TestSystem } from '../helpers/system';

/**
 * The dashboard, engines, schedules and compliance pages in Chromium against a whole Docket: an
 * investigation waiting for approval, one finished with an engine whose image was never built, a
 * manifest that does not load, a paused schedule, and compliance findings skipped and remediated.
 */
const WAIT_MS = 120_000;
const ACCOUNT = '310987654321';

const sample = (name: string) => parseYaml(readFileSync(join(ROOT, 'engines', name, 'engine.yaml'), 'utf8'));
const blocklistVolume = `docket-blocklist-dashboard-${randomBytes(4).toString('hex')}`;

describe('console pages for the analyst\'s day', () => {
  let docket: TestSystem;
  let engines: string;
  let scratch: string;
  let browser: TestBrowser;
  let adminKey: string;
  let readKey: string;
  let waitingId: string;
  let finishedId: string;
  let page: Page;
  let pageProblems: string[];

  const api = async (path: string, body: unknown) => {
    const response = await fetch(`${docket.baseUrl}${path}`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${adminKey}` }, body: JSON.stringify(body),
    });
    return (await response.json()) as any;
  };
  const read = async (path: string) => (await fetch(`${docket.baseUrl}${path}`, { headers: { authorization: `Bearer ${adminKey}` } })).json() as Promise<any>;
  const finding = (complianceTags: string, second: number) => ({
    reportTime: new Date(Date.UTC(2026, 1, 4, 9, 0, second)).toISOString(),
    status: 'Failed',
    rule: { name: second === 1 ? 'CloudTrail must be on' : 'instances must not be public', ruleId: `D9.UI.${second}`, complianceTags, severity: 'High' },
    account: { id: ACCOUNT, name: 'console account', vendor: 'aws' },
    region: 'N. Virginia',
    entity: { id: `i-0console${second}`, name: `web-${second}`, region: 'us_east_1', type: 'Instance' },
  });

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'docket-dashboard-'));
    const policyFile = join(scratch, 'policy.yaml');
    writeApprovalPolicy(policyFile);
    writeFileSync(join(scratch, 'accounts.yaml'), stringify({ accounts: { [ACCOUNT]: { name: 'console account', region: 'us-east-1', roleArn: `arn:aws:iam::${ACCOUNT}:role/bots` } } }));
    mkdirSync(join(scratch, 'schedules'));
    writeFileSync(join(scratch, 'schedules', 'watched.yaml'), stringify({
      id: 'watched-domains', description: 'hourly ioc-lookup of the watched domains', interval: '1h', paused: true,
      action: { investigate: { engines: ['ioc-lookup'], observables: [{ type: 'domain', data: 'watched.example.org' }] } },
    }));
    engines = enginesFolder([
      sample('ioc-lookup'),
      { ...sample('blocklist'), volumes: [{ name: blocklistVolume, target: '/blocklist' }] },
      { name: 'ghost', kind: 'analyzer', description: 'an engine whose image was never built', image: 'docket/ghost-never-built:0.0', accepts: ['ip'], protocol: 'cortex', timeout: '30s' },
      // No image: skipped, and listed with the reason.
      { name: 'broken', kind: 'analyzer', accepts: ['ip'], protocol: 'cortex' },
    ]);
    docket = await startTestSystem({
      enginesDir: engines,
      env: {
        DOCKET_POLICY_FILE: policyFile, DOCKET_ACCOUNTS_FILE: join(scratch, 'accounts.yaml'), DOCKET_SCHEDULES_DIR: join(scratch, 'schedules'), DOCKET_ANONYMOUS: 'none',
      },
    });
    const keys = new KeyStore(join(docket.dataDir, 'keys.json'));
    adminKey = (await keys.create('dashboard-admin', 'admin')).key;
    readKey = (await keys.create('dashboard-reader', 'read')).key;

    waitingId = (await api('/v1/investigations', { text: 'mail links to hxxps://evil[.]example/dashboard' })).id;
    finishedId = (await api('/v1/investigations', { observables: [{ type: 'ip', data: '198.51.100.99' }] })).id;
    const sent = await api('/v1/events/compliance', { findings: [finding('CIS 2.1', 1), finding('AUTO: no_such_bot now', 2)] });
    expect(sent.findings.map((answer: any) => answer.result)).toEqual(['skipped', 'started']);
    await poll(() => read(`/v1/investigations/${finishedId}`), (body) => body.state === 'completed', 'the ip investigation');
    await poll(() => read(`/v1/investigations/${waitingId}`), (body) => body.status?.responses?.some((r: any) => r.approval.state === 'pending'), 'the approval');
    await docket.client.workflow.getHandle(sent.findings[1].workflowId).result();

    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await docket?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    if (engines) rmSync(engines, { recursive: true, force: true });
    await docker.getVolume(blocklistVolume).remove().catch(() => undefined);
  });

  beforeEach(async () => {
    page = await browser.context.newPage();
    pageProblems = watchProblems(page);
  });

  afterEach(async () => {
    await page.close();
    // A Content-Security-Policy refusal (an inline style, eval in the chart library) shows up here.
    expect(pageProblems).toEqual([]);
  });

  const shoot = (name: string) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  const signIn = async (key = adminKey) => {
    await page.goto(`${docket.baseUrl}/console/#/sign-in`);
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Investigations', level: 1 }).waitFor();
  };

  it('draws the dashboard as charts: verdicts per hour, jobs by engine and outcome, run times, approvals waiting and failures by class', async () => {
    await signIn();
    await page.getByRole('link', { name: 'Dashboard', exact: true }).click();
    await page.getByRole('link', { name: '24 h' }).click();
    await page.waitForURL(/#\/dashboard\?window=24h$/);
    const charts = page.locator('.chart-panel canvas');
    await poll(() => charts.count(), (n) => n === 5, 'five charts');
    // Each canvas is a Chart.js chart that has drawn (the library ran under the page's CSP).
    // A string, evaluated in the page: this file is compiled without the DOM's types.
    const drawn = await page.evaluate(`[...document.querySelectorAll('.chart-panel canvas')].map((canvas) => {
      const chart = globalThis.Chart.getChart(canvas);
      return Boolean(chart) && canvas.getBoundingClientRect().width > 0 && chart.data.datasets.length > 0;
    })`);
    expect(drawn).toEqual([true, true, true, true, true]);
    const label = (title: string) => page.getByRole('region', { name: title }).locator('canvas').getAttribute('aria-label');
    expect(await label('Investigations by verdict')).toContain('1 malicious');
    expect(await label('Engine jobs by outcome')).toContain('ioc-lookup: 1 success');
    expect(await label('Engine jobs by outcome')).toContain('ghost: 0 success, 0 failure, 0 timeout, 1 error');
    expect(await label('Engine run time (seconds)')).toMatch(/ioc-lookup: median \d/);
    expect(await label('Failures by class')).toContain('image missing: 1');
    const approvals = page.getByRole('region', { name: 'Approvals waiting (hours)' });
    expect(await approvals.locator('canvas').getAttribute('aria-label')).toContain('blocklist on url https://evil.example/dashboard');
    expect(await page.locator('.tile', { hasText: 'Approvals waiting' }).locator('dd').textContent()).toBe('1');
    expect(await page.locator('.tile', { hasText: 'Investigations started' }).locator('dd').textContent()).toBe('2');
    await shoot('dashboard');

    await approvals.getByRole('link', { name: /blocklist on url/ }).click();
    await page.waitForURL(new RegExp(`#/investigations/${waitingId}$`));
  });

  it('shows each engine with its image present or missing (and the command that builds it), concurrency, recent jobs, and the skipped manifests', async () => {
    await signIn();
    await page.getByRole('link', { name: 'Engines', exact: true }).click();
    const ghost = page.getByRole('listitem', { name: 'ghost' });
    await ghost.waitFor();
    expect(await ghost.textContent()).toContain('missing');
    expect(await ghost.locator('code', { hasText: 'engines:build' }).textContent()).toBe('npm run engines:build -- ghost');
    const lookup = page.getByRole('listitem', { name: 'ioc-lookup' });
    expect(await lookup.locator('.badge', { hasText: 'present' }).count()).toBe(1);
    expect(await lookup.textContent()).toContain('4 at once per worker');
    expect(await lookup.textContent()).toMatch(/sha256:[0-9a-f]{12}/);
    expect(await lookup.getByRole('link', { name: finishedId }).count()).toBe(1);
    expect(await page.locator('ul.skipped').textContent()).toContain('broken');
    await shoot('engines');
  });

  it('lists schedules with next and recent runs; the respond role runs, unpauses and pauses one, a read key is told which role it needs', async () => {
    await signIn();
    await page.getByRole('link', { name: 'Schedules', exact: true }).click();
    const schedule = page.getByRole('listitem', { name: 'watched-domains' });
    await schedule.waitFor();
    expect(await schedule.locator('.badge', { hasText: 'paused' }).count()).toBe(1);
    expect(await schedule.textContent()).toContain('No runs yet.');

    await schedule.getByRole('button', { name: 'Run now' }).click();
    await page.getByText('watched-domains: run started.').waitFor();
    await schedule.locator('a.mono').first().waitFor({ timeout: WAIT_MS });
    await schedule.getByRole('button', { name: 'Unpause' }).click();
    await schedule.locator('.badge', { hasText: 'active' }).waitFor();
    expect(await schedule.textContent()).not.toContain('none while paused');
    await shoot('schedules');
    await schedule.getByRole('button', { name: 'Pause' }).click();
    await schedule.locator('.badge', { hasText: 'paused' }).waitFor();

    await page.evaluate('sessionStorage.clear()');
    await signIn(readKey);
    await page.getByRole('link', { name: 'Schedules', exact: true }).click();
    await page.getByRole('listitem', { name: 'watched-domains' }).getByRole('button', { name: 'Unpause' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    expect(await alert.textContent()).toContain('needs respond');
  });

  it('shows compliance findings: the remediation with its bot\'s outcome, outcomes per bot as a chart, and the skipped finding with its reason', async () => {
    await signIn();
    await page.getByRole('link', { name: 'Compliance', exact: true }).click();
    const remediation = page.locator('li.card.finding', { hasText: 'instances must not be public' });
    await remediation.waitFor();
    expect(await remediation.textContent()).toContain('unknown bot no_such_bot');
    expect(await remediation.locator('.badge', { hasText: 'failed' }).count()).toBe(1);
    const skipped = page.locator('li.card.unstarted', { hasText: 'CloudTrail must be on' });
    expect(await skipped.textContent()).toContain('no AUTO: tag');
    expect(await page.getByRole('region', { name: 'Outcomes per bot' }).locator('canvas').getAttribute('aria-label')).toBe('no_such_bot: 0 passed, 1 failed');
    expect(await page.locator('.tile', { hasText: 'Skipped' }).locator('dd').textContent()).toBe('1');
    await shoot('compliance');
  });
});
