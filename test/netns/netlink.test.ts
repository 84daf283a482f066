import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { execFileSync } from 'node:child_process';
import { World } from '../harness/world.ts';
import { Handle, LinkNotFoundError, rt, type NetlinkHandle } from '../../lib/netlink/index.ts';
import { FakeHandle } from '../../lib/netlink/fake.ts';
import { NetnsNotFoundError, NotANetnsError, openNetns } from '../../lib/netns/index.ts';
import { errnoName, errnoOf, isExists } from '../../lib/errors.ts';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';

const ip = (s: string): IPAddr => IPAddr.mustParse(s);
const pfx = (s: string): IPPrefix => IPPrefix.mustParse(s);

const ipIn = (ns: string, ...args: string[]): string => execFileSync('ip', ['-netns', ns, ...args], { encoding: 'utf8' });

describe('netlink handle in a namespace', () => {
  const w = new World('nl');
  let a: string;
  let b: string;
  let ha: Handle;
  let hb: Handle;
  beforeAll(() => {
    a = w.netns('a');
    b = w.netns('b');
    ha = w.handle(a);
    hb = w.handle(b);
  });
  afterAll(() => w.cleanup());

  test('netns open distinguishes missing path from non-netns path', () => {
    expect(() => openNetns(`${a}-missing`)).toThrow(NetnsNotFoundError);
    expect(() => openNetns('/etc/hostname')).toThrow(NotANetnsError);
    expect(() => openNetns('/proc/self/ns/uts')).toThrow(NotANetnsError);
  });

  test('a fresh namespace has only lo, down', async () => {
    const links = await ha.linkList();
    expect(links.map((l) => l.name)).toEqual(['lo']);
    expect(links[0]!.up).toBe(false);
    await expect(ha.linkByName('nope0')).rejects.toBeInstanceOf(LinkNotFoundError);
  });

  test('bridge, veth with peer created in another namespace, master, hairpin, isolation, mtu, mac', async () => {
    await ha.linkAdd({ name: 'br0', kind: 'bridge', mtu: 1400, up: true });
    await expect(ha.linkAdd({ name: 'br0', kind: 'bridge' })).rejects.toSatisfy(isExists);
    const br = await ha.linkByName('br0');
    expect(br.kind).toBe('bridge');
    expect(br.mtu).toBe(1400);
    await ha.linkAdd({ name: 'vethx', kind: 'veth', mtu: 1400, veth: { peerName: 'eth0', peerNetnsFd: hb.nsFd!, peerMac: '0a:58:0a:00:00:05' } });
    const host = await ha.linkByName('vethx');
    const peer = await hb.linkByName('eth0');
    expect(peer.mac).toBe('0a:58:0a:00:00:05');
    expect(peer.mtu).toBe(1400);
    expect(peer.parentIndex).toBe(host.index);
    await ha.linkSetMaster(host.index, br.index);
    await ha.linkSetUp(host.index);
    await ha.linkSetBridgePort(host.index, { hairpin: true, isolated: true });
    const host2 = await ha.linkByName('vethx');
    expect(host2.master).toBe(br.index);
    expect(host2.bridgePort).toMatchObject({ hairpin: true, isolated: true });
    // iproute2 agrees
    const detail = ipIn(`${w.prefix}-a`, '-d', 'link', 'show', 'vethx');
    expect(detail).toMatch(/hairpin on/);
    expect(detail).toMatch(/isolated on/);
    await ha.linkSetPromisc(br.index, true);
    expect((await ha.linkByIndex(br.index)).flags & rt.IFF_PROMISC).toBeTruthy();
    await ha.linkSetMac(br.index, '02:00:00:00:00:01');
    expect((await ha.linkByIndex(br.index)).mac).toBe('02:00:00:00:00:01');
  });

  test('addresses, routes (onlink, metric, table, protocol), neighbours, fdb', async () => {
    const br = await ha.linkByName('br0');
    await ha.addrAdd(br.index, { address: pfx('10.250.0.1/24'), broadcast: 'auto' });
    await ha.addrAdd(br.index, { address: pfx('fd00:250::1/64'), noDad: true });
    const addrs = await ha.addrList({ index: br.index });
    expect(addrs.map((x) => String(x.address)).sort()).toEqual(expect.arrayContaining(['10.250.0.1/24', 'fd00:250::1/64']));
    expect(ipIn(`${w.prefix}-a`, 'addr', 'show', 'br0')).toMatch(/inet 10\.250\.0\.1\/24 brd 10\.250\.0\.255/);
    await ha.routeAdd({ family: 4, dst: pfx('10.251.0.0/24'), gw: ip('10.250.0.9'), oif: br.index, priority: 7, protocol: rt.RTPROT_STATIC });
    await ha.routeReplace({ family: 4, dst: pfx('10.252.0.0/24'), gw: ip('10.252.0.0'), oif: br.index, onlink: true });
    await ha.routeAdd({ family: 4, dst: pfx('10.253.0.0/16'), oif: br.index, table: 1000 });
    const routes = await ha.routeList({ family: 4 });
    expect(routes).toContainEqual(expect.objectContaining({ dst: pfx('10.251.0.0/24'), gw: ip('10.250.0.9'), priority: 7, protocol: rt.RTPROT_STATIC }));
    expect(routes).toContainEqual(expect.objectContaining({ dst: pfx('10.252.0.0/24'), gw: ip('10.252.0.0'), onlink: true }));
    expect(await ha.routeList({ family: 4, table: 1000 })).toContainEqual(expect.objectContaining({ dst: pfx('10.253.0.0/16'), scope: rt.RT_SCOPE_LINK }));
    expect(ipIn(`${w.prefix}-a`, 'route', 'show', '10.252.0.0/24')).toMatch(/via 10\.252\.0\.0 dev br0 onlink/);
    await ha.routeDel({ family: 4, dst: pfx('10.251.0.0/24'), gw: ip('10.250.0.9'), oif: br.index, priority: 7 });
    expect((await ha.routeList({ family: 4 })).find((r) => String(r.dst) === '10.251.0.0/24')).toBeUndefined();
    expect((await ha.routeGet(ip('10.250.0.77'))).oif).toBe(br.index);

    await ha.neighSet({ index: br.index, ip: ip('10.250.0.50'), mac: '02:aa:bb:cc:dd:ee' });
    const n = (await ha.neighList({ family: 4, index: br.index })).find((x) => String(x.ip) === '10.250.0.50');
    expect(n).toMatchObject({ mac: '02:aa:bb:cc:dd:ee', state: rt.NUD_PERMANENT });
    await ha.neighDel({ index: br.index, ip: ip('10.250.0.50'), mac: '02:aa:bb:cc:dd:ee' });
    expect((await ha.neighList({ family: 4, index: br.index })).find((x) => String(x.ip) === '10.250.0.50')).toBeUndefined();
  });

  test('vxlan device with local/port/vni, and static fdb entries', async () => {
    const veth = await hb.linkByName('eth0');
    await hb.addrAdd(veth.index, { address: pfx('192.0.2.10/24') });
    await hb.linkAdd({ name: 'flannel.7', kind: 'vxlan', mtu: 1350, mac: '0e:00:00:00:00:07', vxlan: { vni: 7, local: ip('192.0.2.10'), link: veth.index, port: 8472, learning: false } });
    const vx = await hb.linkByName('flannel.7');
    expect(vx.kind).toBe('vxlan');
    expect(vx.vxlan).toMatchObject({ vni: 7, local: ip('192.0.2.10'), link: veth.index, port: 8472, learning: false });
    expect(ipIn(`${w.prefix}-b`, '-d', 'link', 'show', 'flannel.7')).toMatch(/vxlan id 7 local 192\.0\.2\.10 dev eth0 .*dstport 8472 nolearning/);
    await hb.neighSet({ index: vx.index, fdb: true, ip: ip('192.0.2.20'), mac: '0e:00:00:00:00:08' });
    const fdb = (await hb.neighList({ family: 'bridge', index: vx.index })).find((x) => x.mac === '0e:00:00:00:00:08');
    expect(fdb).toMatchObject({ ip: ip('192.0.2.20'), state: rt.NUD_PERMANENT });
    expect(execFileSync('bridge', ['-netns', `${w.prefix}-b`, 'fdb', 'show', 'dev', 'flannel.7'], { encoding: 'utf8' })).toMatch(
      /0e:00:00:00:00:08 dst 192\.0\.2\.20 self permanent/,
    );
    await hb.linkDel(vx.index);
    await expect(hb.linkByName('flannel.7')).rejects.toBeInstanceOf(LinkNotFoundError);
  });

  test('link events are delivered to a subscription', async () => {
    const seen: string[] = [];
    const sub = ha.subscribe([rt.RTNLGRP_LINK], (type, obj) => {
      if ('name' in obj && obj.name === 'br9') seen.push(type === rt.RTM_DELLINK ? 'del' : 'new');
    });
    try {
      await ha.linkAdd({ name: 'br9', kind: 'bridge' });
      const br9 = await ha.linkByName('br9');
      await ha.linkDel(br9.index);
      await new Promise((r) => setTimeout(r, 100));
      expect(seen).toContain('new');
      expect(seen).toContain('del');
    } finally {
      sub.close();
    }
  });
});

