// Per-packet code of the udp backend, as JavaScript source text: it runs in
// the datapath worker threads (eval workers need source, and so does the
// single-file bundle), and unit tests evaluate the very same text.
// Wire format (upstream compatible): the raw inner IPv4 packet as the UDP
// payload, one inner packet per datagram. The batching helpers below only
// change how many packets one system call moves:
//   - tsoSegment cuts a TCP super-packet read from the TUN (TSO, announced
//     by its virtio_net_hdr) into complete wire packets, as the kernel would;
//   - the coalescer (co*) glues consecutive in-order segments of one TCP flow
//     received from peers into one super-packet written to the TUN with a
//     virtio_net_hdr (GSO TCPV4), which the kernel forwards as one skb.
// Buffers are Node Buffers in the workers; tests may pass Uint8Arrays.

export const PACKET_SRC = String.raw`
'use strict';
/* Length of struct virtio_net_hdr (no mergeable rx buffers). */
const VNET_HDR_LEN = 10;
const VNET_F_NEEDS_CSUM = 1;
const VNET_GSO_NONE = 0;
const VNET_GSO_TCPV4 = 1;
function copyBytes(src, start, end, out, o) {
  // Short runs (headers) by hand: Buffer#copy allocates a view per call.
  if (end - start < 128) for (let i = start; i < end; i++) out[o++] = src[i];
  else if (typeof src.copy === 'function') src.copy(out, o, start, end);
  else out.set(src.subarray(start, end), o);
}
/* Destination address of the IPv4 packet at b[off], as an unsigned 32-bit number. */
function ipv4DstAt(b, off) {
  return ((b[off + 16] << 24) | (b[off + 17] << 16) | (b[off + 18] << 8) | b[off + 19]) >>> 0;
}
function ipv4Dst(b) {
  return ipv4DstAt(b, 0);
}
/*
 * Decrements the TTL in place with an incremental checksum update
 * (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')). Returns false when the packet
 * must be dropped (TTL would reach 0, or not a plausible IPv4 header).
 */
function decTTLAt(b, off, n) {
  if (n < 20 || (b[off] >> 4) !== 4) return false;
  const ttl = b[off + 8];
  if (ttl <= 1) return false;
  const m = (ttl << 8) | b[off + 9];
  const m2 = ((ttl - 1) << 8) | b[off + 9];
  const hc = (b[off + 10] << 8) | b[off + 11];
  let s = (~hc & 0xffff) + (~m & 0xffff) + m2;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  const hc2 = ~s & 0xffff;
  b[off + 8] = ttl - 1;
  b[off + 10] = hc2 >>> 8;
  b[off + 11] = hc2 & 0xff;
  return true;
}
function decTTL(b, n) {
  return decTTLAt(b, 0, n);
}
/* Unfolded one's complement sum of the big-endian 16-bit words of b[off, off+len), byte by byte. */
function sum16Bytes(b, off, len) {
  let s = 0;
  let i = off;
  const end = off + len;
  const end8 = end - 7;
  for (; i < end8; i += 8) s += ((b[i] << 8) | b[i + 1]) + ((b[i + 2] << 8) | b[i + 3]) + ((b[i + 4] << 8) | b[i + 5]) + ((b[i + 6] << 8) | b[i + 7]);
  for (; i + 1 < end; i += 2) s += (b[i] << 8) | b[i + 1];
  if (i < end) s += b[i] << 8;
  return s;
}
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
let u32Of = null;
let u32 = null;
let u32Base = 0;
/*
 * Unfolded one's complement sum of the big-endian 16-bit words of
 * b[off, off+len). Long even-aligned runs are summed as native 32-bit words
 * (3x faster than bytes): on a little-endian host that is the sum of the
 * byte-swapped 16-bit words, which folded and swapped back is the same
 * one's complement sum (RFC 1071 byte order independence).
 */
function sum16(b, off, len) {
  const abs = (b === u32Of ? u32Base : b.byteOffset) + off;
  if (len < 64 || (abs & 1) !== 0 || !HOST_LE) return sum16Bytes(b, off, len);
  let i = off;
  const end = off + len;
  let s = 0;
  if ((abs & 2) !== 0) {
    s += (b[i] << 8) | b[i + 1];
    i += 2;
  }
  if (b !== u32Of) {
    // (Per view, not per ArrayBuffer: the .buffer getter is slow.)
    u32Of = b;
    u32 = new Uint32Array(b.buffer, 0, b.buffer.byteLength >> 2);
    u32Base = b.byteOffset;
  }
  const u = u32;
  const n4 = (end - i) >> 2;
  let j = (u32Base + i) >> 2;
  const jend = j + n4;
  let w = 0;
  for (; j + 3 < jend; j += 4) w += u[j] + u[j + 1] + u[j + 2] + u[j + 3];
  for (; j < jend; j++) w += u[j];
  i += n4 * 4;
  const f = csumFold(w);
  s += ((f & 0xff) << 8) | (f >>> 8);
  if (i + 1 < end) s += (b[i] << 8) | b[i + 1], i += 2;
  if (i < end) s += b[i] << 8;
  return s;
}
/* Folds a sum to 16 bits (not complemented). */
function csumFold(s) {
  s = (s % 65536) + Math.floor(s / 65536);
  s = (s & 0xffff) + (s >>> 16);
  return (s & 0xffff) + (s >>> 16);
}
/* Internet checksum of b[off, off+len). */
function inetChecksum(b, off, len) {
  return ~csumFold(sum16(b, off, len)) & 0xffff;
}
/* Sum of the IPv4 pseudo header of the packet at b[off] for protocol proto and L4 length l4len. */
function pseudoSum(b, off, proto, l4len) {
  return sum16(b, off + 12, 8) + proto + l4len;
}
function setIPv4Checksum(b, off) {
  const ihl = (b[off] & 0x0f) * 4;
  b[off + 10] = 0;
  b[off + 11] = 0;
  const c = inetChecksum(b, off, ihl);
  b[off + 10] = c >>> 8;
  b[off + 11] = c & 0xff;
}
/*
 * Completes a partial checksum (virtio_net_hdr NEEDS_CSUM): the field at
 * csumStart+csumOffset holds the pseudo-header sum; the checksum covers
 * csumStart to the end of the packet. Returns false when the offsets are out of range.
 */
function finishCsumAt(b, off, n, csumStart, csumOffset) {
  if (csumStart + csumOffset + 2 > n) return false;
  let c = ~csumFold(sum16(b, off + csumStart, n - csumStart)) & 0xffff;
  if (c === 0 && b[off + 9] === 17 && csumOffset === 6) c = 0xffff;
  b[off + csumStart + csumOffset] = c >>> 8;
  b[off + csumStart + csumOffset + 1] = c & 0xff;
  return true;
}
/* Header length (IPv4 + TCP) of the TCP/IPv4 packet at b[off], or 0 when it is not one. */
function tcpHeaderLen(b, off, n) {
  if (n < 40 || (b[off] >> 4) !== 4 || b[off + 9] !== 6) return 0;
  const ihl = (b[off] & 0x0f) * 4;
  if (ihl < 20 || n < ihl + 20) return 0;
  const thl = (b[off + ihl + 12] >> 4) * 4;
  if (thl < 20 || ihl + thl > n) return 0;
  return ihl + thl;
}
/*
 * Writes segment k of the TCP/IPv4 super-packet src[off, off+n) (TSO with
 * segment payload mss) to out[o...] as a complete packet, as the kernel's
 * GSO would: its own IP total length, IP id (+k), header checksum, sequence
 * number and TCP checksum; FIN and PSH only on the last segment, CWR only on
 * the first. Returns its length (0: not a TCP/IPv4 packet, or k past the end).
 */
function tsoSegment(src, off, n, mss, k, out, o) {
  const hl = tcpHeaderLen(src, off, n);
  if (hl === 0 || mss <= 0) return 0;
  const ihl = (src[off] & 0x0f) * 4;
  const total = n - hl;
  const start = k * mss;
  if (start >= total) return 0;
  const plen = Math.min(mss, total - start);
  const last = start + plen >= total;
  copyBytes(src, off, off + hl, out, o);
  copyBytes(src, off + hl + start, off + hl + start + plen, out, o + hl);
  const len = hl + plen;
  out[o + 2] = len >>> 8;
  out[o + 3] = len & 0xff;
  const id = (((src[off + 4] << 8) | src[off + 5]) + k) & 0xffff;
  out[o + 4] = id >>> 8;
  out[o + 5] = id & 0xff;
  setIPv4Checksum(out, o);
  const t = o + ihl;
  const seq = ((((src[off + ihl + 4] << 24) | (src[off + ihl + 5] << 16) | (src[off + ihl + 6] << 8) | src[off + ihl + 7]) >>> 0) + start) >>> 0;
  out[t + 4] = seq >>> 24;
  out[t + 5] = (seq >>> 16) & 0xff;
  out[t + 6] = (seq >>> 8) & 0xff;
  out[t + 7] = seq & 0xff;
  let flags = src[off + ihl + 13];
  if (!last) flags &= ~0x09;
  if (k > 0) flags &= ~0x80;
  out[t + 13] = flags;
  out[t + 16] = 0;
  out[t + 17] = 0;
  const l4 = len - ihl;
  const c = ~csumFold(pseudoSum(out, o, 6, l4) + sum16(out, t, l4)) & 0xffff;
  out[t + 16] = c >>> 8;
  out[t + 17] = c & 0xff;
  return len;
}
/*
 * The coalescer: co.buf holds a virtio_net_hdr followed by the packet being
 * built. Only plain in-order data segments qualify (RFC-1122-style GRO rules,
 * as the kernel's tcp_gro_receive): IPv4 without options, DF, no fragment;
 * TCP with ACK and without SYN/FIN/RST/URG/CWR; equal TOS, TTL, addresses,
 * ports, ack number, window, flags (but PSH) and options; each segment's
 * sequence number continuing the previous; equal payload sizes (the last may
 * be shorter, after which nothing is added). PSH ends the super-packet.
 */
function coNew(size) {
  return { buf: Buffer.alloc(size), n: 0, count: 0, mss: 0, hl: 0, nextSeq: 0, open: false };
}
/* Header length when b[off, off+n) may be coalesced, else 0. */
function coCandidate(b, off, n) {
  if (b[off] !== 0x45 || b[off + 9] !== 6) return 0;
  if ((((b[off + 6] << 8) | b[off + 7]) & 0xbfff) !== 0 || (b[off + 6] & 0x40) === 0) return 0;
  if (((b[off + 2] << 8) | b[off + 3]) !== n) return 0;
  const thl = (b[off + 32] >> 4) * 4;
  if (thl < 20 || 20 + thl >= n) return 0;
  const fl = b[off + 33];
  if ((fl & 0x10) === 0 || (fl & 0xa7) !== 0) return 0;
  return 20 + thl;
}
function seqAt(b, off) {
  return ((b[off + 24] << 24) | (b[off + 25] << 16) | (b[off + 26] << 8) | b[off + 27]) >>> 0;
}
/* Starts a super-packet with b[off, off+n) (hl: coCandidate's result, 0 for a packet passed through as is). */
function coStart(co, b, off, n, hl) {
  copyBytes(b, off, off + n, co.buf, VNET_HDR_LEN);
  co.n = n;
  co.count = 1;
  co.hl = hl;
  co.mss = n - hl;
  co.open = hl > 0 && (b[off + 33] & 0x08) === 0;
  co.nextSeq = hl > 0 ? (seqAt(b, off) + co.mss) >>> 0 : 0;
}
/* Appends b[off, off+n) when it continues the super-packet; false when it does not. */
function coAppend(co, b, off, n, hl) {
  if (!co.open || hl !== co.hl) return false;
  const plen = n - hl;
  if (plen > co.mss || co.n + plen > 65535) return false;
  const p = co.buf;
  const q = VNET_HDR_LEN;
  if (b[off + 1] !== p[q + 1] || b[off + 8] !== p[q + 8]) return false;
  for (let i = 12; i < 24; i++) if (b[off + i] !== p[q + i]) return false;
  for (let i = 28; i < 33; i++) if (b[off + i] !== p[q + i]) return false;
  if (((b[off + 33] ^ p[q + 33]) & ~0x08) !== 0 || b[off + 34] !== p[q + 34] || b[off + 35] !== p[q + 35]) return false;
  for (let i = 40; i < hl; i++) if (b[off + i] !== p[q + i]) return false;
  if (seqAt(b, off) !== co.nextSeq) return false;
  copyBytes(b, off + hl, off + n, p, q + co.n);
  co.n += plen;
  co.count++;
  co.nextSeq = (co.nextSeq + plen) >>> 0;
  if ((b[off + 33] & 0x08) !== 0) {
    p[q + 33] |= 0x08;
    co.open = false;
  }
  if (plen < co.mss) co.open = false;
  return true;
}
/*
 * Completes the virtio_net_hdr (and, for a super-packet, the IP length and
 * checksum and the TCP pseudo-header checksum the kernel finishes) and
 * returns the number of bytes of co.buf to write; empties the coalescer.
 */
function coFinish(co) {
  const p = co.buf;
  const q = VNET_HDR_LEN;
  p.fill(0, 0, q);
  if (co.count > 1) {
    p[q + 2] = co.n >>> 8;
    p[q + 3] = co.n & 0xff;
    setIPv4Checksum(p, q);
    const ps = csumFold(pseudoSum(p, q, 6, co.n - 20));
    p[q + 36] = ps >>> 8;
    p[q + 37] = ps & 0xff;
    p[0] = VNET_F_NEEDS_CSUM;
    p[1] = VNET_GSO_TCPV4;
    p[2] = co.hl & 0xff;
    p[3] = co.hl >>> 8;
    p[4] = co.mss & 0xff;
    p[5] = co.mss >>> 8;
    p[6] = 20;
    p[8] = 16;
  }
  const len = q + co.n;
  co.count = 0;
  co.n = 0;
  co.open = false;
  return len;
}
/*
 * Index of the first entry of the table (sorted by prefix length, longest
 * first) that contains dst, or -1.
 */
function lookup(dst, count, nets, masks) {
  for (let i = 0; i < count; i++) if (((dst & masks[i]) >>> 0) === nets[i]) return i;
  return -1;
}
/*
 * Writes into out[o...] an ICMP destination-unreachable (type 3, code 0: net
 * unreachable) from srcIP (the TUN address) answering the packet at b[off].
 * Returns its length, or 0 when none is due: ICMP error messages and
 * non-first fragments get none (RFC 1812 4.3.2.7). Upstream skips every
 * ICMP packet; we answer echo requests too, so ping shows the error.
 */
function buildNetUnreachableAt(b, off, n, out, o, srcIP) {
  if (n < 20 || (b[off] >> 4) !== 4) return 0;
  if ((((b[off + 6] << 8) | b[off + 7]) & 0x1fff) !== 0) return 0;
  const ihl = (b[off] & 0x0f) * 4;
  if (b[off + 9] === 1) {
    if (n < ihl + 1) return 0;
    const t = b[off + ihl];
    if (t === 3 || t === 4 || t === 5 || t === 11 || t === 12) return 0;
  }
  const quote = Math.min(n, ihl + 8);
  const total = 20 + 8 + quote;
  out.fill(0, o, o + 28);
  out[o] = 0x45;
  out[o + 2] = total >>> 8;
  out[o + 3] = total & 0xff;
  out[o + 8] = 64;
  out[o + 9] = 1;
  out[o + 12] = srcIP >>> 24;
  out[o + 13] = (srcIP >>> 16) & 0xff;
  out[o + 14] = (srcIP >>> 8) & 0xff;
  out[o + 15] = srcIP & 0xff;
  for (let i = 0; i < 4; i++) out[o + 16 + i] = b[off + 12 + i];
  setIPv4Checksum(out, o);
  out[o + 20] = 3;
  out[o + 21] = 0;
  for (let i = 0; i < quote; i++) out[o + 28 + i] = b[off + i];
  const c = inetChecksum(out, o + 20, 8 + quote);
  out[o + 22] = c >>> 8;
  out[o + 23] = c & 0xff;
  return total;
}
function buildNetUnreachable(b, n, out, srcIP) {
  return buildNetUnreachableAt(b, 0, n, out, 0, srcIP);
}
`;

