import { describe, expect, test } from 'vitest';
import { IPPrefix } from '../../lib/ip/index.ts';
import { iptablesCounts, iptablesState } from '../render/iptables.ts';
import { nftCounts, nftState } from '../render/nftables.ts';
import { namespace, pod, policy } from '../testing/fixtures.ts';
import { scaleWorld } from '../testing/scale-world.ts';
import { buildCluster } from './cluster.ts';
import { localPlan, planSize, type LocalPlan, type PeerSet } from './plan.ts';

const NAMESPACES = [namespace('ns1', { team: 'a' }), namespace('ns2', { team: 'a' })];
const PODS = [
  pod('ns1', 'web', { labels: { app: 'web' }, ips: ['10.1.0.1', 'fd00::1'], node: 'n1', ports: [['http', 'TCP', 8080]] }),
  pod('ns1', 'web2', { labels: { app: 'web' }, ips: ['10.1.0.2'], node: 'n1', ports: [['http', 'TCP', 8081]] }),
  pod('ns1', 'client', { labels: { app: 'client' }, ips: ['10.1.0.3'], node: 'n1' }),
  pod('ns1', 'remote-web', { labels: { app: 'web' }, ips: ['10.1.1.1'], node: 'n2', ports: [['http', 'TCP', 9090], ['http', 'UDP', 9091]] }),
  pod('ns2', 'client', { labels: { app: 'client' }, ips: ['10.2.0.3'], node: 'n2' }),
  pod('ns1', 'agent', { labels: { app: 'client' }, ips: ['192.0.2.1'], node: 'n1', hostNetwork: true, ports: [['http', 'TCP', 10250]] }),
  pod('ns1', 'pending', { labels: { app: 'web' }, node: 'n1' }),
];

const plan = (policies: ReturnType<typeof policy>[], node = 'n1'): LocalPlan => localPlan(buildCluster({ pods: PODS, namespaces: NAMESPACES, policies }), node);
const peerSet = (p: LocalPlan, id: string): PeerSet => p.peerSets.find((s) => s.id === id)!;
const addrs = (s: PeerSet): string[] => (s.kind === 'pods' ? s.addrs.map(String) : [s.cidr.toString()]);

describe('local pods', () => {
  test('only pods on the node with an address, hostNetwork pods excluded; isolation per direction', () => {
    const p = plan([policy('ns1', 'deny', { podSelector: { matchLabels: { app: 'web' } } })]);
    expect(p.pods.map((x) => x.key)).toEqual(['ns1/client', 'ns1/web', 'ns1/web2']);
    const web = p.pods.find((x) => x.key === 'ns1/web')!;
    expect(web.ips.map(String)).toEqual(['10.1.0.1', 'fd00::1']);
    expect(web.ingress).toBeDefined();
    expect(web.egress).toBeUndefined();
    expect(p.pods.find((x) => x.key === 'ns1/client')!.ingress).toBeUndefined();
  });

  test('pods selected by the same policies share one group', () => {
    const p = plan([policy('ns1', 'deny', { podSelector: { matchLabels: { app: 'web' } } }), policy('ns1', 'all', { podSelector: {} })]);
    const [client, web, web2] = p.pods;
    expect(web!.ingress).toBe(web2!.ingress);
    expect(client!.ingress).not.toBe(web!.ingress);
    expect(p.groups.map((g) => g.policies)).toEqual(expect.arrayContaining([['ns1/all'], ['ns1/all', 'ns1/deny']]));
    expect(p.groups).toHaveLength(2);
  });

  test('only policies that select a local pod are planned', () => {
    const p = plan([policy('ns2', 'deny', { podSelector: {} }), policy('ns1', 'deny', { podSelector: { matchLabels: { app: 'web' } } })]);
    expect(p.policies.map((x) => x.key)).toEqual(['ns1/deny']);
    expect(plan([policy('ns2', 'deny', { podSelector: {} })], 'n2').policies.map((x) => x.key)).toEqual(['ns2/deny']);
  });
});

