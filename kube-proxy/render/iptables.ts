// The iptables-restore input of one family, exactly as upstream's
// syncProxyRules writes it (k/k pkg/proxy/iptables/proxier.go): the filter
// and nat tables, top-level chains always, per-service chains for every
// service on a full sync and only for the changed services on a partial sync
// (KEP-3453), plus `-X` for stale service chains. Pure: no kernel, no clock.
//
// Lines are pushed to arrays and joined once per service port, and those
// blocks once per sync. Chain names (SHA-256 hashes) and address strings are
// cached per model object, and each service port's top-level rules between
// syncs (see IPTablesRenderer), so a partial sync at 10,000 services renders
// only what changed.
import type { Family, IPAddr } from '../../lib/ip/index.ts';
import { categorizeEndpoints, type Topology } from '../tracker/categorize.ts';
import { usesClusterEndpoints, usesLocalEndpoints, externallyAccessible, type Endpoint, type EndpointsMap, type ServicePort, type ServicePortMap } from '../tracker/types.ts';
import { endpointChainName, isServiceChainName, masqueradeMark, Probabilities, servicePortChains, type ServicePortChains } from './names.ts';
import { allNodePortAddresses, isDetectorImplemented, noLocalDetector, type LocalDetector, type NodePortAddresses, type ProxyRenderOptions } from './options.ts';

export const KUBE_SERVICES = 'KUBE-SERVICES';
export const KUBE_EXTERNAL_SERVICES = 'KUBE-EXTERNAL-SERVICES';
export const KUBE_NODEPORTS = 'KUBE-NODEPORTS';
export const KUBE_POSTROUTING = 'KUBE-POSTROUTING';
export const KUBE_MARK_MASQ = 'KUBE-MARK-MASQ';
export const KUBE_FORWARD = 'KUBE-FORWARD';
export const KUBE_PROXY_FIREWALL = 'KUBE-PROXY-FIREWALL';
/** kubelet's chain of the same name; kube-proxy writes an identical rule (CVE-2020-8558). */
export const KUBE_FIREWALL = 'KUBE-FIREWALL';
export const KUBE_PROXY_CANARY = 'KUBE-PROXY-CANARY';

/** nfacct counter names (pkg/proxy/metrics). */
export const NFACCT_CT_STATE_INVALID = 'ct_state_invalid_dropped_pkts';
export const NFACCT_LOCALHOST_NODEPORTS = 'localhost_nps_accepted_pkts';

/** Above this many endpoints upstream leaves the comments off the SVC→SEP and SEP rules. */
export const LARGE_CLUSTER_ENDPOINTS_THRESHOLD = 1000;

export interface IPTablesOptions extends ProxyRenderOptions {
  /** --iptables-localhost-nodeports, default true (IPv4 only). */
  readonly localhostNodePorts?: boolean;
  /** MASQUERADE --random-fully (iptables ≥ 1.6.2), default false. */
  readonly randomFully?: boolean;
  /** Whether the nfacct counters exist (then the INVALID drop and localhost NodePort rules count into them). */
  readonly nfacct?: boolean;
  /** nf_conntrack_tcp_be_liberal is set: no INVALID drop rule. */
  readonly conntrackTCPLiberal?: boolean;
  readonly largeClusterEndpointsThreshold?: number;
}

export interface RenderInput {
  readonly services: ServicePortMap;
  readonly endpoints: EndpointsMap;
  /**
   * A partial sync: only the services ("ns/name") in this set get their
   * SVC/SVL/EXT/FW/SEP chains written; the others' chains are left as they
   * are in the kernel (not even declared, which would flush them).
   * Undefined: a full sync. After a failed restore the caller must ask for
   * a full sync (as upstream sets needFullSync); a partial sync under
   * changed options is turned into a full one here.
   */
  readonly updatedServices?: ReadonlySet<string> | undefined;
  /**
   * The nat chains that exist now (from iptables-save, or the caller's own
   * record: minus deletedChains, plus writtenChains after each successful
   * restore). Service chains among them that this sync does not use are
   * flushed and deleted. Undefined: no stale-chain cleanup this time (as
   * upstream in large-cluster mode between cleanups).
   */
  readonly existingNatChains?: ReadonlySet<string> | undefined;
  /**
   * Lines the apply layer adds around the rendered rules (the canary chains
   * and missing base-chain jumps of a full sync), joined into the text in
   * the same pass, so that the 30 MB text of 10,000 services is built once
   * and not copied again to splice them in.
   */
  readonly extra?: ExtraLines | undefined;
}

