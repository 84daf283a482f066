// The verdict for one connection, with its reasons: the engine of
// `netpolicy explain`, and the oracle the truth-table tests compare the
// datapath against. A connection is allowed iff the source's egress and the
// destination's ingress both allow it (kube-network-policies' evaluators in
// sequence); each direction says whether it is isolated, by which policies,
// and which rules of which policies let the connection through.
import { IPAddr, type Family } from '../../lib/ip/index.ts';
import { ipBlockContains, podPeerMatches, resolveNamedPort, selectingPolicies, type Cluster } from './cluster.ts';
import { NetError } from '../../lib/errors.ts';
import type { Direction, Peer, Pod, Policy, PortSpec, Protocol, Rule } from './types.ts';

/** A source or destination: a pod by namespace/name, or an address (resolved to its pod if it is one). */
export type Endpoint = { readonly pod: string } | { readonly ip: string | IPAddr };

export interface EvaluateOptions {
  /** The IP family of the connection; default: the address's, else the first both pods have (IPv4 first). */
  readonly family?: Family;
}

export type Unpoliced = 'external' | 'host-network' | 'node-local' | 'loopback';

/** Which part of which policy let a connection through. */
export interface RuleMatch {
  readonly policy: string;
  readonly direction: Direction;
  /** Index in spec.ingress / spec.egress. */
  readonly rule: number;
  /** Index in the rule's from/to, or 'any' when it has none. */
  readonly peer: number | 'any';
  /** Index in the rule's ports, or 'any' when it has none. */
  readonly port: number | 'any';
}

export interface PolicyRef {
  readonly policy: string;
  readonly rejected: boolean;
}

export interface DirectionVerdict {
  readonly direction: Direction;
  readonly allowed: boolean;
  /** The pod whose policies decide this direction (the source for egress, the destination for ingress). */
  readonly pod: string | undefined;
  /**
   * Why nothing is enforced here, when nothing is: an external address, a
   * hostNetwork pod, traffic from the destination's own node, a pod to itself.
   */
  readonly unpoliced: Unpoliced | undefined;
  readonly isolated: boolean;
  /** The policies that select the pod and isolate it in this direction. */
  readonly policies: readonly PolicyRef[];
  /** Every rule that allows the connection (all of them, not just the first). */
  readonly allowedBy: readonly RuleMatch[];
  /** One line for a human. */
  readonly reason: string;
}

export interface Verdict {
  readonly allowed: boolean;
  readonly family: Family;
  /** The addresses the connection uses; undefined for a pod without an address of the family. */
  readonly srcIP: IPAddr | undefined;
  readonly dstIP: IPAddr | undefined;
  readonly egress: DirectionVerdict;
  readonly ingress: DirectionVerdict;
}

/** An endpoint that names no known pod or no valid address. */
export class UnknownEndpointError extends NetError {
  constructor(what: string) {
    super('NETPOL_UNKNOWN_ENDPOINT', `unknown endpoint ${what}: not a running pod (namespace/name) or an IP address`);
  }
}

/** A resolved endpoint: the pod if it is one, and the address the connection uses. */
interface Side {
  readonly pod: Pod | undefined;
  readonly ip: IPAddr | undefined;
}

/** A connection's protocol: a port protocol, or ICMP (echo, either family), which only a rule without `ports` admits. */
export type EvaluateProtocol = Protocol | 'ICMP';

export function evaluate(c: Cluster, src: Endpoint, dst: Endpoint, port: number, protocol: EvaluateProtocol, opts: EvaluateOptions = {}): Verdict {
  const s = resolve(c, src);
  const d = resolve(c, dst);
  const family = opts.family ?? s.ip?.family ?? d.ip?.family ?? commonFamily(s.pod, d.pod);
  const from: Side = { pod: s.pod, ip: s.ip ?? s.pod?.ips.find((ip) => ip.family === family) };
  const to: Side = { pod: d.pod, ip: d.ip ?? d.pod?.ips.find((ip) => ip.family === family) };
  if (s.pod && s.pod === d.pod) {
    // A pod reaching its own address never leaves its network namespace: policy cannot block it.
    const self = (dir: Direction): DirectionVerdict => unpoliced(dir, s.pod, 'loopback', `${s.pod!.key} connects to itself: always allowed`);
    return { allowed: true, family, srcIP: from.ip, dstIP: to.ip, egress: self('egress'), ingress: self('ingress') };
  }
  const egress = decide(c, 'egress', from, to, to, port, protocol);
  const ingress = nodeLocal(from, to) ?? decide(c, 'ingress', to, from, to, port, protocol);
  return { allowed: egress.allowed && ingress.allowed, family, srcIP: from.ip, dstIP: to.ip, egress, ingress };
}

function resolve(c: Cluster, e: Endpoint): { pod: Pod | undefined; ip: IPAddr | undefined } {
  if ('pod' in e) {
    const pod = c.pods.get(e.pod);
    if (!pod) throw new UnknownEndpointError(e.pod);
    return { pod, ip: undefined };
  }
  const ip = typeof e.ip === 'string' ? IPAddr.parse(e.ip) : e.ip;
  if (!ip) throw new UnknownEndpointError(String(e.ip));
  // The datapath knows a pod only by its address, and so does explain.
  return { pod: c.podByIP.get(ip.toString()), ip };
}

function commonFamily(a: Pod | undefined, b: Pod | undefined): Family {
  for (const f of [4, 6] as const) {
    if ((a?.ips.some((ip) => ip.family === f) ?? true) && (b?.ips.some((ip) => ip.family === f) ?? true)) return f;
  }
  return 4;
}

