import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { FakeHandle } from '../../lib/netlink/fake.ts';
import type { Neigh, NeighSpec, Route } from '../../lib/netlink/index.ts';
import type { Lease } from '../subnet/types.ts';
import { applyOps, type RouteNeighOps } from './apply.ts';
import { hostGwDesired } from './host-gw.ts';
import { RTPROT_FLANNEL, ownedFdb, ownedNeighs, ownedRoutes, planSync, routeEntry, type Entry, type Op } from './reconcile.ts';
import { vxlanCompatible, vxlanDesired, vtepOf, parseVxlanConfig } from './vxlan.ts';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';

const ip = (s: string): IPAddr => IPAddr.mustParse(s);
const pfx = (s: string): IPPrefix => IPPrefix.mustParse(s);

const DEV = 7;
const EXT = 2;
const mac2 = '0e:00:00:00:00:02';
const mac3 = '0e:00:00:00:00:03';

function lease(n: number, mac: string, pub = `192.0.2.${10 + n}`): Lease {
  return {
    enableIPv4: true,
    enableIPv6: false,
    subnet: IPPrefix.mustParse(`10.244.${n}.0/24`),
    attrs: { publicIP: pub, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: mac } },
  };
}
const peer = (n: number) => `10.244.${n}.0/24&`;

/** What the kernel would report for a vxlan peer's three entries. */
function kernelOf(entries: Entry[]): Entry[] {
  return entries.map((e) => ({ ...e, peer: '' }));
}
const short = (ops: Op[]) =>
  ops.map((o) => {
    const e = o.entry;
    return `${o.op} ${e.kind} ${e.kind === 'neigh' ? `${e.ip}=${e.mac}` : e.kind === 'fdb' ? `${e.mac}>${e.dst}` : `${e.dst} via ${e.gw}`}`;
  });

describe('planSync (vxlan)', () => {
  const two = vxlanDesired([lease(2, mac2), lease(3, mac3)], 4, DEV, new Map());

  const cases: { name: string; desired: Entry[]; observed: Entry[]; want: string[] }[] = [
    {
      name: 'fresh node: neighbour, FDB, then route, per kind in that order',
      desired: two,
      observed: [],
      want: [
        `set neigh 10.244.2.0=${mac2}`,
        `set neigh 10.244.3.0=${mac3}`,
        `set fdb ${mac2}>192.0.2.12`,
        `set fdb ${mac3}>192.0.2.13`,
        'set route 10.244.2.0/24 via 10.244.2.0',
        'set route 10.244.3.0/24 via 10.244.3.0',
      ],
    },
    { name: 'in sync: nothing to do', desired: two, observed: kernelOf(two), want: [] },
    {
      name: 'peer deleted while down: its entries go, route first',
      desired: vxlanDesired([lease(2, mac2)], 4, DEV, new Map()),
      observed: kernelOf(two),
      want: ['del route 10.244.3.0/24 via 10.244.3.0', `del fdb ${mac3}>192.0.2.13`, `del neigh 10.244.3.0=${mac3}`],
    },
    {
      name: 'route removed by hand: only the route is restored',
      desired: two,
      observed: kernelOf(two).filter((e) => !(e.kind === 'route' && String(e.dst) === '10.244.2.0/24')),
      want: ['set route 10.244.2.0/24 via 10.244.2.0'],
    },
    {
      name: 'public IP change: old FDB entry deleted, new one set',
      desired: vxlanDesired([lease(2, mac2, '192.0.2.99'), lease(3, mac3)], 4, DEV, new Map()),
      observed: kernelOf(two),
      want: [`del fdb ${mac2}>192.0.2.12`, `set fdb ${mac2}>192.0.2.99`],
    },
    {
      name: 'MAC change: neighbour replaced, old FDB entry deleted',
      desired: vxlanDesired([lease(2, '0e:00:00:00:00:22'), lease(3, mac3)], 4, DEV, new Map()),
      observed: kernelOf(two),
      want: [`del fdb ${mac2}>192.0.2.12`, 'set neigh 10.244.2.0=0e:00:00:00:00:22', 'set fdb 0e:00:00:00:00:22>192.0.2.12'],
    },
    {
      name: 'DirectRouting: an on-link peer gets a route via its public IP, its vxlan entries go',
      desired: vxlanDesired([lease(2, mac2), lease(3, mac3)], 4, DEV, new Map([[peer(2), EXT]])),
      observed: kernelOf(two),
      want: [`del fdb ${mac2}>192.0.2.12`, `del neigh 10.244.2.0=${mac2}`, 'set route 10.244.2.0/24 via 192.0.2.12'],
    },
    {
      name: 'a route with another gateway (upstream-made, proto boot) is replaced in place',
      desired: two,
      observed: kernelOf(two).map((e) => (e.kind === 'route' ? { ...e, protocol: 3 } : e)),
      want: ['set route 10.244.2.0/24 via 10.244.2.0', 'set route 10.244.3.0/24 via 10.244.3.0'],
    },
  ];
  it.each(cases)('$name', ({ desired, observed, want }) => {
    expect(short(planSync(desired, observed))).toEqual(want);
  });
});