export interface Coalescer {
  buf: Uint8Array;
  n: number;
  count: number;
  mss: number;
  hl: number;
  nextSeq: number;
  open: boolean;
}

export interface PacketFns {
  ipv4Dst(b: Uint8Array): number;
  decTTL(b: Uint8Array, n: number): boolean;
  decTTLAt(b: Uint8Array, off: number, n: number): boolean;
  inetChecksum(b: Uint8Array, off: number, len: number): number;
  finishCsumAt(b: Uint8Array, off: number, n: number, csumStart: number, csumOffset: number): boolean;
  tsoSegment(src: Uint8Array, off: number, n: number, mss: number, k: number, out: Uint8Array, o: number): number;
  coNew(size: number): Coalescer;
  coCandidate(b: Uint8Array, off: number, n: number): number;
  coStart(co: Coalescer, b: Uint8Array, off: number, n: number, hl: number): void;
  coAppend(co: Coalescer, b: Uint8Array, off: number, n: number, hl: number): boolean;
  coFinish(co: Coalescer): number;
  lookup(dst: number, count: number, nets: Uint32Array, masks: Uint32Array): number;
  buildNetUnreachable(b: Uint8Array, n: number, out: Uint8Array, srcIP: number): number;
}

/** The packet functions, evaluated from PACKET_SRC (for tests). */
export function packetFns(): PacketFns {
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  return new Function(
    `${PACKET_SRC}; return { ipv4Dst, decTTL, decTTLAt, inetChecksum, finishCsumAt, tsoSegment, coNew, coCandidate, coStart, coAppend, coFinish, lookup, buildNetUnreachable };`,
  )() as PacketFns;
}
