// The proxy's internal model of Services and endpoints, per IP family, as
// upstream's pkg/proxy keeps it (ServicePortMap, EndpointsMap): one entry per
// service port, keyed by ServicePortName (namespace/name:port + protocol).
// Everything here is plain data; the trackers build it from API objects and
// the renderers read it.
import type { Family, IPAddr, IPPrefix } from '../../lib/ip/index.ts';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

export interface ServicePortName {
  readonly namespace: string;
  readonly name: string;
  /** The service port's name; "" for an unnamed port. */
  readonly port: string;
  readonly protocol: Protocol;
}

/** ServicePortName.String(): "ns/name:port", or "ns/name" for an unnamed port (the protocol is not part of it). */
export function servicePortNameString(n: Omit<ServicePortName, 'protocol'>): string {
  return n.port === '' ? `${n.namespace}/${n.name}` : `${n.namespace}/${n.name}:${n.port}`;
}

/** The map key of a service port: its name string plus the protocol ("ns/name:port/TCP"). */
export function servicePortKey(n: ServicePortName): string {
  return `${servicePortNameString(n)}/${n.protocol}`;
}

/** The service ("ns/name") of a servicePortKey; names cannot hold ':' or '/'. */
export function serviceKeyOfPortKey(portKey: string): string {
  const colon = portKey.indexOf(':');
  return portKey.slice(0, colon >= 0 ? colon : portKey.lastIndexOf('/'));
}

/** The key of a whole service ("ns/name"), the unit upstream's partial syncs work in. */
export function serviceKey(n: { readonly namespace: string; readonly name: string }): string {
  return `${n.namespace}/${n.name}`;
}

/** One port of one Service, for one IP family (upstream's BaseServicePortInfo). */
export interface ServicePort {
  readonly name: ServicePortName;
  /** servicePortNameString(name), cached: it is in most rules and every chain hash. */
  readonly nameString: string;
  readonly family: Family;
  readonly clusterIP: IPAddr;
  readonly port: number;
  readonly protocol: Protocol;
  /** 0 when the port has none. */
  readonly nodePort: number;
  /** Of this family only; invalid entries are dropped (as upstream). */
  readonly externalIPs: readonly IPAddr[];
  /** LoadBalancer ingress IPs of this family; `ipMode: Proxy` entries are left out. */
  readonly loadBalancerVIPs: readonly IPAddr[];
  /** Trimmed, of this family, invalid ones dropped. */
  readonly loadBalancerSourceRanges: readonly IPPrefix[];
  /** Session affinity ClientIP: the timeout in seconds; undefined for affinity None. */
  readonly stickyMaxAgeSeconds: number | undefined;
  readonly externalPolicyLocal: boolean;
  readonly internalPolicyLocal: boolean;
  /** Only for type LoadBalancer with externalTrafficPolicy Local; else 0. */
  readonly healthCheckNodePort: number;
  /** A digest of every field above, to tell a real change from a no-op update. */
  readonly signature: string;
}

/** NodePort, externalIPs or LoadBalancer IPs: the port has "external" destinations. */
export function externallyAccessible(sp: ServicePort): boolean {
  return sp.nodePort !== 0 || sp.loadBalancerVIPs.length > 0 || sp.externalIPs.length > 0;
}

/** Whether cluster-wide endpoints serve some traffic of this port (upstream UsesClusterEndpoints). */
export function usesClusterEndpoints(sp: ServicePort): boolean {
  return !sp.internalPolicyLocal || externallyAccessible(sp);
}

/** Whether node-local endpoints serve some traffic of this port (upstream UsesLocalEndpoints). */
export function usesLocalEndpoints(sp: ServicePort): boolean {
  return sp.internalPolicyLocal || (sp.externalPolicyLocal && externallyAccessible(sp));
}

/** One endpoint (IP:port) of one service port (upstream's BaseEndpointInfo). */
export interface Endpoint {
  /** The address as the EndpointSlice wrote it (upstream hashes and prints this string). */
  readonly ip: string;
  readonly addr: IPAddr;
  readonly port: number;
  /** "ip:port", "[ip]:port" for IPv6: the sort key and the DNAT target. */
  readonly endpoint: string;
  readonly isLocal: boolean;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  /** hints.forZones; undefined when the endpoint has none. */
  readonly zoneHints: ReadonlySet<string> | undefined;
  /** hints.forNodes; undefined when the endpoint has none. */
  readonly nodeHints: ReadonlySet<string> | undefined;
}

/** Service ports by servicePortKey(). */
export type ServicePortMap = ReadonlyMap<string, ServicePort>;
/** Endpoints by servicePortKey(), each list sorted by its "ip:port" string. */
export type EndpointsMap = ReadonlyMap<string, readonly Endpoint[]>;

/** A skipped object or a dropped field, with the reason; never thrown. */
export interface Issue {
  readonly kind: 'Service' | 'EndpointSlice';
  readonly namespace: string;
  readonly name: string;
  readonly reason: string;
  /** true: the whole object was ignored; false: one field value was dropped and the rest used. */
  readonly skipped: boolean;
}

/** Where trackers report issues; the daemon passes one that logs. */
export type IssueSink = (issue: Issue) => void;

export function formatIssue(i: Issue): string {
  return `${i.kind} ${i.namespace}/${i.name}: ${i.reason}${i.skipped ? ' (object skipped)' : ''}`;
}
