// Pure planning for the kernel backends: desired entries (from the remote
// leases) against the entries we own in the kernel (routes, neighbours, FDB)
// gives a list of operations. Entries of peers deleted while the daemon was
// down are removed (upstream leaves them, flannel #2554), entries removed by
// hand are restored, and an old FDB entry is dropped when a peer's public IP
// or VTEP MAC changes.
import type { IPAddr, IPPrefix, Family } from '../../lib/ip/index.ts';
import { NTF_SELF, NUD_PERMANENT, RTN_UNICAST, RTPROT_KERNEL, RT_TABLE_MAIN } from '../../lib/netlink/constants.ts';
import type { Neigh, Route } from '../../lib/netlink/index.ts';

/** Route protocol tag of the routes we install (`ip route ... proto 70`), so they can be told apart. */
export const RTPROT_FLANNEL = 70;

export interface NeighEntry {
  kind: 'neigh';
  /** Subnet key of the peer the entry serves ('' when observed). */
  peer: string;
  index: number;
  family: Family;
  ip: IPAddr;
  mac: string;
}
export interface FdbEntry {
  kind: 'fdb';
  peer: string;
  index: number;
  mac: string;
  /** Remote VTEP (the peer's public IP). */
  dst: IPAddr;
}
export interface RouteEntry {
  kind: 'route';
  peer: string;
  family: Family;
  dst: IPPrefix;
  gw: IPAddr | undefined;
  oif: number | undefined;
  onlink: boolean;
  protocol: number;
}
export type Entry = NeighEntry | FdbEntry | RouteEntry;

export interface Op {
  op: 'set' | 'del';
  entry: Entry;
}

/** Identity of an entry: what the kernel keys it by. */
export function entryKey(e: Entry): string {
  switch (e.kind) {
    case 'neigh':
      return `neigh|${e.index}|${e.ip}`;
    case 'fdb':
      return `fdb|${e.index}|${e.mac}|${e.dst}`;
    case 'route':
      return `route|${e.dst}`;
  }
}

function sameValue(a: Entry, b: Entry): boolean {
  if (a.kind === 'neigh' && b.kind === 'neigh') return a.mac === b.mac;
  if (a.kind === 'fdb' && b.kind === 'fdb') return true;
  if (a.kind === 'route' && b.kind === 'route') {
    return sameAddr(a.gw, b.gw) && a.oif === b.oif && a.onlink === b.onlink && a.protocol === b.protocol;
  }
  return false;
}

const sameAddr = (a: IPAddr | undefined, b: IPAddr | undefined): boolean => (a === undefined ? b === undefined : a.equals(b));

const SET_ORDER: Record<Entry['kind'], number> = { neigh: 0, fdb: 1, route: 2 };

/**
 * The operations that turn `observed` (entries we own, as read from the
 * kernel) into `desired`. Deletes come first, routes before FDB before
 * neighbours; then sets, neighbours before FDB before routes (a route is
 * installed last, or the kernel would try to resolve its gateway).
 */
export function planSync(desired: readonly Entry[], observed: readonly Entry[]): Op[] {
  const want = new Map<string, Entry>();
  for (const e of desired) want.set(entryKey(e), e);
  const have = new Map<string, Entry>();
  for (const e of observed) {
    const k = entryKey(e);
    // Duplicate observed keys (should not happen) are kept as first seen.
    if (!have.has(k)) have.set(k, e);
  }
  const dels: Op[] = [];
  const sets: Op[] = [];
  for (const [k, e] of have) if (!want.has(k)) dels.push({ op: 'del', entry: e });
  for (const [k, e] of want) {
    const cur = have.get(k);
    if (!cur || !sameValue(cur, e)) sets.push({ op: 'set', entry: e });
  }
  dels.sort((a, b) => SET_ORDER[b.entry.kind] - SET_ORDER[a.entry.kind]);
  sets.sort((a, b) => SET_ORDER[a.entry.kind] - SET_ORDER[b.entry.kind]);
  return [...dels, ...sets];
}

// ---- ownership: which kernel entries are ours -----------------------------

export interface RouteOwnership {
  family: Family;
  /** The cluster network: gateway routes inside it on `extIndex` are flannel's (also upstream's, proto boot). */
  network: IPPrefix | undefined;
  /** Our overlay device: every non-kernel route on it is ours. */
  devIndex?: number;
  /** The external interface (host-gw, vxlan DirectRouting). */
  extIndex?: number;
}

/** The routes (main table) that belong to us: tagged with our protocol, on our device, or flannel-shaped on the ext iface. */
export function ownedRoutes(routes: readonly Route[], o: RouteOwnership): RouteEntry[] {
  const out: RouteEntry[] = [];
  for (const r of routes) {
    if (r.family !== o.family) continue;
    if ((r.table ?? RT_TABLE_MAIN) !== RT_TABLE_MAIN) continue;
    if ((r.type ?? RTN_UNICAST) !== RTN_UNICAST) continue;
    if (r.protocol === RTPROT_KERNEL) continue;
    let ours = r.protocol === RTPROT_FLANNEL;
    if (!ours && o.devIndex !== undefined && r.oif === o.devIndex) ours = true;
    if (!ours && o.extIndex !== undefined && r.oif === o.extIndex && r.gw !== undefined && o.network) {
      ours = r.dst.length > o.network.length && o.network.contains(r.dst);
    }
    if (!ours) continue;
    out.push({ kind: 'route', peer: '', family: r.family, dst: r.dst, gw: r.gw, oif: r.oif, onlink: r.onlink ?? false, protocol: r.protocol ?? 0 });
  }
  return out;
}

/** Permanent neighbour entries of `family` on our device. */
export function ownedNeighs(neighs: readonly Neigh[], devIndex: number, family: Family): NeighEntry[] {
  const out: NeighEntry[] = [];
  for (const n of neighs) {
    if (n.family !== family || n.index !== devIndex) continue;
    if (!(n.state & NUD_PERMANENT) || n.ip === undefined || n.mac === undefined) continue;
    out.push({ kind: 'neigh', peer: '', index: n.index, family, ip: n.ip, mac: n.mac });
  }
  return out;
}

/** Permanent `self` FDB entries with a destination of `family` on our device. */
export function ownedFdb(fdb: readonly Neigh[], devIndex: number, family: Family): FdbEntry[] {
  const out: FdbEntry[] = [];
  for (const n of fdb) {
    if (n.family !== 'bridge' || n.index !== devIndex) continue;
    if (!(n.flags & NTF_SELF) || !(n.state & NUD_PERMANENT) || n.ip === undefined || n.mac === undefined) continue;
    if (n.ip.family !== family) continue;
    out.push({ kind: 'fdb', peer: '', index: n.index, mac: n.mac, dst: n.ip });
  }
  return out;
}

/** A route entry we install. */
export function routeEntry(peer: string, family: Family, dst: IPPrefix, gw: IPAddr | undefined, oif: number, onlink = false): RouteEntry {
  return { kind: 'route', peer, family, dst, gw, oif, onlink, protocol: RTPROT_FLANNEL };
}
