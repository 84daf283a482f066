// Builders for the API objects the tests feed in, in the shape of upstream's
// proxier_test.go helpers (makeTestService, makeTestEndpointSlice), and a
// one-call path from objects through the trackers to the rendered rules.
import type { V1EndpointSlice, V1Service, V1ServiceSpec, V1ServiceStatus, V1Endpoint, DiscoveryV1EndpointPort } from '@kubernetes/client-node';
import type { Family } from '../../lib/ip/index.ts';
import { Endpoints, EndpointsChangeTracker, LABEL_SERVICE_NAME, ServiceChangeTracker, ServicePorts, type Issue } from '../tracker/index.ts';

export function makeService(namespace: string, name: string, spec: V1ServiceSpec, status?: V1ServiceStatus): V1Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { namespace, name }, spec: { type: 'ClusterIP', ...spec }, ...(status ? { status } : {}) };
}

export function makeSlice(
  namespace: string,
  service: string,
  n: number,
  endpoints: V1Endpoint[],
  ports: DiscoveryV1EndpointPort[],
  addressType: 'IPv4' | 'IPv6' = 'IPv4',
): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace, name: `${service}-${n}`, labels: { [LABEL_SERVICE_NAME]: service } },
    addressType,
    endpoints,
    ports,
  };
}

export const tcp = (name: string, port: number): DiscoveryV1EndpointPort => ({ name, port, protocol: 'TCP' });

/** One family's proxy state fed from objects, as the daemon will hold it. */
export class World {
  readonly issues: Issue[] = [];
  readonly serviceChanges: ServiceChangeTracker;
  readonly endpointChanges: EndpointsChangeTracker;
  readonly services = new ServicePorts();
  readonly endpoints = new Endpoints();

  constructor(
    readonly family: Family,
    readonly nodeName: string,
  ) {
    this.serviceChanges = new ServiceChangeTracker(family, (i) => this.issues.push(i));
    this.endpointChanges = new EndpointsChangeTracker(family, nodeName, (i) => this.issues.push(i));
  }

  add(...objs: (V1Service | V1EndpointSlice)[]): this {
    for (const o of objs) {
      if (o.kind === 'Service') this.serviceChanges.update(undefined, o as V1Service);
      else this.endpointChanges.endpointSliceUpdate(o as V1EndpointSlice, false);
    }
    return this;
  }

  /** Folds pending changes in; returns the services that changed (a partial sync's set). */
  sync(): Set<string> {
    const a = this.services.update(this.serviceChanges);
    const b = this.endpoints.update(this.endpointChanges);
    return new Set([...a.updatedServices, ...b.updatedServices]);
  }
}
