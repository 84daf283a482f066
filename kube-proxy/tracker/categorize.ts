// Which endpoints a service port uses for Cluster and for Local traffic
// policy (upstream pkg/proxy/topology.go CategorizeEndpoints): Ready
// endpoints, topology hints applied, falling back to Serving+Terminating
// endpoints when none is Ready (KEP-1669), independently for the cluster-wide
// and the node-local set.
import { usesClusterEndpoints, usesLocalEndpoints, type Endpoint, type ServicePort } from './types.ts';

export interface Categorized {
  /** Endpoints for Cluster policy; empty when the port does not use it. */
  readonly clusterEndpoints: readonly Endpoint[];
  /** Endpoints for Local policy; empty when the port does not use it. */
  readonly localEndpoints: readonly Endpoint[];
  /** The union of both, sorted by "ip:port": the endpoints that get a KUBE-SEP chain. */
  readonly allReachableEndpoints: readonly Endpoint[];
  /** Whether the service has usable endpoints anywhere in the cluster. */
  readonly hasAnyEndpoints: boolean;
}

export interface Topology {
  /** This node's name (for hints.forNodes). */
  readonly nodeName: string;
  /** This node's topology.kubernetes.io/zone label; "" when unset. */
  readonly zone: string;
}

type TopologyMode = '' | 'PreferSameNode' | 'PreferSameZone';

/** topologyModeFromHints: use hints only when every ready endpoint has them and some are for us. */
function topologyMode(endpoints: readonly Endpoint[], topo: Topology): TopologyMode {
  let allNodeHints = true;
  let forNode = false;
  let allZoneHints = true;
  let forZone = false;
  for (const ep of endpoints) {
    if (!ep.ready) continue;
    if (!ep.zoneHints || ep.zoneHints.size === 0) allZoneHints = false;
    else if (ep.zoneHints.has(topo.zone)) forZone = true;
    if (!ep.nodeHints || ep.nodeHints.size === 0) allNodeHints = false;
    else if (ep.nodeHints.has(topo.nodeName)) forNode = true;
  }
  if (allNodeHints && forNode) return 'PreferSameNode';
  if (allZoneHints && forZone) return 'PreferSameZone';
  return '';
}

function availableForTopology(ep: Endpoint, mode: TopologyMode, topo: Topology): boolean {
  switch (mode) {
    case '':
      return true;
    case 'PreferSameNode':
      return ep.nodeHints?.has(topo.nodeName) ?? false;
    case 'PreferSameZone':
      return ep.zoneHints?.has(topo.zone) ?? false;
  }
}

const servingTerminating = (ep: Endpoint): boolean => ep.serving && ep.terminating;

function union(a: readonly Endpoint[], b: readonly Endpoint[]): Endpoint[] {
  const m = new Map<string, Endpoint>();
  for (const ep of a) m.set(ep.endpoint, ep);
  for (const ep of b) m.set(ep.endpoint, ep);
  return [...m.values()].sort((x, y) => (x.endpoint < y.endpoint ? -1 : x.endpoint > y.endpoint ? 1 : 0));
}

/** Pure; `endpoints` sorted by "ip:port" as the EndpointsMap keeps them. */
export function categorizeEndpoints(
  endpoints: readonly Endpoint[],
  sp: ServicePort,
  topo: Topology = { nodeName: '', zone: '' },
): Categorized {
  let clusterEndpoints: Endpoint[] = [];
  let localEndpoints: Endpoint[] = [];
  let hasAnyEndpoints = false;

  if (usesClusterEndpoints(sp)) {
    const mode = topologyMode(endpoints, topo);
    clusterEndpoints = endpoints.filter((ep) => ep.ready && availableForTopology(ep, mode, topo));
    // Topology was already ignored if it left no ready endpoint; so an empty list here
    // means nothing is ready anywhere: fall back to serving terminating endpoints.
    if (clusterEndpoints.length === 0) clusterEndpoints = endpoints.filter(servingTerminating);
    if (clusterEndpoints.length > 0) hasAnyEndpoints = true;
  }
  if (!usesLocalEndpoints(sp)) {
    return { clusterEndpoints, localEndpoints, allReachableEndpoints: clusterEndpoints, hasAnyEndpoints };
  }

  let localReady = false;
  let localServingTerminating = false;
  for (const ep of endpoints) {
    if (ep.ready) {
      hasAnyEndpoints = true;
      if (ep.isLocal) localReady = true;
    } else if (servingTerminating(ep)) {
      hasAnyEndpoints = true;
      if (ep.isLocal) localServingTerminating = true;
    }
  }
  if (localReady) localEndpoints = endpoints.filter((ep) => ep.isLocal && ep.ready);
  else if (localServingTerminating) localEndpoints = endpoints.filter((ep) => ep.isLocal && servingTerminating(ep));

  if (!usesClusterEndpoints(sp)) {
    return { clusterEndpoints, localEndpoints, allReachableEndpoints: localEndpoints, hasAnyEndpoints };
  }
  const allReachableEndpoints = localEndpoints.length === 0 ? clusterEndpoints : union(clusterEndpoints, localEndpoints);
  return { clusterEndpoints, localEndpoints, allReachableEndpoints, hasAnyEndpoints };
}
