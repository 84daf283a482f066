// Behaviour of the rendered rules, case by case, mostly as upstream's
// packet-flow tests state it (TestClusterIPGeneral, TestLoadBalancer,
// TestNodePorts, TestHealthCheckNodePort, TestDropInvalidRule,
// TestNoEndpointsReject, the traffic-policy and terminating-endpoint tests),
// plus the exact lines where the text itself is the behaviour.
import type { V1Endpoint, V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import { runPacketFlows, testNodeIPs, type Flow } from '../testing/flows.ts';
import { makeService, makeSlice, tcp, World } from '../testing/fixtures.ts';
import { upstreamFakeProxier } from '../testing/upstream.ts';
import { IPTablesTracer, type Packet } from '../trace/iptables.ts';
import { parseRestore } from '../trace/parse.ts';
import { checkRuleJumps } from './check.ts';
import { chainsFromSave, IPTablesRenderer, renderIPTables, type IPTablesOptions, type RenderResult } from './iptables.ts';
import { computeProbability, masqueradeMark } from './names.ts';
import { detectLocalByBridgeInterface, detectLocalByCIDR, detectLocalByInterfaceNamePrefix, noLocalDetector, resolveNodePortAddresses } from './options.ts';

/** NewFakeProxier's interfaces: lo and eth0. */
const localAddresses = ['127.0.0.1', '::1', ...testNodeIPs].map((s) => IPAddr.mustParse(s));
const v6Options: IPTablesOptions = {
  ...upstreamFakeProxier,
  family: 6,
  nodeIP: IPAddr.mustParse('2001:db8::1'),
  localDetector: detectLocalByCIDR(IPPrefix.mustParse('fd00:10::/64')),
};

function render(objs: (V1Service | V1EndpointSlice)[], options: IPTablesOptions = upstreamFakeProxier, nodeName = 'test-node'): RenderResult & { world: World } {
  const world = new World(options.family, nodeName).add(...objs);
  world.sync();
  const r = new IPTablesRenderer().render({ services: world.services.map, endpoints: world.endpoints.map }, options);
  expect(checkRuleJumps(r.text)).toEqual([]);
  return Object.assign(r, { world });
}

/** The rules of one chain, as written. */
function chain(text: string, table: string, name: string): string[] {
  const t = parseRestore(text).find((x) => x.name === table);
  return t?.chains.find((c) => c.name === name)?.rules.map((r) => r.raw) ?? [];
}

const flows = (r: RenderResult, fs: Flow[], nodeIPs = testNodeIPs): void => runPacketFlows(r.text, nodeIPs, fs);
const ep = (ip: string, extra: Partial<V1Endpoint> = {}): V1Endpoint => ({ addresses: [ip], ...extra });

describe('ClusterIP (TestClusterIPGeneral)', () => {
  const r = render([
    makeService('ns1', 'svc1', { clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] }),
    makeService('ns2', 'svc2', {
      clusterIP: '172.30.0.42',
      ports: [
        { name: 'p80', port: 80, protocol: 'TCP' },
        { name: 'p443', port: 443, protocol: 'TCP', targetPort: 8443 },
        { name: 'dns-udp', port: 53, protocol: 'UDP' },
        { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 5353 },
        { name: 'dns-sctp', port: 53, protocol: 'SCTP' },
      ],
    }),
    makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1')], [tcp('p80', 80)]),
    makeSlice('ns2', 'svc2', 1, [ep('10.180.0.1'), ep('10.180.2.1')], [
      tcp('p80', 80),
      tcp('p443', 8443),
      { name: 'dns-udp', port: 53, protocol: 'UDP' },
      tcp('dns-tcp', 5353),
      { name: 'dns-sctp', port: 53, protocol: 'SCTP' },
    ]),
  ]);

  it('routes each port and protocol to its endpoints', () =>
    flows(r, [
      { name: 'simple clusterIP', sourceIP: '10.180.0.2', destIP: '172.30.0.41', destPort: 80, output: '10.180.0.1:80' },
      { name: 'off-cluster source is masqueraded', sourceIP: '203.0.113.2', destIP: '172.30.0.41', destPort: 80, output: '10.180.0.1:80', masq: true },
      { name: 'hairpin to cluster IP', sourceIP: '10.180.0.1', destIP: '172.30.0.41', destPort: 80, output: '10.180.0.1:80', masq: true },
      { name: 'pod source is not masqueraded', sourceIP: '10.0.0.2', destIP: '172.30.0.41', destPort: 80, output: '10.180.0.1:80' },
      { name: 'clusterIP with multiple endpoints', sourceIP: '10.0.0.2', destIP: '172.30.0.42', destPort: 80, output: '10.180.0.1:80, 10.180.2.1:80' },
      { name: 'clusterIP with TargetPort', sourceIP: '10.0.0.2', destIP: '172.30.0.42', destPort: 443, output: '10.180.0.1:8443, 10.180.2.1:8443' },
      { name: 'TCP on 53', sourceIP: '10.0.0.2', protocol: 'tcp', destIP: '172.30.0.42', destPort: 53, output: '10.180.0.1:5353, 10.180.2.1:5353' },
      { name: 'UDP on 53', sourceIP: '10.0.0.2', protocol: 'udp', destIP: '172.30.0.42', destPort: 53, output: '10.180.0.1:53, 10.180.2.1:53' },
      { name: 'SCTP on 53', sourceIP: '10.0.0.2', protocol: 'sctp', destIP: '172.30.0.42', destPort: 53, output: '10.180.0.1:53, 10.180.2.1:53' },
      { name: 'TCP-only port does not match UDP traffic', sourceIP: '10.0.0.2', protocol: 'udp', destIP: '172.30.0.42', destPort: 80, output: '' },
      { name: "svc1 does not accept svc2's ports", sourceIP: '10.0.0.2', destIP: '172.30.0.41', destPort: 443, output: '' },
    ]));

  it('writes SCTP and UDP matches and the per-protocol chain names', () => {
    expect(r.text).toContain('-A KUBE-SERVICES -m comment --comment "ns2/svc2:dns-sctp cluster IP" -m sctp -p sctp -d 172.30.0.42 --dport 53 -j KUBE-SVC-');
    expect(r.text).toContain('-m udp -p udp -j DNAT --to-destination 10.180.2.1:53');
  });
});

