// Builders of API objects for the model's and the renderers' tests: the
// shapes the API serves (or a manifest file holds), kept short.
import type { V1Namespace, V1NetworkPolicy, V1NetworkPolicySpec, V1Pod } from '@kubernetes/client-node';

export interface PodOptions {
  readonly labels?: Record<string, string>;
  /** status.podIPs; the first also goes into status.podIP, as the kubelet writes it. */
  readonly ips?: readonly string[];
  readonly node?: string;
  readonly hostNetwork?: boolean;
  /** containerPorts: [name, protocol, port]. */
  readonly ports?: readonly (readonly [string | undefined, string, number])[];
  readonly phase?: string;
}

export function pod(namespace: string, name: string, o: PodOptions = {}): V1Pod {
  const ips = o.ips ?? [];
  const p: V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace, name, labels: { ...(o.labels ?? {}) } },
    spec: {
      containers: [
        {
          name: 'c',
          ports: (o.ports ?? []).map(([n, protocol, containerPort]) => ({ ...(n === undefined ? {} : { name: n }), protocol, containerPort })),
        },
      ],
      ...(o.node === undefined ? {} : { nodeName: o.node }),
      ...(o.hostNetwork ? { hostNetwork: true } : {}),
    },
    status: { phase: o.phase ?? 'Running', ...(ips[0] ? { podIP: ips[0] } : {}), podIPs: ips.map((ip) => ({ ip })) },
  };
  return p;
}

export function namespace(name: string, labels: Record<string, string> = {}): V1Namespace {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}

/**
 * A policy whose spec is written as in a manifest (`from`, not client-node's
 * `_from`): plain objects are what the manifest source and the API's JSON hand us.
 */
export function policy(namespace: string, name: string, spec: unknown): V1NetworkPolicy {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace, name }, spec: spec as V1NetworkPolicySpec };
}
