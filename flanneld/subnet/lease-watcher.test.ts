import { describe, expect, it } from 'vitest';
import { LeaseWatcher } from './lease-watcher.ts';
import type { Lease } from './types.ts';
import { IPPrefix } from '../../lib/ip/index.ts';

function lease(subnet: string, mac: string, v6?: string): Lease {
  return {
    enableIPv4: true,
    enableIPv6: v6 !== undefined,
    subnet: IPPrefix.mustParse(subnet),
    ...(v6 ? { ipv6Subnet: IPPrefix.mustParse(v6) } : {}),
    attrs: { publicIP: '192.0.2.1', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: mac } },
  };
}
const bare = (subnet: string): Lease => ({ enableIPv4: true, enableIPv6: false, subnet: IPPrefix.mustParse(subnet), attrs: {} });
const own = lease('10.5.1.0/24', 'aa:aa:aa:aa:aa:01');

describe('LeaseWatcher', () => {
  it('first snapshot adds every remote lease, without our own', () => {
    const w = new LeaseWatcher(own);
    const a = lease('10.5.2.0/24', 'aa:aa:aa:aa:aa:02');
    const b = lease('10.5.3.0/24', 'aa:aa:aa:aa:aa:03');
    expect(w.reset([own, a, b])).toEqual([
      { type: 'added', lease: a },
      { type: 'added', lease: b },
    ]);
    expect(w.leases()).toEqual([a, b]);
  });

  it('a later snapshot diffs: removed (stored lease), added, changed attrs re-added, unchanged silent', () => {
    const w = new LeaseWatcher(own);
    const a = lease('10.5.2.0/24', 'aa:aa:aa:aa:aa:02');
    const b = lease('10.5.3.0/24', 'aa:aa:aa:aa:aa:03');
    const c = lease('10.5.4.0/24', 'aa:aa:aa:aa:aa:04');
    w.reset([a, b, c]);
    const b2 = lease('10.5.3.0/24', 'bb:bb:bb:bb:bb:03');
    const d = lease('10.5.5.0/24', 'aa:aa:aa:aa:aa:05');
    expect(w.reset([c, b2, d, own])).toEqual([
      { type: 'removed', lease: a },
      { type: 'added', lease: b2 },
      { type: 'added', lease: d },
    ]);
  });

  it('a removal without attributes returns the stored lease; unknown removals pass through', () => {
    const w = new LeaseWatcher(own);
    const a = lease('10.5.2.0/24', 'aa:aa:aa:aa:aa:02');
    w.update([{ type: 'added', lease: a }]);
    expect(w.update([{ type: 'removed', lease: bare('10.5.2.0/24') }])).toEqual([{ type: 'removed', lease: a }]);
    expect(w.leases()).toEqual([]);
    expect(w.update([{ type: 'removed', lease: bare('10.5.9.0/24') }])).toEqual([{ type: 'removed', lease: bare('10.5.9.0/24') }]);
  });

  it('drops events for our own subnet, and an update overwrites a known lease', () => {
    const w = new LeaseWatcher(own);
    const a = lease('10.5.2.0/24', 'aa:aa:aa:aa:aa:02');
    const a2 = lease('10.5.2.0/24', 'cc:cc:cc:cc:cc:02');
    expect(w.update([{ type: 'added', lease: own }, { type: 'removed', lease: bare('10.5.1.0/24') }, { type: 'added', lease: a }, { type: 'added', lease: a2 }])).toEqual([
      { type: 'added', lease: a },
      { type: 'added', lease: a2 },
    ]);
    expect(w.leases()).toEqual([a2]);
  });

  it('dual-stack leases are identified by both subnets', () => {
    const mine = lease('10.5.1.0/24', 'aa:aa:aa:aa:aa:01', 'fd00:5:0:1::/64');
    const w = new LeaseWatcher(mine);
    const other = lease('10.5.2.0/24', 'aa:aa:aa:aa:aa:02', 'fd00:5:0:2::/64');
    expect(w.apply({ snapshot: [mine, other] })).toEqual([{ type: 'added', lease: other }]);
    expect(w.apply({ events: [{ type: 'removed', lease: { ...bare('10.5.2.0/24'), enableIPv6: true, ipv6Subnet: IPPrefix.mustParse('fd00:5:0:2::/64') } }] })).toEqual([{ type: 'removed', lease: other }]);
  });
});
