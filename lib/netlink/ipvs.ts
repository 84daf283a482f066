// The IPVS client: IpvsHandle over generic netlink, family "IPVS", with the
// messages laid out exactly as ipvsadm 1.31 (libipvs) lays them out, so the
// kernel sees from us what it sees from ipvsadm (lib/netlink/testdata/ipvs/
// holds ipvsadm's own messages; ipvs.test.ts compares ours to them).
//
// Layout (libipvs ipvs_nl_fill_service_attr / ipvs_nl_fill_dest_attr, as
// captured; nests carry NLA_F_NESTED, as libnl marks them):
//   service nest: AF u16, PROTOCOL u16, ADDR 16 bytes (IPv4 in the first 4,
//     zero padded), PORT be16, SCHED_NAME string, FLAGS {flags, mask=~0},
//     TIMEOUT u32 (s), NETMASK u32 (IPv4: the mask in network order; IPv6:
//     the prefix length);
//   a request that only names a service (delete, destination commands)
//     carries the same full nest with ipvsadm's blanks: scheduler "", flags
//     0, timeout 0, a host netmask; the lookup of one service the same with
//     netmask 0; the destination dump AF, PROTOCOL, ADDR and PORT only;
//   destination nest: ADDR_FAMILY u16, ADDR, PORT be16, FWD_METHOD u32,
//     WEIGHT u32, TUN_TYPE u8, TUN_PORT be16, TUN_FLAGS u16, U_THRESH u32,
//     L_THRESH u32; a destination that is only named (delete) carries weight
//     1 and direct routing, ipvsadm's defaults;
//   every request asks for an ACK; dumps add NLM_F_DUMP.
// Reading strips IP_VS_SVC_F_HASHED (the kernel sets it on every service it
// holds) and skips firewall-mark services, which IpvsService cannot name.
import { constants } from 'node:os';
import { ErrnoError, NetError, errnoOf } from '../errors.ts';
import { IPAddr, type Family } from '../ip/index.ts';
import * as C from './constants.ts';
import { GenlConn, GenlFamilyNotFoundError, type GenlMsg, type GenlOpenOptions } from './genl.ts';
import {
  IPVS_SVC_F_HASHED,
  ipvsHostPort,
  ipvsServiceString,
  type IpvsDestination,
  type IpvsDestinationKey,
  type IpvsDestinationState,
  type IpvsForward,
  type IpvsHandle,
  type IpvsInfo,
  type IpvsProtocol,
  type IpvsService,
  type IpvsServiceKey,
  type IpvsTimeouts,
} from './ipvs-types.ts';
import { NLA_F_NESTED, attr, be16, cstr, nest, readU32, u16, u32, u8, type Attr, type AttrMap } from './wire.ts';

const E = constants.errno;

/** The kernel has no IP Virtual Server (no ip_vs module, or not built). */
export class NoIpvsError extends NetError {
  constructor(cause?: unknown) {
    super(
      'ENOIPVS',
      'IPVS is not available: the kernel has no generic netlink family "IPVS" (load the ip_vs module with `modprobe ip_vs`, or use a kernel built with CONFIG_IP_VS)',
      { cause },
    );
  }
}

// ---- encoding ------------------------------------------------------------------

const PROTO: Record<IpvsProtocol, number> = { tcp: C.IPPROTO_TCP, udp: C.IPPROTO_UDP, sctp: C.IPPROTO_SCTP };
const PROTO_NAME = new Map<number, IpvsProtocol>(Object.entries(PROTO).map(([k, v]) => [v, k as IpvsProtocol]));
const AF: Record<Family, number> = { 4: C.AF_INET, 6: C.AF_INET6 };
const FWD: Record<IpvsForward, number> = {
  masq: C.IP_VS_CONN_F_MASQ,
  local: C.IP_VS_CONN_F_LOCALNODE,
  tunnel: C.IP_VS_CONN_F_TUNNEL,
  route: C.IP_VS_CONN_F_DROUTE,
  bypass: C.IP_VS_CONN_F_BYPASS,
};
const FWD_NAME = new Map<number, IpvsForward>(Object.entries(FWD).map(([k, v]) => [v, k as IpvsForward]));

/** libnl's nla_nest_start marks nests (NLA_F_NESTED), so ours do too. */
const SERVICE_NEST = C.IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED;
const DEST_NEST = C.IPVS_CMD_ATTR_DEST | NLA_F_NESTED;

