// Netlink wire format: message headers and TLV attributes (host endian, as
// the kernel expects on the same machine). Conventions:
//  - encoders build into an AttrWriter and return Buffers;
//  - decoders take a Buffer and never throw on unknown attribute types: they
//    keep them in the attribute map untouched;
//  - malformed input throws with the exact bound that was violated.
import { endianness } from 'node:os';

export const LE = endianness() === 'LE';

export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;
export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

export const align4 = (n: number): number => (n + 3) & ~3;

export function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  if (LE) b.writeUInt16LE(v);
  else b.writeUInt16BE(v);
  return b;
}
export function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  if (LE) b.writeUInt32LE(v >>> 0);
  else b.writeUInt32BE(v >>> 0);
  return b;
}
export function be16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
}
export function u8(v: number): Buffer {
  return Buffer.from([v & 0xff]);
}
/** NUL-terminated string, as iproute2 sends interface names. */
export function cstr(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)]);
}
/** String without terminator, as iproute2 sends IFLA_INFO_KIND. */
export function rawstr(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

export const readU16 = (b: Buffer, off = 0): number => (LE ? b.readUInt16LE(off) : b.readUInt16BE(off));
export const readU32 = (b: Buffer, off = 0): number => (LE ? b.readUInt32LE(off) : b.readUInt32BE(off));
export const readI32 = (b: Buffer, off = 0): number => (LE ? b.readInt32LE(off) : b.readInt32BE(off));
export const readCStr = (b: Buffer): string => {
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8');
};

/** One attribute: its type and its payload, or nested attributes. */
export type Attr = { type: number; data: Buffer } | { type: number; nested: Attr[] };

export const attr = (type: number, data: Buffer): Attr => ({ type, data });
export const nest = (type: number, nested: Attr[]): Attr => ({ type, nested });

/** Serialises attributes with 4-byte alignment (padding bytes are zero). */
export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const a of attrs) {
    const payload = 'data' in a ? a.data : encodeAttrs(a.nested);
    // Like iproute2 (and vishvananda/netlink), nests do not carry
    // NLA_F_NESTED; rtnetlink does not require it.
    const type = a.type;
    const len = NLA_HDRLEN + payload.length;
    if (len > 0xffff) throw new RangeError(`netlink attribute ${a.type} too long: ${len} > 65535`);
    const hdr = Buffer.alloc(NLA_HDRLEN);
    if (LE) {
      hdr.writeUInt16LE(len, 0);
      hdr.writeUInt16LE(type, 2);
    } else {
      hdr.writeUInt16BE(len, 0);
      hdr.writeUInt16BE(type, 2);
    }
    parts.push(hdr, payload, Buffer.alloc(align4(len) - len));
  }
  return Buffer.concat(parts);
}

/** Attribute map: type (flags stripped) → payloads in order of appearance. */
export class AttrMap {
  private readonly m = new Map<number, Buffer[]>();
  add(type: number, data: Buffer): void {
    const l = this.m.get(type);
    if (l) l.push(data);
    else this.m.set(type, [data]);
  }
  get(type: number): Buffer | undefined {
    return this.m.get(type)?.[0];
  }
  all(type: number): Buffer[] {
    return this.m.get(type) ?? [];
  }
  has(type: number): boolean {
    return this.m.has(type);
  }
  types(): number[] {
    return [...this.m.keys()];
  }
  u32(type: number): number | undefined {
    const b = this.get(type);
    return b && b.length >= 4 ? readU32(b) : undefined;
  }
  u16(type: number): number | undefined {
    const b = this.get(type);
    return b && b.length >= 2 ? readU16(b) : undefined;
  }
  u8(type: number): number | undefined {
    const b = this.get(type);
    return b && b.length >= 1 ? b[0] : undefined;
  }
  str(type: number): string | undefined {
    const b = this.get(type);
    return b ? readCStr(b) : undefined;
  }
  nested(type: number): AttrMap | undefined {
    const b = this.get(type);
    return b ? decodeAttrs(b) : undefined;
  }
}

export function decodeAttrs(buf: Buffer, offset = 0): AttrMap {
  const out = new AttrMap();
  let off = offset;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = readU16(buf, off);
    const type = readU16(buf, off + 2) & NLA_TYPE_MASK;
    if (len < NLA_HDRLEN || off + len > buf.length) {
      throw new RangeError(`malformed netlink attribute: nla_len ${len} out of range [${NLA_HDRLEN}, ${buf.length - off}]`);
    }
    out.add(type, buf.subarray(off + NLA_HDRLEN, off + len));
    off += align4(len);
  }
  return out;
}

export interface NlMsg {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Buffer;
}

export function encodeMsg(type: number, flags: number, seq: number, payload: Buffer): Buffer {
  const hdr = Buffer.alloc(NLMSG_HDRLEN);
  const len = NLMSG_HDRLEN + payload.length;
  if (LE) {
    hdr.writeUInt32LE(len, 0);
    hdr.writeUInt16LE(type, 4);
    hdr.writeUInt16LE(flags, 6);
    hdr.writeUInt32LE(seq >>> 0, 8);
    hdr.writeUInt32LE(0, 12);
  } else {
    hdr.writeUInt32BE(len, 0);
    hdr.writeUInt16BE(type, 4);
    hdr.writeUInt16BE(flags, 6);
    hdr.writeUInt32BE(seq >>> 0, 8);
    hdr.writeUInt32BE(0, 12);
  }
  return Buffer.concat([hdr, payload, Buffer.alloc(align4(len) - len)]);
}

export function decodeMsgs(buf: Buffer): NlMsg[] {
  const out: NlMsg[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = readU32(buf, off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) {
      throw new RangeError(`malformed netlink message: nlmsg_len ${len} out of range [${NLMSG_HDRLEN}, ${buf.length - off}]`);
    }
    out.push({
      type: readU16(buf, off + 4),
      flags: readU16(buf, off + 6),
      seq: readU32(buf, off + 8),
      pid: readU32(buf, off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}
