import { DefaultLogger, type LogLevel, Runtime } from '@temporalio/worker';

let installed = false;

/** Keeps the SDK's own logging to warnings and errors, so Docket's one-line job events stay readable. */
export function installRuntime(level: LogLevel = 'WARN'): void {
  if (installed) return;
  installed = true;
  Runtime.install({
    logger: new DefaultLogger(level, ({ level: at, message, meta }) => {
      // Engine workers poll activities only, by design.
      if (message.startsWith('No workflows registered')) return;
      const detail = meta && Object.keys(meta).length ? ` ${JSON.stringify(meta)}` : '';
      process.stderr.write(`${new Date().toISOString()} ${at} temporal: ${message}${detail}\n`);
    }),
  });
}