/**
 * What ipvsadm puts in the fields of a service it only names (-D, -a, -e,
 * -d): no scheduler (an empty string), no flags, no persistence, a host
 * netmask. A lookup of one service (-L -t) sends the same with netmask 0.
 */
const NAMED_SERVICE = { scheduler: '', flags: 0, timeout: 0 } as const;
/** What ipvsadm puts in the fields of a destination it only names (-d): weight 1, direct routing. */
const NAMED_DEST = { weight: 1, forward: 'route', upperThreshold: 0, lowerThreshold: 0 } as const;

const bad = (op: string, why: string): ErrnoError => new ErrnoError(op, E.EINVAL, why);

function checkPort(port: number, op: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw bad(op, `port ${port} out of range 0..65535`);
}

function checkU32(v: number, what: string, op: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw bad(op, `${what} ${v} out of range 0..4294967295`);
}

/** union nf_inet_addr: 16 bytes, an IPv4 address in the first four. */
function inetAddr(a: IPAddr): Buffer {
  const b = Buffer.alloc(16);
  a.toBytes().copy(b);
  return b;
}

function netmask(family: Family, bits: number, op: string): Buffer {
  if (family === 6) {
    checkU32(bits, 'IPv6 netmask', op);
    return u32(bits);
  }
  if (!Number.isInteger(bits) || bits < 0 || bits > 32) throw bad(op, `IPv4 netmask /${bits} out of range 0..32`);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0);
  return b;
}

function checkKey(k: IpvsServiceKey, op: string): void {
  if (k.family !== 4 && k.family !== 6) throw bad(op, `address family ${String(k.family)}`);
  if (k.address.family !== k.family) throw bad(op, `IPv${k.address.family} address ${k.address.toString()} in an IPv${k.family} service`);
  if (PROTO[k.protocol] === undefined) throw bad(op, `protocol ${String(k.protocol)}`);
  checkPort(k.port, op);
}

function keyAttrs(k: IpvsServiceKey): Attr[] {
  return [attr(C.IPVS_SVC_ATTR_AF, u16(AF[k.family])), attr(C.IPVS_SVC_ATTR_PROTOCOL, u16(PROTO[k.protocol])), attr(C.IPVS_SVC_ATTR_ADDR, inetAddr(k.address)), attr(C.IPVS_SVC_ATTR_PORT, be16(k.port))];
}

/** The service nest of a destination dump: AF, PROTOCOL, ADDR, PORT only (libipvs ipvs_get_dests). */
export function encodeServiceKey(k: IpvsServiceKey, op = 'ipvs'): Attr {
  checkKey(k, op);
  return nest(SERVICE_NEST, keyAttrs(k));
}

/** The full service nest (libipvs ipvs_nl_fill_service_attr). */
export function encodeService(s: IpvsService, op = 'ipvs'): Attr {
  const sched = Buffer.byteLength(s.scheduler, 'utf8');
  if (sched === 0 || sched >= 16) throw bad(op, `scheduler name "${s.scheduler}" must have 1..15 bytes`);
  return serviceNest(s, op);
}

function serviceNest(s: IpvsService, op: string): Attr {
  checkKey(s, op);
  checkU32(s.flags, 'flags', op);
  checkU32(s.timeout, 'timeout', op);
  const flags = Buffer.concat([u32(s.flags), u32(0xffffffff)]);
  return nest(SERVICE_NEST, [
    ...keyAttrs(s),
    attr(C.IPVS_SVC_ATTR_SCHED_NAME, cstr(s.scheduler)),
    attr(C.IPVS_SVC_ATTR_FLAGS, flags),
    attr(C.IPVS_SVC_ATTR_TIMEOUT, u32(s.timeout)),
    attr(C.IPVS_SVC_ATTR_NETMASK, netmask(s.family, s.netmaskBits, op)),
  ]);
}

/** A service that is only named (delete, destination commands): the full nest with ipvsadm's blanks and a host netmask. */
export function encodeNamedService(k: IpvsServiceKey, op = 'ipvs'): Attr {
  return serviceNest({ family: k.family, address: k.address, protocol: k.protocol, port: k.port, ...NAMED_SERVICE, netmaskBits: k.family === 4 ? 32 : 128 }, op);
}