/** Each part "\n"-terminated (or empty). */
export interface ExtraLines {
  /** Before "*filter" (whole table sections, e.g. "*mangle … COMMIT"). */
  readonly head: string;
  /** Right after the "*filter" / "*nat" line, before the chain declarations. */
  readonly filterDecls: string;
  readonly natDecls: string;
  /** Right before each table's COMMIT. */
  readonly filterTail: string;
  readonly natTail: string;
}

export interface RenderResult {
  /** "*filter … COMMIT\n*nat … COMMIT\n", for `iptables-restore --noflush`. */
  readonly text: string;
  /** Whether every service's chains were written (asked for, or forced by a changed context). */
  readonly fullSync: boolean;
  /** Every service chain in use after this sync, written or not (a copy, made when read: O(chains)). */
  readonly activeNatChains: ReadonlySet<string>;
  /** Service chains declared (created or flushed, then filled) by this restore. */
  readonly writtenChains: readonly string[];
  /** Service chains this sync deletes. */
  readonly deletedChains: readonly string[];
  /** Rule counts for sync_proxy_rules_iptables_total / _last. */
  readonly filterRules: number;
  readonly natRulesTotal: number;
  readonly natRulesWritten: number;
  /** Services in the DROP state (sync_proxy_rules_no_local_endpoints_total). */
  readonly noLocalEndpointsInternal: number;
  readonly noLocalEndpointsExternal: number;
  readonly largeClusterMode: boolean;
}

interface Resolved {
  readonly family: Family;
  readonly topo: Topology;
  readonly nodeIP: IPAddr | undefined;
  readonly npa: NodePortAddresses;
  readonly detector: LocalDetector;
  readonly masqueradeAll: boolean;
  readonly mark: string;
  readonly localhostNodePorts: boolean;
  readonly randomFully: boolean;
  readonly nfacct: boolean;
  readonly conntrackTCPLiberal: boolean;
  readonly largeClusterThreshold: number;
}

function resolve(o: IPTablesOptions): Resolved {
  return {
    family: o.family,
    topo: { nodeName: o.nodeName ?? '', zone: o.zone ?? '' },
    nodeIP: o.nodeIP,
    npa: o.nodePortAddresses ?? allNodePortAddresses(o.family),
    detector: o.localDetector ?? noLocalDetector,
    masqueradeAll: o.masqueradeAll ?? false,
    mark: o.masqueradeMark ?? masqueradeMark(o.masqueradeBit ?? 14),
    localhostNodePorts: o.localhostNodePorts ?? true,
    randomFully: o.randomFully ?? false,
    nfacct: o.nfacct ?? false,
    conntrackTCPLiberal: o.conntrackTCPLiberal ?? false,
    largeClusterThreshold: o.largeClusterEndpointsThreshold ?? LARGE_CLUSTER_ENDPOINTS_THRESHOLD,
  };
}

/** The per-service-port strings, computed once per ServicePort object. */
interface PortInfo {
  readonly chains: ServicePortChains;
  readonly proto: string;
  /** "-m tcp -p tcp" */
  readonly match: string;
  readonly clusterIP: string;
  readonly port: string;
  readonly externalIPs: readonly string[];
  readonly lbIPs: readonly string[];
  readonly sourceRanges: readonly string[];
  readonly serviceKey: string;
}

const portInfos = new WeakMap<ServicePort, PortInfo>();
const endpointChains = new WeakMap<Endpoint, string>();

