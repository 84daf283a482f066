// EndpointSlices for a Service, derived from its Pods the way the
// EndpointSlice controller (kubernetes pkg/controller/endpointslice) does,
// for the manifest directory where no controller runs. Pure.
//
// - Only Services with a non-empty selector, and not ExternalName.
// - Pods in the Service's namespace whose labels match; terminal pods
//   (Succeeded/Failed) and pods without an IP are skipped; terminating pods
//   stay in, with ready=false.
// - One slice per address family and resolved port set: a named targetPort
//   resolves per pod against its container ports (name and protocol), so
//   pods that name the port differently land in different slices, as in the
//   controller. A port a pod cannot resolve is left out for that pod.
// - Conditions: serving = Pod Ready (or publishNotReadyAddresses), terminating
//   = deletionTimestamp set, ready = serving and not terminating.
// - Names are `<service>-<hash>`, stable where the controller uses a random
//   suffix; a Service without endpoints gets one empty placeholder slice, as
//   the controller creates.
import { createHash } from 'node:crypto';
import type { DiscoveryV1EndpointPort, V1Endpoint, V1EndpointSlice, V1Node, V1Pod, V1Service, V1ServicePort } from '@kubernetes/client-node';
import { IPAddr } from '../ip/index.ts';
import { LABEL_MANAGED_BY, LABEL_SERVICE_NAME } from './types.ts';

/** The managed-by value of derived slices: the controller's own, so consumers treat them alike. */
export const DERIVED_MANAGED_BY = 'endpointslice-controller.k8s.io';

type AddressType = 'IPv4' | 'IPv6';

/**
 * Derived slices for every Service with a selector that has no EndpointSlice
 * of its own among `slices` (label kubernetes.io/service-name, same namespace).
 */
export function deriveEndpointSlices(services: readonly V1Service[], pods: readonly V1Pod[], slices: readonly V1EndpointSlice[], nodes: readonly V1Node[] = []): V1EndpointSlice[] {
  const own = new Set<string>();
  for (const s of slices) {
    const svc = s.metadata?.labels?.[LABEL_SERVICE_NAME];
    if (svc !== undefined) own.add(`${s.metadata?.namespace ?? ''}/${svc}`);
  }
  const nodeByName = new Map(nodes.map((n) => [n.metadata?.name ?? '', n]));
  const podsByNs = new Map<string, V1Pod[]>();
  for (const p of pods) {
    const ns = p.metadata?.namespace ?? '';
    const list = podsByNs.get(ns) ?? [];
    list.push(p);
    podsByNs.set(ns, list);
  }
  const out: V1EndpointSlice[] = [];
  for (const svc of services) {
    if (own.has(`${svc.metadata?.namespace ?? ''}/${svc.metadata?.name ?? ''}`)) continue;
    out.push(...endpointSlicesFor(svc, podsByNs.get(svc.metadata?.namespace ?? '') ?? [], nodeByName));
  }
  return out;
}

