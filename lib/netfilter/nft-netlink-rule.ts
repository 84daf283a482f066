// Rule bodies in `nft list` form → nf_tables expressions, for exactly the
// forms kube-proxy's renderer writes (render/nftables.ts). The expressions
// are the ones nft 1.0.6 itself generates for the same text (captured with
// `strace -e write=all nft -f` and `nft --debug=netlink`, see
// nft-netlink.testdata/), so `nft list` prints the rule back as written.
// Anything else is an NftCompileError naming the rule and the token: never a
// guess.
import { IPAddr, type Family } from '../ip/index.ts';
import { NetError } from '../errors.ts';

export class NftCompileError extends NetError {
  constructor(
    readonly rule: string,
    what: string,
  ) {
    super('NFT_UNSUPPORTED_RULE', `nft netlink writer cannot compile rule ${JSON.stringify(rule)}: ${what}`);
  }
}

// Registers as the kernel numbers them (NFT_REG_VERDICT, NFT_REG_1.., NFT_REG32_00..).
export const NFT_REG_VERDICT = 0;
export const NFT_REG_1 = 1;
const NFT_REG32_00 = 8;

// Verdict codes (linux/netfilter/nf_tables.h, NF_DROP/NF_ACCEPT and NFT_*).
export const VERDICT = { drop: 0, accept: 1, continue: -1, break: -2, jump: -3, goto: -4, return: -5 } as const;

export const PAYLOAD_NETWORK = 1;
export const PAYLOAD_TRANSPORT = 2;
export const META_MARK = 3;
export const META_IIFNAME = 6;
export const META_L4PROTO = 16;
export const CT_STATE = 0;
export const CMP_EQ = 0;
export const CMP_NEQ = 1;
export const LOOKUP_F_INV = 1;
export const FIB_F_SADDR = 1;
export const FIB_F_DADDR = 2;
export const FIB_RESULT_ADDRTYPE = 3;
export const NG_RANDOM = 1;
export const DYNSET_OP_UPDATE = 1;
export const NAT_DNAT = 1;
export const NF_NAT_RANGE_PROTO_SPECIFIED = 2;
export const NF_NAT_RANGE_PROTO_RANDOM_FULLY = 0x10;
export const REJECT_ICMP_UNREACH = 0;
const RTN_LOCAL = 2;
const IP_CT_NEW_BIT = 8;

/** A set the expressions name: one of the table, or an anonymous one of this rule (by index). */
export type SetRef = { readonly name: string } | { readonly anon: number };

export type Expr =
  | { readonly k: 'payload'; readonly dreg: number; readonly base: number; readonly offset: number; readonly len: number }
  | { readonly k: 'cmp'; readonly sreg: number; readonly op: number; readonly data: Buffer }
  | { readonly k: 'bitwise'; readonly reg: number; readonly len: number; readonly mask: Buffer; readonly xor: Buffer; readonly withOp: boolean }
  | { readonly k: 'meta'; readonly key: number; readonly dreg: number }
  | { readonly k: 'meta-set'; readonly key: number; readonly sreg: number }
  | { readonly k: 'ct'; readonly key: number; readonly dreg: number }
  | { readonly k: 'lookup'; readonly sreg: number; readonly dreg?: number; readonly set: SetRef; readonly flags?: number }
  | { readonly k: 'verdict'; readonly code: number; readonly chain?: string }
  | { readonly k: 'immediate'; readonly dreg: number; readonly data: Buffer }
  | { readonly k: 'reject'; readonly type: number; readonly code: number }
  | { readonly k: 'masq'; readonly flags: number }
  | { readonly k: 'nat'; readonly type: number; readonly family: number; readonly regAddr: number; readonly regProto: number; readonly flags: number }
  | { readonly k: 'fib'; readonly flags: number; readonly result: number; readonly dreg: number }
  | { readonly k: 'numgen'; readonly dreg: number; readonly mod: number; readonly type: number; readonly offset: number }
  | { readonly k: 'dynset'; readonly sreg: number; readonly op: number; readonly set: SetRef };

