/**
 * The chaos run the tests and `npm run bench:chaos` share: a mixed load of `jobs` jobs (uploads to
 * fileinfo, URL investigations that reach ioc-lookup, evil.example URLs that wait for approval and
 * then run the blocklist responder, and one job in five for a hostile engine, test/helpers/chaos-hostile.ts)
 * while each fault in `faults` kills one part of the production stack
 * with SIGKILL and starts it again. After each fault, and at the end, it checks Docket's promise and
 * answers what it found: a figure per promise and the problems, empty when the promise held.
 */
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { hostname } from 'node:os';
import { DeleteObjectCommand, GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { hostileInvestigation, hostileMode, type HostileMode, judgeHostile } from './chaos-hostile';
import { ChaosStack, sleep } from './chaos-stack';
import { alive } from './launcher';
import { OWNER_LABEL } from '../../activities/runners/docker';
import { POOL_LABEL } from '../../activities/runners/job-folder';
import { WorkflowType } from '../../contract/messages';

export type Fault = 'gateway' | 'worker' | 'engine:fileinfo' | 'engine:ioc-lookup' | 'engine:blocklist' | 'engine:hostile' | 'temporal' | 'postgres' | 's3' | 'dockerd';
export const ALL_FAULTS: Fault[] = ['gateway', 'worker', 'engine:fileinfo', 'engine:ioc-lookup', 'engine:blocklist', 'engine:hostile', 'temporal', 'postgres', 's3', 'dockerd'];

export interface ChaosOptions {
  jobs: number;
  faults: Fault[];
  log?: (line: string) => void;
  /** How long every accepted job has, after a fault, to reach a terminal state. */
  settleMs?: number;
  /** How long a part stays down (beyond what the probes while it is down take). */
  downMs?: number;
}

export interface FaultReport {
  fault: Fault;
  /** The /readyz checks that failed while the part was down (temporal, blobs, docker, …). */
  readyzDown: string[];
  /** What the gateway answered requests while the part was down: status codes, or "refused" when nothing listened. */
  answersWhileDown: string[];
  problems: string[];
}

export interface ChaosFigures {
  faultsInjected: number;
  jobsSubmitted: number;
  jobsAccepted: number;
  jobsCompleted: number;
  /** Blocklist entries beyond one per approved URL. */
  duplicates: number;
  /** Blobs no workflow on the Temporal server references and no documented leftover case explains. */
  orphans: number;
  /**
   * Workflows on the Temporal server whose id the client never learned: the gateway died after the start,
   * before its answer reached the client. They are jobs like any other, only unknown to the client.
   */
  workflowsUnknownToClient: number;
  /** Blobs only those workflows reference: a check reading only the client's jobs would call them orphans. */
  blobsOfUnknownWorkflows: number;
  /** The blob check tried on cases of its own before any fault (a planted orphan, a workflow the client never learned of). */
  blobCheckProblems: string[];
  /** Blobs of uploads stored but never started (the gateway died, or Temporal refused): retention removes them. */
  documentedLeftoverBlobs: number;
  /**
   * Unreferenced blobs written before a retried engine run's last attempt began: what an attempt whose
   * answer Temporal never got (the server was down) stored. Retention removes them.
   */
  lostAttemptBlobs: number;
  /** Temporary keys and unfinished multipart uploads a killed gateway left: retention removes them. */
  documentedLeftoverTemporaries: number;
  leftoverContainers: number;
  leftoverVolumes: number;
  answers503: number;
  answers503WithoutRetryAfter: number;
  /** 5xx answers other than 503: each is a failure of the promise. */
  serverErrors: number;
  hangs: number;
  cutUploads: number;
  cutUploadsGivenAnId: number;
  faults: FaultReport[];
  /** Problems found at the end (after the last fault). */
  finalProblems: string[];
}

type JobKind = 'upload' | 'lookup' | 'approval' | 'hostile';

interface Job {
  index: number;
  kind: JobKind;
  /** The upload's bytes (uploads), the URL (lookups, approvals) or the `other` observable a hostile engine gets. */
  content: string;
  hostile?: HostileMode;
  sha256?: string;
  id?: string;
  approved: boolean;
  settled?: 'right' | 'wrong';
  why?: string;
  referenced: Set<string>;
}

/** Whether a `docket.owner` label (host:pid) names a process running on this host. */
function ownerAlive(owner: string | undefined): boolean {
  const match = /^(.*):(\d+)$/.exec(owner ?? '');
  return match !== null && match[1] === hostname() && alive(Number(match[2]));
}

/**
 * The engine runner stores every run's stdout and stderr; reports name only the combined log, so an
 * engine that prints nothing leaves the empty blob, one for all runs, until retention (README, "Reliability").
 */
const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');

/** A request that got no answer within this long counts as a hang. */
const HANG_MS = 60_000;
/** How long a client retries a submission the gateway refused or did not answer: as long as a role may take to start again. */
const SUBMIT_WINDOW_MS = 240_000;
const SUBMIT_ATTEMPTS = 200;
/** Bounds on what the blob check reads from the Temporal server and the bucket. */
const MAX_WORKFLOWS = 10_000;
const MAX_JSON_BLOB_BYTES = 8 * 1024 * 1024;
/** At most this many blobs (stdout, stderr, output files) are taken as one lost attempt's. */
const LOST_ATTEMPT_BLOBS = 16;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const SLOW_UPLOAD_BYTES = 12 * 1024 * 1024;

/** A workflow on the run's Temporal server, as the blob check sees it. */
interface ServerWorkflow {
  id: string;
  type: string;
  closed: boolean;
  blobs: Set<string>;
  /** When each engine run that completed on a later attempt started that attempt (ms): an earlier attempt's answer may have been lost. */
  retriedRunStarts: number[];
}

/**
 * The start times of engine runs (`runEngine` activities) that completed on attempt 2 or later. Temporal
 * runs an activity at least once: an attempt whose answer never reached the server (it was down when
 * the run finished) is run again, and whatever that attempt stored no history can name.
 */
/** A number from a decoded history: protobuf's 64-bit fields come as Long objects. */
function whole(value: unknown): number {
  return typeof (value as { toNumber?: unknown })?.toNumber === 'function' ? (value as { toNumber(): number }).toNumber() : Number(value);
}

function retriedRunStarts(history: unknown): number[] {
  const events = ((history as { events?: unknown[] })?.events ?? []) as Array<Record<string, any>>;
  const engineRuns = new Set<string>();
  const starts: number[] = [];
  for (const event of events) {
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled?.activityType?.name === 'runEngine') engineRuns.add(String(event.eventId));
    const started = event.activityTaskStartedEventAttributes;
    if (started && engineRuns.has(String(started.scheduledEventId)) && whole(started.attempt) > 1) {
      const time = event.eventTime;
      const ms = time?.seconds !== undefined ? whole(time.seconds) * 1000 + Math.floor(whole(time.nanos ?? 0) / 1e6) : Date.parse(String(time));
      if (Number.isFinite(ms)) starts.push(ms);
    }
  }
  return starts;
}

