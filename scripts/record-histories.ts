/**
 * Records workflow histories from the Docket checkout in the working directory, as fixtures that every
 * later release must replay (test/integration/replay.test.ts; docs/architecture.md, "Upgrades and
 * replay"), so an investigation started on one release survives an upgrade to the next.
 *
 *   npm run histories:record -- test/fixtures/histories/v0.2.0
 *
 * Docket's own code is loaded from the working directory, never from beside this file, so this script
 * can record an older release from a worktree of its tag (see docs/architecture.md for the commands).
 *
 * Everything runs on this machine and is removed afterwards: a Temporal dev server of its own, the
 * release's gateway, main worker and engine workers in this process (its `startSystem`), real engine
 * containers, a stand-in for Slack on loopback, a webhook receiver on loopback, and an AWS emulator
 * (moto) on a Docker network this script creates. No request leaves the machine.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@temporalio/client';
import Docker from 'dockerode';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { historyToJson } from './lib/history-json';

const USAGE = 'usage: npm run histories:record -- <out-dir>   (run from the root of the Docket checkout to record)';
/** Engines the scenarios below use; each must be declared in the release's engines/ folder and built. */
const RELEASE_ENGINES = ['ioc-lookup', 'blocklist', 'fileinfo', 's3_block_public_access'];
/** A fixture stays far below Temporal's own payload warning; larger means an input carried bulk data. */
const MAX_FIXTURE_BYTES = 256 * 1024;
const WAIT_LIMIT_MS = 180_000;
const MOTO_REQUIREMENT = 'moto[server]>=5.0,<6';
const ACCOUNT = '123456789012';
const BUCKET = 'docket-recorded-public-bucket';
const SLACK_CHANNEL = 'CSOC0001';
const SLACK_USER = 'UANALYST1';

const run = promisify(execFile);

// ---------------------------------------------------------------------------------------------------
// What this script needs from a release. Kept narrow on purpose: a release that changes one of these
// gets a clear error here, and the script is adapted in that release's own copy.

interface ReleaseConfig {
  DOCKET_DATA_DIR: string;
}
interface ReleaseSystem {
  client: Client;
  url?: string;
  stop(): Promise<void>;
}
interface DevServer {
  address: string;
  stop(): Promise<void>;
}
interface Release {
  loadConfig(env: Record<string, string | undefined>): ReleaseConfig;
  startSystem(options: { config: ReleaseConfig; log: unknown; env: Record<string, string | undefined>; audit: () => void }): Promise<ReleaseSystem>;
  startDevServer(options: { port: number; logFile?: string }): Promise<DevServer>;
  freePort(): Promise<number>;
  createLogger(level: 'warn', write: (line: string) => void): unknown;
  KeyStore: new (file: string) => { create(name: string, role: 'respond'): Promise<{ key: string }> };
}

function loadRelease(root: string): Release {
  const load = createRequire(join(root, 'package.json'));
  const from = (path: string, names: string[]): Record<string, any> => {
    let loaded: Record<string, any>;
    try {
      loaded = load(path);
    } catch (error) {
      throw new Error(`${root} is not a Docket checkout this script can drive: loading ${path} failed (${(error as Error).message.split('\n')[0]}); run it from the checkout's root`);
    }
    const missing = names.filter((name) => typeof loaded[name] !== 'function');
    if (missing.length) throw new Error(`${path} in ${root} no longer exports ${missing.join(', ')}: adapt scripts/record-histories.ts in this release`);
    return loaded;
  };
  // v0.1.0 kept the composition root under scripts/lib and the logger under activities/; later
  // releases have system/ and infra/. Whichever layout the checkout has is the one to load.
  const layout = (paths: string[]) => paths.find((path) => existsSync(join(root, `${path}.ts`))) ?? paths[0];
  const system = from(layout(['./system/start-system', './scripts/lib/system']), ['startSystem']);
  const dev = from(layout(['./system/temporal-dev', './scripts/lib/temporal-dev']), ['startDevServer', 'freePort']);
  const config = from('./core/config', ['loadConfig']);
  const log = from(layout(['./infra/log', './activities/log']), ['createLogger']);
  const keys = from('./gateway/keys', ['KeyStore']);
  return {
    loadConfig: config.loadConfig,
    startSystem: system.startSystem,
    startDevServer: dev.startDevServer,
    freePort: dev.freePort,
    createLogger: log.createLogger,
    KeyStore: keys.KeyStore,
  };
}

