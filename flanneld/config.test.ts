import { describe, expect, it } from 'vitest';
import { NetworkConfigError, parseNetworkConfig } from './config.ts';

const s = (o: unknown): string => JSON.stringify(o);

describe('parseNetworkConfig defaults', () => {
  const cases: Array<{ name: string; in: unknown; len: number; min: string; max: string }> = [
    { name: '/16 gets /24 leases, first subnet skipped', in: { Network: '10.244.0.0/16' }, len: 24, min: '10.244.1.0/24', max: '10.244.255.0/24' },
    { name: '/22 still gets /24', in: { Network: '10.0.0.0/22' }, len: 24, min: '10.0.1.0/24', max: '10.0.3.0/24' },
    { name: '/23 gets prefix+2', in: { Network: '10.0.0.0/23' }, len: 25, min: '10.0.0.128/25', max: '10.0.1.128/25' },
    { name: '/28 gets /30', in: { Network: '10.0.0.0/28' }, len: 30, min: '10.0.0.4/30', max: '10.0.0.12/30' },
    { name: 'explicit len/min/max (doc example)', in: { Network: '10.0.0.0/8', SubnetLen: 20, SubnetMin: '10.10.0.0', SubnetMax: '10.99.0.0' }, len: 20, min: '10.10.0.0/20', max: '10.99.0.0/20' },
    { name: 'host bits of Network are dropped', in: { Network: '10.244.7.9/16' }, len: 24, min: '10.244.1.0/24', max: '10.244.255.0/24' },
    { name: 'keys match case-insensitively', in: { network: '10.1.0.0/16', subnetlen: 26 }, len: 26, min: '10.1.0.64/26', max: '10.1.255.192/26' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const cfg = parseNetworkConfig(s(c.in));
      expect(cfg.enableIPv4).toBe(true);
      expect(cfg.enableIPv6).toBe(false);
      expect(cfg.ipv4?.subnetLen).toBe(c.len);
      expect(cfg.ipv4?.subnetMin.toString()).toBe(c.min);
      expect(cfg.ipv4?.subnetMax.toString()).toBe(c.max);
      expect(cfg.ipv6).toBeUndefined();
    });
  }

  it('IPv6 defaults: /64 leases for a /56, first one skipped', () => {
    const cfg = parseNetworkConfig(s({ EnableIPv6: true, Network: '10.244.0.0/16', IPv6Network: '2001:db8:42::/56' }));
    expect(cfg.ipv6?.subnetLen).toBe(64);
    expect(cfg.ipv6?.subnetMin.toString()).toBe('2001:db8:42:1::/64');
    expect(cfg.ipv6?.subnetMax.toString()).toBe('2001:db8:42:ff::/64');
    expect(cfg.ipv4?.network.toString()).toBe('10.244.0.0/16');
  });

  it('IPv6-only config needs no Network', () => {
    const cfg = parseNetworkConfig(s({ EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fd00::/120' }));
    expect(cfg.ipv4).toBeUndefined();
    expect(cfg.ipv6?.subnetLen).toBe(122);
    expect(cfg.ipv6?.subnetMin.toString()).toBe('fd00::40/122');
  });

  it('backend defaults to vxlan and keeps the raw object', () => {
    expect(parseNetworkConfig(s({ Network: '10.0.0.0/16' })).backend).toEqual({ type: 'vxlan', raw: {} });
    const cfg = parseNetworkConfig(s({ Network: '10.0.0.0/16', Backend: { type: 'udp', Port: 7890 } }));
    expect(cfg.backend.type).toBe('udp');
    expect(cfg.backend.raw).toEqual({ type: 'udp', Port: 7890 });
    expect(cfg.enableNFTables).toBe(false);
    expect(parseNetworkConfig(s({ Network: '10.0.0.0/16', EnableNFTables: true })).enableNFTables).toBe(true);
  });

  it('returns a frozen value', () => {
    const cfg = parseNetworkConfig(s({ Network: '10.0.0.0/16', Backend: { Type: 'vxlan', VNI: 4 } }));
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(Object.isFrozen(cfg.backend.raw)).toBe(true);
  });
});

describe('parseNetworkConfig validation', () => {
  const bad: Array<[string, unknown, string]> = [
    ['missing Network', {}, 'please define a correct Network parameter in the flannel config'],
    ['missing IPv6Network', { Network: '10.0.0.0/16', EnableIPv6: true }, 'please define a correct IPv6Network parameter in the flannel config'],
    ['SubnetLen 31', { Network: '10.0.0.0/16', SubnetLen: 31 }, 'SubnetLen must be less than /31'],
    ['fewer than four subnets', { Network: '10.0.0.0/16', SubnetLen: 17 }, 'Network must be able to accommodate at least four subnets'],
    ['network too small', { Network: '10.0.0.0/29' }, 'Network is too small. Minimum useful network prefix is /28'],
    ['v6 network too small', { EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fd00::/125' }, 'IPv6Network is too small. Minimum useful network prefix is /124'],
    ['SubnetMin outside', { Network: '10.0.0.0/16', SubnetMin: '10.1.0.0' }, 'SubnetMin is not in the range of the Network'],
    ['SubnetMax outside', { Network: '10.0.0.0/16', SubnetMax: '10.1.0.0' }, 'SubnetMax is not in the range of the Network'],
    ['SubnetMin unaligned', { Network: '10.0.0.0/16', SubnetMin: '10.0.1.5' }, 'SubnetMin is not on a SubnetLen boundary: 10.0.1.5'],
    ['SubnetMax unaligned', { Network: '10.0.0.0/16', SubnetMax: '10.0.9.128' }, 'SubnetMax is not on a SubnetLen boundary: 10.0.9.128'],
    ['IPv6SubnetMin unaligned', { EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fd00::/48', IPv6SubnetMin: 'fd00:0:0:1::1' }, 'IPv6SubnetMin is not on a IPv6SubnetLen boundary: fd00:0:0:1::1'],
    ['min after max', { Network: '10.0.0.0/16', SubnetMin: '10.0.9.0', SubnetMax: '10.0.3.0' }, 'SubnetMin 10.0.9.0 is after SubnetMax 10.0.3.0'],
    ['v6 in Network', { Network: 'fd00::/48' }, 'Network: "fd00::/48" is not an IPv4 network'],
    ['bad CIDR', { Network: '10.0.0.0' }, 'Network: invalid CIDR "10.0.0.0"'],
    ['bad bool', { Network: '10.0.0.0/16', EnableIPv6: 'yes' }, 'EnableIPv6 must be a boolean'],
    ['backend not object', { Network: '10.0.0.0/16', Backend: 'vxlan' }, 'error decoding Backend property of config: not a JSON object'],
    ['nothing enabled', { EnableIPv4: false }, 'at least one of EnableIPv4 and EnableIPv6 must be true'],
  ];
  for (const [name, input, msg] of bad) {
    it(`rejects: ${name}`, () => {
      let err: unknown;
      try {
        parseNetworkConfig(s(input));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(NetworkConfigError);
      expect((err as NetworkConfigError).code).toBe('INVALID_NET_CONFIG');
      expect((err as Error).message).toBe(msg);
    });
  }

  it('rejects non-JSON', () => {
    expect(() => parseNetworkConfig('{')).toThrow(NetworkConfigError);
    expect(() => parseNetworkConfig('[]')).toThrow(NetworkConfigError);
  });

  it('without validation (kube mode) accepts what only CheckNetworkConfig rejects', () => {
    const cfg = parseNetworkConfig(s({ Network: '10.0.0.0/16', SubnetLen: 17, SubnetMin: '10.1.0.0' }), { validate: false });
    expect(cfg.ipv4?.subnetLen).toBe(17);
    expect(parseNetworkConfig(s({ EnableIPv4: true }), { validate: false }).ipv4).toBeUndefined();
  });
});
