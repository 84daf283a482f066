// Exercises the runtime seam through the shared code above it: lib/netlink's
// Handle (requests, pipelined batches, dumps larger than one datagram,
// errno ACKs) and lib/sys (setns through lib/netns, flock). Run inside a
// network namespace made for it, under Bun (`bun --preload
// lib/runtime/bun-preload.ts`) or Node (bundled); prints one JSON object
// that test/netns/runtime-bun.test.ts compares across the runtimes.
// argv: <path of a second, empty netns> <scratch file for flock> <name for a netns to create and delete>
import { closeSync, openSync } from 'node:fs';
import { IPAddr, IPPrefix } from '../../../lib/ip/index.ts';
import { ErrnoError, NetError } from '../../../lib/errors.ts';
import { Handle, rt } from '../../../lib/netlink/index.ts';
import { createNamedNetns, deleteNamedNetns, netnsInode, openNetns, withNetnsSync } from '../../../lib/netns/index.ts';
import { runtimeName } from '../../../lib/runtime/node.ts';
import {
  AF_UNIX,
  CLONE_NEWNET,
  EFD_CLOEXEC,
  LOCK_EX,
  LOCK_NB,
  LOCK_UN,
  MSG_DONTWAIT,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOL_SOCKET,
  bind,
  eventfd,
  flock,
  flockSync,
  ioctl,
  ioctlInt,
  recv,
  sendto,
  setns,
  setsockoptInt,
  sockaddrUn,
  socket,
} from '../../../lib/sys/index.ts';

const [otherNs, lockFile, scratchNs] = process.argv.slice(2);
if (!otherNs || !lockFile || !scratchNs) throw new Error('usage: netlink-driver <netns path> <lock file> <netns name>');

const prefix = (s: string): IPPrefix => IPPrefix.parse(s) ?? (() => { throw new Error(`bad prefix ${s}`); })();

/** The errno a failing call carries (as ErrnoError), or 'ok'. */
async function errnoOf(p: Promise<unknown> | (() => unknown)): Promise<string | number> {
  try {
    await (typeof p === 'function' ? p() : p);
    return 'ok';
  } catch (err) {
    if (err instanceof ErrnoError) return `${err.errno} ${err.code} ${err.message}`;
    throw err;
  }
}

async function netlink(): Promise<Record<string, unknown>> {
  using h = Handle.open();
  await h.linkAdd({ name: 'kn-a', kind: 'veth', veth: { peerName: 'kn-b' } });
  const a = await h.linkByName('kn-a');
  const b = await h.linkByName('kn-b');
  await Promise.all([h.linkSetUp(a.index), h.linkSetUp(b.index)]);
  // 3 × 250 IPv4 addresses requested in one tick: pipelined into one send,
  // and their dump needs several datagrams.
  const v4 = ['192.0.2', '198.51.100', '203.0.113'].flatMap((net) => Array.from({ length: 250 }, (_, i) => prefix(`${net}.${i + 1}/32`)));
  for (let i = 0; i < v4.length; i += 250) await Promise.all(v4.slice(i, i + 250).map((address) => h.addrAdd(a.index, { address })));
  const v6routes = Array.from({ length: 600 }, (_, i) => prefix(`fd00:7::${(i + 1).toString(16)}/128`));
  for (let i = 0; i < v6routes.length; i += 200) await Promise.all(v6routes.slice(i, i + 200).map((dst) => h.routeAdd({ family: 6, dst, oif: a.index })));
  const addrs = await h.addrList({ index: a.index, family: 4 });
  const routes = (await h.routeList({ family: 6 })).filter((r) => r.oif === a.index && r.dst.toString().startsWith('fd00:7::'));
  const links = (await h.linkList()).map((l) => l.name).sort();
  return {
    links,
    addrCount: addrs.length,
    addrsMatch: addrs.map((x) => x.address.toString()).sort().join() === v4.map(String).sort().join(),
    routeCount: routes.length,
    eexistAddr: await errnoOf(h.addrAdd(a.index, { address: v4[0]! })),
    eexistLink: await errnoOf(h.linkAdd({ name: 'kn-a', kind: 'veth', veth: { peerName: 'kn-c' } })),
    enodev: await errnoOf(h.linkSetUp(999_999)),
    enodevRoute: await errnoOf(h.routeAdd({ family: 6, dst: prefix('fd00:8::1/128'), oif: 999_999 })),
    // A request after errors still gets its own answer.
    afterErrors: (await h.linkByIndex(a.index)).name,
    // Multicast notifications are Node only (the Bun socket has no poller).
    subscribe: subscribeOutcome(h),
    // 1,600 requests in one tick: their ACKs exceed a default receive buffer
    // unless the blocking socket splits them into smaller sends. (Not run on
    // Node: the `netlink` addon aborts the process on a receive overrun.)
    oneTick: runtimeName === 'bun' ? await oneTick(h, a.index) : 'not run on node',
  };
}

