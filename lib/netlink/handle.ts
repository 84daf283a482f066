// A typed rtnetlink handle bound to one network namespace. The socket is
// opened inside the namespace (setns around a synchronous constructor) and
// stays there; every method is then an ordinary async request on it.
//
// The requests live per object kind, each file with its model types, encoder
// and parser: link.ts (links, bridge VLANs), addr.ts, route.ts, neigh.ts
// (neighbours and FDB). Handle mixes their methods in. A new message type
// (ip rules, say) is one new file, listed in KINDS below and in NetlinkHandle.
// NetlinkHandle is what consumers depend on; fake.ts has the test double.
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openNetns, withNetnsSync } from '../netns/index.ts';
import { AddrMethods, parseAddr, type Addr, type AddrOps } from './addr.ts';
import * as C from './constants.ts';
import { NetlinkConn } from './conn.ts';
import { LinkMethods, parseLink, type Link, type LinkOps } from './link.ts';
import { NeighMethods, parseNeigh, type Neigh, type NeighOps } from './neigh.ts';
import { RouteMethods, parseRoute, type Route, type RouteOps } from './route.ts';
import type { NlMsg } from './wire.ts';

/** An object a notification carries. */
export type NetlinkObject = Link | Addr | Route | Neigh;

/** A multicast subscription; close() ends it. */
export interface Subscription {
  close(): void;
}

/** Everything consumers use of a handle. Handle implements it against the kernel, FakeHandle (fake.ts) in memory. */
export interface NetlinkHandle extends LinkOps, AddrOps, RouteOps, NeighOps {
  /** fd of the namespace the handle lives in (null: the caller's own); what IFLA_NET_NS_FD takes. */
  readonly nsFd: number | null;
  /** Calls `cb` for each new/del message of the joined `groups` (RTNLGRP_*). */
  subscribe(groups: readonly number[], cb: (type: number, obj: NetlinkObject) => void): Subscription;
  /** Writes /proc/sys/<key> as seen from this namespace (`sysctl -w`). */
  writeSysctl(key: string, value: string): void;
  readSysctl(key: string): string;
  close(): void;
  [Symbol.dispose](): void;
}

/** The object kinds: their request methods and their notification parsers. */
const KINDS = [
  { methods: LinkMethods, parse: parseLink, types: [C.RTM_NEWLINK, C.RTM_DELLINK] },
  { methods: AddrMethods, parse: parseAddr, types: [C.RTM_NEWADDR, C.RTM_DELADDR] },
  { methods: RouteMethods, parse: parseRoute, types: [C.RTM_NEWROUTE, C.RTM_DELROUTE] },
  { methods: NeighMethods, parse: parseNeigh, types: [C.RTM_NEWNEIGH, C.RTM_DELNEIGH] },
] as const;

const PARSERS = new Map<number, (m: NlMsg) => NetlinkObject>(KINDS.flatMap((k) => k.types.map((t) => [t, k.parse] as const)));

export interface OpenOptions {
  /** Path of the namespace (/var/run/netns/x, /proc/<pid>/ns/net); default: current. */
  netns?: string;
  /** Multicast groups to join (RTNLGRP_*), for event subscriptions. */
  groups?: readonly number[];
}

// Declaration merging gives the class the methods the KINDS loop below copies in.
export interface Handle extends LinkMethods, AddrMethods, RouteMethods, NeighMethods {}

export class Handle implements NetlinkHandle {
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
  subscribe(groups: readonly number[], cb: (type: number, obj: NetlinkObject) => void): NetlinkConn {
    const conn = withNetnsSync(this.nsFd, () => new NetlinkConn(groups));
    conn.onNotification((m) => {
      const parse = PARSERS.get(m.type);
      if (parse) cb(m.type, parse(m));
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
}

for (const { methods } of KINDS) {
  for (const name of Object.getOwnPropertyNames(methods.prototype)) {
    if (name === 'constructor') continue;
    Object.defineProperty(Handle.prototype, name, Object.getOwnPropertyDescriptor(methods.prototype, name)!);
  }
}
