import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const ROOT = join(__dirname, '../..');
const run = promisify(execFile);

/** The virtualenv `scripts/provision.sh schemathesis` fills, kept across runs so only the first waits for pip. */
export function schemathesisVenv(): string {
  const cache = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  return join(cache, 'docket', 'schemathesis-venv');
}

/** The `schemathesis` command, provisioned (through the one script that pins its version) when missing. */
export async function ensureSchemathesis(): Promise<string> {
  const command = join(schemathesisVenv(), 'bin', 'schemathesis');
  if (existsSync(command)) return command;
  await run('bash', [join(ROOT, 'scripts/provision.sh'), 'schemathesis'], { maxBuffer: 16 * 1024 * 1024, timeout: 600_000 });
  if (!existsSync(command)) throw new Error(`scripts/provision.sh schemathesis ran but there is no ${command}`);
  return command;
}
