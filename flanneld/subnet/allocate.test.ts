import { describe, expect, it } from 'vitest';
import { parseNetworkConfig } from '../config.ts';
import { OutOfSubnetsError, freeSubnets, planAllocation } from './allocate.ts';
import type { Lease } from './types.ts';
import { IPPrefix } from '../../lib/ip/index.ts';

const P = (s: string): IPPrefix => IPPrefix.mustParse(s);
const cfg4 = parseNetworkConfig(JSON.stringify({ Network: '10.5.0.0/16' }));
const cfgSmall = parseNetworkConfig(JSON.stringify({ Network: '10.5.0.0/16', SubnetMin: '10.5.1.0', SubnetMax: '10.5.4.0' }));
const cfgDual = parseNetworkConfig(JSON.stringify({ Network: '10.5.0.0/16', EnableIPv6: true, IPv6Network: 'fd00:5::/48' }));
const exp = new Date('2030-01-01T00:00:00Z');

function lease(subnet: string | undefined, publicIP?: string, opts: { v6?: string; reservation?: boolean } = {}): Lease {
  return {
    enableIPv4: subnet !== undefined,
    enableIPv6: opts.v6 !== undefined,
    ...(subnet ? { subnet: P(subnet) } : {}),
    ...(opts.v6 ? { ipv6Subnet: P(opts.v6) } : {}),
    attrs: publicIP ? { publicIP } : {},
    ...(opts.reservation ? {} : { expiration: exp }),
  };
}
const first = (): number => 0;
const last = (n: number): number => n - 1;

describe('planAllocation', () => {
  it('allocates from SubnetMin, skipping taken subnets, and picks among the free ones', () => {
    const existing = [lease('10.5.1.0/24', '192.0.2.1'), lease('10.5.2.0/24', '192.0.2.2')];
    expect(planAllocation({ config: cfg4, existing, publicIP: '192.0.2.9', random: first })).toEqual({
      kind: 'new',
      subnet: P('10.5.3.0/24'),
      stale: [],
    });
    // The random pick ranges over exactly 100 free candidates.
    let seen = 0;
    const plan = planAllocation({ config: cfg4, existing, publicIP: '192.0.2.9', random: (n) => ((seen = n), n - 1) });
    expect(seen).toBe(100);
    expect(plan).toMatchObject({ subnet: P('10.5.102.0/24') });
  });

  it('reuses the lease with our public IP (including a reservation)', () => {
    const mine = lease('10.5.7.0/24', '192.0.2.9');
    expect(planAllocation({ config: cfg4, existing: [lease('10.5.1.0/24', '192.0.2.1'), mine], publicIP: '192.0.2.9' })).toEqual({ kind: 'reuse', lease: mine });
    const res = lease('10.5.8.0/24', '192.0.2.9', { reservation: true });
    expect(planAllocation({ config: cfg4, existing: [res], publicIP: '192.0.2.9' })).toEqual({ kind: 'reuse', lease: res });
  });

  it('does not reuse an incompatible lease: deletes it (never a reservation) and allocates anew', () => {
    const wrongLen = lease('10.5.7.0/25', '192.0.2.9');
    const outside = lease('10.6.7.0/24', '192.0.2.9');
    const reserved = lease('10.5.200.0/26', '192.0.2.9', { reservation: true });
    const plan = planAllocation({ config: cfgSmall, existing: [wrongLen, outside, reserved], publicIP: '192.0.2.9', random: first });
    expect(plan).toEqual({ kind: 'new', subnet: P('10.5.1.0/24'), stale: [wrongLen, outside] });
  });

  it('takes the previous subnet from subnet.env when free and compatible', () => {
    const previous = { subnet: P('10.5.42.1/24') };
    expect(planAllocation({ config: cfg4, existing: [], publicIP: '192.0.2.9', previous, random: last })).toMatchObject({ subnet: P('10.5.42.0/24') });
    // Taken by someone else (even as a reservation) → allocate instead.
    const taken = [lease('10.5.42.0/24', '192.0.2.1', { reservation: true })];
    expect(planAllocation({ config: cfg4, existing: taken, publicIP: '192.0.2.9', previous, random: first })).toMatchObject({ subnet: P('10.5.1.0/24') });
    // Outside SubnetMin..SubnetMax → allocate instead.
    expect(planAllocation({ config: cfgSmall, existing: [], previous, random: first })).toMatchObject({ subnet: P('10.5.1.0/24') });
  });

  it('respects reservations of other nodes and overlapping odd-sized leases', () => {
    const existing = [lease('10.5.1.0/24', '192.0.2.1', { reservation: true }), lease('10.5.2.0/23', '192.0.2.2'), lease('10.5.4.128/25', '192.0.2.3')];
    const cfg5 = parseNetworkConfig(JSON.stringify({ Network: '10.5.0.0/16', SubnetMin: '10.5.1.0', SubnetMax: '10.5.5.0' }));
    expect(planAllocation({ config: cfg5, existing, random: last })).toEqual({ kind: 'new', subnet: P('10.5.5.0/24'), stale: [] });
    expect(() => planAllocation({ config: cfgSmall, existing })).toThrow(OutOfSubnetsError);
  });

  it('dual-stack: both families allocated; reuse needs both subnets compatible', () => {
    const plan = planAllocation({ config: cfgDual, existing: [lease('10.5.1.0/24', '192.0.2.1', { v6: 'fd00:5:0:1::/64' })], publicIP: '192.0.2.9', random: first });
    expect(plan).toEqual({ kind: 'new', subnet: P('10.5.2.0/24'), ipv6Subnet: P('fd00:5:0:2::/64'), stale: [] });
    const v4only = lease('10.5.9.0/24', '192.0.2.9');
    expect(planAllocation({ config: cfgDual, existing: [v4only], publicIP: '192.0.2.9', random: first })).toMatchObject({ kind: 'new', stale: [v4only] });
  });
});

describe('freeSubnets', () => {
  it('skips huge taken ranges without stepping through them', () => {
    const fc = parseNetworkConfig(JSON.stringify({ EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fd00::/16' })).ipv6!;
    const free = freeSubnets(fc, [P('fd00:0:1::/48'), P('fd00::/20')], 2);
    expect(free.map(String)).toEqual(['fd00:1000::/64', 'fd00:1000:0:1::/64']);
  });
});
