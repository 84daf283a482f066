// The CNI protocol skeleton: environment and stdin validation, version
// negotiation, dispatch to the plugin's functions, and the one JSON document
// a plugin may print. Behaviour follows libcni's pkg/skel (research cni.md
// §1.2, §1.5, §1.6, §3.1, §3.6) with these deliberate differences:
//   - error JSON carries `cniVersion` (spec 1.0+),
//   - VERSION echoes the request's cniVersion when we support it,
//   - an unknown CNI_COMMAND is reported before stdin is looked at,
//   - CNI_NETNS equal to the plugin's own netns is refused *before* ADD,
//     CHECK and DEL run (the reference checks after ADD/DEL, when the host
//     may already be changed),
//   - error codes map to spec numbers in one table (errors.ts): netns errors
//     → 8, transient errors (EAGAIN, EINTR, interrupted dumps) → 11.
import { readSync, statSync, writeSync } from 'node:fs';
import { tty } from '../../lib/lazy.ts';
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from './types.ts';
import { CniError, ErrCode, toCniError } from './errors.ts';
import type { CmdArgs, CniCommand, PluginFuncs } from './types.ts';
import { formatResult, isSupportedVersion, versionAtLeast } from './version.ts';
import { goJson } from './json.ts';
import { traceMark } from '../../lib/trace.ts';

export * from './types.ts';
export { cniCodeOf, toCniError } from './errors.ts';

