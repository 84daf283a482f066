// FakeIpvs: the IPVS table of one network namespace in memory, for unit
// tests of whatever programs virtual services (the kube-proxy IPVS proxier).
// It keeps the kernel's rules where callers depend on them and answers with
// the kernel's errnos (net/netfilter/ipvs/ip_vs_ctl.c, checked against a real
// kernel in test/vm/suites/ipvs-netlink.test.ts):
//   - a service is (family, address, protocol, port); adding one that exists
//     is EEXIST; changing, deleting or adding destinations to a missing one
//     is ESRCH; getService of a missing one is undefined (the kernel's ESRCH);
//     listing the destinations of a missing one is an empty list, as the
//     kernel's dump is;
//   - an unknown scheduler is ENOENT (no module ip_vs_<name>; "none" is
//     allowed), a scheduler name of 16 bytes or more EINVAL, an IPv6
//     persistence netmask outside 1..128 EINVAL;
//   - a destination is (address, port) within its service: EEXIST on a second
//     add, ENOENT on changing or deleting a missing one; a negative weight or
//     a lower threshold above the upper one is ERANGE; a destination of the
//     other family is EINVAL unless it is tunnelled;
//   - timeouts default to 900/120/300 s; 0 in a SET leaves one unchanged; a
//     value above INT_MAX/HZ (HZ=250, Debian's) is EINVAL;
//   - flush removes every service with its destinations;
//   - destinations are listed newest first (the kernel adds at the list head).
// The kernel also reports the HASHED flag on every service; the real client
// strips it on reading, so neither shows it. Not modelled: firewall-mark
// services, the destination trash (a deleted destination with connections
// that comes back with its counters), masq to a local address turning into
// 'local', statistics.
//
// Test controls: connection counters are set with setConnections() (what
// graceful termination waits on); `calls` records every mutating request
// in order, failed ones included (each is one netlink message on the real
// handle); `requests` counts all requests, reads included; failOn() fails the
// nth call of a method with an errno.
import { constants } from 'node:os';
import { ErrnoError } from '../errors.ts';
import type { Family, IPAddr } from '../ip/index.ts';
import {
  IPVS_DEFAULT_TIMEOUTS,
  IPVS_SCHEDULERS,
  IPVS_SVC_F_HASHED,
  ipvsHostPort,
  ipvsServiceString,
  type IpvsDestination,
  type IpvsDestinationKey,
  type IpvsDestinationState,
  type IpvsHandle,
  type IpvsInfo,
  type IpvsService,
  type IpvsServiceKey,
  type IpvsTimeouts,
} from './ipvs-types.ts';

const E = constants.errno;

/** The requests that change the table: what `calls` records. */
export type IpvsMutation = 'addService' | 'updateService' | 'deleteService' | 'addDestination' | 'updateDestination' | 'deleteDestination' | 'setTimeouts' | 'flush';
/** Every request a handle makes (what failOn names). */
export type IpvsMethod = IpvsMutation | 'info' | 'services' | 'getService' | 'destinations' | 'timeouts';

export interface FakeIpvsCall {
  readonly method: IpvsMutation;
  /** The service the request is about ("TCP 10.96.0.1:80"), if any. */
  readonly service?: string;
  readonly args: readonly unknown[];
}

export interface IpvsConnections {
  readonly activeConns?: number;
  readonly inactiveConns?: number;
  readonly persistentConns?: number;
}

export interface FakeIpvsOptions {
  /** Scheduler modules the fake kernel has (default: Debian 6.1's). */
  readonly schedulers?: readonly string[];
}

/** The kernel's HZ in Debian's config; timeouts are kept in jiffies (int). */
const HZ = 250;
const MAX_TIMEOUT = Math.floor(0x7fffffff / HZ);
/** IP_VS_SCHEDNAME_MAXLEN, including the NUL. */
const SCHEDNAME_MAXLEN = 16;
const MAX_INT = 0x7fffffff;

interface FakeDest {
  dest: IpvsDestination;
  active: number;
  inactive: number;
  persistent: number;
}

interface FakeService {
  service: IpvsService;
  /** Newest first, as the kernel lists them. */
  dests: FakeDest[];
}

interface Injection {
  method: IpvsMethod;
  nth: number;
  errno: number;
  seen: number;
}

const serviceId = (k: IpvsServiceKey): string => `${k.protocol}|${k.family}|${k.address.toString()}|${k.port}`;
const sameDest = (a: IpvsDestinationKey, b: IpvsDestinationKey): boolean => a.address.equals(b.address) && a.port === b.port;

