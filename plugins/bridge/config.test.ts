import { describe, expect, test } from 'vitest';
import { loadBridgeConf, parseVlanTrunk } from './config.ts';
import { ErrorCode, NetError } from '../../lib/errors.ts';
import { cniCodeOf } from '../skel/errors.ts';

const load = (config: Record<string, unknown>, args = '', env: Record<string, string> = { PATH: '/usr/sbin:/usr/bin' }) =>
  loadBridgeConf({ config: { name: 'net', ...config }, cniVersion: '1.0.0', args, env });

/** The error's kind, the number the skeleton prints for it, and its message. */
const errOf = (fn: () => unknown): { kind: string; code: number; msg: string } => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(NetError);
    return { kind: (err as NetError).code, code: cniCodeOf(err), msg: (err as NetError).message };
  }
  throw new Error('expected an error');
};

describe('bridge config', () => {
  test('defaults as the reference', () => {
    const c = load({ ipam: { type: 'host-local' } });
    expect(c).toMatchObject({
      bridge: 'cni0',
      isGateway: false,
      isDefaultGateway: false,
      forceAddress: false,
      ipMasq: false,
      hairpinMode: false,
      promiscMode: false,
      vlan: 0,
      vlanTrunk: [],
      preserveDefaultVlan: false,
      macspoofchk: false,
      enableDad: false,
      disableContainerInterface: false,
      portIsolation: false,
      ipamType: 'host-local',
      mtu: undefined,
      mac: undefined,
      dns: undefined,
    });
  });

  test('isDefaultGateway implies isGateway', () => {
    expect(load({ isDefaultGateway: true }).isGateway).toBe(true);
  });

  test('empty ipam object means L2 only', () => {
    expect(load({ ipam: {} }).ipamType).toBeUndefined();
    expect(load({}).ipamType).toBeUndefined();
  });

  test.each([
    [{ hairpinMode: true, promiscMode: true }, 'cannot set hairpin mode and promiscuous mode at the same time.'],
    [{ vlan: 5000 }, 'invalid VLAN ID 5000 (must be between 0 and 4094)'],
    [{ vlan: -1 }, 'invalid VLAN ID -1 (must be between 0 and 4094)'],
    [{ disableContainerInterface: true, ipam: { type: 'host-local' } }, 'cannot use IPAM when DisableContainerInterface flag is set'],
    [{ ipMasqBackend: 'pf' }, 'unrecognized ipMasqBackend "pf"'],
    [{ isGateway: 'yes' }, 'failed to load netconf: isGateway: cannot unmarshal string into a bool'],
    [{ mtu: 'big' }, 'failed to load netconf: mtu: cannot unmarshal string into an int'],
    [{ ipam: 'host-local' }, 'failed to load netconf: ipam must be an object'],
  ])('invalid config %j → code 7 "%s"', (cfg, msg) => {
    expect(errOf(() => load(cfg))).toEqual({ kind: ErrorCode.InvalidConfig, code: 7, msg });
  });

  test('ipMasqBackend explicit, and the default follows what is installed', () => {
    expect(load({ ipMasqBackend: 'nftables' }).ipMasqBackend).toBe('nftables');
    expect(load({}, '', { PATH: '/nonexistent' }).ipMasqBackend).toBe('iptables');
  });

  test('MAC precedence: runtimeConfig > args.cni.mac > CNI_ARGS', () => {
    expect(load({}, 'IgnoreUnknown=1;MAC=c2:11:22:33:44:55').mac).toBe('c2:11:22:33:44:55');
    expect(load({ args: { cni: { mac: 'c2:11:22:33:44:66' } } }, 'MAC=c2:11:22:33:44:55').mac).toBe('c2:11:22:33:44:66');
    expect(load({ args: { cni: { mac: 'c2:11:22:33:44:66' } }, runtimeConfig: { mac: 'C2-11-22-33-44-77' } }, 'MAC=c2:11:22:33:44:55').mac).toBe('c2:11:22:33:44:77');
    expect(errOf(() => load({ runtimeConfig: { mac: 'nope' } })).code).toBe(7);
  });

  test('unknown CNI_ARGS are refused unless IgnoreUnknown', () => {
    expect(errOf(() => load({}, 'FOO=bar')).msg).toBe('ARGS: unknown args ["FOO=bar"]');
    expect(load({}, 'IgnoreUnknown=1;FOO=bar').mac).toBeUndefined();
  });

  test('dns is used only when a field is set', () => {
    expect(load({ dns: {} }).dns).toBeUndefined();
    expect(load({ dns: { nameservers: ['192.0.2.53'] } }).dns).toEqual({ nameservers: ['192.0.2.53'] });
  });

  test('mtu 0 means the kernel default', () => {
    expect(load({ mtu: 0 }).mtu).toBeUndefined();
    expect(load({ mtu: 1400 }).mtu).toBe(1400);
  });
});

describe('vlanTrunk', () => {
  test.each([
    [[{ id: 101 }], [{ min: 101, max: 101 }]],
    [[{ minID: 10, maxID: 20 }, { id: 30 }], [{ min: 10, max: 20 }, { min: 30, max: 30 }]],
  ])('%j', (raw, want) => expect(parseVlanTrunk(raw)).toEqual(want));

  test.each([
    [[{ minID: 0, maxID: 5 }], 'incorrect trunk minID parameter'],
    [[{ minID: 5, maxID: 5000 }], 'incorrect trunk maxID parameter'],
    [[{ minID: 9, maxID: 5 }], 'minID is greater than maxID in trunk parameter'],
    [[{ maxID: 5 }], 'minID and maxID should be configured simultaneously, minID is missing'],
    [[{ id: 4095 }], 'incorrect trunk id parameter'],
  ])('%j → %s', (raw, msg) => expect(errOf(() => parseVlanTrunk(raw))).toEqual({ kind: ErrorCode.InvalidConfig, code: 7, msg }));
});