function portInfo(sp: ServicePort): PortInfo {
  let info = portInfos.get(sp);
  if (!info) {
    const proto = sp.protocol.toLowerCase();
    info = {
      chains: servicePortChains(sp.nameString, proto),
      proto,
      match: `-m ${proto} -p ${proto}`,
      clusterIP: sp.clusterIP.toString(),
      port: String(sp.port),
      externalIPs: sp.externalIPs.map(String),
      lbIPs: sp.loadBalancerVIPs.map(String),
      sourceRanges: sp.loadBalancerSourceRanges.map(String),
      serviceKey: `${sp.name.namespace}/${sp.name.name}`,
    };
    portInfos.set(sp, info);
  }
  return info;
}

/** Endpoint objects belong to exactly one service port, so the chain name can be cached on them. */
function endpointChain(sp: ServicePort, proto: string, ep: Endpoint): string {
  let name = endpointChains.get(ep);
  if (name === undefined) {
    name = endpointChainName(sp.nameString, proto, ep.endpoint);
    endpointChains.set(ep, name);
  }
  return name;
}

const chainLine = (chain: string): string => `:${chain} - [0:0]`;
const join = (args: readonly string[]): string => args.join(' ');
const block = (lines: readonly string[]): string => (lines.length === 0 ? '' : `${lines.join('\n')}\n`);

const probabilities = new Probabilities();

/** Everything that shapes a service's lines besides the service and its endpoints. */
interface Context {
  readonly o: Resolved;
  readonly largeClusterMode: boolean;
  readonly localhostNodePortRule: boolean;
  readonly detectorImplemented: boolean;
  readonly ifLocal: string;
  readonly ifNotLocal: string;
  /** Identity of all of the above, for the block cache. */
  readonly signature: string;
}

/**
 * One service port's share of the restore text, each part joined once
 * (flat strings, "\n"-terminated): its filter rules, its rules in the
 * top-level nat chains (written on every sync), and its own chains'
 * declarations and rules (written on full syncs and when it changed).
 */
interface ServiceBlock {
  readonly filter: string;
  readonly filterRules: number;
  readonly topNat: string;
  readonly topNatRules: number;
  readonly chainDecls: string;
  readonly chainNat: string;
  readonly chainNatRules: number;
  /** The service chains it uses (active even when not rewritten). */
  readonly chains: readonly string[];
  readonly noLocalInternal: boolean;
  readonly noLocalExternal: boolean;
}