// ---------------------------------------------------------------------------------------------------

async function main(argv: string[]): Promise<void> {
  if (argv.length !== 1 || argv[0].startsWith('-')) throw new Error(USAGE);
  const root = process.cwd();
  const outDir = resolve(argv[0]);
  const hasStartSystem = existsSync(join(root, 'system', 'start-system.ts')) || existsSync(join(root, 'scripts', 'lib', 'system.ts'));
  if (!existsSync(join(root, 'workflows')) || !hasStartSystem) {
    throw new Error(`${root} is not the root of a Docket checkout (no workflows/, or neither system/start-system.ts nor scripts/lib/system.ts)\n${USAGE}`);
  }
  // The checkout this script lives in provides the Temporal CLI when the recorded one has none (a worktree).
  const tools = join(dirname(__dirname), '.tools', 'bin', 'temporal');
  if (!process.env.TEMPORAL_CLI && existsSync(tools)) process.env.TEMPORAL_CLI = tools;

  const release = loadRelease(root);
  const docker = new Docker();
  const manifests = readReleaseManifests(root);
  await requireImages(docker, [...RELEASE_ENGINES.map((name) => manifests.get(name)!.image as string), ECHO_ENGINE.image]);

  const workDir = mkdtempSync(join(tmpdir(), 'docket-record-'));
  const secrets = {
    webhook: `whsec_${randomBytes(24).toString('base64')}`,
    slackToken: `xoxb-recorder-${randomBytes(8).toString('hex')}`,
    slackSigning: randomBytes(16).toString('hex'),
    awsKeyId: `AKID${randomBytes(8).toString('hex').toUpperCase()}`,
    awsSecret: randomBytes(20).toString('hex'),
  };
  const cleanups: Array<() => Promise<unknown>> = [async () => rmSync(workDir, { recursive: true, force: true })];
  const log: string[] = [];
  try {
    const blocklistVolume = `docket-record-blocklist-${randomBytes(4).toString('hex')}`;
    cleanups.unshift(() => docker.getVolume(blocklistVolume).remove().catch(() => undefined));
    const enginesDir = writeEngines(workDir, manifests, blocklistVolume);
    const accountsFile = join(workDir, 'accounts.yaml');
    writeFileSync(accountsFile, stringifyYaml({
      singleAccount: true,
      accounts: { [ACCOUNT]: { name: 'recorded account', accessKeyIdEnv: 'DOCKET_RECORD_AWS_KEY_ID', secretAccessKeyEnv: 'DOCKET_RECORD_AWS_SECRET', region: 'us-east-1' } },
    }));
    const schedulesDir = join(workDir, 'schedules');
    mkdirSync(schedulesDir);

    const aws = await startAwsEmulator(docker, workDir);
    cleanups.unshift(() => aws.close());
    await aws.createBucket(BUCKET);
    const webhook = await startSink();
    cleanups.unshift(() => webhook.close());
    const slack = await startFakeSlack(secrets.slackToken);
    cleanups.unshift(() => slack.close());

    const temporal = await release.startDevServer({ port: await release.freePort(), logFile: join(workDir, 'temporal.log') });
    cleanups.unshift(() => temporal.stop());
    const dataDir = join(workDir, 'data');
    const config = release.loadConfig({
      TEMPORAL_ADDRESS: temporal.address,
      DOCKET_DATA_DIR: dataDir,
      DOCKET_ENGINES_DIR: enginesDir,
      // The release's own policy: malicious web destinations go to blocklist after a person approves.
      DOCKET_POLICY_FILE: join(root, 'policy.yaml'),
      DOCKET_ACCOUNTS_FILE: accountsFile,
      DOCKET_SCHEDULES_DIR: schedulesDir,
      DOCKET_EGRESS_NETWORK: aws.network,
      DOCKET_PORT: '0',
      DOCKET_WEBHOOK_URL: webhook.url,
      DOCKET_WEBHOOK_SECRET: secrets.webhook,
      SLACK_BOT_TOKEN: secrets.slackToken,
      SLACK_SIGNING_SECRET: secrets.slackSigning,
      DOCKET_SLACK_API_URL: slack.apiUrl,
    });
    // The engine workers expand the bots' ${NAME} references from here, so the values never reach history.
    const env = { ...process.env, DOCKET_AWS_ENDPOINT_URL: aws.endpoint, DOCKET_RECORD_AWS_KEY_ID: secrets.awsKeyId, DOCKET_RECORD_AWS_SECRET: secrets.awsSecret };
    const system = await release.startSystem({
      config, env, audit: () => undefined, log: release.createLogger('warn', (line) => log.push(line)),
    });
    cleanups.unshift(() => system.stop());
    if (!system.url) throw new Error('the release\'s startSystem started no gateway');
    const key = (await new release.KeyStore(join(dataDir, 'keys.json')).create('analyst', 'respond')).key;
    const docket = new Docket(system.url, key, system.client);

    const forbidden = [
      ...new Set([root, dirname(__dirname), outDir, workDir, homedir(), `${tmpdir()}/`]),
      ...Object.values(secrets), key,
    ];
    const recorder = new Recorder(system.client, forbidden);
    for (const scenario of scenarios(docket, slack, secrets.slackSigning)) {
      process.stdout.write(`recording ${scenario.file}: ${scenario.what}… `);
      const workflowId = await scenario.drive();
      const size = await recorder.take(workflowId, scenario.file);
      process.stdout.write(`${Math.ceil(size / 1024)} KB\n`);
    }
    // Written only once every scenario worked, so a failed run never leaves half a release's fixtures.
    recorder.writeAll(outDir);
    process.stdout.write(`recorded ${recorder.taken.size} histories in ${outDir}\n`);
  } catch (error) {
    if (log.length) process.stderr.write(`the release logged:\n${log.slice(-20).join('\n')}\n`);
    throw error;
  } finally {
    for (const cleanup of cleanups) await cleanup().catch((error) => process.stderr.write(`cleanup: ${(error as Error).message}\n`));
  }
}

