// EndpointSlices → endpoints per service port (upstream endpointslicecache
// tests, TestUpdateEndpointsMap): merging, deduplication, order, flags, and
// the change tracker's folding and results.
import type { V1EndpointSlice } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { makeSlice, tcp } from '../testing/fixtures.ts';
import { ANNOTATION_LAST_CHANGE_TRIGGER_TIME, Endpoints, EndpointsChangeTracker } from './endpoints.ts';
import type { Issue } from './types.ts';

function apply(slices: V1EndpointSlice[], family: 4 | 6 = 4, node = 'node-a'): { eps: Endpoints; issues: Issue[]; tracker: EndpointsChangeTracker } {
  const issues: Issue[] = [];
  const tracker = new EndpointsChangeTracker(family, node, (i) => issues.push(i));
  for (const s of slices) tracker.endpointSliceUpdate(s, false);
  const eps = new Endpoints();
  eps.update(tracker);
  return { eps, issues, tracker };
}

const list = (eps: Endpoints, key: string): string[] =>
  (eps.map.get(key) ?? []).map((e) => `${e.endpoint}${e.isLocal ? ' local' : ''}${e.ready ? '' : ' !ready'}${e.serving ? '' : ' !serving'}${e.terminating ? ' terminating' : ''}`);

describe('EndpointsChangeTracker + Endpoints', () => {
  it('merges the slices of a service per port, sorted by the "ip:port" string', () => {
    const { eps } = apply([
      makeSlice('ns', 'web', 1, [{ addresses: ['10.0.0.9'] }, { addresses: ['10.0.0.10'], nodeName: 'node-a' }], [tcp('http', 8080), { name: 'dns', port: 53, protocol: 'UDP' }]),
      makeSlice('ns', 'web', 2, [{ addresses: ['10.0.0.1'], conditions: { ready: false, serving: true, terminating: true } }], [tcp('http', 8080)]),
    ]);
    // Byte order of "ip:port", as upstream: "10.0.0.10:" < "10.0.0.1:" < "10.0.0.9:".
    expect(list(eps, 'ns/web:http/TCP')).toEqual(['10.0.0.10:8080 local', '10.0.0.1:8080 !ready terminating', '10.0.0.9:8080']);
    expect(list(eps, 'ns/web:dns/UDP')).toEqual(['10.0.0.10:53 local', '10.0.0.9:53']);
  });

  it('deduplicates an endpoint seen in two slices, preferring the non-terminating copy', () => {
    const { eps } = apply([
      makeSlice('ns', 'web', 1, [{ addresses: ['10.0.0.1'], conditions: { ready: true } }], [tcp('http', 80)]),
      makeSlice('ns', 'web', 2, [{ addresses: ['10.0.0.1'], conditions: { ready: false, terminating: true } }], [tcp('http', 80)]),
    ]);
    expect(list(eps, 'ns/web:http/TCP')).toEqual(['10.0.0.1:80']);
  });

  it('keeps to its family and brackets IPv6 endpoints', () => {
    const slices = [makeSlice('ns', 'web', 1, [{ addresses: ['10.0.0.1'] }], [tcp('', 80)]), makeSlice('ns', 'web', 2, [{ addresses: ['fd00::1'] }], [tcp('', 80)], 'IPv6')];
    expect(list(apply(slices, 4).eps, 'ns/web/TCP')).toEqual(['10.0.0.1:80']);
    expect(list(apply(slices, 6).eps, 'ns/web/TCP')).toEqual(['[fd00::1]:80']);
  });

  it('drops bad ports and endpoints one by one and skips a slice without its service label', () => {
    const noLabel: V1EndpointSlice = { ...makeSlice('ns', 'web', 9, [{ addresses: ['10.0.0.5'] }], [tcp('http', 80)]), metadata: { namespace: 'ns', name: 'orphan' } };
    const { eps, issues } = apply([
      makeSlice('ns', 'web', 1, [{ addresses: ['10.0.0.1'] }, { addresses: ['10.0.0.300'] }, { addresses: [] }], [tcp('http', 80), tcp('big', 70000), { name: 'x', port: 1, protocol: 'ICMP' }, { name: 'none' }]),
      noLabel,
    ]);
    expect([...eps.map.keys()]).toEqual(['ns/web:http/TCP']);
    expect(issues.map((i) => `${i.name}: ${i.reason}${i.skipped ? ' (skipped)' : ''}`)).toEqual([
      'web-1: ignoring port "big": port 70000 is out of range',
      'web-1: ignoring port "x": unknown protocol "ICMP"',
      'web-1: ignoring port "none" without a port number',
      'web-1: ignoring endpoint with invalid address "10.0.0.300"',
      'web-1: ignoring endpoint without addresses',
      'orphan: label kubernetes.io/service-name is missing (skipped)',
    ]);
  });

  it('skips a malformed slice instead of throwing', () => {
    const bad = { ...makeSlice('ns', 'web', 1, [], []), endpoints: [{ addresses: [42] }] } as unknown as V1EndpointSlice;
    const { eps, issues } = apply([bad]);
    expect(eps.map.size).toBe(0);
    expect(issues.map((i) => [i.name, i.skipped, i.reason.startsWith('malformed object: ')])).toEqual([['web-1', true, true]]);
  });

  it('folds updates into one change, drops no-ops, and removes deleted slices', () => {
    const { eps, tracker } = apply([makeSlice('ns', 'web', 1, [{ addresses: ['10.0.0.1'] }], [{ name: 'dns', port: 53, protocol: 'UDP' }])]);
    const before = eps.map.get('ns/web:dns/UDP');
    // An update that restores the applied state leaves nothing pending.
    tracker.endpointSliceUpdate(makeSlice('ns', 'web', 1, [{ addresses: ['10.0.0.2'] }], [{ name: 'dns', port: 53, protocol: 'UDP' }]), false);
    expect(tracker.endpointSliceUpdate(makeSlice('ns', 'web', 1, [{ addresses: ['10.0.0.1'] }], [{ name: 'dns', port: 53, protocol: 'UDP' }]), false)).toBe(false);
    expect(eps.update(tracker).updatedServices.size).toBe(0);
    expect(eps.map.get('ns/web:dns/UDP')).toBe(before);

    // Replace the endpoint: the old one is a stale UDP conntrack entry.
    tracker.endpointSliceUpdate(makeSlice('ns', 'web', 1, [{ addresses: ['10.0.0.2'] }], [{ name: 'dns', port: 53, protocol: 'UDP' }]), false);
    let r = eps.update(tracker);
    expect([...r.updatedServices]).toEqual(['ns/web']);
    expect([...r.changedPorts]).toEqual(['ns/web:dns/UDP']);
    expect(r.staleEndpoints.map((s) => `${s.servicePort} ${s.endpoint.endpoint}`)).toEqual(['ns/web:dns/UDP 10.0.0.1:53']);
    expect(r.newlyActiveServicePorts.size).toBe(0);

    tracker.endpointSliceUpdate(makeSlice('ns', 'web', 1, [], []), true);
    r = eps.update(tracker);
    expect(eps.map.size).toBe(0);
    expect(r.staleEndpoints.map((s) => s.endpoint.endpoint)).toEqual(['10.0.0.2:53']);
  });

  it('tells a real change from a no-op field by field: conditions, locality, hints and ports count', () => {
    const port = [tcp('http', 8080)];
    const base = { addresses: ['10.0.0.1'], nodeName: 'node-b', conditions: { ready: true, serving: true, terminating: false } };
    const { tracker } = apply([makeSlice('ns', 'web', 1, [base], port)]);
    const variants = [
      { ...base, conditions: { ready: false, serving: true, terminating: true } },
      { ...base, nodeName: 'node-a' },
      { ...base, hints: { forZones: [{ name: 'zone-a' }] } },
      { ...base, hints: { forNodes: [{ name: 'node-b' }] } },
      { ...base, addresses: ['10.0.0.3'] },
    ];
    for (const v of variants) {
      expect(tracker.endpointSliceUpdate(makeSlice('ns', 'web', 1, [v], port), false), JSON.stringify(v)).toBe(true);
      // Back to the applied state: nothing pending.
      expect(tracker.endpointSliceUpdate(makeSlice('ns', 'web', 1, [base], port), false)).toBe(false);
    }
    expect(tracker.endpointSliceUpdate(makeSlice('ns', 'web', 1, [base], [tcp('http', 8081)]), false)).toBe(true);
    expect(tracker.endpointSliceUpdate(makeSlice('ns', 'web', 1, [base], port), false)).toBe(false);
    // The same hints in another order are the same slice.
    const { tracker: t2 } = apply([makeSlice('ns', 'web', 1, [{ ...base, hints: { forZones: [{ name: 'a' }, { name: 'b' }] } }], port)]);
    expect(t2.endpointSliceUpdate(makeSlice('ns', 'web', 1, [{ ...base, hints: { forZones: [{ name: 'b' }, { name: 'a' }] } }], port), false)).toBe(false);
  });

  it('reports UDP ports that got their first serving endpoint, and trigger times', () => {
    const tracker = new EndpointsChangeTracker(4, 'node-a');
    const eps = new Endpoints();
    const slice = makeSlice('ns', 'dns', 1, [{ addresses: ['10.0.0.1'] }], [{ name: '', port: 53, protocol: 'UDP' }]);
    slice.metadata = { ...slice.metadata, annotations: { [ANNOTATION_LAST_CHANGE_TRIGGER_TIME]: '2026-01-02T03:04:05Z' } };
    tracker.endpointSliceUpdate(slice, false);
    const r = eps.update(tracker);
    expect([...r.newlyActiveServicePorts]).toEqual(['ns/dns/UDP']);
    expect(r.lastChangeTriggerTimes.get('ns/dns')?.map((d) => d.toISOString())).toEqual(['2026-01-02T03:04:05.000Z']);
  });

  it('counts ready local endpoints per service for health checks', () => {
    const { eps } = apply([
      makeSlice('ns', 'web', 1, [{ addresses: ['10.0.0.1'], nodeName: 'node-a' }, { addresses: ['10.0.0.2'], nodeName: 'node-a', conditions: { ready: false, terminating: true } }, { addresses: ['10.0.0.3'], nodeName: 'node-b' }], [tcp('http', 80)]),
    ]);
    expect([...eps.localReadyEndpoints()]).toEqual([['ns/web', 1]]);
  });
});
