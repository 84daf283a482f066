// The nftables renderer: upstream's packet-flow cases (pkg/proxy/nftables
// proxier_test.go: TestNoEndpointsReject, TestClusterIPGeneral,
// TestLoadBalancer, traffic policies, affinity) traced over the rendered
// table; incremental syncs (only what changed, applied with nft's semantics
// and equal to a fresh render); and per-service atomicity of the chunked
// transactions, checked after every single transaction.
import type { V1Endpoint, V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { IPAddr } from '../../lib/ip/index.ts';
import { FakeNft } from '../../lib/netfilter/nft-fake.ts';
import type { Endpoint, ServicePort } from '../tracker/types.ts';
import { makeService, makeSlice, tcp, World } from '../testing/fixtures.ts';
import { testNodeIPs, type Flow } from '../testing/flows.ts';
import { NFTablesTracer } from '../trace/nftables.ts';
import { upstreamNFTablesFakeProxier } from './nftables.fixtures.ts';
import { endpointChainNameBase, hashAndTruncate, NFTablesRenderer, nftLocalDetector, sortNFTablesTransaction, type NFTablesOptions } from './nftables.ts';
import { detectLocalByBridgeInterface, detectLocalByInterfaceNamePrefix, resolveNodePortAddresses } from './options.ts';

const ep = (ip: string, extra: Partial<V1Endpoint> = {}): V1Endpoint => ({ addresses: [ip], ...extra });

/** Renders objects through the trackers; returns the renderer (state committed) and the world. */
function render(objs: (V1Service | V1EndpointSlice)[], options: NFTablesOptions = upstreamNFTablesFakeProxier()): { r: NFTablesRenderer; w: World } {
  const w = new World(options.family, 'test-node').add(...objs);
  w.sync();
  const r = new NFTablesRenderer(options);
  r.commitAll(r.plan({ services: w.services.map, endpoints: w.endpoints.map }));
  return { r, w };
}

function flows(r: NFTablesRenderer, fs: readonly Flow[], nodeIPs: readonly string[] = testNodeIPs): void {
  const tracer = new NFTablesTracer(r.dump(), nodeIPs);
  for (const f of fs) {
    const t = tracer.trace({ source: f.sourceIP, destination: f.destIP, port: f.destPort, protocol: f.protocol ?? 'tcp' });
    expect({ name: f.name, output: t.output, masq: t.masquerade }).toEqual({ name: f.name, output: f.output, masq: f.masq ?? false });
  }
}

describe('names', () => {
  it('hashes as upstream (research §3.2 vectors)', () => {
    expect(hashAndTruncate('ns1/svc1/tcp/p80')).toBe('ULMVA6XW-ns1/svc1/tcp/p80');
    expect(hashAndTruncate('ns1/svc1/tcp/p80__10.180.0.1/80')).toBe('5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80');
  });

  it('cuts names over 240 characters with "..."', () => {
    const long = hashAndTruncate('x'.repeat(300));
    expect(long).toHaveLength(240);
    expect(long.endsWith('...')).toBe(true);
  });

  it('writes IPv6 endpoint addresses with dots, which nft 1.0.6 parses', () => {
    const sp = { name: { namespace: 'ns1', name: 'svc1', port: 'p80', protocol: 'TCP' }, protocol: 'TCP' } as ServicePort;
    const base = endpointChainNameBase(sp, { ip: 'fd00:10::5', port: 80 } as Endpoint);
    expect(base).toMatch(/^[A-Z2-7]{8}-ns1\/svc1\/tcp\/p80__fd00\.10\.\.5\/80$/);
  });

  it('translates the local-traffic detectors to nft matches', () => {
    expect(nftLocalDetector(detectLocalByBridgeInterface('cni0'), 4)).toEqual({ ifLocal: 'iifname cni0', ifNotLocal: 'iifname != cni0' });
    expect(nftLocalDetector(detectLocalByInterfaceNamePrefix('veth'), 4)).toEqual({ ifLocal: 'iifname veth*', ifNotLocal: 'iifname != veth*' });
  });
});

describe('TestTracePacket flows over the TestOverallNFTablesRules table', () => {
  it('walks vmaps, numgen and the no-endpoint maps', async () => {
    const { overallWorld } = await import('../testing/upstream.ts');
    const w = overallWorld();
    w.sync();
    const r = new NFTablesRenderer(upstreamNFTablesFakeProxier());
    r.commitAll(r.plan({ services: w.services.map, endpoints: w.endpoints.map }));
    flows(r, [
      { name: 'no match', sourceIP: '10.0.0.2', destIP: '10.0.0.3', destPort: 80, output: '' },
      { name: 'single endpoint', sourceIP: '10.0.0.2', destIP: '172.30.0.41', destPort: 80, output: '10.180.0.1:80' },
      { name: 'multiple endpoints', sourceIP: '10.0.0.2', destIP: '172.30.0.44', destPort: 80, output: '10.180.0.4:80, 10.180.0.5:80' },
      { name: 'local, mark for masquerade', sourceIP: '192.168.0.2', destIP: '192.168.99.22', destPort: 80, output: '10.180.0.2:80', masq: true },
      { name: 'DROP (eTP=Local, no local endpoint)', sourceIP: '203.0.113.2', destIP: '192.168.99.22', destPort: 80, output: 'DROP' },
      { name: 'REJECT (no endpoints)', sourceIP: '10.0.0.2', destIP: '172.30.0.46', destPort: 80, output: 'REJECT' },
      { name: 'blocked by loadBalancerSourceRanges', sourceIP: '203.0.113.130', destIP: '5.6.7.8', destPort: 80, output: 'DROP' },
      { name: 'allowed by loadBalancerSourceRanges', sourceIP: '203.0.113.2', destIP: '5.6.7.8', destPort: 80, output: '10.180.0.3:80', masq: true },
    ]);
  });

  it('reports each endpoint with its probability', async () => {
    const { overallWorld } = await import('../testing/upstream.ts');
    const w = overallWorld();
    w.sync();
    const r = new NFTablesRenderer(upstreamNFTablesFakeProxier());
    r.commitAll(r.plan({ services: w.services.map, endpoints: w.endpoints.map }));
    const t = new NFTablesTracer(r.dump(), testNodeIPs).trace({ source: '10.0.0.2', destination: '172.30.0.44', port: 80, protocol: 'tcp' });
    expect(t.verdicts.map((v) => [v.destination, v.probability])).toEqual([
      ['10.180.0.4:80', 0.5],
      ['10.180.0.5:80', 0.5],
    ]);
    expect(t.verdicts[0]!.chains).toEqual(['nat-prerouting', 'services', 'service-LAUZTJTB-ns4/svc4/tcp/p80', 'endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80']);
  });
});

describe('TestNoEndpointsReject', () => {
  const { r } = render([
    makeService(
      'ns1',
      'svc1',
      { type: 'LoadBalancer', clusterIP: '172.30.0.41', externalIPs: ['192.168.99.11'], ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }] },
      { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } },
    ),
  ]);
  it('rejects at every address of a service without endpoints', () =>
    flows(r, [
      { name: 'pod to cluster IP with no endpoints', sourceIP: '10.0.0.2', destIP: '172.30.0.41', destPort: 80, output: 'REJECT' },
      { name: 'external to external IP with no endpoints', sourceIP: '203.0.113.2', destIP: '192.168.99.11', destPort: 80, output: 'REJECT' },
      { name: 'pod to NodePort with no endpoints', sourceIP: '10.0.0.2', destIP: '192.168.0.2', destPort: 3001, output: 'REJECT' },
      { name: 'external to NodePort with no endpoints', sourceIP: '203.0.113.2', destIP: '192.168.0.2', destPort: 3001, output: 'REJECT' },
      { name: 'pod to LoadBalancer IP with no endpoints', sourceIP: '10.0.0.2', destIP: '1.2.3.4', destPort: 80, output: 'REJECT' },
      { name: 'external to LoadBalancer IP with no endpoints', sourceIP: '203.0.113.2', destIP: '1.2.3.4', destPort: 80, output: 'REJECT' },
    ]));
});

