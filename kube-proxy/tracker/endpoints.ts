// EndpointSlices → per-service-port endpoint lists, merged across the slices
// of a Service, and the change tracker that folds slice events in at sync
// time (upstream pkg/proxy/endpointslicecache.go, endpointschangetracker.go,
// endpoint.go).
import type { V1EndpointSlice } from '@kubernetes/client-node';
import { IPAddr, type Family } from '../../lib/ip/index.ts';
import {
  PROTOCOLS,
  serviceKey,
  serviceKeyOfPortKey,
  servicePortKey,
  type Endpoint,
  type EndpointsMap,
  type IssueSink,
  type Protocol,
  type ServicePortName,
} from './types.ts';

/** The label tying an EndpointSlice to its Service. */
export const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';
/** When the change that produced a slice happened; feeds network_programming_duration_seconds. */
export const ANNOTATION_LAST_CHANGE_TRIGGER_TIME = 'endpoints.kubernetes.io/last-change-trigger-time';

const noop: IssueSink = () => {};

interface SlicePort {
  readonly name: string;
  readonly port: number;
  readonly protocol: Protocol;
}

interface SliceEndpoint {
  readonly addr: IPAddr;
  readonly isLocal: boolean;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly zoneHints: ReadonlySet<string> | undefined;
  readonly nodeHints: ReadonlySet<string> | undefined;
}

/** What the proxy keeps of one slice: the validated ports and endpoints of this family. */
interface SliceData {
  readonly ports: readonly SlicePort[];
  readonly endpoints: readonly SliceEndpoint[];
}

const sameSet = (a: ReadonlySet<string> | undefined, b: ReadonlySet<string> | undefined): boolean => {
  if (a === undefined || b === undefined) return a === b;
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
};

/**
 * Whether two slices' data are the same (an update that changes nothing the
 * proxy uses). Compared field by field rather than through a JSON signature
 * kept per slice: that string cost ~5 MB at 10,000 slices of 10 endpoints.
 * Order matters, as it did for the signature (it fixes nothing in the rules,
 * but an update that only reorders is rare and harmless to apply).
 */
function sameSliceData(a: SliceData | null, b: SliceData | null): boolean {
  if (a === null || b === null) return a === b;
  if (a.ports.length !== b.ports.length || a.endpoints.length !== b.endpoints.length) return false;
  for (let i = 0; i < a.ports.length; i++) {
    const p = a.ports[i]!;
    const q = b.ports[i]!;
    if (p.name !== q.name || p.port !== q.port || p.protocol !== q.protocol) return false;
  }
  for (let i = 0; i < a.endpoints.length; i++) {
    const e = a.endpoints[i]!;
    const f = b.endpoints[i]!;
    if (!e.addr.equals(f.addr) || e.isLocal !== f.isLocal || e.ready !== f.ready || e.serving !== f.serving || e.terminating !== f.terminating) return false;
    if (!sameSet(e.zoneHints, f.zoneHints) || !sameSet(e.nodeHints, f.nodeHints)) return false;
  }
  return true;
}

interface SliceRef {
  readonly service: string;
  readonly slice: string;
  readonly namespace: string;
  readonly serviceName: string;
}

/** Builds one Endpoint; the "ip:port" string is upstream's net.JoinHostPort. */
export function makeEndpoint(
  addr: IPAddr,
  port: number,
  flags: { isLocal: boolean; ready: boolean; serving: boolean; terminating: boolean },
  hints: { zoneHints?: ReadonlySet<string> | undefined; nodeHints?: ReadonlySet<string> | undefined } = {},
): Endpoint {
  const ip = addr.toString();
  return {
    ip,
    addr,
    port,
    endpoint: addr.family === 6 ? `[${ip}]:${port}` : `${ip}:${port}`,
    ...flags,
    zoneHints: hints.zoneHints,
    nodeHints: hints.nodeHints,
  };
}

function hintSet(names: readonly { name?: string }[] | undefined): ReadonlySet<string> | undefined {
  if (!names || names.length === 0) return undefined;
  return new Set(names.map((n) => n.name ?? ''));
}

