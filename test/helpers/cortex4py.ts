import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureImage } from '../../scripts/lib/images';
import { ROOT } from './system';

const run = promisify(execFile);
const cache = () => join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'docket');

/** The virtualenv `scripts/provision.sh cortex4py` fills, kept across runs so only the first waits for pip. */
export function cortex4pyVenv(): string {
  return join(cache(), 'cortex4py-venv');
}

/** The venv's Python with cortex4py 2.1.0, provisioned (through the one script that pins it) when missing. */
export async function ensureCortex4py(): Promise<string> {
  const python = join(cortex4pyVenv(), 'bin', 'python');
  const ready = async () => existsSync(python) && (await run(python, ['-c', 'import cortex4py'], { timeout: 30_000 }).then(() => true, () => false));
  if (await ready()) return python;
  await run('bash', [join(ROOT, 'scripts/provision.sh'), 'cortex4py'], { maxBuffer: 16 * 1024 * 1024, timeout: 600_000 });
  if (!(await ready())) throw new Error(`scripts/provision.sh cortex4py ran but ${python} cannot import cortex4py`);
  return python;
}

/**
 * Runs `script` with cortex4py's `api` (an `Api(url, key)`) already made, and answers what it printed
 * as JSON. Python's exception, when it raises one, becomes the rejection's message.
 */
export async function cortex4py(python: string, url: string, key: string, script: string): Promise<any> {
  const program = [
    'import json, os, sys',
    'from cortex4py.api import Api',
    'from cortex4py.query import *',
    "api = Api(os.environ['CORTEX_URL'], os.environ['CORTEX_KEY'])",
    'def out(value): print(json.dumps(value, default=lambda o: o.json() if hasattr(o, "json") else str(o)))',
    script,
  ].join('\n');
  try {
    const { stdout } = await run(python, ['-c', program], { env: { ...process.env, CORTEX_URL: url, CORTEX_KEY: key }, timeout: 180_000, maxBuffer: 16 * 1024 * 1024 });
    return JSON.parse(stdout);
  } catch (error) {
    const failed = error as { stderr?: string; message: string };
    throw new Error(`cortex4py failed: ${(failed.stderr ?? failed.message).trim().split('\n').slice(-3).join(' | ')}`);
  }
}

const CORTEXUTILS = 'cortexutils-2.2.1';

/** Builds an image from a test engine folder with TheHive's cortexutils wheel (from PyPI, cached) beside its files. */
export async function buildCortexutilsImage(image: string, folder: string): Promise<void> {
  const wheels = join(cache(), 'wheels');
  mkdirSync(wheels, { recursive: true });
  if (!readdirSync(wheels).some((name) => name.startsWith(CORTEXUTILS))) {
    execFileSync('python3', ['-m', 'pip', 'download', '--no-deps', '--dest', wheels, 'cortexutils==2.2.1'], { stdio: 'pipe' });
  }
  const context = mkdtempSync(join(tmpdir(), 'docket-cortexutils-'));
  cpSync(join(ROOT, folder), context, { recursive: true });
  for (const wheel of readdirSync(wheels).filter((name) => name.startsWith(CORTEXUTILS))) cpSync(join(wheels, wheel), join(context, wheel));
  await ensureImage(image, context);
}
