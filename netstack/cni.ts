// A small CNI runtime (what libcni does for a container runtime): runs a
// network configuration list plugin by plugin.
//
//   ADD    each plugin in order; plugin i gets the result of plugin i-1 as
//          prevResult; the last result is cached per attachment
//          (<cacheDir>/results/<network>-<containerID>-<ifname>, libcni's
//          cniCacheV1 layout) and returned.
//   CHECK  each plugin in order with the cached result as prevResult
//          (spec >= 0.4.0; older lists have no CHECK).
//   DEL    each plugin in REVERSE order with the cached result as prevResult
//          (when there is one), then the cache entry is removed. DEL of an
//          attachment that was never added, or whose netns is gone, is
//          passed to the plugins all the same: they must treat it as done.
//
// Plugins are found in CNI_PATH by their `type` and run through an
// executor (the process boundary); tests pass a fake one.
import { spawn } from 'node:child_process';
import { access, readFile, rm } from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { NetError, isNotFound } from '../lib/errors.ts';
import { writeFileAtomic } from '../lib/fs.ts';

export type CniCommand = 'ADD' | 'CHECK' | 'DEL';

/** A plugin's error result (spec "Error" object), or a plugin that failed without one. */
export class CniError extends NetError {
  readonly cniCode: number;
  readonly plugin: string;
  constructor(plugin: string, command: CniCommand, cniCode: number, msg: string, details?: string) {
    super('CNI_PLUGIN_FAILED', `CNI ${command} ${plugin}: ${msg}${cniCode ? ` (code ${cniCode})` : ''}`, details === undefined ? undefined : { details });
    this.cniCode = cniCode;
    this.plugin = plugin;
  }
}

export interface NetConfList {
  readonly cniVersion: string;
  readonly name: string;
  readonly disableCheck?: boolean;
  readonly plugins: readonly Record<string, unknown>[];
}

export interface RuntimeConf {
  readonly containerId: string;
  /** Path of the pod's netns. */
  readonly netns: string;
  readonly ifName: string;
  /** CNI_ARGS pairs (K8S_POD_NAMESPACE, K8S_POD_NAME, …). */
  readonly args?: readonly (readonly [string, string])[];
}

export interface PluginRun {
  readonly path: string;
  readonly env: Readonly<Record<string, string>>;
  readonly stdin: string;
}

export interface PluginOutcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The process boundary: runs one plugin binary. */
export interface PluginExecutor {
  run(call: PluginRun): Promise<PluginOutcome>;
  /** The first `CNI_PATH` entry holding an executable `type`, or undefined. */
  find(type: string, paths: readonly string[]): Promise<string | undefined>;
}

/** Parses and validates a conflist (the runtime's view: name, version, plugin types). */
export function parseConfList(text: string, where = 'conflist'): NetConfList {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    throw new NetError('INVALID_CONFIG', `${where}: not JSON: ${(err as Error).message}`, { cause: err });
  }
  const o = obj as Partial<NetConfList> | null;
  if (!o || typeof o !== 'object') throw new NetError('INVALID_CONFIG', `${where}: not an object`);
  if (typeof o.name !== 'string' || o.name === '') throw new NetError('INVALID_CONFIG', `${where}: no network name`);
  if (typeof o.cniVersion !== 'string') throw new NetError('INVALID_CONFIG', `${where}: no cniVersion`);
  if (!Array.isArray(o.plugins) || o.plugins.length === 0) throw new NetError('INVALID_CONFIG', `${where}: no plugins`);
  for (const [i, p] of o.plugins.entries()) {
    if (!p || typeof p !== 'object' || typeof (p as { type?: unknown }).type !== 'string') throw new NetError('INVALID_CONFIG', `${where}: plugins[${i}] has no type`);
  }
  return o as NetConfList;
}

