// The vxlan programmer against lib/netlink's FakeHandle:
// partial syncs trust what was applied and read nothing from the kernel,
// full syncs read (and so heal) everything.
import { constants } from 'node:os';
import { beforeEach, describe, expect, it } from 'vitest';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import { silentLogger } from '../../lib/log.ts';
import { FakeHandle, type FakeCall } from '../../lib/netlink/fake.ts';
import type { Route } from '../../lib/netlink/index.ts';
import { networkConfigFromObject } from '../config.ts';
import type { Lease } from '../subnet/types.ts';
import type { Programmer } from './reconciler.ts';
import type { Network } from './types.ts';
import { vxlan } from './vxlan.ts';

const ip = (s: string): IPAddr => IPAddr.mustParse(s);
const pfx = (s: string): IPPrefix => IPPrefix.mustParse(s);

/** A call as these tests name it: writes with the address they concern, dumps by kind. */
function label(c: FakeCall): string {
  const a = c.args[0] as { family?: unknown; fdb?: boolean; ip?: unknown; dst?: unknown } | undefined;
  switch (c.method) {
    case 'neighList':
      return a?.family === 'bridge' ? 'fdbList' : 'neighList';
    case 'neighSet':
    case 'neighDel':
      return `${a?.fdb ? c.method.replace('neigh', 'fdb') : c.method} ${a?.ip}`;
    case 'routeReplace':
    case 'routeDel':
      return `${c.method} ${a?.dst}`;
    default:
      return c.method;
  }
}

/**
 * The node namespace: eth0 (ifindex 2) with a default route via 192.0.2.254;
 * `onLink` adds a host route for a peer's public IP (DirectRouting sees it as direct).
 */
class Node {
  readonly h = new FakeHandle();
  ext = 0;

  async init(): Promise<void> {
    await this.h.linkAdd({ name: 'eth0', kind: 'dummy', up: true });
    this.ext = (await this.h.linkByName('eth0')).index;
    await this.h.addrAdd(this.ext, { address: pfx('192.0.2.1/32') });
    await this.h.routeAdd({ family: 4, dst: IPPrefix.any(4), gw: ip('192.0.2.254'), oif: this.ext, onlink: true });
  }

  async onLink(pub: string): Promise<void> {
    await this.h.routeAdd({ family: 4, dst: IPPrefix.host(ip(pub)), oif: this.ext });
  }

  take(): string[] {
    return this.h.take().map(label);
  }

  /** Looks at the fake without the look showing up in the recorded calls. */
  private async peek<T>(fn: () => Promise<T>): Promise<T> {
    const before = this.h.calls.length;
    try {
      return await fn();
    } finally {
      this.h.calls.splice(before);
    }
  }

  route(dst: string): Promise<Route | undefined> {
    return this.peek(async () => (await this.h.routeList({ family: 4 })).find((r) => String(r.dst) === dst));
  }

  routeDsts(): Promise<string[]> {
    return this.peek(async () => (await this.h.routeList({ family: 4 })).filter((r) => r.protocol === 70).map((r) => String(r.dst)).sort());
  }

  hasNeigh(addr: string): Promise<boolean> {
    return this.peek(async () => (await this.h.neighList({ family: 4 })).some((n) => String(n.ip) === addr));
  }

  device(): Promise<number> {
    return this.peek(async () => (await this.h.linkByName('flannel.1')).index);
  }
}

function lease(n: number): Lease {
  return {
    enableIPv4: true,
    enableIPv6: false,
    subnet: IPPrefix.mustParse(`10.244.${n}.0/24`),
    attrs: { publicIP: `192.0.2.${10 + n}`, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: `0e:00:00:00:00:${n.toString(16).padStart(2, '0')}` } },
  };
}
const peers = (...ns: number[]) => ns.map(lease);
const DUMPS = ['routeList', 'neighList', 'fdbList'];
const DEVICE = ['linkFind', 'linkByName', 'linkAdd', 'linkSetUp', 'writeSysctl', 'addrList', 'addrAdd'];
const writes = (calls: string[]) => calls.filter((c) => !DUMPS.includes(c) && !DEVICE.includes(c) && c !== 'routeGet');