function copyService(s: IpvsService): IpvsService {
  return Object.freeze({
    family: s.family,
    address: s.address,
    protocol: s.protocol,
    port: s.port,
    scheduler: s.scheduler,
    flags: s.flags & ~IPVS_SVC_F_HASHED,
    timeout: s.timeout,
    netmaskBits: s.netmaskBits,
  });
}

function copyDest(d: IpvsDestination): IpvsDestination {
  return Object.freeze({
    address: d.address,
    port: d.port,
    weight: d.weight,
    forward: d.forward,
    upperThreshold: d.upperThreshold,
    lowerThreshold: d.lowerThreshold,
    family: d.family,
  });
}

export class FakeIpvs implements IpvsHandle {
  /** Mutating requests in order (failed ones included). */
  calls: FakeIpvsCall[] = [];
  /** Every request so far, reads included. */
  requests = 0;
  readonly schedulers: Set<string>;
  #services = new Map<string, FakeService>();
  #timeouts: IpvsTimeouts = IPVS_DEFAULT_TIMEOUTS;
  #injections: Injection[] = [];
  #closed = false;

  constructor(opts: FakeIpvsOptions = {}) {
    this.schedulers = new Set(opts.schedulers ?? IPVS_SCHEDULERS);
  }

  // ---- test controls ----------------------------------------------------------

  /** Makes the nth call (1-based, counted from now) of `method` fail with `errno`. */
  failOn(method: IpvsMethod, errno: number, nth = 1): void {
    this.#injections.push({ method, nth, errno, seen: 0 });
  }

  /** The mutating calls so far, clearing the record. */
  take(): FakeIpvsCall[] {
    const c = this.calls;
    this.calls = [];
    return c;
  }

  /** Sets a destination's connection counters (as traffic would); throws if it does not exist. */
  setConnections(key: IpvsServiceKey, dest: IpvsDestinationKey, conns: IpvsConnections): void {
    const d = this.#dest(this.#service(key, 'setConnections'), dest, 'setConnections');
    if (conns.activeConns !== undefined) d.active = conns.activeConns;
    if (conns.inactiveConns !== undefined) d.inactive = conns.inactiveConns;
    if (conns.persistentConns !== undefined) d.persistent = conns.persistentConns;
  }