/** Whether `v` (x.y.z) is at least `min`. */
export function versionAtLeast(v: string, min: string): boolean {
  const a = v.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

/** The config one plugin of the list gets on stdin: its own object plus name, cniVersion and prevResult. */
export function pluginConfig(list: NetConfList, index: number, prevResult: unknown): string {
  const own = list.plugins[index];
  if (!own) throw new NetError('INVALID_CONFIG', `no plugin ${index} in ${list.name}`);
  const conf: Record<string, unknown> = { ...own, name: list.name, cniVersion: list.cniVersion };
  if (prevResult !== undefined) conf['prevResult'] = prevResult;
  else delete conf['prevResult'];
  return JSON.stringify(conf);
}

interface CacheEntry {
  kind: 'cniCacheV1';
  containerId: string;
  ifName: string;
  networkName: string;
  config: string;
  cniArgs?: [string, string][];
  result: unknown;
}

export class CniRuntime {
  constructor(
    private readonly paths: readonly string[],
    private readonly cacheDir: string,
    private readonly exec: PluginExecutor = processExecutor(),
    private readonly extraEnv: Readonly<Record<string, string>> = {},
  ) {}

  cachePath(list: NetConfList, rt: RuntimeConf): string {
    return join(this.cacheDir, 'results', `${list.name}-${rt.containerId}-${rt.ifName}`);
  }

  /** The cached ADD result of this attachment, or undefined. */
  async cachedResult(list: NetConfList, rt: RuntimeConf): Promise<unknown> {
    try {
      const e = JSON.parse(await readFile(this.cachePath(list, rt), 'utf8')) as CacheEntry;
      return e.result;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw new NetError('IO_FAILURE', `reading the CNI cache of ${rt.containerId}/${rt.ifName}: ${(err as Error).message}`, { cause: err });
    }
  }

  async add(list: NetConfList, rt: RuntimeConf): Promise<unknown> {
    let prev: unknown;
    for (let i = 0; i < list.plugins.length; i++) {
      const out = await this.invoke('ADD', list, i, rt, prev);
      prev = out;
    }
    const entry: CacheEntry = {
      kind: 'cniCacheV1',
      containerId: rt.containerId,
      ifName: rt.ifName,
      networkName: list.name,
      config: Buffer.from(JSON.stringify(list)).toString('base64'),
      ...(rt.args ? { cniArgs: rt.args.map(([k, v]) => [k, v] as [string, string]) } : {}),
      result: prev,
    };
    await writeFileAtomic(this.cachePath(list, rt), JSON.stringify(entry), { mode: 0o600 });
    return prev;
  }

  async check(list: NetConfList, rt: RuntimeConf): Promise<void> {
    if (!versionAtLeast(list.cniVersion, '0.4.0')) throw new NetError('INCOMPATIBLE_VERSION', `CHECK needs cniVersion >= 0.4.0, ${list.name} has ${list.cniVersion}`);
    if (list.disableCheck) return;
    const cached = await this.cachedResult(list, rt);
    if (cached === undefined) throw new NetError('CNI_NO_CACHED_RESULT', `CHECK ${list.name}: no cached result for ${rt.containerId}/${rt.ifName} (never added?)`);
    for (let i = 0; i < list.plugins.length; i++) await this.invoke('CHECK', list, i, rt, cached);
  }

  /** DEL in reverse order. Every plugin runs even when one fails; the first failure is thrown at the end. */
  async del(list: NetConfList, rt: RuntimeConf): Promise<void> {
    const cached = versionAtLeast(list.cniVersion, '0.4.0') ? await this.cachedResult(list, rt) : undefined;
    let first: unknown;
    for (let i = list.plugins.length - 1; i >= 0; i--) {
      try {
        await this.invoke('DEL', list, i, rt, cached);
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
    await rm(this.cachePath(list, rt), { force: true });
  }

  private async invoke(cmd: CniCommand, list: NetConfList, i: number, rt: RuntimeConf, prev: unknown): Promise<unknown> {
    const type = String(list.plugins[i]!['type']);
    const path = await this.exec.find(type, this.paths);
    if (!path) throw new CniError(type, cmd, 0, `failed to find plugin "${type}" in path [${this.paths.join(' ')}]`);
    const env: Record<string, string> = {
      ...this.extraEnv,
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: rt.containerId,
      CNI_NETNS: rt.netns,
      CNI_IFNAME: rt.ifName,
      CNI_PATH: this.paths.join(':'),
    };
    if (rt.args && rt.args.length > 0) env['CNI_ARGS'] = rt.args.map(([k, v]) => `${k}=${v}`).join(';');
    const out = await this.exec.run({ path, env, stdin: pluginConfig(list, i, prev) });
    if (out.code !== 0) {
      let msg = out.stderr.trim() || `exited with ${out.code}`;
      let code = 0;
      let details: string | undefined;
      try {
        const e = JSON.parse(out.stdout) as { code?: number; msg?: string; details?: string };
        if (typeof e.msg === 'string') msg = e.msg;
        if (typeof e.code === 'number') code = e.code;
        if (typeof e.details === 'string' && e.details !== '') details = e.details;
      } catch {
        // Not an error object: keep stderr.
      }
      throw new CniError(type, cmd, code, msg, details);
    }
    if (cmd !== 'ADD') return undefined;
    try {
      return JSON.parse(out.stdout) as unknown;
    } catch (err) {
      throw new CniError(type, cmd, 0, `result is not JSON: ${JSON.stringify(out.stdout.slice(0, 200))}`, (err as Error).message);
    }
  }
}

/**
 * Runs plugins as child processes, each inside the node's namespace when
 * `nodeNetns` is given (`nsenter --net=<node>`), with only the CNI_*
 * variables and a PATH in its environment, as a runtime does.
 */
export function processExecutor(opts: { nodeNetns?: string; timeoutMs?: number } = {}): PluginExecutor {
  return {
    async find(type, paths) {
      if (type.includes('/')) return undefined;
      for (const dir of paths) {
        const p = join(dir, type);
        try {
          await access(p, fsc.X_OK);
          return p;
        } catch {
          // next
        }
      }
      return undefined;
    },
    run(call) {
      const argv = opts.nodeNetns ? ['nsenter', `--net=${opts.nodeNetns}`, '--', call.path] : [call.path];
      return new Promise((resolve, reject) => {
        const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...call.env } });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
        child.stdout.on('data', (b: Buffer) => out.push(b));
        child.stderr.on('data', (b: Buffer) => err.push(b));
        child.stdin.on('error', () => {});
        child.on('error', (e) => {
          clearTimeout(timer);
          reject(new NetError('EXEC_SPAWN', `starting ${call.path}: ${e.message}`, { cause: e }));
        });
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
        });
        child.stdin.end(call.stdin);
      });
    },
  };
}
