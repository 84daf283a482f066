// Stale UDP/SCTP conntrack entries (research §2.5). UDP has no teardown, so
// an entry that DNATs a client's 5-tuple to an endpoint that is gone (or
// that was made while the service had no endpoint) keeps blackholing it.
//
// As upstream's reconciler (k/k#127318): list the family's UDP and SCTP
// entries and delete every one whose original destination is a service IP
// and port (ClusterIP, externalIP, LoadBalancer IP) or a NodePort, and whose
// reply source is not a serving endpoint of that port. Unlike upstream
// before PR #139629 (k/k#139628), a port with zero endpoints is checked as
// well: then every entry to it is stale. Entries to the ClusterIP of a UDP
// port that was deleted go too, as the old event-based cleanup did.
import type { Family } from '../../lib/ip/index.ts';
import type { Conntrack, ConntrackEntry, ConntrackFilter, ConntrackProto } from '../../lib/netfilter/conntrack.ts';
import type { EndpointsMap, ServicePortMap } from '../tracker/types.ts';

interface PortEndpoints {
  /** "ip:port" texts of the serving endpoints, as the reply source prints. */
  readonly serving: Set<string>;
}

const PROTOS: Readonly<Record<string, ConntrackProto>> = { UDP: 'udp', SCTP: 'sctp' };

const tupleKey = (ip: string, port: number | undefined): string => `${ip}|${port ?? ''}`;

/** Which (destination, port) and NodePorts belong to which service port, with its serving endpoints. */
function index(services: ServicePortMap, endpoints: EndpointsMap): { byDest: Map<string, PortEndpoints>; byNodePort: Map<string, PortEndpoints> } {
  const byDest = new Map<string, PortEndpoints>();
  const byNodePort = new Map<string, PortEndpoints>();
  for (const [key, sp] of services) {
    const proto = PROTOS[sp.protocol];
    if (proto === undefined) continue;
    const serving = new Set((endpoints.get(key) ?? []).filter((e) => e.serving).map((e) => tupleKey(e.addr.toString(), e.port)));
    const pe: PortEndpoints = { serving };
    for (const ip of [sp.clusterIP, ...sp.externalIPs, ...sp.loadBalancerVIPs]) byDest.set(`${proto}|${tupleKey(ip.toString(), sp.port)}`, pe);
    if (sp.nodePort !== 0) byNodePort.set(`${proto}|${sp.nodePort}`, pe);
  }
  return { byDest, byNodePort };
}

/** The exact-tuple filter that deletes just this entry. */
function entryFilter(e: ConntrackEntry, proto: ConntrackProto): ConntrackFilter {
  const f: ConntrackFilter = { proto, origDst: e.orig.dst, origSrc: e.orig.src };
  if (e.orig.dport !== undefined) f.origDstPort = e.orig.dport;
  if (e.orig.sport !== undefined) f.origSrcPort = e.orig.sport;
  return f;
}

/** The stale entries among `entries` (pure). */
export function staleEntries(
  entries: readonly ConntrackEntry[],
  services: ServicePortMap,
  endpoints: EndpointsMap,
  deletedClusterIPs: ReadonlySet<string> = new Set(),
): ConntrackFilter[] {
  const { byDest, byNodePort } = index(services, endpoints);
  const out: ConntrackFilter[] = [];
  for (const e of entries) {
    const proto = e.proto === 'udp' || e.proto === 'sctp' ? e.proto : undefined;
    if (proto === undefined) continue;
    const owner = byDest.get(`${proto}|${tupleKey(e.orig.dst.toString(), e.orig.dport)}`) ?? byNodePort.get(`${proto}|${e.orig.dport ?? ''}`);
    if (owner) {
      if (!owner.serving.has(tupleKey(e.reply.src.toString(), e.reply.sport))) out.push(entryFilter(e, proto));
    } else if (proto === 'udp' && deletedClusterIPs.has(e.orig.dst.toString())) {
      out.push(entryFilter(e, proto));
    }
  }
  return out;
}

/** Lists, picks and deletes the stale entries of one family; returns how many went. */
export async function reconcileConntrack(
  ct: Conntrack,
  family: Family,
  services: ServicePortMap,
  endpoints: EndpointsMap,
  deletedClusterIPs: ReadonlySet<string>,
): Promise<number> {
  // A kernel without SCTP conntrack support cannot list SCTP entries; there are none then.
  const sctp = await ct.list(family, 'sctp').catch(() => []);
  const entries = [...(await ct.list(family, 'udp')), ...sctp];
  let deleted = 0;
  for (const f of staleEntries(entries, services, endpoints, deletedClusterIPs)) deleted += await ct.delete(f);
  return deleted;
}
