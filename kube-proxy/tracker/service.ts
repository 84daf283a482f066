// Services → ServicePorts, and the change tracker that folds Service events
// into the ServicePortMap at sync time (upstream pkg/proxy/serviceport.go,
// servicechangetracker.go, servicechangetracker's ServicePortMap.Update).
import type { V1Service, V1ServicePort } from '@kubernetes/client-node';
import { IPAddr, IPPrefix, type Family } from '../../lib/ip/index.ts';
import {
  PROTOCOLS,
  serviceKey,
  servicePortKey,
  servicePortNameString,
  type Issue,
  type IssueSink,
  type Protocol,
  type ServicePort,
  type ServicePortMap,
} from './types.ts';

/** The API default of sessionAffinityConfig.clientIP.timeoutSeconds (v1.DefaultClientIPServiceAffinitySeconds). */
export const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10800;
const MAX_AFFINITY_TIMEOUT_SECONDS = 86400;
/** Services carrying either label belong to another proxy (upstream filters them in the informer). */
export const LABEL_SERVICE_PROXY_NAME = 'service.kubernetes.io/service-proxy-name';
export const LABEL_HEADLESS = 'service.kubernetes.io/headless';

const noop: IssueSink = () => {};

/** Why a Service is not proxied at all although it is valid (ShouldSkipService and the informer selector). */
function ignoredService(svc: V1Service): boolean {
  const spec = svc.spec;
  const labels = svc.metadata?.labels ?? {};
  if (LABEL_SERVICE_PROXY_NAME in labels || LABEL_HEADLESS in labels) return true;
  if (!spec || spec.type === 'ExternalName') return true;
  const ip = spec.clusterIP ?? '';
  return ip === '' || ip === 'None';
}

/** GetClusterIPByFamily: the ClusterIP string of `family`, "" when the service has none. */
export function clusterIPForFamily(svc: V1Service, family: Family): string {
  const spec = svc.spec ?? {};
  const families = spec.ipFamilies ?? [];
  if (families.length === 0) {
    const ip = spec.clusterIP ?? '';
    if (ip === '' || ip === 'None') return '';
    // Go's netutils.IsIPv6String: an unparsable string counts as "not IPv6".
    const isV6 = IPAddr.parse(ip)?.family === 6;
    return isV6 === (family === 6) ? ip : '';
  }
  const want = family === 6 ? 'IPv6' : 'IPv4';
  const idx = families.indexOf(want);
  return idx >= 0 ? (spec.clusterIPs?.[idx] ?? '') : '';
}

class Invalid extends Error {}

function validPort(v: unknown, what: string, allowZero: boolean): number {
  if (v === undefined || v === null) {
    if (allowZero) return 0;
    throw new Invalid(`${what} is missing`);
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < (allowZero ? 0 : 1) || v > 65535) {
    throw new Invalid(`${what} ${String(v)} is out of range`);
  }
  return v;
}

function validProtocol(v: unknown, what: string): Protocol {
  // The API server defaults a missing protocol to TCP; manifests may leave it out.
  if (v === undefined || v === null) return 'TCP';
  if (typeof v === 'string' && (PROTOCOLS as readonly string[]).includes(v)) return v as Protocol;
  throw new Invalid(`${what}: unknown protocol ${JSON.stringify(v)}`);
}

/** Service-wide fields shared by all its ports (one pass per Service, not per port). */
interface Common {
  readonly family: Family;
  readonly clusterIP: IPAddr;
  readonly externalIPs: readonly IPAddr[];
  readonly loadBalancerVIPs: readonly IPAddr[];
  readonly loadBalancerSourceRanges: readonly IPPrefix[];
  readonly stickyMaxAgeSeconds: number | undefined;
  readonly externalPolicyLocal: boolean;
  readonly internalPolicyLocal: boolean;
  readonly healthCheckNodePort: number;
}