// ---------------------------------------------------------------------------------------------------
// The scenarios: each drives the release through its public entry points and answers the workflow ID
// whose history is then saved.

interface Scenario {
  file: string;
  what: string;
  drive(): Promise<string>;
}

function scenarios(docket: Docket, slack: FakeSlack, signingSecret: string): Scenario[] {
  const startText = async (text: string) => (await docket.expect(202, 'POST', '/v1/investigations', { text })).id as string;
  const waitForApproval = async (text: string) => {
    const id = await startText(text);
    const status = await docket.pending(id);
    return { id, responseId: status.id as string };
  };
  return [
    {
      file: 'investigation-awaiting-approval.json',
      what: 'a malicious URL waiting for approval to blocklist it (left running)',
      drive: async () => (await waitForApproval('phish at hxxps://evil[.]example/login')).id,
    },
    {
      file: 'investigation-approved.json',
      what: 'approved, so the blocklist responder runs',
      drive: async () => {
        const { id, responseId } = await waitForApproval('phish at hxxps://evil[.]example/account/verify');
        await docket.expect(200, 'POST', `/v1/investigations/${id}/approve`, { responseId });
        const report = await docket.completed(id);
        expectThat(report.responses?.[0]?.report?.status === 'success', 'the blocklist responder succeeded', report);
        return id;
      },
    },
    {
      file: 'investigation-rejected.json',
      what: 'rejected, so nothing is blocked',
      drive: async () => {
        const { id, responseId } = await waitForApproval('phish at hxxp://phish[.]example[.]net/reset-password');
        await docket.expect(200, 'POST', `/v1/investigations/${id}/reject`, { responseId, reason: 'shared hosting' });
        const report = await docket.completed(id);
        expectThat(report.responses?.[0]?.approval?.state === 'rejected', 'the response was rejected', report);
        return id;
      },
    },
    {
      file: 'investigation-cancelled-while-waiting.json',
      what: 'cancelled while it waits for approval',
      drive: async () => {
        const { id } = await waitForApproval('phish at hxxps://evil[.]example/invoice');
        await docket.expect(202, 'POST', `/v1/investigations/${id}/cancel`, { reason: 'reported twice' });
        const report = await docket.completed(id);
        expectThat(report.cancelled === true, 'the investigation was cancelled', report);
        return id;
      },
    },
    {
      file: 'investigation-upload-fileinfo.json',
      what: 'a file uploaded through Menagerie\'s POST /fileinfo/upload',
      drive: async () => {
        const form = new FormData();
        form.append('upload', new Blob(['Docket replay fixture: a small text file for fileinfo.\n']), 'sample.txt');
        const answer = await docket.expect(200, 'POST', '/fileinfo/upload', form);
        const report = await docket.completed(answer.jobid);
        expectThat(report.jobs?.[0]?.engine === 'fileinfo' && report.jobs[0].status === 'success', 'fileinfo analyzed the upload', report);
        return answer.jobid as string;
      },
    },
    {
      file: 'compliance-bot-and-unknown-bot.json',
      what: 'a Dome9 finding remediated by s3_block_public_access, naming an unknown bot too',
      drive: async () => {
        const answer = await docket.expect(202, 'POST', '/v1/events/compliance', complianceFinding());
        const workflowId = answer.findings?.[0]?.workflowId as string;
        const report = await docket.result(workflowId);
        const outcomes = (report.bots as Array<{ bot: string; outcome: string }>).map((bot) => `${bot.bot}:${bot.outcome}`);
        expectThat(outcomes.join(',') === 's3_block_public_access:passed,no_such_bot:failed', 'the known bot passed and the unknown one was reported', report);
        return workflowId;
      },
    },
    {
      file: 'task-slack-run.json',
      what: 'a task from Slack\'s `/docket run echo …`',
      drive: async () => {
        const triggerId = `${Date.now()}.${randomBytes(4).toString('hex')}`;
        const form = {
          team_id: 'TDOCKET', team_domain: 'docket', channel_id: SLACK_CHANNEL, channel_name: 'soc', user_id: SLACK_USER, user_name: 'analyst',
          command: '/docket', text: 'run echo hello from docket', api_app_id: 'ADOCKET', response_url: `${slack.url}/response/${triggerId}`, trigger_id: triggerId,
        };
        const status = await deliverSlack(docket.url, form, signingSecret);
        expectThat(status === 200, 'Slack\'s slash command was acknowledged', { status });
        const workflowId = await docket.onlyWorkflow('task');
        const report = await docket.result(workflowId);
        expectThat(report.status === 'Success' && report.notifications?.[0]?.state === 'sent', 'the task ran and posted to Slack', report);
        return workflowId;
      },
    },
  ];
}

