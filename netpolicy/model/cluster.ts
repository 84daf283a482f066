// The cluster as the model sees it: pods, namespaces and compiled policies,
// indexed for the questions evaluate.ts and plan.ts ask. Built in one pass
// from the API objects; never mutated afterwards (a change builds a new one).
import type { V1Namespace, V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { IPAddr } from '../../lib/ip/index.ts';
import { compilePolicy, DEFAULT_NAMESPACE } from './policy.ts';
import { matches } from './selector.ts';
import type { ContainerPort, Direction, Namespace, Peer, Pod, Policy, Problem, Protocol } from './types.ts';
import { PROTOCOLS } from './types.ts';

/** The label the API server puts on every namespace (since 1.21), with the namespace's name. */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

export interface ClusterObjects {
  readonly pods?: readonly V1Pod[];
  readonly namespaces?: readonly V1Namespace[];
  readonly policies?: readonly V1NetworkPolicy[];
}

export interface Cluster {
  /** Pods that can send or receive traffic (not Succeeded/Failed), by namespace/name. */
  readonly pods: ReadonlyMap<string, Pod>;
  readonly namespaces: ReadonlyMap<string, Namespace>;
  /** Every policy, rejected ones included (they isolate), sorted by key. */
  readonly policies: readonly Policy[];
  /** Problems of all inputs: the rejected policies' and the pods' ignored fields. */
  readonly problems: readonly Problem[];
  /** Pod of an address (not hostNetwork pods: their address is the node's). */
  readonly podByIP: ReadonlyMap<string, Pod>;
  readonly podsByNamespace: ReadonlyMap<string, readonly Pod[]>;
  readonly policiesByNamespace: ReadonlyMap<string, readonly Policy[]>;
}

export function buildCluster(objs: ClusterObjects): Cluster {
  const problems: Problem[] = [];
  const namespaces = new Map<string, Namespace>();
  for (const ns of objs.namespaces ?? []) {
    const name = ns.metadata?.name;
    if (!name) continue;
    namespaces.set(name, { name, labels: namespaceLabels(name, ns.metadata?.labels) });
  }
  const pods = new Map<string, Pod>();
  for (const p of objs.pods ?? []) {
    const pod = compilePod(p, problems);
    if (pod) pods.set(pod.key, pod);
  }
  const policies = (objs.policies ?? []).map(compilePolicy).sort((a, b) => cmp(a.key, b.key));
  for (const pol of policies) problems.push(...pol.problems);

  const podByIP = new Map<string, Pod>();
  const podsByNamespace = new Map<string, Pod[]>();
  for (const pod of [...pods.values()].sort((a, b) => cmp(a.key, b.key))) {
    push(podsByNamespace, pod.namespace, pod);
    if (!pod.hostNetwork) for (const ip of pod.ips) podByIP.set(ip.toString(), pod);
  }
  const policiesByNamespace = new Map<string, Policy[]>();
  for (const pol of policies) push(policiesByNamespace, pol.namespace, pol);
  return { pods, namespaces, policies, problems, podByIP, podsByNamespace, policiesByNamespace };
}

/**
 * A namespace's labels, with kubernetes.io/metadata.name as the API server
 * sets it: a namespace from a manifest (or one we have not seen, for a pod
 * that names it) matches `kubernetes.io/metadata.name: <ns>` as it would live.
 */
function namespaceLabels(name: string, labels: Record<string, string> | undefined): ReadonlyMap<string, string> {
  const m = new Map(Object.entries(labels ?? {}).filter(([, v]) => typeof v === 'string'));
  m.set(NAMESPACE_NAME_LABEL, name);
  return m;
}

/** A namespace by name; one we have no object for still carries its name label. */
export function namespaceOf(c: Cluster, name: string): Namespace {
  return c.namespaces.get(name) ?? { name, labels: namespaceLabels(name, undefined) };
}

function compilePod(p: V1Pod, problems: Problem[]): Pod | undefined {
  const name = p.metadata?.name;
  if (!name) return undefined;
  // A finished pod sends nothing, and its IP may already belong to a new pod.
  const phase = p.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return undefined;
  const namespace = p.metadata?.namespace || DEFAULT_NAMESPACE;
  const key = `${namespace}/${name}`;
  const report = (field: string, reason: string): void => {
    problems.push({ kind: 'Pod', object: key, field, reason });
  };
  return {
    key,
    namespace,
    name,
    labels: new Map(Object.entries(p.metadata?.labels ?? {}).filter(([, v]) => typeof v === 'string')),
    nodeName: p.spec?.nodeName || undefined,
    hostNetwork: p.spec?.hostNetwork === true,
    ips: podIPs(p, report),
    ports: containerPorts(p),
  };
}

/** status.podIPs, else status.podIP; unparsable entries are reported and skipped. */
function podIPs(p: V1Pod, report: (field: string, reason: string) => void): IPAddr[] {
  const list: [unknown, string][] = p.status?.podIPs?.length ? p.status.podIPs.map((x, i) => [x.ip, `status.podIPs[${i}].ip`]) : [];
  if (list.length === 0 && p.status?.podIP) list.push([p.status.podIP, 'status.podIP']);
  const out = new Map<string, IPAddr>();
  for (const [text, field] of list) {
    const ip = typeof text === 'string' ? IPAddr.parse(text) : undefined;
    if (ip) out.set(ip.toString(), ip);
    else report(field, `invalid IP address ${JSON.stringify(text)}; ignored`);
  }
  return [...out.values()].sort((a, b) => a.compare(b));
}

function containerPorts(p: V1Pod): ContainerPort[] {
  const out: ContainerPort[] = [];
  for (const c of [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])]) {
    for (const cp of c.ports ?? []) {
      const protocol = (cp.protocol ?? 'TCP') as Protocol;
      if (!PROTOCOLS.includes(protocol) || !Number.isInteger(cp.containerPort)) continue;
      out.push({ name: cp.name || undefined, protocol, port: cp.containerPort });
    }
  }
  return out;
}