function commonFields(svc: V1Service, family: Family, cip: string, warn: (reason: string) => void): Common {
  const spec = svc.spec ?? {};
  const clusterIP = IPAddr.parse(cip);
  if (!clusterIP) throw new Invalid(`invalid clusterIP ${JSON.stringify(cip)}`);
  if (clusterIP.family !== family) throw new Invalid(`clusterIP ${cip} is not IPv${family}`);

  const type = spec.type ?? 'ClusterIP';
  const externalIPs: IPAddr[] = [];
  for (const s of spec.externalIPs ?? []) {
    const ip = IPAddr.parse(s);
    if (!ip) warn(`ignoring invalid externalIP ${JSON.stringify(s)}`);
    else if (ip.family === family) externalIPs.push(ip);
  }
  // ExternallyAccessible(service), which gates externalTrafficPolicy.
  const accessible = type === 'LoadBalancer' || type === 'NodePort' || (type === 'ClusterIP' && (spec.externalIPs?.length ?? 0) > 0);
  const externalPolicyLocal = accessible && spec.externalTrafficPolicy === 'Local';

  const loadBalancerVIPs: IPAddr[] = [];
  for (const ing of svc.status?.loadBalancer?.ingress ?? []) {
    if (!ing.ip) continue;
    // Proxy-mode load balancers deliver to the nodes themselves (KEP-1860): no rules for their IP.
    if (ing.ipMode === 'Proxy') continue;
    const ip = IPAddr.parse(ing.ip);
    if (!ip) warn(`ignoring invalid loadBalancer ingress IP ${JSON.stringify(ing.ip)}`);
    else if (ip.family === family) loadBalancerVIPs.push(ip);
  }

  const seen = new Set<string>();
  const loadBalancerSourceRanges: IPPrefix[] = [];
  for (const raw of spec.loadBalancerSourceRanges ?? []) {
    // Upstream trims whitespace for backward compatibility and stores the masked network.
    const p = IPPrefix.parse(raw.trim())?.masked();
    if (!p) warn(`ignoring invalid loadBalancerSourceRange ${JSON.stringify(raw)}`);
    else if (p.family === family && !seen.has(p.toString())) {
      seen.add(p.toString());
      loadBalancerSourceRanges.push(p);
    }
  }

  let stickyMaxAgeSeconds: number | undefined;
  if (spec.sessionAffinity === 'ClientIP') {
    const t = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_TIMEOUT_SECONDS;
    if (!Number.isInteger(t) || t < 1 || t > MAX_AFFINITY_TIMEOUT_SECONDS) {
      throw new Invalid(`sessionAffinityConfig.clientIP.timeoutSeconds ${t} is out of range`);
    }
    stickyMaxAgeSeconds = t;
  } else if (spec.sessionAffinity !== undefined && spec.sessionAffinity !== 'None') {
    throw new Invalid(`unknown sessionAffinity ${JSON.stringify(spec.sessionAffinity)}`);
  }

  let healthCheckNodePort = 0;
  // NeedsHealthCheck: only LoadBalancers with the Local external policy get one.
  if (type === 'LoadBalancer' && externalPolicyLocal) {
    healthCheckNodePort = validPort(spec.healthCheckNodePort, 'healthCheckNodePort', true);
    if (healthCheckNodePort === 0) warn('service has no healthCheckNodePort');
  }

  return {
    family,
    clusterIP,
    externalIPs,
    loadBalancerVIPs,
    loadBalancerSourceRanges,
    stickyMaxAgeSeconds,
    externalPolicyLocal,
    internalPolicyLocal: spec.internalTrafficPolicy === 'Local',
    healthCheckNodePort,
  };
}

function makeServicePort(namespace: string, name: string, p: V1ServicePort, c: Common, index: number): ServicePort {
  const what = `port ${JSON.stringify(p.name ?? '')} (#${index})`;
  const protocol = validProtocol(p.protocol, what);
  const port = validPort(p.port, `${what} port`, false);
  const nodePort = validPort(p.nodePort, `${what} nodePort`, true);
  const spn = { namespace, name, port: p.name ?? '', protocol };
  const base = {
    name: spn,
    nameString: servicePortNameString(spn),
    family: c.family,
    clusterIP: c.clusterIP,
    port,
    protocol,
    nodePort,
    externalIPs: c.externalIPs,
    loadBalancerVIPs: c.loadBalancerVIPs,
    loadBalancerSourceRanges: c.loadBalancerSourceRanges,
    stickyMaxAgeSeconds: c.stickyMaxAgeSeconds,
    externalPolicyLocal: c.externalPolicyLocal,
    internalPolicyLocal: c.internalPolicyLocal,
    healthCheckNodePort: c.healthCheckNodePort,
  };
  const signature = JSON.stringify([
    base.nameString,
    protocol,
    c.clusterIP.toString(),
    port,
    nodePort,
    c.externalIPs.map(String),
    c.loadBalancerVIPs.map(String),
    c.loadBalancerSourceRanges.map(String),
    c.stickyMaxAgeSeconds ?? null,
    c.externalPolicyLocal,
    c.internalPolicyLocal,
    c.healthCheckNodePort,
  ]);
  return { ...base, signature };
}

/**
 * The service ports of one Service for one family (upstream serviceToServiceMap).
 * Returns an empty map for a Service this family does not proxy (headless,
 * ExternalName, another family, another proxy's). An invalid Service is
 * reported through `report` and also yields an empty map: it is skipped whole,
 * never half-programmed.
 */