/** Blob references found so far, and which of them hold JSON that may name more. */
interface BlobRefs {
  blobs: Set<string>;
  json: Set<string>;
}

/** Every blob reference in a workflow's history: each payload (input, memo, activity results, result) read as JSON. */
function blobRefsIn(history: unknown): BlobRefs {
  const refs: BlobRefs = { blobs: new Set(), json: new Set() };
  collectRefs(history, refs, 0);
  return refs;
}

function collectRefsInText(text: string, into: BlobRefs): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return;
  }
  collectRefs(parsed, into, 0);
}

/** A blob reference is an object whose `sha256` is a content address (`{sha256, size, filename, contentType}`). */
function collectRefs(value: unknown, into: BlobRefs, depth: number): void {
  if (depth > 64 || value === null || typeof value !== 'object') return;
  if (value instanceof Uint8Array) {
    collectRefsInText(Buffer.from(value).toString('utf8'), into);
    return;
  }
  if (Array.isArray(value)) {
    for (const item of value) collectRefs(item, into, depth + 1);
    return;
  }
  const record = value as Record<string, unknown>;
  const sha = record.sha256;
  if (typeof sha === 'string' && SHA256_HEX.test(sha)) {
    into.blobs.add(sha);
    const json = record.contentType === 'application/json' || (typeof record.filename === 'string' && record.filename.endsWith('.json'));
    if (json) into.json.add(sha);
  }
  for (const item of Object.values(record)) collectRefs(item, into, depth + 1);
}

class Tally {
  answers503 = 0;
  withoutRetryAfter = 0;
  serverErrors: string[] = [];
  hangs: string[] = [];

  /** Records one answer; a 503 must say when to come back, and no other 5xx may happen at all. */
  note(what: string, response: Response): void {
    if (response.status === 503) {
      this.answers503 += 1;
      if (!response.headers.get('retry-after')) this.withoutRetryAfter += 1;
    } else if (response.status >= 500) {
      this.serverErrors.push(`${what}: ${response.status}`);
    }
  }
}

export class ChaosRun {
  private readonly jobs: Job[] = [];
  private readonly tally = new Tally();
  private readonly log: (line: string) => void;
  private cutUploads = 0;
  private cutUploadsGivenAnId = 0;
  private readonly faultReports: FaultReport[] = [];
  /** Content hashes of uploads a killed gateway or a refusal left stored but never started. */
  private readonly neverStarted = new Set<string>();
  private readonly cutShas = new Set<string>();

  private constructor(readonly stack: ChaosStack, private readonly options: ChaosOptions) {
    this.log = options.log ?? (() => undefined);
  }

  static async start(options: ChaosOptions): Promise<ChaosRun> {
    const log = options.log ?? (() => undefined);
    return new ChaosRun(await ChaosStack.start(log), options);
  }

  async stop(): Promise<void> {
    await this.stack.stop();
  }

  /** Runs the whole plan: a batch of jobs during each fault, then one with none; answers the figures. */
  async run(): Promise<ChaosFigures> {
    await this.cutUploadLeavesNothing();
    this.blobCheckProblems = await this.checkTheBlobCheck();
    const rounds = this.options.faults.length + 1;
    const perRound = Math.max(1, Math.ceil(this.options.jobs / rounds));
    for (const fault of this.options.faults) {
      const count = Math.min(perRound, this.options.jobs - this.jobs.length);
      this.log(`chaos: ${fault}: ${count} jobs while it is killed and restarted`);
      const batch = this.submit(count);
      await sleep(1500);
      const report = await this.inject(fault);
      await batch;
      report.problems.push(...await this.check());
      this.faultReports.push(report);
      this.log(`chaos: after ${fault}: ${report.problems.length ? report.problems.join('; ') : 'every promise held'}`);
    }
    const rest = this.options.jobs - this.jobs.length;
    if (rest > 0) await this.submit(rest);
    const finalProblems = await this.check();
    return this.figures(finalProblems);
  }