/** Traffic from a node to a pod on that same node (kubelet probes, hostNetwork pods) is always allowed. */
function nodeLocal(from: Side, to: Side): DirectionVerdict | undefined {
  if (!from.pod?.hostNetwork || !to.pod || to.pod.hostNetwork || from.pod.nodeName === undefined) return undefined;
  if (from.pod.nodeName !== to.pod.nodeName) return undefined;
  return unpoliced('ingress', to.pod, 'node-local', `traffic from node ${from.pod.nodeName} to its own pods is always allowed`);
}

/**
 * One direction, decided by the policies of `self` (the source for egress,
 * the destination for ingress) about `other`; `dst` resolves named ports.
 */
function decide(c: Cluster, direction: Direction, self: Side, other: Side, dst: Side, port: number, protocol: EvaluateProtocol): DirectionVerdict {
  if (!self.pod) return unpoliced(direction, undefined, 'external', `${direction === 'egress' ? 'source' : 'destination'} is not a pod: not policed`);
  if (self.pod.hostNetwork) return unpoliced(direction, self.pod, 'host-network', `${self.pod.key} uses the host network: not policed`);
  const pols = selectingPolicies(c, self.pod, direction);
  const policies = pols.map((p) => ({ policy: p.key, rejected: p.problems.length > 0 }));
  if (pols.length === 0) {
    return { direction, allowed: true, pod: self.pod.key, unpoliced: undefined, isolated: false, policies, allowedBy: [], reason: `${self.pod.key} is not isolated for ${direction}: no policy selects it` };
  }
  const allowedBy: RuleMatch[] = [];
  for (const pol of pols) {
    for (const rule of direction === 'ingress' ? pol.ingress : pol.egress) {
      const m = ruleMatch(c, pol, rule, other, dst, port, protocol);
      if (m) allowedBy.push({ policy: pol.key, direction, rule: rule.index, ...m });
    }
  }
  const names = pols.map((p) => p.key + (p.problems.length > 0 ? ' (rejected)' : '')).join(', ');
  const reason =
    allowedBy.length > 0
      ? `${self.pod.key} is isolated for ${direction} by ${names}; allowed by ${allowedBy.map(describeMatch).join('; ')}`
      : `${self.pod.key} is isolated for ${direction} by ${names}; no rule matched`;
  return { direction, allowed: allowedBy.length > 0, pod: self.pod.key, unpoliced: undefined, isolated: true, policies, allowedBy, reason };
}

function unpoliced(direction: Direction, pod: Pod | undefined, why: Unpoliced, reason: string): DirectionVerdict {
  return { direction, allowed: true, pod: pod?.key, unpoliced: why, isolated: false, policies: [], allowedBy: [], reason };
}

function ruleMatch(c: Cluster, pol: Policy, rule: Rule, other: Side, dst: Side, port: number, protocol: EvaluateProtocol): Pick<RuleMatch, 'peer' | 'port'> | undefined {
  const peer = rule.peers === 'any' ? 'any' : rule.peers.findIndex((p) => peerMatches(c, pol, p, other));
  if (peer === -1) return undefined;
  const portIdx = rule.ports === 'any' ? 'any' : rule.ports.findIndex((p) => portMatches(p, dst.pod, port, protocol));
  if (portIdx === -1) return undefined;
  return { peer, port: portIdx };
}

function peerMatches(c: Cluster, pol: Policy, peer: Peer, other: Side): boolean {
  if (peer.kind === 'ipBlock') return other.ip !== undefined && ipBlockContains(peer, other.ip);
  return other.pod !== undefined && podPeerMatches(c, peer, pol.namespace, other.pod);
}

/** A named port matches only a destination pod that declares it with that protocol and that number. */
function portMatches(spec: PortSpec, dstPod: Pod | undefined, port: number, protocol: EvaluateProtocol): boolean {
  if (spec.protocol !== protocol) return false;
  switch (spec.kind) {
    case 'all':
      return true;
    case 'range':
      return spec.from <= port && port <= spec.to;
    case 'named':
      return dstPod !== undefined && !dstPod.hostNetwork && resolveNamedPort(dstPod, spec.name, protocol) === port;
  }
}

function describeMatch(m: RuleMatch): string {
  const peer = m.peer === 'any' ? `any ${m.direction === 'ingress' ? 'source' : 'destination'}` : `${m.direction === 'ingress' ? 'from' : 'to'}[${m.peer}]`;
  const port = m.port === 'any' ? 'any port' : `ports[${m.port}]`;
  return `${m.policy} ${m.direction}[${m.rule}] (${peer}, ${port})`;
}

/**
 * The verdict as `netpolicy explain` prints it: the answer, then one line
 * per direction (egress of the source first, as the packet meets it).
 */
export function explainText(v: Verdict): string {
  const addr = (ip: IPAddr | undefined): string => (ip ? ip.toString() : `(no IPv${v.family} address)`);
  return [
    `${v.allowed ? 'ALLOWED' : 'DENIED'}: ${addr(v.srcIP)} -> ${addr(v.dstIP)} (IPv${v.family})`,
    `  egress:  ${v.egress.allowed ? 'allowed' : 'denied'}: ${v.egress.reason}`,
    `  ingress: ${v.ingress.allowed ? 'allowed' : 'denied'}: ${v.ingress.reason}`,
  ].join('\n');
}
