import { spawnSync } from 'node:child_process';

/**
 * How this machine runs Compose: the `docker compose` plugin (v2) where it is installed, otherwise the
 * standalone `docker-compose` (Debian's 1.29 here). Both read docker-compose.yml the same way.
 */
export interface ComposeCommand {
  program: string;
  /** Arguments that come before the compose subcommand (`compose` for the plugin). */
  prefix: string[];
  label: string;
}

function answers(program: string, args: string[]): boolean {
  const result = spawnSync(program, args, { stdio: 'ignore', timeout: 20_000 });
  return result.status === 0;
}

export function findCompose(): ComposeCommand {
  if (answers('docker', ['compose', 'version'])) return { program: 'docker', prefix: ['compose'], label: 'docker compose' };
  if (answers('docker-compose', ['version'])) return { program: 'docker-compose', prefix: [], label: 'docker-compose' };
  throw new Error('neither `docker compose` (Compose v2) nor `docker-compose` is installed: run  bash scripts/provision.sh compose  (Debian: apt-get install docker-compose)');
}
