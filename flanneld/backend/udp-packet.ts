// Per-packet code of the udp backend, as JavaScript source text: it runs in
// the datapath worker threads (eval workers need source, and so does the
// single-file bundle), and unit tests evaluate the very same text.
// Wire format (upstream compatible): the raw inner IPv4 packet as the UDP payload.

export const PACKET_SRC = String.raw`
'use strict';
/* Destination address of an IPv4 packet, as an unsigned 32-bit number. */
function ipv4Dst(b) {
  return ((b[16] << 24) | (b[17] << 16) | (b[18] << 8) | b[19]) >>> 0;
}
/*
 * Decrements the TTL in place with an incremental checksum update
 * (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')). Returns false when the packet
 * must be dropped (TTL would reach 0, or not a plausible IPv4 header).
 */
function decTTL(b, n) {
  if (n < 20 || (b[0] >> 4) !== 4) return false;
  const ttl = b[8];
  if (ttl <= 1) return false;
  const m = (ttl << 8) | b[9];
  const m2 = ((ttl - 1) << 8) | b[9];
  const hc = (b[10] << 8) | b[11];
  let s = (~hc & 0xffff) + (~m & 0xffff) + m2;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  const hc2 = ~s & 0xffff;
  b[8] = ttl - 1;
  b[10] = hc2 >>> 8;
  b[11] = hc2 & 0xff;
  return true;
}
/* Internet checksum of b[off, off+len). */
function inetChecksum(b, off, len) {
  let s = 0;
  let i = off;
  const end = off + len;
  for (; i + 1 < end; i += 2) s += (b[i] << 8) | b[i + 1];
  if (i < end) s += b[i] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
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
 * Writes into out an ICMP destination-unreachable (type 3, code 0: net
 * unreachable) from srcIP (the TUN address) answering the packet in b.
 * Returns its length, or 0 when none is due: ICMP error messages and
 * non-first fragments get none (RFC 1812 4.3.2.7). Upstream skips every
 * ICMP packet; we answer echo requests too, so ping shows the error.
 */
function buildNetUnreachable(b, n, out, srcIP) {
  if (n < 20 || (b[0] >> 4) !== 4) return 0;
  if ((((b[6] << 8) | b[7]) & 0x1fff) !== 0) return 0;
  const ihl = (b[0] & 0x0f) * 4;
  if (b[9] === 1) {
    if (n < ihl + 1) return 0;
    const t = b[ihl];
    if (t === 3 || t === 4 || t === 5 || t === 11 || t === 12) return 0;
  }
  const quote = Math.min(n, ihl + 8);
  const total = 20 + 8 + quote;
  out.fill(0, 0, 28);
  out[0] = 0x45;
  out[2] = total >>> 8;
  out[3] = total & 0xff;
  out[8] = 64;
  out[9] = 1;
  out[12] = srcIP >>> 24;
  out[13] = (srcIP >>> 16) & 0xff;
  out[14] = (srcIP >>> 8) & 0xff;
  out[15] = srcIP & 0xff;
  out[16] = b[12]; out[17] = b[13]; out[18] = b[14]; out[19] = b[15];
  let c = inetChecksum(out, 0, 20);
  out[10] = c >>> 8;
  out[11] = c & 0xff;
  out[20] = 3;
  out[21] = 0;
  for (let i = 0; i < quote; i++) out[28 + i] = b[i];
  c = inetChecksum(out, 20, 8 + quote);
  out[22] = c >>> 8;
  out[23] = c & 0xff;
  return total;
}
`;

export interface PacketFns {
  ipv4Dst(b: Uint8Array): number;
  decTTL(b: Uint8Array, n: number): boolean;
  inetChecksum(b: Uint8Array, off: number, len: number): number;
  lookup(dst: number, count: number, nets: Uint32Array, masks: Uint32Array): number;
  buildNetUnreachable(b: Uint8Array, n: number, out: Uint8Array, srcIP: number): number;
}

/** The packet functions, evaluated from PACKET_SRC (for tests). */
export function packetFns(): PacketFns {
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  return new Function(`${PACKET_SRC}; return { ipv4Dst, decTTL, inetChecksum, lookup, buildNetUnreachable };`)() as PacketFns;
}
