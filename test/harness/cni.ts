// CNI plugin harness for root suites: runs a plugin executable inside a node
// namespace (`ip netns exec <node> env -i … <plugin>`, config on stdin),
// parses what it prints, and snapshots the kernel and store state a plugin
// can change (links, addresses, routes in node and pods, forwarding sysctls,
// iptables nat, nft ruleset, host-local store files). Nothing here touches
// the machine's own namespace.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { run } from '../../lib/exec.ts';
import { Handle, type Link } from '../../lib/netlink/index.ts';
import { createNamedNetns, deleteNamedNetns } from '../../lib/netns/index.ts';
import { parseIptablesSave } from '../../lib/netfilter/iptables.ts';
import { parseNftJson } from '../../lib/netfilter/nft.ts';
import { IPAddr } from '../../lib/ip/index.ts';
import { World } from './world.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
/** Debian's containernetworking-plugins 1.1.1 (spec ≤ 1.0.0). */
export const REF_BIN = '/usr/lib/cni';
/** Our bundles (`npm run build`). */
export const OUR_BIN = join(ROOT, 'dist/bin');
export const SPEC_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type SpecVersion = (typeof SPEC_VERSIONS)[number];
/** Versions the reference binaries accept. */
export const REF_VERSIONS: readonly SpecVersion[] = SPEC_VERSIONS.filter((v) => v !== '1.1.0');

const PATH_ENV = 'PATH=/usr/sbin:/usr/bin:/sbin:/bin';

export interface CniCall {
  /** Path (or name) of the node namespace the plugin runs in. */
  node: string;
  /** Executable path of the plugin. */
  plugin: string;
  /** CNI_* (and other) variables; undefined values are not set at all. */
  env: Readonly<Record<string, string | undefined>>;
  /** The network configuration (objects are JSON-encoded). */
  stdin: string | object;
}

export interface CniOutcome {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, undefined when empty or not JSON. */
  json: any;
}

/** The usual CNI_* environment; pass `undefined` in `over` to drop a variable. */
export function cniEnv(
  command: string,
  containerId: string,
  netns: string,
  ifName: string,
  cniPath: string,
  over: Readonly<Record<string, string | undefined>> = {},
): Record<string, string | undefined> {
  return { CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: netns, CNI_IFNAME: ifName, CNI_PATH: cniPath, ...over };
}

const nsName = (node: string): string => basename(node);

function cniArgv(call: CniCall): string[] {
  const envArgs = Object.entries(call.env)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  return ['netns', 'exec', nsName(call.node), 'env', '-i', PATH_ENV, ...envArgs, call.plugin];
}

/** Runs one plugin invocation inside the node namespace (never throws for rc ≠ 0). */
export function cni(call: CniCall): Promise<CniOutcome> {
  const argv = cniArgv(call);
  const input = typeof call.stdin === 'string' ? call.stdin : JSON.stringify(call.stdin);
  return new Promise((resolvePromise, reject) => {
    const child = spawn('ip', argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === null) return reject(new Error(`plugin ${call.plugin} killed by ${signal}; stderr: ${stderr}`));
      let json: unknown;
      try {
        json = stdout.trim() === '' ? undefined : JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      resolvePromise({ code, stdout, stderr, json });
    });
    child.stdin.on('error', () => undefined); // the plugin may exit before reading
    child.stdin.end(input);
  });
}

export interface KilledOutcome {
  /** True when SIGKILL arrived before the plugin exited on its own. */
  killed: boolean;
  /** Exit code when it was not killed. */
  code: number | undefined;
  /** Wall time from spawn to exit, in ms. */
  elapsedMs: number;
}

/**
 * Runs one plugin invocation like cni() and sends it SIGKILL `afterMs` after
 * the spawn, as a runtime whose timeout expires does. `ip netns exec` and
 * `env` exec (no fork), so the spawned pid is the plugin's own. Resolves
 * when its stdout and stderr are closed, which is also when a Go runtime's
 * exec.Cmd.Wait returns: children of the plugin that inherited them
 * (iptables-restore) have exited too.
 */
