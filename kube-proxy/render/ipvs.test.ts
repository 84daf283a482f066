// The IPVS mode's desired state, against upstream's pkg/proxy/ipvs
// proxier_test.go expectations (TestOnlyLocalNodePorts,
// TestLoadBalancerSourceRanges, TestAcceptIPVSTraffic,
// TestOnlyLocalLoadBalancing: virtual servers, real servers, set entries and
// the jump/match-set order of each chain), plus ours: the no-endpoint
// REJECT set, Local-policy DROP sets, partial updates and conflicts.
import type { V1Endpoint, V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import { makeService, makeSlice, tcp, World } from '../testing/fixtures.ts';
import { parseRestore } from '../trace/parse.ts';
import { detectLocalByCIDR } from './options.ts';
import { IPVSPlan, ipsetName, ipsetSpec, renderIPVSIptables, SET, withJumps, type IPVSOptions } from './ipvs.ts';

const NODE_IP = '100.101.102.103';
/** upstream's NewFakeProxier in pkg/proxy/ipvs: node 100.101.102.103, cluster CIDR 10.0.0.0/8 detector. */
const base: IPVSOptions = {
  family: 4,
  nodeName: 'test-node',
  nodeIP: IPAddr.mustParse(NODE_IP),
  localDetector: detectLocalByCIDR(IPPrefix.mustParse('10.0.0.0/8')),
  nodePortIPs: [IPAddr.mustParse(NODE_IP)],
  nodeLocalAddresses: [IPAddr.mustParse(NODE_IP)],
};

function plan(objs: (V1Service | V1EndpointSlice)[], o: IPVSOptions = base) {
  const w = new World(o.family, o.nodeName ?? 'test-node').add(...objs);
  w.sync();
  const p = new IPVSPlan();
  const delta = p.update(w.services.map, w.endpoints.map, o);
  return { p, w, delta, text: p.iptables(o) };
}

/** One chain as upstream's checkIptables sees it: jump target and matched set of each rule. */
function chain(text: string, table: string, name: string): { jump: string; set: string; src?: string }[] {
  const t = parseRestore(text).find((x) => x.name === table);
  return (t?.chains.find((c) => c.name === name)?.rules ?? []).map((r) => {
    const a = r.args;
    const at = (k: string): string | undefined => (a.includes(k) ? a[a.indexOf(k) + 1] : undefined);
    const src = a.indexOf('-s') > 0 && a[a.indexOf('-s') - 1] === '!' ? undefined : at('-s');
    return { jump: at('-j')!, set: at('--match-set') ?? '', ...(src ? { src } : {}) };
  });
}

const ep = (ip: string, extra: Partial<V1Endpoint> = {}): V1Endpoint => ({ addresses: [ip], ...extra });
const vsSummary = (p: IPVSPlan) => p.virtualServers().map((v) => `${v.key} -> ${v.destinations.map((d) => `${d.address}:${d.port}`).join(',')}`);

describe('upstream TestOnlyLocalNodePorts', () => {
  const r = plan([
    makeService('ns1', 'svc1', { type: 'NodePort', clusterIP: '10.20.30.41', externalTrafficPolicy: 'Local', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }] }),
    makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1', { nodeName: 'test-node' }), ep('10.180.1.1', { nodeName: 'other-node' })], [tcp('p80', 80)]),
  ]);
  it('2 virtual servers; the NodePort one has the local endpoint only', () => {
    expect(vsSummary(r.p)).toEqual(['tcp/10.20.30.41/80 -> 10.180.0.1:80,10.180.1.1:80', `tcp/${NODE_IP}/3001 -> 10.180.0.1:80`]);
  });
  it('NodePort sets', () => {
    expect(r.p.entries(SET.nodePortTCP)).toEqual(['3001']);
    expect(r.p.entries(SET.nodePortLocalTCP)).toEqual(['3001']);
  });
  it('KUBE-SERVICES and KUBE-NODE-PORT as upstream', () => {
    expect(chain(r.text, 'nat', 'KUBE-SERVICES')).toEqual([
      { jump: 'RETURN', set: '', src: '127.0.0.0/8' },
      { jump: 'KUBE-MARK-MASQ', set: 'KUBE-CLUSTER-IP' },
      { jump: 'KUBE-NODE-PORT', set: '' },
      { jump: 'ACCEPT', set: 'KUBE-CLUSTER-IP' },
    ]);
    expect(chain(r.text, 'nat', 'KUBE-NODE-PORT')).toEqual([
      { jump: 'RETURN', set: 'KUBE-NODE-PORT-LOCAL-TCP' },
      { jump: 'KUBE-MARK-MASQ', set: 'KUBE-NODE-PORT-TCP' },
    ]);
    expect(chain(r.text, 'filter', 'KUBE-NODE-PORT')).toEqual([{ jump: 'ACCEPT', set: 'KUBE-HEALTH-CHECK-NODE-PORT' }]);
  });
  it('binds the ClusterIP, not the node IP', () => {
    expect(r.p.binds()).toEqual(['10.20.30.41']);
  });
});