describe('TestClusterIPGeneral', () => {
  const { r } = render([
    makeService('ns1', 'svc1', { clusterIP: '172.30.0.41', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] }),
    makeService('ns2', 'svc2', {
      clusterIP: '172.30.0.42',
      ports: [
        { name: 'http', port: 80, protocol: 'TCP' },
        { name: 'https', port: 443, protocol: 'TCP', targetPort: 8443 },
        { name: 'dns-udp', port: 53, protocol: 'UDP' },
        { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 5353 },
        { name: 'dns-sctp', port: 53, protocol: 'SCTP' },
      ],
    }),
    makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1', { nodeName: 'test-node' })], [tcp('http', 80)]),
    makeSlice('ns2', 'svc2', 1, [ep('10.180.0.1', { nodeName: 'test-node' }), ep('10.180.2.1', { nodeName: 'node2' })], [
      tcp('http', 80),
      tcp('https', 8443),
      { name: 'dns-udp', port: 53, protocol: 'UDP' },
      tcp('dns-tcp', 5353),
      { name: 'dns-sctp', port: 53, protocol: 'SCTP' },
    ]),
  ]);
  it('routes ports and protocols, rejects unknown ports, drops unallocated IPs', () =>
    flows(r, [
      { name: 'simple clusterIP', sourceIP: '10.180.0.2', destIP: '172.30.0.41', destPort: 80, output: '10.180.0.1:80' },
      { name: 'hairpin to cluster IP', sourceIP: '10.180.0.1', destIP: '172.30.0.41', destPort: 80, output: '10.180.0.1:80', masq: true },
      { name: 'clusterIP with multiple endpoints', sourceIP: '10.180.0.2', destIP: '172.30.0.42', destPort: 80, output: '10.180.0.1:80, 10.180.2.1:80' },
      { name: 'clusterIP with TargetPort', sourceIP: '10.180.0.2', destIP: '172.30.0.42', destPort: 443, output: '10.180.0.1:8443, 10.180.2.1:8443' },
      { name: 'TCP on 53', sourceIP: '10.180.0.2', protocol: 'tcp', destIP: '172.30.0.42', destPort: 53, output: '10.180.0.1:5353, 10.180.2.1:5353' },
      { name: 'UDP on 53', sourceIP: '10.180.0.2', protocol: 'udp', destIP: '172.30.0.42', destPort: 53, output: '10.180.0.1:53, 10.180.2.1:53' },
      { name: 'SCTP on 53', sourceIP: '10.180.0.2', protocol: 'sctp', destIP: '172.30.0.42', destPort: 53, output: '10.180.0.1:53, 10.180.2.1:53' },
      { name: 'TCP-only port does not match UDP traffic', sourceIP: '10.180.0.2', protocol: 'udp', destIP: '172.30.0.42', destPort: 80, output: 'REJECT' },
      { name: "svc1 does not accept svc2's ports", sourceIP: '10.180.0.2', destIP: '172.30.0.41', destPort: 443, output: 'REJECT' },
      { name: 'packet to unallocated cluster ip', sourceIP: '10.180.0.2', destIP: '172.30.0.50', destPort: 80, output: 'DROP' },
      { name: 'off-cluster source is masqueraded', sourceIP: '203.0.113.2', destIP: '172.30.0.41', destPort: 80, output: '10.180.0.1:80', masq: true },
    ]));
});

