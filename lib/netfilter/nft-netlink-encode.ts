// nf_tables batches: the commands of nft-netlink-commands.ts as the netlink
// messages nft 1.0.6 sends for the same `nft -f` text, attribute for
// attribute (expected bytes in nft-netlink.testdata/, captured from nft
// itself). One batch is NFNL_MSG_BATCH_BEGIN … NFNL_MSG_BATCH_END in one
// buffer, applied by the kernel all or nothing. Pure: no socket.
import type { Family } from '../ip/index.ts';
import { NetError } from '../errors.ts';
import type { NftCommand, NftTableRef } from './nft-netlink-commands.ts';
import {
  addrBytes,
  compileRule,
  NFT_DATA_VERDICT,
  NFT_SET_EVAL,
  NFT_SET_INTERVAL,
  NFT_SET_MAP,
  NFT_SET_TIMEOUT,
  NftCompileError,
  parseVerdict,
  protocolNumber,
  TYPE_INET_PROTOCOL,
  TYPE_INET_SERVICE,
  TYPE_IP6ADDR,
  TYPE_IPADDR,
  type AnonSet,
  type Expr,
  type SetRef,
} from './nft-netlink-rule.ts';

export const NFNL_SUBSYS_NFTABLES = 10;
export const NFNL_MSG_BATCH_BEGIN = 16;
export const NFNL_MSG_BATCH_END = 17;
export const NFT_MSG = {
  NEWTABLE: 0,
  GETTABLE: 1,
  DELTABLE: 2,
  NEWCHAIN: 3,
  GETCHAIN: 4,
  DELCHAIN: 5,
  NEWRULE: 6,
  GETRULE: 7,
  DELRULE: 8,
  NEWSET: 9,
  GETSET: 10,
  DELSET: 11,
  NEWSETELEM: 12,
  GETSETELEM: 13,
  DELSETELEM: 14,
} as const;
const F_REQUEST = 0x1;
const F_ACK = 0x4;
const F_CREATE = 0x400;
const F_APPEND = 0x800;
const NLA_F_NESTED = 0x8000;

const HOOKS: Record<string, number> = { prerouting: 0, input: 1, forward: 2, output: 3, postrouting: 4 };

export class NftEncodeError extends NetError {
  constructor(message: string) {
    super('NFT_ENCODE', message);
  }
}

/** A growable buffer of netlink messages and attributes (host-endian headers). */
class Writer {
  buf = Buffer.allocUnsafe(1 << 16);
  off = 0;

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.off + n) size *= 2;
    const b = Buffer.allocUnsafe(size);
    this.buf.copy(b, 0, 0, this.off);
    this.buf = b;
  }
  private pad(): void {
    const p = (4 - (this.off & 3)) & 3;
    if (p) {
      this.ensure(p);
      this.buf.fill(0, this.off, this.off + p);
      this.off += p;
    }
  }
  msgStart(type: number, flags: number, seq: number, family: number, resId = 0): number {
    this.ensure(20);
    const s = this.off;
    const b = this.buf;
    b.writeUInt32LE(0, s);
    b.writeUInt16LE(type, s + 4);
    b.writeUInt16LE(flags, s + 6);
    b.writeUInt32LE(seq >>> 0, s + 8);
    b.writeUInt32LE(0, s + 12);
    b[s + 16] = family;
    b[s + 17] = 0;
    b.writeUInt16BE(resId, s + 18);
    this.off += 20;
    return s;
  }
  msgEnd(start: number): void {
    this.buf.writeUInt32LE(this.off - start, start);
    this.pad();
  }
  private hdr(type: number, len: number): void {
    this.ensure(4 + len + 3);
    this.buf.writeUInt16LE(4 + len, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.off += 4;
  }
  bytes(type: number, data: Uint8Array): void {
    this.hdr(type, data.length);
    this.buf.set(data, this.off);
    this.off += data.length;
    this.pad();
  }
  str(type: number, s: string): void {
    const n = Buffer.byteLength(s);
    this.hdr(type, n + 1);
    this.buf.write(s, this.off, 'utf8');
    this.buf[this.off + n] = 0;
    this.off += n + 1;
    this.pad();
  }
  be32(type: number, v: number): void {
    this.hdr(type, 4);
    this.buf.writeUInt32BE(v >>> 0, this.off);
    this.off += 4;
  }
  be64(type: number, v: bigint): void {
    this.hdr(type, 8);
    this.buf.writeBigUInt64BE(v, this.off);
    this.off += 8;
  }
  u8(type: number, v: number): void {
    this.hdr(type, 1);
    this.buf[this.off] = v;
    this.off += 1;
    this.pad();
  }
  nest(type: number): number {
    this.ensure(4);
    const s = this.off;
    this.buf.writeUInt16LE(type | NLA_F_NESTED, s + 2);
    this.off += 4;
    return s;
  }
  nestEnd(start: number): void {
    this.buf.writeUInt16LE(this.off - start, start);
  }
  /** NFTNL udata: one TLV holding a NUL-terminated comment. */
  comment(type: number, tlvType: number, c: string): void {
    const n = Buffer.byteLength(c) + 1;
    if (n > 255) throw new NftEncodeError(`comment longer than 254 bytes: ${JSON.stringify(c)}`);
    const b = Buffer.alloc(n + 2);
    b[0] = tlvType;
    b[1] = n;
    b.write(c, 2, 'utf8');
    this.bytes(type, b);
  }
  take(): Buffer {
    return this.buf.subarray(0, this.off);
  }
}

