// Address bytes <-> text, canonical like Go's net.IP.String() (RFC 5952).
import { AF_INET, AF_INET6 } from './constants.ts';

export type Family = 4 | 6;

export function familyOf(ip: string): Family {
  if (isIPv4(ip)) return 4;
  if (isIPv6(ip)) return 6;
  throw new TypeError(`invalid IP address "${ip}"`);
}

export const afOf = (f: Family): number => (f === 4 ? AF_INET : AF_INET6);
export const familyOfAf = (af: number): Family => (af === AF_INET6 ? 6 : 4);

export function ipToBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) throw new TypeError(`invalid IP address "${ip}"`);
  let s = ip;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    const v4 = s.slice(lastColon + 1).split('.').map(Number);
    tail = [((v4[0]! << 8) | v4[1]!) >>> 0, ((v4[2]! << 8) | v4[3]!) >>> 0];
    s = s.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array(8 - h.length - r.length).fill('0'), ...r];
  const words = groups.map((g) => parseInt(g, 16));
  if (tail.length) words.splice(6, 2, ...tail);
  const b = Buffer.alloc(16);
  words.forEach((w, i) => b.writeUInt16BE(w, i * 2));
  return b;
}

export function bytesToIp(b: Buffer): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) throw new RangeError(`address of ${b.length} bytes`);
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push(b.readUInt16BE(i * 2));
  // IPv4-mapped addresses print as dotted quads, like Go.
  if (w.slice(0, 5).every((x) => x === 0) && w[5] === 0xffff) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = w.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
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

const V4_OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const V4_RE = new RegExp(`^${V4_OCTET}(\\.${V4_OCTET}){3}$`);
const HEXQ = /^[0-9a-fA-F]{1,4}$/;

/** Dotted-quad IPv4 (what node:net isIPv4 accepts), without loading node:net. */
export function isIPv4(s: string): boolean {
  return V4_RE.test(s);
}

/** IPv6 text (RFC 4291 §2.2, optional zone), without loading node:net. */
export function isIPv6(s: string): boolean {
  const pct = s.indexOf('%');
  let a = pct >= 0 ? s.slice(0, pct) : s;
  if (pct >= 0 && pct === s.length - 1) return false;
  let tailGroups = 0;
  const lastColon = a.lastIndexOf(':');
  if (lastColon < 0) return false;
  if (a.slice(lastColon + 1).includes('.')) {
    if (!isIPv4(a.slice(lastColon + 1))) return false;
    a = a.slice(0, lastColon + 1) + '0';
    tailGroups = 1; // the dotted quad takes two groups; one is counted below
  }
  const halves = a.split('::');
  if (halves.length > 2) return false;
  const groups = (h: string): string[] | undefined => (h === '' ? [] : h.split(':'));
  const head = groups(halves[0]!) ?? [];
  const tail = halves.length === 2 ? (groups(halves[1]!) ?? []) : [];
  if (![...head, ...tail].every((g) => HEXQ.test(g))) return false;
  const n = head.length + tail.length + tailGroups;
  return halves.length === 2 ? n <= 7 : n === 8;
}
