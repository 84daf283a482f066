// The truth tables of testing/truth-cases.ts against the model: evaluate(),
// and the per-node plans read the way the datapath reads them (the plan
// tracer: source node's egress plan, destination node's ingress plan).
import { describe, expect, test } from 'vitest';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import { planAllows } from '../testing/plan-tracer.ts';
import { CASES, CELLS, computeMatrix, EXT, expected, ipOf, NODES, nodeOf, PROBE_ROWS, render, world } from '../testing/truth-cases.ts';
import { buildCluster } from './cluster.ts';
import { evaluate } from './evaluate.ts';
import { localPlan, type LocalPlan } from './plan.ts';

describe.each(CASES)('$name', (c) => {
  const { pods, namespaces } = world(c.extraPorts);
  const cluster = buildCluster({ pods, namespaces, policies: c.policies });
  const plans = new Map<string, LocalPlan>(NODES.map((n) => [n, localPlan(cluster, n)]));
  const endpoint = (cell: string) => (cell === 'ext' ? { ip: EXT } : { pod: `${cell[0]}/${cell[1]}` });

  test.each(PROBE_ROWS)('$probe: evaluate()', ({ probe, proto, port }) => {
    const got = computeMatrix((r, d) => evaluate(cluster, endpoint(r), endpoint(d), port, proto).allowed);
    expect(render(got)).toBe(render(expected(c, probe)));
  });

  test.each(PROBE_ROWS)('$probe: node plans', ({ probe, proto, port }) => {
    const got = computeMatrix((r, d) => {
      const pkt = { src: IPAddr.mustParse(r === 'ext' ? EXT : ipOf(r)), dst: IPAddr.mustParse(ipOf(d)), port, protocol: proto };
      const egress = r === 'ext' || planAllows(plans.get(nodeOf(CELLS.indexOf(r)))!, 'egress', pkt);
      return egress && planAllows(plans.get(nodeOf(CELLS.indexOf(d)))!, 'ingress', pkt);
    });
    expect(render(got)).toBe(render(expected(c, probe)));
  });
});

test('the self cells are asked nothing: evaluate() agrees they are allowed', () => {
  const { pods, namespaces } = world();
  const cluster = buildCluster({ pods, namespaces, policies: CASES.flatMap((c) => c.policies) });
  for (const cell of CELLS) expect(evaluate(cluster, { pod: `${cell[0]}/${cell[1]}` }, { pod: `${cell[0]}/${cell[1]}` }, 80, 'TCP').allowed).toBe(true);
});

test('held addresses: an unknown address in the pod CIDR is dropped until its pod is known', () => {
  const { pods, namespaces } = world();
  const plan = localPlan(buildCluster({ pods, namespaces }), 'n1', { podCIDRs: [IPPrefix.mustParse('10.0.0.0/16')] });
  const pkt = (src: string, dst: string) => ({ src: IPAddr.mustParse(src), dst: IPAddr.mustParse(dst), port: 80, protocol: 'TCP' as const });
  expect(planAllows(plan, 'ingress', pkt(EXT, '10.0.1.1'))).toBe(true); // x/a, on n1, known
  expect(planAllows(plan, 'ingress', pkt(EXT, '10.0.1.200'))).toBe(false); // no pod yet
  expect(planAllows(plan, 'egress', pkt('10.0.1.200', EXT))).toBe(false);
  expect(planAllows(plan, 'ingress', pkt(EXT, '198.51.100.5'))).toBe(true); // not a pod CIDR
});