  /** The table right now, synchronously: services in insertion order with their destinations. */
  snapshot(): { service: IpvsService; destinations: IpvsDestinationState[] }[] {
    return [...this.#services.values()].map((s) => ({ service: s.service, destinations: s.dests.map(state) }));
  }

  // ---- IpvsHandle ---------------------------------------------------------------

  async info(): Promise<IpvsInfo> {
    this.#enter('info', []);
    return { version: '1.2.1', connTableSize: 4096 };
  }

  async services(): Promise<IpvsService[]> {
    this.#enter('services', []);
    return [...this.#services.values()].map((s) => s.service);
  }

  async getService(key: IpvsServiceKey): Promise<IpvsService | undefined> {
    this.#enter('getService', [key], key);
    checkKey(key, 'ipvs get service');
    return this.#services.get(serviceId(key))?.service;
  }

  async addService(s: IpvsService): Promise<void> {
    const op = `ipvs add service ${ipvsServiceString(s)}`;
    this.#enter('addService', [s], s);
    checkKey(s, op);
    this.#checkFull(s, op);
    if (this.#services.has(serviceId(s))) throw new ErrnoError(op, E.EEXIST);
    this.#checkScheduler(s, op);
    this.#services.set(serviceId(s), { service: copyService(s), dests: [] });
  }

  async updateService(s: IpvsService): Promise<void> {
    const op = `ipvs edit service ${ipvsServiceString(s)}`;
    this.#enter('updateService', [s], s);
    checkKey(s, op);
    this.#checkFull(s, op);
    const svc = this.#service(s, op);
    this.#checkScheduler(s, op);
    svc.service = copyService(s);
  }

  async deleteService(key: IpvsServiceKey): Promise<void> {
    const op = `ipvs delete service ${ipvsServiceString(key)}`;
    this.#enter('deleteService', [key], key);
    checkKey(key, op);
    this.#service(key, op);
    this.#services.delete(serviceId(key));
  }

  async destinations(key: IpvsServiceKey): Promise<IpvsDestinationState[]> {
    this.#enter('destinations', [key]);
    checkKey(key, 'ipvs list destinations');
    return this.#services.get(serviceId(key))?.dests.map(state) ?? [];
  }

  async addDestination(key: IpvsServiceKey, d: IpvsDestination): Promise<void> {
    const op = `ipvs add destination ${ipvsHostPort(d.address, d.port)} to ${ipvsServiceString(key)}`;
    this.#enter('addDestination', [key, d], key);
    const svc = this.#destRequest(key, d, op, true);
    checkDest(d, op);
    if (svc.dests.some((x) => sameDest(x.dest, d))) throw new ErrnoError(op, E.EEXIST);
    svc.dests.unshift({ dest: copyDest(d), active: 0, inactive: 0, persistent: 0 });
  }

  async updateDestination(key: IpvsServiceKey, d: IpvsDestination): Promise<void> {
    const op = `ipvs edit destination ${ipvsHostPort(d.address, d.port)} of ${ipvsServiceString(key)}`;
    this.#enter('updateDestination', [key, d], key);
    const svc = this.#destRequest(key, d, op, true);
    checkDest(d, op);
    this.#dest(svc, d, op).dest = copyDest(d);
  }

  async deleteDestination(key: IpvsServiceKey, d: IpvsDestinationKey): Promise<void> {
    const op = `ipvs delete destination ${ipvsHostPort(d.address, d.port)} of ${ipvsServiceString(key)}`;
    this.#enter('deleteDestination', [key, d], key);
    const svc = this.#destRequest(key, d, op, false);
    const found = this.#dest(svc, d, op);
    svc.dests.splice(svc.dests.indexOf(found), 1);
  }

  async timeouts(): Promise<IpvsTimeouts> {
    this.#enter('timeouts', []);
    return this.#timeouts;
  }

  async setTimeouts(t: IpvsTimeouts): Promise<void> {
    const op = 'ipvs set timeouts';
    this.#enter('setTimeouts', [t]);
    for (const v of [t.tcp, t.tcpFin, t.udp]) {
      if (!Number.isInteger(v) || v < 0 || v > MAX_TIMEOUT) throw new ErrnoError(op, E.EINVAL, `timeout ${v} s out of range 0..${MAX_TIMEOUT}`);
    }
    const cur = this.#timeouts;
    this.#timeouts = Object.freeze({ tcp: t.tcp || cur.tcp, tcpFin: t.tcpFin || cur.tcpFin, udp: t.udp || cur.udp });
  }

  async flush(): Promise<void> {
    this.#enter('flush', []);
    this.#services.clear();
  }

  close(): void {
    this.#closed = true;
  }

  // ---- internals -----------------------------------------------------------------

  #enter(method: IpvsMethod, args: unknown[], service?: IpvsServiceKey): void {
    if (this.#closed) throw new ErrnoError(`ipvs ${method}`, E.EBADF, 'handle is closed');
    this.requests++;
    if (isMutation(method)) this.calls.push(service ? { method, service: ipvsServiceString(service), args } : { method, args });
    for (const inj of this.#injections) {
      if (inj.method !== method || ++inj.seen !== inj.nth) continue;
      this.#injections.splice(this.#injections.indexOf(inj), 1);
      throw new ErrnoError(`ipvs ${method}`, inj.errno, 'injected');
    }
  }

  #service(key: IpvsServiceKey, op: string): FakeService {
    const s = this.#services.get(serviceId(key));
    if (!s) throw new ErrnoError(op, E.ESRCH, 'no such service');
    return s;
  }

  #dest(svc: FakeService, key: IpvsDestinationKey, op: string): FakeDest {
    const d = svc.dests.find((x) => sameDest(x.dest, key));
    if (!d) throw new ErrnoError(op, E.ENOENT, 'no such destination');
    return d;
  }

  /** The kernel's order for destination commands: the service, then the destination's family. */
  #destRequest(key: IpvsServiceKey, d: IpvsDestinationKey & { family?: Family; forward?: string }, op: string, full: boolean): FakeService {
    checkKey(key, op);
    const svc = this.#service(key, op);
    checkPort(d.port, op);
    const family = d.family ?? d.address.family;
    if (family !== d.address.family) throw new ErrnoError(op, E.EINVAL, `IPv${d.address.family} address ${d.address.toString()} given as IPv${family}`);
    if (full && family !== svc.service.family && d.forward !== 'tunnel') {
      throw new ErrnoError(op, E.EINVAL, 'a destination of the other address family needs tunnel forwarding');
    }
    return svc;
  }