async function setup(k: Node, extra: Record<string, unknown> = {}): Promise<Programmer> {
  await k.init();
  const cfg = networkConfigFromObject({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan', ...extra } });
  const nw = await vxlan().registerNetwork(cfg, { index: k.ext, name: 'eth0', mtu: 1500, ifaceAddr: ip('192.0.2.1') }, { handle: k.h, log: silentLogger() });
  return (nw as Network & { programmer(): Programmer }).programmer();
}

describe('vxlan programmer: full and partial syncs', () => {
  let k: Node;
  let p: Programmer;
  beforeEach(async () => {
    k = new Node();
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
    expect(await k.routeDsts()).toEqual(['10.244.2.0/24', '10.244.4.0/24']);
  });

  it('after a failure the next sync reads the kernel even when asked for a partial one, and repairs the peer', async () => {
    await p.sync(peers(2), { full: true });
    k.take();
    k.h.failOn('neighSet', constants.errno.ENOBUFS);
    const failures = await p.sync(peers(2, 3), { full: false });
    expect(failures.map((f) => f.kind)).toEqual(['neigh']);
    // The FDB entry and route of the peer whose neighbour failed are not installed.
    expect(writes(k.take())).toEqual(['neighSet 10.244.3.0']);
    expect(await k.route('10.244.3.0/24')).toBeUndefined();

    expect(await p.sync(peers(2, 3), { full: false })).toEqual([]);
    const calls = k.take();
    expect(calls).toEqual(expect.arrayContaining(DUMPS));
    expect(writes(calls)).toEqual(['neighSet 10.244.3.0', 'fdbSet 192.0.2.13', 'routeReplace 10.244.3.0/24']);
  });

  it('self-heal: an entry removed behind our back stays missing on a partial sync and is restored by the next full one', async () => {
    await p.sync(peers(2, 3), { full: true });
    await k.h.routeDel({ family: 4, dst: pfx('10.244.2.0/24') });
    await k.h.neighDel({ index: await k.device(), ip: ip('10.244.3.0'), mac: '0e:00:00:00:00:03' });
    k.take();
    await p.sync(peers(2, 3), { full: false });
    expect(k.take()).toEqual([]);
    expect(await k.route('10.244.2.0/24')).toBeUndefined();

    expect(await p.sync(peers(2, 3), { full: true })).toEqual([]);
    expect(writes(k.take())).toEqual(['neighSet 10.244.3.0', 'routeReplace 10.244.2.0/24']);
    expect((await k.route('10.244.2.0/24')) !== undefined && (await k.hasNeigh('10.244.3.0'))).toBe(true);
  });

  it('a full sync recreates a deleted device and replays every entry', async () => {
    await p.sync(peers(2), { full: true });
    const old = await k.device();
    // Deleting a device takes its entries with it.
    await k.h.linkDel(old);
    expect(await k.routeDsts()).toEqual([]);
    k.take();
    expect(await p.sync(peers(2), { full: true })).toEqual([]);
    const calls = k.take();
    expect(calls).toContain('linkAdd');
    expect(writes(calls)).toEqual(['neighSet 10.244.2.0', 'fdbSet 192.0.2.12', 'routeReplace 10.244.2.0/24']);
    expect(await k.device()).not.toBe(old);
    expect((await k.route('10.244.2.0/24'))!.oif).toBe(await k.device());
  });

  it('without peers only the device is ensured, and the first sync with peers reads the kernel', async () => {
    await k.h.routeAdd({ family: 4, dst: pfx('10.244.9.0/24'), gw: ip('10.244.9.0'), oif: await k.device(), onlink: true, protocol: 70 });
    k.take();
    expect(await p.sync(null, { full: true })).toEqual([]);
    expect(writes(k.take())).toEqual([]);
    // A stale route of a peer that went away while we were down.
    await p.sync(peers(2), { full: false });
    const calls = k.take();
    expect(calls).toEqual(expect.arrayContaining(DUMPS));
    expect(writes(calls)).toEqual(['routeDel 10.244.9.0/24', 'neighSet 10.244.2.0', 'fdbSet 192.0.2.12', 'routeReplace 10.244.2.0/24']);
  });

  it('DirectRouting: one route lookup per new public IP on partial syncs, all redone on a full one', async () => {
    k = new Node();
    p = await setup(k, { DirectRouting: true });
    await k.onLink('192.0.2.12');
    await p.sync(peers(2, 3), { full: true });
    expect(k.take().filter((c) => c === 'routeGet')).toHaveLength(2);
    expect(await k.route('10.244.2.0/24')).toMatchObject({ gw: ip('192.0.2.12'), oif: k.ext });
    expect(await k.route('10.244.3.0/24')).toMatchObject({ gw: ip('10.244.3.0'), onlink: true });

    await p.sync(peers(2, 3, 4), { full: false });
    expect(k.take()).toEqual(['routeGet', 'neighSet 10.244.4.0', 'fdbSet 192.0.2.14', 'routeReplace 10.244.4.0/24']);

    // Peer 3 became on-link: seen on the next full sync.
    await k.onLink('192.0.2.13');
    k.take();
    await p.sync(peers(2, 3, 4), { full: true });
    const calls = k.take();
    expect(calls.filter((c) => c === 'routeGet')).toHaveLength(3);
    expect(writes(calls)).toEqual(['fdbDel 192.0.2.13', 'neighDel 10.244.3.0', 'routeReplace 10.244.3.0/24']);
    expect(await k.route('10.244.3.0/24')).toMatchObject({ gw: ip('192.0.2.13'), oif: k.ext });
  });
});