describe('LoadBalancer with loadBalancerSourceRanges (TestLoadBalancer)', () => {
  const lb = (): V1Service =>
    makeService(
      'ns1',
      'svc1',
      {
        type: 'LoadBalancer',
        clusterIP: '172.30.0.41',
        ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }],
        loadBalancerSourceRanges: ['192.168.0.0/24', ' 203.0.113.0/25'],
      },
      { loadBalancer: { ingress: [{ ip: '1.2.3.4' }, { ip: '5.6.7.8' }] } },
    );
  const r = render([lb(), makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1')], [tcp('p80', 80)])]);
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
      { name: 'pod to LB2 (blocked by LoadBalancerSourceRanges)', sourceIP: '10.0.0.2', destIP: '5.6.7.8', destPort: 80, output: 'DROP' },
      { name: 'node to LB1 (allowed by LoadBalancerSourceRanges)', sourceIP: '192.168.0.2', destIP: '1.2.3.4', destPort: 80, output: out, masq: true },
      { name: 'node to LB2 (allowed by LoadBalancerSourceRanges)', sourceIP: '192.168.0.2', destIP: '5.6.7.8', destPort: 80, output: out, masq: true },
      { name: 'same node to LB1, SNATted to LB1 (implicitly allowed)', sourceIP: '1.2.3.4', destIP: '1.2.3.4', destPort: 80, output: out, masq: true },
      { name: 'same node to LB2, SNATted to LB2 (implicitly allowed)', sourceIP: '5.6.7.8', destIP: '5.6.7.8', destPort: 80, output: out, masq: true },
    ]));

  it('allows the LB IPs as sources only when a range contains the node IP', () => {
    const fw = 'KUBE-FW-XPGD46QRK7WJZT7O';
    expect(chain(r.text, 'nat', fw)).toEqual([
      `-A ${fw} -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 192.168.0.0/24 -j KUBE-EXT-XPGD46QRK7WJZT7O`,
      `-A ${fw} -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-XPGD46QRK7WJZT7O`,
      `-A ${fw} -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 1.2.3.4 -j KUBE-EXT-XPGD46QRK7WJZT7O`,
      `-A ${fw} -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 5.6.7.8 -j KUBE-EXT-XPGD46QRK7WJZT7O`,
      `-A ${fw} -m comment --comment "other traffic to ns1/svc1:p80 will be dropped by KUBE-PROXY-FIREWALL"`,
    ]);
    const other = render([lb(), makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1')], [tcp('p80', 80)])], { ...upstreamFakeProxier, nodeIP: IPAddr.mustParse('198.51.100.1') });
    expect(chain(other.text, 'nat', fw)).toHaveLength(3);
  });

  it('uses no FW chain for an LB without source ranges, and none without LB IPs', () => {
    const plain = render([
      makeService('ns1', 'svc1', { type: 'LoadBalancer', clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }] }, { loadBalancer: { ingress: [{ ip: '1.2.3.4' }, { ip: '5.6.7.8', ipMode: 'Proxy' }] } }),
      makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1')], [tcp('p80', 80)]),
    ]);
    expect(plain.text).not.toContain('KUBE-FW-');
    expect(plain.text).toContain('-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-XPGD46QRK7WJZT7O');
    // ipMode Proxy: the load balancer delivers to the node, no rule for its IP.
    expect(plain.text).not.toContain('5.6.7.8');
  });
});

