// Links (RTM_*LINK): the model types, the IFLA_* encoders and parser, and the
// handle methods (`ip link`, `bridge vlan`). Mixed into Handle (handle.ts).
import { constants } from 'node:os';
import { NetError, isNotFound } from '../errors.ts';
import { IPAddr } from '../ip/index.ts';
import * as C from './constants.ts';
import type { NetlinkConn } from './conn.ts';
import { formatMac, parseMac } from './mac.ts';
import { attr, cstr, rawstr, decodeAttrs, encodeAttrs, nest, readI32, readU32, u16, u32, u8, be16, type Attr, type AttrMap, type NlMsg } from './wire.ts';

/** No such link. Carries ENODEV (what the kernel answers), so isNotFound() holds for it. */
export class LinkNotFoundError extends NetError {
  readonly errno: number = constants.errno.ENODEV;
  constructor(what: string) {
    super('ENODEV', `Link not found: ${what}`);
  }
}

export interface VxlanInfo {
  vni: number;
  /** UDP destination port; 0 lets the kernel choose (8472 on Linux). */
  port?: number;
  local?: IPAddr;
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

export type LinkKind = 'bridge' | 'veth' | 'vxlan' | 'dummy' | 'tun';

export interface LinkSpec {
  name: string;
  kind: LinkKind;
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

export interface BridgeVlanOpts {
  pvid?: boolean;
  untagged?: boolean;
  self?: boolean;
  toVid?: number;
}

export function ifinfomsg(family: number, index: number, flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(family, 0);
  // type (u16) stays 0
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags >>> 0, 8);
  b.writeUInt32LE(change >>> 0, 12);
  return hostEndianIfinfo(b);
}
// ifinfomsg fields are host endian; the writes above assume LE.
function hostEndianIfinfo(b: Buffer): Buffer {
  if (readU32(Buffer.from([1, 0, 0, 0])) === 1) return b;
  const out = Buffer.alloc(16);
  out.writeUInt8(b.readUInt8(0), 0);
  out.writeInt32BE(b.readInt32LE(4), 4);
  out.writeUInt32BE(b.readUInt32LE(8), 8);
  out.writeUInt32BE(b.readUInt32LE(12), 12);
  return out;
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
    if (v.local !== undefined) data.push(attr(v.local.family === 4 ? C.IFLA_VXLAN_LOCAL : C.IFLA_VXLAN_LOCAL6, v.local.toBytes()));
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
export function encodeBridgeVlan(index: number, vid: number, opts: BridgeVlanOpts): Buffer {
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

export function parseLink(m: NlMsg): Link {
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
    mac: mac && mac.length ? formatMac(mac) : undefined,
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
  const local = local4 ?? local6;
  if (local) v.local = IPAddr.fromBytes(local);
  const ttl = d.u8(C.IFLA_VXLAN_TTL);
  if (ttl !== undefined) v.ttl = ttl;
  return v;
}

async function linkGet(conn: NetlinkConn, payload: Buffer, what: string): Promise<Link> {
  try {
    const msgs = await conn.request(C.RTM_GETLINK, 0, payload, `link ${what}`);
    const m = msgs.find((x) => x.type === C.RTM_NEWLINK);
    if (!m) throw new LinkNotFoundError(what);
    return parseLink(m);
  } catch (err) {
    if (isNotFound(err)) throw new LinkNotFoundError(what);
    throw err;
  }
}

async function linkSet(conn: NetlinkConn, index: number, attrs: Attr[], flags: number, change: number, op: string): Promise<void> {
  await conn.request(C.RTM_NEWLINK, 0, Buffer.concat([ifinfomsg(C.AF_UNSPEC, index, flags, change), encodeAttrs(attrs)]), `${op} #${index}`);
}

/** The link requests of a handle; Handle mixes these methods in (see handle.ts). */
export abstract class LinkMethods {
  abstract readonly conn: NetlinkConn;

  /** `ip link show` */
  async linkList(): Promise<Link[]> {
    const msgs = await this.conn.dump(C.RTM_GETLINK, ifinfomsg(C.AF_UNSPEC, 0), 'link list');
    return msgs.filter((m) => m.type === C.RTM_NEWLINK).map(parseLink);
  }

  /** `ip link show dev NAME`; throws LinkNotFoundError. */
  async linkByName(name: string): Promise<Link> {
    const payload = Buffer.concat([ifinfomsg(C.AF_UNSPEC, 0), encodeAttrs([attr(C.IFLA_IFNAME, cstr(name))])]);
    return linkGet(this.conn, payload, name);
  }

  /** `ip link show dev #INDEX`; throws LinkNotFoundError. */
  async linkByIndex(index: number): Promise<Link> {
    return linkGet(this.conn, ifinfomsg(C.AF_UNSPEC, index), `#${index}`);
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

  /** `ip link set dev X up` */
  linkSetUp(index: number): Promise<void> {
    return linkSet(this.conn, index, [], C.IFF_UP, C.IFF_UP, 'link set up');
  }
  /** `ip link set dev X down` */
  linkSetDown(index: number): Promise<void> {
    return linkSet(this.conn, index, [], 0, C.IFF_UP, 'link set down');
  }
  /** `ip link set dev X promisc on|off` */
  linkSetPromisc(index: number, on: boolean): Promise<void> {
    return linkSet(this.conn, index, [], on ? C.IFF_PROMISC : 0, C.IFF_PROMISC, 'link set promisc');
  }
  /** `ip link set dev X mtu N` */
  linkSetMtu(index: number, mtu: number): Promise<void> {
    return linkSet(this.conn, index, [attr(C.IFLA_MTU, u32(mtu))], 0, 0, 'link set mtu');
  }
  /** `ip link set dev X address MAC` */
  linkSetMac(index: number, mac: string): Promise<void> {
    return linkSet(this.conn, index, [attr(C.IFLA_ADDRESS, parseMac(mac))], 0, 0, 'link set address');
  }
  /** `ip link set dev X master M` (0 = nomaster) */
  linkSetMaster(index: number, master: number): Promise<void> {
    return linkSet(this.conn, index, [attr(C.IFLA_MASTER, u32(master))], 0, 0, 'link set master');
  }
  /** `ip link set dev X name N` */
  linkSetName(index: number, name: string): Promise<void> {
    return linkSet(this.conn, index, [attr(C.IFLA_IFNAME, cstr(name))], 0, 0, 'link set name');
  }
  /** `ip link set dev X netns NS` (by namespace fd) */
  linkSetNsFd(index: number, nsFd: number): Promise<void> {
    return linkSet(this.conn, index, [attr(C.IFLA_NET_NS_FD, u32(nsFd))], 0, 0, 'link set netns');
  }
  /** `ip link set dev X type bridge_slave hairpin on isolated on ...` */
  linkSetBridgePort(index: number, p: BridgePortInfo): Promise<void> {
    return linkSet(this.conn, index, [encodeBridgePortInfo(p)], 0, 0, 'link set bridge_slave');
  }
  /** `ip link set dev X type bridge vlan_filtering 1 ...` on an existing bridge. */
  linkSetBridge(index: number, b: BridgeInfo): Promise<void> {
    return linkSet(this.conn, index, [encodeLinkInfo({ name: '', kind: 'bridge', bridge: b })], 0, 0, 'link set bridge');
  }

  /**
   * `bridge vlan add dev X vid N [pvid] [untagged] [self]`; with `toVid` a
   * range N..toVid. Needs vlan_filtering on the bridge.
   */
  async bridgeVlanAdd(index: number, vid: number, opts: BridgeVlanOpts = {}): Promise<void> {
    await this.conn.request(C.RTM_SETLINK, 0, encodeBridgeVlan(index, vid, opts), `bridge vlan add vid ${vid} #${index}`);
  }

  /** `bridge vlan del dev X vid N [self]` */
  async bridgeVlanDel(index: number, vid: number, opts: { self?: boolean; toVid?: number } = {}): Promise<void> {
    await this.conn.request(C.RTM_DELLINK, 0, encodeBridgeVlan(index, vid, opts), `bridge vlan del vid ${vid} #${index}`);
  }
}

/** What a handle offers for links (the public methods above). */
export type LinkOps = Omit<LinkMethods, 'conn'>;
