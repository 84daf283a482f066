// Address selection within one range set. Pure: the caller passes what the
// store holds (taken names, last reservation, the attachment's own addresses)
// and performs the reservation itself.
import type { IPAddr } from '../../lib/ip/index.ts';
import { CniError } from '../skel/types.ts';
import { rangeContains, rangeFor, rangeSetString } from './config.ts';
import type { Range, RangeSet } from './config.ts';

/** Plugin-specific CNI error codes (documented in README.md). */
export const HostLocalErrCode = {
  /** No free address left in a range set. Not transient: only a release frees one. */
  PoolExhausted: 110,
  /** A requested address is the gateway, taken, or in no configured range. */
  RequestedIPUnavailable: 111,
  /** The attachment already holds an address in this range set. */
  DuplicateAllocation: 112,
} as const;

export interface Allocation {
  readonly ip: IPAddr;
  readonly range: Range;
}

export interface StoreView {
  /** True when the store holds a reservation with this address. */
  isTaken(ip: IPAddr): boolean;
  /** Number of reservations in the store (an upper bound on taken addresses in any set). */
  readonly takenCount: number;
  /** Content of last_reserved_ip.<set index>, when present and an address. */
  readonly lastReserved: IPAddr | undefined;
  /** Addresses already held by this (containerID, ifname), legacy id-only files included. */
  readonly owned: readonly IPAddr[];
}

/** An address the iterator may hand out: not the gateway, not the v4 network or broadcast. */
export function isAllocatable(r: Range, ip: IPAddr): boolean {
  if (ip.equals(r.gateway)) return false;
  if (ip.family === 4 && (ip.equals(r.subnet.network()) || ip.equals(r.subnet.last()))) return false;
  return true;
}

/**
 * Every allocatable address of the set exactly once, round robin: starting
 * after `lastReserved` when the set contains it, else at the first range's
 * rangeStart; walking the ranges in order and wrapping around.
 */
export function* candidates(set: RangeSet, lastReserved: IPAddr | undefined): Generator<Allocation> {
  let idx = 0;
  let cur = set[0]!.rangeStart;
  const lastIdx = lastReserved ? set.findIndex((r) => rangeContains(r, lastReserved)) : -1;
  if (lastReserved && lastIdx >= 0) {
    const r = set[lastIdx]!;
    if (lastReserved.equals(r.rangeEnd)) {
      idx = (lastIdx + 1) % set.length;
      cur = set[idx]!.rangeStart;
    } else {
      idx = lastIdx;
      cur = lastReserved.next();
    }
  }
  let total = 0n;
  for (const r of set) total += r.rangeEnd.value - r.rangeStart.value + 1n;
  for (let k = 0n; k < total; k++) {
    const r = set[idx]!;
    if (isAllocatable(r, cur)) yield { ip: cur, range: r };
    if (cur.equals(r.rangeEnd)) {
      idx = (idx + 1) % set.length;
      cur = set[idx]!.rangeStart;
    } else {
      cur = cur.next();
    }
  }
}

/**
 * Chooses the address for one range set, or throws the reference's message:
 * requested → `requested ip X is subnet's gateway` /
 * `requested IP address X is not available in range set S`; otherwise the
 * duplicate guard and `no IP addresses available in range set: S`.
 */
export function pickAddress(set: RangeSet, view: StoreView, containerId: string, requested?: IPAddr): Allocation {
  if (requested) {
    const r = rangeFor(set, requested);
    if (!r) {
      throw new CniError(HostLocalErrCode.RequestedIPUnavailable, `${requested} not in range set ${rangeSetString(set)}`);
    }
    if (requested.equals(r.gateway)) {
      throw new CniError(HostLocalErrCode.RequestedIPUnavailable, `requested ip ${requested} is subnet's gateway`);
    }
    if (view.isTaken(requested)) {
      throw new CniError(
        HostLocalErrCode.RequestedIPUnavailable,
        `requested IP address ${requested} is not available in range set ${rangeSetString(set)}`,
      );
    }
    return { ip: requested, range: r };
  }
  for (const ip of view.owned) {
    if (rangeFor(set, ip)) {
      throw new CniError(
        HostLocalErrCode.DuplicateAllocation,
        `${ip} has been allocated to ${containerId}, duplicate allocation is not allowed`,
      );
    }
  }
  // At most takenCount candidates can be taken, so a free one (if any)
  // appears within the first takenCount+1: huge v6 ranges never walk far.
  let seen = 0;
  for (const c of candidates(set, view.lastReserved)) {
    if (!view.isTaken(c.ip)) return c;
    if (++seen > view.takenCount) break;
  }
  throw new CniError(HostLocalErrCode.PoolExhausted, `no IP addresses available in range set: ${rangeSetString(set)}`);
}

/** Number of allocatable addresses of the set not in `taken`. */
export function freeCount(set: RangeSet, taken: Iterable<IPAddr>): bigint {
  let free = 0n;
  for (const r of set) {
    free += r.rangeEnd.value - r.rangeStart.value + 1n;
    const excluded = new Set<bigint>();
    for (const ip of [r.gateway, r.subnet.network(), r.subnet.last()]) {
      if (rangeContains(r, ip) && !isAllocatable(r, ip)) excluded.add(ip.value);
    }
    free -= BigInt(excluded.size);
  }
  const counted = new Set<string>();
  for (const ip of taken) {
    const r = rangeFor(set, ip);
    const k = ip.toString();
    if (r && isAllocatable(r, ip) && !counted.has(k)) {
      counted.add(k);
      free--;
    }
  }
  return free;
}