/** Where a plugin run gets its input and puts its output (the real process by default). */
export interface PluginIO {
  env: Record<string, string | undefined>;
  readStdin: () => Buffer;
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  /** stdin is a terminal: VERSION then answers without waiting for input. */
  stdinIsTTY?: boolean;
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
const pause = (ms: number): void => void Atomics.wait(sleepCell, 0, 0, ms);

function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** Reads fd to EOF synchronously, tolerating a non-blocking descriptor. */
function readFdSync(fd: number): Buffer {
  const chunks: Buffer[] = [];
  const buf = Buffer.allocUnsafe(65536);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (err) {
      if (isErrno(err, 'EAGAIN')) {
        pause(1);
        continue;
      }
      if (isErrno(err, 'EOF')) break;
      throw err;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks);
}

function writeFdSync(fd: number, s: string): void {
  const data = Buffer.from(s);
  let off = 0;
  while (off < data.length) {
    try {
      off += writeSync(fd, data, off, data.length - off);
    } catch (err) {
      if (!isErrno(err, 'EAGAIN')) throw err;
      pause(1);
    }
  }
}

/** The real process: env, fd 0, fd 1, fd 2 (synchronous writes, so process.exit loses nothing). */
export function processIO(): PluginIO {
  return {
    env: process.env,
    readStdin: () => readFdSync(0),
    stdout: { write: (s: string) => writeFdSync(1, s) },
    stderr: { write: (s: string) => writeFdSync(2, s) },
    get stdinIsTTY() {
      return tty().isatty(0);
    },
  };
}

// ---- validation -----------------------------------------------------------

const VALID_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Throws CniError 4 unless `id` is a valid CNI_CONTAINERID. */
export function validateContainerId(id: string): void {
  if (id === '') throw new CniError(ErrCode.UnknownContainer, 'missing containerID');
  if (!VALID_NAME.test(id)) throw new CniError(ErrCode.InvalidEnvironment, 'invalid characters in containerID', id);
}

/** Throws CniError 4 unless `name` is a valid Linux interface name (CNI_IFNAME). */
export function validateInterfaceName(name: string): void {
  if (name.length === 0) throw new CniError(ErrCode.InvalidEnvironment, 'interface name is empty');
  if (Buffer.byteLength(name) > 15) {
    throw new CniError(
      ErrCode.InvalidEnvironment,
      'interface name is too long',
      'interface name should be less than 16 characters',
    );
  }
  if (name === '.' || name === '..') throw new CniError(ErrCode.InvalidEnvironment, 'interface name is . or ..');
  if (/[/:\s\u0085]/.test(name)) {
    throw new CniError(ErrCode.InvalidEnvironment, 'interface name contains / or : or whitespace characters');
  }
}

/** Throws CniError 7 unless `name` is a valid network name. */
export function validateNetworkName(name: string): void {
  if (name === '') throw new CniError(ErrCode.InvalidNetworkConfig, 'missing network name');
  if (!VALID_NAME.test(name)) {
    throw new CniError(ErrCode.InvalidNetworkConfig, 'invalid characters found in network name', name);
  }
}

type EnvName =
  | 'CNI_COMMAND'
  | 'CNI_CONTAINERID'
  | 'CNI_NETNS'
  | 'CNI_IFNAME'
  | 'CNI_ARGS'
  | 'CNI_PATH'
  | 'CNI_NETNS_OVERRIDE';

// libcni's table, in its order (the order of names in "missing" messages).
const ENV_ORDER: readonly EnvName[] = [
  'CNI_COMMAND',
  'CNI_CONTAINERID',
  'CNI_NETNS',
  'CNI_IFNAME',
  'CNI_ARGS',
  'CNI_PATH',
  'CNI_NETNS_OVERRIDE',
];
const REQUIRED: Record<CniCommand, ReadonlySet<EnvName>> = {
  ADD: new Set(['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH']),
  CHECK: new Set(['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH']),
  DEL: new Set(['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH']),
  GC: new Set(['CNI_COMMAND', 'CNI_PATH']),
  STATUS: new Set(['CNI_COMMAND', 'CNI_PATH']),
  VERSION: new Set(['CNI_COMMAND']),
};
const VALIDATORS: Partial<Record<EnvName, (v: string) => void>> = {
  CNI_CONTAINERID: validateContainerId,
  CNI_IFNAME: validateInterfaceName,
};
const MIN_VERSION: Partial<Record<CniCommand, string>> = { CHECK: '0.4.0', GC: '1.1.0', STATUS: '1.1.0' };

function isCommand(s: string): s is CniCommand {
  return Object.hasOwn(REQUIRED, s);
}

/** The error document: 4-space indented, no trailing newline. */
export function formatError(err: CniError, cniVersion: string): string {
  const o: Record<string, unknown> = { cniVersion, code: err.cniCode, msg: err.message };
  if (err.details) o.details = err.details;
  return goJson(o, 4);
}

function decodeConfig(stdin: Buffer): Record<string, unknown> {
  const text = stdin.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const jsMsg = (err as Error).message;
    // Same wording as Go for the common truncated/empty case, as V8 (Node)
    // and JavaScriptCore (Bun, the compiled plugins) word it.
    const truncated = jsMsg.startsWith('Unexpected end of JSON input') || jsMsg.startsWith('JSON Parse error: Unexpected EOF');
    const why = text.trim() === '' || truncated ? 'unexpected end of JSON input' : jsMsg;
    throw new CniError(ErrCode.DecodingFailure, `error unmarshall network config: ${why}`);
  }
  if (parsed === null) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    const kind = Array.isArray(parsed) ? 'array' : typeof parsed;
    throw new CniError(ErrCode.DecodingFailure, `error unmarshall network config: cannot unmarshal ${kind} into a network config object`);
  }
  const conf = parsed as Record<string, unknown>;
  if (conf.name !== undefined && conf.name !== null && typeof conf.name !== 'string') {
    throw new CniError(ErrCode.DecodingFailure, `error unmarshall network config: name: cannot unmarshal ${typeof conf.name} into a string`);
  }
  validateNetworkName(typeof conf.name === 'string' ? conf.name : '');
  return conf;
}

function configVersion(conf: Record<string, unknown>): string {
  const v = conf.cniVersion;
  if (v === undefined || v === null || v === '') return '0.1.0';
  if (typeof v !== 'string') {
    throw new CniError(ErrCode.DecodingFailure, `decoding version from network config: cniVersion must be a string`);
  }
  return v;
}

/** True when `path` names the network namespace this process is in. */
function isOwnNetns(path: string): boolean {
  if (path === '') return false;
  try {
    const target = statSync(path);
    const self = statSync('/proc/self/ns/net');
    return target.dev === self.dev && target.ino === self.ino;
  } catch {
    // Missing or unreadable: the plugin reports (or, for DEL, tolerates) it.
    return false;
  }
}

function netnsOverridden(v: string): boolean {
  return v === '1' || v.toUpperCase() === 'TRUE';
}

// ---- the dispatcher ---------------------------------------------------------

/**
 * Runs one CNI invocation and returns the process exit code (0 or 1). Never
 * throws. Writes at most one JSON document to stdout; diagnostics go to stderr.
 */
