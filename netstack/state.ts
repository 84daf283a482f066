// The state of one netstack cluster: everything `up` made, written to
// <state-dir>/state.json BEFORE each resource is created (a half-made
// cluster after a crash or kill -9 is still found and removed by `down`).
// Written atomically (lib/fs.ts writeFileAtomic): a reader sees the old or
// the new file, never a partial one.
//
// Shared with netstack/check (runCheck(state, opts)): pods with their netns
// paths and IPs, nodes with underlay IPs, the external host, services' range
// and the manifest directory the daemons read.
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NetError, errnoOf, isNotFound } from '../lib/errors.ts';
import { LOCK_EX, LOCK_NB, flockSync } from '../lib/sys/index.ts';
import { writeFileAtomic } from '../lib/fs.ts';

export const STATE_VERSION = 1;
export const DEFAULT_STATE_DIR = '/run/netstack';
export const STATE_FILE = 'state.json';

export type Backend = 'vxlan' | 'host-gw' | 'udp';
export type ProxyMode = 'iptables' | 'nftables' | 'ipvs';
export type PolicyBackend = 'nftables' | 'iptables';
export type Family = 4 | 6;
export type DaemonName = 'flanneld' | 'kube-proxy' | 'netpolicy';
export const DAEMONS: readonly DaemonName[] = ['flanneld', 'kube-proxy', 'netpolicy'];

export interface UpOptions {
  readonly nodes: number;
  readonly backend: Backend;
  readonly proxyMode: ProxyMode;
  readonly policyBackend: PolicyBackend;
  readonly dualStack: boolean;
}

/** A namespace `up` creates; recorded before it exists. */
export interface NetnsRecord {
  /** Name under /var/run/netns, always starting with `<prefix>-`. */
  readonly name: string;
  /** /var/run/netns/<name>. */
  readonly path: string;
}

/** A process `up` started; PID plus its start time, so that `down` never signals a recycled PID. */
export interface ProcRecord {
  readonly pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot). */
  readonly startTime: number;
  readonly role: 'etcd' | DaemonName | 'server';
  /** Node name (daemons) or "<namespace>/<pod>" (servers); absent for etcd. */
  readonly owner?: string;
  /** Its log file (stdout + stderr). */
  readonly log: string;
  /** argv, for a human. */
  readonly argv: readonly string[];
}

export interface NodeState {
  /** Kubernetes node name ("node-1"): --hostname-override, NODE_NAME, Pod spec.nodeName. */
  readonly name: string;
  readonly netns: NetnsRecord;
  /** Underlay address (192.0.2.x) and, with dual-stack, an IPv6 one. */
  readonly ip: string;
  readonly ip6?: string;
  /** Per-node files: run/flannel/subnet.env, CNI cache, host-local store. */
  readonly dir: string;
  readonly subnetFile: string;
  /** Ports on the node's underlay IP: flanneld /healthz (+ /readyz), kube-proxy and netpolicy /healthz. */
  readonly healthz: Readonly<Record<DaemonName, number>>;
}

/** A port a pod's server listens on (all of the pod's addresses). */
export interface PodPort {
  readonly name?: string;
  readonly port: number;
  readonly protocol: 'TCP' | 'UDP';
}

export interface PodState {
  /** Kubernetes identity. */
  readonly namespace: string;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly node: string;
  readonly netns: NetnsRecord;
  readonly containerId: string;
  /** Addresses from the CNI result (eth0), IPv4 first; empty until ADD returned. */
  ips: string[];
  readonly ports: readonly PodPort[];
  /** The manifest file `up` wrote with this Pod (status filled). */
  manifest?: string;
}

