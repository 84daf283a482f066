// Every bullet of the networking.k8s.io/v1 semantics, one table row (or a
// few) each, against evaluate(). The world is small and fixed; each row adds
// the policies it needs.
import { describe, expect, test } from 'vitest';
import type { V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { namespace, pod, policy } from '../testing/fixtures.ts';
import { buildCluster } from './cluster.ts';
import { evaluate, explainText, UnknownEndpointError, type Endpoint, type Verdict } from './evaluate.ts';
import type { Protocol } from './types.ts';

const NAMESPACES = [namespace('ns1', { team: 'a' }), namespace('ns2', { team: 'b', env: 'prod' }), namespace('ns3')];
const PODS: V1Pod[] = [
  pod('ns1', 'web', { labels: { app: 'web' }, ips: ['10.1.0.1', 'fd00:1::1'], node: 'n1', ports: [['http', 'TCP', 8080], ['dns', 'UDP', 53], ['metrics', 'TCP', 9100]] }),
  pod('ns1', 'client', { labels: { app: 'client' }, ips: ['10.1.0.2', 'fd00:1::2'], node: 'n1' }),
  pod('ns1', 'bare', { ips: ['10.1.0.3'], node: 'n2' }),
  pod('ns1', 'prod', { labels: { app: 'client', env: 'prod' }, ips: ['10.1.0.4'], node: 'n2' }),
  pod('ns2', 'client', { labels: { app: 'client' }, ips: ['10.2.0.2'], node: 'n2' }),
  pod('ns2', 'api', { labels: { app: 'api' }, ips: ['10.2.0.5'], node: 'n2', ports: [['http', 'TCP', 9090], ['http-udp', 'UDP', 9090]] }),
  pod('ns3', 'client', { labels: { app: 'client' }, ips: ['10.3.0.2'], node: 'n2' }),
  // The node's own agent: hostNetwork, so its address is n1's.
  pod('ns1', 'hostagent', { labels: { app: 'client' }, ips: ['192.0.2.11'], node: 'n1', hostNetwork: true }),
  pod('ns1', 'remoteagent', { labels: { app: 'client' }, ips: ['192.0.2.12'], node: 'n2', hostNetwork: true }),
  // Only status.podIP, as older kubelets write it.
  pod('ns3', 'legacy', { labels: { app: 'client' }, node: 'n2' }),
  pod('ns1', 'done', { labels: { app: 'client' }, ips: ['10.1.0.9'], node: 'n1', phase: 'Succeeded' }),
];
PODS.find((p) => p.metadata!.name === 'legacy')!.status = { phase: 'Running', podIP: '10.3.0.7' };

const WEB = { matchLabels: { app: 'web' } };
const denyIngress = (ns: string, sel: unknown = {}): V1NetworkPolicy => policy(ns, 'deny-ingress', { podSelector: sel });
const denyEgress = (ns: string, sel: unknown = {}): V1NetworkPolicy => policy(ns, 'deny-egress', { podSelector: sel, policyTypes: ['Egress'] });
const ingressTo = (name: string, ingress: unknown, sel: unknown = WEB, ns = 'ns1'): V1NetworkPolicy => policy(ns, name, { podSelector: sel, ingress });
const egressFrom = (name: string, egress: unknown, sel: unknown, ns = 'ns1'): V1NetworkPolicy => policy(ns, name, { podSelector: sel, policyTypes: ['Egress'], egress });

interface Row {
  name: string;
  policies: V1NetworkPolicy[];
  src: Endpoint;
  dst: Endpoint;
  port?: number;
  protocol?: Protocol;
  family?: 4 | 6;
  allowed: boolean;
  check?: (v: Verdict) => void;
}

const P = (key: string): Endpoint => ({ pod: key });
const IP = (ip: string): Endpoint => ({ ip });

function run(r: Row): Verdict {
  const c = buildCluster({ pods: PODS, namespaces: NAMESPACES, policies: r.policies });
  return evaluate(c, r.src, r.dst, r.port ?? 8080, r.protocol ?? 'TCP', r.family === undefined ? {} : { family: r.family });
}

const table = (rows: Row[]): void => {
  test.each(rows)('$name', (r) => {
    const v = run(r);
    expect(v.allowed, `${v.egress.reason} | ${v.ingress.reason}`).toBe(r.allowed);
    r.check?.(v);
  });
};

describe('selection', () => {
  table([
    { name: 'no policy: everything allowed, nothing isolated', policies: [], src: P('ns2/client'), dst: P('ns1/web'), allowed: true, check: (v) => expect([v.egress.isolated, v.ingress.isolated]).toEqual([false, false]) },
    { name: 'empty podSelector selects every pod of its namespace', policies: [denyIngress('ns1')], src: P('ns2/client'), dst: P('ns1/bare'), allowed: false },
    { name: 'empty podSelector selects no pod of another namespace', policies: [denyIngress('ns1')], src: P('ns1/client'), dst: P('ns2/api'), allowed: true },
    { name: 'matchLabels selects the labelled pod', policies: [denyIngress('ns1', WEB)], src: P('ns1/client'), dst: P('ns1/web'), allowed: false },
    { name: 'matchLabels leaves other pods alone', policies: [denyIngress('ns1', WEB)], src: P('ns1/web'), dst: P('ns1/client'), allowed: true },
    { name: 'In selects', policies: [denyIngress('ns1', { matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'db'] }] })], src: P('ns1/client'), dst: P('ns1/web'), allowed: false },
    { name: 'NotIn selects a pod lacking the key', policies: [denyIngress('ns1', { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['web'] }] })], src: P('ns1/client'), dst: P('ns1/bare'), allowed: false },
    { name: 'NotIn does not select a pod with a listed value', policies: [denyIngress('ns1', { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['web'] }] })], src: P('ns1/client'), dst: P('ns1/web'), allowed: true },
    { name: 'Exists selects', policies: [denyIngress('ns1', { matchExpressions: [{ key: 'env', operator: 'Exists' }] })], src: P('ns1/client'), dst: P('ns1/prod'), allowed: false },
    { name: 'DoesNotExist selects the pod without the key', policies: [denyIngress('ns1', { matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] })], src: P('ns1/client'), dst: P('ns1/bare'), allowed: false },
    { name: 'DoesNotExist leaves a pod with the key', policies: [denyIngress('ns1', { matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] })], src: P('ns1/client'), dst: P('ns1/web'), allowed: true },
  ]);
});

