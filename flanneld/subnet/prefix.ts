// A small IP prefix value type for subnet allocation. IPv4 and IPv6 share one
// code path: the address is a bigint and the family fixes the bit width.
// Address text is parsed and printed by lib/ip (the one implementation).
import { NetError } from '../../lib/errors.ts';
import { parseV4, parseV6, v4ToString, v6ToString } from '../../lib/ip/index.ts';

export type Family = 4 | 6;

export const familyBits = (family: Family): number => (family === 4 ? 32 : 128);

export class InvalidPrefixError extends NetError {
  constructor(input: string, why: string) {
    super('INVALID_PREFIX', `invalid CIDR address: ${input}${why ? ` (${why})` : ''}`);
  }
}

/** Parses a textual IPv4/IPv6 address into (family, bigint); IPv4-mapped IPv6 stays IPv6. */
export function parseAddr(text: string): { family: Family; value: bigint } {
  const v4 = text.includes(':') ? undefined : parseV4(text);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const v6 = text.includes(':') ? parseV6(text) : undefined;
  if (v6 !== undefined) return { family: 6, value: v6 };
  throw new NetError('INVALID_ADDRESS', `invalid IP address: ${text}`);
}

/** Formats (family, bigint) as canonical text (RFC 5952 for IPv6). */
export function formatAddr(family: Family, value: bigint): string {
  return family === 4 ? v4ToString(value) : v6ToString(value);
}

/** An IP prefix (network address + length). Immutable. */
export class Prefix {
  readonly family: Family;
  /** The address as given (host bits may be set, see `masked()`). */
  readonly addr: bigint;
  readonly len: number;

  constructor(family: Family, addr: bigint, len: number) {
    const bits = familyBits(family);
    if (!Number.isInteger(len) || len < 0 || len > bits) {
      throw new NetError('INVALID_PREFIX', `invalid prefix length /${len} for IPv${family}`);
    }
    this.family = family;
    this.addr = addr & ((1n << BigInt(bits)) - 1n);
    this.len = len;
  }

  /** Parses "a.b.c.d/n" or "x::/n". Host bits are kept; call masked() to drop them. */
  static parse(text: string): Prefix {
    const slash = text.indexOf('/');
    if (slash < 0) throw new InvalidPrefixError(text, 'missing prefix length');
    const ipText = text.slice(0, slash);
    const lenText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText)) throw new InvalidPrefixError(text, 'bad prefix length');
    let a;
    try {
      a = parseAddr(ipText);
    } catch {
      throw new InvalidPrefixError(text, 'bad address');
    }
    const len = Number(lenText);
    if (len > familyBits(a.family)) throw new InvalidPrefixError(text, 'prefix length too long');
    return new Prefix(a.family, a.value, len);
  }

  /** A prefix from an address string and a length. */
  static of(ip: string, len: number): Prefix {
    const a = parseAddr(ip);
    return new Prefix(a.family, a.value, len);
  }

  get bits(): number {
    return familyBits(this.family);
  }
  /** Number of host bits. */
  get hostBits(): number {
    return this.bits - this.len;
  }
  get mask(): bigint {
    const all = (1n << BigInt(this.bits)) - 1n;
    return all ^ ((1n << BigInt(this.hostBits)) - 1n);
  }
  /** The network address (host bits cleared). */
  get network(): bigint {
    return this.addr & this.mask;
  }
  /** The last address in the prefix. */
  get last(): bigint {
    return this.network | ((1n << BigInt(this.hostBits)) - 1n);
  }
  get size(): bigint {
    return 1n << BigInt(this.hostBits);
  }

  masked(): Prefix {
    return new Prefix(this.family, this.network, this.len);
  }
  isCanonical(): boolean {
    return this.addr === this.network;
  }

  ip(): string {
    return formatAddr(this.family, this.addr);
  }
  networkIP(): string {
    return formatAddr(this.family, this.network);
  }
  toString(): string {
    return `${this.ip()}/${this.len}`;
  }
  toJSON(): string {
    return this.toString();
  }

  equals(o: Prefix | undefined): boolean {
    return o !== undefined && o.family === this.family && o.addr === this.addr && o.len === this.len;
  }
  /** Whether the address (bigint, same family) lies inside this prefix. */
  containsAddr(a: bigint): boolean {
    return (a & this.mask) === this.network;
  }
  /** Whether `o` lies fully inside this prefix. */
  contains(o: Prefix): boolean {
    return o.family === this.family && o.len >= this.len && this.containsAddr(o.network);
  }
  overlaps(o: Prefix): boolean {
    if (o.family !== this.family) return false;
    return this.contains(o) || o.contains(this);
  }
  /** The next prefix of the same length (the address just after `last`). */
  next(): Prefix {
    return new Prefix(this.family, this.last + 1n, this.len);
  }
  /** The address `n` after the network address, as a prefix of the same length (FLANNEL_SUBNET style). */
  withHost(n: bigint): Prefix {
    return new Prefix(this.family, this.network + n, this.len);
  }
  /** First usable host address (network + 1), formatted. */
  firstHost(): string {
    return formatAddr(this.family, this.network + 1n);
  }
}

/** Parses a bare address into a prefix of full length (a /32 or /128). */
export function addrPrefix(ip: string): Prefix {
  const a = parseAddr(ip);
  return new Prefix(a.family, a.value, familyBits(a.family));
}
