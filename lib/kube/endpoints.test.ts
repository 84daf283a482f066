import { describe, expect, it } from 'vitest';
import type { V1EndpointSlice, V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import { DERIVED_MANAGED_BY, deriveEndpointSlices, endpointSlicesFor } from './endpoints.ts';

const svc = (spec: V1Service['spec'], name = 'web', extra: Partial<V1Service> = {}): V1Service => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'shop', labels: { team: 'a' } },
  spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }], ...spec },
  ...extra,
});

interface PodOpts {
  ips?: string[];
  podIP?: string;
  ready?: boolean;
  deleting?: boolean;
  phase?: string;
  labels?: Record<string, string>;
  namespace?: string;
  node?: string;
  ports?: { name: string; containerPort: number; protocol?: string }[];
}

const pod = (name: string, o: PodOpts = {}): V1Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name,
    namespace: o.namespace ?? 'shop',
    uid: `uid-${name}`,
    labels: o.labels ?? { app: 'web' },
    ...(o.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' as unknown as Date } : {}),
  },
  spec: { nodeName: o.node ?? 'n1', containers: [{ name: 'c', ports: o.ports ?? [] }] },
  status: {
    phase: o.phase ?? 'Running',
    ...(o.ips ? { podIPs: o.ips.map((ip) => ({ ip })) } : {}),
    ...(o.podIP ? { podIP: o.podIP } : {}),
    conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }],
  },
});

const summary = (slices: V1EndpointSlice[]): string[] =>
  slices.flatMap((s) =>
    (s.endpoints ?? []).map((e) => {
      const c = e.conditions ?? {};
      return `${s.addressType} ${e.addresses.join(',')} ${e.targetRef?.name} ready=${c.ready} serving=${c.serving} terminating=${c.terminating} ports=${(s.ports ?? []).map((p) => `${p.name}:${p.port}/${p.protocol}`).join(',')}`;
    }),
  );

