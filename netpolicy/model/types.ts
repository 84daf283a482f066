// The validated, typed model of NetworkPolicy enforcement. Everything here is
// built once from the API objects (cluster.ts) and then only read: evaluate.ts
// answers "is this connection allowed, and why", plan.ts computes what one
// node must enforce. Addresses and prefixes are lib/ip value types; label
// selectors are compiled (selector.ts) so matching never re-parses them.
import type { Family, IPAddr, IPPrefix } from '../../lib/ip/index.ts';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

export type Direction = 'ingress' | 'egress';
export const DIRECTIONS: readonly Direction[] = ['ingress', 'egress'];

export type Operator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface Requirement {
  readonly key: string;
  readonly operator: Operator;
  /** Sorted and deduplicated; empty for Exists and DoesNotExist. */
  readonly values: readonly string[];
}

/** A compiled metav1.LabelSelector. The empty selector matches everything. */
export interface Selector {
  /** matchLabels as [key, value], sorted by key. */
  readonly labels: readonly (readonly [string, string])[];
  /** matchExpressions, sorted by key, operator, then values. */
  readonly requirements: readonly Requirement[];
  /** Canonical text: two selectors with equal keys select the same objects. */
  readonly key: string;
}

/** Where a pod peer's pods live: the policy's own namespace, or the namespaces a selector matches. */
export type NamespaceScope = { readonly kind: 'policy-namespace' } | { readonly kind: 'selector'; readonly selector: Selector };

export type Peer =
  | { readonly kind: 'pods'; readonly namespaces: NamespaceScope; readonly pods: Selector }
  | { readonly kind: 'ipBlock'; readonly cidr: IPPrefix; readonly except: readonly IPPrefix[] };

/** One entry of a rule's `ports`. `all` is a protocol given without a port. */
export type PortSpec =
  | { readonly kind: 'all'; readonly protocol: Protocol }
  | { readonly kind: 'range'; readonly protocol: Protocol; readonly from: number; readonly to: number }
  | { readonly kind: 'named'; readonly protocol: Protocol; readonly name: string };

export interface Rule {
  /** Position in spec.ingress / spec.egress, for explanations and field paths. */
  readonly index: number;
  /** `any`: the rule's from/to is empty or missing, so every source or destination matches. */
  readonly peers: readonly Peer[] | 'any';
  /** `any`: the rule has no ports, so every port of every protocol matches. */
  readonly ports: readonly PortSpec[] | 'any';
}

/** A problem found in an input object: which object, which field, what is wrong. */
export interface Problem {
  readonly kind: 'NetworkPolicy' | 'Pod';
  /** namespace/name */
  readonly object: string;
  /** Field path as the API server writes it: spec.ingress[0].from[1].ipBlock.cidr */
  readonly field: string;
  readonly reason: string;
}

export interface Policy {
  /** namespace/name */
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  /**
   * The pods of `namespace` this policy applies to. For a rejected policy
   * whose own podSelector is invalid this is the empty selector (every pod of
   * the namespace): failing closed means isolating too many pods, never too few.
   */
  readonly podSelector: Selector;
  /** The directions it isolates: policyTypes, or its defaults. */
  readonly ingressIsolation: boolean;
  readonly egressIsolation: boolean;
  /** Empty when rejected: a rejected policy isolates and allows nothing. */
  readonly ingress: readonly Rule[];
  readonly egress: readonly Rule[];
  /** Non-empty means the policy is rejected. */
  readonly problems: readonly Problem[];
}

export interface ContainerPort {
  readonly name: string | undefined;
  readonly protocol: Protocol;
  readonly port: number;
}

export interface Pod {
  /** namespace/name */
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly labels: ReadonlyMap<string, string>;
  readonly nodeName: string | undefined;
  /** hostNetwork pods are not policed and are never pod peers: their address is the node's. */
  readonly hostNetwork: boolean;
  /** status.podIPs (status.podIP when that is missing), deduplicated, IPv4 first. */
  readonly ips: readonly IPAddr[];
  readonly ports: readonly ContainerPort[];
}

export interface Namespace {
  readonly name: string;
  readonly labels: ReadonlyMap<string, string>;
}

export type { Family };