describe('policyTypes and isolation per direction', () => {
  table([
    { name: 'ingress-only policy does not isolate egress', policies: [denyIngress('ns1')], src: P('ns1/web'), dst: P('ns2/api'), port: 9090, allowed: true, check: (v) => expect(v.egress.isolated).toBe(false) },
    { name: 'egress rules imply Egress', policies: [policy('ns1', 'eg', { podSelector: WEB, egress: [{ to: [{ podSelector: {} }] }] })], src: P('ns1/web'), dst: P('ns2/api'), port: 9090, allowed: false },
    { name: 'egress rules imply Egress, and Ingress stays', policies: [policy('ns1', 'eg', { podSelector: WEB, egress: [{}] })], src: P('ns1/client'), dst: P('ns1/web'), allowed: false },
    { name: 'policyTypes [Egress] does not isolate ingress', policies: [denyEgress('ns1', WEB)], src: P('ns1/client'), dst: P('ns1/web'), allowed: true },
    { name: 'policyTypes [Egress] with no rules denies all egress', policies: [denyEgress('ns1', WEB)], src: P('ns1/web'), dst: IP('198.51.100.1'), port: 443, allowed: false, check: (v) => expect(v.egress.reason).toMatch(/isolated for egress by ns1\/deny-egress; no rule matched/) },
    { name: 'policyTypes both with no rules denies ingress', policies: [policy('ns1', 'both', { podSelector: WEB, policyTypes: ['Ingress', 'Egress'] })], src: P('ns1/client'), dst: P('ns1/web'), allowed: false },
    { name: 'isolated for ingress only: the pod may still send', policies: [denyIngress('ns1', WEB)], src: P('ns1/web'), dst: P('ns1/client'), allowed: true },
    {
      name: 'rules of all selecting policies are a union',
      policies: [ingressTo('from-client', [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }] }]), ingressTo('from-ns2', [{ from: [{ namespaceSelector: { matchLabels: { team: 'b' } } }] }])],
      src: P('ns2/api'),
      dst: P('ns1/web'),
      allowed: true,
      check: (v) => {
        expect(v.ingress.policies.map((p) => p.policy)).toEqual(['ns1/from-client', 'ns1/from-ns2']);
        expect(v.ingress.allowedBy).toEqual([{ policy: 'ns1/from-ns2', direction: 'ingress', rule: 0, peer: 0, port: 'any' }]);
      },
    },
    { name: 'a deny-all policy does not cancel another policy allowing', policies: [denyIngress('ns1'), ingressTo('from-client', [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }] }])], src: P('ns1/client'), dst: P('ns1/web'), allowed: true },
  ]);
});

