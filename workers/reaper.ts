import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { EngineRunner, Reaped, ReapScope } from '../infra/engine-runner';
import type { Logger } from '../infra/log';

export interface ReapOptions {
  /** Anything labelled by Docket and older than this is removed whoever owns it. */
  maxAgeMs: number;
  log: Logger;
  host?: string;
  isAlive?: (pid: number) => boolean;
}

/**
 * Whether a worker process still runs. A killed worker whose parent died too can linger as a zombie
 * until something reaps it; signal 0 still reaches a zombie, so its /proc state is checked as well.
 */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // The state is the first field after the parenthesised command name: "123 (node) Z ...".
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/**
 * Removes what no live job owns, through every runner (containers, holders and volumes on the Docker
 * host; job folders of process engines): leftovers whose owning worker ran on this host and is gone
 * (killed mid-run), this process's own leftovers that no job running here holds (a job whose removals
 * failed while Docker was down: its worker lives on), and any older than `maxAgeMs`. Owners on other
 * hosts are left to their own reapers until they are that old. One runner that cannot be asked does
 * not stop the others.
 */
export async function reapOrphans(runners: EngineRunner[], options: ReapOptions): Promise<Reaped> {
  const host = options.host ?? hostname();
  const isAlive = options.isAlive ?? processAlive;
  const now = Date.now();
  const scope: ReapScope = {
    log: options.log,
    orphaned(owner, createdMs, heldHere) {
      if (now - createdMs > options.maxAgeMs) return true;
      const [ownerHost, pid] = (owner ?? '').split(':');
      if (ownerHost !== host) return false;
      // Only the runner that ran a job of this process knows whether it still runs; other owners' jobs are theirs to judge.
      if (Number(pid) === process.pid) return heldHere === false;
      return !isAlive(Number(pid));
    },
  };
  const reaped: Reaped = { containers: [], volumes: [], folders: [] };
  const failures: string[] = [];
  for (const runner of runners) {
    try {
      const one = await runner.reap(scope);
      reaped.containers.push(...one.containers);
      reaped.volumes.push(...one.volumes);
      reaped.folders.push(...one.folders);
    } catch (error) {
      failures.push(`${runner.title}: ${(error as Error).message}`);
    }
  }
  if (failures.length) throw new Error(`cannot reap through ${failures.join('; ')}`);
  return reaped;
}

export interface ReaperOptions extends ReapOptions {
  /** Time between full passes (10 minutes). */
  everyMs?: number;
  /** How often runners are asked whether a job ended since their last complete pass (`reapDue`); 15 s. */
  followUpMs?: number;
}

export interface Reaper {
  /** Stops the timers and waits for a pass under way. */
  stop(): Promise<void>;
}

/**
 * Reaps once now, then every `everyMs`, and within `followUpMs` of a job ending while a runner's last
 * pass is incomplete or older than that job. A job that ends while Docker is down cannot remove its
 * containers and volume; the runner says so through `reapDue` (it stays true while Docker does not
 * answer), so its leftovers go within seconds of Docker answering again rather than at the next full
 * pass. A failed pass is logged, never thrown; passes never overlap.
 */
export async function startReaper(runners: EngineRunner[], options: ReaperOptions): Promise<Reaper> {
  let running: Promise<void> | undefined;
  const pass = (): Promise<void> => {
    running ??= reapOrphans(runners, options)
      .then(() => undefined, (error) => options.log.warn(`reaper: ${(error as Error).message}`))
      .finally(() => { running = undefined; });
    return running;
  };
  await pass();
  const full = setInterval(pass, options.everyMs ?? 10 * 60_000);
  const followUp = setInterval(() => {
    if (runners.some((runner) => runner.reapDue?.())) void pass();
  }, options.followUpMs ?? 15_000);
  full.unref();
  followUp.unref();
  return {
    async stop() {
      clearInterval(full);
      clearInterval(followUp);
      await running;
    },
  };
}
