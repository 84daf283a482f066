// A typed rtnetlink handle bound to one network namespace. The socket is
// opened inside the namespace (setns around a synchronous constructor) and
// stays there; every method is then an ordinary async request on it.
// Method docs name the iproute2 command each one corresponds to.
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NetError, isNotFound } from '../errors.ts';
import { openNetns, withNetnsSync } from '../netns/index.ts';
import * as C from './constants.ts';
import { NetlinkConn } from './conn.ts';
import { afOf, bytesToIp, familyOf, familyOfAf, formatMac, ipToBytes, parseCidr, parseMac, type Family } from './addr.ts';
import { attr, cstr, rawstr, decodeAttrs, encodeAttrs, nest, readI32, readU16, readU32, u16, u32, u8, be16, type Attr, type AttrMap, type NlMsg } from './wire.ts';

export class LinkNotFoundError extends NetError {
  constructor(what: string) {
    super('ENODEV', `Link not found: ${what}`);
  }
}

export interface VxlanInfo {
  vni: number;
  /** UDP destination port; 0 lets the kernel choose (8472 on Linux). */
  port?: number;
  local?: string;
  /** ifindex of the underlay device. */
  link?: number;
  learning?: boolean;
  gbp?: boolean;
  ttl?: number;
  l2miss?: boolean;
  l3miss?: boolean;
}

export interface BridgeInfo {
  vlanFiltering?: boolean;
  vlanDefaultPvid?: number;
  stpState?: number;
}

export interface BridgePortInfo {
  hairpin?: boolean;
  isolated?: boolean;
  learning?: boolean;
}

export interface Link {
  index: number;
  name: string;
  kind: string | undefined;
  mtu: number;
  mac: string | undefined;
  flags: number;
  up: boolean;
  operState: C.OperState;
  master: number | undefined;
  /** IFLA_LINK: the peer ifindex of a veth, the parent of a vlan. */
  parentIndex: number | undefined;
  linkNetnsId: number | undefined;
  promiscuity: number;
  txqlen: number | undefined;
  vxlan: VxlanInfo | undefined;
  bridge: BridgeInfo | undefined;
  slaveKind: string | undefined;
  bridgePort: BridgePortInfo | undefined;
}

export interface LinkSpec {
  name: string;
  kind: 'bridge' | 'veth' | 'vxlan' | 'dummy' | 'tun';
  mtu?: number;
  mac?: string;
  txqlen?: number;
  up?: boolean;
  /** Enslave to this ifindex at creation. */
  master?: number;
  /** Create the link directly in the namespace of this fd. */
  netnsFd?: number;
  bridge?: BridgeInfo;
  veth?: { peerName: string; peerNetnsFd?: number; peerMac?: string; peerMtu?: number };
  vxlan?: VxlanInfo;
}

export interface Addr {
  index: number;
  family: Family;
  /** "ip/len" */
  address: string;
  local: string | undefined;
  label: string | undefined;
  scope: number;
  flags: number;
}

export interface AddrSpec {
  /** "ip/len" */
  address: string;
  /** Peer/local split for point-to-point; defaults to the address. */
  local?: string;
  label?: string;
  scope?: number;
  noDad?: boolean;
  noPrefixRoute?: boolean;
  broadcast?: string | 'auto';
}

export interface Route {
  family: Family;
  /** "ip/len"; "0.0.0.0/0" or "::/0" for a default route. */
  dst: string;
  gw?: string;
  oif?: number;
  table?: number;
  protocol?: number;
  scope?: number;
  type?: number;
  priority?: number;
  prefsrc?: string;
  onlink?: boolean;
  mtu?: number;
  advmss?: number;
}

export interface Neigh {
  family: Family | 'bridge';
  index: number;
  ip: string | undefined;
  mac: string | undefined;
  state: number;
  flags: number;
  master: number | undefined;
  vlan: number | undefined;
}

export interface NeighSpec {
  index: number;
  /** Omit for an FDB entry without destination. */
  ip?: string;
  mac: string;
  state?: number;
  flags?: number;
  /** AF_BRIDGE FDB entry (`bridge fdb`) instead of a neighbour (`ip neigh`). */
  fdb?: boolean;
  vlan?: number;
}

function ifinfomsg(family: number, index: number, flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(family, 0);
  // type (u16) stays 0
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags >>> 0, 8);
  b.writeUInt32LE(change >>> 0, 12);
  return hostEndianIfinfo(b);
}
// ifinfomsg/ifaddrmsg fields are host endian; the writes above assume LE.
function hostEndianIfinfo(b: Buffer): Buffer {
  if (readU32(Buffer.from([1, 0, 0, 0])) === 1) return b;
  const out = Buffer.alloc(16);
  out.writeUInt8(b.readUInt8(0), 0);
  out.writeInt32BE(b.readInt32LE(4), 4);
  out.writeUInt32BE(b.readUInt32LE(8), 8);
  out.writeUInt32BE(b.readUInt32LE(12), 12);
  return out;
}

