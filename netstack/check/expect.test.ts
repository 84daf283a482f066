import { describe, expect, it } from 'vitest';
import { planProbes, endpointsOf, hostPort } from './expect.ts';
import { sampleWorld } from './testing.ts';
import type { Probe, Section } from './types.ts';
import { policy } from '../../netpolicy/testing/fixtures.ts';
import type { V1Service } from '@kubernetes/client-node';

/** The expected outcome of the one probe of `section` from `column` to `row` (a prefix of the row label). */
function outcome(probes: readonly Probe[], section: Section, column: string, row: string, family: 4 | 6 = 4): string {
  const hits = probes.filter((p) => p.section === section && p.family === family && p.column === column && (p.row === row || p.row.startsWith(`${row} `)));
  if (hits.length !== 1) throw new Error(`${hits.length} probes ${section} ${column} -> ${row}: ${probes.filter((p) => p.section === section).map((p) => `${p.column} -> ${p.row}`).slice(0, 5).join('; ')}`);
  return hits[0]!.expect.outcome;
}

describe('planProbes on the sample app', () => {
  const { objs, topo } = sampleWorld();
  const plan = planProbes(objs, topo, [4]);
  const { probes } = plan;

  it('finds the running pods in the manifests', () => {
    expect(plan.problems).toEqual([]);
    expect(new Set(probes.map((p) => p.column)).size).toBeGreaterThanOrEqual(6);
  });

  it('pings only pods on other nodes, and only the web pods answer (their rule has no ports)', () => {
    const icmp = probes.filter((p) => p.section === 'icmp');
    const nodeOf = new Map(topo.pods.map((p) => [p.key, p.node]));
    expect(icmp.length).toBeGreaterThan(0);
    for (const p of icmp) {
      expect(nodeOf.get(p.column)).not.toBe(nodeOf.get(p.row));
      expect(p.to).toMatchObject({ protocol: 'ICMP', port: 0 });
      expect(p.expect.outcome).toBe(p.row.startsWith('frontend/') ? 'open' : 'blocked');
    }
    // 6 pods on 3 nodes, 2 per node: each pod pings the 4 on other nodes.
    expect(icmp).toHaveLength(24);
  });

  it('is the policy matrix of the sample', () => {
    expect(outcome(probes, 'pod', 'backend/api-0', 'frontend/web-1 8080/TCP')).toBe('open');
    expect(outcome(probes, 'pod', 'frontend/web-0', 'backend/api-1 9090/TCP')).toBe('open');
    expect(outcome(probes, 'pod', 'frontend/web-0', 'backend/api-1 9091/UDP')).toBe('open');
    expect(outcome(probes, 'pod', 'frontend/web-0', 'db/pg-0 5432/TCP')).toBe('blocked');
    expect(outcome(probes, 'pod', 'backend/api-0', 'db/pg-0 5432/TCP')).toBe('open');
    expect(outcome(probes, 'pod', 'backend/api-0', 'db/pg-0 9187/TCP')).toBe('blocked');
    expect(outcome(probes, 'pod', 'backend/api-1', 'backend/api-0 9090/TCP')).toBe('blocked');
    expect(outcome(probes, 'pod', 'db/pg-0', 'backend/api-0 9090/TCP')).toBe('blocked');
    // No probe from a pod to itself.
    expect(probes.some((p) => p.section === 'pod' && p.row.startsWith(`${p.column} `))).toBe(false);
  });

  it('carries the model’s reason', () => {
    const p = probes.find((x) => x.section === 'pod' && x.column === 'frontend/web-0' && x.row.startsWith('db/pg-0 5432/TCP'))!;
    expect(p.expect.reason).toContain('db/pg-0 is isolated for ingress');
    expect(p.expect.reason).toContain('no rule matched');
  });

  it('expects Services to answer as their endpoints would, and refuse without endpoints', () => {
    expect(outcome(probes, 'service', 'frontend/web-0', 'backend/api 10.96.0.20:9090/TCP')).toBe('open');
    expect(outcome(probes, 'service', 'frontend/web-0', 'backend/api 10.96.0.20:9091/UDP')).toBe('open');
    expect(outcome(probes, 'service', 'frontend/web-0', 'db/pg 10.96.0.30:5432/TCP')).toBe('blocked');
    expect(outcome(probes, 'service', 'backend/api-1', 'db/pg 10.96.0.30:5432/TCP')).toBe('open');
    expect(outcome(probes, 'service', 'frontend/web-2', 'backend/api-canary 10.96.0.21:9090/TCP')).toBe('refused');
    // api-0 through its own Service: itself (allowed) or api-1 (denied).
    expect(outcome(probes, 'service', 'backend/api-0', 'backend/api 10.96.0.20:9090/TCP')).toBe('either');
    // pg-0's only endpoint is itself: a pod cannot block itself.
    expect(outcome(probes, 'service', 'db/pg-0', 'db/pg 10.96.0.30:5432/TCP')).toBe('open');
    const refused = probes.find((p) => p.section === 'service' && p.row.startsWith('backend/api-canary'))!;
    expect(refused.expect.reason).toContain('no ready endpoints');
  });

  it('probes the NodePort on every node from the external host', () => {
    const np = probes.filter((p) => p.section === 'nodeport');
    expect(np.map((p) => [p.column, p.from.label, hostPort(p.to.ip, p.to.port), p.to.protocol, p.expect.outcome])).toEqual([
      ['node-1', 'external', '192.0.2.11:30080', 'TCP', 'open'],
      ['node-2', 'external', '192.0.2.12:30080', 'TCP', 'open'],
      ['node-3', 'external', '192.0.2.13:30080', 'TCP', 'open'],
    ]);
    expect(np[0]!.from.netns).toBe(topo.external!.netns);
  });

  it('sends every probe from its source pod’s namespace and address, with unique ids', () => {
    const byKey = new Map(topo.pods.map((p) => [p.key, p]));
    for (const p of probes.filter((x) => x.section !== 'nodeport')) {
      expect(p.from.netns).toBe(byKey.get(p.column)!.netns);
      expect(p.from.ip).toBe(byKey.get(p.column)!.ips[0]);
    }
    expect(new Set(probes.map((p) => p.id)).size).toBe(probes.length);
  });

  it('has no IPv6 probes on a single-stack cluster', () => {
    expect(probes.every((p) => p.family === 4)).toBe(true);
  });
});

