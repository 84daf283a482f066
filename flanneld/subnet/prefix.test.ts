import { describe, expect, it } from 'vitest';
import { Prefix, formatAddr, parseAddr } from './prefix.ts';

describe('Prefix', () => {
  it('parses and formats v4 and v6 through one code path', () => {
    for (const [text, canon] of [
      ['10.244.1.0/24', '10.244.1.0/24'],
      ['2001:DB8:0:0:1::/80', '2001:db8:0:0:1::/80'],
      ['fd00::/8', 'fd00::/8'],
      ['::/0', '::/0'],
      ['::ffff:192.0.2.1/128', '::ffff:c000:201/128'],
      ['1:0:0:2:0:0:0:3/128', '1:0:0:2::3/128'],
    ] as const) {
      expect(Prefix.parse(text).toString()).toBe(canon);
    }
  });
  it('rejects garbage', () => {
    for (const t of ['10.0.0.0', '10.0.0.0/33', 'fd00::/129', 'x/8', '10.0.0/8', '10.0.0.0/-1']) {
      expect(() => Prefix.parse(t), t).toThrow();
    }
  });
  it('contains / overlaps / next / firstHost', () => {
    const n = Prefix.parse('10.244.0.0/16');
    const a = Prefix.parse('10.244.3.0/24');
    expect(n.contains(a)).toBe(true);
    expect(a.contains(n)).toBe(false);
    expect(a.overlaps(n)).toBe(true);
    expect(a.overlaps(Prefix.parse('10.244.4.0/24'))).toBe(false);
    expect(a.overlaps(Prefix.parse('fd00::/8'))).toBe(false);
    expect(a.next().toString()).toBe('10.244.4.0/24');
    expect(a.firstHost()).toBe('10.244.3.1');
    expect(Prefix.parse('fd00:0:0:ff::/64').next().toString()).toBe('fd00:0:0:100::/64');
    expect(Prefix.parse('fd00::/64').firstHost()).toBe('fd00::1');
    expect(Prefix.parse('10.1.2.3/24').masked().toString()).toBe('10.1.2.0/24');
  });
  it('round-trips addresses', () => {
    for (const a of ['0.0.0.0', '255.255.255.255', '::', '::1', 'fe80::1:2', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']) {
      const p = parseAddr(a);
      expect(formatAddr(p.family, p.value)).toBe(a);
    }
  });
});