function complianceFinding(): Record<string, unknown> {
  return {
    reportTime: new Date().toISOString(),
    status: 'Failed',
    findingKey: 'dome9-recorded-finding',
    policy: { name: 'AWS CIS Foundations', description: null },
    bundle: { name: 'CIS', id: 21 },
    rule: {
      name: 'S3 bucket must not be publicly accessible', ruleId: 'D9.AWS.NET.RECORDED', severity: 'High', logic: null,
      complianceTags: 'AUTO: s3_block_public_access | AUTO: no_such_bot',
    },
    account: { id: ACCOUNT, name: 'recorded account', vendor: 'aws' },
    region: 'N. Virginia',
    entity: { id: BUCKET, name: BUCKET, type: 'S3Bucket', region: 'us_east_1' },
  };
}

function expectThat(ok: boolean, what: string, seen: unknown): void {
  if (!ok) throw new Error(`expected ${what}, but the release answered: ${JSON.stringify(seen).slice(0, 2000)}`);
}

// ---------------------------------------------------------------------------------------------------

class Recorder {
  readonly taken = new Map<string, string>();

  constructor(private readonly client: Client, private readonly forbidden: string[]) {}

  /** Takes the history as it is now (a waiting workflow's too), refusing one that carries a path or secret. */
  async take(workflowId: string, file: string): Promise<number> {
    const history = await this.client.workflow.getHandle(workflowId).fetchHistory();
    const json = historyToJson(history);
    const text = decodedPayloads(json);
    const found = this.forbidden.filter((value) => value && text.includes(value));
    if (found.length) {
      const at = text.indexOf(found[0]);
      throw new Error(`${file}: the history of ${workflowId} holds ${found.join(', ')} (…${text.slice(Math.max(0, at - 120), at + 120)}…); `
        + 'change the scenario\'s inputs so they carry no path or secret: editing a recorded history would make it replay something that never ran');
    }
    if (json.length > MAX_FIXTURE_BYTES) throw new Error(`${file}: the history is ${json.length} bytes, over ${MAX_FIXTURE_BYTES}; give the scenario smaller inputs`);
    this.taken.set(file, json);
    return json.length;
  }

