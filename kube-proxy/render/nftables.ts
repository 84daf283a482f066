// kube-proxy's nftables mode (k/k pkg/proxy/nftables/proxier.go): the
// `ip kube-proxy` / `ip6 kube-proxy` table with upstream's base chains,
// sets and verdict maps, and per-service-port chains with upstream's names,
// rendered from the tracker's model. Pure: no kernel, no clock.
//
// Unlike upstream, which rewrites every chain on a full sync and lists the
// kernel's chains to find stale ones, NFTablesRenderer remembers what it
// applied (per owner — a service port, or the base objects — the objects it
// wrote; chains, sets and every map and set element) and emits only the
// difference, as a list of transactions:
//   1. the table, if it is not there yet;
//   2. new chains, created empty in transactions of their own (unreferenced,
//      so no packet sees them; `add chain` alone costs nft no cache load, and
//      later rules name them instead of using batch-local ids);
//   3. one unit per changed service port — its rewritten chains (flush, then
//      rules), its sets, its element changes — packed into transactions of at
//      most maxTransactionLines lines, never split: a service becomes visible
//      when its element lands, in the same transaction as its rules, and an
//      address handed from one port to another moves in one transaction;
//   4. stale chains and sets, flushed then deleted, once nothing points at them.
// When the plan builds the table (cold start, reset), the base chains' rules
// go last: no hook leads anywhere until every service is in place.
// Transactions carry commands as values (lib/netfilter/nft-netlink-commands.ts):
// the nf_tables netlink writer sends them as one batch each; `text` renders
// the same commands for `nft -f` (goldens, trace, the nft fallback).
// adopt() takes over a table an earlier run left (see there).
// Measured on nft 1.0.6 / Linux 6.18 (bench/kube-proxy-nft.sh): every
// transaction holding a rule or an element makes nft dump all chains and sets
// first (about 1.3 s at 110,000 chains), and each anonymous `numgen … vmap { … }`
// costs the kernel a walk over every set of the table to name it, so a cold
// start grows with the square of the service count whatever the chunking.
import { IPAddr, type Family } from '../../lib/ip/index.ts';
import type { NftTableInfo } from '../../lib/netfilter/nft-json.ts';
import { commandsText, type NftCommand, type NftTableRef } from '../../lib/netfilter/nft-netlink-commands.ts';
import { checkName, NftTransaction, quoteComment, sanitizeComment, type NftFamily } from '../../lib/netfilter/nft-tx.ts';
import { categorizeEndpoints, type Topology } from '../tracker/categorize.ts';
import { externallyAccessible, usesClusterEndpoints, usesLocalEndpoints, type Endpoint, type EndpointsMap, type ServicePort, type ServicePortMap } from '../tracker/types.ts';
import { hash16, masqueradeMark } from './names.ts';
import { allNodePortAddresses, isDetectorImplemented, noLocalDetector, type LocalDetector, type NodePortAddresses, type ProxyRenderOptions } from './options.ts';

export const KUBE_PROXY_TABLE = 'kube-proxy';

// Upstream's object names (proxier.go constants).
export const SERVICES_CHAIN = 'services';
export const MARK_MASQ_CHAIN = 'mark-for-masquerade';
export const MASQUERADING_CHAIN = 'masquerading';
export const CLUSTER_IPS_CHECK_CHAIN = 'cluster-ips-check';
export const FIREWALL_CHECK_CHAIN = 'firewall-check';
export const SERVICE_ENDPOINTS_CHECK_CHAIN = 'service-endpoints-check';
export const NODEPORT_ENDPOINTS_CHECK_CHAIN = 'nodeport-endpoints-check';
export const REJECT_CHAIN = 'reject-chain';
export const CLUSTER_IPS_SET = 'cluster-ips';
export const NODEPORT_IPS_SET = 'nodeport-ips';
export const SERVICE_IPS_MAP = 'service-ips';
export const SERVICE_NODEPORTS_MAP = 'service-nodeports';
export const FIREWALL_IPS_MAP = 'firewall-ips';
export const NO_ENDPOINT_SERVICES_MAP = 'no-endpoint-services';
export const NO_ENDPOINT_NODEPORTS_MAP = 'no-endpoint-nodeports';

export const SERVICE_CHAIN_PREFIX = 'service-';
export const LOCAL_CHAIN_PREFIX = 'local-';
export const EXTERNAL_CHAIN_PREFIX = 'external-';
export const FIREWALL_CHAIN_PREFIX = 'firewall-';
export const ENDPOINT_CHAIN_PREFIX = 'endpoint-';
export const AFFINITY_SET_PREFIX = 'affinity-';

/** knftables.NameLengthMax (256) less upstream's longest prefix allowance (16). */
const CHAIN_NAME_BASE_MAX = 240;

/** Upstream hashAndTruncate: 8 base32 characters of SHA-256(name), "-", name; cut at 240. */
export function hashAndTruncate(name: string): string {
  // hash16 is the first 16 base32 characters of the same digest; upstream keeps 8.
  const out = `${hash16(name).slice(0, 8)}-${name}`;
  return out.length > CHAIN_NAME_BASE_MAX ? `${out.slice(0, CHAIN_NAME_BASE_MAX - 3)}...` : out;
}

/** "ns/name/proto/portName" hashed: the base of the service, local, external and firewall chains. */
export function servicePortChainNameBase(sp: ServicePort): string {
  return hashAndTruncate(`${sp.name.namespace}/${sp.name.name}/${sp.protocol.toLowerCase()}/${sp.name.port}`);
}

/** "ns/name/proto/portName__IP/port", IPv6 colons turned into dots (nft names cannot hold them). */
export function endpointChainNameBase(sp: ServicePort, ep: Endpoint): string {
  const ip = ep.ip.includes(':') ? ep.ip.replaceAll(':', '.') : ep.ip;
  return hashAndTruncate(`${sp.name.namespace}/${sp.name.name}/${sp.protocol.toLowerCase()}/${sp.name.port}__${ip}/${ep.port}`);
}

/** Upstream isServiceChainName: every per-service chain has a "/" in its name. */
export const isServiceChainName = (chain: string): boolean => chain.includes('/');
export const isAffinitySetName = (set: string): boolean => set.startsWith(AFFINITY_SET_PREFIX);

/** LocalTrafficDetector in nft syntax (upstream IfLocalNFT / IfNotLocalNFT). */
export interface NftLocalDetector {
  readonly ifLocal: string;
  readonly ifNotLocal: string;
}

/** The iptables-form detector of options.ts written as nft matches. */
export function nftLocalDetector(d: LocalDetector, family: Family): NftLocalDetector | undefined {
  if (!isDetectorImplemented(d)) return undefined;
  const [flag, value] = d.ifLocal;
  if (value === undefined) return undefined;
  if (flag === '-s') {
    const ipX = family === 6 ? 'ip6' : 'ip';
    return { ifLocal: `${ipX} saddr ${value}`, ifNotLocal: `${ipX} saddr != ${value}` };
  }
  if (flag === '-i') {
    // iptables' "prefix+" wildcard is nft's "prefix*".
    const name = value.endsWith('+') ? `${value.slice(0, -1)}*` : value;
    return { ifLocal: `iifname ${name}`, ifNotLocal: `iifname != ${name}` };
  }
  return undefined;
}

