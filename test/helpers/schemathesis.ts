import { execFile, spawn } from 'node:child_process';
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

export interface SchemathesisRun {
  code: number | null;
  output: string;
}

/**
 * Runs schemathesis and collects everything it prints; past `limitMs` it is killed and `whatToDo` is
 * appended to its output, so the caller's failure says how to stay within the bound.
 */
export function runSchemathesis(command: string, args: string[], limitMs: number, whatToDo: string): Promise<SchemathesisRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', PYTHONUNBUFFERED: '1' } });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk));
    const timer = setTimeout(() => {
      chunks.push(Buffer.from(`\n(killed: schemathesis ran past ${limitMs / 1000}s; ${whatToDo})\n`));
      child.kill('SIGKILL');
    }, limitMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output: Buffer.concat(chunks).toString() });
    });
  });
}
