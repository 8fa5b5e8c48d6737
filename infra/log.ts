/** One readable line per event: `2026-11-23T10:00:00.000Z job 1f2e… fileinfo: success in 0.4s`. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  job(id: string, message: string): void;
}

export function createLogger(level: LogLevel = 'info', write: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Logger {
  const emit = (at: LogLevel, message: string) => {
    if (ORDER[at] < ORDER[level]) return;
    const tag = at === 'info' ? '' : ` ${at.toUpperCase()}`;
    write(`${new Date().toISOString()}${tag} ${message}`);
  };
  return {
    debug: (message) => emit('debug', message),
    info: (message) => emit('info', message),
    warn: (message) => emit('warn', message),
    error: (message) => emit('error', message),
    job: (id, message) => emit('info', `job ${id} ${message}`),
  };
}

export const silentLogger: Logger = createLogger('error', () => undefined);
