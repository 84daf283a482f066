// Resource types and their REST paths: plain values, no client (types.ts and
// the manifest directory use them without loading the API client).
import { NetError } from '../errors.ts';

/** Identifies a resource type: `{version: 'v1', resource: 'nodes'}`, `{group: 'discovery.k8s.io', version: 'v1', resource: 'endpointslices'}`. */
export interface ResourceRef {
  group?: string;
  version: string;
  resource: string;
}

export const NAMESPACES: ResourceRef = { version: 'v1', resource: 'namespaces' };
export const NODES: ResourceRef = { version: 'v1', resource: 'nodes' };
export const PODS: ResourceRef = { version: 'v1', resource: 'pods' };
export const SERVICES: ResourceRef = { version: 'v1', resource: 'services' };
export const ENDPOINTSLICES: ResourceRef = { group: 'discovery.k8s.io', version: 'v1', resource: 'endpointslices' };
export const NETWORKPOLICIES: ResourceRef = { group: 'networking.k8s.io', version: 'v1', resource: 'networkpolicies' };

export interface ObjectRef {
  namespace?: string | undefined;
  name?: string | undefined;
  subresource?: string | undefined;
}

/** `/api/v1/nodes`, `/api/v1/namespaces/ns/pods/p/status`, `/apis/g/v/...`. */
export function resourcePath(res: ResourceRef, ref: ObjectRef = {}): string {
  const base = res.group ? `/apis/${res.group}/${res.version}` : `/api/${res.version}`;
  let p = base;
  if (ref.namespace) p += `/namespaces/${encodeURIComponent(ref.namespace)}`;
  p += `/${res.resource}`;
  if (ref.name !== undefined) p += `/${encodeURIComponent(ref.name)}`;
  if (ref.subresource !== undefined) {
    if (ref.name === undefined) throw new NetError('KUBE_INVALID', 'a subresource needs an object name');
    p += `/${ref.subresource}`;
  }
  return p;
}