/** The lookup of one service (libipvs ipvs_get_service): the full nest with blanks, netmask 0. */
export function encodeServiceLookup(k: IpvsServiceKey, op = 'ipvs'): Attr {
  return serviceNest({ family: k.family, address: k.address, protocol: k.protocol, port: k.port, ...NAMED_SERVICE, netmaskBits: 0 }, op);
}

/** The destination nest (libipvs ipvs_nl_fill_dest_attr). */
export function encodeDestination(d: IpvsDestination, op = 'ipvs'): Attr {
  checkPort(d.port, op);
  if (d.family !== d.address.family) throw bad(op, `IPv${d.address.family} address ${d.address.toString()} given as IPv${d.family}`);
  const fwd = FWD[d.forward];
  if (fwd === undefined) throw bad(op, `forwarding method ${String(d.forward)}`);
  checkU32(d.weight, 'weight', op);
  checkU32(d.upperThreshold, 'upper threshold', op);
  checkU32(d.lowerThreshold, 'lower threshold', op);
  return nest(DEST_NEST, [
    attr(C.IPVS_DEST_ATTR_ADDR_FAMILY, u16(AF[d.family])),
    attr(C.IPVS_DEST_ATTR_ADDR, inetAddr(d.address)),
    attr(C.IPVS_DEST_ATTR_PORT, be16(d.port)),
    attr(C.IPVS_DEST_ATTR_FWD_METHOD, u32(fwd)),
    attr(C.IPVS_DEST_ATTR_WEIGHT, u32(d.weight)),
    attr(C.IPVS_DEST_ATTR_TUN_TYPE, u8(0)),
    attr(C.IPVS_DEST_ATTR_TUN_PORT, be16(0)),
    attr(C.IPVS_DEST_ATTR_TUN_FLAGS, u16(0)),
    attr(C.IPVS_DEST_ATTR_U_THRESH, u32(d.upperThreshold)),
    attr(C.IPVS_DEST_ATTR_L_THRESH, u32(d.lowerThreshold)),
  ]);
}

/** A destination that is only named (delete): ipvsadm's defaults for the rest. */
export function encodeNamedDestination(d: IpvsDestinationKey & { family?: Family }, op = 'ipvs'): Attr {
  return encodeDestination({ address: d.address, port: d.port, family: d.family ?? d.address.family, ...NAMED_DEST }, op);
}

/** One request: command, flags (NLM_F_DUMP for dumps) and attributes. */
export interface IpvsRequest {
  readonly cmd: number;
  readonly dump: boolean;
  readonly attrs: readonly Attr[];
}

/** The request of each IpvsHandle method, as ipvsadm would send it (pure; what the golden tests check). */
export const ipvsRequests = {
  info: (): IpvsRequest => ({ cmd: C.IPVS_CMD_GET_INFO, dump: false, attrs: [] }),
  services: (): IpvsRequest => ({ cmd: C.IPVS_CMD_GET_SERVICE, dump: true, attrs: [] }),
  getService: (k: IpvsServiceKey, op?: string): IpvsRequest => ({ cmd: C.IPVS_CMD_GET_SERVICE, dump: false, attrs: [encodeServiceLookup(k, op)] }),
  addService: (s: IpvsService, op?: string): IpvsRequest => ({ cmd: C.IPVS_CMD_NEW_SERVICE, dump: false, attrs: [encodeService(s, op)] }),
  updateService: (s: IpvsService, op?: string): IpvsRequest => ({ cmd: C.IPVS_CMD_SET_SERVICE, dump: false, attrs: [encodeService(s, op)] }),
  deleteService: (k: IpvsServiceKey, op?: string): IpvsRequest => ({ cmd: C.IPVS_CMD_DEL_SERVICE, dump: false, attrs: [encodeNamedService(k, op)] }),
  destinations: (k: IpvsServiceKey, op?: string): IpvsRequest => ({ cmd: C.IPVS_CMD_GET_DEST, dump: true, attrs: [encodeServiceKey(k, op)] }),
  addDestination: (k: IpvsServiceKey, d: IpvsDestination, op?: string): IpvsRequest => ({
    cmd: C.IPVS_CMD_NEW_DEST,
    dump: false,
    attrs: [encodeNamedService(k, op), encodeDestination(d, op)],
  }),
  updateDestination: (k: IpvsServiceKey, d: IpvsDestination, op?: string): IpvsRequest => ({
    cmd: C.IPVS_CMD_SET_DEST,
    dump: false,
    attrs: [encodeNamedService(k, op), encodeDestination(d, op)],
  }),
  deleteDestination: (k: IpvsServiceKey, d: IpvsDestinationKey & { family?: Family }, op?: string): IpvsRequest => ({
    cmd: C.IPVS_CMD_DEL_DEST,
    dump: false,
    attrs: [encodeNamedService(k, op), encodeNamedDestination(d, op)],
  }),
  timeouts: (): IpvsRequest => ({ cmd: C.IPVS_CMD_GET_CONFIG, dump: false, attrs: [] }),
  setTimeouts: (t: IpvsTimeouts, op = 'ipvs set timeouts'): IpvsRequest => {
    checkU32(t.tcp, 'tcp timeout', op);
    checkU32(t.tcpFin, 'tcpfin timeout', op);
    checkU32(t.udp, 'udp timeout', op);
    return {
      cmd: C.IPVS_CMD_SET_CONFIG,
      dump: false,
      attrs: [attr(C.IPVS_CMD_ATTR_TIMEOUT_TCP, u32(t.tcp)), attr(C.IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, u32(t.tcpFin)), attr(C.IPVS_CMD_ATTR_TIMEOUT_UDP, u32(t.udp))],
    };
  },
  flush: (): IpvsRequest => ({ cmd: C.IPVS_CMD_FLUSH, dump: false, attrs: [] }),
} as const;

