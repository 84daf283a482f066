import { describe, expect, it } from 'vitest';
import { FAMILIES, IPAddr, IPPrefix, InvalidAddressError, InvalidPrefixError, families, familyBits } from './index.ts';

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

describe('families', () => {
  it('lists the enabled families, IPv4 first', () => {
    expect(families({ enableIPv4: true, enableIPv6: true })).toEqual([4, 6]);
    expect(families({ enableIPv6: true })).toEqual([6]);
    expect(families({ enableIPv4: false, enableIPv6: false })).toEqual([]);
    expect(FAMILIES).toEqual([4, 6]);
    expect([familyBits(4), familyBits(6)]).toEqual([32, 128]);
  });
});

describe('throwing parse variants', () => {
  it('IPAddr.mustParse throws INVALID_ADDRESS with the CNI text', () => {
    expect(IPAddr.mustParse('10.0.0.1').toString()).toBe('10.0.0.1');
    const err = (() => {
      try {
        IPAddr.mustParse('10.0.0.300');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(InvalidAddressError);
    expect(err).toMatchObject({ code: 'INVALID_ADDRESS', message: 'invalid IP address: 10.0.0.300' });
  });
  it.each([
    ['10.0.0.0', 'missing prefix length'],
    ['10.0.0.0/33', 'prefix length too long'],
    ['fd00::/129', 'prefix length too long'],
    ['x/8', 'bad address'],
    ['10.0.0/8', 'bad address'],
    ['10.0.0.0/-1', 'bad prefix length'],
  ])('IPPrefix.mustParse(%j) says %s', (text, why) => {
    expect(() => IPPrefix.mustParse(text)).toThrow(new InvalidPrefixError(text, why));
    expect(() => IPPrefix.mustParse(text)).toThrow(`invalid CIDR address: ${text} (${why})`);
  });
  it('a bad length in the constructor is INVALID_PREFIX', () => {
    expect(() => new IPPrefix(IPAddr.mustParse('10.0.0.0'), 33)).toThrow(expect.objectContaining({ code: 'INVALID_PREFIX' }));
  });
});

describe('prefix text (cases of the former flanneld Prefix)', () => {
  it.each([
    ['10.244.1.0/24', '10.244.1.0/24'],
    ['2001:DB8:0:0:1::/80', '2001:db8:0:0:1::/80'],
    ['fd00::/8', 'fd00::/8'],
    ['::/0', '::/0'],
    // A prefix written in v4-mapped form stays IPv6 (Go's ParseCIDR counts 128 bits).
    ['::ffff:192.0.2.1/128', '::ffff:c000:201/128'],
    ['1:0:0:2:0:0:0:3/128', '1:0:0:2::3/128'],
  ])('%s → %s', (text, canon) => expect(IPPrefix.mustParse(text).toString()).toBe(canon));

  it('round-trips addresses', () => {
    for (const a of ['0.0.0.0', '255.255.255.255', '::', '::1', 'fe80::1:2', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']) {
      expect(IPAddr.mustParse(a).toString()).toBe(a);
    }
  });

  it('contains / overlaps / next / withHost / masked', () => {
    const n = IPPrefix.mustParse('10.244.0.0/16');
    const a = IPPrefix.mustParse('10.244.3.0/24');
    expect(n.contains(a)).toBe(true);
    expect(a.contains(n)).toBe(false);
    expect(a.overlaps(n)).toBe(true);
    expect(a.overlaps(IPPrefix.mustParse('10.244.4.0/24'))).toBe(false);
    expect(a.overlaps(IPPrefix.mustParse('fd00::/8'))).toBe(false);
    expect(a.next().toString()).toBe('10.244.4.0/24');
    expect(a.withHost(1n).toString()).toBe('10.244.3.1/24');
    expect(IPPrefix.mustParse('fd00:0:0:ff::/64').next().toString()).toBe('fd00:0:0:100::/64');
    expect(IPPrefix.mustParse('fd00::/64').withHost(1n).addr.toString()).toBe('fd00::1');
    expect(IPPrefix.mustParse('10.1.2.3/24').masked().toString()).toBe('10.1.2.0/24');
    expect(IPPrefix.mustParse('10.1.2.3/24').isCanonical()).toBe(false);
    expect(IPPrefix.mustParse('10.1.2.0/24').isCanonical()).toBe(true);
  });

  it('masks, equality and host/any prefixes', () => {
    expect(IPPrefix.mustParse('10.0.0.0/20').mask()).toBe(0xfffff000n);
    expect(IPPrefix.mustParse('fd00::/8').mask()).toBe(0xffn << 120n);
    expect(IPPrefix.mustParse('10.0.0.0/0').mask()).toBe(0n);
    expect(IPPrefix.mustParse('10.0.0.1/24').equals(IPPrefix.mustParse('10.0.0.1/24'))).toBe(true);
    expect(IPPrefix.mustParse('10.0.0.1/24').equals(IPPrefix.mustParse('10.0.0.0/24'))).toBe(false);
    expect(IPPrefix.host(IPAddr.mustParse('fd00::9')).toString()).toBe('fd00::9/128');
    expect(IPPrefix.any(4).toString()).toBe('0.0.0.0/0');
    expect(IPPrefix.any(6).toString()).toBe('::/0');
    expect(IPPrefix.parseOrHost('10.0.0.9')?.toString()).toBe('10.0.0.9/32');
    expect(IPPrefix.parseOrHost('10.0.0.9/8')?.toString()).toBe('10.0.0.9/8');
    expect(IPPrefix.parseOrHost('nope')).toBeUndefined();
  });

  it('iterates subnets in order, optionally from a start', () => {
    const n = IPPrefix.mustParse('10.244.0.0/22');
    expect([...n.subnets(24)].map(String)).toEqual(['10.244.0.0/24', '10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24']);
    expect([...n.subnets(24, IPAddr.mustParse('10.244.2.0'))].map(String)).toEqual(['10.244.2.0/24', '10.244.3.0/24']);
    expect([...IPPrefix.mustParse('fd00::/63').subnets(64)].map(String)).toEqual(['fd00::/64', 'fd00:0:0:1::/64']);
    expect(() => [...n.subnets(20)]).toThrow(RangeError);
  });
});

describe('bytes', () => {
  it('round-trips both families in network order', () => {
    expect(IPAddr.mustParse('192.0.2.1').toBytes()).toEqual(Buffer.from([192, 0, 2, 1]));
    expect(IPAddr.fromBytes(Buffer.from([192, 0, 2, 1])).toString()).toBe('192.0.2.1');
    for (const a of ['2001:db8::ff', '::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']) {
      const b = IPAddr.mustParse(a).toBytes();
      expect(b.length).toBe(16);
      expect(IPAddr.fromBytes(b).toString()).toBe(a);
    }
    expect(() => IPAddr.fromBytes(Buffer.alloc(5))).toThrow(RangeError);
  });
  it('a v4-mapped address is IPv4, a prefix of 16 bytes stays IPv6', () => {
    const mapped = IPAddr.mustParse('::ffff:10.0.0.1');
    expect(mapped.family).toBe(4);
    const b = Buffer.alloc(16);
    b.writeUInt16BE(0xffff, 10);
    b.set([10, 0, 0, 1], 12);
    expect(IPAddr.fromBytes(b).equals(mapped)).toBe(true);
    expect(IPPrefix.fromBytes(b, 128).toString()).toBe('::ffff:a00:1/128');
    expect(IPAddr.parseWithOptionalPrefix('::ffff:10.0.0.1/120')?.family).toBe(4);
  });
  it('add, loopback, unspecified', () => {
    expect(IPAddr.mustParse('10.0.0.255').add(2n).toString()).toBe('10.0.1.1');
    expect(() => IPAddr.mustParse('255.255.255.255').add(1n)).toThrow(RangeError);
    expect(IPAddr.mustParse('127.3.0.1').isLoopback()).toBe(true);
    expect(IPAddr.mustParse('::1').isLoopback()).toBe(true);
    expect(IPAddr.mustParse('10.0.0.1').isLoopback()).toBe(false);
    expect(IPAddr.any(6).isUnspecified()).toBe(true);
  });
});

describe('agrees with node:net on what is an address (zones aside: Go rejects them)', async () => {
  const net = await import('node:net');
  const samples = [
    '0.0.0.0', '255.255.255.255', '256.1.1.1', '1.2.3', '01.2.3.4', '1.2.3.4.5', '', ' 1.2.3.4', '10.0.0.1/24',
    '::', '::1', '1::', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '1::2::3',
    '::ffff:192.0.2.1', '1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4', 'g::1', '12345::',
    ':1', '1:', ':::', 'fd00:97::2', '2001:db8::ff00:42:8329', '::1.2.3.4', '1.2.3.4::',
  ];
  it.each(samples)('%j', (s) => expect(IPAddr.parse(s) !== undefined).toBe(net.isIP(s) !== 0));
  it('canonical text of addresses that were "ip" strings in lib/netlink', () => {
    for (const [a, b] of [
      ['fd00:0:0::1', 'fd00::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['::ffff:192.0.2.1', '192.0.2.1'],
      ['10.1.2.3', '10.1.2.3'],
    ]) {
      expect(IPAddr.mustParse(a!).toString()).toBe(b);
    }
    expect(IPPrefix.mustParse('10.1.17.9/20').network().toString()).toBe('10.1.16.0');
    expect(IPPrefix.mustParse('fd00:1:2:3::9/48').network().toString()).toBe('fd00:1:2::');
  });
});
