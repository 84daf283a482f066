// Delegation to another plugin (IPAM), with libcni's DelegateArgs semantics:
// the child gets this plugin's environment with only CNI_COMMAND replaced,
// and the same config bytes on stdin.
//
// When the executable found in CNI_PATH is this very process's executable
// (the multi-call binary under another name: a hard link or symlink to the
// same file) and this process registered that plugin's functions, the
// plugin runs in-process through runPlugin with injected IO. Both paths feed
// the exit code, stdout and stderr through the same interpretation, so the
// caller sees identical results and errors. A foreign binary is spawned.
import { sleep } from '../../lib/abort.ts';
import { childProcess } from '../../lib/lazy.ts';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { runPlugin } from './index.ts';
import type { PluginIO } from './index.ts';
import { CniError, ErrCode } from './types.ts';
import type { CmdArgs, CniCommand, PluginFuncs, Result } from './types.ts';
import { parseResult } from './version.ts';
import { goQuote } from './json.ts';

/** The delegated plugin is not installed (or the name/path is unusable). */
export class PluginNotFoundError extends CniError {
  readonly pluginType: string;
  constructor(type: string, msg: string) {
    super(ErrCode.InvalidNetworkConfig, msg, undefined, { code: 'PLUGIN_NOT_FOUND' });
    this.pluginType = type;
  }
}

/** Finds `type` in the CNI_PATH directories (a regular file), like libcni's FindInPath. */
export function findPlugin(type: string, path: readonly string[]): string {
  if (type === '') throw new PluginNotFoundError(type, 'no plugin name provided');
  if (type.includes('/')) throw new PluginNotFoundError(type, `invalid plugin name: ${type}`);
  if (path.length === 0) throw new PluginNotFoundError(type, 'no paths provided');
  for (const dir of path) {
    const full = join(dir, type);
    try {
      if (statSync(full).isFile()) return full;
    } catch {
      // not here; next directory
    }
  }
  throw new PluginNotFoundError(type, `failed to find plugin ${goQuote(type)} in path [${path.join(' ')}]`);
}

// ---- in-process registry ------------------------------------------------------

const inProcess = new Map<string, PluginFuncs>();

/** Lets delegation run our own plugin `type` in this process instead of spawning it. */
export function registerInProcess(type: string, funcs: PluginFuncs): void {
  inProcess.set(type, funcs);
}

/**
 * True when `file` (symlinks followed) is the same file as `self`, by device
 * and inode: a hard link or symlink to the executable this process runs. A
 * copy is a different file, possibly another version, and is spawned.
 */