describe('NodePorts × --nodeport-addresses × localhost NodePorts (TestNodePorts)', () => {
  const cases: { name: string; family: 4 | 6; localhostNodePorts: boolean; nodePortAddresses?: string[]; allowAltNodeIP: boolean; expectFirewall: boolean }[] = [
    { name: 'ipv4, localhost-nodeports enabled', family: 4, localhostNodePorts: true, allowAltNodeIP: true, expectFirewall: true },
    { name: 'ipv4, localhost-nodeports disabled', family: 4, localhostNodePorts: false, allowAltNodeIP: true, expectFirewall: false },
    { name: 'ipv4, localhost-nodeports disabled, localhost in nodeport-addresses', family: 4, localhostNodePorts: false, nodePortAddresses: ['192.168.0.0/24', '127.0.0.1/32'], allowAltNodeIP: false, expectFirewall: false },
    { name: 'ipv4, localhost-nodeports enabled, multiple nodeport-addresses', family: 4, localhostNodePorts: false, nodePortAddresses: ['192.168.0.0/24', '192.168.1.0/24', '2001:db8::/64'], allowAltNodeIP: true, expectFirewall: false },
    { name: 'ipv6, localhost-nodeports enabled', family: 6, localhostNodePorts: true, allowAltNodeIP: true, expectFirewall: false },
    { name: 'ipv6, localhost-nodeports disabled', family: 6, localhostNodePorts: false, allowAltNodeIP: true, expectFirewall: false },
    { name: 'ipv6, localhost-nodeports disabled, multiple nodeport-addresses', family: 6, localhostNodePorts: false, nodePortAddresses: ['192.168.0.0/24', '192.168.1.0/24', '2001:db8::/64'], allowAltNodeIP: false, expectFirewall: false },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const v4 = tc.family === 4;
      const [svcIP, ep1, ep2] = v4 ? ['172.30.0.41', '10.180.0.1', '10.180.2.1'] : ['fd00:172:30::41', 'fd00:10:180::1', 'fd00:10:180::2:1'];
      const base = v4 ? upstreamFakeProxier : v6Options;
      const options: IPTablesOptions = {
        ...base,
        localhostNodePorts: tc.localhostNodePorts,
        ...(tc.nodePortAddresses ? { nodePortAddresses: resolveNodePortAddresses(tc.family, tc.nodePortAddresses, { localAddresses }) } : {}),
      };
      const r = render(
        [
          makeService('ns1', 'svc1', { type: 'NodePort', clusterIP: svcIP, ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }] }),
          makeSlice('ns1', 'svc1', 1, [ep(ep1), ep(ep2, { nodeName: 'test-node' })], [tcp('p80', 80)], v4 ? 'IPv4' : 'IPv6'),
        ],
        options,
      );
      const [pod, ext, node, alt, lo] = v4 ? ['10.0.0.2', '203.0.113.2', '192.168.0.2', '192.168.1.2', '127.0.0.1'] : ['fd00:10::2', '2600:5200::1', '2001:db8::1', '2001:db8:1::2', '::1'];
      const output = v4 ? `${ep1}:80, ${ep2}:80` : `[${ep1}]:80, [${ep2}]:80`;
      flows(r, [
        { name: 'pod to cluster IP', sourceIP: pod, destIP: svcIP, destPort: 80, output },
        { name: 'external to nodePort', sourceIP: ext, destIP: node, destPort: 3001, output, masq: true },
        { name: 'node to nodePort', sourceIP: node, destIP: node, destPort: 3001, output, masq: true },
        v4 && tc.localhostNodePorts
          ? { name: 'localhost to nodePort gets masqueraded', sourceIP: lo, destIP: lo, destPort: 3001, output, masq: true }
          : { name: 'localhost to nodePort is ignored', sourceIP: lo, destIP: lo, destPort: 3001, output: '' },
        tc.allowAltNodeIP
          ? { name: 'external to nodePort on secondary IP', sourceIP: ext, destIP: alt, destPort: 3001, output, masq: true }
          : { name: 'secondary nodeIP ignores NodePorts', sourceIP: ext, destIP: alt, destPort: 3001, output: '' },
      ]);
      const firewall = '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP';
      expect(chain(r.text, 'filter', 'KUBE-FIREWALL')).toEqual(tc.expectFirewall ? [firewall] : []);
    });
  }

  it('writes one KUBE-NODEPORTS jump per matching node address, `primary` included', () => {
    const npa = resolveNodePortAddresses(4, ['primary', '192.168.99.0/24'], { primaryIP: IPAddr.mustParse('192.168.0.2'), localAddresses });
    const r = render([makeService('ns1', 'svc1', { clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80 }] })], { ...upstreamFakeProxier, nodePortAddresses: npa });
    const last = '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"';
    expect(chain(r.text, 'nat', 'KUBE-SERVICES')).toEqual([`${last} -d 192.168.0.2 -j KUBE-NODEPORTS`, `${last} -d 192.168.99.11 -j KUBE-NODEPORTS`]);
    // Without localhost coverage there is no localhost NodePort rule either.
    expect(npa.containsIPv4Loopback).toBe(false);
    expect(resolveNodePortAddresses(4, ['2001:db8::/64'], { localAddresses }).matchAll).toBe(true);
    expect(resolveNodePortAddresses(4, ['0.0.0.0/0', '10.0.0.0/8'], { localAddresses }).matchAll).toBe(true);
  });

  it('keeps IPv6 localhost out of the catch-all rule', () => {
    const r = render([], v6Options);
    expect(r.text).toContain('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS');
    const r4 = render([], { ...upstreamFakeProxier, localhostNodePorts: false });
    expect(r4.text).toContain('-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS');
  });
});

