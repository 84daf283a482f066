import { describe, expect, it } from 'vitest';
import { IPAddr, IPPrefix } from '../lib/ip/index.ts';
import { FakeHandle } from '../lib/netlink/fake.ts';
import { IFA_F_TEMPORARY, RT_SCOPE_HOST, RT_SCOPE_LINK } from '../lib/netlink/constants.ts';
import type { Addr } from '../lib/netlink/index.ts';
import { InterfaceSelectionError, selectExternalInterface } from './iface.ts';
import type { IfaceNetlink, IfaceOptions } from './iface.ts';

const ip = (s: string): IPAddr => IPAddr.mustParse(s);
const pfx = (s: string): IPPrefix => IPPrefix.mustParse(s);

const pick = (h: FakeHandle): IfaceNetlink => ({
  linkList: () => h.linkList(),
  addrList: (f) => h.addrList(f),
  routeList: (f) => h.routeList(f),
  routeGet: (d) => h.routeGet(d),
});

const base: IfaceOptions = { iface: [], ifaceRegex: [], ifaceCanReach: '', publicIP: '', publicIPv6: '', enableIPv4: true, enableIPv6: false };

/**
 * lo; eth0 (1500) 192.0.2.10/24 + fe80::1 + 2001:db8::10/64 with both default routes; eth1 (9000)
 * 198.51.100.7/24 + 2001:db8:1::7/64; eth2 (1400) 203.0.113.4/24. Indexes 2, 3, 4.
 */
async function world(): Promise<FakeHandle> {
  const h = new FakeHandle();
  await h.addrAdd(1, { address: pfx('127.0.0.1/8'), scope: RT_SCOPE_HOST });
  await h.linkSetUp(1);
  const addrs: Record<string, [number, string[]]> = {
    eth0: [1500, ['192.0.2.10/24', 'fe80::1/64', '2001:db8::10/64']],
    eth1: [9000, ['198.51.100.7/24', '2001:db8:1::7/64']],
    eth2: [1400, ['203.0.113.4/24']],
  };
  for (const [name, [mtu, list]] of Object.entries(addrs)) {
    await h.linkAdd({ name, kind: 'dummy', mtu, up: true });
    const l = await h.linkByName(name);
    for (const a of list) await h.addrAdd(l.index, { address: pfx(a), ...(a.startsWith('fe80') ? { scope: RT_SCOPE_LINK } : {}) });
  }
  await h.routeAdd({ family: 4, dst: IPPrefix.any(4), gw: ip('192.0.2.1'), oif: 2 });
  await h.routeAdd({ family: 6, dst: IPPrefix.any(6), gw: ip('2001:db8::1'), oif: 2 });
  return h;
}