  writeAll(outDir: string): void {
    mkdirSync(outDir, { recursive: true });
    for (const [file, json] of this.taken) writeFileSync(join(outDir, file), `${json}\n`);
  }
}

/** The history's JSON with each payload's base64 data decoded, so a search sees what the payloads say. */
function decodedPayloads(json: string): string {
  return json.replace(/"data": "([A-Za-z0-9+/=]+)"/g, (_, data: string) => Buffer.from(data, 'base64').toString('utf8'));
}

/** The release as its callers reach it: the gateway, and Temporal for the workflows the HTTP API does not show. */
class Docket {
  constructor(readonly url: string, private readonly key: string, private readonly temporal: Client) {}

  async call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.key}` };
    let payload: FormData | string | undefined;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const response = await fetch(`${this.url}${path}`, { method, headers, body: payload, signal: AbortSignal.timeout(30_000) });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Kept as text for the error message below.
    }
    return { status: response.status, body: parsed };
  }

  async expect(status: number, method: string, path: string, body?: unknown): Promise<any> {
    const answer = await this.call(method, path, body);
    if (answer.status !== status) throw new Error(`${method} ${path} answered ${answer.status}, expected ${status}: ${JSON.stringify(answer.body)}`);
    return answer.body;
  }

  /** The first response waiting for approval, once the investigation shows one. */
  async pending(id: string): Promise<any> {
    const body = await until(`investigation ${id} to wait for approval`, async () => {
      const { body: current } = await this.call('GET', `/v1/investigations/${id}`);
      if (current.state === 'completed' || current.state === 'failed') throw new Error(`investigation ${id} ended without waiting for approval: ${JSON.stringify(current).slice(0, 2000)}`);
      return current.status?.responses?.some((r: any) => r.approval?.state === 'pending') ? current : undefined;
    });
    return body.status.responses.find((r: any) => r.approval.state === 'pending');
  }

  async completed(id: string): Promise<any> {
    const body = await until(`investigation ${id} to complete`, async () => {
      const { body: current } = await this.call('GET', `/v1/investigations/${id}`);
      if (current.state === 'failed') throw new Error(`investigation ${id} failed: ${current.error}`);
      return current.state === 'completed' ? current : undefined;
    });
    return body.report;
  }

  /** A task's or remediation's result. */
  async result(workflowId: string): Promise<any> {
    return this.temporal.workflow.getHandle(workflowId).result();
  }

  /** The one workflow of a type, once Temporal's visibility lists it. */
  async onlyWorkflow(type: string): Promise<string> {
    return until(`a ${type} workflow to start`, async () => {
      const ids: string[] = [];
      for await (const execution of this.temporal.workflow.list({ query: `WorkflowType = '${type}'` })) ids.push(execution.workflowId);
      if (ids.length > 1) throw new Error(`expected one ${type} workflow, found ${ids.join(', ')}`);
      return ids[0];
    });
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_LIMIT_MS;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up after ${WAIT_LIMIT_MS / 1000}s waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 250));
  }
}

// ---------------------------------------------------------------------------------------------------
// Engines: the release's manifests, with the blocklist writing to a volume of this run, plus a stdout
// engine for the task (CloudPassage's containerized tasks print their result).

const ECHO_ENGINE = {
  name: 'echo', kind: 'analyzer', description: 'prints its arguments', image: 'docket/base:bookworm', accepts: ['other'],
  protocol: 'stdout', command: ['/bin/echo'], timeout: '30s',
};

function readReleaseManifests(root: string): Map<string, Record<string, unknown>> {
  const manifests = new Map<string, Record<string, unknown>>();
  for (const name of RELEASE_ENGINES) {
    const file = join(root, 'engines', name, 'engine.yaml');
    if (!existsSync(file)) throw new Error(`the release declares no engine ${name} (${file} is missing); the recorded scenarios need it`);
    manifests.set(name, parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown>);
  }
  return manifests;
}

function writeEngines(workDir: string, manifests: Map<string, Record<string, unknown>>, blocklistVolume: string): string {
  const dir = join(workDir, 'engines');
  const all = [...manifests.values(), ECHO_ENGINE].map((manifest) => (manifest.name === 'blocklist'
    ? { ...manifest, volumes: [{ name: blocklistVolume, target: '/blocklist' }] }
    : manifest));
  for (const manifest of all) {
    mkdirSync(join(dir, String(manifest.name)), { recursive: true });
    writeFileSync(join(dir, String(manifest.name), 'engine.yaml'), stringifyYaml(manifest));
  }
  return dir;
}

async function requireImages(docker: Docker, images: string[]): Promise<void> {
  const missing: string[] = [];
  for (const image of images) {
    await docker.getImage(image).inspect().catch(() => missing.push(image));
  }
  if (missing.length) throw new Error(`image(s) ${missing.join(', ')} not found: run npm run setup (or npm run engines:build) in the recorded checkout first`);
}

// ---------------------------------------------------------------------------------------------------
// Stand-ins on loopback for what the release talks to outside Docket.

interface Sink {
  url: string;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((done) => server.close(() => done()));
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** A webhook receiver that accepts every delivery. */
async function startSink(): Promise<Sink> {
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => response.writeHead(200).end('ok'));
  });
  const base = await listen(server);
  return { url: `${base}/hooks/docket`, close: () => closeServer(server) };
}

interface FakeSlack extends Sink {
  apiUrl: string;
}

/** The few Slack Web API methods Docket calls, answered as Slack answers them, for the one bot token. */
async function startFakeSlack(botToken: string): Promise<FakeSlack> {
  let sequence = 0;
  const nextTs = () => `${Math.floor(Date.now() / 1000)}.${String((sequence += 1)).padStart(6, '0')}`;
  const answer = (method: string, args: Record<string, string>): Record<string, unknown> => {
    switch (method) {
      case 'auth.test':
        return { ok: true, url: 'https://docket.slack.com/', team: 'Docket', user: 'docket', team_id: 'TDOCKET', user_id: 'UDOCKETBOT', bot_id: 'BDOCKET' };
      case 'chat.postMessage':
        return { ok: true, channel: args.channel, ts: nextTs(), message: { type: 'message', text: args.text ?? '' } };
      case 'chat.update':
      case 'chat.delete':
        return { ok: true, channel: args.channel, ts: args.ts };
      case 'chat.postEphemeral':
        return { ok: true, message_ts: nextTs() };
      case 'conversations.members':
        return { ok: true, members: [SLACK_USER], response_metadata: { next_cursor: '' } };
      default:
        return { ok: false, error: 'unknown_method' };
    }
  };
  const server = createServer((request, response) => {
    readBody(request).then((body) => {
      const path = new URL(request.url ?? '/', 'http://slack').pathname;
      if (!path.startsWith('/api/')) {
        response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        return;
      }
      const type = String(request.headers['content-type'] ?? '');
      const args: Record<string, string> = type.includes('json') ? JSON.parse(body || '{}') : Object.fromEntries(new URLSearchParams(body));
      const token = (request.headers.authorization ?? '').replace(/^Bearer /, '') || args.token;
      const reply = token === botToken ? answer(path.slice('/api/'.length), args) : { ok: false, error: 'invalid_auth' };
      response.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(reply));
    }, (error: Error) => response.writeHead(400).end(error.message));
  });
  const url = await listen(server);
  return { url, apiUrl: `${url}/api/`, close: () => closeServer(server) };
}

/** Posts a slash command to the gateway's /slack/events, signed as Slack signs it. */
async function deliverSlack(gatewayUrl: string, form: Record<string, string>, secret: string): Promise<number> {
  const body = new URLSearchParams(form).toString();
  const timestamp = Math.floor(Date.now() / 1000);
  const signature = `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
  const response = await fetch(`${gatewayUrl}/slack/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-request-timestamp': String(timestamp), 'x-slack-signature': signature },
    body,
    signal: AbortSignal.timeout(30_000),
  });
  await response.arrayBuffer();
  return response.status;
}

interface AwsEmulator {
  network: string;
  endpoint: string;
  createBucket(name: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * moto's server on the gateway address of a Docker network created here: the bots' containers join that
 * network (DOCKET_EGRESS_NETWORK) and reach only it. moto lives in a cached virtualenv, as the tests'.
 */
async function startAwsEmulator(docker: Docker, workDir: string): Promise<AwsEmulator> {
  const venv = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'docket', 'moto-venv');
  const server = join(venv, 'bin', 'moto_server');
  if (!existsSync(server)) {
    process.stdout.write(`installing ${MOTO_REQUIREMENT} into ${venv} (once)…\n`);
    mkdirSync(dirname(venv), { recursive: true });
    await run('python3', ['-m', 'venv', venv]);
    await run(join(venv, 'bin', 'python'), ['-m', 'pip', 'install', '--quiet', MOTO_REQUIREMENT], { maxBuffer: 16 * 1024 * 1024, timeout: 600_000 });
  }
  const name = `docket-record-aws-${randomBytes(4).toString('hex')}`;
  const network = await docker.createNetwork({ Name: name, Driver: 'bridge', Labels: { 'docket.recorder': 'aws-emulator' } });
  let child: ChildProcess | undefined;
  const close = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((done) => child!.once('exit', done));
      child.kill('SIGTERM');
      const force = setTimeout(() => child!.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(force);
    }
    await network.remove().catch(() => undefined);
  };
  try {
    const address: string | undefined = (await network.inspect()).IPAM?.Config?.[0]?.Gateway;
    if (!address) throw new Error(`Docker gave network ${name} no gateway address`);
    const port = await freeLoopbackPort();
    const endpoint = `http://${address}:${port}`;
    child = spawn(server, ['-H', address, '-p', String(port)], { stdio: ['ignore', 'ignore', 'ignore'], cwd: workDir });
    await until(`moto to answer on ${endpoint}`, async () => {
      if (child!.exitCode !== null) throw new Error(`moto_server exited with code ${child!.exitCode}`);
      const response = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined);
      await response?.arrayBuffer();
      return response?.ok ? true : undefined;
    });
    return {
      network: name,
      endpoint,
      async createBucket(bucket: string) {
        // moto takes S3's path-style CreateBucket without a signature.
        const response = await fetch(`${endpoint}/${bucket}`, { method: 'PUT', signal: AbortSignal.timeout(10_000) });
        const text = await response.text();
        if (!response.ok) throw new Error(`moto did not create bucket ${bucket}: ${response.status} ${text.slice(0, 500)}`);
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await listen(server);
  const { port } = server.address() as AddressInfo;
  await closeServer(server);
  return port;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (error) => {
      process.stderr.write(`record-histories: ${(error as Error).message}\n`);
      process.exit(1);
    },
  );
}

