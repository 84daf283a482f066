// One child process per call, stdin from a string, stdout/stderr collected.
// Used only for the tools whose text is their stable API (iptables-restore,
// iptables-save, nft, ipset). Failures are typed: callers switch on `code`
// (EXEC_NOT_FOUND, EXEC_FAILED, EXEC_TIMEOUT, EXEC_SIGNALED) and `exitCode`.
import { childProcess } from './lazy.ts';
import { NetError } from './errors.ts';

export interface RunOptions {
  input?: string | Buffer;
  /** Path of a network namespace; runs the command via `nsenter --net=<path>`. For tests and tools only. */
  netns?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

export type ExecErrorCode = 'EXEC_NOT_FOUND' | 'EXEC_FAILED' | 'EXEC_TIMEOUT' | 'EXEC_SIGNALED' | 'EXEC_SPAWN';

/** Shaped like execa's error: command, exitCode, stderr, stdout, shortMessage, cause. */
export class ExecError extends NetError {
  declare readonly code: ExecErrorCode;
  readonly command: string;
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
  readonly stdout: string;
  readonly stderr: string;
  readonly shortMessage: string;
  constructor(
    code: ExecErrorCode,
    init: { command: string; exitCode?: number | undefined; signal?: string | undefined; stdout?: string; stderr?: string; shortMessage: string; cause?: unknown },
  ) {
    const stderr = init.stderr ?? '';
    const msg = stderr.trim() ? `${init.shortMessage}\n${stderr.trimEnd()}` : init.shortMessage;
    super(code, msg, init.cause === undefined ? undefined : { cause: init.cause });
    this.command = init.command;
    this.exitCode = init.exitCode;
    this.signal = init.signal;
    this.stdout = init.stdout ?? '';
    this.stderr = stderr;
    this.shortMessage = init.shortMessage;
  }
}

export const isExecNotFound = (err: unknown): boolean => err instanceof ExecError && err.code === 'EXEC_NOT_FOUND';

function quoteArg(a: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** The run() options of a runner configured with an optional netns and timeout. */
export function runOptions(base: { netns?: string | undefined; timeoutMs?: number | undefined }, input?: string): RunOptions {
  const o: RunOptions = {};
  if (input !== undefined) o.input = input;
  if (base.netns !== undefined) o.netns = base.netns;
  if (base.timeoutMs !== undefined) o.timeoutMs = base.timeoutMs;
  return o;
}

/** KN_TRACE_EXEC=1 logs every child process with its wall time to stderr. */
const traceExec = process.env['KN_TRACE_EXEC'] === '1';

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  if (!traceExec) return runNow(cmd, args, opts);
  const t0 = performance.now();
  const done = (): void => void process.stderr.write(`exec ${(performance.now() - t0).toFixed(1)} ms: ${[cmd, ...args].map(quoteArg).join(' ')}\n`);
  return runNow(cmd, args, opts).finally(done);
}

function runNow(cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  const argv = opts.netns === undefined ? [cmd, ...args] : ['nsenter', `--net=${opts.netns}`, '--', cmd, ...args];
  const command = argv.map(quoteArg).join(' ');
  const [file, ...rest] = argv as [string, ...string[]];
  return new Promise((resolve, reject) => {
    let child;
    try {
      child = childProcess().spawn(file, rest, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    } catch (err) {
      reject(new ExecError('EXEC_SPAWN', { command, shortMessage: `Command failed to start: ${command}`, cause: err }));
      return;
    }
    const out: Buffer[] = [];
    const errb: Buffer[] = [];
    let spawnErr: (Error & { code?: string }) | undefined;
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, opts.timeoutMs);
    }
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => errb.push(b));
    child.on('error', (err: Error & { code?: string }) => {
      spawnErr = err;
    });
    // A child that exits without reading stdin makes the write fail with EPIPE; the exit status tells the story.
    child.stdin.on('error', () => {});
    child.on('close', (exitCode, signal) => {
      if (timer) clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(errb).toString('utf8');
      if (spawnErr) {
        const notFound = spawnErr.code === 'ENOENT';
        reject(
          new ExecError(notFound ? 'EXEC_NOT_FOUND' : 'EXEC_SPAWN', {
            command,
            stdout,
            stderr,
            shortMessage: notFound ? `Command not found: ${file}` : `Command failed to start: ${command}: ${spawnErr.message}`,
            cause: spawnErr,
          }),
        );
      } else if (timedOut) {
        reject(new ExecError('EXEC_TIMEOUT', { command, stdout, stderr, signal: signal ?? undefined, shortMessage: `Command timed out after ${opts.timeoutMs} milliseconds: ${command}` }));
      } else if (signal) {
        reject(new ExecError('EXEC_SIGNALED', { command, stdout, stderr, signal, shortMessage: `Command was killed with ${signal}: ${command}` }));
      } else if (exitCode !== 0) {
        reject(new ExecError('EXEC_FAILED', { command, stdout, stderr, exitCode: exitCode ?? undefined, shortMessage: `Command failed with exit code ${exitCode}: ${command}` }));
      } else {
        resolve({ stdout, stderr });
      }
    });
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}