// ---- decoding ------------------------------------------------------------------

function familyOf(af: number | undefined, what: string): Family {
  if (af === C.AF_INET) return 4;
  if (af === C.AF_INET6) return 6;
  throw new RangeError(`${what}: address family ${af}`);
}

function addrOf(b: Buffer | undefined, family: Family, what: string): IPAddr {
  const len = family === 4 ? 4 : 16;
  if (!b || b.length < len) throw new RangeError(`${what}: address of ${b?.length ?? 0} bytes`);
  return IPAddr.fromBytes(b.subarray(0, len));
}

const portOf = (b: Buffer | undefined): number => (b && b.length >= 2 ? b.readUInt16BE(0) : 0);

function maskBits(family: Family, b: Buffer | undefined): number {
  if (!b || b.length < 4) return family === 4 ? 32 : 128;
  if (family === 6) return readU32(b);
  // Leading ones of the mask (a non-contiguous mask counts up to its first zero).
  let v = b.readUInt32BE(0);
  let n = 0;
  while (n < 32 && v & 0x80000000) {
    n++;
    v = (v << 1) >>> 0;
  }
  return n;
}

/** A service nest as the kernel dumps it; undefined for a firewall-mark service. */
export function parseService(a: AttrMap): IpvsService | undefined {
  const what = 'IPVS service';
  if (a.has(C.IPVS_SVC_ATTR_FWMARK) && !a.has(C.IPVS_SVC_ATTR_ADDR)) return undefined;
  const family = familyOf(a.u16(C.IPVS_SVC_ATTR_AF), what);
  const proto = a.u16(C.IPVS_SVC_ATTR_PROTOCOL) ?? 0;
  const protocol = PROTO_NAME.get(proto);
  if (!protocol) return undefined;
  const flagsBuf = a.get(C.IPVS_SVC_ATTR_FLAGS);
  return {
    family,
    address: addrOf(a.get(C.IPVS_SVC_ATTR_ADDR), family, what),
    protocol,
    port: portOf(a.get(C.IPVS_SVC_ATTR_PORT)),
    scheduler: a.str(C.IPVS_SVC_ATTR_SCHED_NAME) ?? '',
    flags: (flagsBuf && flagsBuf.length >= 4 ? readU32(flagsBuf) : 0) & ~IPVS_SVC_F_HASHED,
    timeout: a.u32(C.IPVS_SVC_ATTR_TIMEOUT) ?? 0,
    netmaskBits: maskBits(family, a.get(C.IPVS_SVC_ATTR_NETMASK)),
  };
}