/** Whether a policy applies to a pod: same namespace, podSelector matches, and the pod is policed at all. */
export function selects(pol: Policy, pod: Pod): boolean {
  return !pod.hostNetwork && pod.namespace === pol.namespace && matches(pol.podSelector, pod.labels);
}

export function isolates(pol: Policy, dir: Direction): boolean {
  return dir === 'ingress' ? pol.ingressIsolation : pol.egressIsolation;
}

/** The policies that select `pod` and isolate it in `dir`, sorted by key. */
export function selectingPolicies(c: Cluster, pod: Pod, dir: Direction): Policy[] {
  return (c.policiesByNamespace.get(pod.namespace) ?? []).filter((pol) => isolates(pol, dir) && selects(pol, pod));
}

/**
 * Whether a pod peer of a policy in `policyNamespace` matches `pod` by
 * identity (namespace + labels). hostNetwork pods never do: their traffic
 * carries the node's address, and matching it would allow the whole node.
 */
export function podPeerMatches(c: Cluster, peer: Peer & { kind: 'pods' }, policyNamespace: string, pod: Pod): boolean {
  if (pod.hostNetwork) return false;
  if (peer.namespaces.kind === 'policy-namespace') {
    if (pod.namespace !== policyNamespace) return false;
  } else if (!matches(peer.namespaces.selector, namespaceOf(c, pod.namespace).labels)) return false;
  return matches(peer.pods, pod.labels);
}

/** Whether an address lies in an ipBlock: inside cidr and outside every except. */
export function ipBlockContains(peer: Peer & { kind: 'ipBlock' }, ip: IPAddr): boolean {
  return peer.cidr.contains(ip) && !peer.except.some((e) => e.contains(ip));
}

/** The port number a named port resolves to on `pod` for `protocol`, if it declares one. */
export function resolveNamedPort(pod: Pod, name: string, protocol: Protocol): number | undefined {
  return pod.ports.find((p) => p.name === name && p.protocol === protocol)?.port;
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