  private figures(finalProblems: string[]): ChaosFigures {
    const accepted = this.jobs.filter((job) => job.id);
    return {
      faultsInjected: this.faultReports.length,
      jobsSubmitted: this.jobs.length,
      jobsAccepted: accepted.length,
      jobsCompleted: accepted.filter((job) => job.settled === 'right').length,
      duplicates: this.lastDuplicates,
      orphans: this.lastOrphans.length,
      workflowsUnknownToClient: this.lastUnknownWorkflows,
      blobsOfUnknownWorkflows: this.lastBlobsOfUnknown,
      blobCheckProblems: this.blobCheckProblems,
      documentedLeftoverBlobs: this.lastLeftoverBlobs,
      lostAttemptBlobs: this.lastLostAttemptBlobs,
      documentedLeftoverTemporaries: this.lastTemporaries,
      leftoverContainers: this.lastLeftovers.containers,
      leftoverVolumes: this.lastLeftovers.volumes,
      answers503: this.tally.answers503,
      answers503WithoutRetryAfter: this.tally.withoutRetryAfter,
      serverErrors: this.tally.serverErrors.length,
      hangs: this.tally.hangs.length,
      cutUploads: this.cutUploads,
      cutUploadsGivenAnId: this.cutUploadsGivenAnId,
      faults: this.faultReports,
      finalProblems,
    };
  }

  // ---- load -------------------------------------------------------------------------------------

  private newJob(): Job {
    const index = this.jobs.length;
    const kinds: JobKind[] = ['upload', 'lookup', 'upload', 'approval'];
    // Every fifth job runs a hostile engine (test/helpers/chaos-hostile.ts), its modes in turn.
    const kind: JobKind = index % 5 === 4 ? 'hostile' : kinds[index % kinds.length];
    const token = randomBytes(6).toString('hex');
    const content = kind === 'hostile' ? `chaos hostile ${index} ${token}` : kind === 'upload'
      ? `chaos sample ${index} ${token}\n${randomBytes(512).toString('base64')}\n`
      : kind === 'lookup' ? `http://benign-${token}.example.org/page/${index}` : `http://evil.example/chaos/${index}/${token}`;
    const job: Job = { index, kind, content, approved: false, referenced: new Set() };
    if (kind === 'upload') job.sha256 = createHash('sha256').update(content).digest('hex');
    if (kind === 'hostile') job.hostile = hostileMode(this.jobs.filter((one) => one.kind === 'hostile').length);
    this.jobs.push(job);
    return job;
  }

  /** Submits `count` new jobs, four at a time, each retried while the gateway refuses or is gone. */
  private async submit(count: number): Promise<void> {
    const mine = Array.from({ length: count }, () => this.newJob());
    let next = 0;
    const lane = async () => {
      while (next < mine.length) await this.submitOne(mine[next++]);
    };
    await Promise.all(Array.from({ length: 4 }, lane));
  }

  private async submitOne(job: Job): Promise<void> {
    const deadline = Date.now() + SUBMIT_WINDOW_MS;
    for (let attempt = 1; attempt <= SUBMIT_ATTEMPTS && Date.now() < deadline; attempt += 1) {
      const answer = await this.attempt(job);
      if ('error' in answer) {
        if (answer.error.name === 'TimeoutError') this.tally.hangs.push(`submitting job ${job.index}`);
        await sleep(1000);
        continue;
      }
      const { response, body } = answer;
      this.tally.note(`submitting job ${job.index} (${job.kind})`, response);
      const id = (body?.jobid ?? body?.id) as string | undefined;
      if ((response.status === 200 || response.status === 202) && id) {
        job.id = id;
        return;
      }
      if (response.status === 503) {
        await sleep(Math.min(5, Number(response.headers.get('retry-after')) || 1) * 1000);
        continue;
      }
      job.settled = 'wrong';
      job.why = `submitting it got ${response.status}: ${JSON.stringify(body).slice(0, 300)}`;
      return;
    }
    if (job.sha256) this.neverStarted.add(job.sha256);
  }

  /** `send`, its failure as a value: fetch's errors come from another realm than jest's, so instanceof cannot tell them. */
  private attempt(job: Job): Promise<{ response: Response; body: Record<string, unknown> | undefined } | { error: Error }> {
    return this.send(job).catch((error: Error) => ({ error }));
  }

  private async send(job: Job): Promise<{ response: Response; body: Record<string, unknown> | undefined }> {
    const signal = AbortSignal.timeout(HANG_MS);
    let response: Response;
    if (job.kind === 'upload') {
      const form = new FormData();
      form.append('upload', new Blob([job.content]), `sample-${job.index}.txt`);
      response = await fetch(`${this.stack.baseUrl}/fileinfo/upload`, { method: 'POST', body: form, signal });
    } else {
      response = await fetch(`${this.stack.baseUrl}/v1/investigations`, {
        method: 'POST', signal, headers: { 'content-type': 'application/json' },
        body: JSON.stringify(job.hostile ? hostileInvestigation(job.hostile, job.content) : { observables: [{ type: 'url', data: job.content }] }),
      });
    }
    const body = await response.json().catch(() => undefined) as Record<string, unknown> | undefined;
    return { response, body };
  }

  // ---- faults -----------------------------------------------------------------------------------