export function servicePortsOf(svc: V1Service, family: Family, report: IssueSink = noop): Map<string, ServicePort> {
  const out = new Map<string, ServicePort>();
  const namespace = svc.metadata?.namespace ?? '';
  const name = svc.metadata?.name ?? '';
  const issue = (reason: string, skipped: boolean): void => report({ kind: 'Service', namespace, name, reason, skipped });
  if (name === '' || namespace === '') {
    issue(name === '' ? 'metadata.name is missing' : 'metadata.namespace is missing', true);
    return out;
  }
  if (ignoredService(svc)) return out;
  const cip = clusterIPForFamily(svc, family);
  if (cip === '') {
    // A clusterIP that is not an address at all belongs to no family: say so in the IPv4 tracker only.
    const raw = svc.spec?.clusterIP ?? '';
    if (family === 4 && (svc.spec?.ipFamilies ?? []).length === 0 && IPAddr.parse(raw) === undefined) {
      issue(`invalid clusterIP ${JSON.stringify(raw)}`, true);
    }
    return out;
  }
  const warnings: string[] = [];
  try {
    const common = commonFields(svc, family, cip, (w) => warnings.push(w));
    (svc.spec?.ports ?? []).forEach((p, i) => {
      const sp = makeServicePort(namespace, name, p, common, i);
      const key = servicePortKey(sp.name);
      if (out.has(key)) throw new Invalid(`duplicate port ${sp.nameString} ${sp.protocol}`);
      out.set(key, sp);
    });
  } catch (e) {
    // Objects from manifests are not schema-checked: a field of the wrong type is a
    // reason to skip the object, never an exception out of the tracker.
    issue(e instanceof Invalid ? e.message : `malformed object: ${(e as Error).message}`, true);
    return new Map();
  }
  for (const w of warnings) issue(w, false);
  return out;
}

interface ServiceChange {
  previous: Map<string, ServicePort>;
  current: Map<string, ServicePort>;
}

function samePorts(a: ReadonlyMap<string, ServicePort>, b: ReadonlyMap<string, ServicePort>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k)?.signature !== v.signature) return false;
  return true;
}

/**
 * Records Service events between syncs. Per Service it keeps the state before
 * the first pending event and the state after the latest one; a sequence
 * that ends where it started (A→B→A, add then delete) leaves nothing pending.
 */
export class ServiceChangeTracker {
  private items = new Map<string, ServiceChange>();

  constructor(
    readonly family: Family,
    private readonly report: IssueSink = noop,
  ) {}

  /** Add: (undefined, svc); update: (old, new); delete: (svc, undefined). True while changes are pending. */
  update(previous: V1Service | undefined, current: V1Service | undefined): boolean {
    const svc = current ?? previous;
    if (!svc) return false;
    const key = serviceKey({ namespace: svc.metadata?.namespace ?? '', name: svc.metadata?.name ?? '' });
    let change = this.items.get(key);
    if (!change) {
      // The previous object was reported when it arrived; do not report it twice.
      change = { previous: previous ? servicePortsOf(previous, this.family) : new Map(), current: new Map() };
      this.items.set(key, change);
    }
    change.current = current ? servicePortsOf(current, this.family, this.report) : new Map();
    if (samePorts(change.previous, change.current)) this.items.delete(key);
    return this.items.size > 0;
  }

  /** Services with pending changes (the service_changes_pending metric). */
  get pending(): number {
    return this.items.size;
  }

  /** Hands the pending changes to the caller and forgets them. */
  checkout(): Map<string, ServiceChange> {
    const items = this.items;
    this.items = new Map();
    return items;
  }
}

export interface UpdateServiceMapResult {
  /** Services ("ns/name") whose ports changed: the unit of a partial sync. */
  readonly updatedServices: ReadonlySet<string>;
  /** The service ports (servicePortKey) that were added, removed or changed. */
  readonly changedPorts: ReadonlySet<string>;
  /** ClusterIPs of UDP service ports that went away (their conntrack entries are stale). */
  readonly deletedUDPClusterIPs: ReadonlySet<string>;
}

/** The applied ServicePortMap of one family. */
export class ServicePorts {
  private readonly ports = new Map<string, ServicePort>();

  get map(): ServicePortMap {
    return this.ports;
  }

  /** Folds the tracker's pending changes in (upstream ServicePortMap.Update). */
  update(tracker: ServiceChangeTracker): UpdateServiceMapResult {
    const updatedServices = new Set<string>();
    const changedPorts = new Set<string>();
    const deletedUDPClusterIPs = new Set<string>();
    for (const [svc, change] of tracker.checkout()) {
      updatedServices.add(svc);
      for (const [k, sp] of change.current) {
        // An unchanged port keeps its object: renderers cache their text on it.
        if (this.ports.get(k)?.signature === sp.signature) continue;
        changedPorts.add(k);
        this.ports.set(k, sp);
      }
      for (const [k, sp] of change.previous) {
        if (change.current.has(k)) continue;
        changedPorts.add(k);
        this.ports.delete(k);
        if (sp.protocol === 'UDP') deletedUDPClusterIPs.add(sp.clusterIP.toString());
      }
    }
    return { updatedServices, changedPorts, deletedUDPClusterIPs };
  }

  /** healthCheckNodePort per Service ("ns/name"), for the service health servers. */
  healthCheckNodePorts(): Map<string, number> {
    const out = new Map<string, number>();
    for (const sp of this.ports.values()) {
      if (sp.healthCheckNodePort !== 0) out.set(serviceKey(sp.name), sp.healthCheckNodePort);
    }
    return out;
  }
}

export type { Issue };