describe('TestLoadBalancer', () => {
  const { r } = render([
    makeService(
      'ns1',
      'svc1',
      { type: 'LoadBalancer', clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }], loadBalancerSourceRanges: ['192.168.0.0/24', ' 203.0.113.0/25'] },
      { loadBalancer: { ingress: [{ ip: '1.2.3.4' }, { ip: '5.6.7.8' }] } },
    ),
    makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1')], [tcp('p80', 80)]),
  ]);
  const out = '10.180.0.1:80';
  it('accepts listed sources, drops others, and lets NodePorts bypass the ranges', () =>
    flows(r, [
      { name: 'pod to cluster IP', sourceIP: '10.0.0.2', destIP: '172.30.0.41', destPort: 80, output: out },
      { name: 'external to nodePort', sourceIP: '203.0.113.2', destIP: '192.168.0.2', destPort: 3001, output: out, masq: true },
      { name: 'nodePort bypasses LoadBalancerSourceRanges', sourceIP: '203.0.113.130', destIP: '192.168.0.2', destPort: 3001, output: out, masq: true },
      { name: 'accepted external to LB1', sourceIP: '203.0.113.2', destIP: '1.2.3.4', destPort: 80, output: out, masq: true },
      { name: 'accepted external to LB2', sourceIP: '203.0.113.2', destIP: '5.6.7.8', destPort: 80, output: out, masq: true },
      { name: 'blocked external to LB1', sourceIP: '203.0.113.130', destIP: '1.2.3.4', destPort: 80, output: 'DROP' },
      { name: 'blocked external to LB2', sourceIP: '203.0.113.130', destIP: '5.6.7.8', destPort: 80, output: 'DROP' },
      { name: 'pod to LB1 (blocked by LoadBalancerSourceRanges)', sourceIP: '10.0.0.2', destIP: '1.2.3.4', destPort: 80, output: 'DROP' },
      { name: 'node to LB1 (allowed by LoadBalancerSourceRanges)', sourceIP: '192.168.0.2', destIP: '1.2.3.4', destPort: 80, output: out, masq: true },
      { name: 'same node to LB1, SNATted to LB1 (implicitly allowed)', sourceIP: '1.2.3.4', destIP: '1.2.3.4', destPort: 80, output: out, masq: true },
    ]));

  it('writes the source ranges and the node-allowing LB IPs in one set', () => {
    expect(r.dump()).toContain('add rule ip kube-proxy firewall-ULMVA6XW-ns1/svc1/tcp/p80 ip saddr != { 192.168.0.0/24 , 203.0.113.0/25 , 1.2.3.4 , 5.6.7.8 } drop\n');
  });
});