/** A named set's key and data as the writer needs them to encode elements. */
interface SetType {
  readonly parts: readonly number[];
  readonly map: boolean;
}

/** nft type syntax → datatype ids (`ipv4_addr . inet_proto . inet_service : verdict`). */
function parseSetType(family: Family, type: string, kind: 'set' | 'map'): SetType {
  const [key, data, extra] = type.split(' : ');
  if (extra !== undefined || key === undefined) throw new NftEncodeError(`unsupported set type ${JSON.stringify(type)}`);
  const ids: Record<string, number> = { ipv4_addr: TYPE_IPADDR, ipv6_addr: TYPE_IP6ADDR, inet_proto: TYPE_INET_PROTOCOL, inet_service: TYPE_INET_SERVICE };
  const parts = key.split(' . ').map((p) => ids[p] ?? 0);
  if (parts.includes(0)) throw new NftEncodeError(`unsupported set key type ${JSON.stringify(key)}`);
  if (parts.includes(family === 4 ? TYPE_IP6ADDR : TYPE_IPADDR)) throw new NftEncodeError(`set key type ${JSON.stringify(key)} does not fit an IPv${family} table`);
  if ((kind === 'map') !== (data !== undefined) || (data !== undefined && data !== 'verdict')) throw new NftEncodeError(`unsupported ${kind} type ${JSON.stringify(type)}`);
  return { parts, map: kind === 'map' };
}

const partLen = (t: number): number => (t === TYPE_IPADDR ? 4 : t === TYPE_IP6ADDR ? 16 : t === TYPE_INET_PROTOCOL ? 1 : 2);

function elementKey(family: Family, st: SetType, key: readonly string[], set: string): Buffer {
  if (key.length !== st.parts.length) throw new NftEncodeError(`element { ${key.join(' . ')} } does not fit set ${set}`);
  const concat = st.parts.length > 1;
  const out: Buffer[] = [];
  for (let i = 0; i < key.length; i++) {
    const t = st.parts[i]!;
    const s = key[i]!;
    let b: Buffer | undefined;
    if (t === TYPE_IPADDR || t === TYPE_IP6ADDR) b = addrBytes(family, s);
    else if (t === TYPE_INET_PROTOCOL) {
      const p = protocolNumber(s);
      if (p !== undefined) b = Buffer.from([p]);
    } else if (/^\d{1,5}$/.test(s) && Number(s) <= 65535) {
      b = Buffer.alloc(2);
      b.writeUInt16BE(Number(s));
    }
    if (!b) throw new NftEncodeError(`invalid element key part ${JSON.stringify(s)} of set ${set}`);
    if (concat && b.length % 4 !== 0) b = Buffer.concat([b, Buffer.alloc(4 - (b.length % 4))]);
    out.push(b);
  }
  return out.length === 1 ? out[0]! : Buffer.concat(out);
}

