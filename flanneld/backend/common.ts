// Helpers shared by the backends: backend config fields, the device address,
// and event subscriptions that trigger a resync.
import { isExists } from '../../lib/errors.ts';
import { rt, type NetlinkHandle } from '../../lib/netlink/index.ts';
import { getFold, leaseSubnet } from '../subnet/types.ts';
import type { Lease, NetworkConfig } from '../subnet/types.ts';
import { BackendConfigError } from './types.ts';
import { IPAddr, IPPrefix, type Family } from '../../lib/ip/index.ts';

export function cfgInt(raw: Readonly<Record<string, unknown>>, key: string, def: number, min: number, max: number): number {
  const v = getFold(raw as Record<string, unknown>, key);
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new BackendConfigError(`Backend.${key} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  }
  return v;
}

export function cfgBool(raw: Readonly<Record<string, unknown>>, key: string, def: boolean): boolean {
  const v = getFold(raw as Record<string, unknown>, key);
  if (v === undefined || v === null) return def;
  if (typeof v !== 'boolean') throw new BackendConfigError(`Backend.${key} must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

export function networkOf(cfg: NetworkConfig, family: Family): IPPrefix | undefined {
  return (family === 4 ? cfg.ipv4 : cfg.ipv6)?.network;
}

/** The public IP a lease publishes for `family` (lease attrs are JSON text; undefined when absent or not an address of that family). */
export function publicIPOf(lease: Lease, family: Family): IPAddr | undefined {
  return derived(lease)[family].pub;
}

/** Subnet of a lease in `family`, host bits cleared. */
export function subnetOf(lease: Lease, family: Family): IPPrefix | undefined {
  return derived(lease)[family].subnet;
}

// Every sync walks all peers' leases (O(peers) per lease event), so what is
// parsed or computed from a lease is kept with it. Leases are immutable: a
// changed lease is a new object, which gets its own entry.
interface Derived {
  pub: IPAddr | undefined;
  subnet: IPPrefix | undefined;
}
const cache = new WeakMap<Lease, Record<Family, Derived>>();
function derived(lease: Lease): Record<Family, Derived> {
  let d = cache.get(lease);
  if (!d) {
    const of = (family: Family): Derived => {
      const text = family === 4 ? lease.attrs.publicIP : lease.attrs.publicIPv6;
      const ip = text === undefined ? undefined : IPAddr.parse(text);
      return { pub: ip?.family === family ? ip : undefined, subnet: leaseSubnet(lease, family)?.masked() };
    };
    d = { 4: of(4), 6: of(6) };
    cache.set(lease, d);
  }
  return d;
}

/**
 * Gives the device exactly the lease's network address as a /32 (/128),
 * removing other addresses of `family` inside the cluster network
 * (upstream EnsureV4AddressOnLink).
 */
export async function ensureLeaseAddress(h: NetlinkHandle, index: number, lease: Lease, family: Family, network: IPPrefix | undefined): Promise<void> {
  const sub = subnetOf(lease, family);
  if (!sub) return;
  const want = IPPrefix.host(sub.network());
  const addrs = await h.addrList({ index, family });
  let present = false;
  for (const a of addrs) {
    if (a.address.equals(want)) {
      present = true;
      continue;
    }
    if (network && network.contains(a.address.addr)) await h.addrDel(index, a.address);
  }
  if (!present) {
    try {
      await h.addrAdd(index, { address: want, ...(family === 6 ? { noDad: true } : {}) });
    } catch (err) {
      if (!isExists(err)) throw err;
    }
  }
}

/**
 * Subscribes to link, route and neighbour events of the namespace and calls
 * `onChange` for those concerning `indexes()` or `names` (device deleted or
 * recreated, an entry removed by hand). Our own changes trigger it too;
 * the runner coalesces those into one extra no-op sync.
 */
export function subscribeDeviceEvents(h: NetlinkHandle, names: readonly string[], indexes: () => readonly number[], onChange: () => void): { close(): void } {
  const conn = h.subscribe([rt.RTNLGRP_LINK, rt.RTNLGRP_NEIGH, rt.RTNLGRP_IPV4_ROUTE, rt.RTNLGRP_IPV6_ROUTE], (type, obj) => {
    const idx = indexes();
    if (type === rt.RTM_DELLINK && 'name' in obj && (names.includes(obj.name) || idx.includes(obj.index))) onChange();
    else if (type === rt.RTM_DELNEIGH && 'state' in obj && idx.includes(obj.index)) onChange();
    else if (type === rt.RTM_DELROUTE && 'dst' in obj && obj.oif !== undefined && idx.includes(obj.oif)) onChange();
  });
  return { close: () => conn.close() };
}
