// IP address and prefix value types. One bigint-based code path serves both
// families; the family is a field, never a separate class.
//
// This module is THE address and prefix type of the project: lib/netlink's
// model types, flanneld's leases and the CNI plugins all carry these values;
// text is parsed once at the edge (config, flags, kernel bytes) and printed
// only at the edge (CNI result JSON, etcd keys, logs, rules text).
//
// Parsing follows Go's net.ParseIP / net.ParseCIDR (what the reference CNI
// plugins and flannel use): dotted quads without leading zeros, RFC 4291 IPv6
// text with an optional trailing dotted quad, no zones.
// toString() prints what Go's net.IP.String() prints (RFC 5952 compression).
//
// IPv4-mapped IPv6 (::ffff:a.b.c.d), the one rule everywhere: an ADDRESS in
// that form is IPv4, as Go's To4() treats it (IPAddr.parse, IPAddr.fromBytes).
// A PREFIX written with such an address stays IPv6 (its length counts 128
// bits, as in Go's ParseCIDR), so "::ffff:10.0.0.0/104" is a v6 prefix.
import { NetError } from '../errors.ts';

export type Family = 4 | 6;

/** Both families, IPv4 first (the order every caller iterates in). */
export const FAMILIES: readonly Family[] = [4, 6];

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

/** Address width of a family in bits. */
export const familyBits = (family: Family): number => BITS[family];

/** The enabled families of a config with EnableIPv4/EnableIPv6 switches, IPv4 first. */
export function families(o: { readonly enableIPv4?: boolean | undefined; readonly enableIPv6?: boolean | undefined }): Family[] {
  return FAMILIES.filter((f) => (f === 4 ? o.enableIPv4 : o.enableIPv6) === true);
}

/** An address text that does not parse. The message is the one the CNI plugins and flanneld print. */
export class InvalidAddressError extends NetError {
  constructor(input: string) {
    super('INVALID_ADDRESS', `invalid IP address: ${input}`);
  }
}

