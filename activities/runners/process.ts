import { type ChildProcess, spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { EngineManifest } from '../../core/engine-manifest';
import type { BlobStore } from '../../infra/blob-store';
import { type EngineJob, type EngineRun, type EngineRunner, OutputCollector, type OutputFile, type Reaped, type ReapScope } from '../../infra/engine-runner';
import { EngineTimeoutError } from '../errors';

const HEARTBEAT_MS = 5_000;
/** A job folder's name: `docket-job-<owner pid>-<engine>-<random>`. */
const JOB_FOLDER = /^docket-job-(\d+)-/;

/** The process runner was asked to run an engine while it is off: a setting, not a fault to retry. */
export class ProcessRunnerDisabledError extends Error {
  readonly retryable = false;
  constructor(engine: string) {
    super(`engine ${engine} uses the process runner, which is off on this worker: set DOCKET_PROCESS_RUNNER=on to allow unconfined local commands`);
  }
}

/**
 * TheHive's process runner: the engine's `command` runs as a local process of the worker, in a
 * temporary job folder that stands in for the container's mount point. It keeps the timeout, the
 * heartbeats, the cancellation and the output caps of the Docker runner, but NOT its confinement:
 * the command has the worker's user, network and filesystem. Nor is its job folder size-capped: a
 * command that can write anywhere the worker's user can would not be bounded by a cap on one folder
 * (and mounting a tmpfs needs privileges the worker should not have). Off unless explicitly enabled.
 */
export class ProcessRunner implements EngineRunner {
  readonly kind = 'process' as const;
  readonly title = 'the process runner';

  /** `folders` is where job folders go (the system's temporary folder unless a test says otherwise). */
  constructor(private readonly blobs: BlobStore, private readonly enabled: boolean, private readonly folders = tmpdir()) {}

  /** A local command has no image: the result cache is tied to the whole command line instead. */
  async identify(manifest: EngineManifest): Promise<string | undefined> {
    return `process:${(manifest.command ?? []).join(' ')}`;
  }

  /** Being off is a setting, not a fault: the gateway stays ready, and `runner: process` jobs say how to turn it on. */
  async health(): Promise<string> {
    return this.enabled
      ? 'the process runner is on: runner: process engines run unconfined on the engine workers'
      : 'the process runner is off (DOCKET_PROCESS_RUNNER): runner: process engines are refused';
  }

  /** A local process needs nothing set up ahead of its first job. */
  async prepare(): Promise<void> {}

  /**
   * Removes job folders that a killed worker left in the temporary folder. Their names carry the
   * owner's pid (`docket-job-<pid>-…`); the process group of such a worker's command is the
   * supervisor's to kill, so only folders are left to reap.
   */
  async reap(scope: ReapScope): Promise<Reaped> {
    const reaped: Reaped = { containers: [], volumes: [], folders: [] };
    const entries = await readdir(this.folders, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const pid = JOB_FOLDER.exec(entry.name)?.[1];
      if (!pid || !entry.isDirectory()) continue;
      const path = join(this.folders, entry.name);
      const created = await stat(path).then((info) => info.mtimeMs, () => undefined);
      if (created === undefined || !scope.orphaned(`${hostname()}:${pid}`, created)) continue;
      await rm(path, { recursive: true, force: true });
      reaped.folders.push(path);
      scope.log.info(`reaper: removed job folder ${entry.name} of a process engine`);
    }
    return reaped;
  }

  async run(job: EngineJob): Promise<EngineRun> {
    if (!this.enabled) throw new ProcessRunnerDisabledError(job.engine);
    const command = [...(job.entrypoint ?? []), ...(job.cmd ?? [])];
    if (!command.length) throw new Error(`engine ${job.engine} has no command for the process runner`);
    const root = await mkdtemp(join(this.folders, `docket-job-${process.pid}-${job.engine.replace(/[^a-zA-Z0-9_.-]/g, '_')}-`));
    const started = Date.now();
    try {
      await this.layOut(root, job);
      const local = (value: string) => value.split(job.mountpoint).join(root);
      const env = Object.fromEntries(Object.entries(job.env).map(([key, value]) => [key, local(value)]));
      const child = spawn(command[0], command.slice(1).map(local), {
        cwd: job.imageSetup ? cortexWorkdir(command[0], root) : root,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: root, TMPDIR: join(root, '.tmp'), ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      const [stdout, stderr, exit] = await Promise.all([
        this.blobs.put(child.stdout!, { limit: job.limits.output, truncate: true }),
        this.blobs.put(child.stderr!, { limit: job.limits.output, truncate: true }),
        this.supervise(child, job),
      ]);
      const { outputs, truncated } = await this.collect(root, job);
      return {
        imageId: `process:${command[0]}`,
        exitCode: exit,
        oomKilled: false,
        stdout,
        stderr,
        outputs,
        truncated: truncated || stdout.truncated || stderr.truncated,
        jobFolderFull: false,
        durationMs: Date.now() - started,
      };
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }

  private async layOut(root: string, job: EngineJob): Promise<void> {
    await mkdir(join(root, '.tmp'));
    for (const entry of job.input) {
      const path = join(root, entry.name);
      if (entry.type === 'directory') {
        await mkdir(path, { recursive: true });
        continue;
      }
      await pipeline(await entry.open!(), createWriteStream(path, { mode: 0o600 }));
      await chmod(path, entry.mode);
    }
  }

  /** Waits for the process, killing its whole process group at the timeout or on cancellation. */
  private supervise(child: ChildProcess, job: EngineJob): Promise<number> {
    return new Promise((resolve, reject) => {
      let timedOut = false;
      let cancelled = false;
      const kill = () => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      };
      const timer = setTimeout(() => { timedOut = true; kill(); }, job.timeoutMs);
      const beat = setInterval(() => job.heartbeat?.(), HEARTBEAT_MS);
      const onAbort = () => { cancelled = true; kill(); };
      job.signal?.addEventListener('abort', onAbort, { once: true });
      child.on('error', (error) => reject(new Error(`engine ${job.engine} could not start its command: ${error.message}`)));
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        clearInterval(beat);
        job.signal?.removeEventListener('abort', onAbort);
        if (cancelled) return reject(job.signal?.reason ?? new Error('cancelled'));
        if (timedOut) return reject(new EngineTimeoutError(job.engine, job.timeoutMs));
        resolve(code ?? (signal ? 128 + 9 : 1));
      });
    });
  }

  private async collect(root: string, job: EngineJob): Promise<{ outputs: OutputFile[]; truncated: boolean }> {
    if (!job.outputPath) return { outputs: [], truncated: false };
    const base = join(root, job.outputPath);
    let files: string[];
    try {
      files = (await stat(base)).isDirectory() ? await walk(base) : [base];
    } catch {
      return { outputs: [], truncated: false };
    }
    const collected = new OutputCollector(this.blobs, job.limits.output);
    for (const file of files) {
      await collected.add(file === base ? relative(root, base) : relative(base, file), createReadStream(file));
    }
    return { outputs: collected.outputs, truncated: collected.truncated };
  }
}

async function walk(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await walk(path)));
    else if (entry.isFile()) found.push(path);
  }
  return found.sort();
}

/**
 * Where TheHive's process runner starts an analyzer: the folder above the one holding its program
 * (`analyzers/` for `analyzers/EmlParser/parse.py`), so paths relative to the analyzers' root resolve.
 */
function cortexWorkdir(program: string, jobFolder: string): string {
  return isAbsolute(program) ? dirname(dirname(program)) : jobFolder;
}