describe('health check node ports (TestHealthCheckNodePort)', () => {
  it('accepts the port while the service exists, endpoints or not', () => {
    const svc = makeService('ns1', 'svc1', {
      type: 'LoadBalancer',
      clusterIP: '172.30.0.42',
      ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }],
      healthCheckNodePort: 30000,
      externalTrafficPolicy: 'Local',
    });
    const npa = resolveNodePortAddresses(4, ['127.0.0.0/8'], { localAddresses });
    const r = render([svc], { ...upstreamFakeProxier, nodePortAddresses: npa });
    flows(r, [{ name: 'firewall accepts HealthCheckNodePort', sourceIP: '1.2.3.4', destIP: '192.168.0.2', destPort: 30000, output: 'ACCEPT' }]);
    expect(chain(r.text, 'filter', 'KUBE-NODEPORTS')).toEqual(['-A KUBE-NODEPORTS -m comment --comment "ns1/svc1:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT']);
    r.world.serviceChanges.update(svc, undefined);
    r.world.sync();
    const after = renderIPTables({ services: r.world.services.map, endpoints: r.world.endpoints.map }, upstreamFakeProxier);
    runPacketFlows(after.text, testNodeIPs, [{ name: 'HealthCheckNodePort no longer has any rule', sourceIP: '1.2.3.4', destIP: '192.168.0.2', destPort: 30000, output: '' }]);
  });
});

describe('KUBE-FORWARD INVALID drop (TestDropInvalidRule)', () => {
  const tail = [
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
  ];
  it.each([
    { nfacct: false, conntrackTCPLiberal: false, drop: ['-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP'] },
    { nfacct: true, conntrackTCPLiberal: false, drop: ['-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP'] },
    { nfacct: false, conntrackTCPLiberal: true, drop: [] },
  ])('nfacct $nfacct, tcp_be_liberal $conntrackTCPLiberal', ({ nfacct, conntrackTCPLiberal, drop }) => {
    const r = render([], { ...upstreamFakeProxier, nfacct, conntrackTCPLiberal });
    expect(chain(r.text, 'filter', 'KUBE-FORWARD')).toEqual([...drop, ...tail]);
  });
});

describe('masquerade rules (TestMasqueradeRule)', () => {
  it.each([
    { randomFully: false, bit: 14, mark: '0x00004000', suffix: '' },
    { randomFully: true, bit: 14, mark: '0x00004000', suffix: ' --random-fully' },
    { randomFully: false, bit: 0, mark: '0x00000001', suffix: '' },
  ])('random-fully $randomFully, bit $bit', ({ randomFully, bit, mark, suffix }) => {
    const r = render([], { family: 4, masqueradeBit: bit, randomFully });
    expect(chain(r.text, 'nat', 'KUBE-POSTROUTING')).toEqual([
      `-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`,
      `-A KUBE-POSTROUTING -j MARK --xor-mark ${mark}`,
      `-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE${suffix}`,
    ]);
    expect(chain(r.text, 'nat', 'KUBE-MARK-MASQ')).toEqual([`-A KUBE-MARK-MASQ -j MARK --or-mark ${mark}`]);
  });

  it('formats marks like Go %#08x and probabilities like %0.10f', () => {
    expect(masqueradeMark(14)).toBe('0x00004000');
    expect(masqueradeMark(31)).toBe('0x80000000');
    expect(() => masqueradeMark(32)).toThrow(RangeError);
    // TestComputeProbability
    expect([1, 2, 10, 100000, 100001].map(computeProbability)).toEqual(['1.0000000000', '0.5000000000', '0.1000000000', '0.0000100000', '0.0000099999']);
    let prev = -1;
    const notIncreasing: number[] = [];
    for (let n = 100000; n >= 2; n--) {
      const p = Number(computeProbability(n));
      if (!(p > prev)) notIncreasing.push(n);
      prev = p;
    }
    expect(notIncreasing).toEqual([]);
  });
});

