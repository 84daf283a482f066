// FakeHandle against the kernel rules it claims (test/netns/netlink.test.ts
// runs the errno cases against the real kernel too).
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ErrnoError, errnoOf, isNotFound } from '../errors.ts';
import { IPAddr, IPPrefix } from '../ip/index.ts';
import * as C from './constants.ts';
import { FakeHandle, FakeNetworks } from './fake.ts';
import { LinkNotFoundError, type Link } from './link.ts';

const E = constants.errno;
const ip = (s: string): IPAddr => IPAddr.mustParse(s);
const pfx = (s: string): IPPrefix => IPPrefix.mustParse(s);

async function errnoFrom(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(Error);
    return errnoOf(err);
  }
  return undefined;
}

async function dummy(h: FakeHandle, name: string, up = true): Promise<Link> {
  await h.linkAdd({ name, kind: 'dummy', up });
  return h.linkByName(name);
}

describe('FakeHandle links', () => {
  it('allocates ifindexes after lo, rejects a duplicate name with EEXIST', async () => {
    const h = new FakeHandle();
    expect((await h.linkList()).map((l) => [l.index, l.name])).toEqual([[1, 'lo']]);
    const d = await dummy(h, 'd0');
    expect(d.index).toBe(2);
    expect(await errnoFrom(h.linkAdd({ name: 'd0', kind: 'dummy' }))).toBe(E.EEXIST);
    expect((await dummy(h, 'd1')).index).toBe(3);
  });

  it('missing links: LinkNotFoundError (ENODEV, isNotFound) on lookups, ENODEV on changes', async () => {
    const h = new FakeHandle();
    const err = await h.linkByName('nope').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LinkNotFoundError);
    expect(isNotFound(err)).toBe(true);
    expect(errnoOf(err)).toBe(E.ENODEV);
    expect(await h.linkFind('nope')).toBeUndefined();
    await expect(h.linkByIndex(42)).rejects.toBeInstanceOf(LinkNotFoundError);
    expect(await errnoFrom(h.linkDel(42))).toBe(E.ENODEV);
    expect(await errnoFrom(h.linkSetUp(42))).toBe(E.ENODEV);
    expect(await errnoFrom(h.addrAdd(42, { address: pfx('10.0.0.1/24') }))).toBe(E.ENODEV);
  });

  it('a veth pair across namespaces: peer index, oper state from both ends, deletion of one end removes the other', async () => {
    const nets = new FakeNetworks();
    const host = nets.namespace();
    const pod = nets.namespace();
    await host.linkAdd({ name: 'vethh', kind: 'veth', mtu: 1400, veth: { peerName: 'eth0', peerNetnsFd: pod.nsFd, peerMac: '0a:58:0a:00:00:05' } });
    const h = await host.linkByName('vethh');
    const p = await pod.linkByName('eth0');
    expect([h.parentIndex, p.parentIndex, p.mac, p.mtu]).toEqual([p.index, h.index, '0a:58:0a:00:00:05', 1400]);
    expect(await host.linkFind('eth0')).toBeUndefined();
    await host.linkSetUp(h.index);
    expect((await host.linkByIndex(h.index)).operState).toBe('lowerlayerdown');
    await pod.linkSetUp(p.index);
    expect((await host.linkByIndex(h.index)).operState).toBe('up');
    await pod.addrAdd(p.index, { address: pfx('10.1.0.5/24') });
    await host.linkDel(h.index);
    expect(await pod.linkFind('eth0')).toBeUndefined();
    expect(await pod.addrList()).toEqual([]);
  });

  it('a veth peer name taken in the peer namespace is EEXIST and creates nothing', async () => {
    const nets = new FakeNetworks();
    const host = nets.namespace();
    const pod = nets.namespace();
    await dummy(pod, 'eth0');
    expect(await errnoFrom(host.linkAdd({ name: 'v', kind: 'veth', veth: { peerName: 'eth0', peerNetnsFd: pod.nsFd } }))).toBe(E.EEXIST);
    expect(await host.linkFind('v')).toBeUndefined();
  });

  it('master, promisc, mtu, mac and bridge port flags', async () => {
    const h = new FakeHandle();
    await h.linkAdd({ name: 'br0', kind: 'bridge' });
    const br = await h.linkByName('br0');
    const d = await dummy(h, 'd0');
    expect(await errnoFrom(h.linkSetMaster(br.index, d.index))).toBe(E.EOPNOTSUPP);
    expect(await errnoFrom(h.linkSetBridgePort(d.index, { hairpin: true }))).toBe(E.EOPNOTSUPP);
    await h.linkSetMaster(d.index, br.index);
    await h.linkSetBridgePort(d.index, { hairpin: true });
    await h.linkSetPromisc(br.index, true);
    await h.linkSetMtu(d.index, 9000);
    await h.linkSetMac(br.index, '0A:00:00:00:00:01');
    const port = await h.linkByIndex(d.index);
    expect([port.master, port.slaveKind, port.bridgePort?.hairpin, port.mtu]).toEqual([br.index, 'bridge', true, 9000]);
    const b = await h.linkByIndex(br.index);
    expect([(b.flags & C.IFF_PROMISC) !== 0, b.mac]).toEqual([true, '0a:00:00:00:00:01']);
    // Deleting the bridge frees its ports.
    await h.linkDel(br.index);
    expect((await h.linkByIndex(d.index)).master).toBeUndefined();
  });

  it('moves a link to another namespace, dropping its addresses', async () => {
    const nets = new FakeNetworks();
    const a = nets.namespace();
    const b = nets.namespace();
    const d = await dummy(a, 'mv0');
    await a.addrAdd(d.index, { address: pfx('192.0.2.1/24') });
    await a.linkSetNsFd(d.index, b.nsFd);
    expect(await a.linkFind('mv0')).toBeUndefined();
    const moved = await b.linkByName('mv0');
    expect([moved.index, moved.up]).toEqual([d.index, false]);
    expect(await a.addrList()).toEqual([]);
  });
});

