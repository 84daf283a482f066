// The udp backend's datapath: two worker threads (real OS threads), each a
// tight loop of blocking system calls through koffi with preallocated
// buffers, no thread hop and no allocation per packet:
//   tx: read(tun) → longest-prefix match → TTL−1 → sendto(udp peer:port)
//       (no match: ICMP net-unreachable back into the TUN)
//   rx: recv(udp) → TTL−1 → write(tun)
// The peer table lives in a SharedArrayBuffer, published by the main thread
// under a seqlock; the workers copy it when its sequence number changes.
// Stopping sets a flag and signals an eventfd the idle workers poll on.
import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { NetError } from '../../lib/errors.ts';
import { parseAddr, type Prefix } from '../subnet/prefix.ts';
import { PACKET_SRC } from './udp-packet.ts';

export const MAX_PEERS = 8192;
const CTRL_WORDS = 8; // seq, count, stop, txPackets, rxPackets, unreachable, drops, spare
const C_SEQ = 0;
const C_COUNT = 1;
const C_STOP = 2;

const WORKER_SRC = String.raw`
const { workerData, parentPort } = require('node:worker_threads');
const koffi = require(workerData.koffiPath);
const lib = koffi.load('libc.so.6');
const c_read = lib.func('long read(int fd, void *buf, unsigned long n)');
const c_write = lib.func('long write(int fd, const void *buf, unsigned long n)');
const c_sendto = lib.func('long sendto(int fd, const void *buf, unsigned long n, int flags, const void *addr, uint32_t alen)');
const c_recv = lib.func('long recv(int fd, void *buf, unsigned long n, int flags)');
const c_poll = lib.func('int poll(void *fds, unsigned long n, int timeout)');
const EAGAIN = 11, EINTR = 4, MSG_DONTWAIT = 0x40, POLLIN = 1;
const { role, tunFd, udpFd, eventFd, tunIP, sab, maxPeers } = workerData;
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
const dataFd = role === 'tx' ? tunFd : udpFd;
const pfd = Buffer.alloc(16);
pfd.writeInt32LE(dataFd, 0); pfd.writeInt16LE(POLLIN, 4);
pfd.writeInt32LE(eventFd, 8); pfd.writeInt16LE(POLLIN, 12);
const buf = Buffer.alloc(65536);
let failure = null;
function idle() { c_poll(pfd, 2, 1000); }
if (role === 'tx') {
  // Packets to the same peer with the same length are batched and sent with
  // one sendto using UDP GSO (UDP_SEGMENT): the kernel splits the buffer
  // back into one datagram per inner packet, so the wire format is unchanged.
  const c_sendto_p = lib.func('long sendto(int fd, uintptr_t buf, unsigned long n, int flags, const void *addr, uint32_t alen)');
  const c_setsockopt = lib.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)');
  const SOL_UDP = 17, UDP_SEGMENT = 103, GSO_BYTES = 65000, GSO_SEGS = 64;
  const icmp = Buffer.alloc(1600);
  const sa = Buffer.alloc(16);
  sa.writeUInt16LE(2, 0);
  const batch = Buffer.alloc(GSO_BYTES + 65536);
  const bBase = Number(koffi.address(batch));
  const optv = Buffer.alloc(4);
  let gsoOK = workerData.gso !== false, curGso = 0;
  let bOff = 0, bCount = 0, bLen = 0, bHop = 0, bPort = 0;
  function sendOne(off, len) {
    if (c_sendto_p(udpFd, bBase + off, len, 0, sa, 16) < 0) Atomics.add(ctrl, 6, 1);
    else Atomics.add(ctrl, 3, 1);
  }
  // UDP_SEGMENT is a socket-wide setting: it must equal the batch's packet
  // length on every send (a datagram no longer than it is never split).
  function setGso(v) {
    optv.writeInt32LE(v, 0);
    if (c_setsockopt(udpFd, SOL_UDP, UDP_SEGMENT, optv, 4) !== 0) return false;
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
    } else if (c_sendto_p(udpFd, bBase, bOff, 0, sa, 16) >= 0) Atomics.add(ctrl, 3, bCount);
    else {
      // No UDP GSO here (old kernel, no checksum offload): one datagram each from now on.
      gsoOK = false;
      setGso(0);
      for (let off = 0; off < bOff; off += bLen) sendOne(off, Math.min(bLen, bOff - off));
    }
    bOff = 0; bCount = 0;
  }
  for (;;) {
    if (Atomics.load(ctrl, 2) !== 0) break;
    const n = c_read(tunFd, buf, buf.length);
    if (n < 0) {
      const e = koffi.errno();
      if (e === EAGAIN) { flush(); idle(); continue; }
      if (e === EINTR) continue;
      failure = 'read(tun) errno ' + e; break;
    }
    if (Atomics.load(ctrl, 0) !== seq) refresh();
    if (n < 20 || (buf[0] >> 4) !== 4) { Atomics.add(ctrl, 6, 1); continue; }
    const i = lookup(ipv4Dst(buf), count, nets, masks);
    if (i < 0) {
      const m = buildNetUnreachable(buf, n, icmp, tunIP);
      if (m > 0) c_write(tunFd, icmp, m);
      Atomics.add(ctrl, 5, 1);
      continue;
    }
    if (!decTTL(buf, n)) { Atomics.add(ctrl, 6, 1); continue; }
    if (bCount > 0 && (hops[i] !== bHop || ports[i] !== bPort || n > bLen)) flush();
    if (bCount === 0) { bLen = n; bHop = hops[i]; bPort = ports[i]; }
    buf.copy(batch, bOff, 0, n);
    bOff += n;
    bCount++;
    if (!gsoOK || n < bLen || bCount >= GSO_SEGS || bOff + bLen > GSO_BYTES) flush();
  }
} else {
  for (;;) {
    if (Atomics.load(ctrl, 2) !== 0) break;
    const n = c_recv(udpFd, buf, buf.length, MSG_DONTWAIT);
    if (n < 0) {
      const e = koffi.errno();
      if (e === EAGAIN) { idle(); continue; }
      if (e === EINTR) continue;
      failure = 'recv(udp) errno ' + e; break;
    }
    if (!decTTL(buf, n)) { Atomics.add(ctrl, 6, 1); continue; }
    if (c_write(tunFd, buf, n) < 0) Atomics.add(ctrl, 6, 1);
    else Atomics.add(ctrl, 4, 1);
  }
}
parentPort.postMessage({ done: true, failure });
`;

