// Services → ServicePorts (upstream newBaseServiceInfo / serviceToServiceMap)
// and the ServiceChangeTracker's folding (TestBuildServiceMapAddRemove and
// the servicechangetracker tests).
import type { V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { makeService } from '../testing/fixtures.ts';
import { ServiceChangeTracker, ServicePorts, servicePortsOf } from './service.ts';
import type { Issue } from './types.ts';

function ports(svc: V1Service, family: 4 | 6 = 4): { map: ReturnType<typeof servicePortsOf>; issues: Issue[] } {
  const issues: Issue[] = [];
  return { map: servicePortsOf(svc, family, (i) => issues.push(i)), issues };
}

describe('servicePortsOf', () => {
  it('keys ports by namespace/name:port and protocol, with upstream’s name string', () => {
    const { map } = ports(
      makeService('ns', 'web', {
        clusterIP: '10.96.0.10',
        ports: [
          { name: 'dns', port: 53, protocol: 'UDP' },
          { name: 'dns', port: 53, protocol: 'TCP' },
        ],
      }),
    );
    expect([...map.keys()]).toEqual(['ns/web:dns/UDP', 'ns/web:dns/TCP']);
    expect(map.get('ns/web:dns/UDP')?.nameString).toBe('ns/web:dns');
    const unnamed = ports(makeService('ns', 'one', { clusterIP: '10.96.0.11', ports: [{ port: 80 }] })).map;
    expect([...unnamed.values()].map((p) => [p.nameString, p.protocol])).toEqual([['ns/one', 'TCP']]);
  });

  it('takes the ClusterIP of the family, from clusterIPs/ipFamilies or the legacy field', () => {
    const dual = makeService('ns', 'd', { clusterIP: 'fd00::10', clusterIPs: ['fd00::10', '10.96.0.10'], ipFamilies: ['IPv6', 'IPv4'], ports: [{ port: 80 }] });
    expect([...ports(dual, 4).map.values()][0]?.clusterIP.toString()).toBe('10.96.0.10');
    expect([...ports(dual, 6).map.values()][0]?.clusterIP.toString()).toBe('fd00::10');
    const legacy = makeService('ns', 'l', { clusterIP: '10.96.0.12', ports: [{ port: 80 }] });
    expect(ports(legacy, 4).map.size).toBe(1);
    expect(ports(legacy, 6).map.size).toBe(0);
  });

  it('filters externalIPs, LB IPs and source ranges by family; trims, masks and dedups ranges', () => {
    const { map, issues } = ports(
      makeService(
        'ns',
        'lb',
        {
          type: 'LoadBalancer',
          clusterIP: '10.96.0.10',
          externalIPs: ['192.168.99.1', '2001:db8::1', 'bogus'],
          loadBalancerSourceRanges: [' 203.0.113.5/25', '203.0.113.0/25', '2001:db8::/32', 'nope/8'],
          ports: [{ port: 80, nodePort: 30080 }],
        },
        { loadBalancer: { ingress: [{ ip: '1.2.3.4' }, { ip: '5.6.7.8', ipMode: 'Proxy' }, { hostname: 'lb.example' }, { ip: '2001:db8::2' }] } },
      ),
    );
    const sp = [...map.values()][0];
    expect(sp?.externalIPs.map(String)).toEqual(['192.168.99.1']);
    expect(sp?.loadBalancerVIPs.map(String)).toEqual(['1.2.3.4']);
    expect(sp?.loadBalancerSourceRanges.map(String)).toEqual(['203.0.113.0/25']);
    expect(sp?.nodePort).toBe(30080);
    expect(issues.map((i) => [i.reason, i.skipped])).toEqual([
      ['ignoring invalid externalIP "bogus"', false],
      ['ignoring invalid loadBalancerSourceRange "nope/8"', false],
    ]);
  });

  it('reads affinity (default timeout 10800 s), traffic policies and the health-check port', () => {
    const base = { clusterIP: '10.96.0.10', ports: [{ port: 80, nodePort: 30080 }], healthCheckNodePort: 32000, externalTrafficPolicy: 'Local' };
    const lb = [...ports(makeService('ns', 'a', { ...base, type: 'LoadBalancer', sessionAffinity: 'ClientIP', internalTrafficPolicy: 'Local' })).map.values()][0];
    expect([lb?.stickyMaxAgeSeconds, lb?.externalPolicyLocal, lb?.internalPolicyLocal, lb?.healthCheckNodePort]).toEqual([10800, true, true, 32000]);
    // The health-check port only exists for LoadBalancers with eTP=Local; eTP needs external destinations.
    const np = [...ports(makeService('ns', 'b', { ...base, type: 'NodePort' })).map.values()][0];
    expect([np?.externalPolicyLocal, np?.healthCheckNodePort, np?.stickyMaxAgeSeconds]).toEqual([true, 0, undefined]);
    const cip = [...ports(makeService('ns', 'c', { ...base, type: 'ClusterIP' })).map.values()][0];
    expect(cip?.externalPolicyLocal).toBe(false);
    const cipExt = [...ports(makeService('ns', 'c', { ...base, type: 'ClusterIP', externalIPs: ['192.168.99.1'] })).map.values()][0];
    expect(cipExt?.externalPolicyLocal).toBe(true);
  });

  it('ignores headless, ExternalName and other proxies’ services without complaint', () => {
    const quiet = [
      makeService('ns', 'h', { clusterIP: 'None', ports: [{ port: 80 }] }),
      makeService('ns', 'e', { type: 'ExternalName', externalName: 'x.example', ports: [{ port: 80 }] }),
      { ...makeService('ns', 'p', { clusterIP: '10.96.0.1', ports: [{ port: 80 }] }), metadata: { namespace: 'ns', name: 'p', labels: { 'service.kubernetes.io/service-proxy-name': 'other' } } },
    ];
    for (const s of quiet) expect(ports(s)).toEqual({ map: new Map(), issues: [] });
  });

  it.each([
    [{ clusterIP: '10.96.0.999', ports: [{ port: 80 }] }, 'invalid clusterIP "10.96.0.999"'],
    [{ clusterIP: '10.96.0.1', ports: [{ name: 'x', port: 0 }] }, 'port "x" (#0) port 0 is out of range'],
    [{ clusterIP: '10.96.0.1', ports: [{ name: 'x', port: 80, nodePort: 65536 }] }, 'port "x" (#0) nodePort 65536 is out of range'],
    [{ clusterIP: '10.96.0.1', ports: [{ name: 'x', port: 80, protocol: 'ICMP' }] }, 'port "x" (#0): unknown protocol "ICMP"'],
    [{ clusterIP: '10.96.0.1', ports: [{ name: 'x', port: 80 }, { name: 'x', port: 81 }] }, 'duplicate port ns/bad:x TCP'],
    [{ clusterIP: '10.96.0.1', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } }, ports: [{ port: 80 }] }, 'sessionAffinityConfig.clientIP.timeoutSeconds 0 is out of range'],
    [{ clusterIP: '10.96.0.1', ipFamilies: ['IPv4'], clusterIPs: ['fd00::1'], ports: [{ port: 80 }] }, 'clusterIP fd00::1 is not IPv4'],
  ])('skips an invalid service whole: %j', (spec, reason) => {
    const { map, issues } = ports(makeService('ns', 'bad', spec));
    expect(map.size).toBe(0);
    expect(issues).toEqual([{ kind: 'Service', namespace: 'ns', name: 'bad', reason, skipped: true }]);
  });

  it('skips malformed objects (wrong field types) instead of throwing', () => {
    const bad = { kind: 'Service', metadata: { namespace: 'ns', name: 'm' }, spec: { clusterIP: '10.96.0.1', ports: 'eighty', loadBalancerSourceRanges: [7] } } as unknown as V1Service;
    const { map, issues } = ports(bad);
    expect(map.size).toBe(0);
    expect(issues).toHaveLength(1);
    expect(issues[0]?.reason).toMatch(/^malformed object: /);
    expect(issues[0]?.skipped).toBe(true);
  });

  it('reports a service without a name', () => {
    const { issues } = ports({ kind: 'Service', metadata: { namespace: 'ns' }, spec: { clusterIP: '10.96.0.1', ports: [{ port: 80 }] } });
    expect(issues.map((i) => i.reason)).toEqual(['metadata.name is missing']);
  });
});

