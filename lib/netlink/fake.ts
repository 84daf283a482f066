// FakeHandle: the NetlinkHandle of an in-memory network namespace, for unit
// tests of everything that programs links, addresses, routes, neighbours and
// FDB entries. It keeps the kernel's rules where callers depend on them and
// answers with the kernel's errnos (checked against the real kernel in
// test/netns/netlink.test.ts):
//   - ifindex allocation per namespace (lo is 1), EEXIST for a duplicate link
//     name, address or route on add, replace semantics on replace;
//   - ENODEV for a missing link (LinkNotFoundError on lookups),
//     EADDRNOTAVAIL / ESRCH / ENOENT for deleting a missing address / route /
//     neighbour, ENETUNREACH for an unreachable gateway, ENETDOWN for an IPv4
//     route on a down device, EINVAL for a route prefix with host bits;
//   - deleting a link removes its addresses, routes and neighbours and its
//     veth peer (in whichever namespace the peer is); enslaving, up/down,
//     promisc, MTU, MAC, names, moves between namespaces;
//   - connected routes (proto kernel, scope link) for the addresses of an up
//     link; IPv4 routes through a link go when it goes down.
// Not modelled: the local table, IPv6 link-local autoconfiguration, DAD.
//
// Namespaces that share veth pairs belong to one FakeNetworks; `new
// FakeHandle()` makes a namespace of its own. The handles of a namespace record its calls
// (`calls`) and can fail the Nth call of a method with an errno (`failOn`);
// reopen() gives another handle on the same namespace, as a plugin that
// opens and closes its own handles needs.
import { constants } from 'node:os';
import { ErrnoError } from '../errors.ts';
import { IPAddr, IPPrefix, type Family } from '../ip/index.ts';
import type { Addr, AddrFilter, AddrSpec } from './addr.ts';
import * as C from './constants.ts';
import type { NetlinkHandle, NetlinkObject, Subscription } from './handle.ts';
import { LinkNotFoundError, type BridgeInfo, type BridgePortInfo, type BridgeVlanOpts, type Link, type LinkSpec } from './link.ts';
import type { Neigh, NeighFilter, NeighSpec } from './neigh.ts';
import { defaultRouteScope, routeMatches, type Route, type RouteFilter } from './route.ts';

const E = constants.errno;

/** The methods of a handle (what calls and failOn name). */
export type FakeMethod = Exclude<keyof NetlinkHandle, symbol | 'nsFd'>;

/** One recorded call: the method name and its arguments. */
export interface FakeCall {
  method: string;
  args: unknown[];
}

interface Injection {
  method: string;
  /** 1-based: fail the nth call of `method` counted from when failOn was called. */
  nth: number;
  errno: number;
  seen: number;
}

interface FakeLink {
  link: Link;
  /** The other end of a veth. */
  peer?: { ns: FakeHandle; index: number } | undefined;
  vlans: Set<number>;
}

/** A set of namespaces whose handles can reach each other by nsFd (veth peers, link moves). */
export class FakeNetworks {
  readonly #byFd = new Map<number, FakeHandle>();
  // Far above real descriptors, so a fake nsFd is never mistaken for one.
  #nextFd = 1_000_000;

  /** A new namespace (with lo) and its handle. */
  namespace(): FakeHandle {
    return new FakeHandle(this);
  }

  /** @internal */
  register(h: FakeHandle): number {
    const fd = this.#nextFd++;
    this.#byFd.set(fd, h);
    return fd;
  }

  /** @internal */
  byFd(fd: number): FakeHandle | undefined {
    return this.#byFd.get(fd);
  }
}

const fail = (op: string, errno: number, detail?: string): ErrnoError => new ErrnoError(op, errno, detail);