/** An element of an anonymous set: a key, and for a verdict map its verdict. */
export interface AnonElement {
  readonly key: Buffer;
  /** NFT_SET_ELEM_INTERVAL_END. */
  readonly end?: boolean;
  /** The last interval runs to the top of the address space (NFTNL_SET_ELEM_F_INTERVAL_OPEN). */
  readonly open?: boolean;
  readonly verdict?: { readonly code: number; readonly chain?: string };
}

/** An anonymous set a rule carries (`{ … }`, `vmap { … }`), created in the rule's batch. */
export interface AnonSet {
  readonly map: boolean;
  readonly flags: number;
  readonly keyType: number;
  readonly keyLen: number;
  readonly size: number;
  /** NFTA_SET_USERDATA as nft 1.0.6 writes it for this set. */
  readonly userdata: Buffer;
  readonly elements: readonly AnonElement[];
}

export interface CompiledRule {
  readonly exprs: readonly Expr[];
  readonly anon: readonly AnonSet[];
}

export const NFT_SET_ANONYMOUS = 0x1;
export const NFT_SET_CONSTANT = 0x2;
export const NFT_SET_INTERVAL = 0x4;
export const NFT_SET_MAP = 0x8;
export const NFT_SET_TIMEOUT = 0x10;
export const NFT_SET_EVAL = 0x20;

// nft's datatype ids (datatype.h) and its concatenation encoding (TYPE_BITS 6).
export const TYPE_VERDICT = 1;
export const TYPE_INTEGER = 4;
export const TYPE_IPADDR = 7;
export const TYPE_IP6ADDR = 8;
export const TYPE_INET_PROTOCOL = 12;
export const TYPE_INET_SERVICE = 13;
export const NFT_DATA_VERDICT = 0xffffff00;

const PROTOCOLS: Record<string, number> = { tcp: 6, udp: 17, sctp: 132 };
export function protocolNumber(name: string): number | undefined {
  return PROTOCOLS[name];
}

/** nft's internal 32-bit register numbering → the kernel's (netlink_put_register). */
function kernelReg(internal: number): number {
  const r = internal - NFT_REG_1;
  return r % 4 === 0 ? NFT_REG_1 + r / 4 : r + NFT_REG32_00;
}

const u32host = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
const be16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
};

/** Network-order bytes of an address of the family, or undefined. */
export function addrBytes(family: Family, s: string): Buffer | undefined {
  if (family === 4) {
    const p = s.split('.');
    if (p.length !== 4) return undefined;
    const b = Buffer.alloc(4);
    for (let i = 0; i < 4; i++) {
      const t = p[i]!;
      if (!/^\d{1,3}$/.test(t) || Number(t) > 255) return undefined;
      b[i] = Number(t);
    }
    return b;
  }
  if (!s.includes(':')) return undefined;
  const ip = IPAddr.parse(s);
  if (!ip) return undefined;
  // A v4-mapped address parses as IPv4; the table wants its 16 bytes.
  if (ip.family === 4) return Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]), ip.toBytes()]);
  return ip.toBytes();
}

interface Prefix {
  readonly bytes: Buffer;
  readonly len: number;
}

function parsePrefix(family: Family, s: string): Prefix | undefined {
  const slash = s.indexOf('/');
  const bits = family === 4 ? 32 : 128;
  if (slash < 0) {
    const b = addrBytes(family, s);
    return b && { bytes: b, len: bits };
  }
  const b = addrBytes(family, s.slice(0, slash));
  const l = s.slice(slash + 1);
  if (!b || !/^\d{1,3}$/.test(l) || Number(l) > bits) return undefined;
  const len = Number(l);
  const masked = Buffer.from(b);
  for (let i = 0; i < masked.length; i++) {
    const keep = Math.max(0, Math.min(8, len - i * 8));
    masked[i]! &= (0xff << (8 - keep)) & 0xff;
  }
  return { bytes: masked, len };
}