  #checkFull(s: IpvsService, op: string): void {
    if (Buffer.byteLength(s.scheduler) >= SCHEDNAME_MAXLEN) throw new ErrnoError(op, E.EINVAL, `scheduler name "${s.scheduler}" too long`);
    if (!Number.isInteger(s.timeout) || s.timeout < 0 || s.timeout > 0xffffffff) throw new ErrnoError(op, E.EINVAL, `persistence timeout ${s.timeout}`);
    if (!Number.isInteger(s.flags) || s.flags < 0 || s.flags > 0xffffffff) throw new ErrnoError(op, E.EINVAL, `flags ${s.flags}`);
    // An IPv4 netmask is a mask on the wire: any prefix length encodes.
    if (s.family === 4 && (!Number.isInteger(s.netmaskBits) || s.netmaskBits < 0 || s.netmaskBits > 32)) {
      throw new ErrnoError(op, E.EINVAL, `persistence netmask /${s.netmaskBits} out of range 0..32`);
    }
  }

  /** ip_vs_add_service / ip_vs_edit_service: the scheduler module ("none" needs none), then the IPv6 prefix length. */
  #checkScheduler(s: IpvsService, op: string): void {
    if (s.scheduler !== 'none' && !this.schedulers.has(s.scheduler)) throw new ErrnoError(op, E.ENOENT, `scheduler module ip_vs_${s.scheduler} not found`);
    if (s.family === 6 && (!Number.isInteger(s.netmaskBits) || s.netmaskBits < 1 || s.netmaskBits > 128)) {
      throw new ErrnoError(op, E.EINVAL, `persistence netmask /${s.netmaskBits} out of range 1..128`);
    }
  }
}

const MUTATIONS: ReadonlySet<string> = new Set<IpvsMutation>(['addService', 'updateService', 'deleteService', 'addDestination', 'updateDestination', 'deleteDestination', 'setTimeouts', 'flush']);
const isMutation = (m: IpvsMethod): m is IpvsMutation => MUTATIONS.has(m);

function state(d: FakeDest): IpvsDestinationState {
  return { ...d.dest, activeConns: d.active, inactiveConns: d.inactive, persistentConns: d.persistent };
}

function checkPort(port: number, op: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new ErrnoError(op, E.EINVAL, `port ${port} out of range`);
}

/** What the wire can carry: the family of the address is the service's. */
function checkKey(key: IpvsServiceKey, op: string): void {
  if (key.address.family !== key.family) throw new ErrnoError(op, E.EINVAL, `IPv${key.address.family} address ${key.address.toString()} in an IPv${key.family} service`);
  checkPort(key.port, op);
  if (key.protocol !== 'tcp' && key.protocol !== 'udp' && key.protocol !== 'sctp') throw new ErrnoError(op, E.EINVAL, `protocol ${String(key.protocol)}`);
}

/** ip_vs_add_dest / ip_vs_edit_dest: weights and thresholds (ERANGE, as the kernel). */
function checkDest(d: IpvsDestination, op: string): void {
  if (!Number.isInteger(d.weight) || d.weight < 0 || d.weight > MAX_INT) throw new ErrnoError(op, E.ERANGE, `weight ${d.weight} out of range 0..${MAX_INT}`);
  for (const t of [d.upperThreshold, d.lowerThreshold]) {
    if (!Number.isInteger(t) || t < 0 || t > 0xffffffff) throw new ErrnoError(op, E.EINVAL, `threshold ${t} out of range`);
  }
  if (d.lowerThreshold > d.upperThreshold) throw new ErrnoError(op, E.ERANGE, `lower threshold ${d.lowerThreshold} above upper threshold ${d.upperThreshold}`);
}

/** For tests: a service with kube-proxy's usual fields (rr, no persistence). */
export function ipvsService(family: Family, address: IPAddr, protocol: IpvsService['protocol'], port: number, extra: Partial<IpvsService> = {}): IpvsService {
  return { family, address, protocol, port, scheduler: 'rr', flags: 0, timeout: 0, netmaskBits: family === 4 ? 32 : 128, ...extra };
}

/** For tests: a masq destination of weight 1, no thresholds. */
export function ipvsDestination(address: IPAddr, port: number, extra: Partial<IpvsDestination> = {}): IpvsDestination {
  return { address, port, weight: 1, forward: 'masq', upperThreshold: 0, lowerThreshold: 0, family: address.family, ...extra };
}