/** The slices the controller would keep for `svc`, given the Pods of its namespace. */
export function endpointSlicesFor(svc: V1Service, pods: readonly V1Pod[], nodeByName: ReadonlyMap<string, V1Node> = new Map()): V1EndpointSlice[] {
  const selector = svc.spec?.selector ?? {};
  if (Object.keys(selector).length === 0 || svc.spec?.type === 'ExternalName') return [];
  const families = addressTypes(svc);
  const groups = new Map<string, { addressType: AddressType; ports: DiscoveryV1EndpointPort[]; endpoints: { sortKey: string; ep: V1Endpoint }[] }>();
  for (const pod of pods) {
    if (!selects(selector, pod) || !includePod(pod)) continue;
    const ports = endpointPorts(svc, pod);
    const portsKey = JSON.stringify(ports);
    for (const [addressType, ip] of podIPs(pod)) {
      if (!families.has(addressType)) continue;
      const key = `${addressType}/${portsKey}`;
      let g = groups.get(key);
      if (!g) {
        g = { addressType, ports, endpoints: [] };
        groups.set(key, g);
      }
      g.endpoints.push({ sortKey: `${pod.metadata?.name ?? ''}/${ip}`, ep: endpoint(svc, pod, ip, nodeByName) });
    }
  }
  if (groups.size === 0) {
    const primary = [...families][0] ?? 'IPv4';
    return [slice(svc, sliceName(svc, primary), primary, undefined, [])];
  }
  // The largest group of a family keeps the family's base name, so adding a
  // pod, a readiness change or a new targetPort is an update of that slice
  // rather than a delete and an add; the placeholder has that name too.
  const ordered = [...groups.entries()].sort(([ka, a], [kb, b]) => b.endpoints.length - a.endpoints.length || cmp(ka, kb));
  const named = new Set<AddressType>();
  const out: V1EndpointSlice[] = [];
  for (const [key, g] of ordered) {
    const name = named.has(g.addressType) ? sliceName(svc, key) : sliceName(svc, g.addressType);
    named.add(g.addressType);
    out.push(slice(svc, name, g.addressType, g.ports, g.endpoints.sort((a, b) => cmp(a.sortKey, b.sortKey)).map((e) => e.ep)));
  }
  return out.sort((a, b) => cmp(a.metadata?.name ?? '', b.metadata?.name ?? ''));
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function sliceName(svc: V1Service, discriminator: string): string {
  const hash = createHash('sha256').update(discriminator).digest('hex').slice(0, 8);
  return `${svc.metadata?.name ?? ''}-${hash}`;
}

/** The Service's families: spec.ipFamilies, else its cluster IPs', else both (a headless Service without families). */
function addressTypes(svc: V1Service): Set<AddressType> {
  const fams = svc.spec?.ipFamilies ?? [];
  if (fams.length > 0) return new Set(fams.filter((f): f is AddressType => f === 'IPv4' || f === 'IPv6'));
  const ips = svc.spec?.clusterIPs ?? (svc.spec?.clusterIP !== undefined ? [svc.spec.clusterIP] : []);
  const fromIPs = new Set<AddressType>();
  for (const s of ips) {
    const ip = IPAddr.parse(s);
    if (ip) fromIPs.add(ip.family === 4 ? 'IPv4' : 'IPv6');
  }
  return fromIPs.size > 0 ? fromIPs : new Set<AddressType>(['IPv4', 'IPv6']);
}

function selects(selector: Record<string, string>, pod: V1Pod): boolean {
  const labels = pod.metadata?.labels ?? {};
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** The controller's ShouldPodBeInEndpoints with terminating pods included: not terminal, has an IP. */
function includePod(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return false;
  return podIPs(pod).length > 0;
}

/** The first valid IP of each family, from status.podIPs, else status.podIP. */
function podIPs(pod: V1Pod): [AddressType, string][] {
  const raw = (pod.status?.podIPs ?? []).map((p) => p.ip);
  if (raw.length === 0 && pod.status?.podIP) raw.push(pod.status.podIP);
  const out = new Map<AddressType, string>();
  for (const s of raw) {
    const ip = IPAddr.parse(s);
    if (!ip) continue;
    const t: AddressType = ip.family === 4 ? 'IPv4' : 'IPv6';
    if (!out.has(t)) out.set(t, ip.toString());
  }
  return [...out];
}

function podReady(pod: V1Pod): boolean {
  return (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

function endpoint(svc: V1Service, pod: V1Pod, ip: string, nodeByName: ReadonlyMap<string, V1Node>): V1Endpoint {
  const publish = svc.spec?.publishNotReadyAddresses === true;
  const serving = publish || podReady(pod);
  const terminating = pod.metadata?.deletionTimestamp !== undefined && pod.metadata.deletionTimestamp !== null;
  const ep: V1Endpoint = {
    addresses: [ip],
    conditions: { ready: publish || (serving && !terminating), serving, terminating },
    targetRef: {
      kind: 'Pod',
      name: pod.metadata?.name ?? '',
      ...(pod.metadata?.namespace !== undefined ? { namespace: pod.metadata.namespace } : {}),
      ...(pod.metadata?.uid !== undefined ? { uid: pod.metadata.uid } : {}),
    },
  };
  const nodeName = pod.spec?.nodeName;
  if (nodeName) {
    ep.nodeName = nodeName;
    const zone = nodeByName.get(nodeName)?.metadata?.labels?.['topology.kubernetes.io/zone'];
    if (zone !== undefined) ep.zone = zone;
  }
  // A pod's DNS hostname is published for the headless Service its subdomain names.
  if (pod.spec?.hostname && pod.spec.subdomain === svc.metadata?.name) ep.hostname = pod.spec.hostname;
  return ep;
}

/** The Service ports as this pod serves them; a named targetPort the pod lacks leaves that port out. */
function endpointPorts(svc: V1Service, pod: V1Pod): DiscoveryV1EndpointPort[] {
  const out: DiscoveryV1EndpointPort[] = [];
  for (const sp of svc.spec?.ports ?? []) {
    const port = targetPort(sp, pod);
    if (port === undefined) continue;
    out.push({
      name: sp.name ?? '',
      port,
      protocol: sp.protocol ?? 'TCP',
      ...(sp.appProtocol !== undefined ? { appProtocol: sp.appProtocol } : {}),
    });
  }
  return out;
}

/** podutil.FindPort: a number (or numeric string) as is, a name against the containers' ports of the same protocol; unset = port. */
function targetPort(sp: V1ServicePort, pod: V1Pod): number | undefined {
  const tp = sp.targetPort;
  if (tp === undefined || tp === 0 || tp === '') return sp.port;
  if (typeof tp === 'number') return tp;
  if (/^\d+$/.test(tp)) return Number(tp);
  const protocol = sp.protocol ?? 'TCP';
  for (const c of pod.spec?.containers ?? []) {
    for (const cp of c.ports ?? []) {
      if (cp.name === tp && (cp.protocol ?? 'TCP') === protocol) return cp.containerPort;
    }
  }
  return undefined;
}

function slice(svc: V1Service, sliceName: string, addressType: AddressType, ports: DiscoveryV1EndpointPort[] | undefined, endpoints: V1Endpoint[]): V1EndpointSlice {
  const name = svc.metadata?.name ?? '';
  const labels: Record<string, string> = { ...(svc.metadata?.labels ?? {}), [LABEL_SERVICE_NAME]: name, [LABEL_MANAGED_BY]: DERIVED_MANAGED_BY };
  if (svc.spec?.clusterIP === 'None') labels['service.kubernetes.io/headless'] = '';
  const uid = svc.metadata?.uid;
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: sliceName,
      ...(svc.metadata?.namespace !== undefined ? { namespace: svc.metadata.namespace } : {}),
      labels,
      ...(uid !== undefined ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name, uid, controller: true, blockOwnerDeletion: true }] } : {}),
    },
    addressType,
    endpoints,
    ...(ports !== undefined ? { ports } : {}),
  };
}