export interface NFTablesOptions extends ProxyRenderOptions {
  /** The service CIDRs of this family: traffic to unallocated ClusterIPs in them is dropped. */
  readonly serviceCIDRs?: readonly string[];
  /**
   * Upper bound on the lines of one transaction. Service ports are never
   * split across transactions; one larger than this travels alone.
   */
  readonly maxTransactionLines?: number;
  /** Upper bound on the `add chain` lines of one chain-creating transaction. */
  readonly maxChainLines?: number;
  /**
   * Create new chains, empty, in transactions of their own ahead of the rest
   * (default true: `nft -f` then names them instead of resolving batch-local
   * ids, and an `add chain` alone costs it no cache load). false puts each
   * new chain's `add chain` in its service port's own transaction, so a
   * partial sync is one transaction (the netlink writer's choice: the kernel
   * finds chains of the same batch by name).
   */
  readonly precreateChains?: boolean;
}

export const DEFAULT_MAX_TRANSACTION_LINES = 40_000;
export const DEFAULT_MAX_CHAIN_LINES = 200_000;

interface Resolved {
  readonly family: Family;
  readonly nftFamily: NftFamily;
  readonly ipX: 'ip' | 'ip6';
  readonly addrType: 'ipv4_addr' | 'ipv6_addr';
  readonly topo: Topology;
  readonly nodeIP: IPAddr | undefined;
  readonly npa: NodePortAddresses;
  readonly detector: NftLocalDetector | undefined;
  readonly masqueradeAll: boolean;
  readonly mark: string;
  readonly serviceCIDRs: readonly string[];
  readonly maxLines: number;
  readonly maxChainLines: number;
  readonly precreate: boolean;
  /** Everything that shapes a service port's objects besides the port and its endpoints. */
  readonly signature: string;
}

function resolve(o: NFTablesOptions): Resolved {
  const family = o.family;
  const ipX = family === 6 ? 'ip6' : 'ip';
  const detector = nftLocalDetector(o.localDetector ?? noLocalDetector, family);
  const mark = o.masqueradeMark ?? masqueradeMark(o.masqueradeBit ?? 14);
  const topo = { nodeName: o.nodeName ?? '', zone: o.zone ?? '' };
  const masqueradeAll = o.masqueradeAll ?? false;
  const nodeIP = o.nodeIP;
  return {
    family,
    nftFamily: ipX,
    ipX,
    addrType: family === 6 ? 'ipv6_addr' : 'ipv4_addr',
    topo,
    nodeIP,
    npa: o.nodePortAddresses ?? allNodePortAddresses(family),
    detector,
    masqueradeAll,
    mark,
    serviceCIDRs: o.serviceCIDRs ?? [],
    maxLines: o.maxTransactionLines ?? DEFAULT_MAX_TRANSACTION_LINES,
    maxChainLines: o.maxChainLines ?? DEFAULT_MAX_CHAIN_LINES,
    precreate: o.precreateChains ?? true,
    signature: JSON.stringify([family, topo, nodeIP?.toString() ?? '', detector ?? null, masqueradeAll]),
  };
}

// -- the objects -------------------------------------------------------------

export interface NftRule {
  readonly rule: string;
  readonly comment?: string;
}
export interface NftChainObject {
  readonly name: string;
  readonly type?: 'filter' | 'nat';
  readonly hook?: 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
  readonly priority?: number;
  readonly comment?: string;
  readonly rules: readonly NftRule[];
  /**
   * Part of the fingerprint but not of the text: what the rules depend on
   * besides their text (the timeout of an affinity set they use), so the
   * chain is rewritten, releasing the set, when that changes.
   */
  readonly salt?: string;
}
export interface NftSetObject {
  readonly kind: 'set' | 'map';
  readonly name: string;
  readonly type: string;
  readonly flags?: readonly string[];
  readonly timeout?: number;
  readonly comment?: string;
}
export interface NftElementObject {
  readonly set: string;
  readonly key: readonly string[];
  readonly value?: string;
  readonly comment?: string;
}

/** Everything one service port puts in the table. */
export interface ServicePortObjects {
  /** servicePortKey of the port. */
  readonly key: string;
  readonly sets: readonly NftSetObject[];
  readonly chains: readonly NftChainObject[];
  readonly elements: readonly NftElementObject[];
  /** This port's traffic to the ClusterIP (or external IPs) is dropped for lack of local endpoints. */
  readonly noLocalInternal: boolean;
  readonly noLocalExternal: boolean;
}

/** A chain as `add chain` alone leaves it. */
const emptyChain = (c: NftChainObject): NftChainObject => ({ ...c, rules: [], salt: '\0empty' });

const chainFingerprint = (c: NftChainObject): string =>
  JSON.stringify([c.type ?? '', c.hook ?? '', c.priority ?? '', c.comment ?? '', c.salt ?? '', c.rules.map((r) => (r.comment === undefined ? r.rule : `${r.rule}\0${r.comment}`))]);
const setFingerprint = (s: NftSetObject): string => JSON.stringify([s.kind, s.type, s.flags ?? [], s.timeout ?? '', s.comment ?? '']);
const elementId = (e: NftElementObject): string => `${e.set} ${e.key.join(' . ')}`;
const elementFingerprint = (e: NftElementObject): string => `${e.value ?? ''}\0${e.comment ?? ''}`;

// -- base objects (setupNFTables) ---------------------------------------------

const BASE_OWNER = '';
/** The owner of what adopt() found in the kernel: nobody's until a plan claims it. */
const ADOPTED_OWNER = '\0adopted';

