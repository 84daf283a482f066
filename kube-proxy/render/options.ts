// Node-dependent inputs of the iptables renderer, resolved to plain values
// before rendering so that rendering stays pure: how to tell pod traffic
// (LocalTrafficDetector) and which local addresses NodePorts answer on
// (--nodeport-addresses).
import { IPAddr, IPPrefix, type Family } from '../../lib/ip/index.ts';

/**
 * Matches for "the source is a local pod" and its negation, as upstream's
 * LocalTrafficDetector writes them. Both empty when no detector is
 * configured (then off-cluster ClusterIP traffic is not masqueraded and the
 * eTP=Local pod short-circuit is left out).
 */
export interface LocalDetector {
  readonly ifLocal: readonly string[];
  readonly ifNotLocal: readonly string[];
}

export const noLocalDetector: LocalDetector = { ifLocal: [], ifNotLocal: [] };

/** --detect-local-mode ClusterCIDR (and NodeCIDR): `-s CIDR` / `! -s CIDR`. */
export function detectLocalByCIDR(cidr: IPPrefix): LocalDetector {
  const s = cidr.toString();
  return { ifLocal: ['-s', s], ifNotLocal: ['!', '-s', s] };
}

/** --detect-local-mode BridgeInterface: `-i BRIDGE` / `! -i BRIDGE`. */
export function detectLocalByBridgeInterface(name: string): LocalDetector {
  return { ifLocal: ['-i', name], ifNotLocal: ['!', '-i', name] };
}

/** --detect-local-mode InterfaceNamePrefix: `-i PREFIX+` / `! -i PREFIX+`. */
export function detectLocalByInterfaceNamePrefix(prefix: string): LocalDetector {
  return { ifLocal: ['-i', `${prefix}+`], ifNotLocal: ['!', '-i', `${prefix}+`] };
}

export function isDetectorImplemented(d: LocalDetector): boolean {
  return d.ifLocal.length > 0;
}

/** --nodeport-addresses, resolved against the node's addresses (upstream NodePortAddresses). */
export interface NodePortAddresses {
  /** No CIDR of this family given: every local address (`-m addrtype --dst-type LOCAL`). */
  readonly matchAll: boolean;
  /** When !matchAll: the local addresses inside the CIDRs, sorted. */
  readonly ips: readonly IPAddr[];
  /** Whether 127.0.0.1 is covered (needed for localhost NodePorts). */
  readonly containsIPv4Loopback: boolean;
}

const LOOPBACK4 = IPAddr.mustParse('127.0.0.1');

/** The default: all local addresses. */
export function allNodePortAddresses(family: Family): NodePortAddresses {
  return { matchAll: true, ips: [], containsIPv4Loopback: family === 4 };
}

/**
 * Resolves `--nodeport-addresses` (CIDRs, or `primary` for the node's primary
 * IP) for one family. Entries of the other family are ignored; with none
 * left, NodePorts match every local address. `localAddresses` are the node's
 * interface addresses (a zero CIDR matches all of them without listing).
 */
export function resolveNodePortAddresses(
  family: Family,
  specs: readonly string[],
  node: { readonly primaryIP?: IPAddr | undefined; readonly localAddresses: readonly IPAddr[] },
): NodePortAddresses {
  const cidrs: IPPrefix[] = [];
  for (const s of specs) {
    if (s === 'primary') {
      if (node.primaryIP?.family === family) cidrs.push(IPPrefix.host(node.primaryIP));
      continue;
    }
    const p = IPPrefix.parse(s)?.masked();
    if (p?.family === family) cidrs.push(p);
  }
  if (cidrs.length === 0 || cidrs.some((c) => c.length === 0)) return allNodePortAddresses(family);
  const containsIPv4Loopback = family === 4 && cidrs.some((c) => c.addr.isLoopback() || c.contains(LOOPBACK4));
  const seen = new Map<string, IPAddr>();
  for (const ip of node.localAddresses) {
    if (ip.family === family && cidrs.some((c) => c.contains(ip))) seen.set(ip.toString(), ip);
  }
  const ips = [...seen.values()].sort((a, b) => a.compare(b));
  return { matchAll: false, ips, containsIPv4Loopback };
}