export interface State {
  readonly version: number;
  /** Per-run random prefix of every namespace name ("ns3f9a1c"). */
  readonly prefix: string;
  readonly stateDir: string;
  readonly createdAt: string;
  readonly options: UpOptions;
  /** creating: `up` is (or was, if it crashed) under way; ready: `up` finished. */
  phase: 'creating' | 'ready';
  /** Every namespace, in creation order (recorded before creation). */
  readonly namespaces: NetnsRecord[];
  readonly underlay: {
    readonly netns: NetnsRecord;
    readonly bridge: string;
    /** 192.0.2.0/24 (+ 2001:db8:0:1::/64 with dual-stack). */
    readonly cidrs: readonly string[];
    readonly gateway: string;
  };
  readonly etcd: {
    readonly netns: NetnsRecord;
    readonly ip: string;
    readonly endpoint: string;
    readonly prefix: string;
    readonly dataDir: string;
  };
  /** The "external" host on the underlay, for NodePort probes from outside the cluster. */
  readonly external: { readonly netns: NetnsRecord; readonly ip: string; readonly ip6?: string };
  /** Pod network(s): flannel Network (+ IPv6Network), kube-proxy --cluster-cidr. */
  readonly clusterCIDRs: readonly string[];
  /** Service ClusterIP range(s) the manifests use. */
  readonly serviceCIDRs: readonly string[];
  /** CNI_PATH: where the plugins run from (dist/bin; not the cluster's, never removed). */
  readonly cniPath: string;
  /** Directories the cluster owns (all under stateDir; `down` removes them). */
  readonly dirs: {
    /** The manifest directory every kube-proxy and netpolicy watches (--manifests). */
    readonly manifests: string;
    readonly logs: string;
    /** CNI conflists, one dir per node (net.d). */
    readonly cniConf: string;
    /** Nodes' dirs live here. */
    readonly nodes: string;
  };
  readonly nodes: NodeState[];
  readonly pods: PodState[];
  readonly procs: ProcRecord[];
}

export class StateError extends NetError {}

export const statePath = (stateDir: string): string => join(stateDir, STATE_FILE);