function baseObjects(o: Resolved): { sets: NftSetObject[]; chains: NftChainObject[]; elements: NftElementObject[] } {
  const { ipX, addrType } = o;
  const triple = `${addrType} . inet_proto . inet_service : verdict`;
  const noLocalhost = o.family === 6 ? 'ip6 daddr != ::1' : 'ip daddr != 127.0.0.0/8';
  const sets: NftSetObject[] = [
    { kind: 'set', name: CLUSTER_IPS_SET, type: addrType, comment: 'Active ClusterIPs' },
    { kind: 'map', name: NO_ENDPOINT_SERVICES_MAP, type: triple, comment: 'vmap to drop or reject packets to services with no endpoints' },
    { kind: 'map', name: NO_ENDPOINT_NODEPORTS_MAP, type: 'inet_proto . inet_service : verdict', comment: 'vmap to drop or reject packets to service nodeports with no endpoints' },
    { kind: 'map', name: FIREWALL_IPS_MAP, type: triple, comment: 'destinations that are subject to LoadBalancerSourceRanges' },
    { kind: 'map', name: SERVICE_IPS_MAP, type: triple, comment: 'ClusterIP, ExternalIP and LoadBalancer IP traffic' },
    { kind: 'map', name: SERVICE_NODEPORTS_MAP, type: 'inet_proto . inet_service : verdict', comment: 'NodePort traffic' },
  ];
  const elements: NftElementObject[] = [];
  const matchAll = o.npa.matchAll;
  if (!matchAll) {
    sets.push({ kind: 'set', name: NODEPORT_IPS_SET, type: addrType, comment: 'IPs that accept NodePort traffic' });
    // Localhost NodePorts are not supported in nftables mode.
    for (const ip of o.npa.ips) if (!ip.isLoopback()) elements.push({ set: NODEPORT_IPS_SET, key: [ip.toString()] });
  }
  const r = (rule: string, comment?: string): NftRule => (comment === undefined ? { rule } : { rule, comment });
  const jump = (target: string): NftRule => r(`ct state new jump ${target}`);
  const clusterIPsCheck = [r(`${ipX} daddr @${CLUSTER_IPS_SET} reject`, 'Reject traffic to invalid ports of ClusterIPs')];
  if (o.serviceCIDRs.length > 0) clusterIPsCheck.push(r(`${ipX} daddr { ${o.serviceCIDRs.join(' , ')} } drop`, 'Drop traffic to unallocated ClusterIPs'));
  const chains: NftChainObject[] = [
    // Regular chains first: base chains' rules jump to them.
    { name: CLUSTER_IPS_CHECK_CHAIN, rules: clusterIPsCheck },
    { name: FIREWALL_CHECK_CHAIN, rules: [r(`${ipX} daddr . meta l4proto . th dport vmap @${FIREWALL_IPS_MAP}`)] },
    { name: MARK_MASQ_CHAIN, rules: [r(`mark set mark or ${o.mark}`)] },
    { name: MASQUERADING_CHAIN, rules: [r(`mark and ${o.mark} == 0 return`), r(`mark set mark xor ${o.mark}`), r('masquerade fully-random')] },
    {
      name: NODEPORT_ENDPOINTS_CHECK_CHAIN,
      rules: [
        r(
          matchAll
            ? `${noLocalhost} meta l4proto . th dport vmap @${NO_ENDPOINT_NODEPORTS_MAP}`
            : `${ipX} daddr @${NODEPORT_IPS_SET} meta l4proto . th dport vmap @${NO_ENDPOINT_NODEPORTS_MAP}`,
        ),
      ],
    },
    { name: REJECT_CHAIN, comment: 'helper for @no-endpoint-services / @no-endpoint-nodeports', rules: [r('reject')] },
    { name: SERVICE_ENDPOINTS_CHECK_CHAIN, rules: [r(`${ipX} daddr . meta l4proto . th dport vmap @${NO_ENDPOINT_SERVICES_MAP}`)] },
    {
      name: SERVICES_CHAIN,
      rules: [
        r(`${ipX} daddr . meta l4proto . th dport vmap @${SERVICE_IPS_MAP}`),
        r(
          matchAll
            ? `fib daddr type local ${noLocalhost} meta l4proto . th dport vmap @${SERVICE_NODEPORTS_MAP}`
            : `${ipX} daddr @${NODEPORT_IPS_SET} meta l4proto . th dport vmap @${SERVICE_NODEPORTS_MAP}`,
        ),
      ],
    },
    // Base chains (nftablesBaseChains) with the jumps of nftablesJumpChains.
    { name: 'filter-prerouting-pre-dnat', type: 'filter', hook: 'prerouting', priority: -110, rules: [jump(FIREWALL_CHECK_CHAIN)] },
    { name: 'filter-output-pre-dnat', type: 'filter', hook: 'output', priority: -110, rules: [jump(FIREWALL_CHECK_CHAIN)] },
    { name: 'filter-forward', type: 'filter', hook: 'forward', priority: 0, rules: [jump(SERVICE_ENDPOINTS_CHECK_CHAIN), jump(CLUSTER_IPS_CHECK_CHAIN)] },
    { name: 'filter-input', type: 'filter', hook: 'input', priority: 0, rules: [jump(NODEPORT_ENDPOINTS_CHECK_CHAIN), jump(SERVICE_ENDPOINTS_CHECK_CHAIN)] },
    { name: 'filter-output', type: 'filter', hook: 'output', priority: 0, rules: [jump(SERVICE_ENDPOINTS_CHECK_CHAIN), jump(CLUSTER_IPS_CHECK_CHAIN)] },
    { name: 'nat-output', type: 'nat', hook: 'output', priority: -100, rules: [r(`jump ${SERVICES_CHAIN}`)] },
    { name: 'nat-postrouting', type: 'nat', hook: 'postrouting', priority: 100, rules: [r(`jump ${MASQUERADING_CHAIN}`)] },
    { name: 'nat-prerouting', type: 'nat', hook: 'prerouting', priority: -100, rules: [r(`jump ${SERVICES_CHAIN}`)] },
  ];
  return { sets, chains, elements };
}

// -- one service port (the loop body of syncProxyRules) -------------------------

interface PortNames {
  readonly base: string;
  readonly proto: string;
  readonly clusterIP: string;
  readonly port: string;
}
const portNames = new WeakMap<ServicePort, PortNames>();
const endpointBases = new WeakMap<Endpoint, string>();

function namesOf(sp: ServicePort): PortNames {
  let n = portNames.get(sp);
  if (!n) {
    n = { base: servicePortChainNameBase(sp), proto: sp.protocol.toLowerCase(), clusterIP: sp.clusterIP.toString(), port: String(sp.port) };
    portNames.set(sp, n);
  }
  return n;
}

/** Endpoint objects belong to one service port, so their chain name base can be cached on them. */
function endpointBase(sp: ServicePort, ep: Endpoint): string {
  let b = endpointBases.get(ep);
  if (b === undefined) {
    b = endpointChainNameBase(sp, ep);
    endpointBases.set(ep, b);
  }
  return b;
}