/** A destination nest as the kernel dumps it (`serviceFamily` when it names no family of its own). */
export function parseDestination(a: AttrMap, serviceFamily: Family): IpvsDestinationState {
  const what = 'IPVS destination';
  const af = a.u16(C.IPVS_DEST_ATTR_ADDR_FAMILY);
  const family = af === undefined || af === 0 ? serviceFamily : familyOf(af, what);
  const fwd = (a.u32(C.IPVS_DEST_ATTR_FWD_METHOD) ?? 0) & C.IP_VS_CONN_F_FWD_MASK;
  return {
    address: addrOf(a.get(C.IPVS_DEST_ATTR_ADDR), family, what),
    port: portOf(a.get(C.IPVS_DEST_ATTR_PORT)),
    weight: a.u32(C.IPVS_DEST_ATTR_WEIGHT) ?? 0,
    forward: FWD_NAME.get(fwd) ?? 'masq',
    upperThreshold: a.u32(C.IPVS_DEST_ATTR_U_THRESH) ?? 0,
    lowerThreshold: a.u32(C.IPVS_DEST_ATTR_L_THRESH) ?? 0,
    family,
    activeConns: a.u32(C.IPVS_DEST_ATTR_ACTIVE_CONNS) ?? 0,
    inactiveConns: a.u32(C.IPVS_DEST_ATTR_INACT_CONNS) ?? 0,
    persistentConns: a.u32(C.IPVS_DEST_ATTR_PERSIST_CONNS) ?? 0,
  };
}

export function parseInfo(m: GenlMsg): IpvsInfo {
  const v = m.attrs.u32(C.IPVS_INFO_ATTR_VERSION) ?? 0;
  return { version: `${(v >> 16) & 0xff}.${(v >> 8) & 0xff}.${v & 0xff}`, connTableSize: m.attrs.u32(C.IPVS_INFO_ATTR_CONN_TAB_SIZE) ?? 0 };
}

export function parseTimeouts(m: GenlMsg): IpvsTimeouts {
  const a = m.attrs;
  return { tcp: a.u32(C.IPVS_CMD_ATTR_TIMEOUT_TCP) ?? 0, tcpFin: a.u32(C.IPVS_CMD_ATTR_TIMEOUT_TCP_FIN) ?? 0, udp: a.u32(C.IPVS_CMD_ATTR_TIMEOUT_UDP) ?? 0 };
}

// ---- the handle ------------------------------------------------------------------

/** What an errno means for each kind of request (the kernel's words are a process's). */
function explain(errno: number | undefined, kind: 'service' | 'dest' | 'new-service' | 'other', scheduler?: string): string | undefined {
  switch (errno) {
    case E.ESRCH:
      return 'no such service';
    case E.EEXIST:
      return kind === 'dest' ? 'destination exists' : 'service exists';
    case E.ENOENT:
      return kind === 'dest' ? 'no such destination' : scheduler !== undefined ? `scheduler "${scheduler}" not found (no kernel module ip_vs_${scheduler})` : undefined;
    case E.ERANGE:
      return kind === 'dest' ? 'weight or thresholds out of range' : undefined;
    default:
      return undefined;
  }
}

export interface IpvsOpenOptions extends GenlOpenOptions {}

/** IpvsHandle on one generic netlink socket; see openIpvs. */
export class Ipvs implements IpvsHandle {
  readonly #genl: GenlConn;

  constructor(genl: GenlConn) {
    this.#genl = genl;
  }

  /** Requests sent so far (dumps count one). */
  get requests(): number {
    return this.#genl.requests;
  }