/** Parses and validates state.json text. */
export function parseState(text: string, where = STATE_FILE): State {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    throw new StateError('STATE_CORRUPT', `${where}: not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!obj || typeof obj !== 'object') throw new StateError('STATE_CORRUPT', `${where}: not an object`);
  const s = obj as Partial<State>;
  if (s.version !== STATE_VERSION) throw new StateError('STATE_VERSION', `${where}: version ${String(s.version)}, this netstack reads ${STATE_VERSION}`);
  if (typeof s.prefix !== 'string' || !/^[a-z0-9]{3,16}$/.test(s.prefix)) throw new StateError('STATE_CORRUPT', `${where}: bad prefix`);
  for (const k of ['namespaces', 'nodes', 'pods', 'procs'] as const) {
    if (!Array.isArray(s[k])) throw new StateError('STATE_CORRUPT', `${where}: ${k} is not a list`);
  }
  for (const ns of s.namespaces!) {
    if (typeof ns?.name !== 'string' || !ns.name.startsWith(`${s.prefix}-`)) {
      throw new StateError('STATE_CORRUPT', `${where}: namespace ${JSON.stringify(ns)} lacks the run prefix ${s.prefix}`);
    }
  }
  for (const p of s.procs!) {
    if (!Number.isInteger(p?.pid) || p.pid <= 1 || !Number.isInteger(p.startTime)) throw new StateError('STATE_CORRUPT', `${where}: bad process record ${JSON.stringify(p)}`);
  }
  return s as State;
}

/** The state in `stateDir`, or undefined when there is none. */
export async function loadState(stateDir: string): Promise<State | undefined> {
  const p = statePath(stateDir);
  let text: string;
  try {
    text = await readFile(p, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw new StateError('IO_FAILURE', `reading ${p}: ${(err as Error).message}`, { cause: err });
  }
  return parseState(text, p);
}

/** Like loadState, but a missing state is an error naming the directory. */
export async function requireState(stateDir: string): Promise<State> {
  const s = await loadState(stateDir);
  if (!s) throw new StateError('STATE_NOT_FOUND', `no netstack cluster in ${stateDir} (run: netstack up --state-dir ${stateDir})`);
  return s;
}

export async function saveState(s: State): Promise<void> {
  await writeFileAtomic(statePath(s.stateDir), JSON.stringify(s, null, 2) + '\n', { mode: 0o600, dirMode: 0o700 });
}

/**
 * Serialises saves of one state (mutate, then `await store.save()`), so
 * concurrent steps of `up` never write an older snapshot over a newer one.
 */
export class StateStore {
  private chain: Promise<void> = Promise.resolve();
  constructor(readonly state: State) {}
  /** Applies `fn` to the state and writes it; resolves when this write (and all before it) are on disk. */
  update(fn: (s: State) => void = () => {}): Promise<void> {
    fn(this.state);
    const snapshot = JSON.stringify(this.state, null, 2) + '\n';
    const next = this.chain.then(() => writeFileAtomic(statePath(this.state.stateDir), snapshot, { mode: 0o600, dirMode: 0o700 }));
    this.chain = next.catch(() => undefined);
    return next;
  }
}

// ---- processes ------------------------------------------------------------------

/** Field 22 (starttime) of /proc/<pid>/stat, or undefined when the process is gone. */
export function procStartTime(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) is in parentheses and may contain spaces or ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); starttime is field 22.
  const v = Number(rest[22 - 3]);
  if (!Number.isFinite(v)) return undefined;
  // A zombie is gone for our purposes (it only waits for its parent's wait()).
  if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
  return v;
}

/** Whether the recorded process still runs (same PID and same start time). */
export function isAlive(p: Pick<ProcRecord, 'pid' | 'startTime'>): boolean {
  return procStartTime(p.pid) === p.startTime;
}

// ---- lookups --------------------------------------------------------------------

export function findNode(s: State, name: string): NodeState | undefined {
  return s.nodes.find((n) => n.name === name);
}

/** A pod by "name" (unique across namespaces) or "namespace/name". */
export function findPod(s: State, ref: string): PodState | undefined {
  const slash = ref.indexOf('/');
  if (slash >= 0) {
    const ns = ref.slice(0, slash);
    const name = ref.slice(slash + 1);
    return s.pods.find((p) => p.namespace === ns && p.name === name);
  }
  const hits = s.pods.filter((p) => p.name === ref);
  if (hits.length > 1) throw new StateError('AMBIGUOUS', `pod name "${ref}" is in namespaces ${hits.map((p) => p.namespace).join(', ')}: say namespace/name`);
  return hits[0];
}

/** IPs of a given family from a list of address strings. */
export function ipsOfFamily(ips: readonly string[], family: Family): string[] {
  return ips.filter((ip) => (family === 6) === ip.includes(':'));
}

/** Families the cluster runs: [4] or [4, 6]. */
export function families(s: State): Family[] {
  return s.options.dualStack ? [4, 6] : [4];
}

// ---- one command at a time --------------------------------------------------------

export const LOCK_FILE = '.lock';

/**
 * Takes the state dir's lock (flock, non-blocking) for commands that change
 * the cluster (up, apply, down); returns its release. Held by a running
 * `up`, so that `down` does not race it; the kernel drops it when the
 * holder dies, so a kill -9 of `up` leaves no stale lock.
 */
export function lockStateDir(stateDir: string, what: string): () => void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const path = join(stateDir, LOCK_FILE);
  const fd = openSync(path, 'a', 0o600);
  try {
    flockSync(fd, LOCK_EX | LOCK_NB);
  } catch (err) {
    closeSync(fd);
    const busy = errnoOf(err) === osConstants.errno.EWOULDBLOCK;
    if (busy) throw new StateError('CLUSTER_BUSY', `another netstack command (up, apply or down) is changing the cluster in ${stateDir}: run ${what} again when it has finished`);
    throw err;
  }
  return () => closeSync(fd);
}