describe('NodePorts (TestNodePorts)', () => {
  const objs = (): (V1Service | V1EndpointSlice)[] => [
    makeService('ns1', 'svc1', { type: 'NodePort', clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }] }),
    makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1')], [tcp('p80', 80)]),
  ];
  const out = '10.180.0.1:80';

  it('--nodeport-addresses: only the listed address; a secondary node IP ignores NodePorts', () =>
    flows(render(objs()).r, [
      { name: 'to primary node IP', sourceIP: '203.0.113.2', destIP: '192.168.0.2', destPort: 3001, output: out, masq: true },
      { name: 'secondary nodeIP ignores NodePorts', sourceIP: '203.0.113.2', destIP: '192.168.1.2', destPort: 3001, output: '' },
    ]));

  it('all local addresses (fib daddr type local), never localhost', () => {
    const all = { ...upstreamNFTablesFakeProxier(), nodePortAddresses: resolveNodePortAddresses(4, [], { localAddresses: [] }) };
    const { r } = render(objs(), all);
    expect(r.dump()).toContain('add rule ip kube-proxy services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports\n');
    expect(r.dump()).not.toContain('nodeport-ips');
    flows(r, [
      { name: 'to primary node IP', sourceIP: '203.0.113.2', destIP: '192.168.0.2', destPort: 3001, output: out, masq: true },
      { name: 'to secondary node IP', sourceIP: '203.0.113.2', destIP: '192.168.1.2', destPort: 3001, output: out, masq: true },
      { name: 'not on localhost', sourceIP: '127.0.0.1', destIP: '127.0.0.1', destPort: 3001, output: '' },
    ]);
  });
});

