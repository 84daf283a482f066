import { describe, expect, it } from 'vitest';
import { ErrorCode, NetError } from '../../lib/errors.ts';
import { cniCodeOf } from '../skel/errors.ts';
import { ErrCode } from '../skel/types.ts';
import { loadConfig, parseResolvConf, rangeSetString, storeLocation } from './config.ts';

const conf = (ipam: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  cniVersion: '1.0.0',
  name: 'net1',
  type: 'bridge',
  ipam,
  ...extra,
});

function errorOf(fn: () => unknown): NetError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(NetError);
    return err as NetError;
  }
  throw new Error('expected an error');
}

describe('loadConfig: validation messages (reference text, code 7)', () => {
  it.each<[string, Record<string, unknown>, string, string?]>([
    ['no ipam key', { cniVersion: '1.0.0', name: 'n' }, "IPAM config missing 'ipam' key"],
    ['no ranges', conf({ type: 'host-local' }), 'no IP ranges specified'],
    ['/31', conf({ subnet: '10.1.0.0/31' }), 'invalid range set 0: Network 10.1.0.0/31 too small to allocate from'],
    ['/128', conf({ ranges: [[{ subnet: 'fd00::/128' }]] }), 'invalid range set 0: Network fd00::/128 too small to allocate from'],
    [
      'host bits',
      conf({ subnet: '10.1.0.5/24' }),
      'invalid range set 0: Network has host bits set. For a subnet mask of length 24 the network address is 10.1.0.0',
    ],
    [
      'rangeStart outside',
      conf({ subnet: '10.1.0.0/24', rangeStart: '10.2.0.1' }),
      'invalid range set 0: RangeStart 10.2.0.1 not in network 10.1.0.0/24',
    ],
    [
      'rangeEnd outside',
      conf({ ranges: [[{ subnet: '10.1.0.0/24', rangeEnd: '10.1.1.1' }]] }),
      'invalid range set 0: RangeEnd 10.1.1.1 not in network 10.1.0.0/24',
    ],
    [
      'rangeStart after rangeEnd',
      conf({ ranges: [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.9', rangeEnd: '10.1.0.5' }]] }),
      'invalid range set 0: RangeStart 10.1.0.9 not in network 10.1.0.0/24',
    ],
    ['empty set', conf({ ranges: [[]] }), 'invalid range set 0: empty range set'],
    [
      'mixed families',
      conf({ ranges: [[{ subnet: '10.1.0.0/24' }, { subnet: 'fd00::/64' }]] }),
      'invalid range set 0: mixed address families',
    ],
    [
      'overlap inside a set',
      conf({ ranges: [[{ subnet: '10.1.0.0/24' }, { subnet: '10.1.0.0/16' }]] }),
      'invalid range set 0: subnets 10.1.0.1-10.1.0.254 and 10.1.0.1-10.1.255.254 overlap',
    ],
    ['overlap between sets', conf({ ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: '10.1.0.0/25' }]] }), 'range set 0 overlaps with 1'],
    ['bad cidr', conf({ subnet: 'nope' }), 'invalid CIDR address: nope'],
    ['bad ip', conf({ subnet: '10.1.0.0/24', gateway: '10.1.0.300' }), 'invalid IP address: 10.1.0.300'],
    [
      '0.2.0 with two v4 sets',
      conf({ ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: '10.2.0.0/24' }]] }, { cniVersion: '0.2.0' }),
      'CNI version 0.2.0 does not support more than 1 address per family',
      '0.2.0',
    ],
  ])('%s', (_name, config, msg, version) => {
    const e = errorOf(() => loadConfig(config, '', version ?? '1.0.0'));
    expect(e.message).toBe(msg);
    expect(e.code).toBe(ErrorCode.InvalidConfig);
    expect(cniCodeOf(e)).toBe(ErrCode.InvalidNetworkConfig);
  });

  it('allows one address per family on 0.2.0', () => {
    const c = loadConfig(conf({ ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/64' }]] }), '', '0.2.0');
    expect(c.ranges).toHaveLength(2);
  });
});

describe('loadConfig: defaults and merging', () => {
  it('defaults rangeStart/rangeEnd/gateway per family and dataDir', () => {
    const c = loadConfig(conf({ ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00:97::/64' }]] }), '', '1.0.0');
    expect(c.ranges.map(rangeSetString)).toEqual(['10.1.0.1-10.1.0.254', 'fd00:97::1-fd00:97::ffff:ffff:ffff:ffff']);
    expect(c.ranges[0]![0]!.gateway.toString()).toBe('10.1.0.1');
    expect(c.dataDir).toBe('/var/lib/cni/networks');
    expect(c.name).toBe('net1');
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('keeps a gateway outside the subnet (as the reference does)', () => {
    const c = loadConfig(conf({ subnet: '10.1.0.0/24', gateway: '10.9.9.9' }), '', '1.0.0');
    expect(c.ranges[0]![0]!.gateway.toString()).toBe('10.9.9.9');
  });

  it('orders range sets: runtimeConfig.ipRanges, legacy subnet, ranges', () => {
    const c = loadConfig(
      conf(
        { subnet: '10.2.0.0/24', rangeStart: '10.2.0.10', rangeEnd: '10.2.0.20', gateway: '10.2.0.254', ranges: [[{ subnet: 'fd00::/64' }]] },
        { runtimeConfig: { ipRanges: [[{ subnet: '172.30.0.0/24' }]] } },
      ),
      '',
      '1.0.0',
    );
    expect(c.ranges.map(rangeSetString)).toEqual(['172.30.0.1-172.30.0.254', '10.2.0.10-10.2.0.20', 'fd00::1-fd00::ffff:ffff:ffff:ffff']);
  });

  it('merges requested IPs from CNI_ARGS, args.cni.ips and runtimeConfig.ips, prefix ignored, deduplicated', () => {
    const c = loadConfig(
      conf(
        { ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/64' }]] },
        { args: { cni: { ips: ['fd00::77', '10.1.0.15'] } }, runtimeConfig: { ips: ['10.1.0.78/24'] } },
      ),
      'IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.1.0.15/24',
      '1.0.0',
    );
    expect(c.requestedIPs.map(String)).toEqual(['10.1.0.15', 'fd00::77', '10.1.0.78']);
  });

  it('rejects unknown CNI_ARGS without IgnoreUnknown and bad requested IPs', () => {
    const c = conf({ subnet: '10.1.0.0/24' });
    expect(errorOf(() => loadConfig(c, 'FOO=bar', '1.0.0')).message).toBe('ARGS: unknown args ["FOO=bar"]');
    expect(errorOf(() => loadConfig({ ...c, runtimeConfig: { ips: ['x'] } }, '', '1.0.0')).message).toBe('invalid IP address x');
  });

  it('normalises routes and keeps their extra fields', () => {
    const c = loadConfig(
      conf({ subnet: '10.1.0.0/24', routes: [{ dst: '0.0.0.0/0' }, { dst: 'fd00:0::/8', gw: 'fd00::0001', mtu: 1400 }] }),
      '',
      '1.0.0',
    );
    expect(c.routes).toEqual([{ dst: '0.0.0.0/0' }, { dst: 'fd00::/8', gw: 'fd00::1', mtu: 1400 }]);
  });

  it('derives the store location leniently (for DEL/GC)', () => {
    expect(storeLocation({ name: 'n', ipam: { dataDir: '/d', subnet: 'garbage' } })).toEqual({ name: 'n', dataDir: '/d' });
    expect(storeLocation({ name: 'n' })).toEqual({ name: 'n', dataDir: '/var/lib/cni/networks' });
  });
});

describe('parseResolvConf', () => {
  it('reads nameserver/domain/search/options and skips comments', () => {
    const text = '# c\n; c\nnameserver 10.0.0.53\nnameserver fd00::53\n  domain example\nsearch a.example b.example\noptions ndots:5 timeout:1\nbogus\n';
    expect(parseResolvConf(text)).toEqual({
      nameservers: ['10.0.0.53', 'fd00::53'],
      domain: 'example',
      search: ['a.example', 'b.example'],
      options: ['ndots:5', 'timeout:1'],
    });
    expect(parseResolvConf('')).toEqual({});
  });
});
