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
 * (killed mid-run), and any older than `maxAgeMs`. Owners on other hosts are left to their own
 * reapers until they are that old. One runner that cannot be asked does not stop the others.
 */
export async function reapOrphans(runners: EngineRunner[], options: ReapOptions): Promise<Reaped> {
  const host = options.host ?? hostname();
  const isAlive = options.isAlive ?? processAlive;
  const now = Date.now();
  const scope: ReapScope = {
    log: options.log,
    orphaned(owner, createdMs) {
      if (now - createdMs > options.maxAgeMs) return true;
      const [ownerHost, pid] = (owner ?? '').split(':');
      return ownerHost === host && !isAlive(Number(pid));
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