describe('endpointSlicesFor', () => {
  it('maps Ready, not-ready and terminating pods to the controller conditions', () => {
    const slices = endpointSlicesFor(svc({}), [
      pod('a', { ips: ['192.0.2.10'] }),
      pod('b', { ips: ['192.0.2.11'], ready: false }),
      pod('c', { ips: ['192.0.2.12'], deleting: true }),
      pod('d', { ips: ['192.0.2.13'], deleting: true, ready: false }),
    ]);
    expect(slices).toHaveLength(1);
    expect(summary(slices)).toEqual([
      'IPv4 192.0.2.10 a ready=true serving=true terminating=false ports=http:8080/TCP',
      'IPv4 192.0.2.11 b ready=false serving=false terminating=false ports=http:8080/TCP',
      'IPv4 192.0.2.12 c ready=false serving=true terminating=true ports=http:8080/TCP',
      'IPv4 192.0.2.13 d ready=false serving=false terminating=true ports=http:8080/TCP',
    ]);
    expect(slices[0]!.endpoints?.[0]).toMatchObject({ nodeName: 'n1', targetRef: { kind: 'Pod', name: 'a', namespace: 'shop', uid: 'uid-a' } });
  });

  it('publishNotReadyAddresses makes every endpoint ready and serving', () => {
    const slices = endpointSlicesFor(svc({ publishNotReadyAddresses: true }), [pod('b', { ips: ['192.0.2.11'], ready: false }), pod('c', { ips: ['192.0.2.12'], deleting: true })]);
    expect(summary(slices)).toEqual([
      'IPv4 192.0.2.11 b ready=true serving=true terminating=false ports=http:8080/TCP',
      'IPv4 192.0.2.12 c ready=true serving=true terminating=true ports=http:8080/TCP',
    ]);
  });

  it('skips pods without an IP, terminal pods, other namespaces and non-matching labels', () => {
    const slices = endpointSlicesFor(svc({}), [
      pod('noip'),
      pod('done', { ips: ['192.0.2.20'], phase: 'Succeeded' }),
      pod('failed', { ips: ['192.0.2.21'], phase: 'Failed' }),
      pod('pending', { ips: ['192.0.2.22'], phase: 'Pending', ready: false }),
      pod('other', { ips: ['192.0.2.23'], labels: { app: 'db' } }),
      pod('fallback', { podIP: '192.0.2.24' }),
    ]);
    expect(summary(slices).map((s) => s.split(' ').slice(0, 3).join(' '))).toEqual(['IPv4 192.0.2.24 fallback', 'IPv4 192.0.2.22 pending']);
  });

  it('puts dual-stack pods into one slice per address family', () => {
    const slices = endpointSlicesFor(svc({ ipFamilies: ['IPv4', 'IPv6'] }), [pod('a', { ips: ['192.0.2.10', 'fd00::10'] }), pod('b', { ips: ['fd00::11', '192.0.2.11'] })]);
    expect(slices.map((s) => s.addressType).sort()).toEqual(['IPv4', 'IPv6']);
    const v6 = slices.find((s) => s.addressType === 'IPv6')!;
    expect((v6.endpoints ?? []).map((e) => e.addresses[0])).toEqual(['fd00::10', 'fd00::11']);
    // A single-stack Service takes only its family.
    const v4only = endpointSlicesFor(svc({ ipFamilies: ['IPv4'] }), [pod('a', { ips: ['192.0.2.10', 'fd00::10'] })]);
    expect(v4only.map((s) => s.addressType)).toEqual(['IPv4']);
    const byClusterIP = endpointSlicesFor(svc({ clusterIP: 'fd00::1:1' }), [pod('a', { ips: ['192.0.2.10', 'fd00::10'] })]);
    expect(byClusterIP.map((s) => s.addressType)).toEqual(['IPv6']);
  });

  it('resolves named target ports per pod by name and protocol, defaults targetPort to port', () => {
    const service = svc({
      ports: [
        { name: 'http', port: 80, targetPort: 'web' },
        { name: 'dns', port: 53, targetPort: 'dns', protocol: 'UDP' },
        { name: 'plain', port: 9000 },
      ],
    });
    const slices = endpointSlicesFor(service, [
      pod('a', { ips: ['192.0.2.10'], ports: [{ name: 'web', containerPort: 8080 }, { name: 'dns', containerPort: 5353, protocol: 'UDP' }] }),
      pod('b', { ips: ['192.0.2.11'], ports: [{ name: 'web', containerPort: 8080 }, { name: 'dns', containerPort: 5353, protocol: 'UDP' }] }),
      // Another port number for "web", and "dns" only over TCP: it gets a slice of its own, without dns.
      pod('c', { ips: ['192.0.2.12'], ports: [{ name: 'web', containerPort: 9090 }, { name: 'dns', containerPort: 5353 }] }),
    ]);
    expect(summary(slices).map((s) => s.replace(/ ready.*ports/, ' ports')).sort()).toEqual([
      'IPv4 192.0.2.10 a ports=http:8080/TCP,dns:5353/UDP,plain:9000/TCP',
      'IPv4 192.0.2.11 b ports=http:8080/TCP,dns:5353/UDP,plain:9000/TCP',
      'IPv4 192.0.2.12 c ports=http:9090/TCP,plain:9000/TCP',
    ]);
    expect(slices).toHaveLength(2);
  });

  it('names slices <service>-<hash> with the controller labels, stable across endpoint changes', () => {
    const one = endpointSlicesFor(svc({ clusterIP: 'None' }, 'web', { metadata: { name: 'web', namespace: 'shop', uid: 'svc-uid', labels: { team: 'a' } } }), [pod('a', { ips: ['192.0.2.10'] })]);
    const s = one[0]!;
    expect(s.metadata?.name).toMatch(/^web-[0-9a-f]{8}$/);
    expect(s.metadata?.namespace).toBe('shop');
    expect(s.metadata?.labels).toEqual({
      team: 'a',
      'kubernetes.io/service-name': 'web',
      'endpointslice.kubernetes.io/managed-by': DERIVED_MANAGED_BY,
      'service.kubernetes.io/headless': '',
    });
    expect(s.metadata?.ownerReferences).toEqual([{ apiVersion: 'v1', kind: 'Service', name: 'web', uid: 'svc-uid', controller: true, blockOwnerDeletion: true }]);
    // Same name with more pods, with none (the empty placeholder) and with another target port.
    const two = endpointSlicesFor(svc({}), [pod('a', { ips: ['192.0.2.10'] }), pod('b', { ips: ['192.0.2.11'], ready: false })]);
    const none = endpointSlicesFor(svc({}), []);
    const moved = endpointSlicesFor(svc({ ports: [{ port: 80, targetPort: 8081 }] }), [pod('a', { ips: ['192.0.2.10'] })]);
    expect(two[0]!.metadata?.name).toBe(s.metadata?.name);
    expect(none).toHaveLength(1);
    expect(none[0]).toMatchObject({ metadata: { name: s.metadata?.name }, addressType: 'IPv4', endpoints: [] });
    expect(none[0]!.ports).toBeUndefined();
    expect(moved[0]!.metadata?.name).toBe(s.metadata?.name);
  });

  it('fills the zone from the Node and the hostname for the subdomain Service', () => {
    const node: V1Node = { metadata: { name: 'n1', labels: { 'topology.kubernetes.io/zone': 'z1' } } };
    const p = pod('a', { ips: ['192.0.2.10'] });
    p.spec = { ...p.spec!, hostname: 'a0', subdomain: 'web' };
    const [s] = endpointSlicesFor(svc({}), [p], new Map([['n1', node]]));
    expect(s!.endpoints?.[0]).toMatchObject({ zone: 'z1', hostname: 'a0', nodeName: 'n1' });
  });

  it('derives nothing for Services without a selector or of type ExternalName', () => {
    expect(endpointSlicesFor(svc({ selector: {} }), [pod('a', { ips: ['192.0.2.10'] })])).toEqual([]);
    const noSelector: V1Service = { metadata: { name: 'ext', namespace: 'shop' }, spec: { ports: [{ port: 80 }] } };
    expect(endpointSlicesFor(noSelector, [pod('a', { ips: ['192.0.2.10'] })])).toEqual([]);
    expect(endpointSlicesFor(svc({ type: 'ExternalName', externalName: 'example.org' }), [pod('a', { ips: ['192.0.2.10'] })])).toEqual([]);
  });
});

describe('deriveEndpointSlices', () => {
  it('skips Services that have an EndpointSlice of their own, per namespace', () => {
    const own: V1EndpointSlice = {
      metadata: { name: 'web-manual', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      endpoints: [],
    };
    const services = [svc({}), svc({}, 'api', { metadata: { name: 'api', namespace: 'shop' } }), { ...svc({}), metadata: { name: 'web', namespace: 'other' } }];
    const pods = [pod('a', { ips: ['192.0.2.10'] }), pod('b', { ips: ['192.0.2.11'], namespace: 'other' })];
    const out = deriveEndpointSlices(services, pods, [own]);
    expect(out.map((s) => `${s.metadata?.namespace}/${s.metadata?.labels?.['kubernetes.io/service-name']} ${(s.endpoints ?? []).map((e) => e.addresses[0]).join(',')}`)).toEqual([
      'shop/api 192.0.2.10',
      'other/web 192.0.2.11',
    ]);
  });
});