/** A prefix text that does not parse; `why` (when given) is appended in parentheses. */
export class InvalidPrefixError extends NetError {
  constructor(input: string, why?: string) {
    super('INVALID_PREFIX', `invalid CIDR address: ${input}${why ? ` (${why})` : ''}`);
  }
}
const MAX: Record<Family, bigint> = { 4: (1n << 32n) - 1n, 6: (1n << 128n) - 1n };

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

  /** The unspecified address of a family (0.0.0.0 or ::). */
  static any(family: Family): IPAddr {
    return new IPAddr(family, 0n);
  }

  /** Go net.ParseIP semantics; undefined when `s` is not an address. */
  static parse(s: string): IPAddr | undefined {
    if (s.includes(':')) {
      const v = parseV6(s);
      return v === undefined ? undefined : IPAddr.fromV6Value(v);
    }
    const v = parseV4(s);
    return v === undefined ? undefined : new IPAddr(4, v);
  }

  /** Like parse(), but throws InvalidAddressError (code INVALID_ADDRESS). */
  static mustParse(s: string): IPAddr {
    const ip = IPAddr.parse(s);
    if (!ip) throw new InvalidAddressError(s);
    return ip;
  }

  /** Accepts "ip" or "ip/len" (the prefix length is validated, then dropped). */
  static parseWithOptionalPrefix(s: string): IPAddr | undefined {
    if (!s.includes('/')) return IPAddr.parse(s);
    const p = IPPrefix.parse(s);
    if (!p) return undefined;
    return p.addr.family === 6 ? IPAddr.fromV6Value(p.addr.value) : p.addr;
  }

  /** 4 or 16 network-order bytes (kernel, packets); a v4-mapped 16-byte address is IPv4. */
  static fromBytes(b: Uint8Array): IPAddr {
    const v = bytesValue(b);
    return b.length === 4 ? new IPAddr(4, v) : IPAddr.fromV6Value(v);
  }

  private static fromV6Value(v: bigint): IPAddr {
    return v >> 32n === 0xffffn ? new IPAddr(4, v & MAX[4]) : new IPAddr(6, v);
  }

  get bits(): number {
    return BITS[this.family];
  }

  /** Network-order bytes: 4 for IPv4, 16 for IPv6. */
  toBytes(): Buffer {
    const b = Buffer.alloc(this.bits / 8);
    if (this.family === 4) b.writeUInt32BE(Number(this.value));
    else {
      b.writeBigUInt64BE(this.value >> 64n, 0);
      b.writeBigUInt64BE(this.value & 0xffffffffffffffffn, 8);
    }
    return b;
  }

  /** The following address, wrapping around at the end of the family. */
  next(): IPAddr {
    return new IPAddr(this.family, this.value === MAX[this.family] ? 0n : this.value + 1n);
  }

  prev(): IPAddr {
    return new IPAddr(this.family, this.value === 0n ? MAX[this.family] : this.value - 1n);
  }

  /** The address `n` further on; RangeError past the end of the family (no wrap). */
  add(n: bigint): IPAddr {
    return IPAddr.of(this.family, this.value + n);
  }

  isUnspecified(): boolean {
    return this.value === 0n;
  }

  /** 127.0.0.0/8 or ::1. */
  isLoopback(): boolean {
    return this.family === 4 ? this.value >> 24n === 127n : this.value === 1n;
  }

  equals(o: IPAddr | undefined): boolean {
    return o !== undefined && o.family === this.family && o.value === this.value;
  }

  /** Orders by family first (4 before 6), then numerically. */
  compare(o: IPAddr): number {
    if (this.family !== o.family) return this.family - o.family;
    return this.value < o.value ? -1 : this.value > o.value ? 1 : 0;
  }

  /** Canonical text; computed once (addresses are map keys on hot paths). */
  toString(): string {
    return (this.#text ??= this.family === 4 ? v4ToString(this.value) : v6ToString(this.value));
  }
  #text: string | undefined;

  toJSON(): string {
    return this.toString();
  }
}