describe('ServiceChangeTracker + ServicePorts', () => {
  const svc = (ip: string, port = 80): V1Service => makeService('ns', 'web', { clusterIP: ip, ports: [{ name: 'http', port, protocol: 'UDP' }] });

  it('folds add, update and delete; reports updated services and changed ports', () => {
    const t = new ServiceChangeTracker(4);
    const m = new ServicePorts();
    expect(t.update(undefined, svc('10.96.0.10'))).toBe(true);
    let r = m.update(t);
    expect([...r.updatedServices]).toEqual(['ns/web']);
    expect([...r.changedPorts]).toEqual(['ns/web:http/UDP']);
    expect(m.map.get('ns/web:http/UDP')?.clusterIP.toString()).toBe('10.96.0.10');

    t.update(svc('10.96.0.10'), svc('10.96.0.10', 81));
    r = m.update(t);
    expect(m.map.get('ns/web:http/UDP')?.port).toBe(81);
    expect([...r.deletedUDPClusterIPs]).toEqual([]);

    t.update(svc('10.96.0.10', 81), undefined);
    r = m.update(t);
    expect(m.map.size).toBe(0);
    expect([...r.deletedUDPClusterIPs]).toEqual(['10.96.0.10']);
    expect(t.pending).toBe(0);
  });

  it('drops changes that cancel out (A→B→A, add then delete)', () => {
    const t = new ServiceChangeTracker(4);
    const m = new ServicePorts();
    t.update(undefined, svc('10.96.0.10'));
    m.update(t);
    const before = m.map.get('ns/web:http/UDP');
    t.update(svc('10.96.0.10'), svc('10.96.0.11'));
    expect(t.update(svc('10.96.0.11'), svc('10.96.0.10'))).toBe(false);
    expect(m.update(t).updatedServices.size).toBe(0);
    // Unchanged services keep their ServicePort object, which renderers cache on.
    expect(m.map.get('ns/web:http/UDP')).toBe(before);

    const other = makeService('ns', 'tmp', { clusterIP: '10.96.0.20', ports: [{ port: 80 }] });
    t.update(undefined, other);
    expect(t.update(other, undefined)).toBe(false);
    expect(m.update(t).updatedServices.size).toBe(0);
  });

  it('reports each invalid update once and keeps the previous good state out', () => {
    const issues: Issue[] = [];
    const t = new ServiceChangeTracker(4, (i) => issues.push(i));
    const m = new ServicePorts();
    t.update(undefined, svc('10.96.0.10'));
    m.update(t);
    t.update(svc('10.96.0.10'), svc('bad'));
    m.update(t);
    // A service that became invalid is removed (its rules go), never half-applied.
    expect(m.map.size).toBe(0);
    expect(issues).toHaveLength(1);
    expect(m.healthCheckNodePorts().size).toBe(0);
  });

  it('TestBuildServiceMapAddRemove', () => {
    const t = new ServiceChangeTracker(4);
    const m = new ServicePorts();
    const p = (name: string, protocol: string, port: number, nodePort: number) => ({ name, protocol, port, nodePort });
    const services = [
      makeService('somewhere-else', 'cluster-ip', { clusterIP: '172.30.55.4', ports: [p('something', 'UDP', 1234, 4321), p('somethingelse', 'UDP', 1235, 5321), p('sctpport', 'SCTP', 1236, 6321)] }),
      makeService('somewhere-else', 'node-port', { type: 'NodePort', clusterIP: '172.30.55.10', ports: [p('blahblah', 'UDP', 345, 678), p('moreblahblah', 'TCP', 344, 677), p('muchmoreblah', 'SCTP', 343, 676)] }),
      makeService('somewhere', 'load-balancer', { type: 'LoadBalancer', clusterIP: '172.30.55.11', ports: [p('foobar', 'UDP', 8675, 30061), p('baz', 'UDP', 8676, 30062)] }, { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } }),
      makeService(
        'somewhere',
        'only-local-load-balancer',
        { type: 'LoadBalancer', clusterIP: '172.30.55.12', externalTrafficPolicy: 'Local', healthCheckNodePort: 345, ports: [p('foobar2', 'UDP', 8677, 30063), p('baz', 'UDP', 8678, 30064)] },
        { loadBalancer: { ingress: [{ ip: '5.6.7.8' }] } },
      ),
    ];
    for (const s of services) t.update(undefined, s);
    m.update(t);
    expect(m.map.size).toBe(10);
    expect([...m.healthCheckNodePorts()]).toEqual([['somewhere/only-local-load-balancer', 345]]);
    const one = makeService('somewhere-else', 'cluster-ip', { clusterIP: '172.30.55.4', ports: [p('somethingelse', 'UDP', 1235, 5321)] });
    t.update(services[0], one);
    for (const s of services.slice(1)) t.update(s, undefined);
    const r = m.update(t);
    expect(m.map.size).toBe(1);
    expect(m.healthCheckNodePorts().size).toBe(0);
    expect(r.updatedServices.size).toBe(4);
    expect([...r.deletedUDPClusterIPs].sort()).toEqual(['172.30.55.10', '172.30.55.11', '172.30.55.12', '172.30.55.4']);
  });

  it('lists health-check node ports per service', () => {
    const t = new ServiceChangeTracker(4);
    const m = new ServicePorts();
    t.update(undefined, makeService('ns', 'lb', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000, clusterIP: '10.96.0.1', ports: [{ port: 80, nodePort: 30001 }] }));
    m.update(t);
    expect([...m.healthCheckNodePorts()]).toEqual([['ns/lb', 32000]]);
  });
});