const ADDR = { 4: { saddr: 12, daddr: 16, len: 4, nfproto: 2 }, 6: { saddr: 8, daddr: 24, len: 16, nfproto: 10 } } as const;
/** nft's payload templates for a typeof key (proto.c): PROTO_DESC_IP(6) and IP(6)HDR_SADDR/DADDR. */
const TYPEOF = { 4: { desc: 12, saddr: 11, daddr: 12 }, 6: { desc: 13, saddr: 8, daddr: 9 } } as const;

/** nft's match of an address or prefix: the shortest whole-byte load, else a masked one. */
function addrMatch(family: Family, field: 'saddr' | 'daddr', op: number, p: Prefix, out: Expr[]): void {
  const a = ADDR[family];
  const off = a[field];
  if (p.len % 8 === 0) {
    const n = p.len / 8;
    if (n === 0) throw new Error('zero-length prefix');
    out.push({ k: 'payload', dreg: NFT_REG_1, base: PAYLOAD_NETWORK, offset: off, len: n });
    out.push({ k: 'cmp', sreg: NFT_REG_1, op, data: p.bytes.subarray(0, n) });
    return;
  }
  const mask = Buffer.alloc(a.len);
  for (let i = 0; i < a.len; i++) mask[i] = (0xff << (8 - Math.max(0, Math.min(8, p.len - i * 8)))) & 0xff;
  out.push({ k: 'payload', dreg: NFT_REG_1, base: PAYLOAD_NETWORK, offset: off, len: a.len });
  out.push({ k: 'bitwise', reg: NFT_REG_1, len: a.len, mask, xor: Buffer.alloc(a.len), withOp: false });
  out.push({ k: 'cmp', sreg: NFT_REG_1, op, data: p.bytes });
}

function addOne(b: Buffer): Buffer | undefined {
  const o = Buffer.from(b);
  for (let i = o.length - 1; i >= 0; i--) {
    if (o[i] !== 0xff) {
      o[i]!++;
      return o;
    }
    o[i] = 0;
  }
  return undefined; // wrapped: the range ran to the top
}

/** An anonymous interval set of prefixes, merged and encoded as nft 1.0.6 does (automerge). */
function intervalSet(family: Family, field: 'saddr' | 'daddr', prefixes: readonly Prefix[]): AnonSet {
  const len = ADDR[family].len;
  // [low, high] inclusive, as bigints for easy merging.
  const toBig = (b: Buffer): bigint => BigInt(`0x${b.toString('hex')}`);
  const toBuf = (v: bigint): Buffer => Buffer.from(v.toString(16).padStart(len * 2, '0'), 'hex');
  const hostBits = (p: Prefix): bigint => (1n << BigInt(len * 8 - p.len)) - 1n;
  const ranges = prefixes.map((p) => ({ low: toBig(p.bytes), high: toBig(p.bytes) | hostBits(p) })).sort((x, y) => (x.low < y.low ? -1 : x.low > y.low ? 1 : 0));
  const merged: { low: bigint; high: bigint }[] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r.low <= last.high + 1n) {
      if (r.high > last.high) last.high = r.high;
    } else merged.push({ ...r });
  }
  const elements: AnonElement[] = [];
  if (merged[0]!.low !== 0n) elements.push({ key: Buffer.alloc(len), end: true });
  for (const r of merged) {
    const end = addOne(toBuf(r.high));
    if (end) {
      elements.push({ key: toBuf(r.low) });
      elements.push({ key: end, end: true });
    } else elements.push({ key: toBuf(r.low), open: true });
  }
  const t = TYPEOF[family];
  const ud = Buffer.from([
    // KEYBYTEORDER big endian, MERGE_ELEMENTS 1, KEY_TYPEOF { payload { desc, template } }
    0, 4, 2, 0, 0, 0,
    2, 4, 1, 0, 0, 0,
    3, 0x14, 0, 4, 7, 0, 0, 0, 1, 0x0c, 0, 4, t.desc, 0, 0, 0, 1, 4, t[field], 0, 0, 0,
  ]);
  return {
    map: false,
    flags: NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | NFT_SET_INTERVAL,
    keyType: family === 4 ? TYPE_IPADDR : TYPE_IP6ADDR,
    keyLen: len,
    size: merged.length * 2 + 1,
    userdata: ud,
    elements,
  };
}