function bytesValue(b: Uint8Array): bigint {
  if (b.length !== 4 && b.length !== 16) throw new RangeError(`address of ${b.length} bytes`);
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

export class IPPrefix {
  /** The address as written (host bits are kept; see network()). */
  readonly addr: IPAddr;
  readonly length: number;

  constructor(addr: IPAddr, length: number) {
    if (!Number.isInteger(length) || length < 0 || length > addr.bits) {
      throw new NetError('INVALID_PREFIX', `invalid prefix length /${length} for IPv${addr.family}`);
    }
    this.addr = addr;
    this.length = length;
  }

  /** Go net.ParseCIDR semantics, except the address keeps its host bits. */
  static parse(s: string): IPPrefix | undefined {
    return parsePrefix(s).prefix;
  }

  /** Like parse(), but throws InvalidPrefixError (code INVALID_PREFIX) naming what is wrong. */
  static mustParse(s: string): IPPrefix {
    const r = parsePrefix(s);
    if (!r.prefix) throw new InvalidPrefixError(s, r.why);
    return r.prefix;
  }

  /** "ip/len", or a bare "ip" as a host prefix (/32, /128), as `ip addr`/`ip route` read it. */
  static parseOrHost(s: string): IPPrefix | undefined {
    if (s.includes('/')) return IPPrefix.parse(s);
    const ip = IPAddr.parse(s);
    return ip && IPPrefix.host(ip);
  }

  /** The host prefix of an address: a /32 or /128. */
  static host(ip: IPAddr): IPPrefix {
    return new IPPrefix(ip, ip.bits);
  }

  /** The default route's prefix, 0.0.0.0/0 or ::/0. */
  static any(family: Family): IPPrefix {
    return new IPPrefix(IPAddr.any(family), 0);
  }

  /** Kernel bytes and a length; the family is the byte count (a mapped address stays IPv6 here). */
  static fromBytes(b: Uint8Array, length: number): IPPrefix {
    return new IPPrefix(IPAddr.of(b.length === 4 ? 4 : 6, bytesValue(b)), length);
  }

  get family(): Family {
    return this.addr.family;
  }

  get bits(): number {
    return this.addr.bits;
  }

  get hostBits(): number {
    return this.bits - this.length;
  }

  private get hostMask(): bigint {
    return (1n << BigInt(this.hostBits)) - 1n;
  }

  /** The netmask as a value (the network bits set). */
  mask(): bigint {
    return MAX[this.family] ^ this.hostMask;
  }

  /** First address of the prefix (host bits cleared). */
  network(): IPAddr {
    return (this.#network ??= IPAddr.of(this.family, this.addr.value & this.mask()));
  }
  #network: IPAddr | undefined;

  /** Last address of the prefix (all host bits set; the v4 broadcast). */
  last(): IPAddr {
    return IPAddr.of(this.family, (this.addr.value & this.mask()) | this.hostMask);
  }

  hasHostBits(): boolean {
    return (this.addr.value & this.hostMask) !== 0n;
  }

  /** No host bits set: the prefix names a network, as etcd keys and routes want. */
  isCanonical(): boolean {
    return !this.hasHostBits();
  }

  /** The same prefix with host bits cleared. */
  masked(): IPPrefix {
    return new IPPrefix(this.network(), this.length);
  }

  /** Whether an address, or a whole prefix, lies inside this prefix (same family only). */
  contains(x: IPAddr | IPPrefix): boolean {
    if (x.family !== this.family) return false;
    if (x instanceof IPPrefix) return x.length >= this.length && this.contains(x.addr);
    return (x.value & this.mask()) === (this.addr.value & this.mask());
  }

  overlaps(o: IPPrefix): boolean {
    return o.family === this.family && (this.contains(o) || o.contains(this));
  }

  /** The next prefix of the same length (its network follows this one's last address). */
  next(): IPPrefix {
    return new IPPrefix(this.last().add(1n), this.length);
  }

  /** The address `n` after the network address, keeping the length (FLANNEL_SUBNET's 10.244.1.1/24). */
  withHost(n: bigint): IPPrefix {
    return new IPPrefix(this.network().add(n), this.length);
  }

  /**
   * The sub-prefixes of `length` inside this prefix, in order, starting at
   * `from` (a sub-prefix network; default the first one).
   */
  *subnets(length: number, from?: IPAddr): Generator<IPPrefix> {
    if (length < this.length || length > this.bits) throw new RangeError(`/${length} is not a subnet length of ${this.toString()}`);
    const step = 1n << BigInt(this.bits - length);
    const end = this.last().value;
    for (let v = from ? from.value : this.network().value; v <= end; v += step) {
      yield new IPPrefix(IPAddr.of(this.family, v), length);
    }
  }

  /** Number of addresses in the prefix. */
  size(): bigint {
    return this.hostMask + 1n;
  }

  equals(o: IPPrefix | undefined): boolean {
    return o !== undefined && o.length === this.length && o.addr.equals(this.addr);
  }

  toString(): string {
    return (this.#text ??= `${this.addr.toString()}/${this.length}`);
  }
  #text: string | undefined;

  toJSON(): string {
    return this.toString();
  }
}

function parsePrefix(s: string): { prefix?: IPPrefix; why?: string } {
  const slash = s.indexOf('/');
  if (slash === -1) return { why: 'missing prefix length' };
  const a = s.slice(0, slash);
  const l = s.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(l)) return { why: 'bad prefix length' };
  const len = Number(l);
  // Unlike an address, a prefix written in v4-mapped form stays IPv6 (see the top).
  const v = a.includes(':') ? parseV6(a) : parseV4(a);
  if (v === undefined) return { why: 'bad address' };
  const addr = IPAddr.of(a.includes(':') ? 6 : 4, v);
  if (len > addr.bits) return { why: 'prefix length too long' };
  return { prefix: new IPPrefix(addr, len) };
}