describe('upstream TestLoadBalancerSourceRanges', () => {
  const r = plan([
    makeService('ns1', 'svc1', { type: 'LoadBalancer', clusterIP: '10.20.30.41', loadBalancerSourceRanges: ['10.0.0.0/8'], ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] }, { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } }),
    makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1')], [tcp('p80', 80)]),
  ]);
  it('virtual servers and sets', () => {
    expect(vsSummary(r.p)).toEqual(['tcp/1.2.3.4/80 -> 10.180.0.1:80', 'tcp/10.20.30.41/80 -> 10.180.0.1:80']);
    expect(r.p.entries(SET.loadBalancer)).toEqual(['1.2.3.4,tcp:80']);
    expect(r.p.entries(SET.loadBalancerFW)).toEqual(['1.2.3.4,tcp:80']);
    expect(r.p.entries(SET.loadBalancerSourceCIDR)).toEqual(['1.2.3.4,tcp:80,10.0.0.0/8']);
    expect(r.p.entries(SET.loadBalancerSourceIP)).toEqual([]);
  });
  it('chains as upstream', () => {
    expect(chain(r.text, 'nat', 'KUBE-SERVICES').map((x) => `${x.jump} ${x.set}`)).toEqual([
      'RETURN ',
      'KUBE-LOAD-BALANCER KUBE-LOAD-BALANCER',
      'KUBE-MARK-MASQ KUBE-CLUSTER-IP',
      'KUBE-NODE-PORT ',
      'ACCEPT KUBE-CLUSTER-IP',
      'ACCEPT KUBE-LOAD-BALANCER',
    ]);
    expect(chain(r.text, 'filter', 'KUBE-PROXY-FIREWALL')).toEqual([{ jump: 'KUBE-SOURCE-RANGES-FIREWALL', set: 'KUBE-LOAD-BALANCER-FW' }]);
    expect(chain(r.text, 'filter', 'KUBE-SOURCE-RANGES-FIREWALL')).toEqual([
      { jump: 'RETURN', set: 'KUBE-LOAD-BALANCER-SOURCE-CIDR' },
      { jump: 'DROP', set: '' },
    ]);
  });
  it('the node (not in the ranges) may not reach the LB IP: KUBE-IPVS-OUT-FILTER (k/k#119656)', () => {
    expect(r.text).toContain('-A KUBE-IPVS-OUT-FILTER -s 1.2.3.4 -m ipvs --vaddr 1.2.3.4 --vproto tcp --vport 80 -j DROP\n');
  });
  it('a range holding the node IP lets the LB IP itself in instead', () => {
    const r2 = plan([
      makeService('ns1', 'svc1', { type: 'LoadBalancer', clusterIP: '10.20.30.41', loadBalancerSourceRanges: ['100.101.102.0/24'], ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] }, { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } }),
      makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1')], [tcp('p80', 80)]),
    ]);
    expect(r2.p.entries(SET.loadBalancerSourceIP)).toEqual(['1.2.3.4,tcp:80,1.2.3.4']);
    expect(r2.text).not.toContain('KUBE-IPVS-OUT-FILTER -s');
  });
});