describe('peer sets', () => {
  test('one set per distinct peer, shared between policies', () => {
    const from = [{ podSelector: { matchLabels: { app: 'client' } } }];
    const p = plan([
      policy('ns1', 'a', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from }] }),
      policy('ns1', 'b', { podSelector: {}, ingress: [{ from, ports: [{ port: 80 }] }] }),
    ]);
    expect(p.peerSets).toHaveLength(1);
    const [a, b] = p.policies;
    expect(a!.ingress![0]!.peers).toEqual(b!.ingress![0]!.peers);
    // The policy's namespace only; hostNetwork pods never count as pods.
    expect(addrs(p.peerSets[0]!)).toEqual(['10.1.0.3']);
  });

  test('the same pod selector in another namespace is another set', () => {
    const from = [{ podSelector: { matchLabels: { app: 'client' } } }];
    const p = localPlan(
      buildCluster({
        pods: [...PODS, pod('ns2', 'web', { labels: { app: 'web' }, ips: ['10.2.0.1'], node: 'n1' })],
        namespaces: NAMESPACES,
        policies: [policy('ns1', 'a', { podSelector: {}, ingress: [{ from }] }), policy('ns2', 'a', { podSelector: {}, ingress: [{ from }] })],
      }),
      'n1',
    );
    expect(p.peerSets.map(addrs).sort()).toEqual([['10.1.0.3'], ['10.2.0.3']]);
  });

  test('namespaceSelector peers with the same selectors are shared across namespaces; pods of all matching namespaces, both families', () => {
    const from = [{ namespaceSelector: { matchLabels: { team: 'a' } }, podSelector: { matchLabels: { app: 'web' } } }];
    const p = localPlan(
      buildCluster({
        pods: [...PODS, pod('ns2', 'web', { labels: { app: 'web' }, ips: ['10.2.0.1'], node: 'n1' })],
        namespaces: NAMESPACES,
        policies: [policy('ns1', 'a', { podSelector: {}, ingress: [{ from }] }), policy('ns2', 'a', { podSelector: {}, ingress: [{ from }] })],
      }),
      'n1',
    );
    expect(p.peerSets).toHaveLength(1);
    expect(addrs(p.peerSets[0]!)).toEqual(['10.1.0.1', '10.1.0.2', '10.1.1.1', '10.2.0.1', 'fd00::1']);
  });

  test('ipBlocks keep cidr and except apart; the same block is one set', () => {
    const from = [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }];
    const p = plan([policy('ns1', 'a', { podSelector: {}, ingress: [{ from }, { from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }, { ipBlock: { cidr: 'fd00::/8' } }] }] })]);
    expect(p.peerSets).toHaveLength(2);
    const s = peerSet(p, (p.policies[0]!.ingress![0]!.peers as string[])[0]!);
    expect(s).toMatchObject({ kind: 'ipBlock' });
    if (s.kind === 'ipBlock') expect([s.cidr.toString(), s.except.map(String)]).toEqual(['10.0.0.0/8', ['10.1.0.0/16']]);
  });
});