  private async inject(fault: Fault): Promise<FaultReport> {
    const report: FaultReport = { fault, readyzDown: [], answersWhileDown: [], problems: [] };
    const downMs = this.options.downMs ?? 3000;
    const { stack } = this;
    if (fault === 'gateway') {
      await this.killGatewayMidUpload(report);
      await sleep(downMs);
      report.answersWhileDown.push(...await this.probeWhileDown());
      await stack.role('gateway').start();
      return report;
    }
    if (fault === 'worker' || fault.startsWith('engine:')) {
      await stack.role(fault).kill();
      await sleep(downMs);
      await stack.role(fault).start();
      return report;
    }
    if (fault === 'temporal') await stack.killTemporal();
    if (fault === 'postgres') await stack.postgres.kill();
    if (fault === 's3') await stack.s3.kill();
    if (fault === 'dockerd') await stack.dockerd.kill();
    await sleep(downMs);
    report.readyzDown.push(...await this.readyzDown());
    report.answersWhileDown.push(...await this.probeWhileDown());
    const expected = { temporal: 'temporal', s3: 'blobs', dockerd: 'docker' } as Partial<Record<Fault, string>>;
    const named = expected[fault];
    if (named && !report.readyzDown.includes(named)) report.problems.push(`/readyz did not name ${named} while ${fault} was down (failed checks: ${report.readyzDown.join(', ') || 'none'})`);
    // Without Temporal nothing can start; without the blob store an upload cannot, while a JSON investigation still can.
    const mustRefuse = fault === 'temporal' ? report.answersWhileDown : fault === 's3' ? report.answersWhileDown.slice(0, 1) : [];
    if (mustRefuse.some((answer) => answer !== '503')) {
      report.problems.push(`while ${fault} was down the gateway answered ${report.answersWhileDown.join(', ')} (upload, JSON), not 503`);
    }
    if (fault === 'temporal') await stack.startTemporal();
    if (fault === 'postgres') stack.postgres.start();
    if (fault === 's3') await stack.s3.start();
    if (fault === 'dockerd') await stack.dockerd.restart();
    return report;
  }

  /** Which /readyz checks fail now; ['unanswered'] when /readyz itself does not answer 200 or 503. */
  private async readyzDown(): Promise<string[]> {
    try {
      const response = await fetch(`${this.stack.baseUrl}/readyz`, { signal: AbortSignal.timeout(HANG_MS) });
      this.tally.note('/readyz', response);
      if (response.status !== 200 && response.status !== 503) return ['unanswered'];
      const body = await response.json() as { checks: Record<string, { ok: boolean }> };
      return Object.entries(body.checks).filter(([, check]) => !check.ok).map(([name]) => name);
    } catch (error) {
      if ((error as Error).name === 'TimeoutError') this.tally.hangs.push('/readyz');
      return ['unanswered'];
    }
  }

  /** One upload and one JSON investigation while a part is down: what did the gateway answer? */
  private async probeWhileDown(): Promise<string[]> {
    const answers: string[] = [];
    for (const kind of ['upload', 'lookup'] as const) {
      const probe: Job = {
        index: -1, kind, approved: false, referenced: new Set(),
        content: kind === 'upload' ? `probe while down ${randomBytes(8).toString('hex')}\n` : `http://probe-${randomBytes(4).toString('hex')}.example.org/`,
      };
      const answer = await this.attempt(probe);
      if ('error' in answer) {
        const hung = answer.error.name === 'TimeoutError';
        if (hung) this.tally.hangs.push(`a ${kind} while a part was down`);
        answers.push(hung ? 'hang' : 'refused');
        continue;
      }
      this.tally.note(`a ${kind} while a part was down`, answer.response);
      answers.push(String(answer.response.status));
      const id = (answer.body?.jobid ?? answer.body?.id) as string | undefined;
      if (id) {
        // Accepted after all (the part came back, or was not needed): it is a job like any other.
        probe.index = this.jobs.length;
        probe.id = id;
        if (kind === 'upload') probe.sha256 = createHash('sha256').update(probe.content).digest('hex');
        this.jobs.push(probe);
      } else if (kind === 'upload') {
        this.neverStarted.add(createHash('sha256').update(probe.content).digest('hex'));
      }
    }
    return answers;
  }

  /**
   * A client streams a large upload slowly and the gateway is killed while it does: the client must
   * get an error, never a job id, and the bytes it sent must not become a blob.
   */
  private async killGatewayMidUpload(report: FaultReport): Promise<void> {
    const upload = this.slowUpload();
    await upload.flowing;
    await this.stack.role('gateway').kill();
    const outcome = await upload.done;
    this.cutUploads += 1;
    this.cutShas.add(upload.sha256);
    if (outcome.jobid) {
      this.cutUploadsGivenAnId += 1;
      report.problems.push(`an upload cut off by the gateway's death was given job id ${outcome.jobid}`);
    }
  }

  /** An upload the client itself abandons halfway: the gateway must keep nothing of it. */
  private async cutUploadLeavesNothing(): Promise<void> {
    const before = await this.temporaries();
    const upload = this.slowUpload();
    await upload.flowing;
    upload.abandon();
    const outcome = await upload.done;
    this.cutUploads += 1;
    if (outcome.jobid) this.cutUploadsGivenAnId += 1;
    // The gateway notices the closed connection and cleans up on its own time; give it a bounded while.
    const deadline = Date.now() + 30_000;
    let after = await this.temporaries();
    while (after > before && Date.now() < deadline) {
      await sleep(500);
      after = await this.temporaries();
    }
    const stored = await this.blobKeys();
    const problems: string[] = [];
    if (outcome.jobid) problems.push(`an upload the client abandoned was given job id ${outcome.jobid}`);
    if (after > before) problems.push(`an upload the client abandoned left ${after - before} temporary key(s) or multipart upload(s)`);
    if (stored.has(upload.sha256)) problems.push('an upload the client abandoned was stored as a blob');
    this.abandonProblems = problems;
  }

  private abandonProblems: string[] = [];