describe('netlink dumps on one socket', () => {
  const w = new World('nd');
  afterAll(() => w.cleanup());
  test('concurrent dumps on one handle are queued, not refused with EBUSY', async () => {
    const h = w.handle(w.netns('a'));
    for (let i = 0; i < 20; i++) await h.linkAdd({ name: `br${i}`, kind: 'bridge' });
    const results = await Promise.all([h.linkList(), h.addrList(), h.routeList({ family: 4 }), h.neighList(), h.linkList(), h.routeList({ family: 6 })]);
    expect(results[0].length).toBe(21);
    expect(results[4].length).toBe(21);
  });
});

// This kernel is built without the dummy link type; probe it for real
// (creating one in a throwaway namespace) rather than assume. Where it has
// none, its error is checked here; the dummy link itself is tested in the
// test VM, whose kernel has it.
const dummySupported = (() => {
  const ns = `kndummyprobe${process.pid}`;
  try {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-netns', ns, 'link', 'add', 'd0', 'type', 'dummy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
})();

describe('links between namespaces and link kinds', () => {
  const w = new World('nk');
  afterAll(() => w.cleanup());

  test('a link moved to another namespace disappears here and appears there', async () => {
    const a = w.handle(w.netns('a'));
    const b = w.handle(w.netns('b'));
    await a.linkAdd({ name: 'mv0', kind: 'veth', veth: { peerName: 'mv1' } });
    const mv1 = await a.linkByName('mv1');
    await a.linkSetNsFd(mv1.index, b.nsFd!);
    await expect(a.linkByName('mv1')).rejects.toBeInstanceOf(LinkNotFoundError);
    const moved = await b.linkByName('mv1');
    expect(moved.kind).toBe('veth');
    // The veth peer now points across namespaces.
    expect(moved.linkNetnsId).toBeDefined();
  });

  // Creating dummy links on a kernel that has them: test/vm/suites/netlink-kinds.test.ts (the test VM).
  test.runIf(!dummySupported)('without dummy support, adding one fails with EOPNOTSUPP and leaves nothing', async () => {
    const h = w.handle(w.netns('e'));
    await expect(h.linkAdd({ name: 'dum0', kind: 'dummy' })).rejects.toMatchObject({ errno: 95 });
    expect((await h.linkList()).map((l) => l.name)).toEqual(['lo']);
  });
});

/**
 * One sequence of requests, answered by the kernel and by FakeHandle: each
 * step gives its errno name ('ok' on success) or an observed value. The fake
 * must answer as the kernel does, errnos included.
 */
async function kernelSemantics(h: NetlinkHandle): Promise<[string, string][]> {
  const out: [string, string][] = [];
  const step = async (name: string, fn: () => Promise<unknown>): Promise<void> => {
    try {
      await fn();
      out.push([name, 'ok']);
    } catch (err) {
      const e = errnoOf(err);
      out.push([name, e === undefined ? `not an errno: ${String(err)}` : errnoName(e)]);
    }
  };
  const see = (name: string, v: unknown): void => void out.push([name, JSON.stringify(v)]);
  const index = async (name: string): Promise<number> => (await h.linkByName(name)).index;

  await step('add bridge', () => h.linkAdd({ name: 'kbr0', kind: 'bridge' }));
  await step('add it again', () => h.linkAdd({ name: 'kbr0', kind: 'bridge' }));
  const br = await index('kbr0');
  await step('look up a missing link', () => h.linkByName('nope0'));
  await step('delete a missing link', () => h.linkDel(9999));
  await step('set a missing link up', () => h.linkSetUp(9999));
  await step('address on a missing link', () => h.addrAdd(9999, { address: pfx('10.250.0.1/24') }));
  await step('route on a down link', () => h.routeAdd({ family: 4, dst: pfx('10.7.0.0/16'), oif: br }));
  await step('set it up', () => h.linkSetUp(br));
  await step('add address', () => h.addrAdd(br, { address: pfx('10.250.0.1/24') }));
  await step('add it again', () => h.addrAdd(br, { address: pfx('10.250.0.1/24') }));
  await step('same IPv4 address, other length', () => h.addrAdd(br, { address: pfx('10.250.0.1/16') }));
  await step('replace an address', () => h.addrReplace(br, { address: pfx('10.250.0.1/24') }));
  await step('delete a missing address', () => h.addrDel(br, pfx('10.250.0.7/24')));
  await step('delete the /16', () => h.addrDel(br, pfx('10.250.0.1/16')));
  await step('add IPv6 address', () => h.addrAdd(br, { address: pfx('fd00:250::1/64'), noDad: true }));
  await step('same IPv6 address, other length', () => h.addrAdd(br, { address: pfx('fd00:250::1/80'), noDad: true }));
  // Global ones: the fake does not model IPv6 link-local autoconfiguration.
  see('addresses', (await h.addrList({ index: br })).filter((a) => a.scope === rt.RT_SCOPE_UNIVERSE).map((a) => String(a.address)).sort());
  await step('route via a connected gateway', () => h.routeAdd({ family: 4, dst: pfx('10.251.0.0/24'), gw: ip('10.250.0.9'), oif: br }));
  await step('add it again', () => h.routeAdd({ family: 4, dst: pfx('10.251.0.0/24'), gw: ip('10.250.0.9'), oif: br }));
  await step('replace it', () => h.routeReplace({ family: 4, dst: pfx('10.251.0.0/24'), gw: ip('10.250.0.8'), oif: br }));
  await step('unreachable gateway', () => h.routeAdd({ family: 4, dst: pfx('10.9.0.0/16'), gw: ip('203.0.113.1') }));
  await step('onlink gateway', () => h.routeAdd({ family: 4, dst: pfx('10.9.0.0/16'), gw: ip('203.0.113.1'), oif: br, onlink: true }));
  await step('prefix with host bits', () => h.routeAdd({ family: 4, dst: pfx('10.8.0.1/16'), oif: br }));
  await step('route on a missing link', () => h.routeAdd({ family: 4, dst: pfx('10.8.0.0/16'), oif: 9999 }));
  see(
    'routes',
    (await h.routeList({ family: 4, oif: br })).map((r) => `${r.dst} ${r.gw ?? '-'} proto ${r.protocol} scope ${r.scope}`).sort(),
  );
  see('route get', await h.routeGet(ip('10.251.0.5')).then((r) => `${r.gw} ${r.oif === br}`));
  await step('route get without a route', () => h.routeGet(ip('203.0.113.5')));
  await step('delete the route', () => h.routeDel({ family: 4, dst: pfx('10.251.0.0/24') }));
  await step('delete it again', () => h.routeDel({ family: 4, dst: pfx('10.251.0.0/24') }));
  await step('set a neighbour', () => h.neighSet({ index: br, ip: ip('10.250.0.50'), mac: '02:aa:bb:cc:dd:ee' }));
  await step('replace it', () => h.neighSet({ index: br, ip: ip('10.250.0.50'), mac: '02:aa:bb:cc:dd:ef' }));
  // Permanent ones: the kernel adds multicast (NOARP) entries of its own when it likes.
  see('neighbours', (await h.neighList({ family: 4, index: br })).filter((n) => n.state & rt.NUD_PERMANENT).map((n) => `${n.ip} ${n.mac} ${n.state}`));
  await step('delete it', () => h.neighDel({ index: br, ip: ip('10.250.0.50'), mac: '02:aa:bb:cc:dd:ef' }));
  await step('delete it again', () => h.neighDel({ index: br, ip: ip('10.250.0.50'), mac: '02:aa:bb:cc:dd:ef' }));
  await step('neighbour on a missing link', () => h.neighSet({ index: 9999, ip: ip('10.250.0.50'), mac: '02:aa:bb:cc:dd:ee' }));
  await step('veth pair', () => h.linkAdd({ name: 'kva', kind: 'veth', veth: { peerName: 'kvb' } }));
  await step('veth whose peer name is taken', () => h.linkAdd({ name: 'kvc', kind: 'veth', veth: { peerName: 'kvb' } }));
  see('no half-made veth', (await h.linkFind('kvc')) === undefined);
  await step('enslave to a veth', async () => h.linkSetMaster(await index('kva'), await index('kvb')));
  await step('bridge port flags on a non-port', async () => h.linkSetBridgePort(await index('kva'), { hairpin: true }));
  await step('enslave to the bridge', async () => h.linkSetMaster(await index('kva'), br));
  await step('bridge port flags on the port', async () => h.linkSetBridgePort(await index('kva'), { hairpin: true }));
  see('port', await h.linkByName('kva').then((l) => [l.master === br, l.bridgePort?.hairpin]));
  await step('delete one veth end', async () => h.linkDel(await index('kva')));
  see('the other end went too', (await h.linkFind('kvb')) === undefined);
  await step('delete the bridge', () => h.linkDel(br));
  see('its addresses and routes went too', [(await h.addrList({ index: br })).length, (await h.routeList({ oif: br, table: 'all' })).length]);
  return out;
}

describe('FakeHandle answers as the kernel does', () => {
  const w = new World('nf');
  afterAll(() => w.cleanup());
  test('the same sequence, real Handle and FakeHandle', async () => {
    const real = await kernelSemantics(w.handle(w.netns('k')));
    const fake = await kernelSemantics(new FakeHandle());
    expect(fake).toEqual(real);
    // And the kernel's answers are the documented ones.
    expect(Object.fromEntries(real.filter(([n]) => !n.includes('again')))).toMatchObject({
      'look up a missing link': 'ENODEV',
      'delete a missing link': 'ENODEV',
      'route on a down link': 'ENETDOWN',
      'delete a missing address': 'EADDRNOTAVAIL',
      'unreachable gateway': 'ENETUNREACH',
      'prefix with host bits': 'EINVAL',
      'route get without a route': 'ENETUNREACH',
      'veth whose peer name is taken': 'EEXIST',
    });
    expect(real.filter(([n]) => n === 'add it again').map(([, e]) => e)).toEqual(['EEXIST', 'EEXIST', 'EEXIST']);
    expect(real.filter(([n]) => n === 'delete it again').map(([, e]) => e)).toEqual(['ESRCH', 'ENOENT']);
  });
});
