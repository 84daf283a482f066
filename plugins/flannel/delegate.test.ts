import { describe, expect, test } from 'vitest';
import { cniCodeOf } from '../skel/errors.ts';
import { ErrCode } from '../skel/types.ts';
import { buildDelegate, DEFAULT_DATA_DIR, DEFAULT_SUBNET_FILE, FlannelConfigError, parseFlannelConf, renderDelegate } from './delegate.ts';
import { parseFlannelSubnetEnv } from './subnet-env.ts';

// Test vectors from flannel-io/cni-plugin flannel_linux_test.go.
const V4 = 'FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n';
const V6 = 'FLANNEL_IPV6_NETWORK=fc00::/48\nFLANNEL_IPV6_SUBNET=fc00::1/64\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n';
const DUAL = 'FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_IPV6_NETWORK=fc00::/48\nFLANNEL_IPV6_SUBNET=fc00::1/64\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n';
const V4_TWO = 'FLANNEL_NETWORK=10.1.0.0/16,192.168.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n';
const USER_ROUTES = [{ dst: '10.96.0.0/12' }, { dst: '192.168.244.0/24', gw: '10.1.17.20' }];

function render(conf: Record<string, unknown>, envText: string): string {
  const c = parseFlannelConf({ name: 'cni-flannel', type: 'flannel', ...conf });
  return renderDelegate(buildDelegate(c, parseFlannelSubnetEnv('subnet.env', envText))).toString();
}

describe('flannel config', () => {
  test('defaults', () => {
    const c = parseFlannelConf({ name: 'cni-flannel', type: 'flannel' });
    expect(c.subnetFile).toBe(DEFAULT_SUBNET_FILE);
    expect(c.dataDir).toBe(DEFAULT_DATA_DIR);
    expect(c.cniVersion).toBe('');
    expect(c.delegate).toBeUndefined();
    expect(parseFlannelConf({ name: 'n', subnetFile: '/x/s.env', dataDir: '/d' })).toMatchObject({ subnetFile: '/x/s.env', dataDir: '/d' });
  });

  test('wrongly typed fields are config errors (code 7)', () => {
    expect(() => parseFlannelConf({ name: 'n', subnetFile: 5 })).toThrow(
      'failed to load netconf: json: cannot unmarshal number into Go struct field NetConf.subnetFile of type string',
    );
    expect(() => parseFlannelConf({ name: 'n', delegate: 'bridge' })).toThrow(FlannelConfigError);
    try {
      parseFlannelConf({ name: 'n', ipam: [] });
      expect.unreachable();
    } catch (e) {
      expect(cniCodeOf(e)).toBe(ErrCode.InvalidNetworkConfig);
    }
  });
});