describe('no endpoints (TestNoEndpointsReject)', () => {
  it('REJECTs the ClusterIP, externalIP, NodePort and LB IP in the filter table', () => {
    const r = render([
      makeService(
        'ns1',
        'svc1',
        { type: 'LoadBalancer', clusterIP: '172.30.0.41', externalIPs: ['192.168.99.11'], ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }] },
        { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } },
      ),
    ]);
    flows(r, [
      { name: 'pod to cluster IP with no endpoints', sourceIP: '10.0.0.2', destIP: '172.30.0.41', destPort: 80, output: 'REJECT' },
      { name: 'external to external IP with no endpoints', sourceIP: '203.0.113.2', destIP: '192.168.99.11', destPort: 80, output: 'REJECT' },
      { name: 'pod to NodePort with no endpoints', sourceIP: '10.0.0.2', destIP: '192.168.0.2', destPort: 3001, output: 'REJECT' },
      { name: 'external to NodePort with no endpoints', sourceIP: '203.0.113.2', destIP: '192.168.0.2', destPort: 3001, output: 'REJECT' },
      { name: 'pod to LB IP with no endpoints', sourceIP: '10.0.0.2', destIP: '1.2.3.4', destPort: 80, output: 'REJECT' },
      { name: 'external to LB IP with no endpoints', sourceIP: '203.0.113.2', destIP: '1.2.3.4', destPort: 80, output: 'REJECT' },
    ]);
    // No per-service nat chain at all.
    expect(r.text).not.toMatch(/KUBE-(SVC|EXT|SEP)-/);
  });

  it('treats endpoints that are neither ready nor serving-terminating as none', () => {
    const r = render([
      makeService('ns1', 'svc1', { clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80 }] }),
      makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1', { conditions: { ready: false, serving: false, terminating: true } }), ep('10.180.0.2', { conditions: { ready: false, serving: true, terminating: false } })], [tcp('p80', 80)]),
    ]);
    expect(chain(r.text, 'filter', 'KUBE-SERVICES')).toEqual(['-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j REJECT']);
  });
});

describe('externalTrafficPolicy Local (TestExternalTrafficPolicyLocal and the terminating-endpoint tests)', () => {
  const svc = (): V1Service =>
    makeService(
      'ns1',
      'svc1',
      { type: 'LoadBalancer', clusterIP: '172.30.0.41', externalIPs: ['192.168.99.11'], externalTrafficPolicy: 'Local', healthCheckNodePort: 30000, ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }] },
      { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } },
    );
  const cluster = '10.180.0.1:80, 10.180.2.1:80';

  it('keeps the client IP for external traffic to local endpoints', () => {
    const r = render([svc(), makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1'), ep('10.180.2.1', { nodeName: 'test-node' })], [tcp('p80', 80)])]);
    flows(r, [
      { name: 'pod to cluster IP hits both endpoints', sourceIP: '10.0.0.2', destIP: '172.30.0.41', destPort: 80, output: cluster },
      { name: 'external to LB IP hits only the local endpoint, unmasqueraded', sourceIP: '203.0.113.2', destIP: '1.2.3.4', destPort: 80, output: '10.180.2.1:80' },
      { name: 'external to NodePort', sourceIP: '203.0.113.2', destIP: '192.168.0.2', destPort: 3001, output: '10.180.2.1:80' },
      { name: 'external to externalIP', sourceIP: '203.0.113.2', destIP: '192.168.99.11', destPort: 80, output: '10.180.2.1:80' },
      { name: 'pod to LB IP short-circuits to all endpoints', sourceIP: '10.0.0.2', destIP: '1.2.3.4', destPort: 80, output: cluster },
      { name: 'node to LB IP is masqueraded to all endpoints', sourceIP: '192.168.0.2', destIP: '1.2.3.4', destPort: 80, output: cluster, masq: true },
    ]);
    expect(chain(r.text, 'nat', 'KUBE-SVL-XPGD46QRK7WJZT7O')).toEqual(['-A KUBE-SVL-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.2.1:80" -j KUBE-SEP-ZX7GRIZKSNUQ3LAJ']);
  });

  it('DROPs external traffic on a node without local endpoints, still serving pods and the node', () => {
    const r = render([svc(), makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1'), ep('10.180.2.1')], [tcp('p80', 80)])]);
    flows(r, [
      { name: 'external to LB IP', sourceIP: '203.0.113.2', destIP: '1.2.3.4', destPort: 80, output: 'DROP' },
      { name: 'external to NodePort', sourceIP: '203.0.113.2', destIP: '192.168.0.2', destPort: 3001, output: 'DROP' },
      { name: 'pod to LB IP', sourceIP: '10.0.0.2', destIP: '1.2.3.4', destPort: 80, output: cluster },
      { name: 'pod to cluster IP', sourceIP: '10.0.0.2', destIP: '172.30.0.41', destPort: 80, output: cluster },
    ]);
    expect(r.noLocalEndpointsExternal).toBe(1);
    expect(r.text).not.toContain('KUBE-SVL-');
    expect(chain(r.text, 'filter', 'KUBE-NODEPORTS')).toHaveLength(1);
  });

  it('falls back to local serving+terminating endpoints when no local one is ready', () => {
    const r = render([
      svc(),
      makeSlice('ns1', 'svc1', 1, [
        ep('10.180.0.1'),
        ep('10.180.2.1', { nodeName: 'test-node', conditions: { ready: false, serving: true, terminating: true } }),
        ep('10.180.2.2', { nodeName: 'test-node', conditions: { ready: false, serving: false, terminating: true } }),
      ], [tcp('p80', 80)]),
    ]);
    flows(r, [
      { name: 'external gets the terminating local endpoint', sourceIP: '203.0.113.2', destIP: '1.2.3.4', destPort: 80, output: '10.180.2.1:80' },
      // The cluster set has a ready endpoint, so it does not fall back.
      { name: 'pods get the ready endpoint only', sourceIP: '10.0.0.2', destIP: '172.30.0.41', destPort: 80, output: '10.180.0.1:80' },
    ]);
  });

  it('is ignored for a ClusterIP service without external destinations', () => {
    const r = render([
      makeService('ns1', 'svc1', { clusterIP: '172.30.0.41', externalTrafficPolicy: 'Local', ports: [{ name: 'p80', port: 80 }] }),
      makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1')], [tcp('p80', 80)]),
    ]);
    expect(r.text).not.toMatch(/KUBE-(SVL|EXT)-/);
    flows(r, [{ name: 'pod to cluster IP', sourceIP: '10.0.0.2', destIP: '172.30.0.41', destPort: 80, output: '10.180.0.1:80' }]);
  });
});

describe('externalTrafficPolicy Cluster (TestExternalTrafficPolicyCluster)', () => {
  it('masquerades every external destination, never pod → ClusterIP', () => {
    const r = render([
      makeService(
        'ns1',
        'svc1',
        { type: 'LoadBalancer', clusterIP: '172.30.0.41', externalIPs: ['192.168.99.11'], externalTrafficPolicy: 'Cluster', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001, targetPort: 80 }] },
        { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } },
      ),
      makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1'), ep('10.180.2.1', { nodeName: 'test-node' })], [tcp('p80', 80)]),
    ]);
    const both = '10.180.0.1:80, 10.180.2.1:80';
    flows(r, [
      { name: 'pod to cluster IP hits both endpoints, unmasqueraded', sourceIP: '10.0.0.2', destIP: '172.30.0.41', destPort: 80, output: both },
      { name: 'pod to external IP hits both endpoints, masqueraded', sourceIP: '10.0.0.2', destIP: '192.168.99.11', destPort: 80, output: both, masq: true },
      { name: 'external to external IP hits both endpoints, masqueraded', sourceIP: '203.0.113.2', destIP: '192.168.99.11', destPort: 80, output: both, masq: true },
      { name: 'pod to LB IP hits both endpoints, masqueraded', sourceIP: '10.0.0.2', destIP: '1.2.3.4', destPort: 80, output: both, masq: true },
      { name: 'external to LB IP hits both endpoints, masqueraded', sourceIP: '203.0.113.2', destIP: '1.2.3.4', destPort: 80, output: both, masq: true },
      { name: 'pod to NodePort hits both endpoints, masqueraded', sourceIP: '10.0.0.2', destIP: '192.168.0.2', destPort: 3001, output: both, masq: true },
      { name: 'external to NodePort hits both endpoints, masqueraded', sourceIP: '203.0.113.2', destIP: '192.168.0.2', destPort: 3001, output: both, masq: true },
    ]);
  });
});