/** Pure: the sets, chains and elements of one service port, in upstream's rule order. */
export function renderServicePortObjects(key: string, sp: ServicePort, endpoints: readonly Endpoint[], o: Resolved): ServicePortObjects {
  const { ipX } = o;
  const n = namesOf(sp);
  const { proto, clusterIP, port } = n;
  const cat = categorizeEndpoints(endpoints, sp, o.topo);
  const hasEndpoints = cat.hasAnyEndpoints;
  const clusterChain = SERVICE_CHAIN_PREFIX + n.base;
  const localChain = LOCAL_CHAIN_PREFIX + n.base;
  const externalChain = EXTERNAL_CHAIN_PREFIX + n.base;
  const fwChain = FIREWALL_CHAIN_PREFIX + n.base;
  // A long comment would fail the whole transaction (k/k#139515): cut it.
  const comment = sanitizeComment(sp.nameString);
  const affinity = sp.stickyMaxAgeSeconds !== undefined;
  const epChain = (ep: Endpoint): string => ENDPOINT_CHAIN_PREFIX + endpointBase(sp, ep);
  const affinitySet = (ep: Endpoint): string => AFFINITY_SET_PREFIX + endpointBase(sp, ep);

  const usesClusterChain = cat.clusterEndpoints.length > 0 && usesClusterEndpoints(sp);
  const usesLocalChain = cat.localEndpoints.length > 0 && usesLocalEndpoints(sp);
  let internalChain = clusterChain;
  let hasInternal = hasEndpoints;
  if (sp.internalPolicyLocal) {
    internalChain = localChain;
    if (cat.localEndpoints.length === 0) hasInternal = false;
  }
  let externalPolicyChain = clusterChain;
  let hasExternal = hasEndpoints;
  if (sp.externalPolicyLocal) {
    externalPolicyChain = localChain;
    if (cat.localEndpoints.length === 0) hasExternal = false;
  }
  // Based on hasEndpoints: the short-circuit rules are needed even without external endpoints.
  const usesExternalChain = hasEndpoints && externallyAccessible(sp);
  const usesFWChain = sp.loadBalancerVIPs.length > 0 && sp.loadBalancerSourceRanges.length > 0;

  let internalVerdict = '';
  let externalVerdict = '';
  let noLocalInternal = false;
  let noLocalExternal = false;
  if (!hasEndpoints) {
    internalVerdict = externalVerdict = `goto ${REJECT_CHAIN}`;
  } else {
    if (!hasInternal) {
      internalVerdict = 'drop';
      noLocalInternal = true;
    }
    if (!hasExternal) {
      externalVerdict = 'drop';
      noLocalExternal = true;
    }
  }

  const elements: NftElementObject[] = [];
  const triple = (ip: string): string[] => [ip, proto, port];
  elements.push({ set: CLUSTER_IPS_SET, key: [clusterIP] });
  if (hasInternal) elements.push({ set: SERVICE_IPS_MAP, key: triple(clusterIP), value: `goto ${internalChain}` });
  else elements.push({ set: NO_ENDPOINT_SERVICES_MAP, key: triple(clusterIP), value: internalVerdict, comment });
  for (const ip of sp.externalIPs.map(String)) {
    if (hasEndpoints) elements.push({ set: SERVICE_IPS_MAP, key: triple(ip), value: `goto ${externalChain}` });
    if (!hasExternal) elements.push({ set: NO_ENDPOINT_SERVICES_MAP, key: triple(ip), value: externalVerdict, comment });
  }
  const lbIPs = sp.loadBalancerVIPs.map(String);
  for (const ip of lbIPs) {
    if (hasEndpoints) elements.push({ set: SERVICE_IPS_MAP, key: triple(ip), value: `goto ${externalChain}` });
    if (usesFWChain) elements.push({ set: FIREWALL_IPS_MAP, key: triple(ip), value: `goto ${fwChain}` });
  }
  if (!hasExternal) for (const ip of lbIPs) elements.push({ set: NO_ENDPOINT_SERVICES_MAP, key: triple(ip), value: externalVerdict, comment });
  if (sp.nodePort !== 0) {
    const np = String(sp.nodePort);
    // NodePorts are deliberately not subject to loadBalancerSourceRanges (k/k#33586).
    if (hasEndpoints) elements.push({ set: SERVICE_NODEPORTS_MAP, key: [proto, np], value: `goto ${externalChain}` });
    if (!hasExternal) elements.push({ set: NO_ENDPOINT_NODEPORTS_MAP, key: [proto, np], value: externalVerdict, comment });
  }

  // Chains, keyed by name so that rules land in the chain they belong to.
  const chainRules = new Map<string, NftRule[]>();
  const use = (name: string): NftRule[] => {
    let rules = chainRules.get(name);
    if (!rules) chainRules.set(name, (rules = []));
    return rules;
  };
  const sets: NftSetObject[] = [];
  for (const ep of cat.allReachableEndpoints) use(epChain(ep));
  if (usesClusterChain) use(clusterChain);
  if (usesLocalChain) use(localChain);
  if (usesExternalChain) use(externalChain);
  if (usesFWChain) use(fwChain);

  if (hasInternal) {
    if (o.masqueradeAll) use(internalChain).push({ rule: `${ipX} daddr ${clusterIP} ${proto} dport ${port} jump ${MARK_MASQ_CHAIN}` });
    else if (o.detector) {
      // Off-cluster traffic to a service VIP (a static route to any node) may bounce off-node: masquerade it.
      use(internalChain).push({ rule: `${ipX} daddr ${clusterIP} ${o.detector.ifNotLocal} jump ${MARK_MASQ_CHAIN}` });
    }
  }
  if (usesExternalChain) {
    const ext = use(externalChain);
    if (!sp.externalPolicyLocal) {
      // Non-local endpoints may be on another node: masquerade so replies come back here.
      ext.push({ rule: `jump ${MARK_MASQ_CHAIN}` });
    } else {
      // Pod → external destination acts as if it went out to the LB and back: neither policy applies.
      if (o.detector) ext.push({ rule: `${o.detector.ifLocal} goto ${clusterChain}`, comment: 'short-circuit pod traffic' });
      // The node's own traffic picks the (local) external IP as source: masquerade, and use the cluster chain.
      ext.push({ rule: `fib saddr type local jump ${MARK_MASQ_CHAIN}`, comment: 'masquerade local traffic' });
      ext.push({ rule: `fib saddr type local goto ${clusterChain}`, comment: 'short-circuit local traffic' });
    }
    if (hasExternal) ext.push({ rule: `goto ${externalPolicyChain}` });
  }
  if (usesFWChain) {
    const sources = sp.loadBalancerSourceRanges.map(String);
    // Node → VIP traffic loops back with the VIP as its source when the VIP is local.
    if (o.nodeIP && sp.loadBalancerSourceRanges.some((c) => c.contains(o.nodeIP!))) sources.push(...lbIPs);
    use(fwChain).push({ rule: `${ipX} saddr != { ${sources.join(' , ')} } drop` });
  }
  if (affinity) {
    for (const ep of cat.allReachableEndpoints) {
      // "dynamic" too, or the kernel adds it and the next `add set` looks like a change of flags.
      sets.push({ kind: 'set', name: affinitySet(ep), type: o.addrType, flags: ['dynamic', 'timeout'], timeout: sp.stickyMaxAgeSeconds! });
    }
  }
  const toEndpoints = (chain: string, eps: readonly Endpoint[]): void => {
    const rules = use(chain);
    if (affinity) for (const ep of eps) rules.push({ rule: `${ipX} saddr @${affinitySet(ep)} goto ${epChain(ep)}` });
    const entries = eps.map((ep, i) => `${i} : goto ${epChain(ep)}`).join(' , ');
    rules.push({ rule: `numgen random mod ${eps.length} vmap { ${entries} }` });
  };
  if (usesClusterChain) toEndpoints(clusterChain, cat.clusterEndpoints);
  if (usesLocalChain) toEndpoints(localChain, cat.localEndpoints);
  for (const ep of cat.allReachableEndpoints) {
    const rules = use(epChain(ep));
    // Hairpin: a pod reaching itself through the service must be masqueraded.
    rules.push({ rule: `${ipX} saddr ${ep.ip} jump ${MARK_MASQ_CHAIN}` });
    if (affinity) rules.push({ rule: `update @${affinitySet(ep)} { ${ipX} saddr }` });
    rules.push({ rule: `meta l4proto ${proto} dnat to ${ep.endpoint}` });
  }
  // Chains that are jumped to come before the chains that jump: endpoints first, then
  // service/local, then external and firewall (the order of `use` above).
  const salt = affinity ? String(sp.stickyMaxAgeSeconds) : undefined;
  const chains = [...chainRules].map(([name, rules]): NftChainObject => (salt === undefined ? { name, rules } : { name, rules, salt }));
  return { key, sets, chains, elements, noLocalInternal, noLocalExternal };
}