/** NFTA_SET_USERDATA for a named set declared with `type`, as nft 1.0.6 writes it. */
function setUserdata(st: SetType, comment: string | undefined): Buffer {
  const parts: number[] = [];
  const concat = st.parts.length > 1;
  // KEYBYTEORDER: big endian for an address, none (0) for a concatenation.
  parts.push(0, 4, concat ? 0 : 2, 0, 0, 0);
  if (st.map) parts.push(1, 4, 0, 0, 0, 0);
  // KEY_TYPEOF of a concatenation: { expr: EXPR_CONCAT, data: {} }.
  if (concat) parts.push(3, 8, 0, 4, 13, 0, 0, 0, 1, 0);
  if (st.map) parts.push(6, 4, 0, 0, 0, 0);
  let b = Buffer.from(parts);
  if (comment !== undefined) {
    const c = Buffer.from(`${comment}\0`, 'utf8');
    if (c.length > 255) throw new NftEncodeError(`set comment too long: ${JSON.stringify(comment)}`);
    b = Buffer.concat([b, Buffer.from([7, c.length]), c]);
  }
  return b;
}

export interface EncodeOptions {
  /** Names for the anonymous sets of rules (default: __set<n> / __map<n>, n from the encoder's counter). */
  readonly anonymousSetName?: (map: boolean, n: number) => string;
  /** The first number used for anonymous set names. */
  readonly anonymousSetBase?: number;
}

/** One encoded batch: the bytes, and which sequence number each command's messages carry. */
export interface EncodedBatch {
  readonly bytes: Buffer;
  /** BATCH_BEGIN's sequence number; the commands' follow, BATCH_END's is lastSeq + 1. */
  readonly firstSeq: number;
  /** The last command message's (the one that asks for an ACK). */
  readonly lastSeq: number;
  /** The command index for a sequence number (anonymous-set messages belong to their rule). */
  commandOf(seq: number): number | undefined;
  readonly messages: number;
}

/**
 * Encodes batches for one table. It remembers the key types of the named
 * sets it has created (elements are encoded by them) across batches; seed
 * it with knownSet() for sets created by someone else.
 */
export class NftBatchEncoder {
  private readonly family: Family;
  private readonly nfproto: number;
  private readonly setTypes = new Map<string, SetType>();
  private anonCounter: number;
  private readonly anonName: (map: boolean, n: number) => string;

  constructor(
    readonly table: NftTableRef,
    opts: EncodeOptions = {},
  ) {
    if (table.family !== 'ip' && table.family !== 'ip6') throw new NftEncodeError(`unsupported table family ${table.family}`);
    this.family = table.family === 'ip' ? 4 : 6;
    this.nfproto = this.family === 4 ? 2 : 10;
    this.anonCounter = opts.anonymousSetBase ?? 0;
    this.anonName = opts.anonymousSetName ?? ((map, n) => `${map ? '__map' : '__set'}${n}`);
  }

  /** Declares a set that exists in the kernel (for encoding its elements). */
  knownSet(name: string, kind: 'set' | 'map', type: string): void {
    this.setTypes.set(name, parseSetType(this.family, type, kind));
  }

  forgetSets(): void {
    this.setTypes.clear();
  }