describe('externalTrafficPolicy Cluster with no local detector', () => {
  it('masquerades external traffic and leaves off the ClusterIP masquerade rule', () => {
    const r = render(
      [
        makeService('ns1', 'svc1', { type: 'NodePort', clusterIP: '172.30.0.41', externalIPs: ['192.168.99.11'], ports: [{ name: 'p80', port: 80, nodePort: 3001 }] }),
        makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1')], [tcp('p80', 80)]),
      ],
      { ...upstreamFakeProxier, localDetector: noLocalDetector },
    );
    flows(r, [
      { name: 'off-cluster source to cluster IP is not masqueraded', sourceIP: '203.0.113.2', destIP: '172.30.0.41', destPort: 80, output: '10.180.0.1:80' },
      { name: 'external IP is masqueraded', sourceIP: '203.0.113.2', destIP: '192.168.99.11', destPort: 80, output: '10.180.0.1:80', masq: true },
    ]);
    expect(chain(r.text, 'nat', 'KUBE-SVC-XPGD46QRK7WJZT7O')).toEqual(['-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ']);
  });
});

describe('internalTrafficPolicy Local (TestInternalTrafficPolicy)', () => {
  const svc = makeService('ns1', 'svc1', { clusterIP: '172.30.0.1', internalTrafficPolicy: 'Local', ports: [{ name: '', port: 80, protocol: 'TCP' }] });
  const port = (): { name: string; port: number; protocol: string } => ({ name: '', port: 80, protocol: 'TCP' });

  it('uses only local endpoints', () => {
    const r = render([svc, makeSlice('ns1', 'svc1', 1, [ep('10.0.1.1', { nodeName: 'test-node' }), ep('10.0.1.2', { nodeName: 'host1' }), ep('10.0.1.3', { nodeName: 'test-node' })], [port()])]);
    flows(r, [{ name: 'pod to ClusterIP hits only local endpoints', sourceIP: '10.0.0.0', destIP: '172.30.0.1', destPort: 80, output: '10.0.1.1:80, 10.0.1.3:80' }]);
    expect(r.text).toContain(':KUBE-SVL-');
    expect(r.text).not.toContain(':KUBE-SVC-');
  });

  it('DROPs when there is no local endpoint', () => {
    const r = render([svc, makeSlice('ns1', 'svc1', 1, [ep('10.0.1.1', { nodeName: 'host0' }), ep('10.0.1.2', { nodeName: 'host1' })], [port()])]);
    flows(r, [{ name: 'no local endpoints', sourceIP: '10.0.0.0', destIP: '172.30.0.1', destPort: 80, output: 'DROP' }]);
    expect(chain(r.text, 'filter', 'KUBE-SERVICES')).toEqual(['-A KUBE-SERVICES -m comment --comment "ns1/svc1 has no local endpoints" -m tcp -p tcp -d 172.30.0.1 --dport 80 -j DROP']);
    expect(r.noLocalEndpointsInternal).toBe(1);
  });

  it('falls back to local terminating endpoints', () => {
    const r = render([svc, makeSlice('ns1', 'svc1', 1, [ep('10.0.1.1', { nodeName: 'test-node', conditions: { ready: false, serving: true, terminating: true } }), ep('10.0.1.2', { nodeName: 'host1' })], [port()])]);
    flows(r, [{ name: 'local terminating endpoint', sourceIP: '10.0.0.0', destIP: '172.30.0.1', destPort: 80, output: '10.0.1.1:80' }]);
  });
});