export function isSameExecutable(file: string, self: string = process.execPath): boolean {
  try {
    const a = statSync(file);
    const b = statSync(self);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

// ---- captured IO ----------------------------------------------------------------

export interface CapturedIO extends PluginIO {
  /** Everything written to stdout so far. */
  out(): string;
  /** Everything written to stderr so far. */
  err(): string;
}

/** A PluginIO with the given env and stdin whose stdout/stderr are collected (also for tests). */
export function captureIO(env: Record<string, string | undefined>, stdin: Buffer | string = ''): CapturedIO {
  const bytes = typeof stdin === 'string' ? Buffer.from(stdin) : stdin;
  let out = '';
  let err = '';
  return {
    env,
    readStdin: () => bytes,
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    stdinIsTTY: false,
    out: () => out,
    err: () => err,
  };
}

// ---- running a plugin -------------------------------------------------------------

interface Outcome {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

function delegateEnv(args: CmdArgs, command: CniCommand): Record<string, string | undefined> {
  return { ...args.env, CNI_COMMAND: command };
}

async function spawnPlugin(file: string, stdin: Buffer, env: Record<string, string | undefined>): Promise<Outcome> {
  // libcni retries "text file busy" (the binary is being replaced): 6 attempts, 1 s apart.
  for (let attempt = 0; ; attempt++) {
    try {
      return await spawnOnce(file, stdin, env);
    } catch (err) {
      const busy = (err as { code?: unknown }).code === 'ETXTBSY';
      if (!busy || attempt >= 5) {
        throw new CniError(ErrCode.Internal, `failed to run plugin ${goQuote(file)}: ${(err as Error).message}`, undefined, {
          cause: err,
        });
      }
      await sleep(1000);
    }
  }
}

function spawnOnce(file: string, stdin: Buffer, env: Record<string, string | undefined>): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = childProcess().spawn(file, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    // A plugin that exits without reading stdin closes the pipe: not our error.
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
    child.on('close', (exitCode, signal) =>
      resolve({
        exitCode,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
  });
}

async function runInProcess(
  funcs: PluginFuncs,
  stdin: Buffer,
  env: Record<string, string | undefined>,
): Promise<Outcome> {
  const io = captureIO(env, stdin);
  const exitCode = await runPlugin(funcs, '', io);
  return { exitCode, signal: null, stdout: io.out(), stderr: io.err() };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A failed run as libcni reports it (raw_exec.go pluginErr). */
function pluginError(o: Outcome): CniError {
  const status = o.signal !== null ? `signal: ${o.signal}` : `exit status ${o.exitCode ?? -1}`;
  if (o.stdout.length === 0) {
    if (o.stderr.length === 0) return new CniError(ErrCode.Internal, `netplugin failed with no error message: ${status}`);
    return new CniError(ErrCode.Internal, `netplugin failed: ${goQuote(o.stderr)}: ${status}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(o.stdout);
  } catch (err) {
    return new CniError(
      ErrCode.Internal,
      `netplugin failed but error parsing its diagnostic message ${goQuote(o.stdout)}: ${(err as Error).message}`,
    );
  }
  const e = isRecord(doc) ? doc : {};
  const code = typeof e.code === 'number' ? e.code : ErrCode.Internal;
  const msg = typeof e.msg === 'string' ? e.msg : '';
  const details = typeof e.details === 'string' && e.details !== '' ? e.details : undefined;
  return new CniError(code, msg, details);
}

function passStderr(o: Outcome): void {
  // Like libcni: a successful child's stderr is informational and copied through.
  if (o.stderr.length > 0) process.stderr.write(o.stderr);
}

async function delegate(type: string, command: CniCommand, stdin: Buffer, args: CmdArgs): Promise<Outcome> {
  const file = findPlugin(type, args.path);
  const env = delegateEnv(args, command);
  const funcs = inProcess.get(type);
  const outcome =
    funcs !== undefined && isSameExecutable(file)
      ? await runInProcess(funcs, stdin, env)
      : await spawnPlugin(file, stdin, env);
  if (outcome.exitCode !== 0) throw pluginError(outcome);
  passStderr(outcome);
  return outcome;
}

/** The cniVersion of config bytes ("0.1.0" when absent or unreadable, as libcni's decoder). */
function configVersionOf(stdin: Buffer): string {
  try {
    const conf: unknown = JSON.parse(stdin.toString('utf8'));
    const v = isRecord(conf) ? conf.cniVersion : undefined;
    return typeof v === 'string' && v !== '' ? v : '0.1.0';
  } catch {
    return '0.1.0';
  }
}

/** Delegated ADD: the child's result in the current shape. */
export async function delegateAdd(type: string, stdinData: Buffer, args: CmdArgs): Promise<Result> {
  const o = await delegate(type, 'ADD', stdinData, args);
  let doc: unknown;
  try {
    doc = JSON.parse(o.stdout);
  } catch (err) {
    throw new CniError(ErrCode.DecodingFailure, `failed to unmarshal raw result: ${o.stdout.trim() === '' ? 'unexpected end of JSON input' : (err as Error).message}`);
  }
  return parseResult(doc, configVersionOf(stdinData));
}

export async function delegateDel(type: string, stdinData: Buffer, args: CmdArgs): Promise<void> {
  await delegate(type, 'DEL', stdinData, args);
}

export async function delegateCheck(type: string, stdinData: Buffer, args: CmdArgs): Promise<void> {
  await delegate(type, 'CHECK', stdinData, args);
}

export async function delegateStatus(type: string, stdinData: Buffer, args: CmdArgs): Promise<void> {
  await delegate(type, 'STATUS', stdinData, args);
}

export async function delegateGc(type: string, stdinData: Buffer, args: CmdArgs): Promise<void> {
  await delegate(type, 'GC', stdinData, args);
}