describe('upstream TestAcceptIPVSTraffic', () => {
  const svcs = [
    ['ClusterIP', '10.20.30.40', 'svc1', '10.180.0.1'],
    ['LoadBalancer', '10.20.30.41', 'svc2', '10.180.0.2'],
    ['NodePort', '10.20.30.42', 'svc3', '10.180.0.3'],
  ] as const;
  const objs = svcs.flatMap(([type, ip, name, epIP]) => [
    makeService('ns1', name, { type, clusterIP: ip, ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 80 }], ...(type === 'ClusterIP' ? { externalIPs: ['5.6.7.8'] } : {}) }, type === 'LoadBalancer' ? { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } } : undefined),
    makeSlice('ns1', name, 1, [ep(epIP)], [tcp('p80', 80)]),
  ]);
  const r = plan(objs);
  it('KUBE-SERVICES as upstream', () => {
    expect(chain(r.text, 'nat', 'KUBE-SERVICES').map((x) => `${x.jump} ${x.set}`)).toEqual([
      'RETURN ',
      'KUBE-LOAD-BALANCER KUBE-LOAD-BALANCER',
      'KUBE-MARK-MASQ KUBE-CLUSTER-IP',
      'KUBE-MARK-MASQ KUBE-EXTERNAL-IP',
      'ACCEPT KUBE-EXTERNAL-IP',
      'ACCEPT KUBE-EXTERNAL-IP',
      'KUBE-NODE-PORT ',
      'ACCEPT KUBE-CLUSTER-IP',
      'ACCEPT KUBE-LOAD-BALANCER',
    ]);
  });
  it('externalIPs are bound to kube-ipvs0 unless they are node addresses', () => {
    expect(r.p.binds()).toEqual(['1.2.3.4', '10.20.30.40', '10.20.30.41', '10.20.30.42', '5.6.7.8']);
    const r2 = plan(objs, { ...base, nodeLocalAddresses: [IPAddr.mustParse('5.6.7.8')] });
    expect(r2.p.binds()).not.toContain('5.6.7.8');
    expect(r2.p.virtualServer('tcp/5.6.7.8/80')).toBeDefined();
  });
});

describe('upstream TestOnlyLocalLoadBalancing', () => {
  const r = plan([
    makeService('ns1', 'svc1', { type: 'LoadBalancer', clusterIP: '10.20.30.41', externalTrafficPolicy: 'Local', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }] }, { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } }),
    makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1', { nodeName: 'test-node' }), ep('10.180.1.1', { nodeName: 'other-node' })], [tcp('p80', 80)]),
  ], { ...base, nodePortIPs: [] });
  it('the LB virtual server has the local endpoint only', () => {
    expect(r.p.virtualServer('tcp/1.2.3.4/80')!.destinations.map((d) => d.address.toString())).toEqual(['10.180.0.1']);
    expect(r.p.entries(SET.loadBalancer)).toEqual(['1.2.3.4,tcp:80']);
    expect(r.p.entries(SET.loadBalancerLocal)).toEqual(['1.2.3.4,tcp:80']);
  });
  it('KUBE-LOAD-BALANCER: RETURN for the local set, then masquerade', () => {
    expect(chain(r.text, 'nat', 'KUBE-LOAD-BALANCER')).toEqual([
      { jump: 'RETURN', set: 'KUBE-LOAD-BALANCER-LOCAL' },
      { jump: 'KUBE-MARK-MASQ', set: '' },
    ]);
  });
});