describe('masquerade-all and local-traffic detectors', () => {
  const objs = (): (V1Service | V1EndpointSlice)[] => [
    makeService('ns1', 'svc1', { clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80 }] }),
    makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1')], [tcp('p80', 80)]),
  ];
  const masqRule = (r: RenderResult): string | undefined => chain(r.text, 'nat', 'KUBE-SVC-XPGD46QRK7WJZT7O')[0];
  const base = '-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80';

  it.each([
    { name: 'masqueradeAll', options: { masqueradeAll: true }, rule: `${base} -j KUBE-MARK-MASQ` },
    { name: 'ClusterCIDR', options: {}, rule: `${base} ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ` },
    { name: 'BridgeInterface', options: { localDetector: detectLocalByBridgeInterface('cni0') }, rule: `${base} ! -i cni0 -j KUBE-MARK-MASQ` },
    { name: 'InterfaceNamePrefix', options: { localDetector: detectLocalByInterfaceNamePrefix('veth') }, rule: `${base} ! -i veth+ -j KUBE-MARK-MASQ` },
  ])('$name', ({ options, rule }) => {
    expect(masqRule(render(objs(), { ...upstreamFakeProxier, ...options }))).toBe(rule);
  });

  it('masqueradeAll masquerades pod traffic too', () => {
    flows(render(objs(), { ...upstreamFakeProxier, masqueradeAll: true }), [{ name: 'pod', sourceIP: '10.0.0.2', destIP: '172.30.0.41', destPort: 80, output: '10.180.0.1:80', masq: true }]);
  });

  it('an interface detector tells pods by their incoming interface', () => {
    const r = render(objs(), { ...upstreamFakeProxier, localDetector: detectLocalByInterfaceNamePrefix('veth') });
    const tracer = (iface?: string): boolean => runMasq(r.text, { source: '10.0.0.2', destination: '172.30.0.41', port: 80, protocol: 'tcp', inInterface: iface });
    expect(tracer('veth1234')).toBe(false);
    expect(tracer('eth0')).toBe(true);
  });
});

function runMasq(text: string, pkt: Packet): boolean {
  return new IPTablesTracer(text, testNodeIPs).trace(pkt).masquerade;
}

describe('session affinity (ClientIP)', () => {
  it('checks the recent list before balancing and records it at DNAT', () => {
    const r = render([
      makeService('ns1', 'svc1', { clusterIP: '172.30.0.41', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 300 } }, ports: [{ name: 'p80', port: 80 }] }),
      makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1'), ep('10.180.0.2')], [tcp('p80', 80)]),
    ]);
    const svc = chain(r.text, 'nat', 'KUBE-SVC-XPGD46QRK7WJZT7O');
    expect(svc.slice(1, 3).every((l) => / -m recent --name (KUBE-SEP-\S+) --rcheck --seconds 300 --reap -j \1$/.test(l))).toBe(true);
    expect(svc[3]).toContain('-m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-');
    expect(r.text).toMatch(/-A (KUBE-SEP-\S+) -m comment --comment ns1\/svc1:p80 -m recent --name \1 --set -m tcp -p tcp -j DNAT --to-destination 10\.180\.0\.1:80/);
  });
});