// -- applied state ------------------------------------------------------------

interface Applied<T> {
  readonly obj: T;
  readonly owner: string;
}

/** The objects one owner (a service port, or '' for the base objects) wants. */
interface OwnerObjects {
  readonly sets: readonly NftSetObject[];
  readonly chains: readonly NftChainObject[];
  readonly elements: readonly NftElementObject[];
}

type Op =
  | { readonly t: 'table' }
  | { readonly t: 'chain'; readonly name: string; readonly v: Applied<NftChainObject> | undefined }
  | { readonly t: 'set'; readonly name: string; readonly v: Applied<NftSetObject> | undefined }
  | { readonly t: 'elem'; readonly id: string; readonly v: Applied<NftElementObject> | undefined }
  | { readonly t: 'owner'; readonly owner: string; readonly v: OwnerObjects | undefined };

/** What the renderer believes is in the kernel: exactly what committed transactions did. */
export class NFTablesState {
  table = false;
  readonly chains = new Map<string, Applied<NftChainObject>>();
  readonly sets = new Map<string, Applied<NftSetObject>>();
  readonly elements = new Map<string, Applied<NftElementObject>>();
  /** The objects each owner had applied, by identity: an unchanged port is skipped whole. */
  readonly owners = new Map<string, OwnerObjects>();

  apply(op: Op): void {
    switch (op.t) {
      case 'table':
        this.table = true;
        return;
      case 'chain':
        return put(this.chains, op.name, op.v);
      case 'set':
        return put(this.sets, op.name, op.v);
      case 'elem':
        return put(this.elements, op.id, op.v);
      case 'owner':
        return put(this.owners, op.owner, op.v);
    }
  }

  clear(): void {
    this.table = false;
    this.chains.clear();
    this.sets.clear();
    this.elements.clear();
    this.owners.clear();
  }
}

/** An element key part as the renderer writes it (addresses in canonical form). */
function canonicalKeyPart(p: string): string {
  if (!/^[0-9a-fA-F:.]+$/.test(p) || !/[.:]/.test(p)) return p;
  return IPAddr.parse(p)?.toString() ?? p;
}

function put<V>(m: Map<string, V>, k: string, v: V | undefined): void {
  if (v === undefined) m.delete(k);
  else m.set(k, v);
}

// -- transaction text -----------------------------------------------------------

/** Writes the commands for one table (rendered as NftTransaction would write them: commandText). */
class Lines {
  addChain(c: NftChainObject): NftCommand {
    checkName('chain', c.name);
    if (c.type !== undefined) return { op: 'add-chain', name: c.name, type: c.type, hook: c.hook!, priority: c.priority!, ...(c.comment !== undefined ? { comment: c.comment } : {}) };
    return c.comment !== undefined ? { op: 'add-chain', name: c.name, comment: c.comment } : { op: 'add-chain', name: c.name };
  }
  flushChain(name: string): NftCommand {
    return { op: 'flush-chain', name };
  }
  deleteChain(name: string): NftCommand {
    return { op: 'delete-chain', name };
  }
  addRule(chain: string, r: NftRule): NftCommand {
    if (r.comment !== undefined) quoteComment(r.comment);
    return r.comment !== undefined ? { op: 'add-rule', chain, rule: r.rule, comment: r.comment } : { op: 'add-rule', chain, rule: r.rule };
  }
  addSet(s: NftSetObject): NftCommand {
    checkName('set', s.name);
    if (s.comment !== undefined) quoteComment(s.comment);
    const c: { -readonly [K in keyof Extract<NftCommand, { op: 'add-set' }>]: Extract<NftCommand, { op: 'add-set' }>[K] } = { op: 'add-set', kind: s.kind, name: s.name, type: s.type };
    if (s.flags?.length) c.flags = s.flags;
    if (s.timeout !== undefined) c.timeout = s.timeout;
    if (s.comment !== undefined) c.comment = s.comment;
    return c;
  }
  deleteSet(s: NftSetObject): NftCommand {
    return { op: 'delete-set', kind: s.kind, name: s.name };
  }
  addElement(e: NftElementObject): NftCommand {
    if (e.comment !== undefined) quoteComment(e.comment);
    const c: { -readonly [K in keyof Extract<NftCommand, { op: 'add-element' }>]: Extract<NftCommand, { op: 'add-element' }>[K] } = { op: 'add-element', set: e.set, key: e.key };
    if (e.comment !== undefined) c.comment = e.comment;
    if (e.value !== undefined) c.value = e.value;
    return c;
  }
  deleteElement(e: NftElementObject): NftCommand {
    return { op: 'delete-element', set: e.set, key: e.key };
  }
}

// -- planning -----------------------------------------------------------------

/** One unit of change that is never split: a service port's, or the base objects'. */
interface Unit {
  readonly lines: NftCommand[];
  /** Travels in a transaction of its own (chain creation: no rules or elements with it). */
  readonly alone?: boolean;
  /** lines joined, each "\n"-terminated; set when the unit is complete. */
  readonly ops: Op[];
  readonly ports: string[];
}

export interface NFTablesTransaction {
  /** The table it acts on. */
  readonly table: NftTableRef;
  /** Its commands, in order: what the netlink writer sends as one batch. */
  readonly commands: readonly NftCommand[];
  /** The same commands as text for `nft -f -` (Nft.run takes it as it is); rendered on first use. */
  readonly text: string;
  /** Its number of commands. */
  readonly lines: number;
  /** The service ports ("ns/name:port/TCP") whose objects change in it. */
  readonly servicePorts: readonly string[];
  /** Internal: the state changes it makes once applied. */
  readonly ops: readonly Op[];
}

export interface NFTablesPlan {
  /** Apply in order, each as one `nft -f -`; commit each success with NFTablesRenderer.commit. */
  readonly transactions: readonly NFTablesTransaction[];
  readonly family: Family;
  /** Service ports in the input. */
  readonly servicePorts: number;
  /** Service ports added, changed or removed by this plan. */
  readonly servicePortsChanged: number;
  readonly noLocalEndpointsInternal: number;
  readonly noLocalEndpointsExternal: number;
}