describe('virtual server attributes', () => {
  it('ClientIP affinity is a persistent service with the affinity timeout; the scheduler is taken from the options', () => {
    const r = plan(
      [
        makeService('ns1', 'svc1', { clusterIP: '10.20.30.41', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 300 } }, ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] }),
        makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1')], [tcp('p80', 80)]),
      ],
      { ...base, scheduler: 'wlc' },
    );
    const v = r.p.virtualServer('tcp/10.20.30.41/80')!;
    expect(v.service).toMatchObject({ scheduler: 'wlc', flags: 1, timeout: 300, netmaskBits: 32 });
    expect(v.destinations[0]).toMatchObject({ port: 80, weight: 1, forward: 'masq' });
  });
  it('rr by default; mh sets the mh-port flag as upstream', () => {
    const objs = [makeService('ns1', 'svc1', { clusterIP: '10.20.30.41', ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] })];
    expect(plan(objs).p.virtualServer('tcp/10.20.30.41/80')!.service).toMatchObject({ scheduler: 'rr', flags: 0 });
    expect(plan(objs, { ...base, scheduler: 'mh' }).p.virtualServer('tcp/10.20.30.41/80')!.service.flags).toBe(0x10);
  });
  it('the ready → serving+terminating fallback picks the real servers', () => {
    const r = plan([
      makeService('ns1', 'svc1', { clusterIP: '10.20.30.41', ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] }),
      makeSlice('ns1', 'svc1', 1, [
        ep('10.180.0.1', { conditions: { ready: false, serving: true, terminating: true } }),
        ep('10.180.0.2', { conditions: { ready: false, serving: false, terminating: true } }),
      ], [tcp('p80', 80)]),
    ]);
    expect(vsSummary(r.p)).toEqual(['tcp/10.20.30.41/80 -> 10.180.0.1:80']);
    expect(r.p.entries(SET.noEndpoints)).toEqual([]);
  });
  it('UDP and SCTP NodePorts: a bitmap for UDP, ip,port entries per node IP for SCTP', () => {
    const r = plan([
      makeService('ns1', 'svc1', { type: 'NodePort', clusterIP: '10.20.30.41', ports: [{ name: 'u', port: 53, protocol: 'UDP', nodePort: 3053 }, { name: 's', port: 54, protocol: 'SCTP', nodePort: 3054 }] }),
    ], { ...base, nodePortIPs: [IPAddr.mustParse(NODE_IP), IPAddr.mustParse('100.101.102.104')] });
    expect(r.p.entries(SET.nodePortUDP)).toEqual(['3053']);
    expect(r.p.entries(SET.nodePortSCTP)).toEqual(['100.101.102.103,sctp:3054', '100.101.102.104,sctp:3054']);
    expect(r.p.virtualServers().map((v) => v.key)).toEqual(['sctp/10.20.30.41/54', 'sctp/100.101.102.103/3054', 'sctp/100.101.102.104/3054', 'udp/10.20.30.41/53', 'udp/100.101.102.103/3053', 'udp/100.101.102.104/3053']);
    expect(r.text).toContain(`-A KUBE-NODE-PORT -p sctp -m comment --comment "Kubernetes nodeport SCTP port for masquerade purpose with type \\'hash ip:port\\'" -m set --match-set KUBE-NODE-PORT-SCTP-HASH dst,dst -j KUBE-MARK-MASQ\n`);
  });
  it('hairpin: local endpoints go into KUBE-LOOP-BACK', () => {
    const r = plan([
      makeService('ns1', 'svc1', { clusterIP: '10.20.30.41', ports: [{ name: 'p80', port: 80, protocol: 'TCP', targetPort: 8080 }] }),
      makeSlice('ns1', 'svc1', 1, [ep('10.180.0.1', { nodeName: 'test-node' }), ep('10.180.1.1', { nodeName: 'other' })], [tcp('p80', 8080)]),
    ]);
    expect(r.p.entries(SET.loopBack)).toEqual(['10.180.0.1,tcp:8080,10.180.0.1']);
    expect(chain(r.text, 'nat', 'KUBE-POSTROUTING')[0]).toEqual({ jump: 'MASQUERADE', set: 'KUBE-LOOP-BACK' });
  });
});

