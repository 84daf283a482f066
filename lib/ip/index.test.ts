import { describe, expect, it } from 'vitest';
import { IPAddr, IPPrefix } from './index.ts';

describe('IPAddr.parse / toString (Go net.IP semantics)', () => {
  it.each([
    ['10.1.2.3', 4, '10.1.2.3'],
    ['0.0.0.0', 4, '0.0.0.0'],
    ['255.255.255.255', 4, '255.255.255.255'],
    ['fd00:97:0:0:0:0:0:2', 6, 'fd00:97::2'],
    ['FD00::0001', 6, 'fd00::1'],
    ['::', 6, '::'],
    ['::1', 6, '::1'],
    ['1:0:0:1:0:0:0:1', 6, '1:0:0:1::1'],
    ['1:0:0:2:0:0:3:4', 6, '1::2:0:0:3:4'],
    ['1:2:3:4:5:6:7:0', 6, '1:2:3:4:5:6:7:0'],
    ['2001:db8::1.2.3.4', 6, '2001:db8::102:304'],
    ['::ffff:10.0.0.1', 4, '10.0.0.1'],
  ] as const)('%s → IPv%d %s', (text, family, out) => {
    const ip = IPAddr.parse(text);
    expect(ip?.family).toBe(family);
    expect(ip?.toString()).toBe(out);
  });

  it.each(['', '1.2.3', '1.2.3.4.5', '01.2.3.4', '256.1.1.1', '1.2.3.-1', 'fe80::1%eth0', '1::2::3', '12345::', 'g::1', '1:2:3:4:5:6:7:8:9', ':1'])(
    'rejects %j',
    (text) => expect(IPAddr.parse(text)).toBeUndefined(),
  );

  it('parses an optional prefix and drops it', () => {
    expect(IPAddr.parseWithOptionalPrefix('10.0.0.16/24')?.toString()).toBe('10.0.0.16');
    expect(IPAddr.parseWithOptionalPrefix('10.0.0.16/33')).toBeUndefined();
  });

  it('steps with next/prev and compares', () => {
    const a = IPAddr.parse('10.0.0.255')!;
    expect(a.next().toString()).toBe('10.0.1.0');
    expect(a.next().prev().equals(a)).toBe(true);
    expect(IPAddr.parse('::ffff:ffff')!.next().toString()).toBe('::1:0:0');
    expect(a.compare(a.next())).toBe(-1);
    expect(a.compare(IPAddr.parse('::1')!)).toBeLessThan(0);
  });
});

describe('IPPrefix', () => {
  it('keeps host bits and derives network/last/contains', () => {
    const p = IPPrefix.parse('10.1.0.5/24')!;
    expect(p.toString()).toBe('10.1.0.5/24');
    expect(p.hasHostBits()).toBe(true);
    expect(p.network().toString()).toBe('10.1.0.0');
    expect(p.last().toString()).toBe('10.1.0.255');
    expect(p.contains(IPAddr.parse('10.1.0.200')!)).toBe(true);
    expect(p.contains(IPAddr.parse('10.1.1.0')!)).toBe(false);
    expect(p.size()).toBe(256n);
    const v6 = IPPrefix.parse('fd00:97::/64')!;
    expect(v6.last().toString()).toBe('fd00:97::ffff:ffff:ffff:ffff');
    expect(v6.contains(IPAddr.parse('10.1.0.1')!)).toBe(false);
    expect(IPPrefix.parse('0.0.0.0/0')!.contains(IPAddr.parse('1.2.3.4')!)).toBe(true);
  });
  it.each(['10.0.0.0', '10.0.0.0/33', 'fd00::/129', 'x/8', '10.0.0.0/-1', '10.0.0.0/a'])('rejects %j', (t) =>
    expect(IPPrefix.parse(t)).toBeUndefined(),
  );
});

describe('embedded dotted quads', () => {
  it('only at the end of an IPv6 address, as Go and node:net have it', () => {
    expect(IPAddr.parse('1.2.3.4::')).toBeUndefined();
    expect(IPAddr.parse('::1.2.3.4')?.toString()).toBe('::102:304');
    expect(IPAddr.parse('1:2:3:4:5:6:1.2.3.4')?.toString()).toBe('1:2:3:4:5:6:102:304');
  });
});
