// The IPVS tracer over plans rendered from objects: which filter verdict,
// which virtual server, which real servers and whether each is masqueraded.
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import { makeService, makeSlice, tcp, World } from '../testing/fixtures.ts';
import { IPVSPlan, type IPVSOptions } from '../render/ipvs.ts';
import { detectLocalByCIDR } from '../render/options.ts';
import { formatIPVSTrace, IPVSTracer } from './ipvs.ts';

const NODE = '192.0.2.1';
const o: IPVSOptions = { family: 4, nodeName: 'node-a', nodeIP: IPAddr.mustParse(NODE), localDetector: detectLocalByCIDR(IPPrefix.mustParse('10.244.0.0/16')), nodePortIPs: [IPAddr.mustParse(NODE)], nodeLocalAddresses: [IPAddr.mustParse(NODE)] };

function tracer(objs: (V1Service | V1EndpointSlice)[]): IPVSTracer {
  const w = new World(4, 'node-a').add(...objs);
  w.sync();
  const plan = new IPVSPlan();
  plan.update(w.services.map, w.endpoints.map, o);
  return new IPVSTracer(plan, plan.iptables(o), [NODE], 4);
}
const pkt = (source: string, destination: string, port: number) => ({ source, destination, port, protocol: 'tcp' });

describe('IPVSTracer', () => {
  const web = [
    makeService('ns', 'web', { type: 'NodePort', clusterIP: '10.96.0.10', ports: [{ name: 'p', port: 80, protocol: 'TCP', targetPort: 8080, nodePort: 30080 }] }),
    makeSlice('ns', 'web', 1, [{ addresses: ['10.244.1.5'], nodeName: 'node-a' }, { addresses: ['10.244.2.5'], nodeName: 'node-b' }], [tcp('p', 8080)]),
  ];

  it('a pod to the ClusterIP: both real servers at 1/2, not masqueraded, except the hairpin to itself', () => {
    const r = tracer(web).trace(pkt('10.244.1.5', '10.96.0.10', 80));
    expect(r.virtualServer).toBe('TCP 10.96.0.10:80 rr');
    expect(r.realServers).toEqual([
      { destination: '10.244.1.5:8080', probability: 0.5, masquerade: true },
      { destination: '10.244.2.5:8080', probability: 0.5, masquerade: false },
    ]);
    expect(formatIPVSTrace(pkt('10.244.1.5', '10.96.0.10', 80), r)).toContain('verdict: real server 10.244.1.5:8080 with probability 0.5000, masqueraded');
  });

  it('an external client to the NodePort is masqueraded (KUBE-NODE-PORT-TCP)', () => {
    const r = tracer(web).trace(pkt('203.0.113.9', NODE, 30080));
    expect(r.masquerade).toBe(true);
    expect(r.steps.map((s) => `${s.table}/${s.chain}`)).toContain('nat/KUBE-NODE-PORT');
    expect(r.realServers.map((d) => d.masquerade)).toEqual([true, true]);
  });

  it('another port of a service IP is REJECTed (KUBE-IPVS-FILTER, k/k#72236); a service without endpoints too (ours)', () => {
    expect(tracer(web).trace(pkt('10.244.1.9', '10.96.0.10', 22)).filtered).toEqual({ target: 'REJECT', chain: 'KUBE-IPVS-FILTER' });
    const r = tracer([makeService('ns', 'empty', { clusterIP: '10.96.0.11', ports: [{ name: 'p', port: 80, protocol: 'TCP' }] })]).trace(pkt('10.244.1.9', '10.96.0.11', 80));
    expect(r.filtered).toEqual({ target: 'REJECT', chain: 'KUBE-IPVS-FILTER' });
    expect(r.steps[r.steps.length - 1]!.rule).toContain('KUBE-NO-ENDPOINTS');
  });

  it('loadBalancerSourceRanges: an allowed source gets through, another is dropped in KUBE-SOURCE-RANGES-FIREWALL', () => {
    const t = tracer([
      makeService('ns', 'lb', { type: 'LoadBalancer', clusterIP: '10.96.0.12', loadBalancerSourceRanges: ['203.0.113.0/24'], ports: [{ name: 'p', port: 80, protocol: 'TCP', nodePort: 30081 }] }, { loadBalancer: { ingress: [{ ip: '198.51.100.50' }] } }),
      makeSlice('ns', 'lb', 1, [{ addresses: ['10.244.2.5'], nodeName: 'node-b' }], [tcp('p', 80)]),
    ]);
    expect(t.trace(pkt('203.0.113.9', '198.51.100.50', 80)).realServers.map((d) => d.destination)).toEqual(['10.244.2.5:80']);
    expect(t.trace(pkt('198.51.100.9', '198.51.100.50', 80)).filtered).toEqual({ target: 'DROP', chain: 'KUBE-SOURCE-RANGES-FIREWALL' });
  });

  it('externalTrafficPolicy Local without a local endpoint: an external client is dropped, a pod is served', () => {
    const t = tracer([
      makeService('ns', 'loc', { type: 'NodePort', externalTrafficPolicy: 'Local', clusterIP: '10.96.0.13', ports: [{ name: 'p', port: 80, protocol: 'TCP', nodePort: 30082 }] }),
      makeSlice('ns', 'loc', 1, [{ addresses: ['10.244.2.5'], nodeName: 'node-b' }], [tcp('p', 80)]),
    ]);
    expect(t.trace(pkt('203.0.113.9', NODE, 30082)).filtered).toEqual({ target: 'DROP', chain: 'KUBE-IPVS-FILTER' });
    expect(t.trace(pkt('10.244.1.9', NODE, 30082)).realServers.map((d) => d.destination)).toEqual(['10.244.2.5:80']);
  });
});