/** One iteration of syncProxyRules' service loop, in upstream's rule order. */
function renderServicePort(sp: ServicePort, endpoints: readonly Endpoint[], ctx: Context): ServiceBlock {
  const { o, largeClusterMode } = ctx;
  const info = portInfo(sp);
  const { chains, match, clusterIP, port } = info;
  const name = sp.nameString;
  const cat = categorizeEndpoints(endpoints, sp, o.topo);
  const hasEndpoints = cat.hasAnyEndpoints;
  const filterRules: string[] = [];
  const topNat: string[] = [];
  const decls: string[] = [];
  const rules: string[] = [];
  const used: string[] = [];

  const clusterPolicyChain = chains.cluster;
  const usesClusterPolicyChain = cat.clusterEndpoints.length > 0 && usesClusterEndpoints(sp);
  const localPolicyChain = chains.local;
  const usesLocalPolicyChain = cat.localEndpoints.length > 0 && usesLocalEndpoints(sp);

  let internalTrafficChain = clusterPolicyChain;
  let hasInternalEndpoints = hasEndpoints;
  if (sp.internalPolicyLocal) {
    internalTrafficChain = localPolicyChain;
    if (cat.localEndpoints.length === 0) hasInternalEndpoints = false;
  }
  let externalPolicyChain = clusterPolicyChain;
  let hasExternalEndpoints = hasEndpoints;
  if (sp.externalPolicyLocal) {
    externalPolicyChain = localPolicyChain;
    if (cat.localEndpoints.length === 0) hasExternalEndpoints = false;
  }
  const externalTrafficChain = chains.external;
  // Based on hasEndpoints, not hasExternalEndpoints: the short-circuit rules for
  // pod and node traffic are needed even when no local endpoint exists.
  const usesExternalTrafficChain = hasEndpoints && externallyAccessible(sp);
  const usesFWChain = hasEndpoints && info.lbIPs.length > 0 && info.sourceRanges.length > 0;
  const loadBalancerTrafficChain = usesFWChain ? chains.firewall : externalTrafficChain;

  let internalFilterTarget = '';
  let internalFilterComment = '';
  let externalFilterTarget = '';
  let externalFilterComment = '';
  let noLocalInternal = false;
  let noLocalExternal = false;
  if (!hasEndpoints) {
    internalFilterTarget = externalFilterTarget = 'REJECT';
    internalFilterComment = externalFilterComment = `"${name} has no endpoints"`;
  } else {
    if (!hasInternalEndpoints) {
      internalFilterTarget = 'DROP';
      internalFilterComment = `"${name} has no local endpoints"`;
      noLocalInternal = true;
    }
    if (!hasExternalEndpoints) {
      externalFilterTarget = 'DROP';
      externalFilterComment = `"${name} has no local endpoints"`;
      noLocalExternal = true;
    }
  }

  // Top-level chains: always written.
  if (hasInternalEndpoints) {
    topNat.push(`-A ${KUBE_SERVICES} -m comment --comment "${name} cluster IP" ${match} -d ${clusterIP} --dport ${port} -j ${internalTrafficChain}`);
  } else {
    filterRules.push(`-A ${KUBE_SERVICES} -m comment --comment ${internalFilterComment} ${match} -d ${clusterIP} --dport ${port} -j ${internalFilterTarget}`);
  }
  for (const ip of info.externalIPs) {
    if (hasEndpoints) {
      topNat.push(`-A ${KUBE_SERVICES} -m comment --comment "${name} external IP" ${match} -d ${ip} --dport ${port} -j ${externalTrafficChain}`);
    }
    if (!hasExternalEndpoints) {
      filterRules.push(`-A ${KUBE_EXTERNAL_SERVICES} -m comment --comment ${externalFilterComment} ${match} -d ${ip} --dport ${port} -j ${externalFilterTarget}`);
    }
  }
  for (const ip of info.lbIPs) {
    if (hasEndpoints) {
      topNat.push(`-A ${KUBE_SERVICES} -m comment --comment "${name} loadbalancer IP" ${match} -d ${ip} --dport ${port} -j ${loadBalancerTrafficChain}`);
    }
    if (usesFWChain) {
      filterRules.push(`-A ${KUBE_PROXY_FIREWALL} -m comment --comment "${name} traffic not accepted by ${chains.firewall}" ${match} -d ${ip} --dport ${port} -j DROP`);
    }
  }
  if (!hasExternalEndpoints) {
    for (const ip of info.lbIPs) {
      filterRules.push(`-A ${KUBE_EXTERNAL_SERVICES} -m comment --comment ${externalFilterComment} ${match} -d ${ip} --dport ${port} -j ${externalFilterTarget}`);
    }
  }
  if (sp.nodePort !== 0) {
    const np = String(sp.nodePort);
    if (hasEndpoints) {
      // NodePorts are deliberately not subject to loadBalancerSourceRanges (k/k#33586).
      if (ctx.localhostNodePortRule) {
        topNat.push(
          `-A ${KUBE_NODEPORTS} -m comment --comment ${name} ${match} -d 127.0.0.0/8 --dport ${np} -m nfacct --nfacct-name ${NFACCT_LOCALHOST_NODEPORTS} -j ${externalTrafficChain}`,
        );
      }
      topNat.push(`-A ${KUBE_NODEPORTS} -m comment --comment ${name} ${match} --dport ${np} -j ${externalTrafficChain}`);
    }
    if (!hasExternalEndpoints) {
      filterRules.push(
        `-A ${KUBE_EXTERNAL_SERVICES} -m comment --comment ${externalFilterComment} -m addrtype --dst-type LOCAL ${match} --dport ${np} -j ${externalFilterTarget}`,
      );
    }
  }
  if (sp.healthCheckNodePort !== 0) {
    // Accepted whether or not there are local endpoints: the probe must get through an INPUT DROP policy.
    filterRules.push(`-A ${KUBE_NODEPORTS} -m comment --comment "${name} health check node port" -m tcp -p tcp --dport ${sp.healthCheckNodePort} -j ACCEPT`);
  }

  // The service's own chains (skipped, but still active, for unchanged services of a partial sync).
  if (hasInternalEndpoints) {
    const args = `-m comment --comment "${name} cluster IP" ${match} -d ${clusterIP} --dport ${port}`;
    if (o.masqueradeAll) {
      rules.push(`-A ${internalTrafficChain} ${args} -j ${KUBE_MARK_MASQ}`);
    } else if (ctx.detectorImplemented) {
      // Off-cluster traffic to a service VIP (a static route to any node) may bounce off-node: masquerade it.
      rules.push(`-A ${internalTrafficChain} ${args} ${ctx.ifNotLocal} -j ${KUBE_MARK_MASQ}`);
    }
  }

  if (usesExternalTrafficChain) {
    decls.push(chainLine(externalTrafficChain));
    used.push(externalTrafficChain);
    if (!sp.externalPolicyLocal) {
      // Non-local endpoints may be on another node: masquerade so replies come back here.
      rules.push(`-A ${externalTrafficChain} -m comment --comment "masquerade traffic for ${name} external destinations" -j ${KUBE_MARK_MASQ}`);
    } else {
      if (ctx.detectorImplemented) {
        // Pod → external destination acts as if it went out to the LB and back: neither policy applies.
        rules.push(`-A ${externalTrafficChain} -m comment --comment "pod traffic for ${name} external destinations" ${ctx.ifLocal} -j ${clusterPolicyChain}`);
      }
      // The node's own traffic picks the (local) external IP as source: masquerade, and use the cluster chain.
      rules.push(
        `-A ${externalTrafficChain} -m comment --comment "masquerade LOCAL traffic for ${name} external destinations" -m addrtype --src-type LOCAL -j ${KUBE_MARK_MASQ}`,
      );
      rules.push(
        `-A ${externalTrafficChain} -m comment --comment "route LOCAL traffic for ${name} external destinations" -m addrtype --src-type LOCAL -j ${clusterPolicyChain}`,
      );
    }
    if (hasExternalEndpoints) rules.push(`-A ${externalTrafficChain} -j ${externalPolicyChain}`);
  }

  if (usesFWChain) {
    const fw = chains.firewall;
    decls.push(chainLine(fw));
    used.push(fw);
    const args = `-A ${fw} -m comment --comment "${name} loadbalancer IP"`;
    let allowFromNode = false;
    sp.loadBalancerSourceRanges.forEach((cidr, i) => {
      rules.push(`${args} -s ${info.sourceRanges[i]} -j ${externalTrafficChain}`);
      if (o.nodeIP && cidr.contains(o.nodeIP)) allowFromNode = true;
    });
    // Node → VIP traffic loops back with the VIP as its source when the VIP is local.
    if (allowFromNode) for (const ip of info.lbIPs) rules.push(`${args} -s ${ip} -j ${externalTrafficChain}`);
    // Whatever reaches the end was not DNATed and is dropped by KUBE-PROXY-FIREWALL.
    rules.push(`-A ${fw} -m comment --comment "other traffic to ${name} will be dropped by KUBE-PROXY-FIREWALL"`);
  }

  if (usesClusterPolicyChain) {
    decls.push(chainLine(clusterPolicyChain));
    used.push(clusterPolicyChain);
    writeServiceToEndpointRules(rules, sp, info.proto, clusterPolicyChain, cat.clusterEndpoints, largeClusterMode);
  }
  if (usesLocalPolicyChain) {
    decls.push(chainLine(localPolicyChain));
    used.push(localPolicyChain);
    writeServiceToEndpointRules(rules, sp, info.proto, localPolicyChain, cat.localEndpoints, largeClusterMode);
  }

  const comment = largeClusterMode ? '' : ` -m comment --comment ${name}`;
  const affinity = sp.stickyMaxAgeSeconds !== undefined;
  for (const ep of cat.allReachableEndpoints) {
    const sep = endpointChain(sp, info.proto, ep);
    decls.push(chainLine(sep));
    used.push(sep);
    // Hairpin: a pod reaching itself through the service must be masqueraded.
    rules.push(`-A ${sep}${comment} -s ${ep.ip} -j ${KUBE_MARK_MASQ}`);
    const recent = affinity ? ` -m recent --name ${sep} --set` : '';
    rules.push(`-A ${sep}${comment}${recent} ${match} -j DNAT --to-destination ${ep.endpoint}`);
  }

  return {
    filter: block(filterRules),
    filterRules: filterRules.length,
    topNat: block(topNat),
    topNatRules: topNat.length,
    chainDecls: block(decls),
    chainNat: block(rules),
    chainNatRules: rules.length,
    chains: used,
    noLocalInternal,
    noLocalExternal,
  };
}