describe('peers', () => {
  const fromPods = (sel: unknown): unknown => [{ from: [{ podSelector: sel }] }];
  table([
    { name: 'podSelector peer matches pods in the policy namespace', policies: [ingressTo('p', fromPods({ matchLabels: { app: 'client' } }))], src: P('ns1/client'), dst: P('ns1/web'), allowed: true },
    { name: 'podSelector peer does not match the same labels in another namespace', policies: [ingressTo('p', fromPods({ matchLabels: { app: 'client' } }))], src: P('ns2/client'), dst: P('ns1/web'), allowed: false },
    { name: 'empty podSelector peer: every pod of the policy namespace', policies: [ingressTo('p', fromPods({}))], src: P('ns1/bare'), dst: P('ns1/web'), allowed: true },
    { name: 'empty podSelector peer: not other namespaces', policies: [ingressTo('p', fromPods({}))], src: P('ns3/client'), dst: P('ns1/web'), allowed: false },
    { name: 'namespaceSelector peer matches pods of matching namespaces', policies: [ingressTo('p', [{ from: [{ namespaceSelector: { matchLabels: { env: 'prod' } } }] }])], src: P('ns2/api'), dst: P('ns1/web'), allowed: true },
    { name: 'namespaceSelector peer does not match other namespaces', policies: [ingressTo('p', [{ from: [{ namespaceSelector: { matchLabels: { env: 'prod' } } }] }])], src: P('ns3/client'), dst: P('ns1/web'), allowed: false },
    { name: 'empty namespaceSelector: all namespaces', policies: [ingressTo('p', [{ from: [{ namespaceSelector: {} }] }])], src: P('ns3/client'), dst: P('ns1/web'), allowed: true },
    { name: 'empty namespaceSelector: not external addresses', policies: [ingressTo('p', [{ from: [{ namespaceSelector: {} }] }])], src: IP('198.51.100.7'), dst: P('ns1/web'), allowed: false },
    { name: 'namespace name label is implicit', policies: [ingressTo('p', [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ns3' } } }] }])], src: P('ns3/client'), dst: P('ns1/web'), allowed: true },
    { name: 'both selectors in one peer: AND (both match)', policies: [ingressTo('p', [{ from: [{ namespaceSelector: { matchLabels: { team: 'b' } }, podSelector: { matchLabels: { app: 'client' } } }] }])], src: P('ns2/client'), dst: P('ns1/web'), allowed: true },
    { name: 'both selectors in one peer: AND (namespace matches, pod does not)', policies: [ingressTo('p', [{ from: [{ namespaceSelector: { matchLabels: { team: 'b' } }, podSelector: { matchLabels: { app: 'client' } } }] }])], src: P('ns2/api'), dst: P('ns1/web'), allowed: false },
    { name: 'both selectors in one peer: AND (pod matches, namespace does not)', policies: [ingressTo('p', [{ from: [{ namespaceSelector: { matchLabels: { team: 'b' } }, podSelector: { matchLabels: { app: 'client' } } }] }])], src: P('ns3/client'), dst: P('ns1/web'), allowed: false },
    { name: 'two peers: OR', policies: [ingressTo('p', [{ from: [{ namespaceSelector: { matchLabels: { team: 'b' } } }, { podSelector: { matchLabels: { app: 'client' } } }] }])], src: P('ns2/api'), dst: P('ns1/web'), allowed: true, check: (v) => expect(v.ingress.allowedBy[0]!.peer).toBe(0) },
    { name: 'ipBlock matches an external address', policies: [ingressTo('p', [{ from: [{ ipBlock: { cidr: '198.51.100.0/24' } }] }])], src: IP('198.51.100.7'), dst: P('ns1/web'), allowed: true },
    { name: 'ipBlock except excludes', policies: [ingressTo('p', [{ from: [{ ipBlock: { cidr: '198.51.100.0/24', except: ['198.51.100.0/29'] } }] }])], src: IP('198.51.100.7'), dst: P('ns1/web'), allowed: false },
    { name: 'ipBlock except leaves the rest', policies: [ingressTo('p', [{ from: [{ ipBlock: { cidr: '198.51.100.0/24', except: ['198.51.100.0/29'] } }] }])], src: IP('198.51.100.8'), dst: P('ns1/web'), allowed: true },
    { name: 'ipBlock matches pod addresses too', policies: [ingressTo('p', [{ from: [{ ipBlock: { cidr: '10.2.0.0/16' } }] }])], src: P('ns2/api'), dst: P('ns1/web'), allowed: true },
    { name: 'ipBlock except excludes pod addresses too', policies: [ingressTo('p', [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.2.0.0/16'] } }] }])], src: P('ns2/api'), dst: P('ns1/web'), allowed: false },
    { name: 'ipBlock of IPv6', policies: [ingressTo('p', [{ from: [{ ipBlock: { cidr: 'fd00:1::/64' } }] }])], src: P('ns1/client'), dst: P('ns1/web'), family: 6, allowed: true },
    { name: 'IPv4 ipBlock does not match an IPv6 connection', policies: [ingressTo('p', [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' } }] }])], src: P('ns1/client'), dst: P('ns1/web'), family: 6, allowed: false },
    { name: 'egress ipBlock matches the destination address', policies: [egressFrom('p', [{ to: [{ ipBlock: { cidr: '198.51.100.0/24' } }] }], WEB)], src: P('ns1/web'), dst: IP('198.51.100.20'), port: 443, allowed: true },
    { name: 'egress ipBlock does not match another address', policies: [egressFrom('p', [{ to: [{ ipBlock: { cidr: '198.51.100.0/24' } }] }], WEB)], src: P('ns1/web'), dst: IP('203.0.113.1'), port: 443, allowed: false },
    { name: 'missing from: everyone, external included', policies: [ingressTo('p', [{ ports: [{ port: 8080 }] }])], src: IP('203.0.113.9'), dst: P('ns1/web'), allowed: true, check: (v) => expect(v.ingress.allowedBy[0]).toMatchObject({ peer: 'any', port: 0 }) },
    { name: 'empty from: everyone', policies: [ingressTo('p', [{ from: [] }])], src: P('ns3/client'), dst: P('ns1/web'), allowed: true },
    { name: 'empty to: every destination', policies: [egressFrom('p', [{ to: [] }], WEB)], src: P('ns1/web'), dst: IP('203.0.113.9'), port: 1, allowed: true },
    { name: 'empty rule {}: everyone on every port', policies: [ingressTo('p', [{}])], src: IP('203.0.113.9'), dst: P('ns1/web'), port: 1, protocol: 'SCTP', allowed: true },
    { name: 'no ingress rules: nobody', policies: [ingressTo('p', [])], src: P('ns1/client'), dst: P('ns1/web'), allowed: false },
  ]);
});

describe('ports', () => {
  const onPorts = (ports: unknown): V1NetworkPolicy[] => [ingressTo('p', [{ ports }])];
  table([
    { name: 'protocol defaults to TCP: TCP allowed', policies: onPorts([{ port: 53 }]), src: P('ns1/client'), dst: P('ns1/web'), port: 53, protocol: 'TCP', allowed: true },
    { name: 'protocol defaults to TCP: UDP denied', policies: onPorts([{ port: 53 }]), src: P('ns1/client'), dst: P('ns1/web'), port: 53, protocol: 'UDP', allowed: false },
    { name: 'UDP port', policies: onPorts([{ port: 53, protocol: 'UDP' }]), src: P('ns1/client'), dst: P('ns1/web'), port: 53, protocol: 'UDP', allowed: true },
    { name: 'SCTP port', policies: onPorts([{ port: 5000, protocol: 'SCTP' }]), src: P('ns1/client'), dst: P('ns1/web'), port: 5000, protocol: 'SCTP', allowed: true },
    { name: 'SCTP port does not allow TCP', policies: onPorts([{ port: 5000, protocol: 'SCTP' }]), src: P('ns1/client'), dst: P('ns1/web'), port: 5000, protocol: 'TCP', allowed: false },
    { name: 'numeric port: another port denied', policies: onPorts([{ port: 8080 }]), src: P('ns1/client'), dst: P('ns1/web'), port: 8081, allowed: false },
    { name: 'protocol without port: every port of it', policies: onPorts([{ protocol: 'UDP' }]), src: P('ns1/client'), dst: P('ns1/web'), port: 4242, protocol: 'UDP', allowed: true },
    { name: 'protocol without port: not other protocols', policies: onPorts([{ protocol: 'UDP' }]), src: P('ns1/client'), dst: P('ns1/web'), port: 4242, protocol: 'TCP', allowed: false },
    { name: 'endPort: lower end included', policies: onPorts([{ port: 8000, endPort: 8080 }]), src: P('ns1/client'), dst: P('ns1/web'), port: 8000, allowed: true },
    { name: 'endPort: upper end included', policies: onPorts([{ port: 8000, endPort: 8080 }]), src: P('ns1/client'), dst: P('ns1/web'), port: 8080, allowed: true },
    { name: 'endPort: beyond the end denied', policies: onPorts([{ port: 8000, endPort: 8080 }]), src: P('ns1/client'), dst: P('ns1/web'), port: 8081, allowed: false },
    { name: 'endPort: below the start denied', policies: onPorts([{ port: 8000, endPort: 8080 }]), src: P('ns1/client'), dst: P('ns1/web'), port: 7999, allowed: false },
    { name: 'named port resolves on the destination pod', policies: onPorts([{ port: 'http' }]), src: P('ns1/client'), dst: P('ns1/web'), port: 8080, allowed: true, check: (v) => expect(v.ingress.allowedBy[0]!.port).toBe(0) },
    { name: 'named port: another number denied', policies: onPorts([{ port: 'http' }]), src: P('ns1/client'), dst: P('ns1/web'), port: 9090, allowed: false },
    { name: 'named port: the protocol must match too', policies: onPorts([{ port: 'dns', protocol: 'TCP' }]), src: P('ns1/client'), dst: P('ns1/web'), port: 53, protocol: 'TCP', allowed: false },
    { name: 'named port with its protocol', policies: onPorts([{ port: 'dns', protocol: 'UDP' }]), src: P('ns1/client'), dst: P('ns1/web'), port: 53, protocol: 'UDP', allowed: true },
    { name: 'named port the pod does not declare', policies: onPorts([{ port: 'grpc' }]), src: P('ns1/client'), dst: P('ns1/web'), port: 8080, allowed: false },
    { name: 'rule without ports: every port', policies: [ingressTo('p', [{ from: [{ podSelector: {} }] }])], src: P('ns1/client'), dst: P('ns1/web'), port: 1, allowed: true },
    { name: 'rule without ports: every protocol', policies: [ingressTo('p', [{ from: [{ podSelector: {} }] }])], src: P('ns1/client'), dst: P('ns1/web'), port: 9, protocol: 'SCTP', allowed: true },
    {
      name: 'egress named port resolves on the remote destination pod',
      policies: [egressFrom('p', [{ to: [{ namespaceSelector: {} }], ports: [{ port: 'http' }] }], WEB)],
      src: P('ns1/web'),
      dst: P('ns2/api'),
      port: 9090,
      allowed: true,
    },
    {
      name: "egress named port: the source's own number does not count",
      policies: [egressFrom('p', [{ to: [{ namespaceSelector: {} }], ports: [{ port: 'http' }] }], WEB)],
      src: P('ns1/web'),
      dst: P('ns2/api'),
      port: 8080,
      allowed: false,
    },
    { name: 'egress named port never matches an external address', policies: [egressFrom('p', [{ ports: [{ port: 'http' }] }], WEB)], src: P('ns1/web'), dst: IP('198.51.100.1'), port: 8080, allowed: false },
  ]);
});

describe('connections need both directions', () => {
  table([
    { name: 'egress allows, ingress denies', policies: [egressFrom('out', [{}], { matchLabels: { app: 'client' } }), denyIngress('ns1', WEB)], src: P('ns1/client'), dst: P('ns1/web'), allowed: false, check: (v) => expect([v.egress.allowed, v.ingress.allowed]).toEqual([true, false]) },
    {
      name: 'ingress allows, egress denies',
      policies: [denyEgress('ns2'), ingressTo('in', [{ from: [{ namespaceSelector: {} }] }])],
      src: P('ns2/client'),
      dst: P('ns1/web'),
      allowed: false,
      check: (v) => expect([v.egress.allowed, v.ingress.allowed]).toEqual([false, true]),
    },
    {
      name: 'both allow',
      policies: [egressFrom('out', [{ to: [{ namespaceSelector: { matchLabels: { team: 'a' } } }] }], {}, 'ns2'), ingressTo('in', [{ from: [{ namespaceSelector: { matchLabels: { team: 'b' } } }] }])],
      src: P('ns2/client'),
      dst: P('ns1/web'),
      allowed: true,
    },
    { name: 'external source: egress not policed', policies: [denyIngress('ns1', WEB)], src: IP('198.51.100.1'), dst: P('ns1/web'), allowed: false, check: (v) => expect(v.egress.unpoliced).toBe('external') },
    { name: 'external destination: ingress not policed', policies: [], src: P('ns1/web'), dst: IP('198.51.100.1'), allowed: true, check: (v) => expect(v.ingress.unpoliced).toBe('external') },
    { name: 'an address of a pod is that pod', policies: [ingressTo('p', [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }] }])], src: IP('10.1.0.2'), dst: P('ns1/web'), allowed: true, check: (v) => expect(v.egress.pod).toBe('ns1/client') },
    { name: 'a pod reaching itself is always allowed', policies: [denyIngress('ns1'), denyEgress('ns1')], src: P('ns1/web'), dst: P('ns1/web'), allowed: true, check: (v) => expect(v.ingress.unpoliced).toBe('loopback') },
  ]);
});

describe('hostNetwork pods and node traffic', () => {
  table([
    { name: 'a hostNetwork pod is not policed for ingress', policies: [denyIngress('ns1')], src: P('ns2/client'), dst: P('ns1/hostagent'), allowed: true, check: (v) => expect(v.ingress.unpoliced).toBe('host-network') },
    { name: 'a hostNetwork pod is not policed for egress', policies: [denyEgress('ns1')], src: P('ns1/hostagent'), dst: IP('198.51.100.1'), allowed: true, check: (v) => expect(v.egress.unpoliced).toBe('host-network') },
    { name: "a node's own traffic to its pods is allowed (kubelet probes)", policies: [denyIngress('ns1')], src: P('ns1/hostagent'), dst: P('ns1/web'), allowed: true, check: (v) => expect(v.ingress.unpoliced).toBe('node-local') },
    { name: 'another node is not: isolated pods deny it', policies: [denyIngress('ns1')], src: P('ns1/remoteagent'), dst: P('ns1/web'), allowed: false },
    { name: 'a hostNetwork pod is not a pod peer, even with matching labels', policies: [ingressTo('p', [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }] }])], src: P('ns1/remoteagent'), dst: P('ns1/web'), allowed: false },
    { name: "an ipBlock with the node's address admits it", policies: [ingressTo('p', [{ from: [{ ipBlock: { cidr: '192.0.2.0/24' } }] }])], src: P('ns1/remoteagent'), dst: P('ns1/web'), allowed: true },
  ]);
});

describe('dual-stack', () => {
  table([
    { name: 'the family defaults to IPv4 when both have it', policies: [], src: P('ns1/client'), dst: P('ns1/web'), allowed: true, check: (v) => expect([String(v.srcIP), String(v.dstIP), v.family]).toEqual(['10.1.0.2', '10.1.0.1', 4]) },
    { name: 'IPv6 when asked', policies: [], src: P('ns1/client'), dst: P('ns1/web'), family: 6, allowed: true, check: (v) => expect([String(v.srcIP), String(v.dstIP)]).toEqual(['fd00:1::2', 'fd00:1::1']) },
    { name: 'an IPv6 source address picks the family', policies: [ingressTo('p', [{ from: [{ ipBlock: { cidr: 'fd00:1::/64', except: ['fd00:1::2/128'] } }] }])], src: IP('fd00:1::2'), dst: P('ns1/web'), allowed: false, check: (v) => expect([v.family, v.egress.pod]).toEqual([6, 'ns1/client']) },
    { name: 'status.podIP is used without status.podIPs', policies: [ingressTo('p', [{ from: [{ ipBlock: { cidr: '10.3.0.7/32' } }] }])], src: P('ns3/legacy'), dst: P('ns1/web'), allowed: true },
    { name: 'the same policy selects a pod in both families', policies: [denyIngress('ns1', WEB)], src: P('ns1/client'), dst: P('ns1/web'), family: 6, allowed: false },
  ]);
});

describe('rejected policies fail closed, the others keep working', () => {
  const bad = ingressTo('bad', [{ from: [{ ipBlock: { cidr: '10.0.0.0/40' } }] }, { from: [{ podSelector: {} }] }]);
  table([
    { name: 'the pods a rejected policy selects are isolated with nothing allowed', policies: [bad], src: P('ns1/client'), dst: P('ns1/web'), allowed: false, check: (v) => expect(v.ingress.policies).toEqual([{ policy: 'ns1/bad', rejected: true }]) },
    { name: 'its valid rules do not count either', policies: [bad], src: P('ns1/bare'), dst: P('ns1/web'), allowed: false, check: (v) => expect(v.ingress.reason).toMatch(/ns1\/bad \(rejected\)/) },
    { name: 'pods it does not select are untouched', policies: [bad], src: P('ns1/web'), dst: P('ns1/client'), allowed: true },
    { name: 'other policies selecting the pod still allow', policies: [bad, ingressTo('good', [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }] }])], src: P('ns1/client'), dst: P('ns1/web'), allowed: true },
    { name: 'a rejected egress policy isolates egress only', policies: [egressFrom('bad-eg', [{ ports: [{ port: 'NOPE' }] }], WEB)], src: P('ns1/client'), dst: P('ns1/web'), allowed: true },
    { name: 'a rejected egress policy denies egress', policies: [egressFrom('bad-eg', [{ ports: [{ port: 'NOPE' }] }], WEB)], src: P('ns1/web'), dst: P('ns1/client'), allowed: false },
    { name: 'an invalid podSelector isolates every pod of its namespace', policies: [ingressTo('badsel', [{}], { matchExpressions: [{ key: 'app', operator: 'In' }] })], src: P('ns2/client'), dst: P('ns1/bare'), allowed: false },
    { name: 'an invalid podSelector does not reach other namespaces', policies: [ingressTo('badsel', [{}], { matchExpressions: [{ key: 'app', operator: 'In' }] })], src: P('ns1/client'), dst: P('ns2/api'), port: 9090, allowed: true },
    { name: 'invalid policyTypes isolates both directions', policies: [policy('ns1', 'badtypes', { podSelector: WEB, policyTypes: ['Ingres'], ingress: [{}] })], src: P('ns1/web'), dst: IP('198.51.100.1'), allowed: false },
  ]);
});

describe('inputs', () => {
  const c = buildCluster({ pods: PODS, namespaces: NAMESPACES, policies: [] });
  test('finished pods are gone: their address may be reused', () => {
    expect(() => evaluate(c, P('ns1/done'), P('ns1/web'), 80, 'TCP')).toThrow(UnknownEndpointError);
    expect(c.podByIP.has('10.1.0.9')).toBe(false);
  });
  test('an unknown pod or a bad address is an error with a code', () => {
    expect(() => evaluate(c, P('ns9/x'), P('ns1/web'), 80, 'TCP')).toThrow(/unknown endpoint ns9\/x/);
    expect(() => evaluate(c, IP('10.0.0.300'), P('ns1/web'), 80, 'TCP')).toThrow(expect.objectContaining({ code: 'NETPOL_UNKNOWN_ENDPOINT' }));
  });
  test('an unparsable pod address is reported and skipped', () => {
    const bad = pod('ns1', 'weird', { ips: ['10.1.0.50', 'not-an-ip'], node: 'n1' });
    const c2 = buildCluster({ pods: [bad] });
    expect(c2.pods.get('ns1/weird')!.ips.map(String)).toEqual(['10.1.0.50']);
    expect(c2.problems).toEqual([{ kind: 'Pod', object: 'ns1/weird', field: 'status.podIPs[1].ip', reason: 'invalid IP address "not-an-ip"; ignored' }]);
  });
});

describe('explain text', () => {
  test('names the answer, the addresses, and per direction the policies and the rule', () => {
    const c = buildCluster({
      pods: PODS,
      namespaces: NAMESPACES,
      policies: [ingressTo('from-client', [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 'http' }] }]), denyEgress('ns1', { matchLabels: { app: 'nothing' } })],
    });
    expect(explainText(evaluate(c, P('ns1/client'), P('ns1/web'), 8080, 'TCP'))).toBe(
      [
        'ALLOWED: 10.1.0.2 -> 10.1.0.1 (IPv4)',
        '  egress:  allowed: ns1/client is not isolated for egress: no policy selects it',
        '  ingress: allowed: ns1/web is isolated for ingress by ns1/from-client; allowed by ns1/from-client ingress[0] (from[0], ports[0])',
      ].join('\n'),
    );
    expect(explainText(evaluate(c, P('ns2/client'), P('ns1/web'), 8080, 'TCP'))).toMatch(/^DENIED: 10\.2\.0\.2 -> 10\.1\.0\.1 \(IPv4\)\n.*\n  ingress: denied: ns1\/web is isolated for ingress by ns1\/from-client; no rule matched$/);
  });

  test('a pod without an address of the family says so', () => {
    const c = buildCluster({ pods: PODS, namespaces: NAMESPACES });
    expect(explainText(evaluate(c, P('ns1/bare'), P('ns1/web'), 80, 'TCP', { family: 6 }))).toMatch(/^ALLOWED: \(no IPv6 address\) -> fd00:1::1 \(IPv6\)/);
  });
});
