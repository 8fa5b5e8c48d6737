import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** Runs a command, keeping its output to show only when it fails. */
export function run(command: string, args: string[], options: { cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => { output += chunk; });
    child.stderr.on('data', (chunk) => { output += chunk; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(output);
      else reject(new Error(`${command} ${args.join(' ')} failed with code ${code}:\n${output.slice(-4000)}`));
    });
  });
}

export async function imageExists(image: string): Promise<boolean> {
  try {
    await run('docker', ['image', 'inspect', image]);
    return true;
  } catch {
    return false;
  }
}

/** Builds `image` from the Dockerfile in `dir` unless it is already there (or `force`). */
export async function ensureImage(image: string, dir: string, options: { force?: boolean } = {}): Promise<'built' | 'present'> {
  if (!options.force && (await imageExists(image))) return 'present';
  if (!existsSync(join(dir, 'Dockerfile'))) throw new Error(`no Dockerfile in ${dir} to build ${image} from`);
  await run('docker', ['build', '--quiet', '--tag', image, dir]);
  return 'built';
}
