// The vxlan programmer against an in-memory fake of the netlink handle:
// partial syncs trust what was applied and read nothing from the kernel,
// full syncs read (and so heal) everything.
import { beforeEach, describe, expect, it } from 'vitest';
import { ErrnoError } from '../../lib/errors.ts';
import { silentLogger } from '../../lib/log.ts';
import type { Handle, Link, LinkSpec, Neigh, NeighSpec, Route } from '../../lib/netlink/index.ts';
import { networkConfigFromObject } from '../config.ts';
import { Prefix } from '../subnet/prefix.ts';
import type { Lease } from '../subnet/types.ts';
import type { Programmer } from './reconciler.ts';
import type { Network } from './types.ts';
import { vxlan } from './vxlan.ts';

const EXT = 2;
const NUD_PERMANENT = 0x80;
const NTF_SELF = 0x02;

/** A kernel of one namespace, as far as the vxlan backend looks at it; records every call. */
class FakeKernel {
  calls: string[] = [];
  links = new Map<string, Link>();
  routes = new Map<string, Route>();
  neighs = new Map<string, Neigh>();
  fdb = new Map<string, Neigh>();
  nextIndex = 10;
  /** Makes the next neighSet for this IP fail. */
  failNeighIp: string | undefined;
  /** Public IPs on-link on EXT (DirectRouting). */
  onLink = new Set<string>();

  handle(): Handle {
    const k = this;
    const rec = (name: string) => k.calls.push(name);
    const fake = {
      async linkFind(name: string) {
        rec('linkFind');
        return k.links.get(name);
      },
      async linkByName(name: string) {
        rec('linkByName');
        const l = k.links.get(name);
        if (!l) throw new ErrnoError('linkByName', 19, name);
        return l;
      },
      async linkAdd(s: LinkSpec) {
        rec('linkAdd');
        const vx = s.vxlan!;
        k.links.set(s.name, {
          index: k.nextIndex++, name: s.name, kind: 'vxlan', mtu: s.mtu ?? 1450, mac: s.mac, flags: 0, up: false, operState: 'down' as Link['operState'],
          master: undefined, parentIndex: undefined, linkNetnsId: undefined, promiscuity: 0, txqlen: undefined,
          vxlan: { vni: vx.vni, local: vx.local!, link: vx.link!, port: vx.port || 8472, learning: vx.learning ?? false, gbp: vx.gbp ?? false },
          bridge: undefined, slaveKind: undefined, bridgePort: undefined,
        });
      },
      async linkSetUp(index: number) {
        rec('linkSetUp');
        for (const l of k.links.values()) if (l.index === index) l.up = true;
      },
      writeSysctl() {
        rec('writeSysctl');
      },
      async addrList() {
        rec('addrList');
        return [];
      },
      async addrAdd() {
        rec('addrAdd');
      },
      async routeGet(dst: string) {
        rec('routeGet');
        return k.onLink.has(dst) ? { family: 4, dst: `${dst}/32`, oif: EXT } : { family: 4, dst: `${dst}/32`, gw: '192.0.2.254', oif: EXT };
      },
      async routeList() {
        rec('routeList');
        return [...k.routes.values()];
      },
      async neighList(f: { family: string }) {
        rec(f.family === 'bridge' ? 'fdbList' : 'neighList');
        return [...(f.family === 'bridge' ? k.fdb : k.neighs).values()];
      },
      async routeReplace(r: Route) {
        rec(`routeReplace ${r.dst}`);
        k.routes.set(r.dst, { ...r });
      },
      async routeDel(r: Route) {
        rec(`routeDel ${r.dst}`);
        if (!k.routes.delete(r.dst)) throw new ErrnoError('routeDel', 3, r.dst);
      },
      async neighSet(n: NeighSpec) {
        if (n.fdb) {
          rec(`fdbSet ${n.ip}`);
          k.fdb.set(`${n.mac}|${n.ip}`, { family: 'bridge', index: n.index, ip: n.ip, mac: n.mac, state: NUD_PERMANENT, flags: NTF_SELF, master: undefined, vlan: undefined });
          return;
        }
        rec(`neighSet ${n.ip}`);
        if (n.ip === k.failNeighIp) {
          k.failNeighIp = undefined;
          throw new ErrnoError('neighSet', 105, n.ip);
        }
        k.neighs.set(n.ip!, { family: 4, index: n.index, ip: n.ip, mac: n.mac, state: NUD_PERMANENT, flags: 0, master: undefined, vlan: undefined });
      },
      async neighDel(n: NeighSpec) {
        rec(n.fdb ? `fdbDel ${n.ip}` : `neighDel ${n.ip}`);
        if (!(n.fdb ? k.fdb.delete(`${n.mac}|${n.ip}`) : k.neighs.delete(n.ip!))) throw new ErrnoError('neighDel', 2, n.ip ?? '');
      },
    };
    return fake as unknown as Handle;
  }

