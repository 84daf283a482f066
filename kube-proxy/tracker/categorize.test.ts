// CategorizeEndpoints (upstream pkg/proxy/topology_test.go, in spirit):
// ready endpoints, the serving-terminating fallback, Local policy sets, and
// topology hints.
import { describe, expect, it } from 'vitest';
import { IPAddr } from '../../lib/ip/index.ts';
import { makeService } from '../testing/fixtures.ts';
import { categorizeEndpoints } from './categorize.ts';
import { makeEndpoint } from './endpoints.ts';
import { servicePortsOf } from './service.ts';
import type { Endpoint, ServicePort } from './types.ts';

function port(spec: Parameters<typeof makeService>[2]): ServicePort {
  const sp = [...servicePortsOf(makeService('ns', 'svc', { clusterIP: '10.96.0.1', ports: [{ port: 80 }], ...spec }), 4).values()][0];
  if (!sp) throw new Error('no port');
  return sp;
}

type Flags = 'r' | 'st' | 'nst' | 'nr';
/** "10.0.0.1:r:local", flags r = ready, st = serving+terminating, nst = not serving, terminating, nr = not ready, serving. */
function eps(...specs: string[]): Endpoint[] {
  return specs
    .map((s) => {
      const [ip = '', f = 'r', where = '', zone = ''] = s.split(':');
      const flags = f as Flags;
      return makeEndpoint(
        IPAddr.mustParse(ip),
        80,
        { isLocal: where === 'local', ready: flags === 'r', serving: flags === 'r' || flags === 'st' || flags === 'nr', terminating: flags === 'st' || flags === 'nst' },
        zone ? { zoneHints: new Set([zone]) } : {},
      );
    })
    .sort((a, b) => (a.endpoint < b.endpoint ? -1 : 1));
}

const ips = (l: readonly Endpoint[]): string[] => l.map((e) => e.ip);

describe('categorizeEndpoints', () => {
  const cases: { name: string; spec: Parameters<typeof port>[0]; eps: string[]; cluster: string[]; local: string[]; all: string[]; any: boolean }[] = [
    { name: 'ready endpoints only', spec: {}, eps: ['10.0.0.1:r', '10.0.0.2:st', '10.0.0.3:nr'], cluster: ['10.0.0.1'], local: [], all: ['10.0.0.1'], any: true },
    { name: 'no ready: serving terminating fallback', spec: {}, eps: ['10.0.0.1:st', '10.0.0.2:nst', '10.0.0.3:nr'], cluster: ['10.0.0.1'], local: [], all: ['10.0.0.1'], any: true },
    { name: 'nothing usable', spec: {}, eps: ['10.0.0.2:nst', '10.0.0.3:nr'], cluster: [], local: [], all: [], any: false },
    {
      name: 'iTP Local on a ClusterIP: local ready only',
      spec: { internalTrafficPolicy: 'Local' },
      eps: ['10.0.0.1:r:local', '10.0.0.2:r', '10.0.0.3:st:local'],
      cluster: [],
      local: ['10.0.0.1'],
      all: ['10.0.0.1'],
      any: true,
    },
    {
      name: 'iTP Local: local terminating fallback, independent of remote ready ones',
      spec: { internalTrafficPolicy: 'Local' },
      eps: ['10.0.0.1:st:local', '10.0.0.2:r'],
      cluster: [],
      local: ['10.0.0.1'],
      all: ['10.0.0.1'],
      any: true,
    },
    { name: 'iTP Local with no local endpoint still has endpoints', spec: { internalTrafficPolicy: 'Local' }, eps: ['10.0.0.2:r'], cluster: [], local: [], all: [], any: true },
    {
      name: 'eTP Local NodePort: both sets, union reachable',
      spec: { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ port: 80, nodePort: 30080 }] },
      eps: ['10.0.0.1:st:local', '10.0.0.2:r', '10.0.0.3:r:local'],
      cluster: ['10.0.0.2', '10.0.0.3'],
      local: ['10.0.0.3'],
      all: ['10.0.0.2', '10.0.0.3'],
      any: true,
    },
    {
      name: 'eTP Local: terminating local endpoint joins the reachable set',
      spec: { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ port: 80, nodePort: 30080 }] },
      eps: ['10.0.0.1:st:local', '10.0.0.2:r'],
      cluster: ['10.0.0.2'],
      local: ['10.0.0.1'],
      all: ['10.0.0.1', '10.0.0.2'],
      any: true,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = categorizeEndpoints(eps(...c.eps), port(c.spec));
      expect({ cluster: ips(r.clusterEndpoints), local: ips(r.localEndpoints), all: ips(r.allReachableEndpoints), any: r.hasAnyEndpoints }).toEqual({
        cluster: c.cluster,
        local: c.local,
        all: c.all,
        any: c.any,
      });
    });
  }

  it('uses zone hints only when every ready endpoint has one and some are for this zone', () => {
    const sp = port({});
    const hinted = eps('10.0.0.1:r::a', '10.0.0.2:r::b', '10.0.0.3:r::a');
    expect(ips(categorizeEndpoints(hinted, sp, { nodeName: 'n', zone: 'a' }).clusterEndpoints)).toEqual(['10.0.0.1', '10.0.0.3']);
    expect(ips(categorizeEndpoints(hinted, sp, { nodeName: 'n', zone: 'c' }).clusterEndpoints)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    const partial = eps('10.0.0.1:r::a', '10.0.0.2:r');
    expect(ips(categorizeEndpoints(partial, sp, { nodeName: 'n', zone: 'a' }).clusterEndpoints)).toEqual(['10.0.0.1', '10.0.0.2']);
  });
});