describe('planProbes follows the objects', () => {
  it('blocks web -> api once the allow policy is gone', () => {
    const { objs, topo } = sampleWorld({ edit: (o) => o.policies.splice(o.policies.findIndex((p) => p.metadata?.name === 'allow-api-from-web'), 1) });
    const { probes } = planProbes(objs, topo, [4]);
    expect(outcome(probes, 'pod', 'frontend/web-0', 'backend/api-1 9090/TCP')).toBe('blocked');
    expect(outcome(probes, 'service', 'frontend/web-0', 'backend/api 10.96.0.20:9090/TCP')).toBe('blocked');
  });

  it('opens the db to everyone, ICMP included, when its policy allows all', () => {
    const { objs, topo } = sampleWorld({
      edit: (o) => {
        for (let i = o.policies.length - 1; i >= 0; i--) if (o.policies[i]!.metadata?.namespace === 'db') o.policies.splice(i, 1);
        o.policies.push(policy('db', 'allow-all', { podSelector: {}, ingress: [{}] }));
      },
    });
    const { probes } = planProbes(objs, topo, [4]);
    expect(outcome(probes, 'pod', 'frontend/web-0', 'db/pg-0 5432/TCP')).toBe('open');
    expect(outcome(probes, 'pod', 'frontend/web-0', 'db/pg-0 9187/TCP')).toBe('open');
    expect(outcome(probes, 'icmp', 'frontend/web-0', 'db/pg-0')).toBe('open');
  });

  it('uses only the endpoints on the node for externalTrafficPolicy Local', () => {
    const { objs, topo } = sampleWorld({
      edit: (o) => {
        const web = o.services.find((s) => s.metadata?.name === 'web')!;
        web.spec = { ...web.spec!, externalTrafficPolicy: 'Local' };
        // web-2 (node-3) goes away: node-3 has no local endpoint.
        o.pods.splice(o.pods.findIndex((p) => p.metadata?.name === 'web-2'), 1);
      },
    });
    const { probes, problems } = planProbes(objs, topo, [4]);
    expect(problems).toEqual(['pod frontend/web-2 runs on node-3 but has no Pod object in the manifests']);
    const np = probes.filter((p) => p.section === 'nodeport').map((p) => [p.column, p.expect.outcome]);
    expect(np).toEqual([
      ['node-1', 'open'],
      ['node-2', 'open'],
      ['node-3', 'blocked'],
    ]);
  });

  it('reports a pod whose netns address differs from its Pod object', () => {
    const { objs, topo } = sampleWorld();
    const moved = { ...topo, pods: topo.pods.map((p) => (p.key === 'db/pg-0' ? { ...p, ips: ['10.244.9.9'] } : p)) };
    const { problems } = planProbes(objs, moved, [4]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('db/pg-0');
    expect(problems[0]).toContain('10.244.9.9');
  });
});

describe('planProbes, problems', () => {
  it('reports a Pod object nothing runs, and a running pod without an address', () => {
    const { objs, topo } = sampleWorld();
    const fewer = { ...topo, pods: topo.pods.filter((p) => p.key !== 'db/pg-0').map((p) => (p.key === 'frontend/web-2' ? { ...p, ips: [] } : p)) };
    const { problems, probes } = planProbes(objs, fewer, [4]);
    expect(problems).toEqual([
      'pod frontend/web-2: its netns has no address, its Pod object says 10.244.3.3',
      'Pod object db/pg-0 (10.244.3.2) has no running pod: traffic to it goes nowhere',
    ]);
    // Neither sends probes; the Service still has pg-0 as endpoint, so probes to db/pg are planned.
    expect(probes.some((p) => p.column === 'frontend/web-2' || p.column === 'db/pg-0')).toBe(false);
    expect(probes.some((p) => p.row.startsWith('db/pg '))).toBe(true);
  });
});

describe('planProbes, dual-stack', () => {
  const { objs, topo } = sampleWorld({ dualStack: true });
  const { probes, problems } = planProbes(objs, topo, [4, 6]);

  it('probes both families with the same expectations', () => {
    expect(problems).toEqual([]);
    const v4 = probes.filter((p) => p.family === 4);
    const v6 = probes.filter((p) => p.family === 6);
    expect(v6.length).toBe(v4.length);
    const key = (p: Probe): string => `${p.section} ${p.column} ${p.row.replace(/ \S+:(\d+)\//, ' $1/').replace(/ \[\S+\]:(\d+)\//, ' $1/')} ${p.expect.outcome}`;
    expect(v6.map(key)).toEqual(v4.map(key));
  });

  it('uses the IPv6 ClusterIP, pod and node addresses', () => {
    expect(outcome(probes, 'service', 'frontend/web-0', 'backend/api [fd00:10:96::20]:9090/TCP', 6)).toBe('open');
    const p = probes.find((x) => x.family === 6 && x.section === 'pod')!;
    expect(p.to.ip).toContain(':');
    expect(p.from.ip).toContain(':');
    const np = probes.filter((x) => x.family === 6 && x.section === 'nodeport');
    expect(np.map((x) => x.to.ip)).toEqual(['2001:db8::11', '2001:db8::12', '2001:db8::13']);
    expect(np[0]!.from.ip).toBe('2001:db8::99');
  });

  it('can be asked for one family', () => {
    expect(planProbes(objs, topo, [6]).probes.every((x) => x.family === 6)).toBe(true);
  });
});

describe('endpointsOf', () => {
  const svc: V1Service = { metadata: { namespace: 'n', name: 's' }, spec: { clusterIP: '10.96.0.1', selector: { app: 'a' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } };
  const slice = (ready: boolean | undefined, ip: string) => ({
    metadata: { namespace: 'n', name: `s-${ip}`, labels: { 'kubernetes.io/service-name': 's' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: [{ addresses: [ip], conditions: ready === undefined ? {} : { ready }, nodeName: 'node-1' }],
  });

  it('takes ready (and unset) endpoints of the port, leaves not-ready ones out', () => {
    const eps = endpointsOf(svc, svc.spec!.ports![0]!, [slice(true, '10.244.1.2'), slice(false, '10.244.1.3'), slice(undefined, '10.244.1.4')], 4);
    expect(eps.map((e) => `${e.ip}:${e.port}@${e.node}`)).toEqual(['10.244.1.2:8080@node-1', '10.244.1.4:8080@node-1']);
  });

  it('ignores slices of other Services, namespaces and families', () => {
    const other = { ...slice(true, '10.244.1.5'), metadata: { namespace: 'm', name: 'x', labels: { 'kubernetes.io/service-name': 's' } } };
    expect(endpointsOf(svc, svc.spec!.ports![0]!, [other], 4)).toEqual([]);
    expect(endpointsOf(svc, svc.spec!.ports![0]!, [slice(true, '10.244.1.2')], 6)).toEqual([]);
  });
});
