import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { execFileSync } from 'node:child_process';
import { World } from '../harness/world.ts';
import { Handle, LinkNotFoundError, rt } from '../../lib/netlink/index.ts';
import { NetnsNotFoundError, NotANetnsError, openNetns } from '../../lib/netns/index.ts';
import { isExists } from '../../lib/errors.ts';

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
    await ha.addrAdd(br.index, { address: '10.250.0.1/24', broadcast: 'auto' });
    await ha.addrAdd(br.index, { address: 'fd00:250::1/64', noDad: true });
    const addrs = await ha.addrList({ index: br.index });
    expect(addrs.map((x) => x.address).sort()).toEqual(expect.arrayContaining(['10.250.0.1/24', 'fd00:250::1/64']));
    expect(ipIn(`${w.prefix}-a`, 'addr', 'show', 'br0')).toMatch(/inet 10\.250\.0\.1\/24 brd 10\.250\.0\.255/);
    await ha.routeAdd({ family: 4, dst: '10.251.0.0/24', gw: '10.250.0.9', oif: br.index, priority: 7, protocol: rt.RTPROT_STATIC });
    await ha.routeReplace({ family: 4, dst: '10.252.0.0/24', gw: '10.252.0.0', oif: br.index, onlink: true });
    await ha.routeAdd({ family: 4, dst: '10.253.0.0/16', oif: br.index, table: 1000 });
    const routes = await ha.routeList({ family: 4 });
    expect(routes).toContainEqual(expect.objectContaining({ dst: '10.251.0.0/24', gw: '10.250.0.9', priority: 7, protocol: rt.RTPROT_STATIC }));
    expect(routes).toContainEqual(expect.objectContaining({ dst: '10.252.0.0/24', gw: '10.252.0.0', onlink: true }));
    expect(await ha.routeList({ family: 4, table: 1000 })).toContainEqual(expect.objectContaining({ dst: '10.253.0.0/16', scope: rt.RT_SCOPE_LINK }));
    expect(ipIn(`${w.prefix}-a`, 'route', 'show', '10.252.0.0/24')).toMatch(/via 10\.252\.0\.0 dev br0 onlink/);
    await ha.routeDel({ family: 4, dst: '10.251.0.0/24', gw: '10.250.0.9', oif: br.index, priority: 7 });
    expect((await ha.routeList({ family: 4 })).find((r) => r.dst === '10.251.0.0/24')).toBeUndefined();
    expect((await ha.routeGet('10.250.0.77')).oif).toBe(br.index);

    await ha.neighSet({ index: br.index, ip: '10.250.0.50', mac: '02:aa:bb:cc:dd:ee' });
    const n = (await ha.neighList({ family: 4, index: br.index })).find((x) => x.ip === '10.250.0.50');
    expect(n).toMatchObject({ mac: '02:aa:bb:cc:dd:ee', state: rt.NUD_PERMANENT });
    await ha.neighDel({ index: br.index, ip: '10.250.0.50', mac: '02:aa:bb:cc:dd:ee' });
    expect((await ha.neighList({ family: 4, index: br.index })).find((x) => x.ip === '10.250.0.50')).toBeUndefined();
  });

  test('vxlan device with local/port/vni, and static fdb entries', async () => {
    const veth = await hb.linkByName('eth0');
    await hb.addrAdd(veth.index, { address: '192.0.2.10/24' });
    await hb.linkAdd({ name: 'flannel.7', kind: 'vxlan', mtu: 1350, mac: '0e:00:00:00:00:07', vxlan: { vni: 7, local: '192.0.2.10', link: veth.index, port: 8472, learning: false } });
    const vx = await hb.linkByName('flannel.7');
    expect(vx.kind).toBe('vxlan');
    expect(vx.vxlan).toMatchObject({ vni: 7, local: '192.0.2.10', link: veth.index, port: 8472, learning: false });
    expect(ipIn(`${w.prefix}-b`, '-d', 'link', 'show', 'flannel.7')).toMatch(/vxlan id 7 local 192\.0\.2\.10 dev eth0 .*dstport 8472 nolearning/);
    await hb.neighSet({ index: vx.index, fdb: true, ip: '192.0.2.20', mac: '0e:00:00:00:00:08' });
    const fdb = (await hb.neighList({ family: 'bridge', index: vx.index })).find((x) => x.mac === '0e:00:00:00:00:08');
    expect(fdb).toMatchObject({ ip: '192.0.2.20', state: rt.NUD_PERMANENT });
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
// (creating one in a throwaway namespace) rather than assume.
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

  test.skipIf(!dummySupported)('dummy links (skipped: kernel lacks the dummy link type, CONFIG_DUMMY)', async () => {
    const h = w.handle(w.netns('d'));
    await h.linkAdd({ name: 'dum0', kind: 'dummy', mtu: 9000, up: true });
    const d = await h.linkByName('dum0');
    expect(d.kind).toBe('dummy');
    expect(d.mtu).toBe(9000);
  });

  test.runIf(!dummySupported)('without dummy support, adding one fails with EOPNOTSUPP and leaves nothing', async () => {
    const h = w.handle(w.netns('e'));
    await expect(h.linkAdd({ name: 'dum0', kind: 'dummy' })).rejects.toMatchObject({ errno: 95 });
    expect((await h.linkList()).map((l) => l.name)).toEqual(['lo']);
  });
});