interface CachedPort {
  readonly sp: ServicePort;
  readonly endpoints: readonly Endpoint[] | undefined;
  readonly signature: string;
  readonly objects: ServicePortObjects;
}

export interface NFTablesInput {
  readonly services: ServicePortMap;
  readonly endpoints: EndpointsMap;
}

const fpCache = new WeakMap<object, string>();
function fingerprint(o: NftChainObject | NftSetObject): string {
  // Only asked for when a port changed and its old and new objects differ in identity.
  let fp = fpCache.get(o);
  if (fp === undefined) {
    fp = 'rules' in o ? chainFingerprint(o) : setFingerprint(o);
    fpCache.set(o, fp);
  }
  return fp;
}
const elementIds = new WeakMap<OwnerObjects, Set<string>>();
function elementIdsOf(o: OwnerObjects): Set<string> {
  let ids = elementIds.get(o);
  if (!ids) elementIds.set(o, (ids = new Set(o.elements.map(elementId))));
  return ids;
}

/**
 * Renders one family's table and turns each sync into the transactions that
 * take the kernel from what was applied to what is wanted. Use one per
 * family. After a failed transaction, commit the ones that succeeded and
 * plan again: the diff starts from what really was applied. When the kernel
 * may have changed behind our back (a restart finding the table, a flush by
 * someone else), call reset(): the next plan deletes and recreates the table
 * in its first transaction.
 */
export class NFTablesRenderer {
  readonly state = new NFTablesState();
  private readonly cache = new Map<string, CachedPort>();
  private resetPending = false;
  private baseCache: { signature: string; objects: OwnerObjects } | undefined;

  constructor(private readonly options: NFTablesOptions) {}

  get family(): Family {
    return this.options.family;
  }

  /** Forget the applied state; the next plan starts by deleting and recreating the table. */
  reset(): void {
    this.state.clear();
    this.resetPending = true;
  }

  /**
   * Takes over a table an earlier run left (listed once, at startup or after
   * failures): its chains, sets and elements are recorded as nobody's, so
   * the next plan rewrites every wanted chain (flush, then its rules) and
   * every wanted element inside that service port's own transaction, keeps
   * the sets and maps of the same name and kind (their elements stay, so the
   * services not yet rewritten keep working), and deletes what nobody wants
   * at the end. Nothing is flushed wholesale and the table is not recreated:
   * each service keeps its old rules until the transaction with its new
   * ones lands, and the plan is chunked like a cold start.
   */
  adopt(t: NftTableInfo): void {
    this.state.clear();
    this.resetPending = false;
    this.cache.clear();
    this.baseCache = undefined;
    const state = this.state;
    state.table = true;
    const chains: NftChainObject[] = [];
    const sets: NftSetObject[] = [];
    const elements: NftElementObject[] = [];
    for (const c of t.chains) {
      const obj: NftChainObject = { name: c.name, rules: [], salt: ADOPTED_OWNER };
      chains.push(obj);
      state.chains.set(c.name, { obj, owner: ADOPTED_OWNER });
    }
    for (const info of t.sets) {
      const kind = info.kind ?? 'set';
      const obj: NftSetObject = { kind, name: info.name, type: `${info.keyType ?? ''}${info.valueType !== undefined ? ` : ${info.valueType}` : ''}`, ...(info.timeout !== undefined ? { timeout: info.timeout } : {}), comment: ADOPTED_OWNER };
      sets.push(obj);
      state.sets.set(info.name, { obj, owner: ADOPTED_OWNER });
      // An affinity set's elements are the kernel's (learnt from traffic), not ours.
      if (isAffinitySetName(info.name)) continue;
      for (const e of info.elements ?? []) {
        const el: NftElementObject = { set: info.name, key: e.key.split(' . ').map(canonicalKeyPart), value: ADOPTED_OWNER };
        elements.push(el);
        state.elements.set(elementId(el), { obj: el, owner: ADOPTED_OWNER });
      }
    }
    state.owners.set(ADOPTED_OWNER, { sets, chains, elements });
  }

  /** Records that the transaction was applied. Commit in plan order. */
  commit(t: NFTablesTransaction): void {
    for (const op of t.ops) this.state.apply(op);
    this.resetPending = false;
  }

  /** Commits every transaction of the plan (after all of them succeeded). */
  commitAll(plan: NFTablesPlan): void {
    for (const t of plan.transactions) this.commit(t);
  }

  /** The desired objects of every service port (cached per unchanged port). */
  private portObjects(input: NFTablesInput, o: Resolved): ServicePortObjects[] {
    const out: ServicePortObjects[] = [];
    for (const [key, sp] of input.services) {
      const eps = input.endpoints.get(key);
      let c = this.cache.get(key);
      if (!c || c.sp !== sp || c.endpoints !== eps || c.signature !== o.signature) {
        c = { sp, endpoints: eps, signature: o.signature, objects: renderServicePortObjects(key, sp, eps ?? [], o) };
        this.cache.set(key, c);
      }
      out.push(c.objects);
    }
    if (this.cache.size > out.length) for (const k of this.cache.keys()) if (!input.services.has(k)) this.cache.delete(k);
    return out;
  }

  private base(o: Resolved): OwnerObjects {
    const signature = JSON.stringify([o.signature, o.mark, o.serviceCIDRs, o.npa.matchAll, o.npa.ips.map(String)]);
    if (this.baseCache?.signature !== signature) this.baseCache = { signature, objects: baseObjects(o) };
    return this.baseCache.objects;
  }

