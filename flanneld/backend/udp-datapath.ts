// The udp backend's datapath: two worker threads (real OS threads), each a
// tight loop of system calls through koffi with preallocated buffers and
// no thread hop per packet:
//   tx: read(tun) → longest-prefix match → TTL−1 → sendto(udp peer:port)
//       (no match: ICMP net-unreachable back into the TUN)
//   rx: recv(udp) → TTL−1 → write(tun)
// Batching without changing the wire (one inner packet per datagram): TSO
// super-packets from the TUN are cut here and sent with UDP GSO; UDP GRO
// receives several datagrams per recv and in-order TCP segments are glued
// back into one GSO write to the TUN (virtio_net_hdr). koffi is the addon
// file lib/sys/native.ts loaded (works from the single-file executable).
// The peer table lives in a SharedArrayBuffer, published by the main thread
// under a seqlock; the workers copy it when its sequence number changes.
// Stopping sets a flag and signals an eventfd the idle workers poll on.
import { writeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { NetError } from '../../lib/errors.ts';
import { nativeAddonPath } from '../../lib/sys/native.ts';
import { WORKER_LIBC_SRC } from '../../lib/sys/worker-libc.ts';
import { PACKET_SRC } from './udp-packet.ts';
import type { IPAddr, IPPrefix } from '../../lib/ip/index.ts';

export const MAX_PEERS = 8192;
const CTRL_WORDS = 8; // seq, count, stop, txPackets, rxPackets, unreachable, drops, last errno of a dropped packet
const C_SEQ = 0;
const C_COUNT = 1;
const C_STOP = 2;

const WORKER_SRC = String.raw`
const { workerData, parentPort } = require('node:worker_threads');
${WORKER_LIBC_SRC}
const libc = openLibc(workerData.koffiPath);
const EAGAIN = 11, EINTR = 4, MSG_DONTWAIT = 0x40, POLLIN = 1, SOL_UDP = 17, UDP_SEGMENT = 103, UDP_GRO = 104;
const { role, tunFd, udpFd, eventFd, tunIP, sab, maxPeers, vnet, gro } = workerData;
const ctrl = new Int32Array(sab, 0, ${CTRL_WORDS});
const base = ${CTRL_WORDS} * 4;
const sNets = new Uint32Array(sab, base, maxPeers);
const sMasks = new Uint32Array(sab, base + maxPeers * 4, maxPeers);
const sHops = new Uint32Array(sab, base + maxPeers * 8, maxPeers);
const sPorts = new Uint32Array(sab, base + maxPeers * 12, maxPeers);
const nets = new Uint32Array(maxPeers), masks = new Uint32Array(maxPeers), hops = new Uint32Array(maxPeers), ports = new Uint32Array(maxPeers);
let seq = -1, count = 0;
function refresh() {
  for (;;) {
    const s1 = Atomics.load(ctrl, 0);
    if (s1 & 1) continue;
    const c = Math.min(ctrl[1], maxPeers);
    for (let i = 0; i < c; i++) { nets[i] = sNets[i]; masks[i] = sMasks[i]; hops[i] = sHops[i]; ports[i] = sPorts[i]; }
    if (Atomics.load(ctrl, 0) === s1) { seq = s1; count = c; return; }
  }
}
${PACKET_SRC}
// Bytes in front of every packet on the TUN fd (struct virtio_net_hdr).
const V = vnet ? VNET_HDR_LEN : 0;
const dataFd = role === 'tx' ? tunFd : udpFd;
const pfd = Buffer.alloc(16);
pfd.writeInt32LE(dataFd, 0); pfd.writeInt16LE(POLLIN, 4);
pfd.writeInt32LE(eventFd, 8); pfd.writeInt16LE(POLLIN, 12);
let failure = null;
function idle() { libc.poll(pfd, 2, 1000); }
// Errors that mean the fd is unusable stop the thread; any other (a bad
// datagram, a transient ENOBUFS, an ICMP error reported on the socket)
// costs one packet, counted with its errno kept in the last control word.
const EBADF = 9, EFAULT = 14, ENOTSOCK = 88, MSG_TRUNC = 0x20, EIO = 5, EINVAL = 22, EOPNOTSUPP = 95;
function fatal(e) { return e === EBADF || e === EFAULT || e === ENOTSOCK; }
function drop(e) { Atomics.add(ctrl, 6, 1); Atomics.store(ctrl, 7, e); }
if (role === 'tx') {
  // tx: read(tun) → route → TTL−1 → UDP. The TUN may hand us a TCP
  // super-packet (TSO): it is cut into wire packets here. Packets to the
  // same peer of one size (the last may be shorter) are batched and sent
  // with one sendto using UDP GSO (UDP_SEGMENT): the kernel splits the
  // buffer back into one datagram per inner packet, so the wire format is
  // unchanged.
  const GSO_BYTES = 65000, GSO_SEGS = 64;
  const buf = Buffer.alloc(V + 65536 + 1024);
  const icmp = Buffer.alloc(V + 1600);
  const sa = Buffer.alloc(16);
  sa.writeUInt16LE(2, 0);
  const batch = Buffer.alloc(GSO_BYTES + 65536);
  const bBase = libc.address(batch);
  const optv = Buffer.alloc(4);
  let gsoOK = workerData.gso !== false, curGso = 0;
  let bOff = 0, bCount = 0, bLen = 0, bHop = 0, bPort = 0, bClosed = false;
  function sendOne(off, len) {
    if (libc.sendto(udpFd, bBase + off, len, 0, sa, 16) < 0) drop(libc.errno());
    else Atomics.add(ctrl, 3, 1);
  }
  // UDP_SEGMENT is a socket-wide setting: it must equal the batch's packet
  // length on every send (a datagram no longer than it is never split).
  function setGso(v) {
    optv.writeInt32LE(v, 0);
    if (libc.setsockopt(udpFd, SOL_UDP, UDP_SEGMENT, optv, 4) !== 0) return false;
    curGso = v;
    return true;
  }
  function flush() {
    if (bCount === 0) return;
    sa.writeUInt16BE(bPort, 2);
    sa.writeUInt32BE(bHop, 4);
    if (gsoOK && curGso !== bLen && !setGso(bLen)) gsoOK = false;
    if (!gsoOK && curGso !== 0) setGso(0);
    if (bCount === 1 || !gsoOK) {
      for (let off = 0; off < bOff; off += bLen) sendOne(off, Math.min(bLen, bOff - off));
    } else if (libc.sendto(udpFd, bBase, bOff, 0, sa, 16) >= 0) Atomics.add(ctrl, 3, bCount);
    else {
      const e = libc.errno();
      if (e === EIO || e === EINVAL || e === EOPNOTSUPP) {
        // No UDP GSO on this path (old kernel, no checksum offload): one datagram each from now on.
        gsoOK = false;
        setGso(0);
        for (let off = 0; off < bOff; off += bLen) sendOne(off, Math.min(bLen, bOff - off));
      } else {
        // Transient (ENOBUFS, a route gone): the batch is lost, as single datagrams would be.
        Atomics.add(ctrl, 6, bCount);
        Atomics.store(ctrl, 7, e);
      }
    }
    bOff = 0; bCount = 0; bClosed = false;
  }
  // Makes room in the batch for a datagram of len bytes to hop:port.
  function reserve(hop, port, len) {
    if (bCount > 0 && (bClosed || hop !== bHop || port !== bPort || len > bLen || bCount >= GSO_SEGS || bOff + len > GSO_BYTES)) flush();
    if (bCount === 0) { bLen = len; bHop = hop; bPort = port; }
  }
  function added(len) {
    bOff += len;
    bCount++;
    if (len < bLen) bClosed = true;
    if (!gsoOK) flush();
  }
  for (;;) {
    if (Atomics.load(ctrl, 2) !== 0) break;
    const r = libc.read(tunFd, buf, buf.length);
    if (r < 0) {
      const e = libc.errno();
      if (e === EAGAIN) { flush(); idle(); continue; }
      if (e === EINTR) continue;
      if (fatal(e)) { failure = 'read(tun) errno ' + e; break; }
      drop(e); continue;
    }
    const n = r - V;
    if (Atomics.load(ctrl, 0) !== seq) refresh();
    if (n < 20 || (buf[V] >> 4) !== 4) { Atomics.add(ctrl, 6, 1); continue; }
    const i = lookup(ipv4DstAt(buf, V), count, nets, masks);
    if (i < 0) {
      const m = buildNetUnreachableAt(buf, V, n, icmp, V, tunIP);
      if (m > 0) libc.write(tunFd, icmp, V + m);
      Atomics.add(ctrl, 5, 1);
      continue;
    }
    if (!decTTLAt(buf, V, n)) { Atomics.add(ctrl, 6, 1); continue; }
    const hop = hops[i], port = ports[i];
    if (V > 0 && (buf[1] & 0x7f) === VNET_GSO_TCPV4) {
      const mss = buf[4] | (buf[5] << 8);
      const hl = tcpHeaderLen(buf, V, n);
      if (hl === 0 || mss === 0) { Atomics.add(ctrl, 6, 1); continue; }
      for (let k = 0, start = 0; start < n - hl; k++, start += mss) {
        reserve(hop, port, hl + Math.min(mss, n - hl - start));
        added(tsoSegment(buf, V, n, mss, k, batch, bOff));
      }
      continue;
    }
    if (V > 0 && (buf[0] & VNET_F_NEEDS_CSUM) !== 0 && !finishCsumAt(buf, V, n, buf[6] | (buf[7] << 8), buf[8] | (buf[9] << 8))) { Atomics.add(ctrl, 6, 1); continue; }
    reserve(hop, port, n);
    buf.copy(batch, bOff, V, V + n);
    added(n);
  }
} else {
  // rx: recv(udp) → TTL−1 → write(tun). With UDP_GRO one recv returns
  // several datagrams of one sender (their size in a cmsg); with a vnet
  // header on the TUN, consecutive segments of one TCP flow are written as
  // one GSO super-packet.
  const rbuf = Buffer.alloc(65536 + 1024);
  const rBase = libc.address(rbuf);
  // msghdr, iovec and control buffer point at each other by address, so
  // they share one buffer too large for V8 to keep on its moving heap.
  const arena = Buffer.alloc(4096);
  const aBase = libc.address(arena);
  const msg = arena.subarray(0, 56);
  const iov = arena.subarray(64, 80);
  const cbuf = arena.subarray(128, 192);
  iov.writeBigUInt64LE(BigInt(rBase), 0);
  iov.writeBigUInt64LE(BigInt(rbuf.length), 8);
  msg.writeBigUInt64LE(BigInt(aBase + 64), 16);
  msg.writeBigUInt64LE(1n, 24);
  msg.writeBigUInt64LE(BigInt(aBase + 128), 32);
  const co = V > 0 ? coNew(V + 65536 + 1024) : null;
  function flushCo() {
    if (co === null || co.count === 0) return;
    const c = co.count;
    if (libc.write(tunFd, co.buf, coFinish(co)) < 0) Atomics.add(ctrl, 6, c);
    else Atomics.add(ctrl, 4, c);
  }
  function deliver(off, len) {
    if (!decTTLAt(rbuf, off, len)) { Atomics.add(ctrl, 6, 1); return; }
    if (co === null) {
      if (libc.writeAt(tunFd, rBase + off, len) < 0) Atomics.add(ctrl, 6, 1);
      else Atomics.add(ctrl, 4, 1);
      return;
    }
    const hl = coCandidate(rbuf, off, len);
    if (co.count > 0) {
      if (hl !== 0 && coAppend(co, rbuf, off, len, hl)) {
        if (!co.open) flushCo();
        return;
      }
      flushCo();
    }
    coStart(co, rbuf, off, len, hl);
    if (!co.open) flushCo();
  }
  for (;;) {
    if (Atomics.load(ctrl, 2) !== 0) break;
    let n;
    if (gro) {
      msg.writeUInt32LE(cbuf.length, 40); msg.writeUInt32LE(0, 44);
      msg.writeUInt32LE(0, 48);
      n = libc.recvmsg(udpFd, msg, MSG_DONTWAIT);
    } else n = libc.recv(udpFd, rbuf, rbuf.length, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      const e = libc.errno();
      if (e === EAGAIN) { flushCo(); idle(); continue; }
      if (e === EINTR) continue;
      if (fatal(e)) { failure = 'recvmsg(udp) errno ' + e; break; }
      drop(e); continue;
    }
    // (With MSG_TRUNC in flags, recv returns the datagram's real length.)
    if (gro ? (msg.readInt32LE(48) & MSG_TRUNC) !== 0 : n > rbuf.length) { drop(0); continue; }
    let seg = n;
    if (gro && msg.readUInt32LE(40) >= 20 && cbuf.readInt32LE(8) === SOL_UDP && cbuf.readInt32LE(12) === UDP_GRO) {
      const g = cbuf.readInt32LE(16);
      if (g > 0) seg = g;
    }
    for (let off = 0; off < n; off += seg) deliver(off, Math.min(seg, n - off));
  }
  flushCo();
}
parentPort.postMessage({ done: true, failure });
`;

export interface UdpPeer {
  subnet: IPPrefix;
  /** Next hop (the peer's public IPv4 address). */
  publicIP: IPAddr;
  port: number;
}

export interface UdpDatapathStats {
  txPackets: number;
  rxPackets: number;
  unreachable: number;
  drops: number;
  /** errno of the last packet dropped on a failed system call (0: none, or a truncated datagram). */
  lastDropErrno: number;
}

export class DatapathError extends NetError {
  constructor(message: string) {
    super('UDP_DATAPATH', message);
  }
}

/** Sorts peers longest prefix first, so the workers' first match is the longest. */
export function peerTable(peers: readonly UdpPeer[]): { net: number; mask: number; hop: number; port: number }[] {
  return peers
    .filter((p) => p.subnet.family === 4)
    .slice()
    .sort((a, b) => b.subnet.length - a.subnet.length)
    .slice(0, MAX_PEERS)
    .map((p) => ({
      net: Number(p.subnet.network().value),
      mask: Number(p.subnet.mask()),
      hop: Number(p.publicIP.value),
      port: p.port,
    }));
}

export interface DatapathOptions {
  tunFd: number;
  udpFd: number;
  eventFd: number;
  /** The TUN address (source of ICMP errors). */
  tunIP: IPAddr;
  onFailure?: (message: string) => void;
  /** Batch same-size packets with UDP GSO (default true; falls back by itself where unsupported). */
  gso?: boolean;
  /** The TUN fd carries a virtio_net_hdr before each packet (IFF_VNET_HDR, see udp-sys.ts openTunIn). */
  vnetHdr?: boolean;
  /** UDP_GRO is enabled on the socket. */
  gro?: boolean;
}

export class UdpDatapath {
  readonly #sab = new SharedArrayBuffer(CTRL_WORDS * 4 + MAX_PEERS * 16);
  readonly #ctrl = new Int32Array(this.#sab, 0, CTRL_WORDS);
  readonly #nets = new Uint32Array(this.#sab, CTRL_WORDS * 4, MAX_PEERS);
  readonly #masks = new Uint32Array(this.#sab, CTRL_WORDS * 4 + MAX_PEERS * 4, MAX_PEERS);
  readonly #hops = new Uint32Array(this.#sab, CTRL_WORDS * 4 + MAX_PEERS * 8, MAX_PEERS);
  readonly #ports = new Uint32Array(this.#sab, CTRL_WORDS * 4 + MAX_PEERS * 12, MAX_PEERS);
  readonly #workers: Worker[] = [];
  readonly #exited: Promise<void>[] = [];

  constructor(private readonly opts: DatapathOptions) {
    const koffiPath = nativeAddonPath('koffi');
    const tunIP = Number(opts.tunIP.value);
    for (const role of ['tx', 'rx'] as const) {
      const w = new Worker(WORKER_SRC, {
        eval: true,
        workerData: { role, gso: opts.gso ?? true, vnet: opts.vnetHdr ?? false, gro: opts.gro ?? false, koffiPath, tunFd: opts.tunFd, udpFd: opts.udpFd, eventFd: opts.eventFd, tunIP, sab: this.#sab, maxPeers: MAX_PEERS },
      });
      this.#workers.push(w);
      this.#exited.push(
        new Promise<void>((resolve) => {
          w.on('message', (m: { done?: boolean; failure?: string | null }) => {
            if (m.failure) opts.onFailure?.(`udp datapath ${role}: ${m.failure}`);
          });
          w.on('error', (err: Error) => opts.onFailure?.(`udp datapath ${role}: ${err.message}`));
          w.on('exit', () => resolve());
        }),
      );
    }
  }

  /** Publishes a new peer table (seqlock: odd while writing). */
  setPeers(peers: readonly UdpPeer[]): void {
    const t = peerTable(peers);
    Atomics.add(this.#ctrl, C_SEQ, 1);
    t.forEach((e, i) => {
      this.#nets[i] = e.net;
      this.#masks[i] = e.mask;
      this.#hops[i] = e.hop;
      this.#ports[i] = e.port;
    });
    Atomics.store(this.#ctrl, C_COUNT, t.length);
    Atomics.add(this.#ctrl, C_SEQ, 1);
  }

  stats(): UdpDatapathStats {
    const c = this.#ctrl;
    return {
      txPackets: Atomics.load(c, 3) >>> 0,
      rxPackets: Atomics.load(c, 4) >>> 0,
      unreachable: Atomics.load(c, 5) >>> 0,
      drops: Atomics.load(c, 6) >>> 0,
      lastDropErrno: Atomics.load(c, 7),
    };
  }

  /** Stops both workers and waits for them to exit (the fds stay open: the caller owns them). */
  async stop(): Promise<void> {
    Atomics.store(this.#ctrl, C_STOP, 1);
    const one = Buffer.alloc(8);
    one.writeBigUInt64LE(1n);
    try {
      writeSync(this.opts.eventFd, one);
    } catch {
      // the workers also wake up on their 1 s poll timeout
    }
    await Promise.all(this.#exited);
  }
}
