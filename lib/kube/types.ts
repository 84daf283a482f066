// The object kinds the daemons read, typed with client-node's model classes
// (the shapes the API serves), and what each kind needs to be listed from the
// API or recognised in a manifest: apiVersion, resource path, scope.
import type {
  KubernetesObject,
  V1EndpointSlice,
  V1Namespace,
  V1NetworkPolicy,
  V1Node,
  V1Pod,
  V1Service,
} from '@kubernetes/client-node';
import { ENDPOINTSLICES, NAMESPACES, NETWORKPOLICIES, NODES, PODS, SERVICES } from './resources.ts';
import type { ResourceRef } from './resources.ts';

export type {
  DiscoveryV1EndpointPort,
  KubernetesObject,
  V1Container,
  V1ContainerPort,
  V1Endpoint,
  V1EndpointConditions,
  V1EndpointSlice,
  V1LabelSelector,
  V1Namespace,
  V1NetworkPolicy,
  V1NetworkPolicyIngressRule,
  V1NetworkPolicyEgressRule,
  V1NetworkPolicyPeer,
  V1NetworkPolicyPort,
  V1Node,
  V1NodeCondition,
  V1ObjectMeta,
  V1ObjectReference,
  V1Pod,
  V1PodCondition,
  V1Service,
  V1ServicePort,
} from '@kubernetes/client-node';

/** kind → object type: `Source<KindMap['Service']>` is a source of V1Service. */
export interface KindMap {
  Namespace: V1Namespace;
  Node: V1Node;
  Pod: V1Pod;
  Service: V1Service;
  EndpointSlice: V1EndpointSlice;
  NetworkPolicy: V1NetworkPolicy;
}

export type Kind = keyof KindMap;

export interface KindInfo {
  /** As the API serves it: "v1", "discovery.k8s.io/v1". */
  apiVersion: string;
  resource: ResourceRef;
  namespaced: boolean;
}

export const KINDS: Readonly<Record<Kind, KindInfo>> = {
  Namespace: { apiVersion: 'v1', resource: NAMESPACES, namespaced: false },
  Node: { apiVersion: 'v1', resource: NODES, namespaced: false },
  Pod: { apiVersion: 'v1', resource: PODS, namespaced: true },
  Service: { apiVersion: 'v1', resource: SERVICES, namespaced: true },
  EndpointSlice: { apiVersion: 'discovery.k8s.io/v1', resource: ENDPOINTSLICES, namespaced: true },
  NetworkPolicy: { apiVersion: 'networking.k8s.io/v1', resource: NETWORKPOLICIES, namespaced: true },
};

/** In dependency order: what a consumer may need before the next kind (Pods before the Services that select them). */
export const KIND_NAMES: readonly Kind[] = ['Namespace', 'Node', 'Pod', 'Service', 'EndpointSlice', 'NetworkPolicy'];

export const isKind = (k: unknown): k is Kind => typeof k === 'string' && Object.hasOwn(KINDS, k);

/** The cache key of an object within its kind: "namespace/name" ("/name" when cluster-scoped). */
export const objectKey = (o: KubernetesObject): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** The label an EndpointSlice carries to name its Service. */
export const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';
/** The label naming the controller that manages an EndpointSlice. */
export const LABEL_MANAGED_BY = 'endpointslice.kubernetes.io/managed-by';
