// SCTP for the netns suite on a kernel without SCTP sockets (CONFIG_IP_SCTP
// off; netfilter's SCTP conntrack and matches work): the four-way handshake
// INIT / INIT-ACK / COOKIE-ECHO / COOKIE-ACK (RFC 9260 §5.1) spoken over raw
// IPv4 sockets of protocol 132, with the real CRC32c checksum (the conntrack
// helper verifies it: a wrong one makes the packet invalid). A raw socket is
// opened inside a pod's namespace (enter, open, leave: DESIGN.md rule 3) and
// read without blocking from one poller on the event loop.
import { closeSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { IPAddr } from '../../lib/ip/index.ts';
import { openNetns, withNetnsSync } from '../../lib/netns/index.ts';
import { AF_INET, MSG_DONTWAIT, recv, sendto, sockaddrIn, socket, SOCK_CLOEXEC } from '../../lib/sys/index.ts';

const SOCK_RAW = 3;
const IPPROTO_SCTP = 132;
const INIT = 1;
const INIT_ACK = 2;
const COOKIE_ECHO = 10;
const COOKIE_ACK = 11;
const STATE_COOKIE = 7;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC32c (Castagnoli), as SCTP computes it. */
export function crc32c(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export interface SctpPacket {
  readonly sport: number;
  readonly dport: number;
  readonly vtag: number;
  readonly type: number;
  /** The chunk's value (after its 4-byte header). */
  readonly value: Buffer;
}

/** One-chunk SCTP packet with its checksum (stored little-endian, as Linux and RFC 9260 Appendix A do). */
export function sctpPacket(p: SctpPacket, opts: { badChecksum?: boolean } = {}): Buffer {
  const chunkLen = 4 + p.value.length;
  const buf = Buffer.alloc(12 + chunkLen + ((4 - (chunkLen % 4)) % 4));
  buf.writeUInt16BE(p.sport, 0);
  buf.writeUInt16BE(p.dport, 2);
  buf.writeUInt32BE(p.vtag >>> 0, 4);
  buf.writeUInt8(p.type, 12);
  buf.writeUInt16BE(chunkLen, 14);
  p.value.copy(buf, 16);
  const crc = crc32c(buf);
  buf.writeUInt32LE(opts.badChecksum ? (crc ^ 1) >>> 0 : crc, 8);
  return buf;
}

/** INIT / INIT-ACK value: initiate tag, a_rwnd, streams, initial TSN, then parameters. */
function initValue(tag: number, params: Buffer = Buffer.alloc(0)): Buffer {
  const v = Buffer.alloc(16);
  v.writeUInt32BE(tag >>> 0, 0);
  v.writeUInt32BE(65536, 4);
  v.writeUInt16BE(1, 8);
  v.writeUInt16BE(1, 10);
  v.writeUInt32BE(tag >>> 0, 12);
  return Buffer.concat([v, params]);
}

function cookieParam(cookie: Buffer): Buffer {
  const p = Buffer.alloc(4 + cookie.length);
  p.writeUInt16BE(STATE_COOKIE, 0);
  p.writeUInt16BE(4 + cookie.length, 2);
  cookie.copy(p, 4);
  return p;
}

/** Parses an IPv4 packet from a raw socket: source address and the first chunk. */
export function parseReceived(buf: Buffer): (SctpPacket & { src: string }) | undefined {
  if (buf.length < 20 || buf[0]! >> 4 !== 4 || buf[9] !== IPPROTO_SCTP) return undefined;
  const ihl = (buf[0]! & 0x0f) * 4;
  const s = buf.subarray(ihl);
  if (s.length < 16) return undefined;
  const len = s.readUInt16BE(14);
  return { src: `${buf[12]}.${buf[13]}.${buf[14]}.${buf[15]}`, sport: s.readUInt16BE(0), dport: s.readUInt16BE(2), vtag: s.readUInt32BE(4), type: s[12]!, value: s.subarray(16, 12 + len) };
}

type Listener = (p: SctpPacket & { src: string }) => void;

/** A raw SCTP socket opened in a namespace, drained by one shared poller. */
export class RawSctp {
  private static open = new Set<RawSctp>();
  private static timer: NodeJS.Timeout | undefined;
  readonly fd: number;
  private readonly listeners = new Set<Listener>();
  private readonly buf = Buffer.alloc(65536);

  constructor(nsPath: string) {
    const ns = openNetns(nsPath);
    try {
      this.fd = withNetnsSync(ns, () => socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_SCTP));
    } finally {
      closeSync(ns);
    }
    RawSctp.open.add(this);
    RawSctp.timer ??= setInterval(() => RawSctp.drainAll(), 2);
  }

  private static drainAll(): void {
    for (const s of RawSctp.open) s.drain();
  }

  private drain(): void {
    for (;;) {
      let n: number;
      try {
        n = recv(this.fd, this.buf, MSG_DONTWAIT);
      } catch {
        return; // EAGAIN: nothing more queued
      }
      const p = parseReceived(Buffer.from(this.buf.subarray(0, n)));
      if (p) for (const l of [...this.listeners]) l(p);
    }
  }

  on(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  send(dst: string, p: SctpPacket, opts: { badChecksum?: boolean } = {}): void {
    sendto(this.fd, sctpPacket(p, opts), 0, sockaddrIn(IPAddr.mustParse(dst).toBytes().readUInt32BE(0), 0), dst);
  }

  close(): void {
    RawSctp.open.delete(this);
    if (RawSctp.open.size === 0 && RawSctp.timer) {
      clearInterval(RawSctp.timer);
      RawSctp.timer = undefined;
    }
    closeSync(this.fd);
  }
}

/** Answers INIT with INIT-ACK (and a state cookie) and COOKIE-ECHO with COOKIE-ACK on `ports`. */
export function sctpResponder(sock: RawSctp, ports: readonly number[]): () => void {
  const peers = new Map<string, number>();
  return sock.on((p) => {
    if (!ports.includes(p.dport)) return;
    const key = `${p.src} ${p.sport} ${p.dport}`;
    if (p.type === INIT && p.vtag === 0 && p.value.length >= 16) {
      const peerTag = p.value.readUInt32BE(0);
      peers.set(key, peerTag);
      const cookie = Buffer.alloc(8);
      cookie.writeUInt32BE(peerTag, 0);
      cookie.writeUInt32BE(p.dport, 4);
      sock.send(p.src, { sport: p.dport, dport: p.sport, vtag: peerTag, type: INIT_ACK, value: initValue(randomInt(1, 2 ** 31), cookieParam(cookie)) });
    } else if (p.type === COOKIE_ECHO && peers.has(key)) {
      sock.send(p.src, { sport: p.dport, dport: p.sport, vtag: peers.get(key)!, type: COOKIE_ACK, value: Buffer.alloc(0) });
    }
  });
}

/**
 * Runs the initiator's side of the handshake from `sock` to dst:dport:
 * true once COOKIE-ACK arrives, false when a step times out.
 */
export function sctpConnect(sock: RawSctp, dst: string, dport: number, timeoutMs: number, opts: { badChecksum?: boolean } = {}): Promise<boolean> {
  const sport = randomInt(32768, 61000);
  const myTag = randomInt(1, 2 ** 31);
  return new Promise((resolve) => {
    const done = (v: boolean): void => {
      clearTimeout(timer);
      off();
      resolve(v);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    const off = sock.on((p) => {
      if (p.src !== dst || p.sport !== dport || p.dport !== sport || p.vtag !== myTag) return;
      if (p.type === INIT_ACK && p.value.length >= 16) {
        const peerTag = p.value.readUInt32BE(0);
        const cookie = findParam(p.value.subarray(16), STATE_COOKIE);
        if (!cookie) return done(false);
        sock.send(dst, { sport, dport, vtag: peerTag, type: COOKIE_ECHO, value: cookie }, opts);
      } else if (p.type === COOKIE_ACK) done(true);
    });
    sock.send(dst, { sport, dport, vtag: 0, type: INIT, value: initValue(myTag) }, opts);
  });
}

function findParam(params: Buffer, type: number): Buffer | undefined {
  for (let off = 0; off + 4 <= params.length; ) {
    const t = params.readUInt16BE(off);
    const len = params.readUInt16BE(off + 2);
    if (len < 4) return undefined;
    if (t === type) return Buffer.from(params.subarray(off + 4, off + len));
    off += len + ((4 - (len % 4)) % 4);
  }
  return undefined;
}
