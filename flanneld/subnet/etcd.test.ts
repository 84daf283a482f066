import { describe, expect, it } from 'vitest';
import { EtcdOptionsError, etcdClientOptions, makeSubnetKey, parseSubnetKey, sameOwner } from './etcd.ts';
import { leaseAttrsFromJSON, leaseAttrsToJSON } from './types.ts';
import { IPPrefix } from '../../lib/ip/index.ts';

describe('subnet keys (upstream layout)', () => {
  it('makes and parses v4, dual-stack and IPv6-only keys', () => {
    const v4 = IPPrefix.mustParse('10.5.52.0/24');
    const v6 = IPPrefix.mustParse('fc00::/64');
    expect(makeSubnetKey(v4, undefined)).toBe('10.5.52.0-24');
    expect(makeSubnetKey(v4, v6)).toBe('10.5.52.0-24&fc00::-64');
    expect(makeSubnetKey(undefined, v6)).toBe('0.0.0.0-0&fc00::-64');
    expect(parseSubnetKey('10.5.52.0-24')).toEqual({ subnet: v4 });
    expect(parseSubnetKey('10.5.52.0-24&fc00::-64')).toEqual({ subnet: v4, ipv6Subnet: v6 });
    expect(parseSubnetKey('0.0.0.0-0&fc00::-64')).toEqual({ ipv6Subnet: v6 });
    expect(parseSubnetKey('garbage')).toBeUndefined();
    expect(parseSubnetKey('10.5.52.0-99')).toBeUndefined();
  });
});

describe('lease value JSON', () => {
  it('matches upstream byte for byte and reads it back', () => {
    const json = '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}';
    const attrs = leaseAttrsFromJSON(json);
    expect(attrs).toEqual({ publicIP: '192.168.64.3', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: 'c6:d2:32:6f:8f:44' } });
    expect(leaseAttrsToJSON(attrs)).toBe(json);
    // UDP leases carry only PublicIP; IPv6-only ones an unset PublicIP.
    expect(leaseAttrsToJSON({ publicIP: '198.51.100.1' })).toBe('{"PublicIP":"198.51.100.1","PublicIPv6":null}');
    expect(leaseAttrsToJSON({ publicIPv6: '2001:db8::1', backendV6Data: { VNI: 1 } })).toBe('{"PublicIP":"0.0.0.0","PublicIPv6":"2001:db8::1","BackendV6Data":{"VNI":1}}');
    expect(leaseAttrsFromJSON('{"publicip":"0.0.0.0","publicipv6":"2001:db8::1"}')).toEqual({ publicIPv6: '2001:db8::1' });
  });
});

describe('etcd client options', () => {
  it('takes endpoints and auth; rejects half-given pairs and bad endpoints', () => {
    expect(etcdClientOptions({ endpoints: ['http://127.0.0.1:2379/', ' https://etcd:2379'], username: 'u', password: 'p' })).toMatchObject({
      hosts: ['http://127.0.0.1:2379', 'https://etcd:2379'],
      auth: { username: 'u', password: 'p' },
    });
    expect(() => etcdClientOptions({ endpoints: [] })).toThrow(EtcdOptionsError);
    expect(() => etcdClientOptions({ endpoints: ['http://a b'] })).toThrow(EtcdOptionsError);
    expect(() => etcdClientOptions({ keyFile: '/k' })).toThrow('--etcd-keyfile and --etcd-certfile must be given together');
    expect(() => etcdClientOptions({ username: 'u' })).toThrow('--etcd-username and --etcd-password must be given together');
    expect(() => etcdClientOptions({ caFile: '/nonexistent/ca.pem' })).toThrow(/failed to read etcd CA file \/nonexistent\/ca.pem/);
  });
});

describe('sameOwner', () => {
  it('matches by the IPv4 public IP, or the IPv6 one for an IPv6-only node', () => {
    const mine = { publicIP: '192.0.2.12', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '0a:00:00:00:00:01' } };
    expect(sameOwner({ publicIP: '192.0.2.12' }, mine)).toBe(true);
    expect(sameOwner({ publicIP: '192.0.2.13', backendType: 'vxlan' }, mine)).toBe(false);
    expect(sameOwner({}, mine)).toBe(false);
    expect(sameOwner({ publicIPv6: '2001:db8::1' }, { publicIPv6: '2001:db8::1' })).toBe(true);
    expect(sameOwner({ publicIPv6: '2001:db8::2' }, { publicIPv6: '2001:db8::1' })).toBe(false);
    expect(sameOwner({}, {})).toBe(false);
  });
});
