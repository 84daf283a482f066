// flanneld backends on real kernels: nodes are namespaces on a shared
// underlay bridge (192.0.2.0/24), each with a pod namespace behind a bridge
// carrying the node's pod subnet. The backends get static lease sets (no
// etcd) and must carry pod-to-pod traffic, program exactly their entries,
// remove stale ones and heal what is removed by hand.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { World } from '../harness/world.ts';
import { attachPod, underlayNodes } from '../harness/underlay.ts';
import { rt, type Handle } from '../../lib/netlink/index.ts';
import { silentLogger } from '../../lib/log.ts';
import { networkConfigFromObject } from '../../flanneld/config.ts';
import type { Lease, LeaseWatchResult } from '../../flanneld/subnet/types.ts';
import { backends } from '../../flanneld/backend/index.ts';
import type { ExternalInterface, Network } from '../../flanneld/backend/index.ts';
import { BackendConfigError } from '../../flanneld/backend/types.ts';
import { RTPROT_FLANNEL } from '../../flanneld/backend/reconcile.ts';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import { addrText, neighText, routeText } from '../harness/text.ts';

const run = promisify(execFile);

/** A lease stream the test feeds by hand. */
class Feed implements AsyncIterable<LeaseWatchResult> {
  private queue: LeaseWatchResult[] = [];
  private wake: (() => void) | undefined;
  constructor(private readonly signal: AbortSignal) {
    signal.addEventListener('abort', () => this.wake?.());
  }
  push(r: LeaseWatchResult): void {
    this.queue.push(r);
    this.wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<LeaseWatchResult> {
    while (!this.signal.aborted) {
      const r = this.queue.shift();
      if (r) {
        yield r;
        continue;
      }
      await new Promise<void>((res) => (this.wake = res));
      this.wake = undefined;
    }
  }
}

interface Node {
  i: number;
  ns: string;
  nsName: string;
  pod: string;
  h: Handle;
  ext: ExternalInterface;
  podIP: string;
  subnet: string;
}

async function buildWorld(w: World, n: number): Promise<Node[]> {
  const nodes: Node[] = [];
  for (const u of await underlayNodes(w, n)) {
    const { pod, podIP } = await attachPod(w, u);
    nodes.push({
      i: u.i,
      ns: u.ns,
      nsName: u.nsName,
      pod,
      h: u.h,
      ext: { index: u.eth.index, name: 'eth0', mtu: u.eth.mtu, ifaceAddr: IPAddr.mustParse(u.ip), extAddr: IPAddr.mustParse(u.ip) },
      podIP,
      subnet: `10.244.${u.i}.0/24`,
    });
  }
  return nodes;
}

const cfgFor = (type: string, extra: Record<string, unknown> = {}) =>
  networkConfigFromObject({ Network: '10.244.0.0/16', Backend: { Type: type, ...extra } });

function leaseOf(node: Node, nw: Network): Lease {
  return { enableIPv4: true, enableIPv6: false, subnet: IPPrefix.mustParse(node.subnet), attrs: nw.leaseAttrs() };
}

async function ping(pod: string, ip: string): Promise<{ ok: boolean; out: string }> {
  try {
    const { stdout } = await run('ip', ['netns', 'exec', pod, 'ping', '-n', '-c', '2', '-W', '2', ip]);
    return { ok: true, out: stdout };
  } catch (err) {
    const e = err as { stdout?: string };
    return { ok: false, out: e.stdout ?? '' };
  }
}

/** Polls `fn` until it returns true (generous deadline; no timing assertion). */
async function eventually(fn: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`not reached within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const ipIn = async (ns: string, ...args: string[]): Promise<string> => (await run('ip', ['-netns', ns, ...args])).stdout;

/** Starts a node's network run; returns stop(). */
function start(nw: Network, snapshot: Lease[]): { feed: Feed; stop: () => Promise<void> } {
  const ac = new AbortController();
  const feed = new Feed(ac.signal);
  feed.push({ snapshot });
  const done = nw.run(feed, ac.signal);
  return {
    feed,
    stop: async () => {
      ac.abort();
      await done;
    },
  };
}

/**
 * Registers `type` on every node, publishes each node's lease, and runs all
 * of them with the full lease set as the first snapshot. Fills the given
 * arrays (the suites keep references to them) and returns node 1's feed.
 */
async function startAll(type: 'vxlan' | 'host-gw' | 'udp', nodes: Node[], nets: Network[], leases: Lease[], stops: (() => Promise<void>)[]): Promise<Feed> {
  for (const n of nodes) {
    const nw = await backends[type]().registerNetwork(cfgFor(type), n.ext, { handle: n.h, log: silentLogger(), resyncInterval: 1000 });
    nets.push(nw);
    const l = leaseOf(n, nw);
    leases.push(l);
    await nw.setLease(l);
  }
  const started = nets.map((nw) => start(nw, leases));
  for (const s of started) stops.push(s.stop);
  return started[0]!.feed;
}

describe('vxlan backend', () => {
  const w = new World('fv');
  let nodes: Node[];
  const nets: Network[] = [];
  const leases: Lease[] = [];
  const stops: (() => Promise<void>)[] = [];
  let feed1: Feed;
  let n1: Node;

  beforeAll(async () => {
    nodes = await buildWorld(w, 3);
    n1 = nodes[0]!;
    feed1 = await startAll('vxlan', nodes, nets, leases, stops);
  });
  afterAll(async () => {
    for (const s of stops) await s().catch(() => undefined);
    await w.cleanup();
  });

  const mac = (k: number): string => (leases[k]!.attrs.backendData as { VtepMAC: string }).VtepMAC;

  // The test reads the kernel over its own socket, not the daemon's.
  const readers = new Map<Node, Handle>();
  async function state(node: Node) {
    let h = readers.get(node);
    if (!h) readers.set(node, (h = w.handle(node.ns)));
    const dev = await h.linkByName('flannel.1');
    const routes = (await h.routeList({ family: 4 })).filter((r) => r.oif === dev.index).map(routeText);
    const neigh = (await h.neighList({ family: 4, index: dev.index })).filter((x) => x.state & rt.NUD_PERMANENT).map(neighText);
    const fdb = (await h.neighList({ family: 'bridge', index: dev.index })).filter((x) => x.state & rt.NUD_PERMANENT).map(neighText);
    return { dev, routes, neigh, fdb };
  }

  test('device: name, VNI, port, local, MTU ext−50, /32 lease address, MAC published in the lease', async () => {
    const { dev } = await state(n1);
    expect(dev.vxlan).toMatchObject({ vni: 1, port: 8472, local: IPAddr.mustParse('192.0.2.11'), link: n1.ext.index, learning: false });
    expect(dev.mtu).toBe(n1.ext.mtu - 50);
    expect(nets[0]!.mtu()).toBe(n1.ext.mtu - 50);
    expect(dev.mac).toBe(mac(0));
    expect(dev.up).toBe(true);
    expect((await w.handle(n1.ns).addrList({ index: dev.index, family: 4 })).map((a) => addrText(a).address)).toEqual(['10.244.1.0/32']);
    expect(leases[0]!.attrs).toMatchObject({ backendType: 'vxlan', publicIP: '192.0.2.11', backendData: { VNI: 1 } });
  });

  test('pod-to-pod ping across nodes', async () => {
    await eventually(async () => (await ping(nodes[0]!.pod, nodes[1]!.podIP)).ok, 'pod1 → pod2');
    expect((await ping(nodes[0]!.pod, nodes[2]!.podIP)).ok).toBe(true);
    expect((await ping(nodes[2]!.pod, nodes[1]!.podIP)).ok).toBe(true);
  });

  test('per peer: neighbour, FDB entry and onlink route, nothing else', async () => {
    const s = await state(n1);
    expect(s.neigh.map((x) => [x.ip, x.mac]).sort()).toEqual([
      ['10.244.2.0', mac(1)],
      ['10.244.3.0', mac(2)],
    ]);
    expect(s.fdb.map((x) => [x.mac, x.ip]).sort()).toEqual(
      [
        [mac(1), '192.0.2.12'],
        [mac(2), '192.0.2.13'],
      ].sort(),
    );
    expect(s.routes.map((r) => [r.dst, r.gw, r.onlink, r.protocol]).sort()).toEqual([
      ['10.244.2.0/24', '10.244.2.0', true, RTPROT_FLANNEL],
      ['10.244.3.0/24', '10.244.3.0', true, RTPROT_FLANNEL],
    ]);
    expect(await ipIn(n1.nsName, 'route', 'show', '10.244.2.0/24')).toMatch(/via 10\.244\.2\.0 dev flannel\.1 .*onlink/);
  });

  test('a garbage lease update is ignored and the peer stays programmed', async () => {
    const bad: Lease = { ...leases[1]!, attrs: { ...leases[1]!.attrs, backendData: { VNI: 1, VtepMAC: 'not-a-mac' } } };
    feed1.push({ events: [{ type: 'added', lease: bad }] });
    await new Promise((r) => setTimeout(r, 1500));
    const s = await state(n1);
    expect(s.neigh.find((x) => x.ip === '10.244.2.0')?.mac).toBe(mac(1));
    expect((await ping(n1.pod, nodes[1]!.podIP)).ok).toBe(true);
  });

  test('a peer whose public IP and MAC change: old FDB entry removed, new one in place', async () => {
    const moved: Lease = { ...leases[2]!, attrs: { ...leases[2]!.attrs, publicIP: '192.0.2.99', backendData: { VNI: 1, VtepMAC: '0e:00:00:00:99:99' } } };
    feed1.push({ events: [{ type: 'added', lease: moved }] });
    await eventually(async () => {
      const s = await state(n1);
      const f = s.fdb.filter((x) => x.ip === '192.0.2.99' || x.ip === '192.0.2.13');
      return f.length === 1 && f[0]!.mac === '0e:00:00:00:99:99' && s.neigh.some((x) => x.ip === '10.244.3.0' && x.mac === '0e:00:00:00:99:99');
    }, 'fdb moved to the new public IP');
    feed1.push({ events: [{ type: 'added', lease: leases[2]! }] });
    await eventually(async () => (await state(n1)).fdb.some((x) => x.ip === '192.0.2.13' && x.mac === mac(2)), 'fdb back');
    expect((await state(n1)).fdb.some((x) => x.ip === '192.0.2.99')).toBe(false);
  });

  test('manually removed route and neighbour are restored', async () => {
    await ipIn(n1.nsName, 'route', 'del', '10.244.2.0/24');
    await ipIn(n1.nsName, 'neigh', 'del', '10.244.3.0', 'dev', 'flannel.1');
    await eventually(async () => {
      const s = await state(n1);
      return s.routes.some((r) => r.dst === '10.244.2.0/24') && s.neigh.some((x) => x.ip === '10.244.3.0');
    }, 'route and neighbour restored');
    expect((await ping(n1.pod, nodes[1]!.podIP)).ok).toBe(true);
  });

  test('a deleted flannel.1 is recreated with the same MAC and all entries replayed', async () => {
    const before = await state(n1);
    await ipIn(n1.nsName, 'link', 'del', 'flannel.1');
    await eventually(async () => {
      try {
        const s = await state(n1);
        return s.routes.length === 2 && s.neigh.length === 2 && s.fdb.length === 2;
      } catch {
        return false;
      }
    }, 'device recreated');
    const after = await state(n1);
    expect(after.dev.index).not.toBe(before.dev.index);
    expect(after.dev.mac).toBe(before.dev.mac);
    expect((await w.handle(n1.ns).addrList({ index: after.dev.index, family: 4 })).map((a) => addrText(a).address)).toEqual(['10.244.1.0/32']);
    await eventually(async () => (await ping(n1.pod, nodes[2]!.podIP)).ok, 'ping after re-create');
  });

  test('a removed peer loses its entries', async () => {
    feed1.push({ events: [{ type: 'removed', lease: leases[2]! }] });
    await eventually(async () => {
      const s = await state(n1);
      return !s.neigh.some((x) => x.ip === '10.244.3.0') && !s.fdb.some((x) => x.mac === mac(2)) && !s.routes.some((r) => r.dst === '10.244.3.0/24');
    }, 'peer 3 entries removed');
    const s = await state(n1);
    expect(s.routes.map((r) => r.dst)).toEqual(['10.244.2.0/24']);
  });

  test('entries of a peer deleted while the daemon was down are removed at start', async () => {
    // Restore peer 3, then stop node 1's daemon: its entries stay in the kernel.
    feed1.push({ events: [{ type: 'added', lease: leases[2]! }] });
    await eventually(async () => (await state(n1)).routes.length === 2, 'peer 3 back');
    await stops[0]!();
    expect((await state(n1)).routes.length).toBe(2);
    // Peer 3 is gone from the store when node 1 comes back.
    const s = start(nets[0]!, [leases[0]!, leases[1]!]);
    stops[0] = s.stop;
    await eventually(async () => {
      const st = await state(n1);
      return st.routes.length === 1 && st.neigh.length === 1 && st.fdb.length === 1;
    }, 'stale peer removed');
    const st = await state(n1);
    expect(st.routes[0]!.dst).toBe('10.244.2.0/24');
    expect(st.neigh[0]!.mac).toBe(mac(1));
    expect((await ping(n1.pod, nodes[1]!.podIP)).ok).toBe(true);
  });
});

describe('host-gw backend', () => {
  const w = new World('fh');
  let nodes: Node[];
  const nets: Network[] = [];
  const leases: Lease[] = [];
  const stops: (() => Promise<void>)[] = [];
  let feed1: Feed;

  beforeAll(async () => {
    nodes = await buildWorld(w, 3);
    feed1 = await startAll('host-gw', nodes, nets, leases, stops);
  });
  afterAll(async () => {
    for (const s of stops) await s().catch(() => undefined);
    await w.cleanup();
  });

  const readers = new Map<Node, Handle>();
  const reader = (n: Node): Handle => readers.get(n) ?? (readers.set(n, w.handle(n.ns)), readers.get(n)!);
  const ours = async (n: Node) => (await reader(n).routeList({ family: 4 })).filter((r) => r.oif === n.ext.index && r.gw !== undefined).map(routeText);

  test('refuses a public IP that differs from the interface address (NAT)', async () => {
    const n = nodes[0]!;
    await expect(backends['host-gw']().registerNetwork(cfgFor('host-gw'), { ...n.ext, extAddr: IPAddr.mustParse('203.0.113.1') }, { handle: n.h, log: silentLogger() })).rejects.toBeInstanceOf(
      BackendConfigError,
    );
  });

  test('MTU is the external MTU; lease attrs carry type and public IP', () => {
    expect(nets[0]!.mtu()).toBe(nodes[0]!.ext.mtu);
    expect(leases[0]!.attrs).toEqual({ backendType: 'host-gw', publicIP: '192.0.2.11' });
  });

  test('one route per peer via its public IP; pod-to-pod ping', async () => {
    const n1 = nodes[0]!;
    await eventually(async () => (await ours(n1)).length === 2, 'routes');
    expect((await ours(n1)).map((r) => [r.dst, r.gw]).sort()).toEqual([
      ['10.244.2.0/24', '192.0.2.12'],
      ['10.244.3.0/24', '192.0.2.13'],
    ]);
    expect((await ping(n1.pod, nodes[1]!.podIP)).ok).toBe(true);
    expect((await ping(nodes[2]!.pod, n1.podIP)).ok).toBe(true);
  });

  test('a manually deleted route is restored; a removed peer loses its route', async () => {
    const n1 = nodes[0]!;
    await ipIn(n1.nsName, 'route', 'del', '10.244.2.0/24');
    await eventually(async () => (await ours(n1)).some((r) => r.dst === '10.244.2.0/24'), 'route restored');
    feed1.push({ events: [{ type: 'removed', lease: leases[2]! }] });
    await eventually(async () => !(await ours(n1)).some((r) => r.dst === '10.244.3.0/24'), 'route removed');
    expect((await ping(n1.pod, nodes[2]!.podIP)).ok).toBe(false);
  });

  test('a stale route left by a previous run (upstream-style, proto boot) is removed at start', async () => {
    const n1 = nodes[0]!;
    await stops[0]!();
    await ipIn(n1.nsName, 'route', 'add', '10.244.77.0/24', 'via', '192.0.2.77', 'dev', 'eth0');
    const s = start(nets[0]!, [leases[0]!, leases[1]!]);
    stops[0] = s.stop;
    await eventually(async () => !(await ours(n1)).some((r) => r.dst === '10.244.77.0/24'), 'stale route removed');
    expect((await ours(n1)).map((r) => r.dst)).toEqual(['10.244.2.0/24']);
  });
});

describe('udp backend', () => {
  const w = new World('fu');
  let nodes: Node[];
  const nets: Network[] = [];
  const leases: Lease[] = [];
  const stops: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    nodes = await buildWorld(w, 2);
    await startAll('udp', nodes, nets, leases, stops);
  });
  afterAll(async () => {
    for (const s of stops) await s().catch(() => undefined);
    await w.cleanup();
  });

  test('flannel0: TUN, /32 lease address, MTU ext−28, route for the Network', async () => {
    const n1 = nodes[0]!;
    const dev = await w.handle(n1.ns).linkByName('flannel0');
    expect(dev.mtu).toBe(n1.ext.mtu - 28);
    expect(nets[0]!.mtu()).toBe(n1.ext.mtu - 28);
    expect(dev.up).toBe(true);
    expect((await w.handle(n1.ns).addrList({ index: dev.index, family: 4 })).map((a) => addrText(a).address)).toEqual(['10.244.1.0/32']);
    expect(await ipIn(n1.nsName, 'route', 'show', '10.244.0.0/16')).toMatch(/10\.244\.0\.0\/16 dev flannel0/);
    expect(await ipIn(n1.nsName, '-d', 'link', 'show', 'flannel0')).toMatch(/tun/);
    expect(leases[0]!.attrs).toEqual({ publicIP: '192.0.2.11' });
  });

  test('pod-to-pod ping; TTL decremented once per datapath hop (64 − 2 kernel − 2 udp)', async () => {
    await eventually(async () => (await ping(nodes[0]!.pod, nodes[1]!.podIP)).ok, 'pod1 → pod2');
    const r = await ping(nodes[1]!.pod, nodes[0]!.podIP);
    expect(r.ok).toBe(true);
    expect(r.out).toMatch(/ttl=60 /);
  });

  test('an address in the Network with no peer gets Destination Net Unreachable', async () => {
    const r = await ping(nodes[0]!.pod, '10.244.99.5');
    expect(r.ok).toBe(false);
    expect(r.out).toMatch(/From 10\.244\.1\.0 .*Destination Net Unreachable/);
  });
});