function randomMac(): string {
  const b = [0x0a, ...Array.from({ length: 5 }, () => Math.floor(Math.random() * 256))];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

const sameAddr = (a: IPAddr | undefined, b: IPAddr | undefined): boolean => (a === undefined ? b === undefined : a.equals(b));

/** How the kernel identifies an address on a link: IPv4 by address and length, IPv6 by address. */
const sameAddrKey = (a: Addr, index: number, p: IPPrefix): boolean =>
  a.index === index && a.address.addr.equals(p.addr) && (p.family === 6 || a.address.length === p.length);

/** How the kernel identifies a route: table, destination and metric. */
const sameRouteKey = (a: Route, b: Route): boolean =>
  a.family === b.family && (a.table ?? C.RT_TABLE_MAIN) === (b.table ?? C.RT_TABLE_MAIN) && a.dst.equals(b.dst) && (a.priority ?? 0) === (b.priority ?? 0);

/** The state of one namespace, shared by every handle opened on it. */
class NamespaceState {
  readonly links = new Map<number, FakeLink>();
  addrs: Addr[] = [];
  routes: Route[] = [];
  neighs: Neigh[] = [];
  readonly sysctls = new Map<string, string>([
    ['net/ipv4/ip_forward', '0'],
    ['net/ipv6/conf/all/forwarding', '0'],
  ]);
  readonly subs = new Set<{ groups: readonly number[]; cb: (type: number, obj: NetlinkObject) => void }>();
  readonly injections: Injection[] = [];
  calls: FakeCall[] = [];
  nextIndex = 1;
  constructor(readonly nsFd: number) {}
}

export class FakeHandle implements NetlinkHandle {
  readonly networks: FakeNetworks;
  readonly #s: NamespaceState;
  #closed = false;

  constructor(networks: FakeNetworks = new FakeNetworks(), state?: NamespaceState) {
    this.networks = networks;
    if (state) {
      this.#s = state;
      return;
    }
    this.#s = new NamespaceState(networks.register(this));
    this.#insertLink({ name: 'lo', kind: 'dummy', mtu: 65536 }, undefined).link.flags |= C.IFF_LOOPBACK;
  }

  get nsFd(): number {
    return this.#s.nsFd;
  }

  /** Another handle on the same namespace (what a plugin opens and closes by itself). */
  reopen(): FakeHandle {
    return new FakeHandle(this.networks, this.#s);
  }

  /** Every call on any handle of this namespace, in order (see take()). */
  get calls(): FakeCall[] {
    return this.#s.calls;
  }

  // ---- test controls ------------------------------------------------------

  /** Makes the nth call (1-based, counted from now) of `method` fail with `errno`. */
  failOn(method: FakeMethod, errno: number, nth = 1): void {
    this.#s.injections.push({ method, nth, errno, seen: 0 });
  }

  /** The calls so far, clearing the record. */
  take(): FakeCall[] {
    const c = this.#s.calls;
    this.#s.calls = [];
    return c;
  }

  /** The method names of the calls so far, clearing the record. */
  takeNames(): string[] {
    return this.take().map((c) => c.method);
  }

  // ---- NetlinkHandle: links ------------------------------------------------

  async linkList(): Promise<Link[]> {
    this.#enter('linkList', []);
    return [...this.#s.links.values()].map((l) => this.#view(l));
  }

  async linkByName(name: string): Promise<Link> {
    this.#enter('linkByName', [name]);
    const l = this.#byName(name);
    if (!l) throw new LinkNotFoundError(name);
    return this.#view(l);
  }

  async linkByIndex(index: number): Promise<Link> {
    this.#enter('linkByIndex', [index]);
    const l = this.#s.links.get(index);
    if (!l) throw new LinkNotFoundError(`#${index}`);
    return this.#view(l);
  }

  async linkFind(name: string): Promise<Link | undefined> {
    this.#enter('linkFind', [name]);
    const l = this.#byName(name);
    return l && this.#view(l);
  }

  async linkAdd(spec: LinkSpec): Promise<void> {
    const op = `link add ${spec.name}`;
    this.#enter('linkAdd', [spec], op);
    const ns = spec.netnsFd === undefined ? this : this.#ns(spec.netnsFd, op);
    if (ns.#byName(spec.name)) throw fail(op, E.EEXIST);
    if (spec.master !== undefined) ns.#masterOf(spec.master, op);
    let peerNs: FakeHandle | undefined;
    if (spec.kind === 'veth') {
      if (!spec.veth) throw fail(op, E.EINVAL, 'veth without a peer');
      peerNs = spec.veth.peerNetnsFd === undefined ? ns : this.#ns(spec.veth.peerNetnsFd, op);
      if (peerNs.#byName(spec.veth.peerName) || (peerNs === ns && spec.veth.peerName === spec.name)) throw fail(op, E.EEXIST);
    }
    const l = ns.#insertLink(spec, spec.master);
    if (spec.up) l.link.flags |= C.IFF_UP;
    if (peerNs && spec.veth) {
      const v = spec.veth;
      const mtu = v.peerMtu ?? spec.mtu;
      const p = peerNs.#insertLink({ name: v.peerName, kind: 'veth', ...(mtu !== undefined ? { mtu } : {}), ...(v.peerMac ? { mac: v.peerMac } : {}) }, undefined);
      l.peer = { ns: peerNs, index: p.link.index };
      p.peer = { ns, index: l.link.index };
      peerNs.#notify(C.RTM_NEWLINK, peerNs.#view(p));
    }
    ns.#notify(C.RTM_NEWLINK, ns.#view(l));
  }

  async linkDel(index: number): Promise<void> {
    const op = `link del #${index}`;
    this.#enter('linkDel', [index], op);
    const l = this.#link(index, op);
    if (l.link.flags & C.IFF_LOOPBACK) throw fail(op, E.EOPNOTSUPP);
    const peer = l.peer;
    this.#removeLink(index);
    if (peer) peer.ns.#removeLink(peer.index);
  }

  linkSetUp(index: number): Promise<void> {
    return this.#linkSet('linkSetUp', 'link set up', index, [], (l) => {
      l.link.flags |= C.IFF_UP;
    });
  }

  linkSetDown(index: number): Promise<void> {
    return this.#linkSet('linkSetDown', 'link set down', index, [], (l) => {
      l.link.flags &= ~C.IFF_UP;
      // IPv4 drops the routes through a link that goes down.
      this.#s.routes = this.#s.routes.filter((r) => !(r.family === 4 && r.oif === index));
    });
  }

  linkSetPromisc(index: number, on: boolean): Promise<void> {
    return this.#linkSet('linkSetPromisc', 'link set promisc', index, [on], (l) => {
      l.link.flags = on ? l.link.flags | C.IFF_PROMISC : l.link.flags & ~C.IFF_PROMISC;
      l.link.promiscuity = on ? 1 : 0;
    });
  }

  linkSetMtu(index: number, mtu: number): Promise<void> {
    return this.#linkSet('linkSetMtu', 'link set mtu', index, [mtu], (l, op) => {
      // A dummy has no MTU limits; Ethernet-like devices take 68..65535.
      if (l.link.kind !== 'dummy' && (mtu < 68 || mtu > 65535)) throw fail(op, E.EINVAL);
      l.link.mtu = mtu;
    });
  }

  linkSetMac(index: number, mac: string): Promise<void> {
    return this.#linkSet('linkSetMac', 'link set address', index, [mac], (l) => {
      l.link.mac = mac.toLowerCase();
    });
  }

  linkSetMaster(index: number, master: number): Promise<void> {
    return this.#linkSet('linkSetMaster', 'link set master', index, [master], (l, op) => {
      if (master === 0) {
        l.link.master = undefined;
        l.link.slaveKind = undefined;
        l.link.bridgePort = undefined;
        return;
      }
      this.#masterOf(master, op);
      this.#enslave(l, master);
    });
  }

  linkSetName(index: number, name: string): Promise<void> {
    return this.#linkSet('linkSetName', 'link set name', index, [name], (l, op) => {
      const other = this.#byName(name);
      if (other && other !== l) throw fail(op, E.EEXIST);
      if (l.link.up) throw fail(op, E.EBUSY);
      l.link.name = name;
    });
  }

  linkSetNsFd(index: number, nsFd: number): Promise<void> {
    return this.#linkSet('linkSetNsFd', 'link set netns', index, [nsFd], (l, op) => {
      const to = this.#ns(nsFd, op);
      if (to === this) return;
      if (to.#byName(l.link.name)) throw fail(op, E.EEXIST);
      this.#removeLink(index, { keepPeer: true });
      // The ifindex moves along unless the target namespace uses it.
      const newIndex = to.#s.links.has(index) ? to.#s.nextIndex++ : index;
      to.#s.nextIndex = Math.max(to.#s.nextIndex, newIndex + 1);
      l.link = { ...l.link, index: newIndex, flags: l.link.flags & ~C.IFF_UP, master: undefined, slaveKind: undefined, bridgePort: undefined };
      to.#s.links.set(newIndex, l);
      if (l.peer) {
        const peer = l.peer.ns.#s.links.get(l.peer.index);
        if (peer) peer.peer = { ns: to, index: newIndex };
      }
      to.#notify(C.RTM_NEWLINK, to.#view(l));
    });
  }

  linkSetBridgePort(index: number, p: BridgePortInfo): Promise<void> {
    return this.#linkSet('linkSetBridgePort', 'link set bridge_slave', index, [p], (l, op) => {
      if (l.link.slaveKind !== 'bridge' || !l.link.bridgePort) throw fail(op, E.EOPNOTSUPP);
      Object.assign(l.link.bridgePort, p);
    });
  }

  linkSetBridge(index: number, b: BridgeInfo): Promise<void> {
    return this.#linkSet('linkSetBridge', 'link set bridge', index, [b], (l, op) => {
      if (l.link.kind !== 'bridge' || !l.link.bridge) throw fail(op, E.EOPNOTSUPP);
      Object.assign(l.link.bridge, b);
    });
  }

  async bridgeVlanAdd(index: number, vid: number, opts: BridgeVlanOpts = {}): Promise<void> {
    const op = `bridge vlan add vid ${vid} #${index}`;
    this.#enter('bridgeVlanAdd', [index, vid, opts], op);
    const l = this.#link(index, op);
    for (let v = vid; v <= (opts.toVid ?? vid); v++) l.vlans.add(v);
  }

  async bridgeVlanDel(index: number, vid: number, opts: { self?: boolean; toVid?: number } = {}): Promise<void> {
    const op = `bridge vlan del vid ${vid} #${index}`;
    this.#enter('bridgeVlanDel', [index, vid, opts], op);
    const l = this.#link(index, op);
    if (!l.vlans.has(vid)) throw fail(op, E.ENOENT);
    for (let v = vid; v <= (opts.toVid ?? vid); v++) l.vlans.delete(v);
  }

  /** The VLANs configured on a bridge port (`bridge vlan show dev X`); a test inspection. */
  vlansOf(index: number): number[] {
    return [...(this.#s.links.get(index)?.vlans ?? [])].sort((a, b) => a - b);
  }

  // ---- NetlinkHandle: addresses ---------------------------------------------

  async addrList(filter: AddrFilter = {}): Promise<Addr[]> {
    this.#enter('addrList', [filter]);
    return this.#s.addrs.filter((a) => (filter.index === undefined || a.index === filter.index) && (filter.family === undefined || a.family === filter.family)).map((a) => ({ ...a }));
  }

  async addrAdd(index: number, spec: AddrSpec): Promise<void> {
    const op = `addr add ${spec.address}`;
    this.#enter('addrAdd', [index, spec], op);
    this.#link(index, op);
    if (this.#s.addrs.some((a) => sameAddrKey(a, index, spec.address))) throw fail(op, E.EEXIST);
    this.#putAddr(index, spec);
  }

  async addrReplace(index: number, spec: AddrSpec): Promise<void> {
    const op = `addr replace ${spec.address}`;
    this.#enter('addrReplace', [index, spec], op);
    this.#link(index, op);
    this.#s.addrs = this.#s.addrs.filter((a) => !sameAddrKey(a, index, spec.address));
    this.#putAddr(index, spec);
  }

  async addrDel(index: number, address: IPPrefix): Promise<void> {
    const op = `addr del ${address}`;
    this.#enter('addrDel', [index, address], op);
    this.#link(index, op);
    const i = this.#s.addrs.findIndex((a) => sameAddrKey(a, index, address));
    if (i < 0) throw fail(op, E.EADDRNOTAVAIL);
    const [gone] = this.#s.addrs.splice(i, 1);
    this.#notify(C.RTM_DELADDR, gone!);
  }

  // ---- NetlinkHandle: routes ------------------------------------------------

  async routeList(filter: RouteFilter = {}): Promise<Route[]> {
    this.#enter('routeList', [filter]);
    return [...this.#connectedRoutes(), ...this.#s.routes].filter((r) => routeMatches(r, filter)).map((r) => ({ ...r }));
  }

  async routeAdd(r: Route): Promise<void> {
    const op = `route add ${r.dst}`;
    this.#enter('routeAdd', [r], op);
    const route = this.#checkRoute(r, op);
    if (this.#allRoutes().some((x) => sameRouteKey(x, route))) throw fail(op, E.EEXIST);
    this.#s.routes.push(route);
    this.#notify(C.RTM_NEWROUTE, route);
  }

  async routeReplace(r: Route): Promise<void> {
    const op = `route replace ${r.dst}`;
    this.#enter('routeReplace', [r], op);
    const route = this.#checkRoute(r, op);
    this.#s.routes = this.#s.routes.filter((x) => !sameRouteKey(x, route));
    this.#s.routes.push(route);
    this.#notify(C.RTM_NEWROUTE, route);
  }

  async routeAppend(r: Route): Promise<void> {
    const op = `route append ${r.dst}`;
    this.#enter('routeAppend', [r], op);
    const route = this.#checkRoute(r, op);
    this.#s.routes.push(route);
    this.#notify(C.RTM_NEWROUTE, route);
  }

  async routeDel(r: Route): Promise<void> {
    const op = `route del ${r.dst}`;
    this.#enter('routeDel', [r], op);
    // Like the kernel: the first route with this table/prefix whose given attributes match.
    const table = r.table ?? C.RT_TABLE_MAIN;
    const i = this.#s.routes.findIndex(
      (x) =>
        x.family === r.family &&
        (x.table ?? C.RT_TABLE_MAIN) === table &&
        x.dst.equals(r.dst) &&
        (r.oif === undefined || x.oif === r.oif) &&
        (r.gw === undefined || sameAddr(x.gw, r.gw)) &&
        (r.priority === undefined || (x.priority ?? 0) === r.priority) &&
        (r.protocol === undefined || r.protocol === C.RTPROT_UNSPEC || x.protocol === r.protocol),
    );
    if (i < 0) throw fail(op, E.ESRCH);
    const [gone] = this.#s.routes.splice(i, 1);
    this.#notify(C.RTM_DELROUTE, gone!);
  }

  async routeGet(dst: IPAddr): Promise<Route> {
    const op = `route get ${dst}`;
    this.#enter('routeGet', [dst], op);
    const best = this.#allRoutes()
      .filter((r) => (r.table ?? C.RT_TABLE_MAIN) === C.RT_TABLE_MAIN && r.dst.contains(dst) && (r.type ?? C.RTN_UNICAST) === C.RTN_UNICAST)
      .sort((a, b) => b.dst.length - a.dst.length || (a.priority ?? 0) - (b.priority ?? 0))[0];
    if (!best) throw fail(op, E.ENETUNREACH);
    const out: Route = { family: dst.family, dst: IPPrefix.host(dst), table: C.RT_TABLE_MAIN, protocol: best.protocol ?? C.RTPROT_BOOT, scope: C.RT_SCOPE_UNIVERSE, type: C.RTN_UNICAST };
    if (best.gw) out.gw = best.gw;
    if (best.oif !== undefined) {
      out.oif = best.oif;
      const src = best.prefsrc ?? this.#s.addrs.find((a) => a.index === best.oif && a.family === dst.family)?.address.addr;
      if (src) out.prefsrc = src;
    }
    return out;
  }

  // ---- NetlinkHandle: neighbours and FDB ------------------------------------

  async neighList(filter: NeighFilter = {}): Promise<Neigh[]> {
    this.#enter('neighList', [filter]);
    return this.#s.neighs.filter((n) => (filter.index === undefined || n.index === filter.index) && (filter.family === undefined || n.family === filter.family)).map((n) => ({ ...n }));
  }

  async neighSet(n: NeighSpec): Promise<void> {
    const op = `neigh replace ${n.ip ?? n.mac}`;
    this.#enter('neighSet', [n], op);
    const entry = this.#checkNeigh(n, op);
    // Replace: a neighbour is keyed by its IP, an FDB entry by its MAC (the destination is replaced).
    this.#s.neighs = this.#s.neighs.filter((x) => !(x.index === entry.index && x.family === entry.family && (n.fdb ? x.mac === entry.mac && x.vlan === entry.vlan : sameAddr(x.ip, entry.ip))));
    this.#s.neighs.push(entry);
    this.#notify(C.RTM_NEWNEIGH, entry);
  }

  async neighAppend(n: NeighSpec): Promise<void> {
    const op = `neigh append ${n.ip ?? n.mac}`;
    this.#enter('neighAppend', [n], op);
    const entry = this.#checkNeigh(n, op);
    if (this.#s.neighs.some((x) => x.index === entry.index && x.family === entry.family && x.mac === entry.mac && sameAddr(x.ip, entry.ip))) throw fail(op, E.EEXIST);
    this.#s.neighs.push(entry);
    this.#notify(C.RTM_NEWNEIGH, entry);
  }

  async neighDel(n: NeighSpec): Promise<void> {
    const op = `neigh del ${n.ip ?? n.mac}`;
    this.#enter('neighDel', [n], op);
    this.#link(n.index, op);
    const family: Neigh['family'] = n.fdb ? 'bridge' : (n.ip?.family ?? 4);
    const i = this.#s.neighs.findIndex(
      (x) => x.index === n.index && x.family === family && (n.fdb ? x.mac === n.mac.toLowerCase() && (n.ip === undefined || sameAddr(x.ip, n.ip)) : sameAddr(x.ip, n.ip)),
    );
    if (i < 0) throw fail(op, E.ENOENT);
    const [gone] = this.#s.neighs.splice(i, 1);
    this.#notify(C.RTM_DELNEIGH, gone!);
  }

  // ---- NetlinkHandle: the rest ---------------------------------------------

  subscribe(groups: readonly number[], cb: (type: number, obj: NetlinkObject) => void): Subscription {
    this.#enter('subscribe', [groups]);
    const sub = { groups, cb };
    this.#s.subs.add(sub);
    return { close: () => void this.#s.subs.delete(sub) };
  }

  writeSysctl(key: string, value: string): void {
    const op = `write /proc/sys/${key}`;
    this.#enter('writeSysctl', [key, value], op);
    this.#checkSysctl(key, op);
    this.#s.sysctls.set(key, value);
  }

  readSysctl(key: string): string {
    const op = `read /proc/sys/${key}`;
    this.#enter('readSysctl', [key], op);
    this.#checkSysctl(key, op);
    const v = this.#s.sysctls.get(key);
    if (v === undefined) throw fail(op, E.ENOENT);
    return v;
  }

  close(): void {
    this.#closed = true;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  // ---- internals --------------------------------------------------------------

  #enter(method: FakeMethod, args: unknown[], op: string = method): void {
    if (this.#closed) throw fail(op, E.EBADF);
    this.#s.calls.push({ method, args });
    for (const inj of this.#s.injections) {
      if (inj.method !== method) continue;
      inj.seen++;
      if (inj.seen === inj.nth) {
        this.#s.injections.splice(this.#s.injections.indexOf(inj), 1);
        throw fail(op, inj.errno, 'injected');
      }
    }
  }

  #ns(fd: number, op: string): FakeHandle {
    const ns = this.networks.byFd(fd);
    if (!ns) throw fail(op, E.EBADF);
    return ns;
  }

  #byName(name: string): FakeLink | undefined {
    for (const l of this.#s.links.values()) if (l.link.name === name) return l;
    return undefined;
  }

  #link(index: number, op: string): FakeLink {
    const l = this.#s.links.get(index);
    if (!l) throw fail(op, E.ENODEV);
    return l;
  }

  #masterOf(index: number, op: string): FakeLink {
    const m = this.#s.links.get(index);
    if (!m) throw fail(op, E.ENODEV);
    if (m.link.kind !== 'bridge') throw fail(op, E.EOPNOTSUPP);
    return m;
  }

  #enslave(l: FakeLink, master: number): void {
    l.link.master = master;
    l.link.slaveKind = 'bridge';
    l.link.bridgePort = { hairpin: false, isolated: false, learning: true };
    // A new bridge port carries the default PVID 1, as the kernel gives it.
    l.vlans.add(1);
  }

  #insertLink(spec: Omit<LinkSpec, 'kind'> & { kind: LinkSpec['kind'] }, master: number | undefined): FakeLink {
    const index = this.#s.nextIndex++;
    const mtu = spec.mtu ?? (spec.kind === 'vxlan' ? 1450 : 1500);
    const link: Link = {
      index,
      name: spec.name,
      kind: spec.name === 'lo' && index === 1 ? undefined : spec.kind,
      mtu,
      mac: spec.name === 'lo' && index === 1 ? '00:00:00:00:00:00' : (spec.mac ?? randomMac()).toLowerCase(),
      flags: 0,
      up: false,
      operState: 'down',
      master: undefined,
      parentIndex: undefined,
      linkNetnsId: undefined,
      promiscuity: 0,
      txqlen: spec.txqlen ?? 1000,
      vxlan: spec.kind === 'vxlan' && spec.vxlan ? { ...spec.vxlan, port: spec.vxlan.port || 8472, learning: spec.vxlan.learning ?? false, gbp: spec.vxlan.gbp ?? false, l2miss: false, l3miss: false } : undefined,
      bridge: spec.kind === 'bridge' ? { vlanFiltering: spec.bridge?.vlanFiltering ?? false, stpState: spec.bridge?.stpState ?? 0 } : undefined,
      slaveKind: undefined,
      bridgePort: undefined,
    };
    const l: FakeLink = { link, vlans: new Set() };
    if (master !== undefined) this.#enslave(l, master);
    this.#s.links.set(index, l);
    return l;
  }

  /** The link as a dump shows it: derived up/oper state, veth peer index. */
  #view(l: FakeLink): Link {
    const up = (l.link.flags & C.IFF_UP) !== 0;
    let oper: Link['operState'] = up ? 'up' : 'down';
    if (up && l.peer) {
      const peer = l.peer.ns.#s.links.get(l.peer.index);
      oper = peer && peer.link.flags & C.IFF_UP ? 'up' : 'lowerlayerdown';
    } else if (up && (l.link.kind === 'dummy' || l.link.kind === undefined || l.link.kind === 'vxlan')) oper = 'unknown';
    const flags = oper === 'up' || oper === 'unknown' ? l.link.flags | C.IFF_LOWER_UP : l.link.flags & ~C.IFF_LOWER_UP;
    return {
      ...l.link,
      flags,
      up,
      operState: oper,
      parentIndex: l.peer?.index,
      linkNetnsId: l.peer && l.peer.ns !== this ? 0 : undefined,
      ...(l.link.vxlan ? { vxlan: { ...l.link.vxlan } } : {}),
      ...(l.link.bridge ? { bridge: { ...l.link.bridge } } : {}),
      ...(l.link.bridgePort ? { bridgePort: { ...l.link.bridgePort } } : {}),
    };
  }

  #removeLink(index: number, o: { keepPeer?: boolean } = {}): void {
    const l = this.#s.links.get(index);
    if (!l) return;
    this.#s.links.delete(index);
    this.#s.addrs = this.#s.addrs.filter((a) => a.index !== index);
    this.#s.routes = this.#s.routes.filter((r) => r.oif !== index);
    this.#s.neighs = this.#s.neighs.filter((n) => n.index !== index);
    for (const other of this.#s.links.values()) {
      if (other.link.master === index) {
        other.link.master = undefined;
        other.link.slaveKind = undefined;
        other.link.bridgePort = undefined;
      }
    }
    if (!o.keepPeer) l.peer = undefined;
    this.#notify(C.RTM_DELLINK, this.#view(l));
  }

  #linkSet(method: FakeMethod, opName: string, index: number, args: unknown[], change: (l: FakeLink, op: string) => void): Promise<void> {
    const op = `${opName} #${index}`;
    try {
      this.#enter(method, [index, ...args], op);
      const l = this.#link(index, op);
      change(l, op);
      if (this.#s.links.get(index) === l) this.#notify(C.RTM_NEWLINK, this.#view(l));
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #putAddr(index: number, spec: AddrSpec): void {
    const a: Addr = {
      index,
      family: spec.address.family,
      address: spec.address,
      local: spec.local ?? spec.address.addr,
      label: spec.label ?? (spec.address.family === 4 ? this.#s.links.get(index)?.link.name : undefined),
      scope: spec.scope ?? (spec.address.family === 4 && spec.address.addr.isLoopback() ? C.RT_SCOPE_HOST : C.RT_SCOPE_UNIVERSE),
      flags: (spec.noDad ? C.IFA_F_NODAD : 0) | (spec.noPrefixRoute ? C.IFA_F_NOPREFIXROUTE : 0) | C.IFA_F_PERMANENT,
    };
    this.#s.addrs.push(a);
    this.#notify(C.RTM_NEWADDR, a);
  }

  /** The prefix routes of the addresses on up links (what the kernel adds with an address). */
  #connectedRoutes(): Route[] {
    const out: Route[] = [];
    for (const a of this.#s.addrs) {
      const l = this.#s.links.get(a.index);
      if (!l || !(l.link.flags & C.IFF_UP) || a.flags & C.IFA_F_NOPREFIXROUTE || a.address.length === a.address.bits) continue;
      const dst = a.address.masked();
      if (out.some((r) => r.oif === a.index && r.dst.equals(dst))) continue;
      const r: Route = { family: a.family, dst, oif: a.index, table: C.RT_TABLE_MAIN, protocol: C.RTPROT_KERNEL, scope: C.RT_SCOPE_LINK, type: C.RTN_UNICAST, onlink: false };
      if (a.family === 4) r.prefsrc = a.address.addr;
      else r.priority = 256;
      out.push(r);
    }
    return out;
  }

  #allRoutes(): Route[] {
    return [...this.#connectedRoutes(), ...this.#s.routes];
  }

  /** Validates a route as the kernel does and fills in what it derives. */
  #checkRoute(r: Route, op: string): Route {
    if (r.dst.family !== r.family || (r.gw && r.gw.family !== r.family)) throw fail(op, E.EINVAL);
    if (r.dst.hasHostBits()) throw fail(op, E.EINVAL, 'invalid prefix for given prefix length');
    const type = r.type ?? C.RTN_UNICAST;
    if (r.oif !== undefined) {
      const l = this.#link(r.oif, op);
      if (r.family === 4 && type === C.RTN_UNICAST && !(l.link.flags & C.IFF_UP)) throw fail(op, E.ENETDOWN);
    }
    if (type === C.RTN_UNICAST && r.gw && !r.onlink) {
      // The gateway must be reachable through a link route (on `oif` when one is given).
      const reach = this.#allRoutes().some(
        (x) => x.gw === undefined && x.oif !== undefined && (r.oif === undefined || x.oif === r.oif) && x.dst.contains(r.gw!) && (x.type ?? C.RTN_UNICAST) === C.RTN_UNICAST,
      );
      if (!reach) throw fail(op, E.ENETUNREACH);
    }
    if (type === C.RTN_UNICAST && r.oif === undefined && r.gw === undefined) throw fail(op, E.ENODEV);
    const out: Route = {
      ...r,
      table: r.table ?? C.RT_TABLE_MAIN,
      protocol: r.protocol ?? C.RTPROT_BOOT,
      scope: r.scope ?? defaultRouteScope(r),
      type,
      onlink: r.onlink ?? false,
    };
    if (out.oif === undefined && r.gw) {
      const via = this.#allRoutes().find((x) => x.gw === undefined && x.oif !== undefined && x.dst.contains(r.gw!));
      if (via) out.oif = via.oif!;
    }
    if (r.family === 6 && out.priority === undefined) out.priority = 1024;
    return out;
  }

  #checkNeigh(n: NeighSpec, op: string): Neigh {
    const l = this.#link(n.index, op);
    if (!n.fdb && !n.ip) throw fail(op, E.EINVAL);
    if (n.fdb && l.link.kind !== 'vxlan' && l.link.kind !== 'bridge' && l.link.slaveKind !== 'bridge') throw fail(op, E.EOPNOTSUPP);
    const family: Family | 'bridge' = n.fdb ? 'bridge' : n.ip!.family;
    return {
      family,
      index: n.index,
      ip: n.ip,
      mac: n.mac.toLowerCase(),
      state: n.state ?? C.NUD_PERMANENT,
      flags: n.flags ?? (n.fdb ? C.NTF_SELF : 0),
      master: n.fdb ? l.link.master : undefined,
      vlan: n.vlan,
    };
  }

  /** Per-interface sysctls exist only while the interface does. */
  #checkSysctl(key: string, op: string): void {
    const m = /^net\/ipv[46]\/(?:conf|neigh)\/([^/]+)\//.exec(key);
    if (m && !['all', 'default'].includes(m[1]!) && !this.#byName(m[1]!)) throw fail(op, E.ENOENT);
  }

  #notify(type: number, obj: NetlinkObject): void {
    const group = groupOf(type, obj);
    for (const s of this.#s.subs) {
      if (!s.groups.includes(group)) continue;
      // The kernel delivers notifications asynchronously, after the request's ACK.
      queueMicrotask(() => {
        if (this.#s.subs.has(s)) s.cb(type, obj);
      });
    }
  }
}

function groupOf(type: number, obj: NetlinkObject): number {
  switch (type) {
    case C.RTM_NEWLINK:
    case C.RTM_DELLINK:
      return C.RTNLGRP_LINK;
    case C.RTM_NEWADDR:
    case C.RTM_DELADDR:
      return (obj as Addr).family === 4 ? C.RTNLGRP_IPV4_IFADDR : C.RTNLGRP_IPV6_IFADDR;
    case C.RTM_NEWROUTE:
    case C.RTM_DELROUTE:
      return (obj as Route).family === 4 ? C.RTNLGRP_IPV4_ROUTE : C.RTNLGRP_IPV6_ROUTE;
    default:
      return C.RTNLGRP_NEIGH;
  }
}
