// The rendered rulesets of both backends against the hand-written truth
// tables: every node's nftables table (testing/nft-tracer.ts) and iptables +
// ipset ruleset (testing/iptables-tracer.ts) is traced for the first packet
// of each connection, through the forward hook of the source's node and of
// the destination's node (one traversal when both are the same node).
import { describe, expect, test } from 'vitest';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import { buildCluster } from '../model/cluster.ts';
import { localPlan } from '../model/plan.ts';
import { NftTracer } from '../testing/nft-tracer.ts';
import { IptablesTracer } from '../testing/iptables-tracer.ts';
import type { LocalPlan } from '../model/plan.ts';
import { namespace, pod, policy } from '../testing/fixtures.ts';
import { CASES, CELLS, computeMatrix, EXT, expected, ipOf, NODES, nodeOf, PROBE_ROWS, render, world } from '../testing/truth-cases.ts';
import { nftState } from './nftables.ts';
import { iptablesState } from './iptables.ts';

type Hook = 'forward' | 'input';
interface Tracer {
  passes(hook: Hook, pkt: { src: IPAddr; dst: IPAddr; port: number; protocol: 'TCP' | 'UDP' | 'SCTP' }): boolean;
}
const BACKENDS: { name: string; tracer: (plan: LocalPlan) => Tracer }[] = [
  { name: 'nftables', tracer: (plan) => new NftTracer(nftState(plan, { logDenied: {} })) },
  { name: 'iptables + ipset', tracer: (plan) => new IptablesTracer(iptablesState(plan, { logDenied: { group: 5 } })) },
];

describe.each(BACKENDS)('$name', ({ tracer: traceOf }) => {

  describe.each(CASES)('$name', (c) => {
    const { pods, namespaces } = world(c.extraPorts);
    const cluster = buildCluster({ pods, namespaces, policies: c.policies });
    const tracers = new Map(NODES.map((n) => [n, traceOf(localPlan(cluster, n))]));

    test.each(PROBE_ROWS)('$probe', ({ probe, proto, port }) => {
      const got = computeMatrix((r, d) => {
        const pkt = { src: IPAddr.mustParse(r === 'ext' ? EXT : ipOf(r)), dst: IPAddr.mustParse(ipOf(d)), port, protocol: proto };
        const nodes = new Set([nodeOf(CELLS.indexOf(d))]);
        if (r !== 'ext') nodes.add(nodeOf(CELLS.indexOf(r)));
        return [...nodes].every((n) => tracers.get(n)!.passes('forward', pkt));
      });
      expect(render(got)).toBe(render(expected(c, probe)));
    });
  });

  describe('what the truth tables do not cover', () => {
    const pods = [
      pod('ns', 'a', { labels: { app: 'a' }, ips: ['10.244.1.2', 'fd00:1::2'], node: 'n1' }),
      pod('ns', 'b', { labels: { app: 'b' }, ips: ['10.244.1.3', 'fd00:1::3'], node: 'n1' }),
    ];
    const tracer = (policies: ReturnType<typeof policy>[]) =>
      traceOf(localPlan(buildCluster({ pods, namespaces: [namespace('ns')], policies }), 'n1', { podCIDRs: [IPPrefix.mustParse('10.244.1.0/24'), IPPrefix.mustParse('fd00:1::/64')] }));
    const pkt = (src: string, dst: string, port = 80) => ({ src: IPAddr.mustParse(src), dst: IPAddr.mustParse(dst), port, protocol: 'TCP' as const });

    test('an address of the pod CIDR without a known pod is held, both ways, both families', () => {
      const t = tracer([]);
      expect(t.passes('forward', pkt('10.244.1.2', '10.244.1.3'))).toBe(true);
      expect(t.passes('forward', pkt('10.244.1.2', '10.244.1.99'))).toBe(false);
      expect(t.passes('forward', pkt('10.244.1.99', '198.51.100.1'))).toBe(false);
      expect(t.passes('forward', pkt('fd00:1::99', 'fd00:1::2'))).toBe(false);
      expect(t.passes('forward', pkt('198.51.100.1', '203.0.113.1'))).toBe(true);
    });

    test("egress isolation covers the pod's traffic to its node (input hook); ingress from the node is not policed", () => {
      const t = tracer([policy('ns', 'deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })]);
      expect(t.passes('input', pkt('10.244.1.2', '10.244.1.1'))).toBe(false);
      expect(tracer([]).passes('input', pkt('10.244.1.2', '10.244.1.1'))).toBe(true);
      // The node's own traffic to its pods leaves through output, which the table does not hook.
      expect(t.passes('forward', pkt('10.244.1.3', '10.244.1.2'))).toBe(false);
    });

    test('an IPv6 connection is decided by the IPv6 sets', () => {
      const t = tracer([policy('ns', 'p', { podSelector: { matchLabels: { app: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'b' } } }] }] })]);
      expect(t.passes('forward', pkt('fd00:1::3', 'fd00:1::2'))).toBe(true);
      expect(t.passes('forward', pkt('2001:db8::1', 'fd00:1::2'))).toBe(false);
    });
  });
});