  take(): string[] {
    const c = this.calls;
    this.calls = [];
    return c;
  }
}

function lease(n: number): Lease {
  return {
    enableIPv4: true,
    enableIPv6: false,
    subnet: Prefix.parse(`10.244.${n}.0/24`),
    attrs: { publicIP: `192.0.2.${10 + n}`, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: `0e:00:00:00:00:${n.toString(16).padStart(2, '0')}` } },
  };
}
const peers = (...ns: number[]) => ns.map(lease);
const DUMPS = ['routeList', 'neighList', 'fdbList'];
const DEVICE = ['linkFind', 'linkByName', 'linkAdd', 'linkSetUp', 'writeSysctl', 'addrList', 'addrAdd'];
const writes = (calls: string[]) => calls.filter((c) => !DUMPS.includes(c) && !DEVICE.includes(c) && c !== 'routeGet');

async function setup(k: FakeKernel, extra: Record<string, unknown> = {}): Promise<Programmer> {
  const cfg = networkConfigFromObject({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan', ...extra } });
  const nw = await vxlan().registerNetwork(cfg, { index: EXT, name: 'eth0', mtu: 1500, ifaceAddr: '192.0.2.1' }, { handle: k.handle(), log: silentLogger() });
  return (nw as Network & { programmer(): Programmer }).programmer();
}

describe('vxlan programmer: full and partial syncs', () => {
  let k: FakeKernel;
  let p: Programmer;
  beforeEach(async () => {
    k = new FakeKernel();
    p = await setup(k);
    k.take();
  });

  it('a partial sync reads nothing and writes only the changed peer', async () => {
    expect(await p.sync(peers(2, 3), { full: true })).toEqual([]);
    const first = k.take();
    expect(first).toEqual(expect.arrayContaining([...DUMPS, 'linkFind']));
    expect(writes(first)).toEqual(['neighSet 10.244.2.0', 'neighSet 10.244.3.0', 'fdbSet 192.0.2.12', 'fdbSet 192.0.2.13', 'routeReplace 10.244.2.0/24', 'routeReplace 10.244.3.0/24']);

    expect(await p.sync(peers(2, 3, 4), { full: false })).toEqual([]);
    expect(k.take()).toEqual(['neighSet 10.244.4.0', 'fdbSet 192.0.2.14', 'routeReplace 10.244.4.0/24']);

    // Nothing changed: no call at all.
    expect(await p.sync(peers(2, 3, 4), { full: false })).toEqual([]);
    expect(k.take()).toEqual([]);

    // A removed peer: its entries go, route first.
    expect(await p.sync(peers(2, 4), { full: false })).toEqual([]);
    expect(k.take()).toEqual(['routeDel 10.244.3.0/24', 'fdbDel 192.0.2.13', 'neighDel 10.244.3.0']);
    expect([...k.routes.keys()].sort()).toEqual(['10.244.2.0/24', '10.244.4.0/24']);
  });

  it('after a failure the next sync reads the kernel even when asked for a partial one, and repairs the peer', async () => {
    await p.sync(peers(2), { full: true });
    k.take();
    k.failNeighIp = '10.244.3.0';
    const failures = await p.sync(peers(2, 3), { full: false });
    expect(failures.map((f) => f.kind)).toEqual(['neigh']);
    // The FDB entry and route of the peer whose neighbour failed are not installed.
    expect(writes(k.take())).toEqual(['neighSet 10.244.3.0']);
    expect(k.routes.has('10.244.3.0/24')).toBe(false);

    expect(await p.sync(peers(2, 3), { full: false })).toEqual([]);
    const calls = k.take();
    expect(calls).toEqual(expect.arrayContaining(DUMPS));
    expect(writes(calls)).toEqual(['neighSet 10.244.3.0', 'fdbSet 192.0.2.13', 'routeReplace 10.244.3.0/24']);
  });

  it('self-heal: an entry removed behind our back stays missing on a partial sync and is restored by the next full one', async () => {
    await p.sync(peers(2, 3), { full: true });
    k.routes.delete('10.244.2.0/24');
    k.neighs.delete('10.244.3.0');
    k.take();
    await p.sync(peers(2, 3), { full: false });
    expect(k.take()).toEqual([]);
    expect(k.routes.has('10.244.2.0/24')).toBe(false);

    expect(await p.sync(peers(2, 3), { full: true })).toEqual([]);
    expect(writes(k.take())).toEqual(['neighSet 10.244.3.0', 'routeReplace 10.244.2.0/24']);
    expect(k.routes.has('10.244.2.0/24') && k.neighs.has('10.244.3.0')).toBe(true);
  });

  it('a full sync recreates a deleted device and replays every entry', async () => {
    await p.sync(peers(2), { full: true });
    const old = k.links.get('flannel.1')!.index;
    // Deleting a device takes its entries with it.
    k.links.clear();
    k.routes.clear();
    k.neighs.clear();
    k.fdb.clear();
    k.take();
    expect(await p.sync(peers(2), { full: true })).toEqual([]);
    const calls = k.take();
    expect(calls).toContain('linkAdd');
    expect(writes(calls)).toEqual(['neighSet 10.244.2.0', 'fdbSet 192.0.2.12', 'routeReplace 10.244.2.0/24']);
    expect(k.links.get('flannel.1')!.index).not.toBe(old);
    expect(k.routes.get('10.244.2.0/24')!.oif).toBe(k.links.get('flannel.1')!.index);
  });

  it('without peers only the device is ensured, and the first sync with peers reads the kernel', async () => {
    k.routes.set('10.244.9.0/24', { family: 4, dst: '10.244.9.0/24', gw: '10.244.9.0', oif: 10, onlink: true, protocol: 70, type: 1 });
    expect(await p.sync(null, { full: true })).toEqual([]);
    expect(writes(k.take())).toEqual([]);
    // A stale route of a peer that went away while we were down.
    await p.sync(peers(2), { full: false });
    const calls = k.take();
    expect(calls).toEqual(expect.arrayContaining(DUMPS));
    expect(writes(calls)).toEqual(['routeDel 10.244.9.0/24', 'neighSet 10.244.2.0', 'fdbSet 192.0.2.12', 'routeReplace 10.244.2.0/24']);
  });

  it('DirectRouting: one route lookup per new public IP on partial syncs, all redone on a full one', async () => {
    k = new FakeKernel();
    p = await setup(k, { DirectRouting: true });
    k.onLink.add('192.0.2.12');
    await p.sync(peers(2, 3), { full: true });
    expect(k.take().filter((c) => c === 'routeGet')).toHaveLength(2);
    expect(k.routes.get('10.244.2.0/24')).toMatchObject({ gw: '192.0.2.12', oif: EXT });
    expect(k.routes.get('10.244.3.0/24')).toMatchObject({ gw: '10.244.3.0', onlink: true });

    await p.sync(peers(2, 3, 4), { full: false });
    expect(k.take()).toEqual(['routeGet', 'neighSet 10.244.4.0', 'fdbSet 192.0.2.14', 'routeReplace 10.244.4.0/24']);

    // Peer 3 became on-link: seen on the next full sync.
    k.onLink.add('192.0.2.13');
    await p.sync(peers(2, 3, 4), { full: true });
    const calls = k.take();
    expect(calls.filter((c) => c === 'routeGet')).toHaveLength(3);
    expect(writes(calls)).toEqual(['fdbDel 192.0.2.13', 'neighDel 10.244.3.0', 'routeReplace 10.244.3.0/24']);
    expect(k.routes.get('10.244.3.0/24')).toMatchObject({ gw: '192.0.2.13', oif: EXT });
  });
});