describe('traffic policies and the terminating fallback', () => {
  it('eTP=Local: external traffic to local endpoints only, client IP kept; pods and the node short-circuit', () => {
    const { r } = render([
      makeService('ns1', 'svc1', { type: 'NodePort', clusterIP: '172.30.0.41', externalTrafficPolicy: 'Local', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }] }),
      makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1', { nodeName: 'test-node' }), ep('10.180.2.1', { nodeName: 'node2' })], [tcp('p80', 80)]),
    ]);
    flows(r, [
      { name: 'external to NodePort: local endpoint, no masquerade', sourceIP: '203.0.113.2', destIP: '192.168.0.2', destPort: 3001, output: '10.180.0.1:80' },
      { name: 'pod to NodePort: every endpoint', sourceIP: '10.0.0.2', destIP: '192.168.0.2', destPort: 3001, output: '10.180.0.1:80, 10.180.2.1:80' },
      { name: 'node to NodePort: every endpoint, masqueraded', sourceIP: '192.168.0.2', destIP: '192.168.0.2', destPort: 3001, output: '10.180.0.1:80, 10.180.2.1:80', masq: true },
      { name: 'cluster IP: every endpoint', sourceIP: '10.0.0.2', destIP: '172.30.0.41', destPort: 80, output: '10.180.0.1:80, 10.180.2.1:80' },
    ]);
  });

  it('iTP=Local without local endpoints: the ClusterIP drops', () => {
    const { r, w } = render([
      makeService('ns1', 'svc1', { clusterIP: '172.30.0.41', internalTrafficPolicy: 'Local', ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] }),
      makeSlice('ns1', 'svc1', 1, [ep('10.180.2.1', { nodeName: 'node2' })], [tcp('p80', 80)]),
    ]);
    flows(r, [{ name: 'pod to cluster IP', sourceIP: '10.0.0.2', destIP: '172.30.0.41', destPort: 80, output: 'DROP' }]);
    expect(new NFTablesRenderer(upstreamNFTablesFakeProxier()).plan({ services: w.services.map, endpoints: w.endpoints.map }).noLocalEndpointsInternal).toBe(1);
  });

  it('falls back to serving terminating endpoints when none is ready', () => {
    const { r } = render([
      makeService('ns1', 'svc1', { clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] }),
      makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1', { conditions: { ready: false, serving: true, terminating: true } }), ep('10.180.0.2', { conditions: { ready: false, serving: false, terminating: true } })], [tcp('p80', 80)]),
    ]);
    flows(r, [{ name: 'to the serving one', sourceIP: '10.0.0.2', destIP: '172.30.0.41', destPort: 80, output: '10.180.0.1:80' }]);
  });
});

describe('session affinity', () => {
  const { r } = render([
    makeService('ns1', 'svc1', { clusterIP: '172.30.0.41', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 300 } }, ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] }),
    makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1'), ep('10.180.0.2')], [tcp('p80', 80)]),
  ]);
  it('one timeout set per endpoint, checked before the numgen map and updated in the endpoint chain', () => {
    const d = r.dump();
    expect(d.match(/add set ip kube-proxy affinity-\S+ \{ type ipv4_addr ; flags dynamic,timeout ; timeout 300s ; \}/g)).toHaveLength(2);
    const t = new NFTablesTracer(d, testNodeIPs).trace({ source: '10.0.0.2', destination: '172.30.0.41', port: 80, protocol: 'tcp' });
    expect(t.output).toBe('10.180.0.1:80, 10.180.0.2:80');
    expect(t.notes).toHaveLength(2);
  });
});

// -- incremental syncs ------------------------------------------------------

/** Services and slices by name, replaced in a World as the informers would. */
class Scenario {
  readonly w = new World(4, 'test-node');
  private readonly objects = new Map<string, V1Service | V1EndpointSlice>();

  set(...objs: (V1Service | V1EndpointSlice)[]): this {
    for (const o of objs) {
      const key = `${o.kind}/${o.metadata!.namespace}/${o.metadata!.name}`;
      const prev = this.objects.get(key);
      if (o.kind === 'Service') this.w.serviceChanges.update(prev as V1Service | undefined, o as V1Service);
      else this.w.endpointChanges.endpointSliceUpdate(o as V1EndpointSlice, false);
      this.objects.set(key, o);
    }
    return this;
  }

  remove(kind: 'Service' | 'EndpointSlice', ns: string, name: string): this {
    const key = `${kind}/${ns}/${name}`;
    const prev = this.objects.get(key)!;
    if (kind === 'Service') this.w.serviceChanges.update(prev as V1Service, undefined);
    else this.w.endpointChanges.endpointSliceUpdate(prev as V1EndpointSlice, true);
    this.objects.delete(key);
    return this;
  }

  input(): { services: World['services']['map']; endpoints: World['endpoints']['map'] } {
    this.w.sync();
    return { services: this.w.services.map, endpoints: this.w.endpoints.map };
  }
}

const svc = (n: number, extra: Partial<V1Service['spec']> = {}): V1Service =>
  makeService(`ns${n}`, `svc${n}`, { clusterIP: `172.30.0.${40 + n}`, ports: [{ name: 'p80', port: 80, protocol: 'TCP' }], ...extra });
const eps = (n: number, ...ips: string[]): V1EndpointSlice => makeSlice(`ns${n}`, `svc${n}`, 1, ips.map((ip) => ep(ip)), [tcp('p80', 80)]);