/** KEYBYTEORDER host, DATABYTEORDER 0, DATA_TYPEOF { verdict }, DATA_INTERVAL 0: nft's numgen vmap. */
const NUMGEN_MAP_USERDATA = Buffer.from([0, 4, 1, 0, 0, 0, 1, 4, 0, 0, 0, 0, 4, 8, 0, 4, 1, 0, 0, 0, 1, 0, 6, 4, 0, 0, 0, 0]);

const CHAIN_NAME = /^[A-Za-z_][A-Za-z0-9_./:-]*$/;

/** A verdict `jump X`, `goto X`, `drop`, `accept`, `return` from the tokens at i; the tokens used, or 0. */
export function parseVerdict(t: readonly string[], i: number): { code: number; chain?: string; used: number } | undefined {
  const w = t[i];
  if (w === 'jump' || w === 'goto') {
    const chain = t[i + 1];
    if (chain === undefined || !CHAIN_NAME.test(chain)) return undefined;
    return { code: VERDICT[w], chain, used: 2 };
  }
  if (w === 'drop' || w === 'accept' || w === 'return') return { code: VERDICT[w], used: 1 };
  return undefined;
}

/** Compiles one rule body for a table of the family. */
export function compileRule(family: Family, rule: string): CompiledRule {
  const t = rule.split(' ');
  const out: Expr[] = [];
  const anon: AnonSet[] = [];
  const ipX = family === 4 ? 'ip' : 'ip6';
  const fail = (what: string): never => {
    throw new NftCompileError(rule, what);
  };
  const setName = (tok: string | undefined): string => {
    if (tok === undefined || !tok.startsWith('@') || !CHAIN_NAME.test(tok.slice(1))) return fail(`expected @set at ${JSON.stringify(tok)}`);
    return tok.slice(1);
  };
  /** Tokens of a `{ a , b , c }` list starting at i (t[i] === '{'); returns items and the index after '}'. */
  const list = (i: number): { items: string[][]; next: number } => {
    const items: string[][] = [];
    let cur: string[] = [];
    let j = i + 1;
    for (; j < t.length && t[j] !== '}'; j++) {
      if (t[j] === ',') {
        items.push(cur);
        cur = [];
      } else cur.push(t[j]!);
    }
    if (t[j] !== '}') fail('unterminated { … }');
    items.push(cur);
    if (items.some((x) => x.length === 0)) fail('empty element in { … }');
    return { items, next: j + 1 };
  };
  let i = 0;
  let l4proto: number | undefined;
  let terminal = false;
  while (i < t.length) {
    if (terminal) fail(`nothing may follow the statement, got ${JSON.stringify(t[i])}`);
    const w = t[i]!;
    if (w === ipX && (t[i + 1] === 'saddr' || t[i + 1] === 'daddr')) {
      const field = t[i + 1] as 'saddr' | 'daddr';
      i += 2;
      if (t[i] === '.') {
        // ip daddr . meta l4proto . th dport vmap @map
        if (field !== 'daddr' || t[i + 1] !== 'meta' || t[i + 2] !== 'l4proto' || t[i + 3] !== '.' || t[i + 4] !== 'th' || t[i + 5] !== 'dport' || t[i + 6] !== 'vmap') fail('unsupported concatenation');
        const name = setName(t[i + 7]);
        const a = ADDR[family];
        out.push({ k: 'payload', dreg: NFT_REG_1, base: PAYLOAD_NETWORK, offset: a[field], len: a.len });
        out.push({ k: 'meta', key: META_L4PROTO, dreg: kernelReg(NFT_REG_1 + a.len / 4) });
        out.push({ k: 'payload', dreg: kernelReg(NFT_REG_1 + a.len / 4 + 1), base: PAYLOAD_TRANSPORT, offset: 2, len: 2 });
        out.push({ k: 'lookup', sreg: NFT_REG_1, dreg: NFT_REG_VERDICT, set: { name } });
        i += 8;
        terminal = true;
        continue;
      }
      let op = CMP_EQ;
      if (t[i] === '!=') {
        op = CMP_NEQ;
        i++;
      }
      const v = t[i];
      if (v === undefined) fail('missing value');
      if (v!.startsWith('@')) {
        if (op !== CMP_EQ) fail('!= @set is not supported');
        const a = ADDR[family];
        out.push({ k: 'payload', dreg: NFT_REG_1, base: PAYLOAD_NETWORK, offset: a[field], len: a.len });
        out.push({ k: 'lookup', sreg: NFT_REG_1, set: { name: setName(v) } });
        i++;
        continue;
      }
      if (v === '{') {
        const { items, next } = list(i);
        const prefixes = items.map((x) => (x.length === 1 ? parsePrefix(family, x[0]!) : undefined) ?? fail(`invalid address or prefix ${JSON.stringify(x.join(' '))}`));
        i = next;
        if (prefixes.length === 1) {
          // nft 1.0.6 turns a one-element set into a plain match.
          addrMatch(family, field, op, prefixes[0]!, out);
          continue;
        }
        const a = ADDR[family];
        out.push({ k: 'payload', dreg: NFT_REG_1, base: PAYLOAD_NETWORK, offset: a[field], len: a.len });
        anon.push(intervalSet(family, field, prefixes));
        out.push(op === CMP_NEQ ? { k: 'lookup', sreg: NFT_REG_1, set: { anon: anon.length - 1 }, flags: LOOKUP_F_INV } : { k: 'lookup', sreg: NFT_REG_1, set: { anon: anon.length - 1 } });
        continue;
      }
      const p = parsePrefix(family, v!) ?? fail(`invalid IPv${family} address or prefix ${JSON.stringify(v)}`);
      addrMatch(family, field, op, p, out);
      i++;
      continue;
    }
    if (w === 'meta' && t[i + 1] === 'l4proto') {
      if (t[i + 2] === '.') {
        // meta l4proto . th dport vmap @map
        if (t[i + 3] !== 'th' || t[i + 4] !== 'dport' || t[i + 5] !== 'vmap') fail('unsupported concatenation');
        const name = setName(t[i + 6]);
        out.push({ k: 'meta', key: META_L4PROTO, dreg: NFT_REG_1 });
        out.push({ k: 'payload', dreg: kernelReg(NFT_REG_1 + 1), base: PAYLOAD_TRANSPORT, offset: 2, len: 2 });
        out.push({ k: 'lookup', sreg: NFT_REG_1, dreg: NFT_REG_VERDICT, set: { name } });
        i += 7;
        terminal = true;
        continue;
      }
      const p = protocolNumber(t[i + 2] ?? '') ?? fail(`unknown protocol ${JSON.stringify(t[i + 2])}`);
      out.push({ k: 'meta', key: META_L4PROTO, dreg: NFT_REG_1 });
      out.push({ k: 'cmp', sreg: NFT_REG_1, op: CMP_EQ, data: Buffer.from([p]) });
      l4proto = p;
      i += 3;
      continue;
    }
    if (protocolNumber(w) !== undefined && t[i + 1] === 'dport') {
      const port = t[i + 2] ?? '';
      if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) fail(`invalid port ${JSON.stringify(port)}`);
      // The protocol match nft adds as the dependency of the port match.
      out.push({ k: 'meta', key: META_L4PROTO, dreg: NFT_REG_1 });
      out.push({ k: 'cmp', sreg: NFT_REG_1, op: CMP_EQ, data: Buffer.from([protocolNumber(w)!]) });
      out.push({ k: 'payload', dreg: NFT_REG_1, base: PAYLOAD_TRANSPORT, offset: 2, len: 2 });
      out.push({ k: 'cmp', sreg: NFT_REG_1, op: CMP_EQ, data: be16(Number(port)) });
      i += 3;
      continue;
    }
    if (w === 'ct' && t[i + 1] === 'state' && t[i + 2] === 'new') {
      out.push({ k: 'ct', key: CT_STATE, dreg: NFT_REG_1 });
      out.push({ k: 'bitwise', reg: NFT_REG_1, len: 4, mask: u32host(IP_CT_NEW_BIT), xor: u32host(0), withOp: false });
      out.push({ k: 'cmp', sreg: NFT_REG_1, op: CMP_NEQ, data: u32host(0) });
      i += 3;
      continue;
    }
    if (w === 'fib' && (t[i + 1] === 'saddr' || t[i + 1] === 'daddr') && t[i + 2] === 'type' && t[i + 3] === 'local') {
      out.push({ k: 'fib', flags: t[i + 1] === 'saddr' ? FIB_F_SADDR : FIB_F_DADDR, result: FIB_RESULT_ADDRTYPE, dreg: NFT_REG_1 });
      out.push({ k: 'cmp', sreg: NFT_REG_1, op: CMP_EQ, data: u32host(RTN_LOCAL) });
      i += 4;
      continue;
    }
    if (w === 'iifname') {
      let op = CMP_EQ;
      i++;
      if (t[i] === '!=') {
        op = CMP_NEQ;
        i++;
      }
      const name = t[i] ?? '';
      const wildcard = name.endsWith('*');
      const base = wildcard ? name.slice(0, -1) : name;
      if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(base)) fail(`invalid interface name ${JSON.stringify(name)}`);
      out.push({ k: 'meta', key: META_IIFNAME, dreg: NFT_REG_1 });
      const data = wildcard ? Buffer.from(base, 'latin1') : Buffer.concat([Buffer.from(base, 'latin1'), Buffer.alloc(16 - base.length)]);
      out.push({ k: 'cmp', sreg: NFT_REG_1, op, data });
      i++;
      continue;
    }
    if (w === 'mark') {
      const hex = (s: string | undefined): number => {
        if (s === undefined || !/^0x[0-9a-fA-F]{1,8}$/.test(s)) return fail(`expected a hex mark at ${JSON.stringify(s)}`);
        return Number.parseInt(s.slice(2), 16) >>> 0;
      };
      if (t[i + 1] === 'and' && t[i + 3] === '==') {
        const m = hex(t[i + 2]);
        const v = t[i + 4] === '0' ? 0 : hex(t[i + 4]);
        out.push({ k: 'meta', key: META_MARK, dreg: NFT_REG_1 });
        out.push({ k: 'bitwise', reg: NFT_REG_1, len: 4, mask: u32host(m), xor: u32host(0), withOp: true });
        out.push({ k: 'cmp', sreg: NFT_REG_1, op: CMP_EQ, data: u32host(v & m) });
        i += 5;
        continue;
      }
      if (t[i + 1] === 'set' && t[i + 2] === 'mark' && (t[i + 3] === 'or' || t[i + 3] === 'xor')) {
        const m = hex(t[i + 4]);
        out.push({ k: 'meta', key: META_MARK, dreg: NFT_REG_1 });
        out.push({ k: 'bitwise', reg: NFT_REG_1, len: 4, mask: u32host(t[i + 3] === 'or' ? ~m >>> 0 : 0xffffffff), xor: u32host(m), withOp: true });
        out.push({ k: 'meta-set', key: META_MARK, sreg: NFT_REG_1 });
        i += 5;
        terminal = true;
        continue;
      }
      fail('unsupported mark expression');
    }
    if (w === 'numgen') {
      if (t[i + 1] !== 'random' || t[i + 2] !== 'mod' || t[i + 4] !== 'vmap' || t[i + 5] !== '{') fail('unsupported numgen expression');
      const mod = Number(t[i + 3]);
      if (!Number.isInteger(mod) || mod < 1 || mod > 0xffffffff) fail(`invalid modulus ${JSON.stringify(t[i + 3])}`);
      const { items, next } = list(i + 5);
      if (items.length !== mod) fail(`numgen mod ${mod} with ${items.length} entries`);
      const elements = items.map((x, n): AnonElement => {
        if (x[0] !== String(n) || x[1] !== ':') return fail(`vmap entry ${n} must be "${n} : verdict"`);
        const v = parseVerdict(x, 2);
        if (!v || v.used + 2 !== x.length) return fail(`invalid verdict ${JSON.stringify(x.slice(2).join(' '))}`);
        return { key: u32host(n), verdict: v.chain !== undefined ? { code: v.code, chain: v.chain } : { code: v.code } };
      });
      out.push({ k: 'numgen', dreg: NFT_REG_1, mod, type: NG_RANDOM, offset: 0 });
      anon.push({ map: true, flags: NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | NFT_SET_MAP, keyType: TYPE_INTEGER, keyLen: 4, size: mod, userdata: NUMGEN_MAP_USERDATA, elements });
      out.push({ k: 'lookup', sreg: NFT_REG_1, dreg: NFT_REG_VERDICT, set: { anon: anon.length - 1 } });
      i = next;
      terminal = true;
      continue;
    }
    // Statements.
    const v = parseVerdict(t, i);
    if (v) {
      out.push(v.chain !== undefined ? { k: 'verdict', code: v.code, chain: v.chain } : { k: 'verdict', code: v.code });
      i += v.used;
      terminal = true;
      continue;
    }
    if (w === 'reject' && i === t.length - 1) {
      out.push({ k: 'reject', type: REJECT_ICMP_UNREACH, code: family === 4 ? 3 : 4 });
      i++;
      terminal = true;
      continue;
    }
    if (w === 'masquerade' && t[i + 1] === 'fully-random') {
      out.push({ k: 'masq', flags: NF_NAT_RANGE_PROTO_RANDOM_FULLY });
      i += 2;
      terminal = true;
      continue;
    }
    if (w === 'dnat' && t[i + 1] === 'to') {
      if (l4proto === undefined) fail('dnat to addr:port needs a preceding meta l4proto match');
      const target = t[i + 2] ?? '';
      const m = family === 4 ? /^([0-9.]+):(\d{1,5})$/.exec(target) : /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(target);
      const addr = m ? addrBytes(family, m[1]!) : undefined;
      if (!m || !addr || Number(m[2]) > 65535) fail(`invalid dnat target ${JSON.stringify(target)}`);
      out.push({ k: 'immediate', dreg: NFT_REG_1, data: addr! });
      out.push({ k: 'immediate', dreg: NFT_REG_1 + 1, data: be16(Number(m![2])) });
      out.push({ k: 'nat', type: NAT_DNAT, family: ADDR[family].nfproto, regAddr: NFT_REG_1, regProto: NFT_REG_1 + 1, flags: NF_NAT_RANGE_PROTO_SPECIFIED });
      i += 3;
      terminal = true;
      continue;
    }
    if (w === 'update' && t[i + 2] === '{' && t[i + 3] === ipX && t[i + 4] === 'saddr' && t[i + 5] === '}' && i + 6 === t.length) {
      const name = setName(t[i + 1]);
      const a = ADDR[family];
      out.push({ k: 'payload', dreg: NFT_REG_1, base: PAYLOAD_NETWORK, offset: a.saddr, len: a.len });
      out.push({ k: 'dynset', sreg: NFT_REG_1, op: DYNSET_OP_UPDATE, set: { name } });
      i += 6;
      terminal = true;
      continue;
    }
    fail(`unsupported token ${JSON.stringify(w)}`);
  }
  if (out.length === 0) fail('empty rule');
  return { exprs: out, anon };
}
