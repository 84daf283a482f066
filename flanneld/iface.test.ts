import { describe, expect, it } from 'vitest';
import { InterfaceSelectionError, selectExternalInterface } from './iface.ts';
import type { IfaceNetlink, IfaceOptions } from './iface.ts';
import type { Addr, Link, Route } from '../lib/netlink/index.ts';

function link(index: number, name: string, mtu = 1500): Link {
  return {
    index, name, mtu, kind: undefined, mac: undefined, flags: 0, up: true, operState: 'up', master: undefined,
    parentIndex: undefined, linkNetnsId: undefined, promiscuity: 0, txqlen: undefined, vxlan: undefined, bridge: undefined,
    slaveKind: undefined, bridgePort: undefined,
  };
}
function addr(index: number, cidr: string, extra: Partial<Addr> = {}): Addr {
  return { index, family: cidr.includes(':') ? 6 : 4, address: cidr, local: undefined, label: undefined, scope: 0, flags: 0, ...extra };
}

class FakeNetlink implements IfaceNetlink {
  constructor(
    public links: Link[],
    public addrs: Addr[],
    public routes: Route[],
  ) {}
  async linkList(): Promise<Link[]> {
    return this.links;
  }
  async addrList(): Promise<Addr[]> {
    return this.addrs;
  }
  async routeList(filter: { family?: 4 | 6 } = {}): Promise<Route[]> {
    return this.routes.filter((r) => filter.family === undefined || r.family === filter.family);
  }
  async routeGet(dst: string): Promise<Route> {
    // Longest-prefix match over the fake's routes, IPv4 only (enough for the tests).
    const toN = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
    const hits = this.routes
      .filter((r) => r.family === 4)
      .filter((r) => {
        const [net, len] = r.dst.split('/') as [string, string];
        const l = Number(len);
        const mask = l === 0 ? 0 : (~0 << (32 - l)) >>> 0;
        return ((toN(net) & mask) >>> 0) === ((toN(dst) & mask) >>> 0);
      })
      .sort((a, b) => Number(b.dst.split('/')[1]) - Number(a.dst.split('/')[1]));
    if (!hits[0]) throw Object.assign(new Error('network unreachable'), { errno: 101 });
    return { ...hits[0], dst: `${dst}/32` };
  }
}

const base: IfaceOptions = { iface: [], ifaceRegex: [], ifaceCanReach: '', publicIP: '', publicIPv6: '', enableIPv4: true, enableIPv6: false };

function world(): FakeNetlink {
  return new FakeNetlink(
    [link(1, 'lo', 65536), link(2, 'eth0', 1500), link(3, 'eth1', 9000), link(4, 'eth2', 1400)],
    [
      addr(1, '127.0.0.1/8', { scope: 254 }),
      addr(2, '192.0.2.10/24'),
      addr(2, 'fe80::1/64', { scope: 253 }),
      addr(2, '2001:db8::10/64'),
      addr(3, '198.51.100.7/24'),
      addr(3, '2001:db8:1::7/64'),
      addr(4, '203.0.113.4/24'),
    ],
    [
      { family: 4, dst: '0.0.0.0/0', gw: '192.0.2.1', oif: 2, type: 1 },
      { family: 4, dst: '192.0.2.0/24', oif: 2, type: 1 },
      { family: 4, dst: '198.51.100.0/24', oif: 3, type: 1, prefsrc: '198.51.100.7' },
      { family: 6, dst: '::/0', gw: '2001:db8::1', oif: 2, type: 1 },
    ],
  );
}