/** The table of a fresh renderer for the same input, applied to a fresh FakeNft. */
async function fresh(input: ReturnType<Scenario['input']>): Promise<{ dump: string; nft: string }> {
  const r = new NFTablesRenderer(upstreamNFTablesFakeProxier());
  const nft = new FakeNft();
  const plan = r.plan(input);
  for (const t of plan.transactions) await nft.run(t.text);
  r.commitAll(plan);
  return { dump: sortNFTablesTransaction(r.dump()), nft: sortedLines(nft.dump()) };
}
const sortedLines = (s: string): string => s.split('\n').map((l) => l.trim()).filter((l) => l !== '').sort().join('\n');

describe('incremental syncs (TestSyncProxyRulesRepeated)', () => {
  it('writes only what changed, and ends where a fresh render starts', async () => {
    const sc = new Scenario().set(svc(1), eps(1, '10.180.0.1'), svc(2), eps(2, '10.180.0.2', '10.180.0.3'));
    const r = new NFTablesRenderer(upstreamNFTablesFakeProxier());
    const nft = new FakeNft();
    const sync = async (): Promise<string> => {
      const input = sc.input();
      const plan = r.plan(input);
      for (const t of plan.transactions) {
        await nft.run(t.text);
        r.commit(t);
      }
      const want = await fresh(input);
      expect(sortNFTablesTransaction(r.dump())).toBe(want.dump);
      expect(sortedLines(nft.dump())).toBe(want.nft);
      return plan.transactions.map((t) => t.text).join('');
    };
    const first = await sync();
    expect(first).toContain('add table ip kube-proxy');

    // One endpoint added to svc2: its service chain is rewritten, one endpoint chain created.
    sc.set(eps(2, '10.180.0.2', '10.180.0.3', '10.180.0.4'));
    const addEp = await sync();
    // (Order within a transaction does not matter to nft; the chain comes first, alone.)
    const addLines = addEp.split('\n').filter((l) => l !== '');
    expect(addLines[0]).toMatch(/^add chain ip kube-proxy endpoint-\S+-ns2\/svc2\/tcp\/p80__10\.180\.0\.4\/80$/);
    expect(addLines).toHaveLength(6);
    expect(addLines.slice(1)).toEqual(
      expect.arrayContaining([
        'flush chain ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80',
        'add rule ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80 ip daddr 172.30.0.42 ip saddr != 10.0.0.0/8 jump mark-for-masquerade',
        expect.stringMatching(/^add rule ip kube-proxy service-42NFTM6N-ns2\/svc2\/tcp\/p80 numgen random mod 3 vmap \{ 0 : goto .* , 1 : goto .* , 2 : goto .* \}$/),
        expect.stringMatching(/^add rule ip kube-proxy endpoint-\S+__10\.180\.0\.4\/80 ip saddr 10\.180\.0\.4 jump mark-for-masquerade$/),
        expect.stringMatching(/^add rule ip kube-proxy endpoint-\S+__10\.180\.0\.4\/80 meta l4proto tcp dnat to 10\.180\.0\.4:80$/),
      ]),
    );
    expect(addEp).not.toContain('svc1');

    // Nothing changed: no transaction at all.
    expect(r.plan(sc.input()).transactions).toEqual([]);

    // An endpoint removed: the service chain is rewritten, the endpoint chain deleted last.
    sc.set(eps(2, '10.180.0.2', '10.180.0.4'));
    const rmEp = (await sync()).split('\n');
    expect(rmEp.at(-2)).toMatch(/^delete chain ip kube-proxy endpoint-\S+__10\.180\.0\.3\/80$/);

    // No endpoints left: the element moves from service-ips to no-endpoint-services; chains go.
    sc.remove('EndpointSlice', 'ns2', 'svc2-1');
    const none = await sync();
    expect(none).toContain('delete element ip kube-proxy service-ips { 172.30.0.42 . tcp . 80 }');
    expect(none).toContain('add element ip kube-proxy no-endpoint-services { 172.30.0.42 . tcp . 80 comment "ns2/svc2:p80" : goto reject-chain }');

    // eTP=Local NodePort with an external IP that moves from svc1 to svc3.
    sc.set(svc(1, { type: 'NodePort', externalTrafficPolicy: 'Local', externalIPs: ['192.168.99.1'], ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }] }));
    await sync();
    sc.set(svc(1), svc(3, { externalIPs: ['192.168.99.1'] }), eps(3, '10.180.0.9'));
    await sync();

    // Session affinity on, then its timeout changed: the sets are recreated, their users rewritten.
    sc.set(svc(3, { externalIPs: ['192.168.99.1'], sessionAffinity: 'ClientIP' }));
    await sync();
    sc.set(svc(3, { externalIPs: ['192.168.99.1'], sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }));
    expect(await sync()).toContain('timeout 60s');

    // Services deleted.
    sc.remove('Service', 'ns1', 'svc1').remove('Service', 'ns3', 'svc3');
    const gone = await sync();
    expect(gone).toContain('delete element ip kube-proxy cluster-ips { 172.30.0.41 }');
    expect(r.dump()).not.toMatch(/svc1|svc3/);
  });

  it('after reset() the next plan recreates the table from nothing', async () => {
    const sc = new Scenario().set(svc(1), eps(1, '10.180.0.1'));
    const r = new NFTablesRenderer(upstreamNFTablesFakeProxier());
    const nft = new FakeNft();
    for (const t of r.plan(sc.input()).transactions) {
      await nft.run(t.text);
      r.commit(t);
    }
    // Someone added a chain behind our back; a reset must not trip over it.
    await nft.run('add chain ip kube-proxy foreign\n');
    r.reset();
    const plan = r.plan(sc.input());
    expect(plan.transactions[0]!.text.split('\n').slice(0, 3)).toEqual([
      'add table ip kube-proxy { comment "rules for kube-proxy" ; }',
      'delete table ip kube-proxy',
      'add table ip kube-proxy { comment "rules for kube-proxy" ; }',
    ]);
    for (const t of plan.transactions) await nft.run(t.text);
    r.commitAll(plan);
    expect(sortedLines(nft.dump())).toBe((await fresh(sc.input())).nft);
  });

  it('a failed transaction is not committed; the next plan starts from what was applied', async () => {
    const sc = new Scenario().set(svc(1), eps(1, '10.180.0.1'));
    const r = new NFTablesRenderer(upstreamNFTablesFakeProxier());
    const nft = new FakeNft();
    r.commitAll(r.plan(sc.input()));
    for (const t of new NFTablesRenderer(upstreamNFTablesFakeProxier()).plan(sc.input()).transactions) await nft.run(t.text);
    sc.set(eps(1, '10.180.0.1', '10.180.0.2'));
    r.plan(sc.input()); // planned, never applied nor committed
    const again = r.plan(sc.input());
    for (const t of again.transactions) await nft.run(t.text);
    r.commitAll(again);
    expect(sortedLines(nft.dump())).toBe((await fresh(sc.input())).nft);
  });
});

