// What one node enforces, in a shape whose size grows with pods + policies,
// never pods × pods:
//
//   - peer sets: the addresses a peer stands for, one set per distinct peer
//     (namespace scope + pod selector, or ipBlock + except), shared by every
//     policy that uses the same peer;
//   - named-port sets: (pod address, port) for every pod that declares a
//     port name with a protocol; for ingress only the local pods (the
//     destinations a local rule can see), for egress every pod in the cluster;
//   - policy plans: per policy that selects a local pod, per direction it
//     isolates, its rules as (peer set ids | any) × (port ranges + named-port
//     set ids | any). One copy per policy, however many pods it selects;
//   - groups: pods selected by the same list of policies in a direction share
//     one group (a renderer's per-group chain jumps to each policy's rules);
//   - local pods: address → group per direction (undefined: not isolated).
//
// Everything is keyed by stable ids derived from content, so two plans can be
// diffed element by element (render/nftables.ts renderUpdate).
import { createHash } from 'node:crypto';
import type { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import { cmp, namespaceOf, podPeerMatches, resolveNamedPort, selectingPolicies, type Cluster } from './cluster.ts';
import { describeSelector, matches } from './selector.ts';
import type { Direction, Peer, Pod, Policy, Problem, Protocol, Rule, Selector } from './types.ts';
import { DIRECTIONS } from './types.ts';

export type PeerSet =
  | { readonly id: string; readonly kind: 'pods'; readonly description: string; readonly addrs: readonly IPAddr[] }
  | { readonly id: string; readonly kind: 'ipBlock'; readonly description: string; readonly cidr: IPPrefix; readonly except: readonly IPPrefix[] };

export interface NamedPortEntry {
  readonly addr: IPAddr;
  readonly port: number;
}

/** A named port resolved per destination pod: the (address, number) pairs where `name`/`protocol` lives. */
export interface NamedPortSet {
  readonly id: string;
  /** ingress: resolved against the node's local pods; egress: against every pod. */
  readonly scope: Direction;
  readonly name: string;
  readonly protocol: Protocol;
  readonly entries: readonly NamedPortEntry[];
}

export interface PortRange {
  readonly protocol: Protocol;
  /** Inclusive; 0–65535 for "every port of this protocol". */
  readonly from: number;
  readonly to: number;
}

export interface PortPlan {
  readonly ranges: readonly PortRange[];
  /** Ids of NamedPortSets. */
  readonly named: readonly string[];
}

export interface RulePlan {
  readonly index: number;
  /** Ids of PeerSets, or any source/destination. */
  readonly peers: readonly string[] | 'any';
  readonly ports: PortPlan | 'any';
}

export interface PolicyPlan {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly rejected: boolean;
  /** Present for each direction the policy isolates; a rejected policy's lists are empty. */
  readonly ingress: readonly RulePlan[] | undefined;
  readonly egress: readonly RulePlan[] | undefined;
}

/** Pods isolated in `direction` by exactly `policies` (sorted keys). */
export interface Group {
  readonly id: string;
  readonly direction: Direction;
  readonly policies: readonly string[];
}

export interface LocalPodPlan {
  readonly key: string;
  readonly ips: readonly IPAddr[];
  /** Group ids; undefined means not isolated in that direction. */
  readonly ingress: string | undefined;
  readonly egress: string | undefined;
}

export interface LocalPlan {
  readonly node: string;
  /** Sorted by key. */
  readonly pods: readonly LocalPodPlan[];
  /** Sorted by id. */
  readonly groups: readonly Group[];
  /** Sorted by key. */
  readonly policies: readonly PolicyPlan[];
  /** Sorted by id; only the sets some planned rule refers to. */
  readonly peerSets: readonly PeerSet[];
  readonly namedPorts: readonly NamedPortSet[];
  /**
   * Address ranges whose unknown addresses are held back (dropped) until
   * evaluated: the node's pod CIDRs. Known local pods are always in `pods`.
   */
  readonly hold: readonly IPPrefix[];
  readonly problems: readonly Problem[];
}

export interface LocalPlanOptions {
  /** The node's pod CIDRs: traffic of an address there that is not a known local pod is dropped. */
  readonly podCIDRs?: readonly IPPrefix[];
}

/** A short stable id from content; 12 hex digits keep collisions out of reach for any real cluster. */
export function stableId(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

export function localPlan(c: Cluster, nodeName: string, opts: LocalPlanOptions = {}): LocalPlan {
  const local = [...c.pods.values()].filter((p) => p.nodeName === nodeName && !p.hostNetwork && p.ips.length > 0).sort((a, b) => cmp(a.key, b.key));
  const b = new Builder(c, local);
  const groups = new Map<string, Group>();
  const usedPolicies = new Set<Policy>();
  const pods: LocalPodPlan[] = local.map((pod) => {
    const g: Partial<Record<Direction, string>> = {};
    for (const dir of DIRECTIONS) {
      const pols = selectingPolicies(c, pod, dir);
      if (pols.length === 0) continue;
      pols.forEach((p) => usedPolicies.add(p));
      const keys = pols.map((p) => p.key);
      const id = stableId(`${dir}\n${keys.join('\n')}`);
      groups.set(id, { id, direction: dir, policies: keys });
      g[dir] = id;
    }
    return { key: pod.key, ips: pod.ips, ingress: g.ingress, egress: g.egress };
  });
  const policies = [...usedPolicies].sort((x, y) => cmp(x.key, y.key)).map((p) => b.policy(p));
  return {
    node: nodeName,
    pods,
    groups: [...groups.values()].sort((x, y) => cmp(x.id, y.id)),
    policies,
    peerSets: [...b.peerSets.values()].sort((x, y) => cmp(x.id, y.id)),
    namedPorts: [...b.namedPorts.values()].sort((x, y) => cmp(x.id, y.id)),
    hold: opts.podCIDRs ?? [],
    problems: c.problems,
  };
}

/** Accumulates the shared sets while the policies are planned. */
class Builder {
  readonly peerSets = new Map<string, PeerSet>();
  readonly namedPorts = new Map<string, NamedPortSet>();
  /** Content text → id: each distinct peer is hashed and computed once. */
  private readonly ids = new Map<string, string>();
  constructor(
    private readonly c: Cluster,
    private readonly local: readonly Pod[],
  ) {}

  policy(p: Policy): PolicyPlan {
    const rejected = p.problems.length > 0;
    const rules = (dir: Direction, rs: readonly Rule[]): RulePlan[] => rs.map((r) => this.rule(p, dir, r));
    return {
      key: p.key,
      namespace: p.namespace,
      name: p.name,
      rejected,
      ingress: p.ingressIsolation ? rules('ingress', p.ingress) : undefined,
      egress: p.egressIsolation ? rules('egress', p.egress) : undefined,
    };
  }

  private rule(p: Policy, dir: Direction, r: Rule): RulePlan {
    const peers = r.peers === 'any' ? 'any' : [...new Set(r.peers.map((peer) => this.peerSet(p.namespace, peer)))];
    if (r.ports === 'any') return { index: r.index, peers, ports: 'any' };
    const ranges: PortRange[] = [];
    const named = new Set<string>();
    for (const spec of r.ports) {
      if (spec.kind === 'all') ranges.push({ protocol: spec.protocol, from: 0, to: 65535 });
      else if (spec.kind === 'range') ranges.push({ protocol: spec.protocol, from: spec.from, to: spec.to });
      else named.add(this.namedPortSet(dir, spec.name, spec.protocol));
    }
    return { index: r.index, peers, ports: { ranges: dedupeRanges(ranges), named: [...named].sort(cmp) } };
  }

  private peerSet(policyNamespace: string, peer: Peer): string {
    if (peer.kind === 'ipBlock') {
      const text = `${peer.cidr.toString()}${peer.except.length ? ` except ${peer.except.join(',')}` : ''}`;
      const content = `ipBlock\n${text}`;
      const known = this.ids.get(content);
      if (known) return known;
      const id = stableId(content);
      this.ids.set(content, id);
      this.peerSets.set(id, { id, kind: 'ipBlock', description: `ipBlock ${text}`, cidr: peer.cidr, except: peer.except });
      return id;
    }
    // Peers with the same namespace scope and pod selector are the same set of
    // pods, whichever policy holds them.
    const scope = peer.namespaces.kind === 'policy-namespace' ? `namespace ${policyNamespace}` : `namespaces ${peer.namespaces.selector.key}`;
    const content = `pods\n${scope}\n${peer.pods.key}`;
    const known = this.ids.get(content);
    if (known) return known;
    const id = stableId(content);
    this.ids.set(content, id);
    const sel = (x: Selector): string => (x.key === '{}' ? '(all)' : describeSelector(x));
    const nsText = peer.namespaces.kind === 'policy-namespace' ? `namespace ${policyNamespace}` : `namespaces ${sel(peer.namespaces.selector)}`;
    const addrs = this.peerPods(policyNamespace, peer).flatMap((pod) => pod.ips);
    this.peerSets.set(id, { id, kind: 'pods', description: `pods ${sel(peer.pods)} in ${nsText}`, addrs: sortAddrs(addrs) });
    return id;
  }

  /** The pods of a pod peer, looking only at the namespaces it can match. */
  private peerPods(policyNamespace: string, peer: Peer & { kind: 'pods' }): Pod[] {
    const scope = peer.namespaces;
    const nsNames =
      scope.kind === 'policy-namespace'
        ? [policyNamespace]
        : [...this.c.podsByNamespace.keys()].filter((ns) => matches(scope.selector, namespaceOf(this.c, ns).labels));
    return nsNames.flatMap((ns) => (this.c.podsByNamespace.get(ns) ?? []).filter((pod) => podPeerMatches(this.c, peer, policyNamespace, pod)));
  }

  private namedPortSet(dir: Direction, name: string, protocol: Protocol): string {
    const id = stableId(`named\n${dir}\n${protocol}\n${name}`);
    if (this.namedPorts.has(id)) return id;
    const candidates = dir === 'ingress' ? this.local : [...this.c.pods.values()];
    const entries: NamedPortEntry[] = [];
    for (const pod of candidates) {
      if (pod.hostNetwork) continue;
      const port = resolveNamedPort(pod, name, protocol);
      if (port !== undefined) for (const addr of pod.ips) entries.push({ addr, port });
    }
    entries.sort((x, y) => x.addr.compare(y.addr) || x.port - y.port);
    this.namedPorts.set(id, { id, scope: dir, name, protocol, entries });
    return id;
  }
}

/** Sorted; the same pod's address object once (two pods sharing an address are merged by the renderer). */
function sortAddrs(addrs: IPAddr[]): IPAddr[] {
  return [...new Set(addrs)].sort((x, y) => x.compare(y));
}

function dedupeRanges(rs: PortRange[]): PortRange[] {
  const m = new Map<string, PortRange>();
  for (const r of rs) m.set(`${r.protocol}/${r.from}-${r.to}`, r);
  return [...m.values()].sort((a, b) => cmp(a.protocol, b.protocol) || a.from - b.from || a.to - b.to);
}

/** Entry counts of a plan, the figure the scale test and the metrics report. */
export function planSize(p: LocalPlan): { pods: number; groups: number; groupRefs: number; rules: number; peerAddrs: number; namedEntries: number; total: number } {
  const groupRefs = p.groups.reduce((n, g) => n + g.policies.length, 0);
  const rules = p.policies.reduce((n, pol) => n + (pol.ingress?.length ?? 0) + (pol.egress?.length ?? 0), 0);
  const peerAddrs = p.peerSets.reduce((n, s) => n + (s.kind === 'pods' ? s.addrs.length : 1 + s.except.length), 0);
  const namedEntries = p.namedPorts.reduce((n, s) => n + s.entries.length, 0);
  const pods = p.pods.reduce((n, pod) => n + pod.ips.length, 0);
  return { pods, groups: p.groups.length, groupRefs, rules, peerAddrs, namedEntries, total: pods + p.groups.length + groupRefs + rules + peerAddrs + namedEntries };
}