export interface UdpPeer {
  subnet: Prefix;
  /** Next hop (the peer's public IPv4 address). */
  publicIP: string;
  port: number;
}

export interface UdpDatapathStats {
  txPackets: number;
  rxPackets: number;
  unreachable: number;
  drops: number;
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
    .sort((a, b) => b.subnet.len - a.subnet.len)
    .slice(0, MAX_PEERS)
    .map((p) => ({
      net: Number(p.subnet.network),
      mask: Number(p.subnet.mask),
      hop: Number(parseAddr(p.publicIP).value),
      port: p.port,
    }));
}

export interface DatapathOptions {
  tunFd: number;
  udpFd: number;
  eventFd: number;
  /** The TUN address (source of ICMP errors). */
  tunIP: string;
  onFailure?: (message: string) => void;
  /** Batch same-size packets with UDP GSO (default true; falls back by itself where unsupported). */
  gso?: boolean;
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
    const koffiPath = createRequire(import.meta.url).resolve('koffi');
    const tunIP = Number(parseAddr(opts.tunIP).value);
    for (const role of ['tx', 'rx'] as const) {
      const w = new Worker(WORKER_SRC, {
        eval: true,
        workerData: { role, gso: opts.gso ?? true, koffiPath, tunFd: opts.tunFd, udpFd: opts.udpFd, eventFd: opts.eventFd, tunIP, sab: this.#sab, maxPeers: MAX_PEERS },
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
    return { txPackets: Atomics.load(c, 3) >>> 0, rxPackets: Atomics.load(c, 4) >>> 0, unreachable: Atomics.load(c, 5) >>> 0, drops: Atomics.load(c, 6) >>> 0 };
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