describe('planSync (host-gw)', () => {
  it('adds, replaces a changed gateway, deletes stale', () => {
    const desired = hostGwDesired([lease(2, mac2), lease(3, mac3, '192.0.2.33')], 4, EXT);
    const observed = [routeEntry('', 4, pfx('10.244.3.0/24'), ip('192.0.2.13'), EXT), routeEntry('', 4, pfx('10.244.9.0/24'), ip('192.0.2.19'), EXT)];
    expect(short(planSync(desired, observed))).toEqual(['del route 10.244.9.0/24 via 192.0.2.19', 'set route 10.244.2.0/24 via 192.0.2.12', 'set route 10.244.3.0/24 via 192.0.2.33']);
  });
  it('IPv6 peers route via their public IPv6', () => {
    const l: Lease = { enableIPv4: false, enableIPv6: true, ipv6Subnet: IPPrefix.mustParse('fd00:10:244:2::/64'), attrs: { publicIPv6: '2001:db8::12', backendType: 'host-gw' } };
    expect(hostGwDesired([l], 6, EXT)).toEqual([routeEntry('&fd00:10:244:2::/64', 6, pfx('fd00:10:244:2::/64'), ip('2001:db8::12'), EXT)]);
  });
});

describe('ownership of kernel entries', () => {
  const network = IPPrefix.mustParse('10.244.0.0/16');
  const r = ({ dst, gw, ...x }: Omit<Partial<Route>, 'dst' | 'gw'> & { dst: string; gw?: string }): Route => ({
    family: 4, table: 254, type: 1, protocol: 3, ...x, dst: pfx(dst), ...(gw ? { gw: ip(gw) } : {}),
  });
  const routes: Route[] = [
    r({ dst: '10.244.2.0/24', gw: '10.244.2.0', oif: DEV, onlink: true }), // on our device
    r({ dst: '10.244.5.0/24', gw: '192.0.2.15', oif: EXT }), // flannel-shaped on ext (upstream host-gw)
    r({ dst: '10.244.1.0/24', oif: 9, protocol: 2 }), // cni0, kernel
    r({ dst: '0.0.0.0/0', gw: '192.0.2.1', oif: EXT }), // default route
    r({ dst: '10.244.0.0/16', gw: '192.0.2.1', oif: EXT }), // the whole Network: not a lease
    r({ dst: '198.51.100.0/24', gw: '192.0.2.1', oif: EXT }), // outside the Network
    r({ dst: '198.51.100.0/24', gw: '192.0.2.1', oif: 11, protocol: RTPROT_FLANNEL }), // tagged: ours
    r({ dst: '10.244.6.0/24', gw: '192.0.2.16', oif: EXT, table: 100 }), // other table
  ];
  it('routes', () => {
    expect(ownedRoutes(routes, { family: 4, network, devIndex: DEV, extIndex: EXT }).map((x) => `${x.dst}@${x.oif}`)).toEqual([
      `10.244.2.0/24@${DEV}`,
      `10.244.5.0/24@${EXT}`,
      '198.51.100.0/24@11',
    ]);
  });
  it('neighbours: permanent, on our device, of the family', () => {
    const n = (x: Partial<Neigh>): Neigh => ({ family: 4, index: DEV, ip: ip('10.244.2.0'), mac: mac2, state: 0x80, flags: 0, master: undefined, vlan: undefined, ...x });
    const got = ownedNeighs([n({}), n({ state: 0x02, ip: ip('10.244.3.0') }), n({ index: 3 }), n({ family: 6, ip: ip('fe80::1') })], DEV, 4);
    expect(got.map((x) => String(x.ip))).toEqual(['10.244.2.0']);
  });
  it('FDB: permanent self entries with a destination of the family', () => {
    const n = (x: Partial<Neigh>): Neigh => ({ family: 'bridge', index: DEV, ip: ip('192.0.2.12'), mac: mac2, state: 0x80, flags: 0x02, master: undefined, vlan: undefined, ...x });
    const got = ownedFdb([n({}), n({ ip: undefined }), n({ flags: 0 }), n({ ip: ip('2001:db8::1') }), n({ state: 0x02, mac: mac3 })], DEV, 4);
    expect(got.map((x) => `${x.mac}>${x.dst}`)).toEqual([`${mac2}>192.0.2.12`]);
  });
});