  /**
   * Encodes the commands as one batch with sequence numbers from `seq`.
   * Only the last message asks for an ACK (errors come back regardless).
   * Set types learnt from add-set are kept only once commit() is called.
   */
  encode(cmds: readonly NftCommand[], seq: number): EncodedBatch & { commit(): void; rebase(first: number): EncodedBatch } {
    const w = new Writer();
    const firstSeq = seq;
    w.msgEnd(w.msgStart(NFNL_MSG_BATCH_BEGIN, F_REQUEST, seq++, 0, NFNL_SUBSYS_NFTABLES));
    const cmdSeqStart: number[] = [];
    const pendingTypes = new Map<string, SetType | undefined>();
    const typeOf = (name: string): SetType | undefined => (pendingTypes.has(name) ? pendingTypes.get(name) : this.setTypes.get(name));
    const batchIds = new Map<string, number>();
    // nft numbers the named sets of a transaction first, in order, then the anonymous ones.
    let setId = 0;
    for (const c of cmds) if (c.op === 'add-set') setId++;
    let namedId = 0;
    let lastMsgStart = -1;
    const msg = (type: number, flags: number): number => {
      lastMsgStart = w.off;
      return w.msgStart((NFNL_SUBSYS_NFTABLES << 8) | type, flags, seq++, this.nfproto);
    };
    const tableName = this.table.name;
    for (let ci = 0; ci < cmds.length; ci++) {
      const c = cmds[ci]!;
      cmdSeqStart.push(seq);
      switch (c.op) {
        case 'add-table': {
          const m = msg(NFT_MSG.NEWTABLE, F_REQUEST);
          w.str(1, tableName);
          w.be32(2, 0);
          if (c.comment !== undefined) w.comment(6, 0, c.comment);
          w.msgEnd(m);
          break;
        }
        case 'delete-table': {
          const m = msg(NFT_MSG.DELTABLE, F_REQUEST);
          w.str(1, tableName);
          w.msgEnd(m);
          pendingTypes.clear();
          for (const k of this.setTypes.keys()) pendingTypes.set(k, undefined);
          batchIds.clear();
          break;
        }
        case 'add-chain': {
          const m = msg(NFT_MSG.NEWCHAIN, F_REQUEST | F_CREATE);
          w.str(1, tableName);
          w.str(3, c.name);
          if (c.type !== undefined) {
            const hook = HOOKS[c.hook ?? ''];
            if (hook === undefined || c.priority === undefined || !Number.isInteger(c.priority)) throw new NftEncodeError(`base chain ${c.name}: invalid hook or priority`);
            w.str(7, c.type);
            const h = w.nest(4);
            w.be32(1, hook);
            w.be32(2, c.priority);
            w.nestEnd(h);
          }
          if (c.comment !== undefined) w.comment(12, 0, c.comment);
          w.msgEnd(m);
          break;
        }
        case 'flush-chain': {
          const m = msg(NFT_MSG.DELRULE, F_REQUEST);
          w.str(1, tableName);
          w.str(2, c.name);
          w.msgEnd(m);
          break;
        }
        case 'delete-chain': {
          const m = msg(NFT_MSG.DELCHAIN, F_REQUEST);
          w.str(1, tableName);
          w.str(3, c.name);
          w.msgEnd(m);
          break;
        }
        case 'add-set': {
          const st = parseSetType(this.family, c.type, c.kind);
          let flags = st.map ? NFT_SET_MAP : 0;
          for (const f of c.flags ?? []) {
            if (f === 'timeout') flags |= NFT_SET_TIMEOUT;
            else if (f === 'dynamic') flags |= NFT_SET_EVAL;
            else if (f === 'interval') flags |= NFT_SET_INTERVAL;
            else throw new NftEncodeError(`set ${c.name}: unsupported flag ${JSON.stringify(f)}`);
          }
          if (flags & NFT_SET_INTERVAL) throw new NftEncodeError(`set ${c.name}: named interval sets are not supported`);
          const m = msg(NFT_MSG.NEWSET, F_REQUEST | F_CREATE);
          w.str(1, tableName);
          w.str(2, c.name);
          w.be32(3, flags);
          const keyType = st.parts.reduce((acc, p) => (acc << 6) | p, 0);
          const keyLen = st.parts.length > 1 ? st.parts.reduce((acc, p) => acc + ((partLen(p) + 3) & ~3), 0) : partLen(st.parts[0]!);
          w.be32(4, keyType);
          w.be32(5, keyLen);
          if (st.map) {
            w.be32(6, NFT_DATA_VERDICT);
            w.be32(7, 0);
          }
          const id = ++namedId;
          w.be32(10, id);
          if (c.timeout !== undefined) {
            if (!(flags & NFT_SET_TIMEOUT)) throw new NftEncodeError(`set ${c.name}: a timeout needs flag timeout`);
            w.be64(11, BigInt(c.timeout) * 1000n);
          }
          w.bytes(13, setUserdata(st, c.comment));
          w.msgEnd(m);
          pendingTypes.set(c.name, st);
          batchIds.set(c.name, id);
          break;
        }
        case 'delete-set': {
          const m = msg(NFT_MSG.DELSET, F_REQUEST);
          w.str(1, tableName);
          w.str(2, c.name);
          w.msgEnd(m);
          pendingTypes.set(c.name, undefined);
          batchIds.delete(c.name);
          break;
        }
        case 'add-element':
        case 'delete-element': {
          const st = typeOf(c.set);
          if (!st) throw new NftEncodeError(`element of unknown set ${c.set}`);
          const key = elementKey(this.family, st, c.key, c.set);
          const add = c.op === 'add-element';
          const m = msg(add ? NFT_MSG.NEWSETELEM : NFT_MSG.DELSETELEM, add ? F_REQUEST | F_CREATE : F_REQUEST);
          w.str(1, tableName);
          w.str(2, c.set);
          const id = batchIds.get(c.set);
          if (add && id !== undefined) w.be32(4, id);
          const list = w.nest(3);
          const e = w.nest(1);
          const k = w.nest(1);
          w.bytes(1, key);
          w.nestEnd(k);
          if (add && c.op === 'add-element') {
            if (st.map) {
              if (c.value === undefined) throw new NftEncodeError(`element of map ${c.set} needs a verdict`);
              const t = c.value.split(' ');
              const v = parseVerdict(t, 0);
              if (!v || v.used !== t.length) throw new NftEncodeError(`invalid verdict ${JSON.stringify(c.value)} for map ${c.set}`);
              this.verdictData(w, 2, v.code, v.chain);
            } else if (c.value !== undefined) throw new NftEncodeError(`set ${c.set} takes no value`);
            if (c.comment !== undefined) w.comment(6, 0, c.comment);
          }
          w.nestEnd(e);
          w.nestEnd(list);
          w.msgEnd(m);
          break;
        }
        case 'add-rule': {
          let compiled;
          try {
            compiled = compileRule(this.family, c.rule);
          } catch (err) {
            if (err instanceof NftCompileError) throw err;
            throw new NftCompileError(c.rule, String(err));
          }
          const anonNames: { name: string; id: number }[] = [];
          for (const a of compiled.anon) {
            const name = this.anonName(a.map, this.anonCounter++);
            const id = ++setId;
            anonNames.push({ name, id });
            this.anonSet(w, msg, name, id, a);
          }
          const ref = (r: SetRef): { name: string; id: number } => ('anon' in r ? anonNames[r.anon]! : { name: r.name, id: batchIds.get(r.name) ?? 0 });
          const m = msg(NFT_MSG.NEWRULE, F_REQUEST | F_CREATE | F_APPEND);
          w.str(1, tableName);
          w.str(2, c.chain);
          const ex = w.nest(4);
          for (const e of compiled.exprs) this.expr(w, e, ref);
          w.nestEnd(ex);
          if (c.comment !== undefined) w.comment(7, 0, c.comment);
          w.msgEnd(m);
          break;
        }
      }
    }
    if (lastMsgStart < 0) throw new NftEncodeError('empty batch');
    // ACK only the last message: its answer tells that the batch is through.
    w.buf.writeUInt16LE(w.buf.readUInt16LE(lastMsgStart + 6) | F_ACK, lastMsgStart + 6);
    const lastSeq = seq - 1;
    w.msgEnd(w.msgStart(NFNL_MSG_BATCH_END, F_REQUEST, seq++, 0, NFNL_SUBSYS_NFTABLES));
    const bytes = w.take();
    const setTypes = this.setTypes;
    const count = seq - firstSeq;
    let shift = 0;
    return {
      bytes,
      get firstSeq() {
        return firstSeq + shift;
      },
      get lastSeq() {
        return lastSeq + shift;
      },
      messages: count,
      rebase(first: number) {
        // Renumbers the messages in place: first, first + 1, …
        const d = first - (firstSeq + shift);
        for (let off = 0; off + 16 <= bytes.length; off += (bytes.readUInt32LE(off) + 3) & ~3) bytes.writeUInt32LE((bytes.readUInt32LE(off + 8) + d) >>> 0, off + 8);
        shift += d;
        return this;
      },
      commandOf(seq: number): number | undefined {
        const s = seq - shift;
        if (s <= firstSeq || s > lastSeq) return undefined;
        // The last command whose first message is at or before s.
        let lo = 0;
        let hi = cmdSeqStart.length - 1;
        while (lo < hi) {
          const mid = (lo + hi + 1) >> 1;
          if (cmdSeqStart[mid]! <= s) lo = mid;
          else hi = mid - 1;
        }
        return lo;
      },
      commit(): void {
        for (const [k, v] of pendingTypes) {
          if (v === undefined) setTypes.delete(k);
          else setTypes.set(k, v);
        }
      },
    };
  }

