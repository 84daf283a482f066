// Routes (RTM_*ROUTE): the model type, the rtmsg encoder and parser, and the
// handle methods (`ip route`). Mixed into Handle (handle.ts).
import { NetError } from '../errors.ts';
import { IPAddr, IPPrefix, type Family } from '../ip/index.ts';
import * as C from './constants.ts';
import type { NetlinkConn } from './conn.ts';
import { afOf, familyOfAf } from './mac.ts';
import { attr, decodeAttrs, encodeAttrs, readU32, u32, type Attr, type NlMsg } from './wire.ts';

export interface Route {
  family: Family;
  /** 0.0.0.0/0 or ::/0 for a default route. */
  dst: IPPrefix;
  gw?: IPAddr;
  oif?: number;
  table?: number;
  protocol?: number;
  scope?: number;
  type?: number;
  priority?: number;
  prefsrc?: IPAddr;
  onlink?: boolean;
  mtu?: number;
  advmss?: number;
}

export interface RouteFilter {
  family?: Family;
  /** Default: the main table only. */
  table?: number | 'all';
  oif?: number;
}

export function rtmsg(r: { family: number; dstLen: number; table: number; protocol: number; scope: number; type: number; flags: number }): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(r.family, 0);
  b.writeUInt8(r.dstLen, 1);
  b.writeUInt8(0, 2); // src_len
  b.writeUInt8(0, 3); // tos
  b.writeUInt8(r.table < 256 ? r.table : 0 /* RT_TABLE_UNSPEC; RTA_TABLE carries it */, 4);
  b.writeUInt8(r.protocol, 5);
  b.writeUInt8(r.scope, 6);
  b.writeUInt8(r.type, 7);
  b.set(u32(r.flags), 8);
  return b;
}

/** The scope the kernel derives for a route without one (`ip route` does the same). */
export function defaultRouteScope(r: Route): number {
  const type = r.type ?? C.RTN_UNICAST;
  if (type === C.RTN_LOCAL) return C.RT_SCOPE_HOST;
  return r.gw === undefined && type === C.RTN_UNICAST && r.oif !== undefined ? C.RT_SCOPE_LINK : C.RT_SCOPE_UNIVERSE;
}

/** Encodes the RTM_*ROUTE request for `r`. Exported for byte-exact tests. */
export function encodeRoute(r: Route): Buffer {
  const table = r.table ?? C.RT_TABLE_MAIN;
  const hdr = rtmsg({
    family: afOf(r.family),
    dstLen: r.dst.length,
    table,
    protocol: r.protocol ?? C.RTPROT_BOOT,
    scope: r.scope ?? defaultRouteScope(r),
    type: r.type ?? C.RTN_UNICAST,
    flags: r.onlink ? C.RTNH_F_ONLINK : 0,
  });
  const attrs: Attr[] = [];
  if (table >= 256) attrs.push(attr(C.RTA_TABLE, u32(table)));
  if (r.dst.length > 0) attrs.push(attr(C.RTA_DST, r.dst.addr.toBytes()));
  if (r.prefsrc) attrs.push(attr(C.RTA_PREFSRC, r.prefsrc.toBytes()));
  if (r.gw) attrs.push(attr(C.RTA_GATEWAY, r.gw.toBytes()));
  if (r.priority !== undefined) attrs.push(attr(C.RTA_PRIORITY, u32(r.priority)));
  if (r.oif !== undefined) attrs.push(attr(C.RTA_OIF, u32(r.oif)));
  const metrics: Attr[] = [];
  if (r.mtu !== undefined) metrics.push(attr(C.RTAX_MTU, u32(r.mtu)));
  if (r.advmss !== undefined) metrics.push(attr(C.RTAX_ADVMSS, u32(r.advmss)));
  if (metrics.length) attrs.push(attr(C.RTA_METRICS, encodeAttrs(metrics)));
  return Buffer.concat([hdr, encodeAttrs(attrs)]);
}

