// Structured logging for the daemons: pino, JSON lines on stderr (stdout
// stays free for tools that print results). Verbosity follows klog's `-v`:
// 0 = info, 1..3 = debug, 4 and up = trace.
import { pino } from 'pino';
import type { Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

export interface LoggerOptions {
  /** klog-style verbosity (`-v`). */
  verbosity?: number;
  /** Component name, added to every line. */
  name?: string;
  /** Destination; default stderr (fd 2, synchronous so lines survive process.exit). */
  destination?: NodeJS.WritableStream | { write(s: string): void };
}

export function levelForVerbosity(v: number): 'info' | 'debug' | 'trace' {
  if (v >= 4) return 'trace';
  if (v >= 1) return 'debug';
  return 'info';
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const dest = opts.destination ?? pino.destination({ fd: 2, sync: true });
  return pino(
    {
      level: levelForVerbosity(opts.verbosity ?? 0),
      base: opts.name === undefined ? { pid: process.pid } : { name: opts.name, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest as NodeJS.WritableStream,
  );
}

/** A logger that drops everything, for tests and library defaults. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
