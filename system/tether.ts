/**
 * `tether.js <command> [args…]` from the build (system/compile.ts; `node --import tsx system/tether.ts`
 * when the launcher runs through tsx), started by the supervisor with an IPC channel: runs a command that cannot notice its parent dying (the Temporal CLI) and stops it when the
 * channel closes, which the kernel does when the supervisor dies, even by SIGKILL. Signals are passed
 * on, and the tether ends as its command ends, so the supervisor sees the command's own exit.
 */
import { spawn } from 'node:child_process';

const GRACE_MS = 10_000;

function main(): void {
  const [command, ...args] = process.argv.slice(2);
  if (!command || !process.send) {
    console.error('tether: run me from the supervisor, with an IPC channel, as: tether.ts <command> [args…]');
    process.exit(2);
  }
  const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  child.on('error', (error) => {
    console.error(`tether: cannot run ${command}: ${error.message}`);
    process.exit(127);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      // End the same way, so the supervisor reports the signal the command got.
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
      return;
    }
    process.exit(code ?? 1);
  });
  if (child.pid !== undefined) process.send({ docket: 'command', pid: child.pid });

  const stop = () => {
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), GRACE_MS).unref();
  };
  process.on('disconnect', stop);
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => child.kill(signal));
}

main();