export function parseRoute(m: NlMsg): Route {
  const p = m.payload;
  const family = familyOfAf(p[0]!);
  const dstLen = p[1]!;
  const a = decodeAttrs(p, 12);
  const dst = a.get(C.RTA_DST);
  const r: Route = {
    family,
    dst: dst ? IPPrefix.fromBytes(dst, dstLen) : new IPPrefix(IPAddr.any(family), dstLen),
    table: a.u32(C.RTA_TABLE) ?? p[4]!,
    protocol: p[5]!,
    scope: p[6]!,
    type: p[7]!,
    onlink: (readU32(p, 8) & C.RTNH_F_ONLINK) !== 0,
  };
  const gw = a.get(C.RTA_GATEWAY);
  if (gw) r.gw = IPAddr.fromBytes(gw);
  const oif = a.u32(C.RTA_OIF);
  if (oif !== undefined) r.oif = oif;
  const prio = a.u32(C.RTA_PRIORITY);
  if (prio !== undefined) r.priority = prio;
  const src = a.get(C.RTA_PREFSRC);
  if (src) r.prefsrc = IPAddr.fromBytes(src);
  const metrics = a.nested(C.RTA_METRICS);
  const mtu = metrics?.u32(C.RTAX_MTU);
  if (mtu !== undefined) r.mtu = mtu;
  const advmss = metrics?.u32(C.RTAX_ADVMSS);
  if (advmss !== undefined) r.advmss = advmss;
  return r;
}

/** Whether a route passes a routeList filter (shared with the fake). */
export function routeMatches(r: Route, filter: RouteFilter): boolean {
  const table = filter.table ?? C.RT_TABLE_MAIN;
  return (
    (table === 'all' || r.table === table) &&
    (filter.family === undefined || r.family === filter.family) &&
    (filter.oif === undefined || r.oif === filter.oif)
  );
}

/** The route requests of a handle; Handle mixes these methods in (see handle.ts). */
export abstract class RouteMethods {
  abstract readonly conn: NetlinkConn;

  /** `ip route show table all` filtered; default: main table only. */
  async routeList(filter: RouteFilter = {}): Promise<Route[]> {
    const af = filter.family ? afOf(filter.family) : C.AF_UNSPEC;
    const msgs = await this.conn.dump(C.RTM_GETROUTE, rtmsg({ family: af, dstLen: 0, table: 0, protocol: 0, scope: 0, type: 0, flags: 0 }), 'route list');
    return msgs
      .filter((m) => m.type === C.RTM_NEWROUTE)
      .map(parseRoute)
      .filter((r) => routeMatches(r, filter));
  }

  /** `ip route add ...` (EEXIST when present) */
  async routeAdd(r: Route): Promise<void> {
    await this.conn.request(C.RTM_NEWROUTE, C.NLM_F_CREATE | C.NLM_F_EXCL, encodeRoute(r), `route add ${r.dst}`);
  }
  /** `ip route replace ...` */
  async routeReplace(r: Route): Promise<void> {
    await this.conn.request(C.RTM_NEWROUTE, C.NLM_F_CREATE | C.NLM_F_REPLACE, encodeRoute(r), `route replace ${r.dst}`);
  }
  /** `ip route append ...` (ECMP / same prefix, other metric) */
  async routeAppend(r: Route): Promise<void> {
    await this.conn.request(C.RTM_NEWROUTE, C.NLM_F_CREATE | C.NLM_F_APPEND, encodeRoute(r), `route append ${r.dst}`);
  }
  /** `ip route del ...` */
  async routeDel(r: Route): Promise<void> {
    // Deletion matches on what is given; scope must be NOWHERE-compatible, so
    // do not derive one unless the caller set it.
    const msg = encodeRoute({ ...r, scope: r.scope ?? C.RT_SCOPE_UNIVERSE, protocol: r.protocol ?? C.RTPROT_UNSPEC });
    await this.conn.request(C.RTM_DELROUTE, 0, msg, `route del ${r.dst}`);
  }

  /** `ip route get ADDR`: the route the kernel would use. */
  async routeGet(dst: IPAddr): Promise<Route> {
    const payload = Buffer.concat([
      rtmsg({ family: afOf(dst.family), dstLen: dst.bits, table: 0, protocol: 0, scope: 0, type: 0, flags: 0 }),
      encodeAttrs([attr(C.RTA_DST, dst.toBytes())]),
    ]);
    const msgs = await this.conn.request(C.RTM_GETROUTE, 0, payload, `route get ${dst}`);
    const m = msgs.find((x) => x.type === C.RTM_NEWROUTE);
    if (!m) throw new NetError('ENETUNREACH', `route get ${dst}: no route`);
    return parseRoute(m);
  }
}

/** What a handle offers for routes (the public methods above). */
export type RouteOps = Omit<RouteMethods, 'conn'>;