describe('applyOps', () => {
  it('a failed FDB set skips that peer route only; other peers and a missing delete go on', async () => {
    const h = new FakeHandle();
    await h.linkAdd({ name: 'flannel.1', kind: 'vxlan', up: true, vxlan: { vni: 1 } });
    const dev = (await h.linkByName('flannel.1')).index;
    // The third neighSet is the FDB entry of 192.0.2.12 (neighbours first, then FDB).
    h.failOn('neighSet', constants.errno.EINVAL, 3);
    h.take();
    const desired = vxlanDesired([lease(2, mac2), lease(3, mac3)], 4, dev, new Map());
    // A stale route that is already gone: ESRCH, not a failure.
    const ops = planSync(desired, [routeEntry('', 4, pfx('10.244.9.0/24'), ip('10.244.9.0'), dev, true)]);
    const failures = await applyOps(h, ops);
    expect(failures.map((x) => x.op.entry.kind)).toEqual(['fdb']);
    const label = (m: string, a: Partial<NeighSpec & Route>): string => `${m.endsWith('Del') ? 'del ' : ''}${m.startsWith('route') ? `route ${a.dst}` : `${a.fdb ? 'fdb' : 'neigh'} ${a.ip}`}`;
    expect(h.take().map((c) => label(c.method, c.args[0] as Partial<NeighSpec & Route>))).toEqual([
      'del route 10.244.9.0/24',
      'neigh 10.244.2.0',
      'neigh 10.244.3.0',
      'fdb 192.0.2.12',
      'fdb 192.0.2.13',
      'route 10.244.3.0/24',
    ]);
    expect((await h.routeList({ oif: dev })).map((r) => String(r.dst))).toEqual(['10.244.3.0/24']);
  });
});

describe('applyOps pipelining', () => {
  it('requests of one phase are in flight together; the next phase starts only when the previous one is answered', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const log: string[] = [];
    const call = async (what: string) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      log.push(`start ${what.split(' ')[0]}`);
      await new Promise((r) => setTimeout(r, 1));
      log.push(`end ${what.split(' ')[0]}`);
      inFlight--;
    };
    const f: RouteNeighOps = {
      routeReplace: (r) => call(`route ${r.dst}`),
      routeDel: (r) => call(`delroute ${r.dst}`),
      neighSet: (n) => call(`${n.fdb ? 'fdb' : 'neigh'} ${n.ip}`),
      neighDel: (n) => call(`del ${n.ip}`),
    };
    const peers = Array.from({ length: 20 }, (_, i) => lease(i + 2, `0e:00:00:00:00:${(i + 2).toString(16).padStart(2, '0')}`));
    const ops = planSync(vxlanDesired(peers, 4, DEV, new Map()), []);
    expect(await applyOps(f, ops)).toEqual([]);
    expect(maxInFlight).toBe(20);
    // Phases never overlap: all neighbours end before any FDB starts, all FDB before any route.
    const firstStart = (k: string) => log.indexOf(`start ${k}`);
    const lastEnd = (k: string) => log.lastIndexOf(`end ${k}`);
    expect(lastEnd('neigh')).toBeLessThan(firstStart('fdb'));
    expect(lastEnd('fdb')).toBeLessThan(firstStart('route'));
  });
});

describe('vxlan lease data and config', () => {
  it('VtepMAC is validated and lower-cased; missing data is reported', () => {
    expect(vtepOf(lease(2, '0E:00:00:00:00:02'), 4)).toEqual({ mac: mac2 });
    expect(vtepOf(lease(2, 'zz'), 4)).toHaveProperty('error');
    expect(vtepOf({ ...lease(2, mac2), attrs: { publicIP: '192.0.2.12' } }, 4)).toHaveProperty('error');
  });
  it('config defaults and errors', () => {
    expect(parseVxlanConfig({ Type: 'vxlan' })).toEqual({ vni: 1, port: 0, gbp: false, learning: false, directRouting: false, mtu: undefined });
    expect(parseVxlanConfig({ vni: 4, port: 4789, directrouting: true, MTU: 1400 })).toMatchObject({ vni: 4, port: 4789, directRouting: true, mtu: 1400 });
    expect(() => parseVxlanConfig({ VNI: 'x' })).toThrow(/VNI/);
    expect(() => parseVxlanConfig({ Port: 70000 })).toThrow(/Port/);
  });
  it('an existing device is kept only when VNI, local, underlay, port and flags match (port 0 = 8472)', () => {
    const want = { vni: 1, local: ip('192.0.2.11'), extIndex: EXT, port: 0, gbp: false, learning: false };
    const link = { kind: 'vxlan', vxlan: { vni: 1, local: ip('192.0.2.11'), link: EXT, port: 8472, gbp: false, learning: false, l2miss: false, l3miss: false } };
    const L = (v: object) => ({ ...link, vxlan: { ...link.vxlan, ...v } }) as never;
    expect(vxlanCompatible(L({}), want)).toBe(true);
    expect(vxlanCompatible(L({ vni: 2 }), want)).toBe(false);
    expect(vxlanCompatible(L({ local: ip('192.0.2.99') }), want)).toBe(false);
    expect(vxlanCompatible(L({ port: 4789 }), want)).toBe(false);
    expect(vxlanCompatible(L({ l2miss: true }), want)).toBe(false);
    expect(vxlanCompatible({ kind: 'bridge', vxlan: undefined } as never, want)).toBe(false);
  });
});
