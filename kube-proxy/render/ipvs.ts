// The IPVS mode's desired state of one IP family (upstream's syncProxyRules
// in pkg/proxy/ipvs/proxier.go, as plain data): the virtual servers with
// their real servers, the addresses kube-ipvs0 holds, the ipsets with their
// entries, and the small fixed iptables ruleset that matches the sets.
//
// The plan is built per service port (a fragment) and kept, so a sync folds
// in only the service ports that changed and reports exactly which virtual
// servers, set entries and addresses it touched: the apply layer then sends
// netlink messages for those and nothing else. Nothing here does I/O.
//
// Beyond upstream: a service without any endpoint keeps its virtual server
// (as upstream) but its addresses and ports go into the ipset
// KUBE-NO-ENDPOINTS, and a filter rule REJECTs new connections to them, so a
// client is refused at once instead of waiting for a timeout (as in the
// iptables and nftables modes). A service with a Local policy and no local
// endpoint is DROPped instead: KUBE-NO-LOCAL-ENDPOINTS (internalTrafficPolicy
// Local, every source) and KUBE-EXT-NO-LOCAL-ENDPOINTS (externalTrafficPolicy
// Local, sources that are neither local pods nor the node itself).
import type { Family, IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import { IPSET_NAME_MAX, type IpsetSpec, type IpsetType } from '../../lib/netfilter/ipset.ts';
import { renderArgs } from '../../lib/netfilter/iptables.ts';
import type { SaveDump } from '../../lib/netfilter/iptables.ts';
import { IPVS_SVC_F_PERSISTENT, IPVS_SVC_F_SCHED2, type IpvsDestination, type IpvsProtocol, type IpvsService, type IpvsServiceKey } from '../../lib/netlink/ipvs-types.ts';
import { categorizeEndpoints } from '../tracker/categorize.ts';
import { serviceKeyOfPortKey, type Endpoint, type EndpointsMap, type Issue, type ServicePort, type ServicePortMap } from '../tracker/types.ts';
import { masqueradeMark } from './names.ts';
import { isDetectorImplemented, noLocalDetector, type ProxyRenderOptions } from './options.ts';

export const KUBE_IPVS_DEVICE = 'kube-ipvs0';
export const DEFAULT_SCHEDULER = 'rr';

// ---- chains (upstream's names) ---------------------------------------------

export const KUBE_SERVICES = 'KUBE-SERVICES';
export const KUBE_PROXY_FIREWALL = 'KUBE-PROXY-FIREWALL';
export const KUBE_SOURCE_RANGES_FIREWALL = 'KUBE-SOURCE-RANGES-FIREWALL';
export const KUBE_POSTROUTING = 'KUBE-POSTROUTING';
export const KUBE_MARK_MASQ = 'KUBE-MARK-MASQ';
export const KUBE_NODE_PORT = 'KUBE-NODE-PORT';
export const KUBE_FORWARD = 'KUBE-FORWARD';
export const KUBE_LOAD_BALANCER = 'KUBE-LOAD-BALANCER';
export const KUBE_IPVS_FILTER = 'KUBE-IPVS-FILTER';
export const KUBE_IPVS_OUT_FILTER = 'KUBE-IPVS-OUT-FILTER';

/** The chains the IPVS mode declares (and so flushes and rewrites) on every sync, per table, in upstream's order. */
export const IPVS_CHAINS = {
  nat: [KUBE_SERVICES, KUBE_POSTROUTING, KUBE_NODE_PORT, KUBE_LOAD_BALANCER, KUBE_MARK_MASQ],
  filter: [KUBE_FORWARD, KUBE_NODE_PORT, KUBE_PROXY_FIREWALL, KUBE_SOURCE_RANGES_FIREWALL, KUBE_IPVS_FILTER, KUBE_IPVS_OUT_FILTER],
} as const;

export interface IPVSJumpRule {
  readonly table: 'nat' | 'filter';
  readonly chain: string;
  readonly args: readonly string[];
}

/** Upstream's iptablesJumpChain: each ensured with `-I CHAIN 1` when missing, in this order. */
export const IPVS_JUMPS: readonly IPVSJumpRule[] = [
  ['nat', 'OUTPUT', KUBE_SERVICES, 'kubernetes service portals'],
  ['nat', 'PREROUTING', KUBE_SERVICES, 'kubernetes service portals'],
  ['nat', 'POSTROUTING', KUBE_POSTROUTING, 'kubernetes postrouting rules'],
  ['filter', 'FORWARD', KUBE_FORWARD, 'kubernetes forwarding rules'],
  ['filter', 'INPUT', KUBE_NODE_PORT, 'kubernetes health check rules'],
  ['filter', 'INPUT', KUBE_PROXY_FIREWALL, 'kube-proxy firewall rules'],
  ['filter', 'FORWARD', KUBE_PROXY_FIREWALL, 'kube-proxy firewall rules'],
  ['filter', 'INPUT', KUBE_IPVS_FILTER, 'kubernetes ipvs access filter'],
  ['filter', 'OUTPUT', KUBE_IPVS_OUT_FILTER, 'kubernetes ipvs access filter'],
].map(([table, chain, to, comment]) => ({ table: table as 'nat' | 'filter', chain: chain!, args: ['-m', 'comment', '--comment', comment!, '-j', to!] }));

/** `-I CHAIN 1 …` lines for the jumps `save` lacks, per table. */
export function missingIPVSJumps(save: SaveDump): { nat: string[]; filter: string[] } {
  const out = { nat: [] as string[], filter: [] as string[] };
  for (const j of IPVS_JUMPS) if (!save.hasRule(j.table, j.chain, j.args)) out[j.table].push(`-I ${j.chain} 1 ${renderArgs(j.args)}`);
  return out;
}

// ---- ipsets (upstream's names, types and comments) ----------------------------

export const SET = {
  loopBack: 'KUBE-LOOP-BACK',
  clusterIP: 'KUBE-CLUSTER-IP',
  externalIP: 'KUBE-EXTERNAL-IP',
  externalIPLocal: 'KUBE-EXTERNAL-IP-LOCAL',
  loadBalancer: 'KUBE-LOAD-BALANCER',
  loadBalancerFW: 'KUBE-LOAD-BALANCER-FW',
  loadBalancerLocal: 'KUBE-LOAD-BALANCER-LOCAL',
  loadBalancerSourceIP: 'KUBE-LOAD-BALANCER-SOURCE-IP',
  loadBalancerSourceCIDR: 'KUBE-LOAD-BALANCER-SOURCE-CIDR',
  nodePortTCP: 'KUBE-NODE-PORT-TCP',
  nodePortLocalTCP: 'KUBE-NODE-PORT-LOCAL-TCP',
  nodePortUDP: 'KUBE-NODE-PORT-UDP',
  nodePortLocalUDP: 'KUBE-NODE-PORT-LOCAL-UDP',
  nodePortSCTP: 'KUBE-NODE-PORT-SCTP-HASH',
  nodePortLocalSCTP: 'KUBE-NODE-PORT-LOCAL-SCTP-HASH',
  healthCheckNodePort: 'KUBE-HEALTH-CHECK-NODE-PORT',
  ipvsIPs: 'KUBE-IPVS-IPS',
  // Ours: services without (local) endpoints.
  noEndpoints: 'KUBE-NO-ENDPOINTS',
  noLocalEndpoints: 'KUBE-NO-LOCAL-ENDPOINTS',
  extNoLocalEndpoints: 'KUBE-EXT-NO-LOCAL-ENDPOINTS',
} as const;
export type SetBase = (typeof SET)[keyof typeof SET];

interface SetInfo {
  readonly base: SetBase;
  readonly type: IpsetType;
  readonly comment: string;
}

/** Upstream's ipsetInfo order, then ours. */
export const SET_INFO: readonly SetInfo[] = [
  { base: SET.loopBack, type: 'hash:ip,port,ip', comment: 'Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose' },
  { base: SET.clusterIP, type: 'hash:ip,port', comment: 'Kubernetes service cluster ip + port for masquerade purpose' },
  { base: SET.externalIP, type: 'hash:ip,port', comment: 'Kubernetes service external ip + port for masquerade and filter purpose' },
  { base: SET.externalIPLocal, type: 'hash:ip,port', comment: 'Kubernetes service external ip + port with externalTrafficPolicy=local' },
  { base: SET.loadBalancer, type: 'hash:ip,port', comment: 'Kubernetes service lb portal' },
  { base: SET.loadBalancerFW, type: 'hash:ip,port', comment: 'Kubernetes service load balancer ip + port for load balancer with sourceRange' },
  { base: SET.loadBalancerLocal, type: 'hash:ip,port', comment: 'Kubernetes service load balancer ip + port with externalTrafficPolicy=local' },
  { base: SET.loadBalancerSourceIP, type: 'hash:ip,port,ip', comment: 'Kubernetes service load balancer ip + port + source IP for packet filter purpose' },
  { base: SET.loadBalancerSourceCIDR, type: 'hash:ip,port,net', comment: 'Kubernetes service load balancer ip + port + source cidr for packet filter purpose' },
  { base: SET.nodePortTCP, type: 'bitmap:port', comment: 'Kubernetes nodeport TCP port for masquerade purpose' },
  { base: SET.nodePortLocalTCP, type: 'bitmap:port', comment: 'Kubernetes nodeport TCP port with externalTrafficPolicy=local' },
  { base: SET.nodePortUDP, type: 'bitmap:port', comment: 'Kubernetes nodeport UDP port for masquerade purpose' },
  { base: SET.nodePortLocalUDP, type: 'bitmap:port', comment: 'Kubernetes nodeport UDP port with externalTrafficPolicy=local' },
  { base: SET.nodePortSCTP, type: 'hash:ip,port', comment: "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'" },
  { base: SET.nodePortLocalSCTP, type: 'hash:ip,port', comment: "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'" },
  { base: SET.healthCheckNodePort, type: 'bitmap:port', comment: 'Kubernetes health check node port' },
  { base: SET.ipvsIPs, type: 'hash:ip', comment: 'Addresses on the ipvs interface' },
  { base: SET.noEndpoints, type: 'hash:ip,port', comment: 'Kubernetes service ip + port without endpoints' },
  { base: SET.noLocalEndpoints, type: 'hash:ip,port', comment: 'Kubernetes service cluster ip + port with internalTrafficPolicy=Local and no local endpoints' },
  { base: SET.extNoLocalEndpoints, type: 'hash:ip,port', comment: 'Kubernetes service external ip + port with externalTrafficPolicy=Local and no local endpoints' },
];

const INFO = new Map(SET_INFO.map((s) => [s.base, s]));

/** The set's name in a family: IPv6 sets are "KUBE-6-…" (upstream's NewIPSet), cut to ipset's 31 characters. */
export function ipsetName(base: SetBase, family: Family): string {
  if (family === 4) return base;
  return base.replace(/^KUBE-/, 'KUBE-6-').slice(0, IPSET_NAME_MAX);
}

/** The `create` spec of a set in a family (upstream: hash sets with family, hashsize 1024, maxelem 65536; bitmaps over 0-65535). */
export function ipsetSpec(base: SetBase, family: Family): IpsetSpec {
  const info = INFO.get(base)!;
  const name = ipsetName(base, family);
  if (info.type === 'bitmap:port') return { name, type: info.type, range: '0-65535' };
  return { name, type: info.type, family: family === 4 ? 'inet' : 'inet6', hashsize: 1024, maxelem: 65536 };
}

/** Every set name of the IPVS mode in a family (what --cleanup destroys). */
export function ipsetNames(family: Family): string[] {
  return SET_INFO.map((s) => ipsetName(s.base, family));
}

// ---- virtual servers ----------------------------------------------------------

export type VirtualServerKind = 'ClusterIP' | 'ExternalIP' | 'LoadBalancer' | 'NodePort';

export interface VirtualServer {
  /** vsKey(service). */
  readonly key: string;
  readonly service: IpvsService;
  /** Real servers, sorted by "ip:port", weight 1, masquerading. */
  readonly destinations: readonly IpvsDestination[];
  /** The service port (servicePortKey) it serves. */
  readonly portKey: string;
  readonly kind: VirtualServerKind;
}

export const ipvsProtocol = (p: ServicePort['protocol']): IpvsProtocol => p.toLowerCase() as IpvsProtocol;

/** The identity of a virtual server: "proto/address/port". */
export function vsKey(k: Pick<IpvsServiceKey, 'address' | 'protocol' | 'port'>): string {
  return `${k.protocol}/${k.address.toString()}/${k.port}`;
}

/** The identity of a real server within its virtual server: "address/port". */
export function destKey(d: { readonly address: IPAddr; readonly port: number }): string {
  return `${d.address.toString()}/${d.port}`;
}

/** Whether two services' attributes (scheduler, flags, timeout, netmask) agree. */
export function sameServiceAttrs(a: IpvsService, b: IpvsService): boolean {
  // The kernel reports HASHED in the flags of every service it holds.
  const mask = ~0x0002;
  return a.scheduler === b.scheduler && (a.flags & mask) === (b.flags & mask) && a.timeout === b.timeout && a.netmaskBits === b.netmaskBits;
}

// ---- options -----------------------------------------------------------------

export interface IPVSOptions extends ProxyRenderOptions {
  /** --ipvs-scheduler; default rr. */
  readonly scheduler?: string;
  /**
   * The addresses NodePort virtual servers are made on: the node's addresses
   * of this family (not kube-ipvs0's, not loopback), filtered by
   * --nodeport-addresses. The apply layer resolves them.
   */
  readonly nodePortIPs?: readonly IPAddr[];
  /** Addresses on the node's other interfaces: an externalIP or LB IP among them is not bound to kube-ipvs0. */
  readonly nodeLocalAddresses?: readonly IPAddr[];
  /** Whether iptables-restore knows MASQUERADE --random-fully (iptables ≥ 1.6.2); default true. */
  readonly randomFully?: boolean;
}

// ---- the per-service-port fragment ------------------------------------------------

interface NoNodeAccess {
  readonly ip: string;
  readonly protocol: IpvsProtocol;
  readonly port: number;
}

interface Fragment {
  readonly vss: readonly VirtualServer[];
  /** [set base, entry] pairs (duplicates allowed; they are reference-counted). */
  readonly entries: readonly (readonly [SetBase, string])[];
  readonly binds: readonly string[];
  readonly noNodeAccess: readonly NoNodeAccess[];
  readonly noLocalInternal: boolean;
  readonly noLocalExternal: boolean;
}

const byEndpoint = (a: Endpoint, b: Endpoint): number => (a.endpoint < b.endpoint ? -1 : a.endpoint > b.endpoint ? 1 : 0);

function destinations(eps: readonly Endpoint[], family: Family): IpvsDestination[] {
  return [...eps].sort(byEndpoint).map((e) => ({ address: e.addr, port: e.port, weight: 1, forward: 'masq', upperThreshold: 0, lowerThreshold: 0, family }));
}

function fragmentOf(sp: ServicePort, eps: readonly Endpoint[], o: IPVSOptions, portKey: string): Fragment {
  const family = o.family;
  const proto = ipvsProtocol(sp.protocol);
  const cat = categorizeEndpoints(eps, sp, { nodeName: o.nodeName ?? '', zone: o.zone ?? '' });
  const scheduler = o.scheduler || DEFAULT_SCHEDULER;
  let flags = 0;
  let timeout = 0;
  if (sp.stickyMaxAgeSeconds !== undefined) {
    flags |= IPVS_SVC_F_PERSISTENT;
    timeout = sp.stickyMaxAgeSeconds;
  }
  // Upstream sets the "mh-port" flag with the Maglev scheduler (FlagSourceHash).
  if (scheduler === 'mh') flags |= IPVS_SVC_F_SCHED2;
  const netmaskBits = family === 4 ? 32 : 128;
  const vss: VirtualServer[] = [];
  const entries: [SetBase, string][] = [];
  const binds: string[] = [];
  const noNodeAccess: NoNodeAccess[] = [];
  const nodeLocal = new Set((o.nodeLocalAddresses ?? []).map(String));
  const ipPort = (ip: string, port = sp.port): string => `${ip},${proto}:${port}`;
  // Every address on kube-ipvs0 is also in KUBE-IPVS-IPS (KUBE-IPVS-FILTER refuses its other ports).
  const bind = (ip: string): void => {
    binds.push(ip);
    entries.push([SET.ipvsIPs, ip]);
  };
  // ipset prints a host "net" without its /32 (/128); keep the entry in that form.
  const netEntry = (c: IPPrefix): string => (c.length === c.bits ? c.addr.toString() : c.toString());

  // Which real servers each kind of destination gets (upstream syncEndpoint):
  // internal: iTP Local → local endpoints only; external: eTP Local → local
  // endpoints, or the cluster ones when there is none here (local pods and the
  // node still reach the service; external sources are dropped below).
  const internal = sp.internalPolicyLocal ? cat.localEndpoints : cat.clusterEndpoints;
  const external = sp.externalPolicyLocal && cat.localEndpoints.length > 0 ? cat.localEndpoints : cat.clusterEndpoints;
  const noEndpoints = !cat.hasAnyEndpoints;
  const noLocalInternal = !noEndpoints && sp.internalPolicyLocal && cat.localEndpoints.length === 0;
  const externallyAccessible = sp.nodePort !== 0 || sp.externalIPs.length > 0 || sp.loadBalancerVIPs.length > 0;
  const noLocalExternal = !noEndpoints && sp.externalPolicyLocal && externallyAccessible && cat.localEndpoints.length === 0;

  const vs = (address: IPAddr, port: number, kind: VirtualServerKind, dests: readonly Endpoint[]): void => {
    const service: IpvsService = { family, address, protocol: proto, port, scheduler, flags, timeout, netmaskBits };
    vss.push({ key: vsKey(service), service, destinations: destinations(dests, family), portKey, kind });
    if (noEndpoints) entries.push([SET.noEndpoints, ipPort(address.toString(), port)]);
    else if (kind === 'ClusterIP' ? noLocalInternal : noLocalExternal) entries.push([kind === 'ClusterIP' ? SET.noLocalEndpoints : SET.extNoLocalEndpoints, ipPort(address.toString(), port)]);
  };

  // Hairpin: a local endpoint reaching its own service is masqueraded.
  for (const e of eps) if (e.isLocal) entries.push([SET.loopBack, `${e.ip},${proto}:${e.port},${e.ip}`]);

  const cip = sp.clusterIP.toString();
  entries.push([SET.clusterIP, ipPort(cip)]);
  vs(sp.clusterIP, sp.port, 'ClusterIP', internal);
  bind(cip);

  for (const ip of sp.externalIPs) {
    entries.push([sp.externalPolicyLocal ? SET.externalIPLocal : SET.externalIP, ipPort(ip.toString())]);
    vs(ip, sp.port, 'ExternalIP', external);
    if (!nodeLocal.has(ip.toString())) bind(ip.toString());
  }

  for (const ip of sp.loadBalancerVIPs) {
    const lb = ip.toString();
    entries.push([SET.loadBalancer, ipPort(lb)]);
    if (sp.externalPolicyLocal) entries.push([SET.loadBalancerLocal, ipPort(lb)]);
    if (sp.loadBalancerSourceRanges.length > 0) {
      entries.push([SET.loadBalancerFW, ipPort(lb)]);
      let allowFromNode = false;
      for (const cidr of sp.loadBalancerSourceRanges) {
        entries.push([SET.loadBalancerSourceCIDR, `${lb},${proto}:${sp.port},${netEntry(cidr)}`]);
        if (o.nodeIP && cidr.contains(o.nodeIP)) allowFromNode = true;
      }
      // The node reaching its own LB IP is seen with the LB IP as source.
      if (allowFromNode) entries.push([SET.loadBalancerSourceIP, `${lb},${proto}:${sp.port},${lb}`]);
      else noNodeAccess.push({ ip: lb, protocol: proto, port: sp.port });
    }
    vs(ip, sp.port, 'LoadBalancer', external);
    if (!nodeLocal.has(lb)) bind(lb);
  }

  const nodeIPs = o.nodePortIPs ?? [];
  if (sp.nodePort !== 0 && nodeIPs.length > 0) {
    const local = sp.externalPolicyLocal;
    if (proto === 'sctp') {
      for (const n of nodeIPs) {
        entries.push([SET.nodePortSCTP, ipPort(n.toString(), sp.nodePort)]);
        if (local) entries.push([SET.nodePortLocalSCTP, ipPort(n.toString(), sp.nodePort)]);
      }
    } else {
      entries.push([proto === 'tcp' ? SET.nodePortTCP : SET.nodePortUDP, String(sp.nodePort)]);
      if (local) entries.push([proto === 'tcp' ? SET.nodePortLocalTCP : SET.nodePortLocalUDP, String(sp.nodePort)]);
    }
    for (const n of nodeIPs) vs(n, sp.nodePort, 'NodePort', external);
  }

  if (sp.healthCheckNodePort !== 0) entries.push([SET.healthCheckNodePort, String(sp.healthCheckNodePort)]);
  return { vss, entries, binds, noNodeAccess, noLocalInternal, noLocalExternal };
}

// ---- the plan ---------------------------------------------------------------

/** What one update changed: the apply layer touches exactly these. */
export interface PlanDelta {
  /** Every fragment was rebuilt (the options changed, or the first update). */
  readonly full: boolean;
  readonly virtualServers: ReadonlySet<string>;
  /** Per set base: the entries whose presence may have changed. */
  readonly entries: ReadonlyMap<SetBase, ReadonlySet<string>>;
  readonly binds: ReadonlySet<string>;
  /** Service ports skipped in part, with the reason (a virtual server another service port owns). */
  readonly issues: readonly Issue[];
}

const counted = <K>(m: Map<K, number>, k: K, d: number): void => {
  const n = (m.get(k) ?? 0) + d;
  if (n <= 0) m.delete(k);
  else m.set(k, n);
};

const optionsSignature = (o: IPVSOptions): string =>
  JSON.stringify([
    o.family,
    o.nodeName ?? '',
    o.zone ?? '',
    o.nodeIP?.toString() ?? '',
    o.scheduler ?? '',
    (o.nodePortIPs ?? []).map(String),
    (o.nodeLocalAddresses ?? []).map(String).sort(),
  ]);

/**
 * The desired IPVS state of one family, kept per service port. `update()`
 * rebuilds the fragments of the given service ports (all of them when the
 * options changed) and returns what changed.
 */
export class IPVSPlan {
  private readonly fragments = new Map<string, Fragment>();
  /** vsKey → the service ports claiming it; the smallest portKey wins. */
  private readonly claims = new Map<string, Set<string>>();
  private readonly entryCounts = new Map<SetBase, Map<string, number>>(SET_INFO.map((s) => [s.base, new Map()]));
  private readonly bindCounts = new Map<string, number>();
  private signature: string | undefined;

  /**
   * Folds in the service ports `changed` (servicePortKeys; undefined: all),
   * reading their current state from the maps.
   */
  update(services: ServicePortMap, endpoints: EndpointsMap, options: IPVSOptions, changed?: Iterable<string>): PlanDelta {
    const sig = optionsSignature(options);
    const full = changed === undefined || sig !== this.signature;
    this.signature = sig;
    const ports = full ? new Set([...this.fragments.keys(), ...services.keys()]) : new Set(changed);
    const vsTouched = new Set<string>();
    const entriesTouched = new Map<SetBase, Set<string>>();
    const bindsTouched = new Set<string>();
    const touchEntry = (set: SetBase, e: string): void => {
      let s = entriesTouched.get(set);
      if (!s) entriesTouched.set(set, (s = new Set()));
      s.add(e);
    };
    for (const portKey of ports) {
      const old = this.fragments.get(portKey);
      if (old) {
        for (const v of old.vss) {
          this.claims.get(v.key)?.delete(portKey);
          if (this.claims.get(v.key)?.size === 0) this.claims.delete(v.key);
          vsTouched.add(v.key);
        }
        for (const [set, e] of old.entries) {
          counted(this.entryCounts.get(set)!, e, -1);
          touchEntry(set, e);
        }
        for (const b of old.binds) {
          counted(this.bindCounts, b, -1);
          bindsTouched.add(b);
        }
        this.fragments.delete(portKey);
      }
      const sp = services.get(portKey);
      if (!sp) continue;
      const frag = fragmentOf(sp, endpoints.get(portKey) ?? [], options, portKey);
      this.fragments.set(portKey, frag);
      for (const v of frag.vss) {
        let c = this.claims.get(v.key);
        if (!c) this.claims.set(v.key, (c = new Set()));
        c.add(portKey);
        vsTouched.add(v.key);
      }
      for (const [set, e] of frag.entries) {
        counted(this.entryCounts.get(set)!, e, 1);
        touchEntry(set, e);
      }
      for (const b of frag.binds) {
        counted(this.bindCounts, b, 1);
        bindsTouched.add(b);
      }
    }
    const issues: Issue[] = [];
    for (const key of vsTouched) {
      const c = this.claims.get(key);
      if (!c || c.size < 2) continue;
      const [winner, ...losers] = [...c].sort();
      for (const l of losers) {
        const sp = services.get(l);
        if (!sp) continue;
        issues.push({ kind: 'Service', namespace: sp.name.namespace, name: sp.name.name, reason: `virtual server ${key} is already used by service port ${winner}; this port is not programmed there`, skipped: false });
      }
    }
    return { full, virtualServers: vsTouched, entries: entriesTouched, binds: bindsTouched, issues };
  }

  /** The desired virtual server of a key (the winning claimant's), or undefined. */
  virtualServer(key: string): VirtualServer | undefined {
    const c = this.claims.get(key);
    if (!c || c.size === 0) return undefined;
    const winner = c.size === 1 ? c.values().next().value! : [...c].sort()[0]!;
    return this.fragments.get(winner)?.vss.find((v) => v.key === key);
  }

  /** Every desired virtual server, sorted by key. */
  virtualServers(): VirtualServer[] {
    return [...this.claims.keys()].sort().map((k) => this.virtualServer(k)!);
  }

  hasEntry(set: SetBase, entry: string): boolean {
    return this.entryCounts.get(set)!.has(entry);
  }

  entries(set: SetBase): string[] {
    return [...this.entryCounts.get(set)!.keys()].sort();
  }

  /** Addresses kube-ipvs0 must hold (KUBE-IPVS-IPS). */
  hasBind(addr: string): boolean {
    return this.bindCounts.has(addr);
  }

  binds(): string[] {
    return [...this.bindCounts.keys()].sort();
  }

  /** Services ("ns/name") in the DROP state per traffic policy (the no_local_endpoints metric). */
  noLocalEndpoints(): { internal: number; external: number } {
    const internal = new Set<string>();
    const external = new Set<string>();
    for (const [portKey, f] of this.fragments) {
      const svc = serviceKeyOfPortKey(portKey);
      if (f.noLocalInternal) internal.add(svc);
      if (f.noLocalExternal) external.add(svc);
    }
    return { internal: internal.size, external: external.size };
  }

  /** The fixed iptables ruleset (nat, then filter, as upstream writes it) for the current sets. */
  iptables(o: IPVSOptions): string {
    const lbNoNode: NoNodeAccess[] = [];
    for (const f of this.fragments.values()) lbNoNode.push(...f.noNodeAccess);
    lbNoNode.sort((a, b) => (a.ip + a.protocol + a.port < b.ip + b.protocol + b.port ? -1 : 1));
    return renderIPVSIptables(o, (b) => this.entryCounts.get(b)!.size > 0, lbNoNode);
  }
}

// ---- iptables --------------------------------------------------------------------

/** upstream ipsetWithIptablesChain: [set, table, chain, target, match, protocol]. */
const SET_RULES: readonly (readonly [SetBase, 'nat' | 'filter', string, string, string, string])[] = [
  [SET.loopBack, 'nat', KUBE_POSTROUTING, 'MASQUERADE', 'dst,dst,src', ''],
  [SET.loadBalancer, 'nat', KUBE_SERVICES, KUBE_LOAD_BALANCER, 'dst,dst', ''],
  [SET.loadBalancerLocal, 'nat', KUBE_LOAD_BALANCER, 'RETURN', 'dst,dst', ''],
  [SET.nodePortLocalTCP, 'nat', KUBE_NODE_PORT, 'RETURN', 'dst', 'tcp'],
  [SET.nodePortTCP, 'nat', KUBE_NODE_PORT, KUBE_MARK_MASQ, 'dst', 'tcp'],
  [SET.nodePortLocalUDP, 'nat', KUBE_NODE_PORT, 'RETURN', 'dst', 'udp'],
  [SET.nodePortUDP, 'nat', KUBE_NODE_PORT, KUBE_MARK_MASQ, 'dst', 'udp'],
  [SET.nodePortLocalSCTP, 'nat', KUBE_NODE_PORT, 'RETURN', 'dst,dst', 'sctp'],
  [SET.nodePortSCTP, 'nat', KUBE_NODE_PORT, KUBE_MARK_MASQ, 'dst,dst', 'sctp'],
  [SET.loadBalancerFW, 'filter', KUBE_PROXY_FIREWALL, KUBE_SOURCE_RANGES_FIREWALL, 'dst,dst', ''],
  [SET.loadBalancerSourceCIDR, 'filter', KUBE_SOURCE_RANGES_FIREWALL, 'RETURN', 'dst,dst,src', ''],
  [SET.loadBalancerSourceIP, 'filter', KUBE_SOURCE_RANGES_FIREWALL, 'RETURN', 'dst,dst,src', ''],
];

/**
 * The iptables-restore text of the IPVS mode (upstream writeIptablesRules):
 * every chain declared (so flushed) and rewritten; `nonEmpty` says which
 * sets have entries (rules that match an empty set are left out, as upstream).
 */
export function renderIPVSIptables(o: IPVSOptions, nonEmpty: (set: SetBase) => boolean, lbNoNodeAccess: readonly NoNodeAccess[] = []): string {
  const f = o.family;
  const name = (b: SetBase): string => ipsetName(b, f);
  const comment = (b: SetBase): string[] => ['-m', 'comment', '--comment', INFO.get(b)!.comment];
  const mark = o.masqueradeMark ?? masqueradeMark(o.masqueradeBit ?? 14);
  const detector = o.localDetector ?? noLocalDetector;
  const nat: string[][] = [];
  const filter: string[][] = [];
  const A = (rules: string[][], chain: string, ...args: string[]): void => void rules.push([chain, ...args]);

  A(nat, KUBE_SERVICES, '-s', f === 4 ? '127.0.0.0/8' : '::1/128', '-j', 'RETURN');
  for (const [set, table, chain, target, match, proto] of SET_RULES) {
    if (!nonEmpty(set)) continue;
    A(table === 'nat' ? nat : filter, chain, ...(proto ? ['-p', proto] : []), ...comment(set), '-m', 'set', '--match-set', name(set), match, '-j', target);
  }
  if (nonEmpty(SET.clusterIP)) {
    const m = [...comment(SET.clusterIP), '-m', 'set', '--match-set', name(SET.clusterIP)];
    if (o.masqueradeAll) A(nat, KUBE_SERVICES, ...m, 'dst,dst', '-j', KUBE_MARK_MASQ);
    else if (isDetectorImplemented(detector)) A(nat, KUBE_SERVICES, ...m, 'dst,dst', ...detector.ifNotLocal, '-j', KUBE_MARK_MASQ);
    // Node-originated traffic gets a VIP as source (they are all on kube-ipvs0).
    else A(nat, KUBE_SERVICES, ...m, 'src,dst', '-j', KUBE_MARK_MASQ);
  }
  const externalIPRules = (m: string[]): void => {
    A(nat, KUBE_SERVICES, ...m, '-m', 'physdev', '!', '--physdev-is-in', '-m', 'addrtype', '!', '--src-type', 'LOCAL', '-j', 'ACCEPT');
    A(nat, KUBE_SERVICES, ...m, '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'ACCEPT');
  };
  if (nonEmpty(SET.externalIP)) {
    const m = [...comment(SET.externalIP), '-m', 'set', '--match-set', name(SET.externalIP), 'dst,dst'];
    A(nat, KUBE_SERVICES, ...m, '-j', KUBE_MARK_MASQ);
    externalIPRules(m);
  }
  if (nonEmpty(SET.externalIPLocal)) externalIPRules([...comment(SET.externalIPLocal), '-m', 'set', '--match-set', name(SET.externalIPLocal), 'dst,dst']);
  A(nat, KUBE_SERVICES, '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', KUBE_NODE_PORT);
  A(nat, KUBE_LOAD_BALANCER, '-j', KUBE_MARK_MASQ);
  A(filter, KUBE_SOURCE_RANGES_FIREWALL, '-j', 'DROP');
  for (const e of lbNoNodeAccess) {
    A(filter, KUBE_IPVS_OUT_FILTER, '-s', e.ip, '-m', 'ipvs', '--vaddr', e.ip, '--vproto', e.protocol, '--vport', String(e.port), '-j', 'DROP');
  }
  for (const set of [SET.clusterIP, SET.loadBalancer]) {
    if (nonEmpty(set)) A(nat, KUBE_SERVICES, '-m', 'set', '--match-set', name(set), 'dst,dst', '-j', 'ACCEPT');
  }
  A(filter, KUBE_FORWARD, '-m', 'comment', '--comment', 'kubernetes forwarding rules', '-m', 'mark', '--mark', `${mark}/${mark}`, '-j', 'ACCEPT');
  A(filter, KUBE_FORWARD, '-m', 'comment', '--comment', 'kubernetes forwarding conntrack rule', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT');
  A(filter, KUBE_NODE_PORT, ...comment(SET.healthCheckNodePort), '-m', 'set', '--match-set', name(SET.healthCheckNodePort), 'dst', '-j', 'ACCEPT');
  // Ours, first in KUBE-IPVS-FILTER: refuse services without endpoints, drop Local ones without local endpoints.
  if (nonEmpty(SET.noEndpoints)) {
    A(filter, KUBE_IPVS_FILTER, ...comment(SET.noEndpoints), '-m', 'conntrack', '--ctstate', 'NEW', '-m', 'set', '--match-set', name(SET.noEndpoints), 'dst,dst', '-j', 'REJECT');
  }
  if (nonEmpty(SET.noLocalEndpoints)) {
    A(filter, KUBE_IPVS_FILTER, ...comment(SET.noLocalEndpoints), '-m', 'conntrack', '--ctstate', 'NEW', '-m', 'set', '--match-set', name(SET.noLocalEndpoints), 'dst,dst', '-j', 'DROP');
  }
  if (nonEmpty(SET.extNoLocalEndpoints)) {
    A(filter, KUBE_IPVS_FILTER, ...comment(SET.extNoLocalEndpoints), '-m', 'conntrack', '--ctstate', 'NEW', '-m', 'set', '--match-set', name(SET.extNoLocalEndpoints), 'dst,dst',
      ...detector.ifNotLocal, '-m', 'addrtype', '!', '--src-type', 'LOCAL', '-j', 'DROP');
  }
  for (const set of [SET.loadBalancer, SET.clusterIP, SET.externalIP, SET.externalIPLocal]) {
    A(filter, KUBE_IPVS_FILTER, '-m', 'set', '--match-set', name(set), 'dst,dst', '-j', 'RETURN');
  }
  A(filter, KUBE_IPVS_FILTER, '-m', 'set', '--match-set', name(SET.healthCheckNodePort), 'dst', '-j', 'RETURN');
  A(filter, KUBE_IPVS_FILTER, '-m', 'conntrack', '--ctstate', 'NEW', '-m', 'set', '--match-set', name(SET.ipvsIPs), 'dst', '-j', 'REJECT');
  A(nat, KUBE_POSTROUTING, '-m', 'mark', '!', '--mark', `${mark}/${mark}`, '-j', 'RETURN');
  A(nat, KUBE_POSTROUTING, '-j', 'MARK', '--xor-mark', mark);
  A(nat, KUBE_POSTROUTING, '-m', 'comment', '--comment', 'kubernetes service traffic requiring SNAT', '-j', 'MASQUERADE', ...(o.randomFully === false ? [] : ['--random-fully']));
  A(nat, KUBE_MARK_MASQ, '-j', 'MARK', '--or-mark', mark);

  const lines = (rules: string[][]): string => rules.map(([chain, ...args]) => `-A ${chain} ${renderArgs(args)}\n`).join('');
  const decl = (chains: readonly string[]): string => chains.map((c) => `:${c} - [0:0]\n`).join('');
  return `*nat\n${decl(IPVS_CHAINS.nat)}${lines(nat)}COMMIT\n*filter\n${decl(IPVS_CHAINS.filter)}${lines(filter)}COMMIT\n`;
}

/** Adds base-chain jumps to a rendered "*nat … COMMIT *filter … COMMIT" text, still one restore. */
export function withJumps(text: string, jumps: { nat: readonly string[]; filter: readonly string[] }): string {
  if (jumps.nat.length === 0 && jumps.filter.length === 0) return text;
  const at = text.indexOf('*filter\n');
  const put = (section: string, lines: readonly string[]): string => {
    const commit = section.lastIndexOf('COMMIT\n');
    return section.slice(0, commit) + lines.map((l) => `${l}\n`).join('') + section.slice(commit);
  };
  return put(text.slice(0, at), jumps.nat) + put(text.slice(at), jumps.filter);
}

/** Whether an address is inside any of the --ipvs-exclude-cidrs. */
export function excluded(addr: IPAddr, cidrs: readonly IPPrefix[]): boolean {
  return cidrs.some((c) => c.family === addr.family && c.contains(addr));
}
