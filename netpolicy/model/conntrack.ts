// Which tracked connections a policy change now denies. Replies of allowed
// connections pass through conntrack (`ct state established accept`), so a
// connection that a change denies would live on; the agent lists the
// node's conntrack entries after applying the new rules, asks this function,
// and deletes the entries it returns. The verdict is the model's own
// (evaluate), so what is cut is exactly what the new rules would not admit.
import type { IPAddr } from '../../lib/ip/index.ts';
import type { Cluster } from './cluster.ts';
import { evaluate } from './evaluate.ts';
import type { Protocol } from './types.ts';

/** A conntrack entry's original direction. */
export interface Flow {
  readonly src: IPAddr;
  readonly dst: IPAddr;
  readonly protocol: Protocol;
  readonly port: number;
}

/**
 * The flows `node` must cut: those whose egress is denied for a source pod
 * on this node, or whose ingress is denied for a destination pod on this
 * node. The other side's node cuts its own half; a flow neither side of
 * which is ours is never returned.
 */
export function flowsToCut(c: Cluster, node: string, flows: readonly Flow[]): Flow[] {
  const local = (ip: IPAddr): boolean => {
    const pod = c.podByIP.get(ip.toString());
    return pod !== undefined && pod.nodeName === node;
  };
  return flows.filter((f) => {
    const srcLocal = local(f.src);
    const dstLocal = local(f.dst);
    if (!srcLocal && !dstLocal) return false;
    const v = evaluate(c, { ip: f.src }, { ip: f.dst }, f.port, f.protocol);
    return (srcLocal && !v.egress.allowed) || (dstLocal && !v.ingress.allowed);
  });
}