describe('ours: services without (local) endpoints', () => {
  it('no endpoints: the virtual server stays, every address and port of it is in KUBE-NO-ENDPOINTS, REJECTed first in KUBE-IPVS-FILTER', () => {
    const r = plan([makeService('ns1', 'svc1', { type: 'NodePort', clusterIP: '10.20.30.41', externalIPs: ['5.6.7.8'], ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }] })]);
    expect(vsSummary(r.p)).toEqual([`tcp/10.20.30.41/80 -> `, `tcp/100.101.102.103/3001 -> `, 'tcp/5.6.7.8/80 -> ']);
    expect(r.p.entries(SET.noEndpoints)).toEqual(['10.20.30.41,tcp:80', '100.101.102.103,tcp:3001', '5.6.7.8,tcp:80']);
    const f = parseRestore(r.text).find((t) => t.name === 'filter')!.chains.find((c) => c.name === 'KUBE-IPVS-FILTER')!.rules.map((x) => x.raw);
    expect(f[0]).toBe('-A KUBE-IPVS-FILTER -m comment --comment "Kubernetes service ip + port without endpoints" -m conntrack --ctstate NEW -m set --match-set KUBE-NO-ENDPOINTS dst,dst -j REJECT');
    expect(f.at(-1)).toBe('-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT');
  });
  it('internalTrafficPolicy Local without a local endpoint: the ClusterIP is DROPped, not refused', () => {
    const r = plan([
      makeService('ns1', 'svc1', { clusterIP: '10.20.30.41', internalTrafficPolicy: 'Local', ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] }),
      makeSlice('ns1', 'svc1', 1, [ep('10.180.1.1', { nodeName: 'other' })], [tcp('p80', 80)]),
    ]);
    expect(vsSummary(r.p)).toEqual(['tcp/10.20.30.41/80 -> ']);
    expect(r.p.entries(SET.noEndpoints)).toEqual([]);
    expect(r.p.entries(SET.noLocalEndpoints)).toEqual(['10.20.30.41,tcp:80']);
    expect(r.p.noLocalEndpoints()).toEqual({ internal: 1, external: 0 });
    expect(r.text).toContain('--match-set KUBE-NO-LOCAL-ENDPOINTS dst,dst -j DROP');
  });
  it('externalTrafficPolicy Local without a local endpoint: external sources are DROPped, pods and the node still get the cluster endpoints', () => {
    const r = plan([
      makeService('ns1', 'svc1', { type: 'NodePort', clusterIP: '10.20.30.41', externalTrafficPolicy: 'Local', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }] }),
      makeSlice('ns1', 'svc1', 1, [ep('10.180.1.1', { nodeName: 'other' })], [tcp('p80', 80)]),
    ]);
    expect(vsSummary(r.p)).toEqual(['tcp/10.20.30.41/80 -> 10.180.1.1:80', `tcp/${NODE_IP}/3001 -> 10.180.1.1:80`]);
    expect(r.p.entries(SET.extNoLocalEndpoints)).toEqual([`${NODE_IP},tcp:3001`]);
    expect(r.p.noLocalEndpoints()).toEqual({ internal: 0, external: 1 });
    expect(r.text).toContain(
      '-A KUBE-IPVS-FILTER -m comment --comment "Kubernetes service external ip + port with externalTrafficPolicy=Local and no local endpoints" -m conntrack --ctstate NEW -m set --match-set KUBE-EXT-NO-LOCAL-ENDPOINTS dst,dst ! -s 10.0.0.0/8 -m addrtype ! --src-type LOCAL -j DROP\n',
    );
  });
});

describe('partial updates', () => {
  const svc = (n: number) => makeService('ns', `s${n}`, { clusterIP: `10.20.0.${n}`, ports: [{ name: 'p', port: 80, protocol: 'TCP' }] });
  const slice = (n: number, ips: string[]) => makeSlice('ns', `s${n}`, 1, ips.map((ip) => ep(ip)), [tcp('p', 80)]);
  it('one endpoint change touches one virtual server and its set entries only', () => {
    const w = new World(4, 'test-node').add(svc(1), svc(2), svc(3), slice(1, ['10.1.0.1']), slice(2, ['10.1.0.2']), slice(3, ['10.1.0.3']));
    w.sync();
    const p = new IPVSPlan();
    expect(p.update(w.services.map, w.endpoints.map, base).full).toBe(true);
    w.endpointChanges.endpointSliceUpdate(slice(2, ['10.1.0.2', '10.1.0.22']), false);
    const b = w.endpoints.update(w.endpointChanges);
    const d = p.update(w.services.map, w.endpoints.map, base, b.changedPorts);
    expect(d.full).toBe(false);
    expect([...d.virtualServers]).toEqual(['tcp/10.20.0.2/80']);
    expect(p.virtualServer('tcp/10.20.0.2/80')!.destinations.map(String.bind(null)).length).toBe(2);
    expect(p.virtualServers()).toHaveLength(3);
  });
  it('an options change rebuilds everything', () => {
    const w = new World(4, 'test-node').add(svc(1));
    w.sync();
    const p = new IPVSPlan();
    p.update(w.services.map, w.endpoints.map, base);
    expect(p.update(w.services.map, w.endpoints.map, { ...base, scheduler: 'lc' }, []).full).toBe(true);
    expect(p.virtualServer('tcp/10.20.0.1/80')!.service.scheduler).toBe('lc');
  });
  it('a shared ClusterIP stays bound until its last port goes; a virtual server two ports claim goes to the first, the other is reported', () => {
    const w = new World(4, 'test-node').add(
      makeService('ns', 'a', { type: 'NodePort', clusterIP: '10.20.0.1', ports: [{ name: 'p', port: 80, protocol: 'TCP', nodePort: 3000 }, { name: 'q', port: 81, protocol: 'TCP' }] }),
      makeService('ns', 'b', { type: 'NodePort', clusterIP: '10.20.0.2', ports: [{ name: 'p', port: 80, protocol: 'TCP', nodePort: 3000 }] }),
    );
    w.sync();
    const p = new IPVSPlan();
    const d = p.update(w.services.map, w.endpoints.map, base);
    expect(p.virtualServer(`tcp/${NODE_IP}/3000`)!.portKey).toBe('ns/a:p/TCP');
    expect(d.issues.map((i) => `${i.namespace}/${i.name}`)).toEqual(['ns/b']);
    expect(p.binds()).toEqual(['10.20.0.1', '10.20.0.2']);
  });
});