describe('FakeHandle addresses', () => {
  it('EEXIST on a duplicate add, replace is idempotent, EADDRNOTAVAIL on deleting a missing one', async () => {
    const h = new FakeHandle();
    const d = await dummy(h, 'd0');
    await h.addrAdd(d.index, { address: pfx('10.0.0.5/24') });
    expect(await errnoFrom(h.addrAdd(d.index, { address: pfx('10.0.0.5/24') }))).toBe(E.EEXIST);
    // IPv4: the same address with another length is another address.
    await h.addrAdd(d.index, { address: pfx('10.0.0.5/16') });
    await h.addrReplace(d.index, { address: pfx('10.0.0.5/24') });
    await h.addrAdd(d.index, { address: pfx('fd00::5/64') });
    // IPv6: identified by the address alone.
    expect(await errnoFrom(h.addrAdd(d.index, { address: pfx('fd00::5/80') }))).toBe(E.EEXIST);
    expect((await h.addrList({ index: d.index, family: 4 })).map((a) => String(a.address)).sort()).toEqual(['10.0.0.5/16', '10.0.0.5/24']);
    await h.addrDel(d.index, pfx('10.0.0.5/16'));
    expect(await errnoFrom(h.addrDel(d.index, pfx('10.0.0.5/16')))).toBe(E.EADDRNOTAVAIL);
    expect((await h.addrList({ family: 6 })).map((a) => String(a.address))).toEqual(['fd00::5/64']);
  });

  it('an address on an up link brings its connected route; a down link does not', async () => {
    const h = new FakeHandle();
    const up = await dummy(h, 'up0');
    const down = await dummy(h, 'down0', false);
    await h.addrAdd(up.index, { address: pfx('192.0.2.1/24') });
    await h.addrAdd(down.index, { address: pfx('198.51.100.1/24') });
    const routes = await h.routeList({ family: 4 });
    expect(routes.map((r) => [String(r.dst), r.oif, r.protocol, r.scope])).toEqual([['192.0.2.0/24', up.index, C.RTPROT_KERNEL, C.RT_SCOPE_LINK]]);
  });
});