describe('selectExternalInterface', () => {
  it('uses the default-route interface with its address and MTU', async () => {
    const ext = await selectExternalInterface(world(), base);
    expect(ext).toEqual({ index: 2, name: 'eth0', mtu: 1500, ifaceAddr: '192.0.2.10', extAddr: '192.0.2.10' });
  });

  it('dual-stack: takes v4 and v6 addresses; rejects differing default-route interfaces', async () => {
    const w = world();
    const ext = await selectExternalInterface(w, { ...base, enableIPv6: true });
    expect(ext.ifaceV6Addr).toBe('2001:db8::10');
    expect(ext.extV6Addr).toBe('2001:db8::10');
    w.routes = w.routes.map((r) => (r.family === 6 ? { ...r, oif: 3 } : r));
    await expect(selectExternalInterface(w, { ...base, enableIPv6: true })).rejects.toBeInstanceOf(InterfaceSelectionError);
  });

  it('--iface by name or IP, first match in order wins', async () => {
    expect((await selectExternalInterface(world(), { ...base, iface: ['nope', 'eth1'] })).name).toBe('eth1');
    const byIP = await selectExternalInterface(world(), { ...base, iface: ['203.0.113.4', 'eth1'] });
    expect([byIP.name, byIP.ifaceAddr, byIP.mtu]).toEqual(['eth2', '203.0.113.4', 1400]);
  });

  it('--iface-regex matches IPs before names and runs after --iface', async () => {
    // "eth" matches names only; the IP regex must win for a regex that matches both.
    const r = await selectExternalInterface(world(), { ...base, ifaceRegex: ['^198\\.51\\.'] });
    expect(r.name).toBe('eth1');
    const byName = await selectExternalInterface(world(), { ...base, ifaceRegex: ['eth2$'] });
    expect(byName.name).toBe('eth2');
    const ifaceFirst = await selectExternalInterface(world(), { ...base, iface: ['eth0'], ifaceRegex: ['eth2$'] });
    expect(ifaceFirst.name).toBe('eth0');
    const fallThrough = await selectExternalInterface(world(), { ...base, iface: ['missing'], ifaceRegex: ['eth2$'] });
    expect(fallThrough.name).toBe('eth2');
  });

  it('--iface-can-reach uses the routed interface and its source address', async () => {
    const r = await selectExternalInterface(world(), { ...base, ifaceCanReach: '198.51.100.200' });
    expect([r.name, r.ifaceAddr]).toEqual(['eth1', '198.51.100.7']);
  });

  it('fails when explicit choices match nothing, without falling back to the default route', async () => {
    await expect(selectExternalInterface(world(), { ...base, iface: ['nope'], ifaceRegex: ['^10\\.'] })).rejects.toBeInstanceOf(InterfaceSelectionError);
  });

  it('--public-ip overrides the published address; a local public IP picks its interface', async () => {
    const nat = await selectExternalInterface(world(), { ...base, publicIP: '203.0.113.99' });
    expect([nat.name, nat.ifaceAddr, nat.extAddr]).toEqual(['eth0', '192.0.2.10', '203.0.113.99']);
    const local = await selectExternalInterface(world(), { ...base, publicIP: '198.51.100.7' });
    expect([local.name, local.ifaceAddr, local.extAddr]).toEqual(['eth1', '198.51.100.7', '198.51.100.7']);
  });

  it('rejects an interface with MTU 0 and one lacking an address of an enabled family', async () => {
    const w = world();
    w.links[1] = link(2, 'eth0', 0);
    await expect(selectExternalInterface(w, base)).rejects.toThrow(/MTU/);
    await expect(selectExternalInterface(world(), { ...base, iface: ['eth2'], enableIPv6: true })).rejects.toThrow(/IPv6/);
  });

  it('skips temporary and link-local IPv6 addresses', async () => {
    const w = world();
    w.addrs.unshift(addr(2, '2001:db8::abcd/64', { flags: 0x01 }));
    const r = await selectExternalInterface(w, { ...base, enableIPv4: false, enableIPv6: true });
    expect(r.ifaceV6Addr).toBe('2001:db8::10');
  });

  it('errors without a default route', async () => {
    const w = world();
    w.routes = w.routes.filter((r) => r.dst !== '0.0.0.0/0');
    await expect(selectExternalInterface(w, base)).rejects.toBeInstanceOf(InterfaceSelectionError);
  });
});