  private verdictData(w: Writer, type: number, code: number, chain: string | undefined): void {
    const d = w.nest(type);
    const v = w.nest(2);
    w.be32(1, code);
    if (chain !== undefined) w.str(2, chain);
    w.nestEnd(v);
    w.nestEnd(d);
  }

  private anonSet(w: Writer, msg: (type: number, flags: number) => number, name: string, id: number, a: AnonSet): void {
    const tableName = this.table.name;
    let m = msg(NFT_MSG.NEWSET, F_REQUEST | F_CREATE);
    w.str(1, tableName);
    w.str(2, name);
    w.be32(3, a.flags);
    w.be32(4, a.keyType);
    w.be32(5, a.keyLen);
    if (a.map) {
      w.be32(6, NFT_DATA_VERDICT);
      w.be32(7, 0);
    }
    w.be32(10, id);
    const desc = w.nest(9);
    w.be32(1, a.size);
    w.nestEnd(desc);
    w.bytes(13, a.userdata);
    w.msgEnd(m);
    m = msg(NFT_MSG.NEWSETELEM, F_REQUEST | F_CREATE);
    w.str(1, tableName);
    w.str(2, name);
    w.be32(4, id);
    const list = w.nest(3);
    a.elements.forEach((el, i) => {
      const e = w.nest(i + 1);
      if (el.end) w.be32(3, 1);
      const k = w.nest(1);
      w.bytes(1, el.key);
      w.nestEnd(k);
      if (el.verdict) this.verdictData(w, 2, el.verdict.code, el.verdict.chain);
      if (el.open) w.bytes(6, Buffer.from([1, 4, 1, 0, 0, 0]));
      w.nestEnd(e);
    });
    w.nestEnd(list);
    w.msgEnd(m);
  }