describe('IPv6', () => {
  it('writes IPv6 addresses, bracketed DNAT targets and no localhost rules', () => {
    const r = render(
      [
        makeService('ns1', 'svc1', { type: 'NodePort', clusterIP: 'fd00:172:30::41', ipFamilies: ['IPv6'], clusterIPs: ['fd00:172:30::41'], ports: [{ name: 'p80', port: 80, nodePort: 3001 }] }),
        makeSlice('ns1', 'svc1', 1, [ep('fd00:10:180::1')], [tcp('p80', 80)], 'IPv6'),
      ],
      v6Options,
    );
    expect(r.text).toContain('-m tcp -p tcp -d fd00:172:30::41 --dport 80 ! -s fd00:10::/64 -j KUBE-MARK-MASQ');
    expect(r.text).toContain('-s fd00:10:180::1 -j KUBE-MARK-MASQ');
    expect(r.text).toContain('-j DNAT --to-destination [fd00:10:180::1]:80');
    expect(r.text).not.toContain('127.0.0.0/8');
    expect(r.text).not.toContain('KUBE-FIREWALL');
  });

  it('renders a dual-stack service in each family with its own ClusterIP', () => {
    const svc = makeService('ns1', 'svc1', { clusterIP: '172.30.0.41', clusterIPs: ['172.30.0.41', 'fd00:172:30::41'], ipFamilies: ['IPv4', 'IPv6'], ports: [{ name: 'p80', port: 80 }] });
    const r4 = render([svc, makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1')], [tcp('p80', 80)]), makeSlice('ns1', 'svc1', 2, [ep('fd00:10:180::1')], [tcp('p80', 80)], 'IPv6')]);
    const r6 = render([svc, makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1')], [tcp('p80', 80)]), makeSlice('ns1', 'svc1', 2, [ep('fd00:10:180::1')], [tcp('p80', 80)], 'IPv6')], v6Options);
    expect(r4.text).toContain('--to-destination 10.180.0.1:80');
    expect(r4.text).not.toContain('fd00');
    expect(r6.text).toContain('--to-destination [fd00:10:180::1]:80');
    expect(r6.text).not.toContain('172.30.0.41');
  });
});

describe('large clusters', () => {
  it('leaves comments off the SVC→SEP and SEP rules above the endpoint threshold', () => {
    const r = render([
      makeService('ns1', 'svc1', { clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80 }] }),
      makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1'), ep('10.180.0.2')], [tcp('p80', 80)]),
    ], { ...upstreamFakeProxier, largeClusterEndpointsThreshold: 1 });
    expect(r.largeClusterMode).toBe(true);
    const svc = chain(r.text, 'nat', 'KUBE-SVC-XPGD46QRK7WJZT7O');
    expect(svc[0]).toContain('--comment "ns1/svc1:p80 cluster IP"');
    expect(svc[1]).toMatch(/^-A KUBE-SVC-XPGD46QRK7WJZT7O -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-\S+$/);
    expect(r.text).toMatch(/\n-A KUBE-SEP-\S+ -s 10\.180\.0\.1 -j KUBE-MARK-MASQ\n/);
    expect(r.text).toMatch(/\n-A KUBE-SEP-\S+ -m tcp -p tcp -j DNAT --to-destination 10\.180\.0\.1:80\n/);
  });
});

describe('stale chains', () => {
  it('deletes only unused service chains, never other chains', () => {
    const r = render([], upstreamFakeProxier);
    const renderer = new IPTablesRenderer();
    const existing = chainsFromSave('*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n:KUBE-XLB-BBBBBBBBBBBBBBBB - [0:0]\n:KUBE-MINE - [0:0]\nCOMMIT\n*filter\n:KUBE-SVC-CCCCCCCCCCCCCCCC - [0:0]\nCOMMIT\n', 'nat');
    expect([...existing]).toEqual(['PREROUTING', 'KUBE-SVC-AAAAAAAAAAAAAAAA', 'KUBE-XLB-BBBBBBBBBBBBBBBB', 'KUBE-MINE']);
    const out = renderer.render({ services: r.world.services.map, endpoints: r.world.endpoints.map, existingNatChains: existing }, upstreamFakeProxier);
    expect(out.deletedChains).toEqual(['KUBE-SVC-AAAAAAAAAAAAAAAA', 'KUBE-XLB-BBBBBBBBBBBBBBBB']);
    expect(out.text).toContain(':KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n:KUBE-XLB-BBBBBBBBBBBBBBBB - [0:0]\n');
    expect(out.text).toContain('-X KUBE-SVC-AAAAAAAAAAAAAAAA\n-X KUBE-XLB-BBBBBBBBBBBBBBBB\n');
  });
});

describe('invalid objects', () => {
  it('skips a bad service whole and renders the rest', () => {
    const r = render([
      makeService('ns1', 'good', { clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80 }] }),
      makeService('ns1', 'badip', { clusterIP: '172.30.0.999', ports: [{ name: 'p80', port: 80 }] }),
      makeService('ns1', 'badport', { clusterIP: '172.30.0.43', ports: [{ name: 'a', port: 80 }, { name: 'b', port: 70000 }] }),
      makeService('ns1', 'badproto', { clusterIP: '172.30.0.44', ports: [{ name: 'a', port: 80, protocol: 'ICMP' }] }),
      makeSlice('ns1', 'good', 1, [ep('10.180.0.1'), ep('not-an-ip')], [tcp('p80', 80)]),
    ]);
    expect(r.text).toContain('-d 172.30.0.41 --dport 80 -j KUBE-SVC-');
    expect(r.text).not.toMatch(/172\.30\.0\.(43|44)|999/);
    expect(r.world.issues.map((i) => `${i.namespace}/${i.name} ${i.skipped}`)).toEqual(['ns1/badip true', 'ns1/badport true', 'ns1/badproto true', 'ns1/good-1 false']);
  });
});