function ifaddrmsg(family: number, prefixLen: number, flags: number, scope: number, index: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(family, 0);
  b.writeUInt8(prefixLen, 1);
  b.writeUInt8(flags & 0xff, 2);
  b.writeUInt8(scope, 3);
  b.set(u32(index), 4);
  return b;
}

function rtmsg(r: {
  family: number;
  dstLen: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  flags: number;
}): Buffer {
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

function ndmsg(family: number, index: number, state: number, flags: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(family, 0);
  b.set(u32(index), 4);
  b.set(u16(state), 8);
  b.writeUInt8(flags, 10);
  b.writeUInt8(0, 11);
  return b;
}

/**
 * Encodes IFLA_LINKINFO for a new link, attribute for attribute in the order
 * iproute2 6.1 sends them (byte-exact tests in lib/netlink/encode.test.ts).
 */
export function encodeLinkInfo(spec: LinkSpec): Attr {
  const info: Attr[] = [attr(C.IFLA_INFO_KIND, rawstr(spec.kind))];
  const data: Attr[] = [];
  if (spec.kind === 'veth' && spec.veth) {
    const peerAttrs: Attr[] = [];
    const peerMtu = spec.veth.peerMtu ?? spec.mtu;
    if (peerMtu !== undefined) peerAttrs.push(attr(C.IFLA_MTU, u32(peerMtu)));
    if (spec.veth.peerMac) peerAttrs.push(attr(C.IFLA_ADDRESS, parseMac(spec.veth.peerMac)));
    if (spec.veth.peerNetnsFd !== undefined) peerAttrs.push(attr(C.IFLA_NET_NS_FD, u32(spec.veth.peerNetnsFd)));
    peerAttrs.push(attr(C.IFLA_IFNAME, cstr(spec.veth.peerName)));
    data.push(attr(C.VETH_INFO_PEER, Buffer.concat([ifinfomsg(C.AF_UNSPEC, 0), encodeAttrs(peerAttrs)])));
  } else if (spec.kind === 'bridge' && spec.bridge) {
    if (spec.bridge.stpState !== undefined) data.push(attr(C.IFLA_BR_STP_STATE, u32(spec.bridge.stpState)));
    if (spec.bridge.vlanFiltering !== undefined) data.push(attr(C.IFLA_BR_VLAN_FILTERING, u8(spec.bridge.vlanFiltering ? 1 : 0)));
    if (spec.bridge.vlanDefaultPvid !== undefined) data.push(attr(C.IFLA_BR_VLAN_DEFAULT_PVID, u16(spec.bridge.vlanDefaultPvid)));
  } else if (spec.kind === 'vxlan' && spec.vxlan) {
    const v = spec.vxlan;
    if (v.link !== undefined) data.push(attr(C.IFLA_VXLAN_LINK, u32(v.link)));
    data.push(attr(C.IFLA_VXLAN_ID, u32(v.vni)));
    if (v.local !== undefined) {
      data.push(attr(familyOf(v.local) === 4 ? C.IFLA_VXLAN_LOCAL : C.IFLA_VXLAN_LOCAL6, ipToBytes(v.local)));
    }
    if (v.ttl !== undefined) data.push(attr(C.IFLA_VXLAN_TTL, u8(v.ttl)));
    data.push(attr(C.IFLA_VXLAN_LEARNING, u8(v.learning ? 1 : 0)));
    if (v.l2miss) data.push(attr(C.IFLA_VXLAN_L2MISS, u8(1)));
    if (v.l3miss) data.push(attr(C.IFLA_VXLAN_L3MISS, u8(1)));
    if (v.port) data.push(attr(C.IFLA_VXLAN_PORT, be16(v.port)));
    if (v.gbp) data.push(attr(C.IFLA_VXLAN_GBP, Buffer.alloc(0)));
  }
  if (data.length) info.push(nest(C.IFLA_INFO_DATA, data));
  return nest(C.IFLA_LINKINFO, info);
}

function vlanInfo(flags: number, vid: number): Attr {
  return attr(C.IFLA_BRIDGE_VLAN_INFO, Buffer.concat([u16(flags), u16(vid)]));
}

/** RTM_SETLINK/DELLINK payload for bridge VLAN membership. Exported for byte-exact tests. */
export function encodeBridgeVlan(index: number, vid: number, opts: { pvid?: boolean; untagged?: boolean; self?: boolean; toVid?: number }): Buffer {
  let flags = 0;
  if (opts.pvid) flags |= C.BRIDGE_VLAN_INFO_PVID;
  if (opts.untagged) flags |= C.BRIDGE_VLAN_INFO_UNTAGGED;
  const spec: Attr[] = [];
  if (opts.self) spec.push(attr(C.IFLA_BRIDGE_FLAGS, u16(C.BRIDGE_FLAGS_SELF)));
  if (opts.toVid !== undefined && opts.toVid !== vid) {
    spec.push(vlanInfo(flags | C.BRIDGE_VLAN_INFO_RANGE_BEGIN, vid), vlanInfo(flags | C.BRIDGE_VLAN_INFO_RANGE_END, opts.toVid));
  } else {
    spec.push(vlanInfo(flags, vid));
  }
  return Buffer.concat([ifinfomsg(C.AF_BRIDGE, index), encodeAttrs([nest(C.IFLA_AF_SPEC, spec)])]);
}

/** IFLA_LINKINFO with bridge-port (slave) settings, as `ip link set X type bridge_slave ...`. */
export function encodeBridgePortInfo(p: BridgePortInfo): Attr {
  const data: Attr[] = [];
  if (p.hairpin !== undefined) data.push(attr(C.IFLA_BRPORT_MODE, u8(p.hairpin ? 1 : 0)));
  if (p.learning !== undefined) data.push(attr(C.IFLA_BRPORT_LEARNING, u8(p.learning ? 1 : 0)));
  if (p.isolated !== undefined) data.push(attr(C.IFLA_BRPORT_ISOLATED, u8(p.isolated ? 1 : 0)));
  // iproute2 names the slave type in IFLA_INFO_KIND ("bridge_slave").
  return nest(C.IFLA_LINKINFO, [attr(C.IFLA_INFO_KIND, rawstr('bridge_slave')), nest(C.IFLA_INFO_SLAVE_DATA, data)]);
}

function parseLink(m: NlMsg): Link {
  const p = m.payload;
  const index = readI32(p, 4);
  const flags = readU32(p, 8);
  const a = decodeAttrs(p, 16);
  const info = a.nested(C.IFLA_LINKINFO);
  const kind = info?.str(C.IFLA_INFO_KIND);
  const data = info?.nested(C.IFLA_INFO_DATA);
  const slaveKind = info?.str(C.IFLA_INFO_SLAVE_KIND);
  const slave = info?.nested(C.IFLA_INFO_SLAVE_DATA);
  const mac = a.get(C.IFLA_ADDRESS);
  const oper = a.u8(C.IFLA_OPERSTATE) ?? 0;
  return {
    index,
    name: a.str(C.IFLA_IFNAME) ?? '',
    kind,
    mtu: a.u32(C.IFLA_MTU) ?? 0,
    mac: mac && mac.length === 6 ? formatMac(mac) : mac && mac.length ? formatMac(mac) : undefined,
    flags,
    up: (flags & C.IFF_UP) !== 0,
    operState: C.IF_OPER[oper] ?? 'unknown',
    master: a.u32(C.IFLA_MASTER),
    parentIndex: a.u32(C.IFLA_LINK),
    linkNetnsId: a.has(C.IFLA_LINK_NETNSID) ? readI32(a.get(C.IFLA_LINK_NETNSID)!) : undefined,
    promiscuity: a.u32(C.IFLA_PROMISCUITY) ?? 0,
    txqlen: a.u32(C.IFLA_TXQLEN),
    vxlan: kind === 'vxlan' && data ? parseVxlan(data) : undefined,
    bridge: kind === 'bridge' && data ? { vlanFiltering: data.u8(C.IFLA_BR_VLAN_FILTERING) === 1, stpState: data.u32(C.IFLA_BR_STP_STATE) ?? 0 } : undefined,
    slaveKind,
    bridgePort:
      slaveKind === 'bridge' && slave
        ? { hairpin: slave.u8(C.IFLA_BRPORT_MODE) === 1, isolated: slave.u8(C.IFLA_BRPORT_ISOLATED) === 1, learning: slave.u8(C.IFLA_BRPORT_LEARNING) === 1 }
        : undefined,
  };
}

function parseVxlan(d: AttrMap): VxlanInfo {
  const local4 = d.get(C.IFLA_VXLAN_LOCAL);
  const local6 = d.get(C.IFLA_VXLAN_LOCAL6);
  const port = d.get(C.IFLA_VXLAN_PORT);
  const v: VxlanInfo = {
    vni: d.u32(C.IFLA_VXLAN_ID) ?? 0,
    learning: d.u8(C.IFLA_VXLAN_LEARNING) === 1,
    gbp: d.has(C.IFLA_VXLAN_GBP),
    l2miss: d.u8(C.IFLA_VXLAN_L2MISS) === 1,
    l3miss: d.u8(C.IFLA_VXLAN_L3MISS) === 1,
  };
  if (port) v.port = port.readUInt16BE(0);
  const link = d.u32(C.IFLA_VXLAN_LINK);
  if (link !== undefined) v.link = link;
  if (local4) v.local = bytesToIp(local4);
  else if (local6) v.local = bytesToIp(local6);
  const ttl = d.u8(C.IFLA_VXLAN_TTL);
  if (ttl !== undefined) v.ttl = ttl;
  return v;
}

function parseAddr(m: NlMsg): Addr {
  const p = m.payload;
  const family = familyOfAf(p[0]!);
  const prefixLen = p[1]!;
  const a = decodeAttrs(p, 8);
  const addr = a.get(C.IFA_ADDRESS) ?? a.get(C.IFA_LOCAL);
  const local = a.get(C.IFA_LOCAL);
  return {
    index: readU32(p, 4),
    family,
    address: `${addr ? bytesToIp(addr) : ''}/${prefixLen}`,
    local: local ? bytesToIp(local) : undefined,
    label: a.str(C.IFA_LABEL),
    scope: p[3]!,
    flags: a.u32(C.IFA_FLAGS) ?? p[2]!,
  };
}

function parseRoute(m: NlMsg): Route {
  const p = m.payload;
  const family = familyOfAf(p[0]!);
  const dstLen = p[1]!;
  const a = decodeAttrs(p, 12);
  const dst = a.get(C.RTA_DST);
  const r: Route = {
    family,
    dst: `${dst ? bytesToIp(dst) : family === 4 ? '0.0.0.0' : '::'}/${dstLen}`,
    table: a.u32(C.RTA_TABLE) ?? p[4]!,
    protocol: p[5]!,
    scope: p[6]!,
    type: p[7]!,
    onlink: (readU32(p, 8) & C.RTNH_F_ONLINK) !== 0,
  };
  const gw = a.get(C.RTA_GATEWAY);
  if (gw) r.gw = bytesToIp(gw);
  const oif = a.u32(C.RTA_OIF);
  if (oif !== undefined) r.oif = oif;
  const prio = a.u32(C.RTA_PRIORITY);
  if (prio !== undefined) r.priority = prio;
  const src = a.get(C.RTA_PREFSRC);
  if (src) r.prefsrc = bytesToIp(src);
  const metrics = a.nested(C.RTA_METRICS);
  const mtu = metrics?.u32(C.RTAX_MTU);
  if (mtu !== undefined) r.mtu = mtu;
  const advmss = metrics?.u32(C.RTAX_ADVMSS);
  if (advmss !== undefined) r.advmss = advmss;
  return r;
}

function parseNeigh(m: NlMsg): Neigh {
  const p = m.payload;
  const af = p[0]!;
  const a = decodeAttrs(p, 12);
  const dst = a.get(C.NDA_DST);
  const ll = a.get(C.NDA_LLADDR);
  return {
    family: af === C.AF_BRIDGE ? 'bridge' : familyOfAf(af),
    index: readI32(p, 4),
    ip: dst ? bytesToIp(dst) : undefined,
    mac: ll && ll.length === 6 ? formatMac(ll) : undefined,
    state: readU16(p, 8),
    flags: p[10]!,
    master: a.u32(C.NDA_MASTER),
    vlan: a.u16(C.NDA_VLAN),
  };
}

/** Encodes the RTM_*ROUTE request for `r`. Exported for byte-exact tests. */
export function encodeRoute(r: Route): Buffer {
  const { ip, prefixLen } = parseCidr(r.dst);
  const table = r.table ?? C.RT_TABLE_MAIN;
  const type = r.type ?? C.RTN_UNICAST;
  const scope =
    r.scope ??
    (type === C.RTN_LOCAL ? C.RT_SCOPE_HOST : r.gw === undefined && type === C.RTN_UNICAST && r.oif !== undefined ? C.RT_SCOPE_LINK : C.RT_SCOPE_UNIVERSE);
  const hdr = rtmsg({
    family: afOf(r.family),
    dstLen: prefixLen,
    table,
    protocol: r.protocol ?? C.RTPROT_BOOT,
    scope,
    type,
    flags: r.onlink ? C.RTNH_F_ONLINK : 0,
  });
  const attrs: Attr[] = [];
  if (table >= 256) attrs.push(attr(C.RTA_TABLE, u32(table)));
  if (prefixLen > 0) attrs.push(attr(C.RTA_DST, ipToBytes(ip)));
  if (r.prefsrc) attrs.push(attr(C.RTA_PREFSRC, ipToBytes(r.prefsrc)));
  if (r.gw) attrs.push(attr(C.RTA_GATEWAY, ipToBytes(r.gw)));
  if (r.priority !== undefined) attrs.push(attr(C.RTA_PRIORITY, u32(r.priority)));
  if (r.oif !== undefined) attrs.push(attr(C.RTA_OIF, u32(r.oif)));
  const metrics: Attr[] = [];
  if (r.mtu !== undefined) metrics.push(attr(C.RTAX_MTU, u32(r.mtu)));
  if (r.advmss !== undefined) metrics.push(attr(C.RTAX_ADVMSS, u32(r.advmss)));
  if (metrics.length) attrs.push(attr(C.RTA_METRICS, encodeAttrs(metrics)));
  return Buffer.concat([hdr, encodeAttrs(attrs)]);
}

export interface OpenOptions {
  /** Path of the namespace (/var/run/netns/x, /proc/<pid>/ns/net); default: current. */
  netns?: string;
  /** Multicast groups to join (RTNLGRP_*), for event subscriptions. */
  groups?: readonly number[];
}

export class Handle {
  readonly conn: NetlinkConn;
  /** fd of the namespace this handle lives in (null: the caller's own). */
  readonly nsFd: number | null;
  readonly nsPath: string | undefined;
  private ownsFd: boolean;

  private constructor(conn: NetlinkConn, nsFd: number | null, nsPath: string | undefined, ownsFd: boolean) {
    this.conn = conn;
    this.nsFd = nsFd;
    this.nsPath = nsPath;
    this.ownsFd = ownsFd;
  }

  /** Opens a handle in `opts.netns` (validated: missing vs not-a-netns errors). */
  static open(opts: OpenOptions = {}): Handle {
    if (opts.netns === undefined) return new Handle(new NetlinkConn(opts.groups ?? []), null, undefined, false);
    const fd = openNetns(opts.netns);
    try {
      const conn = withNetnsSync(fd, () => new NetlinkConn(opts.groups ?? []));
      return new Handle(conn, fd, opts.netns, true);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** Another socket in the same namespace, subscribed to `groups`. */
  subscribe(groups: readonly number[], cb: (type: number, obj: Link | Addr | Route | Neigh) => void): NetlinkConn {
    const conn = withNetnsSync(this.nsFd, () => new NetlinkConn(groups));
    conn.onNotification((m) => {
      switch (m.type) {
        case C.RTM_NEWLINK:
        case C.RTM_DELLINK:
          cb(m.type, parseLink(m));
          break;
        case C.RTM_NEWADDR:
        case C.RTM_DELADDR:
          cb(m.type, parseAddr(m));
          break;
        case C.RTM_NEWROUTE:
        case C.RTM_DELROUTE:
          cb(m.type, parseRoute(m));
          break;
        case C.RTM_NEWNEIGH:
        case C.RTM_DELNEIGH:
          cb(m.type, parseNeigh(m));
          break;
      }
    });
    return conn;
  }

  close(): void {
    this.conn.close();
    if (this.ownsFd && this.nsFd !== null) {
      closeSync(this.nsFd);
      this.ownsFd = false;
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Writes /proc/sys/<key> as seen from this namespace (`sysctl -w`). */
  writeSysctl(key: string, value: string): void {
    withNetnsSync(this.nsFd, () => writeFileSync(join('/proc/sys', key), value));
  }

  readSysctl(key: string): string {
    return withNetnsSync(this.nsFd, () => readFileSync(join('/proc/sys', key), 'utf8').trim());
  }

  /** Opens /proc/sys files of this namespace for later use (fd per key). */
  openSysctl(key: string, flags: 'r' | 'w'): number {
    return withNetnsSync(this.nsFd, () => openSync(join('/proc/sys', key), flags));
  }

  // ---- links -------------------------------------------------------------

  /** `ip link show` */
  async linkList(): Promise<Link[]> {
    const msgs = await this.conn.dump(C.RTM_GETLINK, ifinfomsg(C.AF_UNSPEC, 0), 'link list');
    return msgs.filter((m) => m.type === C.RTM_NEWLINK).map(parseLink);
  }

  /** `ip link show dev NAME`; throws LinkNotFoundError. */
  async linkByName(name: string): Promise<Link> {
    try {
      const msgs = await this.conn.request(
        C.RTM_GETLINK,
        0,
        Buffer.concat([ifinfomsg(C.AF_UNSPEC, 0), encodeAttrs([attr(C.IFLA_IFNAME, cstr(name))])]),
        `link ${name}`,
      );
      const m = msgs.find((x) => x.type === C.RTM_NEWLINK);
      if (!m) throw new LinkNotFoundError(name);
      return parseLink(m);
    } catch (err) {
      if (isNotFound(err)) throw new LinkNotFoundError(name);
      throw err;
    }
  }

  async linkByIndex(index: number): Promise<Link> {
    try {
      const msgs = await this.conn.request(C.RTM_GETLINK, 0, ifinfomsg(C.AF_UNSPEC, index), `link #${index}`);
      const m = msgs.find((x) => x.type === C.RTM_NEWLINK);
      if (!m) throw new LinkNotFoundError(`#${index}`);
      return parseLink(m);
    } catch (err) {
      if (isNotFound(err)) throw new LinkNotFoundError(`#${index}`);
      throw err;
    }
  }

  /** Like linkByName but undefined when absent. */
  async linkFind(name: string): Promise<Link | undefined> {
    try {
      return await this.linkByName(name);
    } catch (err) {
      if (err instanceof LinkNotFoundError) return undefined;
      throw err;
    }
  }

  /** `ip link add NAME type KIND ...` (NLM_F_EXCL: EEXIST when present). */
  async linkAdd(spec: LinkSpec): Promise<void> {
    const attrs: Attr[] = [attr(C.IFLA_IFNAME, cstr(spec.name))];
    if (spec.mtu !== undefined) attrs.push(attr(C.IFLA_MTU, u32(spec.mtu)));
    if (spec.mac) attrs.push(attr(C.IFLA_ADDRESS, parseMac(spec.mac)));
    if (spec.txqlen !== undefined) attrs.push(attr(C.IFLA_TXQLEN, u32(spec.txqlen)));
    if (spec.master !== undefined) attrs.push(attr(C.IFLA_MASTER, u32(spec.master)));
    if (spec.netnsFd !== undefined) attrs.push(attr(C.IFLA_NET_NS_FD, u32(spec.netnsFd)));
    attrs.push(encodeLinkInfo(spec));
    const flags = spec.up ? C.IFF_UP : 0;
    await this.conn.request(
      C.RTM_NEWLINK,
      C.NLM_F_CREATE | C.NLM_F_EXCL,
      Buffer.concat([ifinfomsg(C.AF_UNSPEC, 0, flags, flags), encodeAttrs(attrs)]),
      `link add ${spec.name}`,
    );
  }

  /** `ip link del dev X` */
  async linkDel(index: number): Promise<void> {
    await this.conn.request(C.RTM_DELLINK, 0, ifinfomsg(C.AF_UNSPEC, index), `link del #${index}`);
  }

  private async linkSet(index: number, attrs: Attr[], flags = 0, change = 0, op = 'link set'): Promise<void> {
    await this.conn.request(C.RTM_NEWLINK, 0, Buffer.concat([ifinfomsg(C.AF_UNSPEC, index, flags, change), encodeAttrs(attrs)]), `${op} #${index}`);
  }

  /** `ip link set dev X up` */
  linkSetUp(index: number): Promise<void> {
    return this.linkSet(index, [], C.IFF_UP, C.IFF_UP, 'link set up');
  }
  /** `ip link set dev X down` */
  linkSetDown(index: number): Promise<void> {
    return this.linkSet(index, [], 0, C.IFF_UP, 'link set down');
  }
  /** `ip link set dev X promisc on|off` */
  linkSetPromisc(index: number, on: boolean): Promise<void> {
    return this.linkSet(index, [], on ? C.IFF_PROMISC : 0, C.IFF_PROMISC, 'link set promisc');
  }
  /** `ip link set dev X mtu N` */
  linkSetMtu(index: number, mtu: number): Promise<void> {
    return this.linkSet(index, [attr(C.IFLA_MTU, u32(mtu))], 0, 0, 'link set mtu');
  }
  /** `ip link set dev X address MAC` */
  linkSetMac(index: number, mac: string): Promise<void> {
    return this.linkSet(index, [attr(C.IFLA_ADDRESS, parseMac(mac))], 0, 0, 'link set address');
  }
  /** `ip link set dev X master M` (0 = nomaster) */
  linkSetMaster(index: number, master: number): Promise<void> {
    return this.linkSet(index, [attr(C.IFLA_MASTER, u32(master))], 0, 0, 'link set master');
  }
  /** `ip link set dev X name N` */
  linkSetName(index: number, name: string): Promise<void> {
    return this.linkSet(index, [attr(C.IFLA_IFNAME, cstr(name))], 0, 0, 'link set name');
  }
  /** `ip link set dev X netns NS` (by namespace fd) */
  linkSetNsFd(index: number, nsFd: number): Promise<void> {
    return this.linkSet(index, [attr(C.IFLA_NET_NS_FD, u32(nsFd))], 0, 0, 'link set netns');
  }
  /** `ip link set dev X type bridge_slave hairpin on isolated on ...` */
  linkSetBridgePort(index: number, p: BridgePortInfo): Promise<void> {
    return this.linkSet(index, [encodeBridgePortInfo(p)], 0, 0, 'link set bridge_slave');
  }
  /** `ip link set dev X type bridge vlan_filtering 1 ...` on an existing bridge. */
  linkSetBridge(index: number, b: BridgeInfo): Promise<void> {
    return this.linkSet(index, [encodeLinkInfo({ name: '', kind: 'bridge', bridge: b })], 0, 0, 'link set bridge');
  }

  /**
   * `bridge vlan add dev X vid N [pvid] [untagged] [self]`; with `toVid` a
   * range N..toVid. Needs vlan_filtering on the bridge.
   */
  async bridgeVlanAdd(index: number, vid: number, opts: { pvid?: boolean; untagged?: boolean; self?: boolean; toVid?: number } = {}): Promise<void> {
    await this.conn.request(C.RTM_SETLINK, 0, encodeBridgeVlan(index, vid, opts), `bridge vlan add vid ${vid} #${index}`);
  }

  /** `bridge vlan del dev X vid N [self]` */
  async bridgeVlanDel(index: number, vid: number, opts: { self?: boolean; toVid?: number } = {}): Promise<void> {
    await this.conn.request(C.RTM_DELLINK, 0, encodeBridgeVlan(index, vid, opts), `bridge vlan del vid ${vid} #${index}`);
  }

  // ---- addresses ---------------------------------------------------------

  /** `ip addr show [dev X]` */
  async addrList(filter: { index?: number; family?: Family } = {}): Promise<Addr[]> {
    const af = filter.family ? afOf(filter.family) : C.AF_UNSPEC;
    const msgs = await this.conn.dump(C.RTM_GETADDR, ifaddrmsg(af, 0, 0, 0, 0), 'addr list');
    return msgs
      .filter((m) => m.type === C.RTM_NEWADDR)
      .map(parseAddr)
      .filter((a) => (filter.index === undefined || a.index === filter.index) && (filter.family === undefined || a.family === filter.family));
  }

  private addrMsg(index: number, spec: AddrSpec): Buffer {
    const { ip, prefixLen } = parseCidr(spec.address);
    const fam = familyOf(ip);
    let flags = 0;
    if (spec.noDad) flags |= C.IFA_F_NODAD;
    if (spec.noPrefixRoute) flags |= C.IFA_F_NOPREFIXROUTE;
    const scope = spec.scope ?? (fam === 4 && ip.startsWith('127.') ? C.RT_SCOPE_HOST : C.RT_SCOPE_UNIVERSE);
    const attrs: Attr[] = [attr(C.IFA_LOCAL, ipToBytes(spec.local ?? ip)), attr(C.IFA_ADDRESS, ipToBytes(ip))];
    if (fam === 4 && spec.broadcast !== undefined) {
      const bc = spec.broadcast === 'auto' ? broadcastOf(ip, prefixLen) : spec.broadcast;
      if (bc) attrs.push(attr(C.IFA_BROADCAST, ipToBytes(bc)));
    }
    if (spec.label) attrs.push(attr(C.IFA_LABEL, cstr(spec.label)));
    if (flags > 0xff) attrs.push(attr(C.IFA_FLAGS, u32(flags)));
    return Buffer.concat([ifaddrmsg(afOf(fam), prefixLen, flags & 0xff, scope, index), encodeAttrs(attrs)]);
  }

  /** `ip addr add ADDR dev X` (EEXIST when present) */
  async addrAdd(index: number, spec: AddrSpec): Promise<void> {
    await this.conn.request(C.RTM_NEWADDR, C.NLM_F_CREATE | C.NLM_F_EXCL, this.addrMsg(index, spec), `addr add ${spec.address}`);
  }
  /** `ip addr replace ADDR dev X` */
  async addrReplace(index: number, spec: AddrSpec): Promise<void> {
    await this.conn.request(C.RTM_NEWADDR, C.NLM_F_CREATE | C.NLM_F_REPLACE, this.addrMsg(index, spec), `addr replace ${spec.address}`);
  }
  /** `ip addr del ADDR dev X` */
  async addrDel(index: number, address: string): Promise<void> {
    await this.conn.request(C.RTM_DELADDR, 0, this.addrMsg(index, { address }), `addr del ${address}`);
  }

  // ---- routes ------------------------------------------------------------

  /** `ip route show table all` filtered; default: main table only. */
  async routeList(filter: { family?: Family; table?: number | 'all'; oif?: number } = {}): Promise<Route[]> {
    const af = filter.family ? afOf(filter.family) : C.AF_UNSPEC;
    const msgs = await this.conn.dump(C.RTM_GETROUTE, rtmsg({ family: af, dstLen: 0, table: 0, protocol: 0, scope: 0, type: 0, flags: 0 }), 'route list');
    const table = filter.table ?? C.RT_TABLE_MAIN;
    return msgs
      .filter((m) => m.type === C.RTM_NEWROUTE)
      .map(parseRoute)
      .filter(
        (r) =>
          (table === 'all' || r.table === table) &&
          (filter.family === undefined || r.family === filter.family) &&
          (filter.oif === undefined || r.oif === filter.oif),
      );
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
  async routeGet(dst: string): Promise<Route> {
    const fam = familyOf(dst);
    const payload = Buffer.concat([
      rtmsg({ family: afOf(fam), dstLen: fam === 4 ? 32 : 128, table: 0, protocol: 0, scope: 0, type: 0, flags: 0 }),
      encodeAttrs([attr(C.RTA_DST, ipToBytes(dst))]),
    ]);
    const msgs = await this.conn.request(C.RTM_GETROUTE, 0, payload, `route get ${dst}`);
    const m = msgs.find((x) => x.type === C.RTM_NEWROUTE);
    if (!m) throw new NetError('ENETUNREACH', `route get ${dst}: no route`);
    return parseRoute(m);
  }

  // ---- neighbours and FDB -----------------------------------------------

  /** `ip neigh show` / `bridge fdb show` */
  async neighList(filter: { family?: Family | 'bridge'; index?: number } = {}): Promise<Neigh[]> {
    const af = filter.family === 'bridge' ? C.AF_BRIDGE : filter.family ? afOf(filter.family) : C.AF_UNSPEC;
    const msgs = await this.conn.dump(C.RTM_GETNEIGH, ndmsg(af, 0, 0, 0), 'neigh list');
    return msgs
      .filter((m) => m.type === C.RTM_NEWNEIGH)
      .map(parseNeigh)
      .filter((n) => (filter.index === undefined || n.index === filter.index) && (filter.family === undefined || n.family === filter.family));
  }

  private neighMsg(n: NeighSpec): Buffer {
    const af = n.fdb ? C.AF_BRIDGE : afOf(familyOf(n.ip ?? '0.0.0.0'));
    const attrs: Attr[] = [];
    if (n.ip) attrs.push(attr(C.NDA_DST, ipToBytes(n.ip)));
    attrs.push(attr(C.NDA_LLADDR, parseMac(n.mac)));
    if (n.vlan !== undefined) attrs.push(attr(C.NDA_VLAN, u16(n.vlan)));
    return Buffer.concat([ndmsg(af, n.index, n.state ?? C.NUD_PERMANENT, n.flags ?? (n.fdb ? C.NTF_SELF : 0)), encodeAttrs(attrs)]);
  }

  /** `ip neigh replace IP lladdr MAC dev X nud permanent` / `bridge fdb replace MAC dev X self dst IP` */
  async neighSet(n: NeighSpec): Promise<void> {
    await this.conn.request(C.RTM_NEWNEIGH, C.NLM_F_CREATE | C.NLM_F_REPLACE, this.neighMsg(n), `neigh replace ${n.ip ?? n.mac}`);
  }
  /** `bridge fdb append ...` (several destinations for one MAC) */
  async neighAppend(n: NeighSpec): Promise<void> {
    await this.conn.request(C.RTM_NEWNEIGH, C.NLM_F_CREATE | C.NLM_F_APPEND, this.neighMsg(n), `neigh append ${n.ip ?? n.mac}`);
  }
  /** `ip neigh del` / `bridge fdb del` */
  async neighDel(n: NeighSpec): Promise<void> {
    await this.conn.request(C.RTM_DELNEIGH, 0, this.neighMsg(n), `neigh del ${n.ip ?? n.mac}`);
  }
}

function broadcastOf(ip: string, prefixLen: number): string | undefined {
  if (prefixLen >= 31) return undefined;
  const b = ipToBytes(ip);
  for (let i = 0; i < 4; i++) {
    const hostBits = Math.max(0, Math.min(8, (i + 1) * 8 - prefixLen));
    b[i] = b[i]! | ((1 << hostBits) - 1);
  }
  return bytesToIp(b);
}