/**
 * The parts of a slice this family's proxy uses. Bad ports or endpoints are
 * dropped one by one (as upstream does) and reported; the rest still counts.
 */
function sliceData(slice: V1EndpointSlice, family: Family, nodeName: string, warn: (reason: string) => void): SliceData {
  const ports: SlicePort[] = [];
  for (const p of slice.ports ?? []) {
    // API defaults: a missing name is "", a missing protocol TCP.
    const name = p.name ?? '';
    if (p.port === undefined || p.port === 0) {
      warn(`ignoring port ${JSON.stringify(name)} without a port number`);
      continue;
    }
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) {
      warn(`ignoring port ${JSON.stringify(name)}: port ${p.port} is out of range`);
      continue;
    }
    const protocol = p.protocol ?? 'TCP';
    if (!(PROTOCOLS as readonly string[]).includes(protocol)) {
      warn(`ignoring port ${JSON.stringify(name)}: unknown protocol ${JSON.stringify(protocol)}`);
      continue;
    }
    ports.push({ name, port: p.port, protocol: protocol as Protocol });
  }
  const endpoints: SliceEndpoint[] = [];
  for (const ep of slice.endpoints ?? []) {
    const first = ep.addresses?.[0];
    if (first === undefined) {
      warn('ignoring endpoint without addresses');
      continue;
    }
    const addr = IPAddr.parse(first);
    if (!addr) {
      warn(`ignoring endpoint with invalid address ${JSON.stringify(first)}`);
      continue;
    }
    if (addr.family !== family) continue;
    const c = ep.conditions ?? {};
    endpoints.push({
      addr,
      isLocal: nodeName !== '' && ep.nodeName === nodeName,
      ready: c.ready ?? true,
      serving: c.serving ?? true,
      terminating: c.terminating ?? false,
      zoneHints: hintSet(ep.hints?.forZones),
      nodeHints: hintSet(ep.hints?.forNodes),
    });
  }
  return { ports, endpoints };
}

const compareEndpoint = (a: Endpoint, b: Endpoint): number => (a.endpoint < b.endpoint ? -1 : a.endpoint > b.endpoint ? 1 : 0);

/**
 * Merges the slices of one Service into endpoint lists per service port,
 * deduplicated by "ip:port" (a running endpoint wins over a terminating one,
 * as upstream prefers) and sorted by that string, which fixes the rule order.
 */
function endpointsOf(namespace: string, name: string, slices: ReadonlyMap<string, SliceData>): Map<string, Endpoint[]> {
  const byPort = new Map<string, Map<string, Endpoint>>();
  const sliceNames = [...slices.keys()].sort();
  for (const sliceName of sliceNames) {
    const data = slices.get(sliceName);
    if (!data) continue;
    for (const p of data.ports) {
      const spn: ServicePortName = { namespace, name, port: p.name, protocol: p.protocol };
      const key = servicePortKey(spn);
      let set = byPort.get(key);
      if (!set) byPort.set(key, (set = new Map()));
      for (const e of data.endpoints) {
        const ep = makeEndpoint(e.addr, p.port, e, e);
        if (!set.has(ep.endpoint) || !ep.terminating) set.set(ep.endpoint, ep);
      }
    }
  }
  const out = new Map<string, Endpoint[]>();
  for (const [key, set] of byPort) {
    if (set.size > 0) out.set(key, [...set.values()].sort(compareEndpoint));
  }
  return out;
}

function endpointsSignature(eps: readonly Endpoint[]): string {
  return eps.map((e) => `${e.endpoint}|${+e.isLocal}${+e.ready}${+e.serving}${+e.terminating}|${[...(e.zoneHints ?? [])]}|${[...(e.nodeHints ?? [])]}`).join(',');
}

function sameEndpoints(a: ReadonlyMap<string, readonly Endpoint[]>, b: ReadonlyMap<string, readonly Endpoint[]>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (!w || endpointsSignature(v) !== endpointsSignature(w)) return false;
  }
  return true;
}

export interface EndpointsChange {
  readonly previous: Map<string, Endpoint[]>;
  readonly current: Map<string, Endpoint[]>;
}

