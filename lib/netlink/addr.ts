// Address bytes <-> text, canonical like Go's net.IP.String() (RFC 5952).
import { AF_INET, AF_INET6 } from './constants.ts';
import { parseV4, parseV6, v4ToString, v6ToString } from '../ip/index.ts';

export type Family = 4 | 6;

export function familyOf(ip: string): Family {
  if (isIPv4(ip)) return 4;
  if (isIPv6(ip)) return 6;
  throw new TypeError(`invalid IP address "${ip}"`);
}

export const afOf = (f: Family): number => (f === 4 ? AF_INET : AF_INET6);
export const familyOfAf = (af: number): Family => (af === AF_INET6 ? 6 : 4);

export function ipToBytes(ip: string): Buffer {
  const v4 = ip.includes(':') ? undefined : parseV4(ip);
  if (v4 !== undefined) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(Number(v4));
    return b;
  }
  const pct = ip.indexOf('%');
  const v6 = parseV6(pct >= 0 ? ip.slice(0, pct) : ip);
  if (v6 === undefined) throw new TypeError(`invalid IP address "${ip}"`);
  const b = Buffer.alloc(16);
  b.writeBigUInt64BE(v6 >> 64n, 0);
  b.writeBigUInt64BE(v6 & 0xffffffffffffffffn, 8);
  return b;
}

export function bytesToIp(b: Buffer): string {
  if (b.length === 4) return v4ToString(BigInt(b.readUInt32BE(0)));
  if (b.length !== 16) throw new RangeError(`address of ${b.length} bytes`);
  const v = (b.readBigUInt64BE(0) << 64n) | b.readBigUInt64BE(8);
  // IPv4-mapped addresses print as dotted quads, like Go.
  if (v >> 32n === 0xffffn) return v4ToString(v & 0xffffffffn);
  return v6ToString(v);
}

/** Canonical text of an address (e.g. "fd00:0::1" → "fd00::1"). */
export const canonicalIp = (ip: string): string => bytesToIp(ipToBytes(ip));

export interface IPNet {
  ip: string;
  prefixLen: number;
}

/** Parses "a.b.c.d/n" or "x::/n"; a bare address gets the full length. */
export function parseCidr(s: string): IPNet {
  const slash = s.indexOf('/');
  const ip = slash < 0 ? s : s.slice(0, slash);
  const fam = familyOf(ip);
  const max = fam === 4 ? 32 : 128;
  const prefixLen = slash < 0 ? max : Number(s.slice(slash + 1));
  if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > max || (slash >= 0 && !/^\d+$/.test(s.slice(slash + 1)))) {
    throw new TypeError(`invalid CIDR address: ${s}`);
  }
  return { ip: canonicalIp(ip), prefixLen };
}

export const formatCidr = (n: IPNet): string => `${n.ip}/${n.prefixLen}`;

/** The network address of ip/len (host bits cleared). */
export function networkOf(n: IPNet): IPNet {
  const b = ipToBytes(n.ip);
  for (let i = 0; i < b.length; i++) {
    const bits = Math.max(0, Math.min(8, n.prefixLen - i * 8));
    b[i] = b[i]! & ((0xff << (8 - bits)) & 0xff);
  }
  return { ip: bytesToIp(b), prefixLen: n.prefixLen };
}

export function cidrContains(net: IPNet, ip: string): boolean {
  if (familyOf(net.ip) !== familyOf(ip)) return false;
  return networkOf({ ip, prefixLen: net.prefixLen }).ip === networkOf(net).ip;
}

export function parseMac(s: string): Buffer {
  const parts = s.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new TypeError(`invalid MAC address "${s}"`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export const formatMac = (b: Buffer): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');

/** Dotted-quad IPv4 (what node:net isIPv4 accepts), without loading node:net. */
export function isIPv4(s: string): boolean {
  return !s.includes(':') && parseV4(s) !== undefined;
}

/** IPv6 text with an optional zone (what node:net isIPv6 accepts), without loading node:net. */
export function isIPv6(s: string): boolean {
  const pct = s.indexOf('%');
  if (pct === s.length - 1) return false;
  return parseV6(pct >= 0 ? s.slice(0, pct) : s) !== undefined;
}
