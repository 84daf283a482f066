// IP address and prefix value types. One bigint-based code path serves both
// families; the family is a field, never a separate class.
//
// Parsing follows Go's net.ParseIP / net.ParseCIDR (what the reference CNI
// plugins use): dotted quads without leading zeros, RFC 4291 IPv6 text with an
// optional trailing dotted quad, no zones. IPv4-mapped IPv6 addresses
// (::ffff:a.b.c.d) parse as IPv4, as Go's To4() treats them.
// toString() prints what Go's net.IP.String() prints (RFC 5952 compression).

export type Family = 4 | 6;

const BITS: Record<Family, number> = { 4: 32, 6: 128 };
const MAX: Record<Family, bigint> = { 4: (1n << 32n) - 1n, 6: (1n << 128n) - 1n };
const V4_MAPPED_PREFIX = 0xffffn << 32n;

/** Dotted-quad IPv4 text → 32-bit value (no leading zeros), or undefined. */
export function parseV4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!/^[0-9]{1,3}$/.test(p)) return undefined;
    if (p.length > 1 && p[0] === '0') return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

/** Parses IPv6 text into a 128-bit value (no v4-mapping applied, no zone). */
export function parseV6(s: string): bigint | undefined {
  if (s.includes('%')) return undefined;
  const dbl = s.indexOf('::');
  if (dbl !== -1 && s.indexOf('::', dbl + 1) !== -1) return undefined;
  // An embedded dotted quad may only end the whole address ("1.2.3.4::" is not one).
  const parseGroups = (part: string, v4Tail: boolean): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const fields = part.split(':');
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      if (v4Tail && i === fields.length - 1 && f.includes('.')) {
        const v4 = parseV4(f);
        if (v4 === undefined) return undefined;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(f)) return undefined;
      out.push(parseInt(f, 16));
    }
    return out;
  };
  let groups: number[];
  if (dbl === -1) {
    const g = parseGroups(s, true);
    if (!g || g.length !== 8) return undefined;
    groups = g;
  } else {
    const head = parseGroups(s.slice(0, dbl), false);
    const tail = parseGroups(s.slice(dbl + 2), true);
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(g);
  return v;
}

/** RFC 5952 text of a 128-bit value (what Go's net.IP.String() prints for non-mapped addresses). */
export function v6ToString(v: bigint): string {
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  // Longest run of at least two zero groups; the first one wins ties.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (bestStart === -1) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

/** Text of a 32-bit value as a dotted quad. */
export function v4ToString(v: bigint): string {
  const n = Number(v);
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export class IPAddr {
  readonly family: Family;
  readonly value: bigint;

  private constructor(family: Family, value: bigint) {
    this.family = family;
    this.value = value;
  }

  static of(family: Family, value: bigint): IPAddr {
    if (value < 0n || value > MAX[family]) throw new RangeError(`IPv${family} value out of range`);
    return new IPAddr(family, value);
  }

  /** Go net.ParseIP semantics; undefined when `s` is not an address. */
  static parse(s: string): IPAddr | undefined {
    if (s.includes(':')) {
      const v = parseV6(s);
      if (v === undefined) return undefined;
      if (v >> 32n === 0xffffn) return new IPAddr(4, v & MAX[4]);
      return new IPAddr(6, v);
    }
    const v = parseV4(s);
    return v === undefined ? undefined : new IPAddr(4, v);
  }

  /** Accepts "ip" or "ip/len" (the prefix length is validated, then dropped). */
  static parseWithOptionalPrefix(s: string): IPAddr | undefined {
    if (!s.includes('/')) return IPAddr.parse(s);
    const p = IPPrefix.parse(s);
    if (!p) return undefined;
    return IPAddr.parse(p.addr.toString()) ?? p.addr;
  }

  get bits(): number {
    return BITS[this.family];
  }

  /** The following address, wrapping around at the end of the family. */
  next(): IPAddr {
    return new IPAddr(this.family, this.value === MAX[this.family] ? 0n : this.value + 1n);
  }

  prev(): IPAddr {
    return new IPAddr(this.family, this.value === 0n ? MAX[this.family] : this.value - 1n);
  }

  equals(o: IPAddr | undefined): boolean {
    return o !== undefined && o.family === this.family && o.value === this.value;
  }

  /** Orders by family first (4 before 6), then numerically. */
  compare(o: IPAddr): number {
    if (this.family !== o.family) return this.family - o.family;
    return this.value < o.value ? -1 : this.value > o.value ? 1 : 0;
  }

  toString(): string {
    return this.family === 4 ? v4ToString(this.value) : v6ToString(this.value);
  }

  toJSON(): string {
    return this.toString();
  }
}

export class IPPrefix {
  /** The address as written (host bits are kept; see network()). */
  readonly addr: IPAddr;
  readonly length: number;

  constructor(addr: IPAddr, length: number) {
    if (!Number.isInteger(length) || length < 0 || length > addr.bits) {
      throw new RangeError(`invalid prefix length ${length} for IPv${addr.family}`);
    }
    this.addr = addr;
    this.length = length;
  }

  /** Go net.ParseCIDR semantics, except the address keeps its host bits. */
  static parse(s: string): IPPrefix | undefined {
    const slash = s.indexOf('/');
    if (slash === -1) return undefined;
    const a = s.slice(0, slash);
    const l = s.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(l)) return undefined;
    const len = Number(l);
    let addr: IPAddr | undefined;
    if (a.includes(':')) {
      const v = parseV6(a);
      addr = v === undefined ? undefined : IPAddr.of(6, v);
    } else {
      addr = IPAddr.parse(a);
    }
    if (!addr || len > addr.bits) return undefined;
    return new IPPrefix(addr, len);
  }

  get family(): Family {
    return this.addr.family;
  }

  private get hostMask(): bigint {
    return (1n << BigInt(this.addr.bits - this.length)) - 1n;
  }

  /** First address of the prefix (host bits cleared). */
  network(): IPAddr {
    return IPAddr.of(this.family, this.addr.value & ~this.hostMask & MAX[this.family]);
  }

  /** Last address of the prefix (all host bits set; the v4 broadcast). */
  last(): IPAddr {
    return IPAddr.of(this.family, (this.addr.value & ~this.hostMask & MAX[this.family]) | this.hostMask);
  }

  hasHostBits(): boolean {
    return (this.addr.value & this.hostMask) !== 0n;
  }

  /** The same prefix with host bits cleared. */
  masked(): IPPrefix {
    return new IPPrefix(this.network(), this.length);
  }

  contains(ip: IPAddr): boolean {
    return ip.family === this.family && (ip.value & ~this.hostMask) === (this.addr.value & ~this.hostMask);
  }

  /** Number of addresses in the prefix. */
  size(): bigint {
    return this.hostMask + 1n;
  }

  toString(): string {
    return `${this.addr.toString()}/${this.length}`;
  }

  toJSON(): string {
    return this.toString();
  }
}