  private slowUpload(): { flowing: Promise<void>; done: Promise<{ jobid?: string; error?: string }>; abandon: () => void; sha256: string } {
    const content = Buffer.alloc(SLOW_UPLOAD_BYTES, randomBytes(4096).toString('hex'));
    const boundary = `chaos${randomBytes(8).toString('hex')}`;
    const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="upload"; filename="slow.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`);
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const sha256 = createHash('sha256').update(content).digest('hex');
    const url = new URL(`${this.stack.baseUrl}/fileinfo/upload`);
    const req = request({
      host: url.hostname, port: url.port, path: url.pathname, method: 'POST',
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': head.length + content.length + tail.length },
    });
    let markFlowing: () => void = () => undefined;
    const flowing = new Promise<void>((resolve) => { markFlowing = resolve; });
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<{ jobid?: string; error?: string }>((resolve) => {
      req.on('response', (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => { text += chunk.toString('utf8'); });
        response.on('end', () => {
          const body = (() => { try { return JSON.parse(text) as { jobid?: string }; } catch { return {}; } })();
          resolve({ jobid: body.jobid, error: `status ${response.statusCode}` });
        });
        response.on('error', (error) => resolve({ error: error.message }));
      });
      req.on('error', (error) => resolve({ error: error.message }));
      req.on('close', () => { clearInterval(timer); resolve({ error: 'closed' }); });
    });
    // Most of the body at once (the gateway is past its first multipart part), then a trickle that never ends on its own.
    req.write(head);
    const quick = 9 * 1024 * 1024;
    req.write(content.subarray(0, quick));
    let sent = quick;
    timer = setInterval(() => {
      if (sent >= content.length - 1024) return;
      req.write(content.subarray(sent, sent + 16 * 1024));
      sent += 16 * 1024;
      if (sent > quick + 64 * 1024) markFlowing();
    }, 100);
    return { flowing, done, sha256, abandon: () => { clearInterval(timer); req.destroy(); } };
  }

  // ---- checks -----------------------------------------------------------------------------------

  private lastDuplicates = 0;
  private lastOrphans: string[] = [];
  private lastUnknownWorkflows = 0;
  private lastBlobsOfUnknown = 0;
  private blobCheckProblems: string[] = [];
  /** Workflows the blob check's own case started: left out of the figures. */
  private readonly ownCaseWorkflows = new Set<string>();
  private readonly closedWorkflowBlobs = new Map<string, { blobs: Set<string>; retriedRunStarts: number[] }>();
  /** When each stored blob was last written (ms, the bucket's LastModified), from the last listing. */
  private readonly blobWritten = new Map<string, number>();
  private lastLostAttemptBlobs = 0;
  private lastLeftoverBlobs = 0;
  private lastTemporaries = 0;
  private lastLeftovers = { containers: 0, volumes: 0 };

  /** Every promise, checked now: answers the problems found. */
  private async check(): Promise<string[]> {
    const problems = [...this.abandonProblems];
    this.abandonProblems = [];
    problems.push(...await this.settle());
    problems.push(...await this.checkBlocklist());
    problems.push(...await this.checkLeftovers());
    problems.push(...await this.checkBlobs());
    if (this.tally.serverErrors.length) problems.push(`server errors: ${this.tally.serverErrors.splice(0).join(', ')}`);
    if (this.tally.hangs.length) problems.push(`requests that hung: ${this.tally.hangs.splice(0).join(', ')}`);
    return problems;
  }

  /** Drives every accepted job to a terminal state (approving what waits for approval), then judges it. */
  private async settle(): Promise<string[]> {
    const deadline = Date.now() + (this.options.settleMs ?? 300_000);
    const open = () => this.jobs.filter((job) => job.id && !job.settled);
    while (open().length && Date.now() < deadline) {
      const pending = open();
      let next = 0;
      const lane = async () => {
        while (next < pending.length) await this.advance(pending[next++]).catch(() => undefined);
      };
      await Promise.all(Array.from({ length: 6 }, lane));
      if (open().length) await sleep(1000);
    }
    const problems = open().map((job) => `job ${job.id} (${job.kind}) did not reach a terminal state`);
    problems.push(...this.jobs.filter((job) => job.settled === 'wrong' && !job.why?.startsWith('reported')).map((job) => {
      job.why = `reported: ${job.why}`;
      return `job ${job.id ?? job.index} (${job.kind}): ${job.why.slice('reported: '.length)}`;
    }));
    return problems;
  }

  private async advance(job: Job): Promise<void> {
    const response = await fetch(`${this.stack.baseUrl}/v1/investigations/${job.id}`, { signal: AbortSignal.timeout(HANG_MS) });
    this.tally.note(`reading job ${job.id}`, response);
    if (response.status !== 200) return;
    const body = await response.json() as Record<string, any>;
    if (body.state === 'failed') {
      job.settled = 'wrong';
      job.why = `failed: ${body.error}`;
      return;
    }
    if (body.state === 'completed') {
      this.judge(job, body.report);
      return;
    }
    const waiting = (body.status?.responses ?? []).find((one: any) => one.approval?.state === 'pending');
    if (job.kind === 'approval' && waiting) {
      const approve = await fetch(`${this.stack.baseUrl}/v1/investigations/${job.id}/approve`, {
        method: 'POST', signal: AbortSignal.timeout(HANG_MS),
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.stack.respondKey}` },
        body: JSON.stringify({ responseId: waiting.id }),
      });
      this.tally.note(`approving job ${job.id}`, approve);
      if (approve.status === 200) job.approved = true;
    }
  }

  /** The right result for each kind of job, read from its report. */
  private judge(job: Job, report: Record<string, any>): void {
    for (const found of JSON.stringify(report).match(/[0-9a-f]{64}/g) ?? []) job.referenced.add(found);
    const jobs = (report.jobs ?? []) as Array<Record<string, any>>;
    const wrong = (why: string) => {
      job.settled = 'wrong';
      job.why = `${why}: ${JSON.stringify({ status: report.status, jobs: jobs.map((one) => [one.engine, one.status, one.error]), responses: report.responses }).slice(0, 400)}`;
    };
    if (job.hostile) {
      const why = judgeHostile(job.hostile, report);
      if (why) return wrong(why);
      job.settled = 'right';
      return;
    }
    if (report.status !== 'Success') return wrong(`its report says ${report.status}`);
    if (job.kind === 'upload') {
      if (!jobs.some((one) => one.engine === 'fileinfo' && one.status === 'success')) return wrong('fileinfo did not succeed');
      if (!job.referenced.has(job.sha256!)) return wrong('its report does not name the uploaded file');
    } else {
      if (!jobs.some((one) => one.engine === 'ioc-lookup' && one.status === 'success')) return wrong('ioc-lookup did not succeed');
      const responses = (report.responses ?? []) as Array<Record<string, any>>;
      if (job.kind === 'lookup' && responses.length) return wrong('a benign URL got a response');
      if (job.kind === 'approval') {
        if (report.verdicts?.overall !== 'malicious') return wrong('evil.example was not found malicious');
        if (!responses.some((one) => one.responder === 'blocklist' && one.approval?.state === 'approved' && one.report?.status === 'success')) {
          return wrong('the approved blocklist response did not succeed');
        }
      }
    }
    job.settled = 'right';
  }

  /** Each approved URL on the blocklist exactly once, and nothing else there. */
  private async checkBlocklist(): Promise<string[]> {
    const entries = await this.stack.blocklist();
    const counts = new Map<string, number>();
    for (const entry of entries) counts.set(entry, (counts.get(entry) ?? 0) + 1);
    const approved = this.jobs.filter((job) => job.kind === 'approval' && job.settled === 'right');
    const problems: string[] = [];
    this.lastDuplicates = [...counts.values()].reduce((sum, count) => sum + Math.max(0, count - 1), 0);
    if (this.lastDuplicates) problems.push(`${this.lastDuplicates} duplicate blocklist entr(ies): ${[...counts].filter(([, n]) => n > 1).map(([e, n]) => `${e} ×${n}`).join(', ')}`);
    const missing = approved.filter((job) => !counts.has(job.content));
    if (missing.length) problems.push(`approved URLs missing from the blocklist: ${missing.map((job) => job.content).join(', ')}`);
    const expected = new Set(this.jobs.filter((job) => job.kind === 'approval').map((job) => job.content));
    const stray = [...counts.keys()].filter((entry) => !expected.has(entry));
    if (stray.length) problems.push(`blocklist entries no approval asked for: ${stray.join(', ')}`);
    return problems;
  }

  /** No docket.*-labelled container or volume on the run's dockerd; a reaper gets a bounded while. */
  private async checkLeftovers(): Promise<string[]> {
    const count = async () => {
      // A live engine worker's warm job folders (docket.pool, owned by a process on this host) are
      // kept on purpose; the slots of one that died are leftovers until a reaper takes them.
      const labelled = (labels: Record<string, string> | null | undefined) => Object.keys(labels ?? {}).some((key) => key.startsWith('docket.'))
        && !(labels?.[POOL_LABEL] && ownerAlive(labels[OWNER_LABEL]));
      const containers = (await this.stack.docker.listContainers({ all: true })).filter((one) => labelled(one.Labels));
      const volumes = ((await this.stack.docker.listVolumes()).Volumes ?? []).filter((one) => labelled(one.Labels));
      return { containers: containers.length, volumes: volumes.length };
    };
    const deadline = Date.now() + 60_000;
    let left = await count();
    while ((left.containers || left.volumes) && Date.now() < deadline) {
      await sleep(1000);
      left = await count();
    }
    this.lastLeftovers = left;
    return left.containers || left.volumes ? [`${left.containers} docket container(s) and ${left.volumes} volume(s) left on the run's dockerd`] : [];
  }

  /** Every stored blob referenced by a workflow on the Temporal server or an accepted job, or one of the documented leftover cases. */
  private async checkBlobs(): Promise<string[]> {
    const stored = await this.blobKeys();
    const problems: string[] = [];
    const cut = [...this.cutShas].filter((sha) => stored.has(sha));
    if (cut.length) problems.push(`uploads cut off mid-stream were stored as blobs: ${cut.join(', ')}`);
    let workflows: ServerWorkflow[];
    try {
      workflows = await this.serverWorkflows();
    } catch (error) {
      return [...problems, `the blob check could not read the workflows on the Temporal server: ${(error as Error).message}`];
    }
    const found = this.classifyBlobs(stored, workflows);
    // An unreferenced blob written before an engine run's retried attempt started may be what an earlier
    // attempt stored before its answer was lost; S3 times have whole seconds. A bounded number per retry.
    const retried = workflows.flatMap((workflow) => workflow.retriedRunStarts);
    const lost = found.orphans.filter((sha) => retried.some((start) => (this.blobWritten.get(sha) ?? Infinity) < start + 1000));
    const explained = lost.length <= retried.length * LOST_ATTEMPT_BLOBS ? new Set(lost) : new Set<string>();
    this.lastLostAttemptBlobs = explained.size;
    this.lastOrphans = found.orphans.filter((sha) => !explained.has(sha));
    this.lastLeftoverBlobs = found.documentedLeftovers;
    this.lastUnknownWorkflows = found.unknownWorkflows.length;
    this.lastBlobsOfUnknown = found.blobsOfUnknown;
    this.lastTemporaries = await this.temporaries();
    if (found.unknownWorkflows.length) {
      this.log(`chaos: ${found.unknownWorkflows.length} workflow(s) the client never learned the id of (${found.unknownWorkflows.slice(0, 5).join(', ')}), referencing ${found.blobsOfUnknown} blob(s) no known job does`);
    }
    if (this.lastOrphans.length) {
      const shown = await Promise.all(this.lastOrphans.slice(0, 5).map(async (sha) => `${sha} (${await this.blobStart(sha)})`));
      problems.push(`${this.lastOrphans.length} orphaned blob(s): ${shown.join(', ')}`);
    }
    return problems;
  }

  /**
   * Sorts the stored blobs by what references them. A blob is referenced when an accepted job's report
   * names it or any workflow on the server does, whether or not the client learned that workflow's id;
   * an unreferenced one is documented when it is an upload whose start the client never saw succeed
   * (stored, never started: retention sweeps it) or the empty log, and otherwise an orphan.
   */
  private classifyBlobs(stored: Set<string>, workflows: ServerWorkflow[]): {
    orphans: string[]; documentedLeftovers: number; unknownWorkflows: string[]; blobsOfUnknown: number;
  } {
    const knownIds = new Set<string>();
    const byClient = new Set<string>();
    for (const job of this.jobs) {
      if (!job.id) continue;
      knownIds.add(job.id);
      if (job.sha256) byClient.add(job.sha256);
      for (const sha of job.referenced) byClient.add(sha);
    }
    const byServer = new Set(workflows.flatMap((workflow) => [...workflow.blobs]));
    // Jobs only: the namespace also holds Docket's own workflows (the search-attribute probe at setup).
    const unknown = workflows.filter((workflow) => workflow.type === WorkflowType.investigation && !knownIds.has(workflow.id) && !this.ownCaseWorkflows.has(workflow.id));
    const byUnknown = new Set(unknown.flatMap((workflow) => [...workflow.blobs]));
    const documented = (sha: string) => sha === EMPTY_SHA256 || this.neverStarted.has(sha) || this.unanswered(sha);
    const unreferenced = [...stored].filter((sha) => !byClient.has(sha) && !byServer.has(sha));
    return {
      orphans: unreferenced.filter((sha) => !documented(sha)),
      documentedLeftovers: unreferenced.filter(documented).length,
      unknownWorkflows: [...new Set(unknown.map((workflow) => workflow.id))],
      blobsOfUnknown: [...stored].filter((sha) => byUnknown.has(sha) && !byClient.has(sha) && !documented(sha)).length,
    };
  }

  /**
   * Every workflow on the run's Temporal server with the blobs it references: in its input, memo,
   * activity results and result, and in the JSON blobs those name (a report kept as a claim check, an
   * engine's output). A closed workflow's history no longer changes, so it is read once.
   */
  private async serverWorkflows(): Promise<ServerWorkflow[]> {
    const client = await this.stack.temporalClient();
    try {
      const listed: Array<{ id: string; runId: string; type: string; closed: boolean }> = [];
      for await (const execution of client.workflow.list()) {
        listed.push({ id: execution.workflowId, runId: execution.runId, type: execution.type, closed: execution.status.name !== 'RUNNING' });
        if (listed.length >= MAX_WORKFLOWS) throw new Error(`more than ${MAX_WORKFLOWS} workflows on the run's Temporal server`);
      }
      const workflows: ServerWorkflow[] = [];
      let next = 0;
      const lane = async () => {
        while (next < listed.length) {
          const one = listed[next++];
          const key = `${one.id}/${one.runId}`;
          let read = this.closedWorkflowBlobs.get(key);
          if (!read) {
            const history = await client.workflow.getHandle(one.id, one.runId).fetchHistory();
            read = { blobs: await this.followJsonBlobs(blobRefsIn(history)), retriedRunStarts: retriedRunStarts(history) };
            if (one.closed) this.closedWorkflowBlobs.set(key, read);
          }
          workflows.push({ id: one.id, type: one.type, closed: one.closed, ...read });
        }
      };
      await Promise.all(Array.from({ length: 4 }, lane));
      return workflows;
    } finally {
      await client.connection.close().catch(() => undefined);
    }
  }

  /** The blobs `refs` names, and those named inside the JSON blobs among them, transitively (bounded). */
  private async followJsonBlobs(refs: BlobRefs): Promise<Set<string>> {
    const pending = [...refs.json];
    const read = new Set<string>();
    while (pending.length && read.size < 1000) {
      const sha = pending.pop()!;
      if (read.has(sha)) continue;
      read.add(sha);
      const text = await this.blobText(sha);
      if (text === undefined) continue;
      const inner: BlobRefs = { blobs: new Set(), json: new Set() };
      collectRefsInText(text, inner);
      for (const found of inner.blobs) refs.blobs.add(found);
      pending.push(...inner.json);
    }
    return refs.blobs;
  }

  /** A blob's text, when it exists and is small enough to be a report. */
  private async blobText(sha: string): Promise<string | undefined> {
    try {
      const object = await this.stack.s3.client.send(new GetObjectCommand({
        Bucket: this.stack.bucket, Key: this.blobKey(sha), Range: `bytes=0-${MAX_JSON_BLOB_BYTES - 1}`,
      }));
      return Buffer.from(await object.Body!.transformToByteArray()).toString('utf8');
    } catch {
      return undefined;
    }
  }

  private blobKey(sha: string): string {
    return `${this.stack.blobPrefix}sha256/${sha.slice(0, 2)}/${sha}`;
  }

  /**
   * The blob check on cases of its own, before any fault: a blob nothing references must be called an
   * orphan, and the blobs of a workflow whose id the client never learned (as when the gateway dies
   * between the start and its answer) must not be. Answers what went wrong; the planted blob is removed.
   */
  private async checkTheBlobCheck(): Promise<string[]> {
    const planted = `chaos planted orphan ${randomBytes(8).toString('hex')}\n`;
    const plantedSha = createHash('sha256').update(planted).digest('hex');
    await this.stack.s3.client.send(new PutObjectCommand({ Bucket: this.stack.bucket, Key: this.blobKey(plantedSha), Body: planted }));
    try {
      const content = `chaos sample whose job id the client never learns ${randomBytes(8).toString('hex')}\n`;
      const sha256 = createHash('sha256').update(content).digest('hex');
      const form = new FormData();
      form.append('upload', new Blob([content]), 'unknown-to-the-client.txt');
      const response = await fetch(`${this.stack.baseUrl}/fileinfo/upload`, { method: 'POST', body: form, signal: AbortSignal.timeout(HANG_MS) });
      const body = await response.json().catch(() => undefined) as { jobid?: string } | undefined;
      if (response.status !== 200 || !body?.jobid) return [`the blob check's own case: an upload got ${response.status}, not a job id`];
      // Only to leave it out of the figures: the client's jobs never hold it.
      this.ownCaseWorkflows.add(body.jobid);
      const deadline = Date.now() + 180_000;
      let workflows = await this.serverWorkflows();
      while (!workflows.some((workflow) => workflow.id === body.jobid && workflow.closed) && Date.now() < deadline) {
        await sleep(2000);
        workflows = await this.serverWorkflows();
      }
      const workflow = workflows.find((one) => one.id === body.jobid);
      if (!workflow?.closed) return [`the blob check's own case: workflow ${body.jobid} did not close within 180 s`];
      const stored = await this.blobKeys();
      const { orphans } = this.classifyBlobs(stored, workflows);
      const problems: string[] = [];
      if (!orphans.includes(plantedSha)) problems.push(`the blob check did not report a blob nothing references (${plantedSha})`);
      if (!workflow.blobs.has(sha256)) problems.push(`the blob check did not find the upload in the input of workflow ${workflow.id}`);
      const results = [...workflow.blobs].filter((sha) => sha !== sha256 && sha !== EMPTY_SHA256 && stored.has(sha));
      if (!results.length) problems.push(`the blob check found no result blob of workflow ${workflow.id}, so it was not tried on one`);
      const misread = [...workflow.blobs].filter((sha) => orphans.includes(sha));
      if (misread.length) problems.push(`the blob check called ${misread.length} blob(s) of workflow ${workflow.id}, whose id the client never learned, orphans`);
      // The case is the one that matters only if reading the client's jobs alone (the check before) gets it wrong.
      const clientOnly = this.classifyBlobs(stored, []).orphans;
      if (!results.some((sha) => clientOnly.includes(sha))) problems.push(`the blob check's own case is not one the client's jobs alone misread: workflow ${workflow.id} left no such blob`);
      return problems;
    } catch (error) {
      return [`the blob check's own case failed: ${(error as Error).message}`];
    } finally {
      await this.stack.s3.client.send(new DeleteObjectCommand({ Bucket: this.stack.bucket, Key: this.blobKey(plantedSha) }));
    }
  }

  /** A blob's size and first bytes, so a report of an orphan says what it holds (an upload, a result, a report). */
  private async blobStart(sha: string): Promise<string> {
    try {
      const object = await this.stack.s3.client.send(new GetObjectCommand({
        Bucket: this.stack.bucket, Key: this.blobKey(sha), Range: 'bytes=0-79',
      }));
      const start = Buffer.from(await object.Body!.transformToByteArray()).toString('utf8').replace(/[^\x20-\x7e]/g, '.');
      const size = object.ContentRange?.split('/')[1] ?? String(object.ContentLength ?? '?');
      return `${size} bytes: ${JSON.stringify(start)}`;
    } catch (error) {
      return `unreadable: ${(error as Error).message}`;
    }
  }

  /** An upload the gateway stored and may have started, whose answer a killed gateway never sent. */
  private unanswered(sha: string): boolean {
    return this.jobs.some((job) => job.sha256 === sha && !job.id);
  }

  private async blobKeys(): Promise<Set<string>> {
    const found = new Set<string>();
    let token: string | undefined;
    for (let page = 0; page < 1000; page += 1) {
      const listed = await this.stack.s3.client.send(new ListObjectsV2Command({
        Bucket: this.stack.bucket, Prefix: `${this.stack.blobPrefix}sha256/`, ContinuationToken: token,
      }));
      for (const object of listed.Contents ?? []) {
        const sha = object.Key!.split('/').pop()!;
        found.add(sha);
        if (object.LastModified) this.blobWritten.set(sha, object.LastModified.getTime());
      }
      token = listed.NextContinuationToken;
      if (!token) break;
    }
    return found;
  }

  /** Temporary keys and unfinished multipart uploads in the bucket. */
  private async temporaries(): Promise<number> {
    const keys = await this.stack.s3.client.send(new ListObjectsV2Command({ Bucket: this.stack.bucket, Prefix: `${this.stack.blobPrefix}tmp/` }));
    const multipart = await this.stack.s3.client.send(new ListMultipartUploadsCommand({ Bucket: this.stack.bucket }));
    return (keys.Contents ?? []).length + (multipart.Uploads ?? []).length;
  }
}

/** Starts the stack, runs the plan, stops the stack: the figures, whatever happened in between. */
export async function runChaos(options: ChaosOptions): Promise<ChaosFigures> {
  const run = await ChaosRun.start(options);
  let figures: ChaosFigures | undefined;
  try {
    figures = await run.run();
    return figures;
  } finally {
    // The figures are the point: a stack that does not stop cleanly is said, not allowed to hide them.
    await run.stop().catch((error: Error) => {
      if (!figures) throw error;
      (options.log ?? (() => undefined))(`chaos: stopping the stack: ${error.message}`);
    });
  }
}