async function oneTick(h: Handle, index: number): Promise<Record<string, number>> {
  const v6 = Array.from({ length: 1600 }, (_, i) => ({ index, ip: IPAddr.parse(`fd00:9::${(i + 1).toString(16)}`)!, mac: '02:00:00:00:00:01', state: 0x80 }));
  const set = await Promise.allSettled(v6.map((n) => h.neighSet(n)));
  // The same entries once more with NLM_F_EXCL: 1,600 error ACKs, each carrying its request.
  const again = await Promise.allSettled(v6.map((n) => h.conn.request(28 /* RTM_NEWNEIGH */, 0x200 /* NLM_F_EXCL */ | 0x400 /* NLM_F_CREATE */, neighPayload(n.index, n.ip), 'neigh add')));
  const listed = (await h.neighList({ index })).filter((n) => n.ip?.toString().startsWith('fd00:9::')).length;
  return {
    setOk: set.filter((r) => r.status === 'fulfilled').length,
    eexist: again.filter((r) => r.status === 'rejected' && (r.reason as ErrnoError).errno === 17).length,
    listed,
  };
}

/** An ndmsg + NDA_DST for an IPv6 neighbour (the raw request of `ip neigh add`). */
function neighPayload(index: number, ip: IPAddr): Buffer {
  const nd = Buffer.alloc(12);
  nd.writeUInt8(10 /* AF_INET6 */, 0);
  nd.writeInt32LE(index, 4);
  nd.writeUInt16LE(0x80 /* NUD_PERMANENT */, 8);
  const dst = Buffer.alloc(20);
  dst.writeUInt16LE(20, 0);
  dst.writeUInt16LE(1 /* NDA_DST */, 2);
  Buffer.from(ip.toBytes()).copy(dst, 4);
  return Buffer.concat([nd, dst]);
}

function subscribeOutcome(h: Handle): string {
  try {
    h.subscribe([rt.RTNLGRP_LINK], () => undefined).close();
    return 'ok';
  } catch (err) {
    if (err instanceof NetError) return `${err.code}: ${err.message}`;
    throw err;
  }
}

async function namespaces(): Promise<Record<string, unknown>> {
  const here = netnsInode('/proc/thread-self/ns/net');
  const fd = openNetns(otherNs!);
  try {
    const inside = withNetnsSync(fd, () => netnsInode('/proc/thread-self/ns/net'));
    // A handle opened in the other namespace: its socket() follows the setns.
    using other = Handle.open({ netns: otherNs! });
    await other.linkAdd({ name: 'kn-other', kind: 'veth', veth: { peerName: 'kn-other-p' } });
    const otherLinks = (await other.linkList()).map((l) => l.name).sort();
    using self = Handle.open();
    const selfHasIt = (await self.linkFind('kn-other')) !== undefined;
    const notANetns = openSync(lockFile!, 'r');
    const einval = await errnoOf(() => setns(notANetns, CLONE_NEWNET));
    closeSync(notANetns);
    return {
      enteredOther: inside === netnsInode(otherNs!),
      backHome: netnsInode('/proc/thread-self/ns/net') === here,
      otherLinks,
      selfHasIt,
      einval,
    };
  } finally {
    closeSync(fd);
  }
}

async function locks(): Promise<Record<string, unknown>> {
  const first = openSync(lockFile!, 'r');
  const second = openSync(lockFile!, 'r');
  try {
    flockSync(first, LOCK_EX | LOCK_NB);
    const contended = await errnoOf(() => flockSync(second, LOCK_EX | LOCK_NB));
    flockSync(first, LOCK_UN);
    await flock(second, LOCK_EX);
    const heldBySecond = await errnoOf(() => flockSync(first, LOCK_EX | LOCK_NB));
    return { contended, heldBySecond };
  } finally {
    closeSync(first);
    closeSync(second);
  }
}

/** unshare, mount and umount2, through lib/netns's named namespaces (as `ip netns add/del`). */
async function namedNetns(): Promise<Record<string, unknown>> {
  const path = createNamedNetns(scratchNs!);
  try {
    using h = Handle.open({ netns: path });
    const links = (await h.linkList()).map((l) => l.name);
    return { links, distinct: netnsInode(path) !== netnsInode('/proc/thread-self/ns/net') };
  } finally {
    deleteNamedNetns(scratchNs!);
  }
}

const FIONREAD = 0x541b;
const SO_RCVBUF = 8;

/** socket, bind, sendto, recv, ioctl, setsockopt and eventfd on an abstract unix datagram socket. */
async function sockets(): Promise<Record<string, unknown>> {
  // Abstract unix names are per network namespace: this one is ours alone.
  const name = '@kn-runtime-seam';
  const rx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const tx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const efd = eventfd(0, EFD_CLOEXEC);
  try {
    bind(rx, sockaddrUn(name), name);
    setsockoptInt(rx, SOL_SOCKET, SO_RCVBUF, 65536);
    const sent = sendto(tx, Buffer.from('hello seam'), 0, sockaddrUn(name));
    const pending = Buffer.alloc(4);
    ioctl(rx, FIONREAD, pending);
    const buf = Buffer.alloc(64);
    const n = recv(rx, buf, MSG_DONTWAIT);
    return {
      sent,
      pendingBytes: pending.readInt32LE(0),
      received: buf.subarray(0, n).toString(),
      drained: await errnoOf(() => recv(rx, buf, MSG_DONTWAIT)),
      unknownIoctl: await errnoOf(() => ioctlInt(rx, 0x12345, 0)),
      eventfd: efd >= 0,
      bindTaken: await errnoOf(() => bind(tx, sockaddrUn(name), name)),
    };
  } finally {
    for (const fd of [rx, tx, efd]) closeSync(fd);
  }
}

const out = {
  runtime: runtimeName,
  netlink: await netlink(),
  namespaces: await namespaces(),
  namedNetns: await namedNetns(),
  locks: await locks(),
  sockets: await sockets(),
};
process.stdout.write(`${JSON.stringify(out)}\n`);
