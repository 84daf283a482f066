// Neighbours and bridge FDB entries (RTM_*NEIGH): the model types, the ndmsg
// encoder and parser, and the handle methods (`ip neigh`, `bridge fdb`).
// Mixed into Handle (handle.ts).
import { IPAddr, type Family } from '../ip/index.ts';
import * as C from './constants.ts';
import type { NetlinkConn } from './conn.ts';
import { afOf, familyOfAf, formatMac, parseMac } from './mac.ts';
import { attr, decodeAttrs, encodeAttrs, readI32, readU16, u16, u32, type Attr, type NlMsg } from './wire.ts';

export interface Neigh {
  family: Family | 'bridge';
  index: number;
  ip: IPAddr | undefined;
  mac: string | undefined;
  state: number;
  flags: number;
  master: number | undefined;
  vlan: number | undefined;
}

export interface NeighSpec {
  index: number;
  /** Omit for an FDB entry without destination. */
  ip?: IPAddr;
  mac: string;
  state?: number;
  flags?: number;
  /** AF_BRIDGE FDB entry (`bridge fdb`) instead of a neighbour (`ip neigh`). */
  fdb?: boolean;
  vlan?: number;
}

export interface NeighFilter {
  family?: Family | 'bridge';
  index?: number;
}

export function ndmsg(family: number, index: number, state: number, flags: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(family, 0);
  b.set(u32(index), 4);
  b.set(u16(state), 8);
  b.writeUInt8(flags, 10);
  b.writeUInt8(0, 11);
  return b;
}

/** Encodes the RTM_*NEIGH request for `n`. Exported for byte-exact tests. */
export function encodeNeigh(n: NeighSpec): Buffer {
  const af = n.fdb ? C.AF_BRIDGE : afOf(n.ip?.family ?? 4);
  const attrs: Attr[] = [];
  if (n.ip) attrs.push(attr(C.NDA_DST, n.ip.toBytes()));
  attrs.push(attr(C.NDA_LLADDR, parseMac(n.mac)));
  if (n.vlan !== undefined) attrs.push(attr(C.NDA_VLAN, u16(n.vlan)));
  return Buffer.concat([ndmsg(af, n.index, n.state ?? C.NUD_PERMANENT, n.flags ?? (n.fdb ? C.NTF_SELF : 0)), encodeAttrs(attrs)]);
}

export function parseNeigh(m: NlMsg): Neigh {
  const p = m.payload;
  const af = p[0]!;
  const a = decodeAttrs(p, 12);
  const dst = a.get(C.NDA_DST);
  const ll = a.get(C.NDA_LLADDR);
  return {
    family: af === C.AF_BRIDGE ? 'bridge' : familyOfAf(af),
    index: readI32(p, 4),
    ip: dst ? IPAddr.fromBytes(dst) : undefined,
    mac: ll && ll.length === 6 ? formatMac(ll) : undefined,
    state: readU16(p, 8),
    flags: p[10]!,
    master: a.u32(C.NDA_MASTER),
    vlan: a.u16(C.NDA_VLAN),
  };
}

/** The neighbour and FDB requests of a handle; Handle mixes these methods in (see handle.ts). */
export abstract class NeighMethods {
  abstract readonly conn: NetlinkConn;

  /** `ip neigh show` / `bridge fdb show` */
  async neighList(filter: NeighFilter = {}): Promise<Neigh[]> {
    const af = filter.family === 'bridge' ? C.AF_BRIDGE : filter.family ? afOf(filter.family) : C.AF_UNSPEC;
    const msgs = await this.conn.dump(C.RTM_GETNEIGH, ndmsg(af, 0, 0, 0), 'neigh list');
    return msgs
      .filter((m) => m.type === C.RTM_NEWNEIGH)
      .map(parseNeigh)
      .filter((n) => (filter.index === undefined || n.index === filter.index) && (filter.family === undefined || n.family === filter.family));
  }

  /** `ip neigh replace IP lladdr MAC dev X nud permanent` / `bridge fdb replace MAC dev X self dst IP` */
  async neighSet(n: NeighSpec): Promise<void> {
    await this.conn.request(C.RTM_NEWNEIGH, C.NLM_F_CREATE | C.NLM_F_REPLACE, encodeNeigh(n), `neigh replace ${n.ip ?? n.mac}`);
  }
  /** `bridge fdb append ...` (several destinations for one MAC) */
  async neighAppend(n: NeighSpec): Promise<void> {
    await this.conn.request(C.RTM_NEWNEIGH, C.NLM_F_CREATE | C.NLM_F_APPEND, encodeNeigh(n), `neigh append ${n.ip ?? n.mac}`);
  }
  /** `ip neigh del` / `bridge fdb del` */
  async neighDel(n: NeighSpec): Promise<void> {
    await this.conn.request(C.RTM_DELNEIGH, 0, encodeNeigh(n), `neigh del ${n.ip ?? n.mac}`);
  }
}

/** What a handle offers for neighbours and FDB entries (the public methods above). */
export type NeighOps = Omit<NeighMethods, 'conn'>;