/**
 * Records EndpointSlice events between syncs (EndpointsChangeTracker plus
 * EndpointSliceCache): per slice the applied and the pending data, so many
 * updates of a slice fold into one change, and an update that restores the
 * applied state leaves nothing pending.
 */
export class EndpointsChangeTracker {
  /** Applied slices per Service ("ns/name") then slice name. */
  private readonly applied = new Map<string, Map<string, SliceData>>();
  /** Pending slices; null marks a deletion. */
  private pendingSlices = new Map<string, Map<string, SliceData | null>>();
  private triggerTimes = new Map<string, Date[]>();

  constructor(
    readonly family: Family,
    readonly nodeName: string,
    private readonly report: IssueSink = noop,
  ) {}

  private ref(slice: V1EndpointSlice): SliceRef | undefined {
    const namespace = slice.metadata?.namespace ?? '';
    const sliceName = slice.metadata?.name ?? '';
    const serviceName = slice.metadata?.labels?.[LABEL_SERVICE_NAME] ?? '';
    const missing =
      sliceName === '' ? 'metadata.name is missing'
      : namespace === '' ? 'metadata.namespace is missing'
      : serviceName === '' ? `label ${LABEL_SERVICE_NAME} is missing`
      : undefined;
    if (missing !== undefined) {
      this.report({ kind: 'EndpointSlice', namespace, name: sliceName, reason: missing, skipped: true });
      return undefined;
    }
    return { service: serviceKey({ namespace, name: serviceName }), slice: sliceName, namespace, serviceName };
  }

  /** Add or update: (slice, false); delete: (slice, true). True while changes are pending. */
  endpointSliceUpdate(slice: V1EndpointSlice, removed: boolean): boolean {
    // FQDN slices and the other family's slices are not ours (upstream checks AddressType first).
    if (slice.addressType !== (this.family === 6 ? 'IPv6' : 'IPv4')) return this.pendingSlices.size > 0;
    const ref = this.ref(slice);
    if (!ref) return this.pendingSlices.size > 0;
    const warn = (reason: string): void =>
      this.report({ kind: 'EndpointSlice', namespace: ref.namespace, name: ref.slice, reason, skipped: false });
    let data: SliceData | null = null;
    if (!removed) {
      try {
        data = sliceData(slice, this.family, this.nodeName, warn);
      } catch (e) {
        // Manifests are not schema-checked: a field of the wrong type skips the slice.
        this.report({ kind: 'EndpointSlice', namespace: ref.namespace, name: ref.slice, reason: `malformed object: ${(e as Error).message}`, skipped: true });
        return this.pendingSlices.size > 0;
      }
    }
    const applied = this.applied.get(ref.service)?.get(ref.slice) ?? null;
    let pending = this.pendingSlices.get(ref.service);
    if (sameSliceData(data, applied)) {
      // Back to what is applied: drop the pending entry.
      pending?.delete(ref.slice);
      if (pending?.size === 0) this.pendingSlices.delete(ref.service);
    } else {
      if (!pending) this.pendingSlices.set(ref.service, (pending = new Map()));
      pending.set(ref.slice, data);
      const t = Date.parse(slice.metadata?.annotations?.[ANNOTATION_LAST_CHANGE_TRIGGER_TIME] ?? '');
      if (!removed && Number.isFinite(t)) {
        const list = this.triggerTimes.get(ref.service) ?? [];
        list.push(new Date(t));
        this.triggerTimes.set(ref.service, list);
      }
    }
    return this.pendingSlices.size > 0;
  }

  /** Services with pending slice changes (the endpoint_changes_pending metric). */
  get pending(): number {
    return this.pendingSlices.size;
  }