export async function runPlugin(funcs: PluginFuncs, about: string, io: PluginIO = processIO()): Promise<number> {
  let replyVersion: string = CURRENT_VERSION;
  try {
    const get = (k: EnvName): string => io.env[k] ?? '';
    const command = get('CNI_COMMAND');

    if (command !== '' && !isCommand(command)) {
      throw new CniError(ErrCode.InvalidEnvironment, `unknown CNI_COMMAND: ${command}`);
    }
    const required = command === '' ? new Set<EnvName>(['CNI_COMMAND']) : REQUIRED[command];
    const missing: string[] = [];
    for (const name of ENV_ORDER) {
      const value = get(name);
      if (value === '') {
        if (required.has(name)) missing.push(name);
      } else if (required.has(name)) {
        VALIDATORS[name]?.(value);
      }
    }
    if (missing.length > 0) {
      if (command === '' && about !== '') {
        io.stderr.write(`${about}\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n`);
        return 0;
      }
      throw new CniError(ErrCode.InvalidEnvironment, `required env variables [${missing.join(',')}] missing`);
    }
    if (!isCommand(command)) throw new CniError(ErrCode.InvalidEnvironment, `unknown CNI_COMMAND: ${command}`);

    if (command === 'VERSION') {
      io.stdout.write(versionReply(io) + '\n');
      return 0;
    }

    let stdinData: Buffer;
    try {
      stdinData = io.readStdin();
    } catch (err) {
      throw new CniError(ErrCode.IOFailure, `error reading from stdin: ${(err as Error).message}`);
    }
    const config = decodeConfig(stdinData);
    const cniVersion = configVersion(config);

    const min = MIN_VERSION[command];
    if (min !== undefined && !versionAtLeast(cniVersion, min)) {
      throw new CniError(ErrCode.IncompatibleVersion, `config version does not allow ${command}`);
    }
    if (!isSupportedVersion(cniVersion)) {
      throw new CniError(
        ErrCode.IncompatibleVersion,
        'incompatible CNI versions',
        `config is "${cniVersion}", plugin supports [${SUPPORTED_VERSIONS.map((v) => `"${v}"`).join(' ')}]`,
      );
    }
    replyVersion = cniVersion;

    const netns = get('CNI_NETNS');
    const args: CmdArgs = {
      command,
      containerId: get('CNI_CONTAINERID'),
      netns,
      ifName: get('CNI_IFNAME'),
      args: get('CNI_ARGS'),
      path: get('CNI_PATH').split(':').filter((p) => p !== ''),
      stdinData,
      config,
      cniVersion,
      env: io.env,
    };

    traceMark('skel: env, stdin, config parse');
    if ((command === 'ADD' || command === 'CHECK' || command === 'DEL') && !netnsOverridden(get('CNI_NETNS_OVERRIDE'))) {
      if (isOwnNetns(netns)) {
        throw new CniError(ErrCode.InvalidNetNS, "plugin's netns and netns from CNI_NETNS should not be the same");
      }
    }
    traceMark('skel: own-netns check');

    switch (command) {
      case 'ADD': {
        const result = await funcs.add(args);
        traceMark('plugin ADD (rest)');
        io.stdout.write(formatResult(result, cniVersion));
        traceMark('skel: result print');
        return 0;
      }
      case 'DEL':
        await funcs.del(args);
        traceMark('plugin DEL (rest)');
        return 0;
      case 'CHECK':
        await funcs.check(args);
        return 0;
      case 'GC':
        if (funcs.gc) await funcs.gc(args);
        return 0;
      case 'STATUS':
        if (funcs.status) await funcs.status(args);
        return 0;
    }
  } catch (err) {
    io.stdout.write(formatError(toCniError(err), replyVersion));
    return 1;
  }
}

function versionReply(io: PluginIO): string {
  let version: string = CURRENT_VERSION;
  if (!io.stdinIsTTY) {
    try {
      const req: unknown = JSON.parse(io.readStdin().toString('utf8'));
      const v = typeof req === 'object' && req !== null ? (req as { cniVersion?: unknown }).cniVersion : undefined;
      if (typeof v === 'string' && isSupportedVersion(v)) version = v;
    } catch {
      // VERSION ignores unreadable input, as the reference does.
    }
  }
  return goJson({ cniVersion: version, supportedVersions: [...SUPPORTED_VERSIONS] });
}