  private expr(w: Writer, e: Expr, ref: (r: SetRef) => { name: string; id: number }): void {
    const el = w.nest(1);
    const data = (): number => w.nest(2);
    let d: number;
    switch (e.k) {
      case 'payload':
        w.str(1, 'payload');
        d = data();
        w.be32(1, e.dreg);
        w.be32(2, e.base);
        w.be32(3, e.offset);
        w.be32(4, e.len);
        break;
      case 'cmp': {
        w.str(1, 'cmp');
        d = data();
        w.be32(1, e.sreg);
        w.be32(2, e.op);
        const v = w.nest(3);
        w.bytes(1, e.data);
        w.nestEnd(v);
        break;
      }
      case 'bitwise': {
        w.str(1, 'bitwise');
        d = data();
        w.be32(1, e.reg);
        w.be32(2, e.reg);
        if (e.withOp) w.be32(6, 0);
        w.be32(3, e.len);
        const m = w.nest(4);
        w.bytes(1, e.mask);
        w.nestEnd(m);
        const x = w.nest(5);
        w.bytes(1, e.xor);
        w.nestEnd(x);
        break;
      }
      case 'meta':
        w.str(1, 'meta');
        d = data();
        w.be32(2, e.key);
        w.be32(1, e.dreg);
        break;
      case 'meta-set':
        w.str(1, 'meta');
        d = data();
        w.be32(2, e.key);
        w.be32(3, e.sreg);
        break;
      case 'ct':
        w.str(1, 'ct');
        d = data();
        w.be32(2, e.key);
        w.be32(1, e.dreg);
        break;
      case 'lookup': {
        w.str(1, 'lookup');
        d = data();
        const s = ref(e.set);
        w.be32(2, e.sreg);
        if (e.dreg !== undefined) w.be32(3, e.dreg);
        w.str(1, s.name);
        w.be32(4, s.id);
        if (e.flags !== undefined) w.be32(5, e.flags);
        break;
      }
      case 'verdict':
        w.str(1, 'immediate');
        d = data();
        w.be32(1, 0);
        this.verdictData(w, 2, e.code, e.chain);
        break;
      case 'immediate': {
        w.str(1, 'immediate');
        d = data();
        w.be32(1, e.dreg);
        const v = w.nest(2);
        w.bytes(1, e.data);
        w.nestEnd(v);
        break;
      }
      case 'reject':
        w.str(1, 'reject');
        d = data();
        w.be32(1, e.type);
        w.u8(2, e.code);
        break;
      case 'masq':
        w.str(1, 'masq');
        d = data();
        w.be32(1, e.flags);
        break;
      case 'nat':
        w.str(1, 'nat');
        d = data();
        w.be32(1, e.type);
        w.be32(2, e.family);
        w.be32(3, e.regAddr);
        w.be32(5, e.regProto);
        w.be32(7, e.flags);
        break;
      case 'fib':
        w.str(1, 'fib');
        d = data();
        w.be32(3, e.flags);
        w.be32(2, e.result);
        w.be32(1, e.dreg);
        break;
      case 'numgen':
        w.str(1, 'numgen');
        d = data();
        w.be32(1, e.dreg);
        w.be32(2, e.mod);
        w.be32(3, e.type);
        w.be32(4, e.offset);
        break;
      case 'dynset': {
        w.str(1, 'dynset');
        d = data();
        const s = ref(e.set);
        w.be32(4, e.sreg);
        w.be32(3, e.op);
        w.str(1, s.name);
        w.be32(2, s.id);
        break;
      }
    }
    w.nestEnd(d);
    w.nestEnd(el);
  }
}
