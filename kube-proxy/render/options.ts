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

/** What both renderers (iptables and nftables) take about the node and the masquerade mark. */
export interface ProxyRenderOptions {
  readonly family: Family;
  /** This node's name; endpoints with this nodeName are local. */
  readonly nodeName?: string;
  /** This node's topology.kubernetes.io/zone, for topology hints. */
  readonly zone?: string;
  /** The node's primary IP of this family: a source range containing it lets the node reach the LB IP. */
  readonly nodeIP?: IPAddr | undefined;
  /** Default: all local addresses (iptables `-m addrtype --dst-type LOCAL`, nft `fib daddr type local`). */
  readonly nodePortAddresses?: NodePortAddresses;
  /** Default: none (see LocalDetector). */
  readonly localDetector?: LocalDetector;
  readonly masqueradeAll?: boolean;
  /** --masquerade-bit, default 14. */
  readonly masqueradeBit?: number;
  /** The mark string itself, overriding masqueradeBit (upstream's test proxiers write "0x4000"). */
  readonly masqueradeMark?: string;
}
