// Addresses (RTM_*ADDR): the model types, the ifaddrmsg encoder and parser,
// and the handle methods (`ip addr`). Mixed into Handle (handle.ts).
import { IPAddr, IPPrefix, type Family } from '../ip/index.ts';
import * as C from './constants.ts';
import type { NetlinkConn } from './conn.ts';
import { afOf, familyOfAf } from './mac.ts';
import { attr, cstr, decodeAttrs, encodeAttrs, readU32, u32, type Attr, type NlMsg } from './wire.ts';

export interface Addr {
  index: number;
  family: Family;
  /** The address with its prefix length (host bits kept: 10.0.0.5/24). */
  address: IPPrefix;
  local: IPAddr | undefined;
  label: string | undefined;
  scope: number;
  flags: number;
}

export interface AddrSpec {
  address: IPPrefix;
  /** Peer/local split for point-to-point; defaults to the address. */
  local?: IPAddr;
  label?: string;
  scope?: number;
  noDad?: boolean;
  noPrefixRoute?: boolean;
  /** IPv4 only: 'auto' sets the prefix's last address, as `ip addr add ... broadcast +`. */
  broadcast?: IPAddr | 'auto';
}

export interface AddrFilter {
  index?: number;
  family?: Family;
}

export function ifaddrmsg(family: number, prefixLen: number, flags: number, scope: number, index: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(family, 0);
  b.writeUInt8(prefixLen, 1);
  b.writeUInt8(flags & 0xff, 2);
  b.writeUInt8(scope, 3);
  b.set(u32(index), 4);
  return b;
}

/** The scope the kernel gives an address when none is asked for (host for 127/8, as iproute2 sets it). */
export function defaultAddrScope(address: IPPrefix): number {
  return address.family === 4 && address.addr.isLoopback() ? C.RT_SCOPE_HOST : C.RT_SCOPE_UNIVERSE;
}

/** Encodes the RTM_*ADDR request for `spec` on `index`. Exported for byte-exact tests. */
export function encodeAddr(index: number, spec: AddrSpec): Buffer {
  const { address } = spec;
  let flags = 0;
  if (spec.noDad) flags |= C.IFA_F_NODAD;
  if (spec.noPrefixRoute) flags |= C.IFA_F_NOPREFIXROUTE;
  const scope = spec.scope ?? defaultAddrScope(address);
  const attrs: Attr[] = [attr(C.IFA_LOCAL, (spec.local ?? address.addr).toBytes()), attr(C.IFA_ADDRESS, address.addr.toBytes())];
  if (address.family === 4 && spec.broadcast !== undefined) {
    const bc = spec.broadcast === 'auto' ? broadcastOf(address) : spec.broadcast;
    if (bc) attrs.push(attr(C.IFA_BROADCAST, bc.toBytes()));
  }
  if (spec.label) attrs.push(attr(C.IFA_LABEL, cstr(spec.label)));
  if (flags > 0xff) attrs.push(attr(C.IFA_FLAGS, u32(flags)));
  return Buffer.concat([ifaddrmsg(afOf(address.family), address.length, flags & 0xff, scope, index), encodeAttrs(attrs)]);
}

/** The IPv4 broadcast of a prefix; none for /31 and /32 (RFC 3021). */
function broadcastOf(p: IPPrefix): IPAddr | undefined {
  return p.length >= 31 ? undefined : p.last();
}

export function parseAddr(m: NlMsg): Addr {
  const p = m.payload;
  const family = familyOfAf(p[0]!);
  const prefixLen = p[1]!;
  const a = decodeAttrs(p, 8);
  const addr = a.get(C.IFA_ADDRESS) ?? a.get(C.IFA_LOCAL);
  const local = a.get(C.IFA_LOCAL);
  return {
    index: readU32(p, 4),
    family,
    address: addr ? IPPrefix.fromBytes(addr, prefixLen) : new IPPrefix(IPAddr.any(family), prefixLen),
    local: local ? IPAddr.fromBytes(local) : undefined,
    label: a.str(C.IFA_LABEL),
    scope: p[3]!,
    flags: a.u32(C.IFA_FLAGS) ?? p[2]!,
  };
}

/** The address requests of a handle; Handle mixes these methods in (see handle.ts). */
export abstract class AddrMethods {
  abstract readonly conn: NetlinkConn;

  /** `ip addr show [dev X]` */
  async addrList(filter: AddrFilter = {}): Promise<Addr[]> {
    const af = filter.family ? afOf(filter.family) : C.AF_UNSPEC;
    const msgs = await this.conn.dump(C.RTM_GETADDR, ifaddrmsg(af, 0, 0, 0, 0), 'addr list');
    return msgs
      .filter((m) => m.type === C.RTM_NEWADDR)
      .map(parseAddr)
      .filter((a) => (filter.index === undefined || a.index === filter.index) && (filter.family === undefined || a.family === filter.family));
  }

  /** `ip addr add ADDR dev X` (EEXIST when present) */
  async addrAdd(index: number, spec: AddrSpec): Promise<void> {
    await this.conn.request(C.RTM_NEWADDR, C.NLM_F_CREATE | C.NLM_F_EXCL, encodeAddr(index, spec), `addr add ${spec.address}`);
  }
  /** `ip addr replace ADDR dev X` */
  async addrReplace(index: number, spec: AddrSpec): Promise<void> {
    await this.conn.request(C.RTM_NEWADDR, C.NLM_F_CREATE | C.NLM_F_REPLACE, encodeAddr(index, spec), `addr replace ${spec.address}`);
  }
  /** `ip addr del ADDR dev X` */
  async addrDel(index: number, address: IPPrefix): Promise<void> {
    await this.conn.request(C.RTM_DELADDR, 0, encodeAddr(index, { address }), `addr del ${address}`);
  }
}

/** What a handle offers for addresses (the public methods above). */
export type AddrOps = Omit<AddrMethods, 'conn'>;
