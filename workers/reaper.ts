import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type Docker from 'dockerode';
import { HOLDER_ENGINE_LABEL, HOLDER_LABEL, OWNER_LABEL } from '../activities/docker-runner';
import type { Logger } from '../infra/log';

export interface ReapOptions {
  /** Anything labelled by Docket and older than this is removed whoever owns it. */
  maxAgeMs: number;
  log: Logger;
  host?: string;
  isAlive?: (pid: number) => boolean;
}

export interface Reaped {
  containers: string[];
  volumes: string[];
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
 * Removes engine containers, job folder holders and job volumes that no live activity owns: those whose owning worker ran on
 * this host and is gone (killed mid-run), and any older than `maxAgeMs`. Owners on other hosts are
 * left to their own reapers until they are that old.
 */
export async function reapOrphans(docker: Docker, options: ReapOptions): Promise<Reaped> {
  const host = options.host ?? hostname();
  const isAlive = options.isAlive ?? processAlive;
  const now = Date.now();
  const orphaned = (labels: Record<string, string> | undefined, createdMs: number) => {
    if (now - createdMs > options.maxAgeMs) return true;
    const [ownerHost, pid] = (labels?.[OWNER_LABEL] ?? '').split(':');
    return ownerHost === host && !isAlive(Number(pid));
  };
  const reaped: Reaped = { containers: [], volumes: [] };
  // Holders keep job volumes (tmpfs) mounted, so they go with the engine containers, before the volumes.
  const containers = [
    ...(await docker.listContainers({ all: true, filters: { label: ['docket.job'] } })),
    ...(await docker.listContainers({ all: true, filters: { label: [HOLDER_LABEL] } })),
  ];
  for (const info of containers) {
    if (!orphaned(info.Labels, info.Created * 1000)) continue;
    await docker.getContainer(info.Id).remove({ force: true, v: true }).catch(() => undefined);
    reaped.containers.push(info.Id);
    const holder = info.Labels[HOLDER_LABEL];
    options.log.info(holder
      ? `reaper: removed job folder holder ${info.Id.slice(0, 12)} of job ${holder} (${info.Labels[HOLDER_ENGINE_LABEL]})`
      : `reaper: removed container ${info.Id.slice(0, 12)} of job ${info.Labels['docket.job']} (${info.Labels['docket.engine']})`);
  }
  const { Volumes: volumes } = await docker.listVolumes({ filters: { label: ['docket.job'] } });
  for (const volume of volumes ?? []) {
    const created = Date.parse((volume as { CreatedAt?: string }).CreatedAt ?? '') || now;
    if (!orphaned(volume.Labels, created)) continue;
    try {
      await docker.getVolume(volume.Name).remove();
      reaped.volumes.push(volume.Name);
      options.log.info(`reaper: removed volume ${volume.Name} of job ${volume.Labels?.['docket.job']}`);
    } catch {
      // Still in use by a container being removed; the next pass takes it.
    }
  }
  return reaped;
}