describe('sets and text', () => {
  it('IPv6 sets are KUBE-6-…, cut to 31 characters; hash sets are inet6', () => {
    expect(ipsetName(SET.clusterIP, 6)).toBe('KUBE-6-CLUSTER-IP');
    expect(ipsetName(SET.loadBalancerSourceCIDR, 6)).toBe('KUBE-6-LOAD-BALANCER-SOURCE-CID');
    expect(ipsetSpec(SET.clusterIP, 6)).toEqual({ name: 'KUBE-6-CLUSTER-IP', type: 'hash:ip,port', family: 'inet6', hashsize: 1024, maxelem: 65536 });
    expect(ipsetSpec(SET.nodePortTCP, 4)).toEqual({ name: 'KUBE-NODE-PORT-TCP', type: 'bitmap:port', range: '0-65535' });
  });
  it('the fixed rules of an empty plan, IPv6', () => {
    const text = renderIPVSIptables({ family: 6 }, () => false);
    expect(text).toBe(`*nat
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-LOAD-BALANCER - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A KUBE-SERVICES -s ::1/128 -j RETURN
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT
-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ
-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
COMMIT
*filter
:KUBE-FORWARD - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SOURCE-RANGES-FIREWALL - [0:0]
:KUBE-IPVS-FILTER - [0:0]
:KUBE-IPVS-OUT-FILTER - [0:0]
-A KUBE-SOURCE-RANGES-FIREWALL -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-NODE-PORT -m comment --comment "Kubernetes health check node port" -m set --match-set KUBE-6-HEALTH-CHECK-NODE-PORT dst -j ACCEPT
-A KUBE-IPVS-FILTER -m set --match-set KUBE-6-LOAD-BALANCER dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-6-CLUSTER-IP dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-6-EXTERNAL-IP dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-6-EXTERNAL-IP-LOCAL dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-6-HEALTH-CHECK-NODE-PORT dst -j RETURN
-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-6-IPVS-IPS dst -j REJECT
COMMIT
`);
  });
  it('masqueradeAll matches dst,dst without the detector; no detector matches src,dst (node traffic from a VIP)', () => {
    const objs = [makeService('ns1', 'svc1', { clusterIP: '10.20.30.41', ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] })];
    expect(plan(objs, { ...base, masqueradeAll: true }).text).toContain('--match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ\n');
    const { localDetector: _unused, ...noDetector } = base;
    expect(plan(objs, noDetector).text).toContain('--match-set KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ\n');
  });
  it('jumps go at the end of their table', () => {
    const t = withJumps('*nat\n:A - [0:0]\nCOMMIT\n*filter\nCOMMIT\n', { nat: ['-I OUTPUT 1 -j A'], filter: ['-I INPUT 1 -j B'] });
    expect(t).toBe('*nat\n:A - [0:0]\n-I OUTPUT 1 -j A\nCOMMIT\n*filter\n-I INPUT 1 -j B\nCOMMIT\n');
  });
});