export function cniKilledAt(call: CniCall, afterMs: number): Promise<KilledOutcome> {
  const argv = cniArgv(call);
  const input = typeof call.stdin === 'string' ? call.stdin : JSON.stringify(call.stdin);
  return new Promise((resolvePromise, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn('ip', argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    let exitedAt: bigint | undefined;
    const timer = setTimeout(() => {
      if (exitedAt === undefined) child.kill('SIGKILL');
    }, afterMs);
    child.stdout.resume();
    child.stderr.resume();
    child.on('error', reject);
    child.on('exit', () => {
      exitedAt = process.hrtime.bigint();
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const elapsedMs = Number((exitedAt ?? process.hrtime.bigint()) - start) / 1e6;
      resolvePromise({ killed: signal === 'SIGKILL', code: code ?? undefined, elapsedMs });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/** Like cni() but throws with the plugin's output unless it exited 0. */
export async function cniOk(call: CniCall): Promise<CniOutcome> {
  const r = await cni(call);
  if (r.code !== 0) {
    throw new Error(`${basename(call.plugin)} ${call.env.CNI_COMMAND ?? ''} failed (rc ${r.code}): ${r.stdout} ${r.stderr}`);
  }
  return r;
}

// ---- result normalisation ---------------------------------------------------------

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const VETH_RE = /^veth[0-9a-f]{8}$/;

/** Replaces random values (MACs, host veth names) so results compare structurally. */
export function normalizeResult(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalizeResult);
  if (v !== null && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = normalizeResult(x);
    return o;
  }
  if (typeof v === 'string' && MAC_RE.test(v)) return '<mac>';
  if (typeof v === 'string' && VETH_RE.test(v)) return '<veth>';
  return v;
}

// ---- kernel state -----------------------------------------------------------------

export interface LinkState {
  name: string;
  kind: string | undefined;
  up: boolean;
  mtu: number;
  mac: string | undefined;
  master: string | undefined;
  promisc: boolean;
  hairpin: boolean | undefined;
  isolated: boolean | undefined;
  vethPeerIndex: number | undefined;
  index: number;
}

export interface NsState {
  links: LinkState[];
  /** `<link> <ip/len>`, link-local IPv6 excluded. */
  addrs: string[];
  /** Main-table routes: `<dst>[ via <gw>] dev <link>` (fe80::/64 and multicast excluded). */
  routes: string[];
}

export interface NodeState extends NsState {
  forwarding: { v4: string; v6: string };
  /** `iptables-save -t nat` rule lines (counters stripped) and user chains per family. */
  nat: { ip: string[]; ip6: string[]; chains: string[] };
  /** nft ruleset flattened to `family table chain: rule # comment` and `family table chain <name>` lines. */
  nft: string[];
}

export interface Snapshot {
  node: NodeState;
  pods: Record<string, NsState>;
  /** Files under each store dir, relative to it: `path=content` for IP reservation files, `path` for others (lock, last_reserved_ip.N, indexes). */
  store: string[];
}

async function nsState(h: Handle): Promise<NsState> {
  const links = await h.linkList();
  const byIndex = new Map<number, Link>(links.map((l) => [l.index, l]));
  const linkStates: LinkState[] = links
    .map((l) => ({
      name: l.name,
      kind: l.kind,
      up: l.up,
      mtu: l.mtu,
      mac: l.mac,
      master: l.master === undefined ? undefined : byIndex.get(l.master)?.name ?? `#${l.master}`,
      promisc: (l.flags & 0x100) !== 0,
      hairpin: l.bridgePort?.hairpin,
      isolated: l.bridgePort?.isolated,
      vethPeerIndex: l.kind === 'veth' ? l.parentIndex : undefined,
      index: l.index,
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
  const addrs = (await h.addrList())
    .filter((a) => !String(a.address).startsWith('fe80:'))
    .map((a) => `${byIndex.get(a.index)?.name ?? a.index} ${a.address}`)
    .sort();
  const routes: string[] = [];
  for (const family of [4, 6] as const) {
    for (const r of await h.routeList({ family })) {
      const dst = r.dst.toString();
      if (dst.startsWith('fe80:') || dst.startsWith('ff')) continue;
      const dev = r.oif === undefined ? '' : ` dev ${byIndex.get(r.oif)?.name ?? r.oif}`;
      routes.push(`${r.dst}${r.gw ? ` via ${r.gw}` : ''}${dev}`);
    }
  }
  routes.sort();
  return { links: linkStates, addrs, routes };
}

/** Open handle on a namespace path (closed by the caller). */
function withHandle<T>(path: string, fn: (h: Handle) => Promise<T>): Promise<T> {
  const h = Handle.open({ netns: path });
  return fn(h).finally(() => h.close());
}

export async function podState(path: string): Promise<NsState> {
  return withHandle(path, nsState);
}

const stripCounters = (s: string): string => s.replace(/ ?counter packets \d+ bytes \d+/g, '').trim();

export async function natRules(node: string): Promise<NodeState['nat']> {
  const out: NodeState['nat'] = { ip: [], ip6: [], chains: [] };
  for (const fam of ['ip', 'ip6'] as const) {
    const { stdout } = await run(fam === 'ip' ? 'iptables-save' : 'ip6tables-save', ['-t', 'nat'], { netns: node });
    const dump = parseIptablesSave(stdout);
    out[fam] = dump.rules('nat').map((r) => r.line);
    for (const c of dump.table('nat')?.chains.values() ?? []) if (c.policy === undefined) out.chains.push(`${fam} ${c.name}`);
  }
  return out;
}

export async function nftLines(node: string): Promise<string[]> {
  const { stdout } = await run('nft', ['-j', 'list', 'ruleset'], { netns: node });
  const lines: string[] = [];
  for (const t of parseNftJson(stdout)) {
    lines.push(`${t.family} ${t.name}`);
    for (const c of t.chains) lines.push(`${t.family} ${t.name} chain ${c.name}${c.hook ? ` hook ${c.hook}` : ''}`);
    for (const r of t.rules) lines.push(`${t.family} ${t.name} ${r.chain}: ${stripCounters(r.text)}${r.comment ? ` # ${r.comment}` : ''}`);
  }
  return lines;
}

export async function nodeState(node: string): Promise<NodeState> {
  const base = await withHandle(node, nsState);
  const forwarding = await withHandle(node, async (h) => ({
    v4: h.readSysctl('net/ipv4/ip_forward'),
    v6: h.readSysctl('net/ipv6/conf/all/forwarding'),
  }));
  return { ...base, forwarding, nat: await natRules(node), nft: await nftLines(node) };
}

/** Recursive listing of store dirs; IP reservation files with their content. */
export function storeListing(dirs: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (root: string, rel: string): void => {
    const full = join(root, rel);
    if (!existsSync(full)) return;
    for (const e of readdirSync(full).sort()) {
      const r = rel ? `${rel}/${e}` : e;
      const p = join(root, r);
      if (statSync(p).isDirectory()) walk(root, r);
      else if (IPAddr.parse(e) === undefined) out.push(r);
      else out.push(`${r}=${readFileSync(p, 'utf8').replace(/\r\n/g, '\\r\\n')}`);
    }
  };
  for (const d of dirs) walk(d, '');
  return out;
}

/** IP reservation entries only (`<net>/<ip>=<content>`). */
export const storeIps = (s: Snapshot | string[]): string[] => (Array.isArray(s) ? s : s.store).filter((l) => l.includes('='));

export async function snapshot(opts: { node: string; pods?: readonly string[]; stores?: readonly string[] }): Promise<Snapshot> {
  const pods: Record<string, NsState> = {};
  for (const p of opts.pods ?? []) if (existsSync(p)) pods[p] = await podState(p);
  return { node: await nodeState(opts.node), pods, store: storeListing(opts.stores ?? []) };
}

// ---- helpers ------------------------------------------------------------------------

/** One ICMP echo from a namespace to an address (inside test namespaces only). */
export async function ping(fromNs: string, ip: string): Promise<boolean> {
  const args = ['-c', '1', '-W', '2', ...(ip.includes(':') ? ['-6'] : []), ip];
  try {
    await run('ping', args, { netns: fromNs });
    return true;
  } catch {
    return false;
  }
}

/** Runs a command inside a namespace (iptables, ip) for test setup; throws on failure. */
export async function inNs(ns: string, cmd: string, ...args: string[]): Promise<string> {
  return (await run(cmd, args, { netns: ns })).stdout;
}

let vlanProbe: { supported: boolean; reason: string } | undefined;

/**
 * Probes (once) whether this kernel can create a bridge with VLAN filtering:
 * a throwaway namespace, a bridge with vlan_filtering=1, then gone again.
 */
export async function probeVlanFiltering(): Promise<{ supported: boolean; reason: string }> {
  if (vlanProbe) return vlanProbe;
  const name = `knvlan${randomBytes(3).toString('hex')}`;
  const path = createNamedNetns(name);
  try {
    const h = Handle.open({ netns: path });
    try {
      await h.linkAdd({ name: 'probebr0', kind: 'bridge', bridge: { vlanFiltering: true } });
      const br = await h.linkByName('probebr0');
      vlanProbe = br.bridge?.vlanFiltering
        ? { supported: true, reason: '' }
        : { supported: false, reason: 'kernel lacks bridge VLAN filtering (vlan_filtering not applied)' };
    } catch (err) {
      vlanProbe = { supported: false, reason: `kernel lacks bridge VLAN filtering (${(err as { code?: string }).code ?? (err as Error).message})` };
    } finally {
      h.close();
    }
  } finally {
    deleteNamedNetns(name);
  }
  return vlanProbe;
}

// ---- test bed -----------------------------------------------------------------------

/**
 * Namespaces (through a World) plus a temp dir for stores and files; `cleanup`
 * removes all of it and is safe to call after a failure.
 */
export class CniBed {
  readonly world: World;
  readonly tmp: string;
  private seq = 0;

  constructor(tag: string) {
    this.world = new World(tag);
    this.tmp = mkdtempSync(join(tmpdir(), `kn-${tag}-`));
  }

  /** A new namespace; returns its path (/var/run/netns/<prefix>-<name><n>). */
  netns(kind = 'ns'): string {
    return this.world.netns(`${kind}${this.seq++}`);
  }

  /** A fresh directory under the temp dir. */
  dir(kind = 'd'): string {
    const d = join(this.tmp, `${kind}${this.seq++}`);
    mkdirSync(d, { recursive: true });
    return d;
  }

  async cleanup(): Promise<void> {
    try {
      await this.world.cleanup();
    } finally {
      rmSync(this.tmp, { recursive: true, force: true });
    }
  }
}