// -- chunking and per-service atomicity ---------------------------------------

describe('chunked transactions keep every service whole', () => {
  const before = (): Scenario =>
    new Scenario().set(
      svc(1),
      eps(1, '10.180.0.1', '10.180.0.2'),
      svc(2, { type: 'NodePort', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3002 }], externalIPs: ['192.168.99.5'] }),
      eps(2, '10.180.0.3'),
      svc(3),
      eps(3, '10.180.0.4'),
      svc(4, { sessionAffinity: 'ClientIP' }),
      eps(4, '10.180.0.5', '10.180.0.6'),
    );
  const after = (sc: Scenario): Scenario =>
    sc
      .set(eps(1, '10.180.0.2', '10.180.0.7', '10.180.0.8'))
      .set(svc(2, { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3002 }] }))
      .set(svc(5, { externalIPs: ['192.168.99.5'] }), eps(5, '10.180.0.9'))
      .remove('Service', 'ns3', 'svc3')
      .set(svc(4, { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 99 } } }), eps(4, '10.180.0.6'));

  /** Where packets to every service address land, per address. */
  const landing = (dump: string): Map<string, string> => {
    const tracer = new NFTablesTracer(dump, testNodeIPs);
    const out = new Map<string, string>();
    const targets: [string, number][] = [1, 2, 3, 4, 5].map((n) => [`172.30.0.${40 + n}`, 80]);
    targets.push(['192.168.99.5', 80], ['192.168.0.2', 3002]);
    for (const src of ['10.0.0.2', '203.0.113.2']) {
      for (const [dst, port] of targets) {
        const t = tracer.trace({ source: src, destination: dst, port, protocol: 'tcp' });
        out.set(`${src}→${dst}:${port}`, `${t.output} masq=${t.masquerade}`);
      }
    }
    return out;
  };

  it('every transaction, applied alone, leaves each service as before or as after, never in between', async () => {
    const sc = before();
    const opts = { ...upstreamNFTablesFakeProxier(), maxTransactionLines: 1, maxChainLines: 1 };
    const r = new NFTablesRenderer(opts);
    const nft = new FakeNft();
    for (const t of r.plan(sc.input()).transactions) {
      await nft.run(t.text);
      r.commit(t);
    }
    const was = landing(r.dump());
    const plan = r.plan(after(sc).input());
    // Cut as finely as allowed: one unit per transaction.
    expect(plan.transactions.length).toBeGreaterThan(5);
    const seen: Map<string, string>[] = [];
    for (const t of plan.transactions) {
      await nft.run(t.text); // FakeNft refuses deleting a chain still pointed at, a missing element, …
      r.commit(t);
      seen.push(landing(r.dump()));
    }
    const now = landing(r.dump());
    expect(sortedLines(nft.dump())).toBe((await fresh(sc.input())).nft);
    for (const snapshot of seen) {
      for (const [k, v] of snapshot) expect([was.get(k), now.get(k)], k).toContain(v);
    }
    // And the change is visible: some landing differs between before and after.
    expect([...now].some(([k, v]) => was.get(k) !== v)).toBe(true);
  });

  it('a port’s rules and its elements travel in one transaction; new chains come first, stale ones last', () => {
    const sc = new Scenario();
    for (let n = 1; n <= 30; n++) sc.set(svc(n, { clusterIP: `172.30.1.${n}` }), eps(n, `10.180.1.${n}`, `10.180.2.${n}`));
    const r = new NFTablesRenderer({ ...upstreamNFTablesFakeProxier(), maxTransactionLines: 20, maxChainLines: 25 });
    const plan = r.plan(sc.input());
    const texts = plan.transactions.map((t) => t.text);
    const firstRule = texts.findIndex((t) => t.includes('add rule ip kube-proxy service-'));
    // Chains first, in transactions of their own (only `add chain` lines).
    for (const t of texts.slice(1, firstRule)) for (const l of t.trim().split('\n')) expect(l).toMatch(/^add chain /);
    for (let n = 1; n <= 30; n++) {
      const holders = texts.filter((t) => t.includes(`ns${n}/svc${n}/tcp/p80 `) || t.includes(`172.30.1.${n} `));
      const withRules = texts.filter((t) => new RegExp(`add rule ip kube-proxy \\S+-ns${n}/svc${n}/`).test(t));
      const withElement = texts.filter((t) => t.includes(`service-ips { 172.30.1.${n} . tcp . 80 :`));
      expect(withRules).toHaveLength(1);
      expect(withElement).toEqual(withRules);
      expect(holders.length).toBeGreaterThan(0);
    }
    // Transactions of several service ports stay within the limit; one port alone may exceed it.
    for (const t of plan.transactions) if (t.servicePorts.length > 1) expect(t.lines).toBeLessThanOrEqual(20);
  });
});

describe('bad input never breaks the transaction', () => {
  it('cuts a long no-endpoint comment to 128 characters (k/k#139515)', () => {
    const long = 'n'.repeat(63);
    const { r } = render([makeService(long, long, { clusterIP: '172.30.0.41', ports: [{ name: 'a-very-long-name', port: 80, protocol: 'TCP' }] })]);
    const comment = /add element ip kube-proxy no-endpoint-services \{ .* comment "([^"]*)"/.exec(r.dump())?.[1];
    expect(comment).toHaveLength(128);
  });

  it('node IP of the other family in a source range does not matter', () => {
    const opts = { ...upstreamNFTablesFakeProxier(), nodeIP: IPAddr.mustParse('2001:db8::1') };
    const { r } = render(
      [
        makeService('ns1', 'svc1', { type: 'LoadBalancer', clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }], loadBalancerSourceRanges: ['192.168.0.0/24'] }, { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } }),
        makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1')], [tcp('p80', 80)]),
      ],
      opts,
    );
    expect(r.dump()).toContain('ip saddr != { 192.168.0.0/24 } drop');
  });
});