  /** Applies the pending slices and returns, per Service, its endpoints before and after; no-op changes are left out. */
  checkout(): { changes: Map<string, EndpointsChange>; lastChangeTriggerTimes: Map<string, Date[]> } {
    const changes = new Map<string, EndpointsChange>();
    for (const [svc, pending] of this.pendingSlices) {
      const slash = svc.indexOf('/');
      const [namespace, name] = [svc.slice(0, slash), svc.slice(slash + 1)];
      let slices = this.applied.get(svc);
      const previous = slices ? endpointsOf(namespace, name, slices) : new Map<string, Endpoint[]>();
      if (!slices) this.applied.set(svc, (slices = new Map()));
      for (const [sliceName, data] of pending) {
        if (data) slices.set(sliceName, data);
        else slices.delete(sliceName);
      }
      if (slices.size === 0) this.applied.delete(svc);
      const current = endpointsOf(namespace, name, slices);
      if (!sameEndpoints(previous, current)) changes.set(svc, { previous, current });
    }
    const lastChangeTriggerTimes = new Map([...this.triggerTimes].filter(([svc]) => changes.has(svc)));
    this.pendingSlices = new Map();
    this.triggerTimes = new Map();
    return { changes, lastChangeTriggerTimes };
  }
}

export interface StaleEndpoint {
  /** servicePortKey of the UDP/SCTP service port. */
  readonly servicePort: string;
  readonly endpoint: Endpoint;
}

export interface UpdateEndpointsMapResult {
  /** Services ("ns/name") whose endpoints changed: the unit of a partial sync. */
  readonly updatedServices: ReadonlySet<string>;
  /** The service ports (servicePortKey) whose endpoint lists changed. */
  readonly changedPorts: ReadonlySet<string>;
  /** Serving UDP/SCTP endpoints that went away: their conntrack entries are stale. */
  readonly staleEndpoints: readonly StaleEndpoint[];
  /** UDP/SCTP service ports that went from no serving endpoint to some: entries that blackholed them are stale. */
  readonly newlyActiveServicePorts: ReadonlySet<string>;
  readonly lastChangeTriggerTimes: ReadonlyMap<string, readonly Date[]>;
}

const conntrackProtocol = (portKey: string): boolean => portKey.endsWith('/UDP') || portKey.endsWith('/SCTP');
const servingCount = (eps: readonly Endpoint[] | undefined): number => (eps ?? []).filter((e) => e.serving).length;

/** The applied EndpointsMap of one family. */
export class Endpoints {
  private readonly eps = new Map<string, readonly Endpoint[]>();

  get map(): EndpointsMap {
    return this.eps;
  }

  /** Folds the tracker's pending changes in (upstream EndpointsMap.Update). */
  update(tracker: EndpointsChangeTracker): UpdateEndpointsMapResult {
    const { changes, lastChangeTriggerTimes } = tracker.checkout();
    const updatedServices = new Set<string>();
    const changedPorts = new Set<string>();
    const staleEndpoints: StaleEndpoint[] = [];
    const newlyActiveServicePorts = new Set<string>();
    for (const [svc, { previous, current }] of changes) {
      updatedServices.add(svc);
      for (const key of new Set([...previous.keys(), ...current.keys()])) {
        const before = previous.get(key);
        const after = current.get(key);
        if (endpointsSignature(before ?? []) === endpointsSignature(after ?? [])) continue;
        changedPorts.add(key);
        if (after) this.eps.set(key, after);
        else this.eps.delete(key);
        if (!conntrackProtocol(key)) continue;
        const still = new Set((after ?? []).filter((e) => e.serving).map((e) => e.endpoint));
        for (const e of before ?? []) if (e.serving && !still.has(e.endpoint)) staleEndpoints.push({ servicePort: key, endpoint: e });
        if (servingCount(before) === 0 && servingCount(after) > 0) newlyActiveServicePorts.add(key);
      }
    }
    return { updatedServices, changedPorts, staleEndpoints, newlyActiveServicePorts, lastChangeTriggerTimes };
  }

  /** Ready local endpoints per Service ("ns/name"): what a health-check node port reports. */
  localReadyEndpoints(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [key, eps] of this.eps) {
      const svc = serviceKeyOfPortKey(key);
      const n = eps.filter((e) => e.isLocal && e.ready).length;
      out.set(svc, Math.max(out.get(svc) ?? 0, n));
    }
    return out;
  }
}