describe('selectExternalInterface', () => {
  it('uses the default-route interface with its address and MTU', async () => {
    const ext = await selectExternalInterface(await world(), base);
    expect(ext).toEqual({ index: 2, name: 'eth0', mtu: 1500, ifaceAddr: ip('192.0.2.10'), extAddr: ip('192.0.2.10') });
  });

  it('dual-stack: takes v4 and v6 addresses; rejects differing default-route interfaces', async () => {
    const w = await world();
    const ext = await selectExternalInterface(w, { ...base, enableIPv6: true });
    expect(String(ext.ifaceV6Addr)).toBe('2001:db8::10');
    expect(String(ext.extV6Addr)).toBe('2001:db8::10');
    await w.routeDel({ family: 6, dst: IPPrefix.any(6) });
    await w.routeAdd({ family: 6, dst: IPPrefix.any(6), gw: ip('2001:db8:1::1'), oif: 3 });
    await expect(selectExternalInterface(w, { ...base, enableIPv6: true })).rejects.toBeInstanceOf(InterfaceSelectionError);
  });

  it('--iface by name or IP, first match in order wins', async () => {
    expect((await selectExternalInterface(await world(), { ...base, iface: ['nope', 'eth1'] })).name).toBe('eth1');
    const byIP = await selectExternalInterface(await world(), { ...base, iface: ['203.0.113.4', 'eth1'] });
    expect([byIP.name, String(byIP.ifaceAddr), byIP.mtu]).toEqual(['eth2', '203.0.113.4', 1400]);
  });

  it('--iface-regex matches IPs before names and runs after --iface', async () => {
    // "eth" matches names only; the IP regex must win for a regex that matches both.
    const r = await selectExternalInterface(await world(), { ...base, ifaceRegex: ['^198\\.51\\.'] });
    expect(r.name).toBe('eth1');
    const byName = await selectExternalInterface(await world(), { ...base, ifaceRegex: ['eth2$'] });
    expect(byName.name).toBe('eth2');
    const ifaceFirst = await selectExternalInterface(await world(), { ...base, iface: ['eth0'], ifaceRegex: ['eth2$'] });
    expect(ifaceFirst.name).toBe('eth0');
    const fallThrough = await selectExternalInterface(await world(), { ...base, iface: ['missing'], ifaceRegex: ['eth2$'] });
    expect(fallThrough.name).toBe('eth2');
  });

  it('--iface-can-reach uses the routed interface and its source address', async () => {
    const r = await selectExternalInterface(await world(), { ...base, ifaceCanReach: '198.51.100.200' });
    expect([r.name, String(r.ifaceAddr)]).toEqual(['eth1', '198.51.100.7']);
  });

  it('fails when explicit choices match nothing, without falling back to the default route', async () => {
    await expect(selectExternalInterface(await world(), { ...base, iface: ['nope'], ifaceRegex: ['^10\\.'] })).rejects.toBeInstanceOf(InterfaceSelectionError);
  });

  it('--public-ip overrides the published address; a local public IP picks its interface', async () => {
    const nat = await selectExternalInterface(await world(), { ...base, publicIP: '203.0.113.99' });
    expect([nat.name, String(nat.ifaceAddr), String(nat.extAddr)]).toEqual(['eth0', '192.0.2.10', '203.0.113.99']);
    const local = await selectExternalInterface(await world(), { ...base, publicIP: '198.51.100.7' });
    expect([local.name, String(local.ifaceAddr), String(local.extAddr)]).toEqual(['eth1', '198.51.100.7', '198.51.100.7']);
  });

  it('rejects an interface with MTU 0 and one lacking an address of an enabled family', async () => {
    const w = await world();
    await w.linkSetMtu(2, 0);
    await expect(selectExternalInterface(w, base)).rejects.toThrow(/MTU/);
    await expect(selectExternalInterface(await world(), { ...base, iface: ['eth2'], enableIPv6: true })).rejects.toThrow(/IPv6/);
  });

  it('skips temporary and link-local IPv6 addresses', async () => {
    const w = await world();
    // A privacy address (the kernel makes those, not a request), listed first.
    const temporary: Addr = { index: 2, family: 6, address: pfx('2001:db8::abcd/64'), local: undefined, label: undefined, scope: 0, flags: IFA_F_TEMPORARY };
    const nl: IfaceNetlink = { ...pick(w), addrList: async (f) => [temporary, ...(await w.addrList(f))] };
    const r = await selectExternalInterface(nl, { ...base, enableIPv4: false, enableIPv6: true });
    expect(String(r.ifaceV6Addr)).toBe('2001:db8::10');
  });

  it('an invalid --public-ip is refused, not published', async () => {
    await expect(selectExternalInterface(await world(), { ...base, publicIP: '203.0.113.300' })).rejects.toThrow(/invalid public IP address: 203\.0\.113\.300/);
  });

  it('errors without a default route', async () => {
    const w = await world();
    await w.routeDel({ family: 4, dst: IPPrefix.any(4) });
    await expect(selectExternalInterface(w, base)).rejects.toBeInstanceOf(InterfaceSelectionError);
  });
});