describe('ports', () => {
  test('named ports: ingress resolved per local destination pod, egress per remote destination pod', () => {
    const p = plan([
      policy('ns1', 'in', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ ports: [{ port: 'http' }] }] }),
      policy('ns1', 'out', { podSelector: { matchLabels: { app: 'client' } }, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'http' }, { port: 'http', protocol: 'UDP' }] }] }),
    ]);
    const named = (id: string): string[] => p.namedPorts.find((n) => n.id === id)!.entries.map((e) => `${e.addr.toString()}:${e.port}`);
    const inPorts = p.policies.find((x) => x.key === 'ns1/in')!.ingress![0]!.ports;
    const outPorts = p.policies.find((x) => x.key === 'ns1/out')!.egress![0]!.ports;
    if (inPorts === 'any' || outPorts === 'any') throw new Error('ports expected');
    // Local web pods only, each with its own number; not the hostNetwork agent.
    expect(named(inPorts.named[0]!)).toEqual(['10.1.0.1:8080', '10.1.0.2:8081', 'fd00::1:8080']);
    expect(outPorts.named).toHaveLength(2);
    const byProto = Object.fromEntries(outPorts.named.map((id) => [p.namedPorts.find((n) => n.id === id)!.protocol, named(id)]));
    // Every pod of the cluster that declares it, the remote one included, per protocol.
    expect(byProto).toEqual({ TCP: ['10.1.0.1:8080', '10.1.0.2:8081', '10.1.1.1:9090', 'fd00::1:8080'], UDP: ['10.1.1.1:9091'] });
  });

  test('numeric ports become ranges; a protocol alone is its whole range; duplicates merge', () => {
    const p = plan([policy('ns1', 'in', { podSelector: {}, ingress: [{ ports: [{ port: 80 }, { port: 80, protocol: 'TCP' }, { port: 1000, endPort: 2000, protocol: 'UDP' }, { protocol: 'SCTP' }] }] })]);
    expect(p.policies[0]!.ingress![0]!.ports).toEqual({
      ranges: [
        { protocol: 'SCTP', from: 0, to: 65535 },
        { protocol: 'TCP', from: 80, to: 80 },
        { protocol: 'UDP', from: 1000, to: 2000 },
      ],
      named: [],
    });
  });
});

describe('rejected policies', () => {
  test('a rejected policy is planned with no rules, in the directions it isolates', () => {
    const p = plan([policy('ns1', 'bad', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{}] }] })]);
    expect(p.policies).toEqual([{ key: 'ns1/bad', namespace: 'ns1', name: 'bad', rejected: true, ingress: [], egress: undefined }]);
    expect(p.pods.find((x) => x.key === 'ns1/web')!.ingress).toBeDefined();
    expect(p.problems).toEqual([{ kind: 'NetworkPolicy', object: 'ns1/bad', field: 'spec.ingress[0].from[0]', reason: expect.stringMatching(/empty peer/) }]);
  });
});

test('the node pod CIDRs are carried for held addresses', () => {
  const c = buildCluster({ pods: PODS, namespaces: NAMESPACES });
  expect(localPlan(c, 'n1', { podCIDRs: [IPPrefix.mustParse('10.1.0.0/24')] }).hold.map(String)).toEqual(['10.1.0.0/24']);
  expect(localPlan(c, 'n1').hold).toEqual([]);
});

describe('scale: entries grow with pods + policies, not pods × pods', () => {
  const measure = (pods: number): { plan: number; nft: number; iptables: number; policies: number } => {
    const w = scaleWorld(pods);
    const c = buildCluster(w);
    const p = localPlan(c, 'n0');
    const n = nftCounts(nftState(p));
    const i = iptablesCounts(iptablesState(p));
    return { plan: planSize(p).total, nft: n.rules + n.elements, iptables: i.rules + i.elements, policies: c.policies.length };
  };
  const s500 = measure(500);
  const s1000 = measure(1000);
  const s2000 = measure(2000);

  test('the reference size is 1,000 pods and 500 policies', () => {
    expect(scaleWorld(1000).pods).toHaveLength(1000);
    expect(s1000.policies).toBe(500);
  });

  test.each([
    { what: 'plan entries', key: 'plan' as const },
    { what: 'nft rules + elements', key: 'nft' as const },
    { what: 'iptables rules + ipset entries', key: 'iptables' as const },
  ])('$what double when the cluster doubles', ({ key }) => {
    // Quadratic growth would give 4; allow a little slack over 2 for fixed costs.
    for (const [a, b] of [
      [s500, s1000],
      [s1000, s2000],
    ] as const) {
      const ratio = b[key] / a[key];
      expect(ratio).toBeGreaterThan(1.8);
      expect(ratio).toBeLessThan(2.2);
    }
    // And the constant is small: a few entries per pod and policy at 1,000/500.
    expect(s1000[key]).toBeLessThan(10 * (1000 + 500));
  });
});