  plan(input: NFTablesInput): NFTablesPlan {
    const o = resolve(this.options);
    const state = this.state;
    const L = new Lines();
    const tableRef: NftTableRef = { family: o.nftFamily, name: KUBE_PROXY_TABLE };
    const ports = this.portObjects(input, o);

    const desired = new Map<string, OwnerObjects>([[BASE_OWNER, this.base(o)]]);
    let noLocalInternal = 0;
    let noLocalExternal = 0;
    for (const p of ports) {
      // Two ports with one key cannot both exist (the trackers key ports uniquely).
      desired.set(p.key, p);
      if (p.noLocalInternal) noLocalInternal++;
      if (p.noLocalExternal) noLocalExternal++;
    }

    interface Change {
      readonly owner: string;
      readonly before: OwnerObjects | undefined;
      readonly after: OwnerObjects | undefined;
      readonly unit: Unit;
    }
    const changes: Change[] = [];
    const change = (owner: string, before: OwnerObjects | undefined, after: OwnerObjects | undefined): void => {
      changes.push({ owner, before, after, unit: { lines: [], ops: [], ports: owner === BASE_OWNER ? [] : [owner] } });
    };
    let added = 0;
    for (const [owner, after] of desired) {
      const before = state.owners.get(owner);
      if (before === undefined) added++;
      if (before !== after) change(owner, before, after);
    }
    // Some applied owner is no longer wanted exactly when the counts say so.
    if (state.owners.size > desired.size - added) {
      for (const [owner, before] of state.owners) if (!desired.has(owner)) change(owner, before, undefined);
    }

    const changing = new Set(changes.map((c) => c.owner));
    const parent = new Map<string, string>();
    const find = (x: string): string => {
      const p = parent.get(x);
      if (p === undefined || p === x) return x;
      const root = find(p);
      parent.set(x, root);
      return root;
    };
    const union = (a: string, b: string): void => {
      const ra = find(a);
      const rb = find(b);
      if (ra !== rb) parent.set(rb, ra);
    };
    const staleChains: string[] = [];
    const staleSets: NftSetObject[] = [];
    // New chains are created, empty, in transactions of their own before any rule or
    // element: nft then refers to them by name, not by the batch-local id that the
    // kernel resolves with a walk of the whole batch (quadratic in one big
    // transaction), and `add chain` alone costs nft no cache load. An empty chain
    // nothing points at changes no packet's path.
    const precreate: NftCommand[] = [];
    const precreateOps: Op[] = [];
    /** Element ids written by this plan, with the owner that writes them. */
    const claimed = new Map<string, string>();
    /** Chains and sets ("chain NAME", "set NAME") some wanted owner has. */
    const claimedNames = new Set<string>();

    // Pass 1: what each changed owner creates or rewrites, in an order nft accepts:
    // flush rewritten chains (releasing what they used), sets, new chains, rules, elements.
    for (const ch of changes) {
      const { owner, after, unit } = ch;
      if (!after) continue;
      const creates: NftCommand[] = [];
      const flushes: NftCommand[] = [];
      const sets: NftCommand[] = [];
      const rules: NftCommand[] = [];
      const elems: NftCommand[] = [];
      for (const s of after.sets) {
        const have = state.sets.get(s.name);
        claimedNames.add(`set ${s.name}`);
        if (have && (have.obj === s || fingerprint(have.obj) === fingerprint(s))) continue;
        if (have?.owner === ADOPTED_OWNER && have.obj.kind === s.kind && have.obj.timeout === s.timeout) {
          // Taken over as it is: recreating it would drop the elements other services still use.
          unit.ops.push({ t: 'set', name: s.name, v: { obj: s, owner } });
          continue;
        }
        // A changed set (another timeout) is recreated; the chains using it are rewritten too (salt).
        if (have) sets.push(L.deleteSet(have.obj));
        sets.push(L.addSet(s));
        unit.ops.push({ t: 'set', name: s.name, v: { obj: s, owner } });
      }
      for (const c of after.chains) {
        const have = state.chains.get(c.name);
        claimedNames.add(`chain ${c.name}`);
        if (have && (have.obj === c || fingerprint(have.obj) === fingerprint(c))) continue;
        if (have) flushes.push(L.flushChain(c.name));
        else if (!o.precreate) creates.push(L.addChain(c));
        else {
          // Created empty ahead of time (see precreate below), unreferenced until this unit lands.
          precreate.push(L.addChain(c));
          precreateOps.push({ t: 'chain', name: c.name, v: { obj: emptyChain(c), owner } });
        }
        for (const r of c.rules) rules.push(L.addRule(c.name, r));
        unit.ops.push({ t: 'chain', name: c.name, v: { obj: c, owner } });
      }
      for (const e of after.elements) {
        const id = elementId(e);
        const have = state.elements.get(id);
        const other = claimed.get(id);
        if (other !== undefined && other !== owner) continue;
        if (have && have.owner !== owner) {
          // Another port holds this key (externalIPs shared by two services): the
          // holder keeps it while it still wants it, as the first one written wins.
          const holder = desired.get(have.owner);
          if (holder && elementIdsOf(holder).has(id)) continue;
        }
        claimed.set(id, owner);
        // Taken over from a port that changes too (an external IP moving between
        // services): both go in one transaction, or the address would for a moment
        // lead to neither service, or to one in its new form with the old address.
        if (have && have.owner !== owner && have.owner !== ADOPTED_OWNER && changing.has(have.owner)) union(have.owner, owner);
        if (have && (have.obj === e || elementFingerprint(have.obj) === elementFingerprint(e))) {
          if (have.owner !== owner) unit.ops.push({ t: 'elem', id, v: { obj: e, owner } });
          continue;
        }
        // A new value (or comment) for an existing key: nft refuses `add`, so delete first.
        if (have) elems.push(L.deleteElement(have.obj));
        elems.push(L.addElement(e));
        unit.ops.push({ t: 'elem', id, v: { obj: e, owner } });
      }
      unit.lines.push(...creates, ...flushes, ...sets, ...rules, ...elems);
    }

    // Pass 2: what each changed owner no longer wants. Elements go in the owner's own
    // unit; chains and sets at the very end, when nothing points at them any more.
    for (const ch of changes) {
      const { owner, before, after, unit } = ch;
      if (before) {
        const keep = after ? elementIdsOf(after) : undefined;
        for (const e of before.elements) {
          const id = elementId(e);
          if (keep?.has(id) || claimed.has(id)) continue;
          const have = state.elements.get(id);
          if (!have || have.owner !== owner) continue;
          if (owner === ADOPTED_OWNER && !claimedNames.has(`set ${e.set}`)) {
            // Its set goes as a whole (stale): nothing to delete one by one.
            unit.ops.push({ t: 'elem', id, v: undefined });
            continue;
          }
          unit.lines.push(L.deleteElement(have.obj));
          unit.ops.push({ t: 'elem', id, v: undefined });
        }
        const keepChains = new Set(after?.chains.map((c) => c.name));
        for (const c of before.chains) if (!keepChains.has(c.name) && !claimedNames.has(`chain ${c.name}`) && state.chains.get(c.name)?.owner === owner) staleChains.push(c.name);
        const keepSets = new Set(after?.sets.map((s) => s.name));
        for (const s of before.sets) if (!keepSets.has(s.name) && !claimedNames.has(`set ${s.name}`) && state.sets.get(s.name)?.owner === owner) staleSets.push(s);
      }
      unit.ops.push({ t: 'owner', owner, v: after });
    }

    const units: Unit[] = [];
    const building = this.resetPending || !state.table;
    if (building) {
      const add: NftCommand = { op: 'add-table', comment: 'rules for kube-proxy' };
      // After a reset the table may hold anything: start from an empty one.
      const lines: NftCommand[] = this.resetPending ? [add, { op: 'delete-table' }, add] : [add];
      units.push({ lines, ops: [{ t: 'table' }], ports: [] });
    }
    for (let i = 0; i < precreate.length; i += o.maxChainLines) {
      // Any cut is safe here: each line is one independent empty chain.
      units.push({ lines: precreate.slice(i, i + o.maxChainLines), ops: precreateOps.slice(i, i + o.maxChainLines), ports: [], alone: true });
    }
    // Coupled owners share one unit, placed where the first of them was.
    const merged = new Map<string, Unit>();
    let baseTail: Unit | undefined;
    for (const ch of changes) {
      const root = find(ch.owner);
      const into = merged.get(root);
      if (building && ch.owner === BASE_OWNER && find(BASE_OWNER) === BASE_OWNER) {
        // Building a table: the base sets and maps come first (the services' elements
        // go into them), the base chains' rules last. Until those rules land no hook
        // leads anywhere, so no packet sees a service before the whole table is there,
        // and the kernel, which validates every chain reachable from a hook after each
        // batch with a jump in it, has nothing to walk until then.
        // (New chains go first too, empty: the services' rules jump to mark-for-masquerade and reject-chain.)
        const isSetCmd = (c: NftCommand): boolean => c.op === 'add-set' || c.op === 'delete-set' || c.op === 'add-element' || c.op === 'delete-element' || c.op === 'add-chain';
        const isSetOp = (op: Op): boolean => op.t === 'set' || op.t === 'elem';
        units.push({ lines: ch.unit.lines.filter(isSetCmd), ops: ch.unit.ops.filter(isSetOp), ports: [] });
        baseTail = { lines: ch.unit.lines.filter((c) => !isSetCmd(c)), ops: ch.unit.ops.filter((op) => !isSetOp(op)), ports: [] };
        merged.set(root, baseTail);
        continue;
      }
      if (!into) {
        merged.set(root, ch.unit);
        units.push(ch.unit);
      } else {
        into.lines.push(...ch.unit.lines);
        into.ops.push(...ch.unit.ops);
        into.ports.push(...ch.unit.ports);
      }
    }
    if (baseTail) units.push(baseTail);
    if (staleChains.length > 0 || staleSets.length > 0) {
      // Flush every stale chain before deleting any: stale chains jump to each other.
      const lines = [...staleChains.map((c) => L.flushChain(c)), ...staleChains.map((c) => L.deleteChain(c)), ...staleSets.map((s) => L.deleteSet(s))];
      const ops: Op[] = [...staleChains.map((name): Op => ({ t: 'chain', name, v: undefined })), ...staleSets.map((s): Op => ({ t: 'set', name: s.name, v: undefined }))];
      units.push({ lines, ops, ports: [] });
    }
    const changed = changes.filter((c) => c.owner !== BASE_OWNER).length;
    return {
      transactions: pack(tableRef, units, o.maxLines),
      family: o.family,
      servicePorts: ports.length,
      servicePortsChanged: changed,
      noLocalEndpointsInternal: noLocalInternal,
      noLocalEndpointsExternal: noLocalExternal,
    };
  }

