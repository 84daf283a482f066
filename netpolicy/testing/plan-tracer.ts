// A second reading of the semantics, over LocalPlans instead of policies:
// decides a packet the way the datapath does (source node's egress plan,
// destination node's ingress plan, sets looked up by address), so tests can
// hold localPlan to the same truth tables as evaluate().
import type { IPAddr } from '../../lib/ip/index.ts';
import type { LocalPlan, PeerSet, RulePlan } from '../model/plan.ts';
import type { Direction, Protocol } from '../model/types.ts';

export interface TracedPacket {
  readonly src: IPAddr;
  readonly dst: IPAddr;
  readonly port: number;
  readonly protocol: Protocol;
}

/** Whether `plan`'s node lets the packet pass in `dir` (egress: src is local; ingress: dst is local). */
export function planAllows(plan: LocalPlan, dir: Direction, pkt: TracedPacket): boolean {
  const self = dir === 'egress' ? pkt.src : pkt.dst;
  const peer = dir === 'egress' ? pkt.dst : pkt.src;
  const pod = plan.pods.find((p) => p.ips.some((ip) => ip.equals(self)));
  if (!pod) {
    // Not a known local pod: held back if it is in the node's pod CIDRs, else not ours.
    return !plan.hold.some((h) => h.contains(self));
  }
  // A pod to itself is never policed (the renderers' self set / NETPOL-SELF).
  if (pkt.src.equals(pkt.dst)) return true;
  const gid = pod[dir];
  if (gid === undefined) return true;
  const group = plan.groups.find((g) => g.id === gid)!;
  const sets = new Map(plan.peerSets.map((s) => [s.id, s]));
  for (const key of group.policies) {
    const pol = plan.policies.find((p) => p.key === key)!;
    for (const rule of pol[dir] ?? []) if (ruleAllows(plan, rule, sets, peer, pkt)) return true;
  }
  return false;
}

function ruleAllows(plan: LocalPlan, rule: RulePlan, sets: ReadonlyMap<string, PeerSet>, peer: IPAddr, pkt: TracedPacket): boolean {
  const peerOk = rule.peers === 'any' || rule.peers.some((id) => inPeerSet(sets.get(id)!, peer));
  if (!peerOk) return false;
  if (rule.ports === 'any') return true;
  if (rule.ports.ranges.some((r) => r.protocol === pkt.protocol && r.from <= pkt.port && pkt.port <= r.to)) return true;
  return rule.ports.named.some((id) => {
    const np = plan.namedPorts.find((n) => n.id === id)!;
    return np.protocol === pkt.protocol && np.entries.some((e) => e.addr.equals(pkt.dst) && e.port === pkt.port);
  });
}

function inPeerSet(s: PeerSet, ip: IPAddr): boolean {
  if (s.kind === 'pods') return s.addrs.some((a) => a.equals(ip));
  return s.cidr.contains(ip) && !s.except.some((e) => e.contains(ip));
}