  async #send(req: IpvsRequest, op: string, kind: Parameters<typeof explain>[1], scheduler?: string): Promise<GenlMsg[]> {
    try {
      return req.dump ? await this.#genl.dump(req.cmd, req.attrs, op) : await this.#genl.request(req.cmd, req.attrs, op);
    } catch (err) {
      const errno = err instanceof ErrnoError ? err.errno : undefined;
      const why = explain(errno, kind, scheduler);
      if (errno !== undefined && why) throw new ErrnoError(op, errno, why);
      throw err;
    }
  }

  async info(): Promise<IpvsInfo> {
    const [m] = await this.#send(ipvsRequests.info(), 'ipvs get info', 'other');
    if (!m) throw new NetError('IPVS_BAD_REPLY', 'ipvs get info: no answer');
    return parseInfo(m);
  }

  async services(): Promise<IpvsService[]> {
    const msgs = await this.#send(ipvsRequests.services(), 'ipvs list services', 'other');
    const out: IpvsService[] = [];
    for (const m of msgs) {
      const a = m.attrs.nested(C.IPVS_CMD_ATTR_SERVICE);
      const s = a && parseService(a);
      if (s) out.push(s);
    }
    return out;
  }

  async getService(key: IpvsServiceKey): Promise<IpvsService | undefined> {
    const op = `ipvs get service ${ipvsServiceString(key)}`;
    let msgs: GenlMsg[];
    try {
      msgs = await this.#send(ipvsRequests.getService(key, op), op, 'service');
    } catch (err) {
      if (errnoOf(err) === E.ESRCH) return undefined;
      throw err;
    }
    const a = msgs[0]?.attrs.nested(C.IPVS_CMD_ATTR_SERVICE);
    return a && parseService(a);
  }

  async addService(s: IpvsService): Promise<void> {
    const op = `ipvs add service ${ipvsServiceString(s)}`;
    await this.#send(ipvsRequests.addService(s, op), op, 'new-service', s.scheduler);
  }

  async updateService(s: IpvsService): Promise<void> {
    const op = `ipvs edit service ${ipvsServiceString(s)}`;
    await this.#send(ipvsRequests.updateService(s, op), op, 'service', s.scheduler);
  }

  async deleteService(key: IpvsServiceKey): Promise<void> {
    const op = `ipvs delete service ${ipvsServiceString(key)}`;
    await this.#send(ipvsRequests.deleteService(key, op), op, 'service');
  }

  async destinations(key: IpvsServiceKey): Promise<IpvsDestinationState[]> {
    const op = `ipvs list destinations of ${ipvsServiceString(key)}`;
    const msgs = await this.#send(ipvsRequests.destinations(key, op), op, 'service');
    const out: IpvsDestinationState[] = [];
    for (const m of msgs) {
      const a = m.attrs.nested(C.IPVS_CMD_ATTR_DEST);
      if (a) out.push(parseDestination(a, key.family));
    }
    return out;
  }

  async addDestination(key: IpvsServiceKey, d: IpvsDestination): Promise<void> {
    const op = `ipvs add destination ${ipvsHostPort(d.address, d.port)} to ${ipvsServiceString(key)}`;
    await this.#send(ipvsRequests.addDestination(key, d, op), op, 'dest');
  }

  async updateDestination(key: IpvsServiceKey, d: IpvsDestination): Promise<void> {
    const op = `ipvs edit destination ${ipvsHostPort(d.address, d.port)} of ${ipvsServiceString(key)}`;
    await this.#send(ipvsRequests.updateDestination(key, d, op), op, 'dest');
  }

  async deleteDestination(key: IpvsServiceKey, d: IpvsDestinationKey): Promise<void> {
    const op = `ipvs delete destination ${ipvsHostPort(d.address, d.port)} of ${ipvsServiceString(key)}`;
    await this.#send(ipvsRequests.deleteDestination(key, d, op), op, 'dest');
  }

  async timeouts(): Promise<IpvsTimeouts> {
    const [m] = await this.#send(ipvsRequests.timeouts(), 'ipvs get timeouts', 'other');
    if (!m) throw new NetError('IPVS_BAD_REPLY', 'ipvs get timeouts: no answer');
    return parseTimeouts(m);
  }

  async setTimeouts(t: IpvsTimeouts): Promise<void> {
    const op = 'ipvs set timeouts';
    await this.#send(ipvsRequests.setTimeouts(t, op), op, 'other');
  }

  async flush(): Promise<void> {
    await this.#send(ipvsRequests.flush(), 'ipvs flush', 'other');
  }

  close(): void {
    this.#genl.close();
  }
}

/**
 * Opens the IPVS table of a network namespace (`netns`: its path; default
 * the caller's). Fails with NoIpvsError (code 'ENOIPVS') where the kernel has
 * no IPVS.
 */
export async function openIpvs(opts: IpvsOpenOptions = {}): Promise<Ipvs> {
  try {
    return new Ipvs(await GenlConn.open(C.IPVS_GENL_NAME, opts));
  } catch (err) {
    if (err instanceof GenlFamilyNotFoundError) throw new NoIpvsError(err);
    throw err;
  }
}