function context(o: Resolved, largeClusterMode: boolean): Context {
  const localhostNodePortRule = o.family === 4 && o.localhostNodePorts && o.npa.containsIPv4Loopback && o.nfacct;
  const ifLocal = join(o.detector.ifLocal);
  const ifNotLocal = join(o.detector.ifNotLocal);
  const signature = JSON.stringify([
    o.family,
    o.topo.nodeName,
    o.topo.zone,
    o.nodeIP?.toString() ?? '',
    o.masqueradeAll,
    ifLocal,
    ifNotLocal,
    localhostNodePortRule,
    largeClusterMode,
  ]);
  return { o, largeClusterMode, localhostNodePortRule, detectorImplemented: isDetectorImplemented(o.detector), ifLocal, ifNotLocal, signature };
}

interface CachedBlock {
  readonly sp: ServicePort;
  readonly endpoints: readonly Endpoint[] | undefined;
  readonly signature: string;
  /**
   * Its chain text (chainDecls, chainNat: 90% of the ruleset) is dropped
   * once written: a partial sync skips unchanged services and a changed one
   * is rendered again anyway, so only a full sync needs it again, and a
   * full sync (hourly) renders it again. That keeps ~30 MB off the heap at
   * 10,000 services × 10 endpoints.
   */
  block: ServiceBlock;
  chainTextDropped: boolean;
  /** The render that last saw this service port; older entries are gone from the input. */
  generation: number;
}