describe('FakeHandle routes', () => {
  async function world(): Promise<{ h: FakeHandle; eth: Link }> {
    const h = new FakeHandle();
    const eth = await dummy(h, 'eth0');
    await h.addrAdd(eth.index, { address: pfx('192.0.2.1/24') });
    return { h, eth };
  }

  it('EEXIST on a duplicate add, replace overwrites, ESRCH on deleting a missing route', async () => {
    const { h, eth } = await world();
    const r = { family: 4 as const, dst: pfx('10.244.1.0/24'), gw: ip('192.0.2.11'), oif: eth.index };
    await h.routeAdd(r);
    expect(await errnoFrom(h.routeAdd(r))).toBe(E.EEXIST);
    await h.routeReplace({ ...r, gw: ip('192.0.2.12'), protocol: 70 });
    const mine = (await h.routeList({ oif: eth.index })).filter((x) => x.protocol === 70);
    expect(mine.map((x) => [String(x.dst), String(x.gw)])).toEqual([['10.244.1.0/24', '192.0.2.12']]);
    await h.routeDel({ family: 4, dst: pfx('10.244.1.0/24') });
    expect(await errnoFrom(h.routeDel({ family: 4, dst: pfx('10.244.1.0/24') }))).toBe(E.ESRCH);
  });

  it('kernel checks: unreachable gateway, down device, host bits, missing device', async () => {
    const { h, eth } = await world();
    expect(await errnoFrom(h.routeAdd({ family: 4, dst: pfx('10.9.0.0/16'), gw: ip('203.0.113.1') }))).toBe(E.ENETUNREACH);
    // onlink skips the reachability check.
    await h.routeAdd({ family: 4, dst: pfx('10.9.0.0/16'), gw: ip('203.0.113.1'), oif: eth.index, onlink: true });
    const down = await dummy(h, 'down0', false);
    expect(await errnoFrom(h.routeAdd({ family: 4, dst: pfx('10.8.0.0/16'), oif: down.index }))).toBe(E.ENETDOWN);
    expect(await errnoFrom(h.routeAdd({ family: 4, dst: pfx('10.8.0.1/16'), oif: eth.index }))).toBe(E.EINVAL);
    expect(await errnoFrom(h.routeAdd({ family: 4, dst: pfx('10.8.0.0/16'), oif: 99 }))).toBe(E.ENODEV);
  });

  it('a default route via the connected gateway; routeGet picks the longest prefix; IPv4 routes go with the link going down', async () => {
    const { h, eth } = await world();
    await h.routeAdd({ family: 4, dst: IPPrefix.any(4), gw: ip('192.0.2.254') });
    await h.routeAdd({ family: 4, dst: pfx('10.244.0.0/16'), gw: ip('192.0.2.2'), oif: eth.index });
    const viaDefault = await h.routeGet(ip('8.8.8.8'));
    expect([String(viaDefault.gw), viaDefault.oif, String(viaDefault.prefsrc)]).toEqual(['192.0.2.254', eth.index, '192.0.2.1']);
    expect(String((await h.routeGet(ip('10.244.3.3'))).gw)).toBe('192.0.2.2');
    expect((await h.routeGet(ip('192.0.2.77'))).gw).toBeUndefined();
    expect(await errnoFrom(h.routeGet(ip('fd00::1')))).toBe(E.ENETUNREACH);
    await h.linkSetDown(eth.index);
    expect(await h.routeList({ family: 4 })).toEqual([]);
  });

  it('table and oif filters; deleting a link takes its routes', async () => {
    const { h, eth } = await world();
    await h.routeAdd({ family: 4, dst: pfx('10.1.0.0/16'), oif: eth.index, table: 100 });
    expect((await h.routeList({ family: 4 })).some((r) => r.table === 100)).toBe(false);
    expect((await h.routeList({ table: 100 })).map((r) => String(r.dst))).toEqual(['10.1.0.0/16']);
    expect((await h.routeList({ table: 'all' })).length).toBe(2);
    await h.linkDel(eth.index);
    expect(await h.routeList({ table: 'all' })).toEqual([]);
  });
});

