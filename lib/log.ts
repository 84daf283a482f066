// Structured logging for the daemons: pino, one line per entry on stderr
// (stdout stays free for tools that print results), synchronous so lines
// survive process.exit.
//
// Formats (`--log-format`, or klog's `--logging-format`; env KN_LOG_FORMAT
// gives the default, `text` when unset, as upstream's klog):
//   text  I1204 18:30:00.123456    1234 flanneld] "Subnet added" subnet="10.244.1.0/24" via="192.0.2.12"
//         (klog's header: level letter I/W/E/F, month and day, time, pid,
//         then the component where klog names the source file)
//   json  {"level":"info","time":"…","name":"flanneld","pid":1234,"msg":"Subnet added",…}
//
// Verbosity follows klog's `-v`: 0 = info and above (what an operator needs:
// start-up, leases, peers added and removed, syncs that failed), 1–3 = debug
// (every sync, every watch event, timings), 4 and up = trace (netlink and
// process detail; error stacks are printed only from here).
//
// Errors have one shape wherever they are logged, under `err`:
// {message, code?, cause?, stack? (v ≥ 4)}; a string is {message}.
import { writeSync } from 'node:fs';
import { pino } from 'pino';
import type { Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;
export type LogFormat = 'text' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

export interface LoggerOptions {
  /** klog-style verbosity (`-v`). */
  verbosity?: number;
  /** Component name, added to every line. */
  name?: string;
  /** text or json; default KN_LOG_FORMAT, else text. */
  format?: LogFormat;
  /** Destination; default stderr (fd 2, synchronous). */
  destination?: NodeJS.WritableStream | { write(s: string): void };
}

export function levelForVerbosity(v: number): 'info' | 'debug' | 'trace' {
  if (v >= 4) return 'trace';
  if (v >= 1) return 'debug';
  return 'info';
}

/** The format a flag value names; throws on anything else. */
export function parseLogFormat(v: string): LogFormat {
  if (v === 'text' || v === 'json') return v;
  throw new Error(`log format ${JSON.stringify(v)}: must be text or json`);
}

export function defaultLogFormat(): LogFormat {
  const env = process.env['KN_LOG_FORMAT'];
  return env === 'json' ? 'json' : 'text';
}

/** The one `err` shape: message, code, cause (recursively), stack only when asked. */
export function serializeError(e: unknown, withStack = false, depth = 0): Record<string, unknown> {
  if (e instanceof Error) {
    const out: Record<string, unknown> = { message: e.message };
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' || typeof code === 'number') out['code'] = code;
    const errno = (e as { errno?: unknown }).errno;
    if (typeof errno === 'number' && out['code'] === undefined) out['code'] = errno;
    if (e.cause !== undefined && depth < 5) out['cause'] = serializeError(e.cause, withStack, depth + 1);
    if (withStack && e.stack !== undefined) out['stack'] = e.stack;
    return out;
  }
  if (e !== null && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') {
    const o = e as { message: string; code?: unknown };
    return typeof o.code === 'string' || typeof o.code === 'number' ? { message: o.message, code: o.code } : { message: o.message };
  }
  return { message: String(e) };
}

const LEVEL_LETTER: Record<string, string> = { trace: 'I', debug: 'I', info: 'I', warn: 'W', error: 'E', fatal: 'F' };
const pad = (n: number, w: number): string => String(n).padStart(w, '0');

/** A text value as klog prints it: strings quoted, objects as JSON. */
function textValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return JSON.stringify(v);
}

/** One JSON line of pino → one klog-style text line. */
export function jsonLineToText(line: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { level, time, pid, name, msg, ...rest } = o;
  const d = typeof time === 'string' ? new Date(time) : new Date();
  const micros = pad(d.getUTCMilliseconds() * 1000, 6);
  const header =
    `${LEVEL_LETTER[String(level)] ?? 'I'}${pad(d.getUTCMonth() + 1, 2)}${pad(d.getUTCDate(), 2)} ` +
    `${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}.${micros} ${String(pid ?? process.pid).padStart(7)} ${String(name ?? 'main')}]`;
  const kv = Object.entries(rest)
    .map(([k, v]) => ` ${k}=${textValue(v)}`)
    .join('');
  return `${header} ${JSON.stringify(String(msg ?? ''))}${kv}\n`;
}

/** A synchronous destination writing klog text to `fd` (or to `inner`). */
export function textDestination(inner?: { write(s: string): void }): { write(s: string): void } {
  return {
    write(s: string): void {
      let out = '';
      for (const line of s.split('\n')) if (line !== '') out += jsonLineToText(line);
      if (inner) inner.write(out);
      else writeSync(2, out);
    },
  };
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const format = opts.format ?? defaultLogFormat();
  const verbosity = opts.verbosity ?? 0;
  const base = opts.destination ?? (format === 'json' ? pino.destination({ fd: 2, sync: true }) : undefined);
  const dest = format === 'text' ? textDestination(base as { write(s: string): void } | undefined) : base;
  const err = (e: unknown): Record<string, unknown> => serializeError(e, verbosity >= 4);
  return pino(
    {
      level: levelForVerbosity(verbosity),
      base: opts.name === undefined ? { pid: process.pid } : { name: opts.name, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err, error: err },
    },
    dest as NodeJS.WritableStream,
  );
}

/** A logger that drops everything, for tests and library defaults. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