/**
 * Renders one family's rules, remembering each service port's block between
 * calls. The trackers replace a ServicePort object and its endpoint array
 * only when they change, so an identical (ServicePort, endpoints array,
 * context) triple reuses the block's top-level and filter rules (and its
 * chain text until that has been written once), and the set of active
 * chains is updated only for the blocks that changed. The output depends on the
 * inputs alone; the memory only makes it cheap. Use one renderer per family.
 */
export class IPTablesRenderer {
  private readonly blocks = new Map<string, CachedBlock>();
  private generation = 0;
  /** The context of the previous render: a partial sync is only sound under the same one. */
  private lastSignature: string | undefined;
  /** Service chains of all current blocks. */
  private readonly active = new Set<string>();

  render(input: RenderInput, options: IPTablesOptions): RenderResult {
    const o = resolve(options);
    const isIPv6 = o.family === 6;
    const mark = o.mark;
    const filterChains = [KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS, KUBE_PROXY_FIREWALL].map(chainLine);
    const filterHead: string[] = [];
    const natChains = [KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ].map(chainLine);
    const natHead = [
      `-A ${KUBE_POSTROUTING} -m mark ! --mark ${mark}/${mark} -j RETURN`,
      // Clear the mark so that a packet re-traversing the stack is not masqueraded twice.
      `-A ${KUBE_POSTROUTING} -j MARK --xor-mark ${mark}`,
      `-A ${KUBE_POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE${o.randomFully ? ' --random-fully' : ''}`,
      `-A ${KUBE_MARK_MASQ} -j MARK --or-mark ${mark}`,
    ];
    if (!isIPv6 && o.localhostNodePorts) {
      // route_localnet=1 lets martian 127/8 traffic in (k/k#90259); kubelet writes the same rule.
      filterChains.push(chainLine(KUBE_FIREWALL));
      filterHead.push(
        `-A ${KUBE_FIREWALL} -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`,
      );
    }

    let totalEndpoints = 0;
    for (const key of input.services.keys()) totalEndpoints += input.endpoints.get(key)?.length ?? 0;
    const largeClusterMode = totalEndpoints > o.largeClusterThreshold;
    const ctx = context(o, largeClusterMode);
    // Rules of unchanged services stay in the kernel as rendered under the previous
    // context (node IP, detector, comment mode…); if that changed, rewrite them all.
    const updatedServices = this.lastSignature === ctx.signature ? input.updatedServices : undefined;
    this.lastSignature = ctx.signature;

    // Per-service parts, in service order; joined once at the end.
    const filterParts: string[] = [];
    const declParts: string[] = [];
    const ruleParts: string[] = [];
    const writtenChains: string[] = [];
    let filterRules = filterHead.length;
    let natRules = natHead.length;
    let skippedNatRules = 0;
    let noLocalInternal = 0;
    let noLocalExternal = 0;
    const generation = ++this.generation;
    /** Chains that left the active set in this render (some may have come back). */
    const dropped: string[] = [];
    for (const [key, sp] of input.services) {
      const eps = input.endpoints.get(key);
      const before = this.blocks.get(key);
      const skip = updatedServices !== undefined && !updatedServices.has(portInfo(sp).serviceKey);
      let entry = before;
      if (!entry || entry.sp !== sp || entry.endpoints !== eps || entry.signature !== ctx.signature || (!skip && entry.chainTextDropped)) {
        entry = { sp, endpoints: eps, signature: ctx.signature, block: renderServicePort(sp, eps ?? [], ctx), chainTextDropped: false, generation };
        if (before) for (const c of before.block.chains) if (this.active.delete(c)) dropped.push(c);
        for (const c of entry.block.chains) this.active.add(c);
        this.blocks.set(key, entry);
      } else {
        entry.generation = generation;
      }
      const b = entry.block;
      if (b.filter !== '') filterParts.push(b.filter);
      filterRules += b.filterRules;
      ruleParts.push(b.topNat);
      natRules += b.topNatRules;
      if (b.noLocalInternal) noLocalInternal++;
      if (b.noLocalExternal) noLocalExternal++;
      if (skip) {
        // Counted as upstream counts its discarded lines, so the rule-total metric stays right.
        skippedNatRules += b.chainNatRules;
      } else {
        declParts.push(b.chainDecls);
        ruleParts.push(b.chainNat);
        natRules += b.chainNatRules;
        for (const c of b.chains) writtenChains.push(c);
        if (b.chainNat !== '' || b.chainDecls !== '') {
          entry.block = { ...b, chainDecls: '', chainNat: '' };
          entry.chainTextDropped = true;
        }
      }
    }
    if (this.blocks.size > input.services.size) {
      for (const [key, before] of this.blocks) {
        if (before.generation === generation) continue;
        for (const c of before.block.chains) if (this.active.delete(c)) dropped.push(c);
        this.blocks.delete(key);
      }
    }

    const deletedChains: string[] = [];
    const existing = input.existingNatChains;
    if (existing !== undefined) {
      // A full sync scans every existing chain, as upstream does on each sync. A
      // partial sync only looks at the chains this renderer stopped using: any
      // other stale chain was left by someone else (an earlier process) and goes
      // at the next full sync. That saves a 100,000-chain scan per sync at scale.
      const candidates = updatedServices === undefined ? existing : dropped;
      for (const chain of candidates) {
        if (!this.active.has(chain) && isServiceChainName(chain) && existing.has(chain)) deletedChains.push(chain);
      }
      deletedChains.sort();
    }
    const natTail = deletedChains.map((c) => `-X ${c}`);

    const lastComment = '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"';
    if (o.npa.matchAll) {
      // Localhost NodePorts never work on IPv6, and on IPv4 only with route_localnet.
      const notLocalhost = isIPv6 ? ' ! -d ::1/128' : o.localhostNodePorts ? '' : ' ! -d 127.0.0.0/8';
      natTail.push(`-A ${KUBE_SERVICES} ${lastComment} -m addrtype --dst-type LOCAL${notLocalhost} -j ${KUBE_NODEPORTS}`);
    } else {
      for (const ip of o.npa.ips) {
        if (ip.isLoopback() && (isIPv6 || !o.localhostNodePorts)) continue;
        natTail.push(`-A ${KUBE_SERVICES} ${lastComment} -d ${ip.toString()} -j ${KUBE_NODEPORTS}`);
      }
    }
    natRules += natTail.length;

    const filterTail: string[] = [];
    if (!o.conntrackTCPLiberal) {
      // INVALID packets would otherwise cause spurious RSTs (k/k#74839).
      const counter = o.nfacct ? ` -m nfacct --nfacct-name ${NFACCT_CT_STATE_INVALID}` : '';
      filterTail.push(`-A ${KUBE_FORWARD} -m conntrack --ctstate INVALID${counter} -j DROP`);
    }
    // Forward marked traffic even under a FORWARD DROP policy, and what follows from it.
    filterTail.push(`-A ${KUBE_FORWARD} -m comment --comment "kubernetes forwarding rules" -m mark --mark ${mark}/${mark} -j ACCEPT`);
    filterTail.push(`-A ${KUBE_FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
    filterRules += filterTail.length;

    const extra = input.extra;
    const text = [
      extra?.head ?? '',
      '*filter\n',
      extra?.filterDecls ?? '',
      block(filterChains),
      block(filterHead),
      ...filterParts,
      block(filterTail),
      extra?.filterTail ?? '',
      'COMMIT\n*nat\n',
      extra?.natDecls ?? '',
      block(natChains),
      ...declParts,
      block(deletedChains.map(chainLine)),
      block(natHead),
      ...ruleParts,
      block(natTail),
      extra?.natTail ?? '',
      'COMMIT\n',
    ].join('');
    const active = this.active;
    return {
      text,
      fullSync: updatedServices === undefined,
      get activeNatChains(): ReadonlySet<string> {
        return new Set(active);
      },
      writtenChains,
      deletedChains,
      filterRules,
      natRulesTotal: natRules + skippedNatRules - deletedChains.length,
      natRulesWritten: natRules - deletedChains.length,
      noLocalEndpointsInternal: noLocalInternal,
      noLocalEndpointsExternal: noLocalExternal,
      largeClusterMode,
    };
  }
}

const sharedRenderer = new IPTablesRenderer();

/**
 * The restore text for one family; see IPTablesRenderer. This shares one
 * renderer's memory between callers, which stays correct for any mix of
 * inputs but is only fast when one family's model is rendered repeatedly.
 */
export function renderIPTables(input: RenderInput, options: IPTablesOptions): RenderResult {
  return sharedRenderer.render(input, options);
}

/** Session-affinity checks first, then the probabilistic jumps (writeServiceToEndpointRules). */
function writeServiceToEndpointRules(
  rules: string[],
  sp: ServicePort,
  proto: string,
  chain: string,
  endpoints: readonly Endpoint[],
  largeClusterMode: boolean,
): void {
  const comment = (ep: Endpoint): string => (largeClusterMode ? '' : ` -m comment --comment "${sp.nameString} -> ${ep.endpoint}"`);
  if (sp.stickyMaxAgeSeconds !== undefined) {
    for (const ep of endpoints) {
      const sep = endpointChain(sp, proto, ep);
      rules.push(`-A ${chain}${comment(ep)} -m recent --name ${sep} --rcheck --seconds ${sp.stickyMaxAgeSeconds} --reap -j ${sep}`);
    }
  }
  const n = endpoints.length;
  endpoints.forEach((ep, i) => {
    const sep = endpointChain(sp, proto, ep);
    // Rule i of n matches with 1/(n-i), so each endpoint gets 1/n overall; the last one always matches.
    const stat = i < n - 1 ? ` -m statistic --mode random --probability ${probabilities.get(n - i)}` : '';
    rules.push(`-A ${chain}${comment(ep)}${stat} -j ${sep}`);
  });
}

/** The chain names of one table in iptables-save output (GetChainsFromTable), for existingNatChains. */
export function chainsFromSave(save: string, table: string): Set<string> {
  const out = new Set<string>();
  let inTable = false;
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) inTable = line.slice(1).trim() === table;
    else if (inTable && line.startsWith(':')) {
      const end = line.indexOf(' ');
      out.add(end === -1 ? line.slice(1) : line.slice(1, end));
    } else if (line.startsWith('COMMIT')) inTable = false;
  }
  return out;
}