describe('FakeHandle neighbours and FDB', () => {
  it('replace by IP (neigh) or by MAC (FDB), family and index filters, ENOENT on deleting a missing one', async () => {
    const h = new FakeHandle();
    await h.linkAdd({ name: 'vx', kind: 'vxlan', vxlan: { vni: 1 } });
    const vx = await h.linkByName('vx');
    await h.neighSet({ index: vx.index, ip: ip('10.244.2.0'), mac: '0e:00:00:00:00:02' });
    await h.neighSet({ index: vx.index, ip: ip('10.244.2.0'), mac: '0e:00:00:00:00:03' });
    await h.neighSet({ index: vx.index, fdb: true, ip: ip('192.0.2.12'), mac: '0e:00:00:00:00:02' });
    await h.neighSet({ index: vx.index, fdb: true, ip: ip('192.0.2.13'), mac: '0e:00:00:00:00:02' });
    const neighs = await h.neighList({ family: 4, index: vx.index });
    expect(neighs.map((n) => [String(n.ip), n.mac, n.state])).toEqual([['10.244.2.0', '0e:00:00:00:00:03', C.NUD_PERMANENT]]);
    const fdb = await h.neighList({ family: 'bridge' });
    expect(fdb.map((n) => [String(n.ip), n.mac, n.flags])).toEqual([['192.0.2.13', '0e:00:00:00:00:02', C.NTF_SELF]]);
    await h.neighAppend({ index: vx.index, fdb: true, ip: ip('192.0.2.14'), mac: '0e:00:00:00:00:02' });
    expect((await h.neighList({ family: 'bridge' })).length).toBe(2);
    await h.neighDel({ index: vx.index, ip: ip('10.244.2.0'), mac: '0e:00:00:00:00:03' });
    expect(await errnoFrom(h.neighDel({ index: vx.index, ip: ip('10.244.2.0'), mac: '0e:00:00:00:00:03' }))).toBe(E.ENOENT);
    expect(await errnoFrom(h.neighSet({ index: 77, ip: ip('10.0.0.1'), mac: '0e:00:00:00:00:02' }))).toBe(E.ENODEV);
  });
});

describe('FakeHandle test controls and the rest of the interface', () => {
  it('fails the nth call of a method with an ErrnoError, once', async () => {
    const h = new FakeHandle();
    h.failOn('linkAdd', E.ENOSPC, 2);
    await h.linkAdd({ name: 'a', kind: 'dummy' });
    const err = await h.linkAdd({ name: 'b', kind: 'dummy' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ErrnoError);
    expect(errnoOf(err)).toBe(E.ENOSPC);
    expect(await h.linkFind('b')).toBeUndefined();
    await h.linkAdd({ name: 'b', kind: 'dummy' });
    expect(h.takeNames()).toEqual(['linkAdd', 'linkAdd', 'linkFind', 'linkAdd']);
    expect(h.calls).toEqual([]);
  });

  it('sysctls: defaults, per-interface keys only while the interface exists', async () => {
    const h = new FakeHandle();
    expect(h.readSysctl('net/ipv4/ip_forward')).toBe('0');
    h.writeSysctl('net/ipv4/ip_forward', '1');
    expect(h.readSysctl('net/ipv4/ip_forward')).toBe('1');
    expect(() => h.writeSysctl('net/ipv6/conf/eth0/accept_ra', '0')).toThrow(expect.objectContaining({ errno: E.ENOENT }));
    await dummy(h, 'eth0');
    h.writeSysctl('net/ipv6/conf/eth0/accept_ra', '0');
    expect(h.readSysctl('net/ipv6/conf/eth0/accept_ra')).toBe('0');
  });

  it('notifies subscribers of the joined groups, after the request', async () => {
    const h = new FakeHandle();
    const seen: string[] = [];
    const sub = h.subscribe([C.RTNLGRP_LINK], (type, obj) => seen.push(`${type}:${'name' in obj ? obj.name : '?'}`));
    const d = await dummy(h, 'd0');
    await h.addrAdd(d.index, { address: pfx('10.0.0.1/24') });
    await h.linkDel(d.index);
    await Promise.resolve();
    expect(seen).toEqual([`${C.RTM_NEWLINK}:d0`, `${C.RTM_DELLINK}:d0`]);
    sub.close();
    await dummy(h, 'd1');
    await Promise.resolve();
    expect(seen).toHaveLength(2);
  });

  it('a closed handle answers EBADF', async () => {
    const h = new FakeHandle();
    h.close();
    expect(await errnoFrom(h.linkList())).toBe(E.EBADF);
  });
});
