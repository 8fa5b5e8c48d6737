import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { processAlive } from '../../workers/reaper';

describe('the reaper\'s idea of a live worker', () => {
  it('counts a running process as alive and a nonsense pid as dead', () => {
    expect(processAlive(process.pid)).toBe(true);
    expect(processAlive(0)).toBe(false);
    expect(processAlive(Number.NaN)).toBe(false);
  });

  it('counts a finished process that nobody has reaped yet (a zombie) as dead', async () => {
    // The shell starts `true` in the background, prints its pid, then becomes `sleep`, which never
    // waits for children: `true` exits and stays a zombie until the sleep ends.
    const parent = spawn('sh', ['-c', 'true & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const [chunk] = (await once(parent.stdout!, 'data')) as [Buffer];
    const zombie = Number(chunk.toString().trim());
    await new Promise((resolve) => setTimeout(resolve, 300));
    try {
      expect(zombie).toBeGreaterThan(0);
      expect(processAlive(zombie)).toBe(false);
      expect(processAlive(parent.pid!)).toBe(true);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