describe('delegate rendering (golden, byte-exact with upstream Go map marshalling)', () => {
  test('IPv4', () => {
    expect(render({}, V4)).toBe(
      '{"ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.1.17.0/24"}]],"routes":[{"dst":"10.1.0.0/16"}],"type":"host-local"},"isGateway":true,"mtu":1472,"name":"cni-flannel","type":"bridge"}',
    );
  });

  test('IPv4 with two networks', () => {
    expect(render({}, V4_TWO)).toBe(
      '{"ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.1.17.0/24"}]],"routes":[{"dst":"10.1.0.0/16"},{"dst":"192.168.0.0/16"}],"type":"host-local"},"isGateway":true,"mtu":1472,"name":"cni-flannel","type":"bridge"}',
    );
  });

  test('IPv6', () => {
    expect(render({}, V6)).toBe(
      '{"ipMasq":false,"ipam":{"ranges":[[{"subnet":"fc00::/64"}]],"routes":[{"dst":"fc00::/48"}],"type":"host-local"},"isGateway":true,"mtu":1472,"name":"cni-flannel","type":"bridge"}',
    );
  });

  test('dual stack', () => {
    expect(render({}, DUAL)).toBe(
      '{"ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.1.17.0/24"}],[{"subnet":"fc00::/64"}]],"routes":[{"dst":"10.1.0.0/16"},{"dst":"fc00::/48"}],"type":"host-local"},"isGateway":true,"mtu":1472,"name":"cni-flannel","type":"bridge"}',
    );
  });

  test('user ipam: type and extra keys kept, user routes first', () => {
    const ipam = { type: 'my-ipam', 'unknown-param': 'unknown-value', routes: USER_ROUTES };
    expect(render({ ipam }, V4)).toBe(
      '{"ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.1.17.0/24"}]],"routes":[{"dst":"10.96.0.0/12"},{"dst":"192.168.244.0/24","gw":"10.1.17.20"},{"dst":"10.1.0.0/16"}],"type":"my-ipam","unknown-param":"unknown-value"},"isGateway":true,"mtu":1472,"name":"cni-flannel","type":"bridge"}',
    );
    // without a type, host-local; dual stack adds both networks after the user's routes
    const ipam2 = { 'unknown-param': 'unknown-value', routes: USER_ROUTES };
    expect(render({ ipam: ipam2 }, DUAL)).toBe(
      '{"ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.1.17.0/24"}],[{"subnet":"fc00::/64"}]],"routes":[{"dst":"10.96.0.0/12"},{"dst":"192.168.244.0/24","gw":"10.1.17.20"},{"dst":"10.1.0.0/16"},{"dst":"fc00::/48"}],"type":"host-local","unknown-param":"unknown-value"},"isGateway":true,"mtu":1472,"name":"cni-flannel","type":"bridge"}',
    );
  });

  test('user routes are re-marshalled like Go types.Route: struct order, unknown keys and zero ints dropped', () => {
    const ipam = {
      dataDir: '/tmp/hl',
      routes: [{ zzz: 1, gw: 'FC00::0001', dst: 'fc00:0:0:0::/48', mtu: 0, priority: 5, table: 0 }],
    };
    expect(render({ ipam }, V6)).toBe(
      '{"ipMasq":false,"ipam":{"dataDir":"/tmp/hl","ranges":[[{"subnet":"fc00::/64"}]],"routes":[{"dst":"fc00::/48","gw":"fc00::1","priority":5,"table":0},{"dst":"fc00::/48"}],"type":"host-local"},"isGateway":true,"mtu":1472,"name":"cni-flannel","type":"bridge"}',
    );
    expect(() => render({ ipam: { routes: [{ dst: '10.96.0.0' }] } }, V4)).toThrow(
      'failed to assemble Delegate IPAM: failed to read IPAM routes: failed to parse ipam.routes: invalid CIDR address: 10.96.0.0',
    );
    expect(() => render({ ipam: { routes: [{ dst: '10.96.0.0/12', gw: 'x' }] } }, V4)).toThrow('invalid IP address: x');
  });

  test('user delegate fields (kube-flannel.yml conflist) and cniVersion', () => {
    expect(render({ cniVersion: '0.3.1', delegate: { hairpinMode: true, isDefaultGateway: true } }, V4)).toBe(
      '{"cniVersion":"0.3.1","hairpinMode":true,"ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.1.17.0/24"}]],"routes":[{"dst":"10.1.0.0/16"}],"type":"host-local"},"isDefaultGateway":true,"isGateway":true,"mtu":1472,"name":"cni-flannel","type":"bridge"}',
    );
  });

  test('user delegate values win over subnet.env; FLANNEL_IPMASQ=false turns masquerading on in the bridge', () => {
    const off = V4.replace('FLANNEL_IPMASQ=true', 'FLANNEL_IPMASQ=false');
    expect(JSON.parse(render({}, off))).toMatchObject({ ipMasq: true });
    expect(JSON.parse(render({ delegate: { ipMasq: false, mtu: 1400, isGateway: false } }, off))).toMatchObject({
      ipMasq: false,
      mtu: 1400,
      isGateway: false,
    });
  });

  test('non-bridge delegates get no isGateway; nested user maps are key-sorted; runtimeConfig is copied', () => {
    const out = render(
      {
        delegate: { type: 'ipvlan', master: 'eth0', nested: { z: 1, a: { y: 2, b: 3 } }, runtimeConfig: { old: true } },
        runtimeConfig: { portMappings: [{ hostPort: 80, containerPort: 8080, protocol: 'tcp' }] },
      },
      V4,
    );
    expect(out).toBe(
      '{"ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.1.17.0/24"}]],"routes":[{"dst":"10.1.0.0/16"}],"type":"host-local"},"master":"eth0","mtu":1472,"name":"cni-flannel","nested":{"a":{"b":3,"y":2},"z":1},"runtimeConfig":{"portMappings":[{"containerPort":8080,"hostPort":80,"protocol":"tcp"}]},"type":"ipvlan"}',
    );
  });

  test('Go HTML escaping in strings', () => {
    expect(render({ delegate: { note: '<a&b>' } }, V4)).toContain('"note":"\\u003ca\\u0026b\\u003e"');
  });

  test('delegate validation with upstream messages', () => {
    expect(() => render({ delegate: { name: 'x' } }, V4)).toThrow("'delegate' dictionary must not have 'name' field, it'll be set by flannel");
    expect(() => render({ delegate: { ipam: {} } }, V4)).toThrow("'delegate' dictionary must not have 'ipam' field, it'll be set by flannel");
    expect(() => render({ delegate: { type: 5 } }, V4)).toThrow("'delegate' dictionary, if present, must have (string) 'type' field");
  });
});