  /** The applied state as knftables' Fake.Dump() writes a table: `add` lines, for goldens. */
  dump(): string {
    return dumpState(this.state, this.options.family === 6 ? 'ip6' : 'ip');
  }
}

/** Packs units into transactions of at most maxLines lines, never splitting a unit. */
function pack(table: NftTableRef, units: readonly Unit[], maxLines: number): NFTablesTransaction[] {
  const out: NFTablesTransaction[] = [];
  let texts: NftCommand[] = [];
  let lines = 0;
  let ops: Op[] = [];
  let ports: string[] = [];
  const flush = (): void => {
    if (lines === 0 && ops.length === 0) return;
    // A unit with ops but no lines (a port whose elements another port holds)
    // still has to be committed: it rides along, possibly with an empty text.
    out.push(transaction(table, texts, ops, ports));
    texts = [];
    lines = 0;
    ops = [];
    ports = [];
  };
  let alone = false;
  for (const u of units) {
    const n = u.lines.length;
    if (lines > 0 && (lines + n > maxLines || alone || u.alone === true)) flush();
    alone = u.alone === true;
    for (const c of u.lines) texts.push(c);
    lines += n;
    for (const op of u.ops) ops.push(op);
    for (const p of u.ports) ports.push(p);
  }
  flush();
  return out;
}

function transaction(table: NftTableRef, commands: NftCommand[], ops: Op[], servicePorts: string[]): NFTablesTransaction {
  let text: string | undefined;
  return {
    table,
    commands,
    lines: commands.length,
    ops,
    servicePorts,
    get text(): string {
      return (text ??= commandsText(table, commands));
    },
  };
}

function dumpState(state: NFTablesState, family: NftFamily): string {
  const table = KUBE_PROXY_TABLE;
  const t = new NftTransaction();
  if (!state.table) return '';
  t.addTable({ family, name: table, comment: 'rules for kube-proxy' });
  for (const { obj: c } of state.chains.values()) {
    const spec: Parameters<NftTransaction['addChain']>[0] = { family, table, name: c.name };
    if (c.type !== undefined) Object.assign(spec, { type: c.type, hook: c.hook, priority: c.priority });
    if (c.comment !== undefined) spec.comment = c.comment;
    t.addChain(spec);
  }
  for (const { obj: s } of state.sets.values()) {
    const spec: Parameters<NftTransaction['addSet']>[0] = { family, table, name: s.name, type: s.type };
    if (s.flags) spec.flags = s.flags;
    if (s.timeout !== undefined) spec.timeout = s.timeout;
    if (s.comment !== undefined) spec.comment = s.comment;
    if (s.kind === 'map') t.addMap(spec);
    else t.addSet(spec);
  }
  for (const { obj: c } of state.chains.values()) {
    for (const r of c.rules) t.addRule({ family, table, chain: c.name, rule: r.rule, ...(r.comment !== undefined ? { comment: r.comment } : {}) });
  }
  for (const { obj: e } of state.elements.values()) {
    const spec: Parameters<NftTransaction['addElement']>[0] = { family, table, set: e.set, key: e.key };
    if (e.value !== undefined) spec.value = e.value;
    if (e.comment !== undefined) spec.comment = e.comment;
    t.addElement(spec);
  }
  return t.render();
}

const OBJECT_ORDER: Record<string, number> = { table: 10, chain: 9, rule: 8, set: 7, map: 6, element: 5 };

/**
 * upstream's sortNFTablesTransaction (pkg/proxy/nftables/helpers_test.go):
 * drops blank and `#` lines, then orders by object type, then object name;
 * rules keep their order within a chain, other lines sort by text.
 */
export function sortNFTablesTransaction(tx: string): string {
  const lines = tx.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  const words = new Map(lines.map((l) => [l, l.split(' ')]));
  const cmp = (li: string, lj: string): number => {
    const wi = words.get(li)!;
    const wj = words.get(lj)!;
    if (wi.length < 5 || wj.length < 5) return 0;
    if (wi[1] !== wj[1]) return (OBJECT_ORDER[wj[1]!] ?? 0) - (OBJECT_ORDER[wi[1]!] ?? 0);
    if (wi[4] !== wj[4]) return wi[4]! < wj[4]! ? -1 : 1;
    if (wi[1] === 'rule') return 0;
    return li < lj ? -1 : li > lj ? 1 : 0;
  };
  // Array.prototype.sort is stable, as Go's sort.SliceStable.
  return lines.sort(cmp).join('\n');
}
