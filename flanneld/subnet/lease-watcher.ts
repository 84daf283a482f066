// The set of remote leases a backend programs routes for. Turns a stream of
// LeaseWatchResults (incremental events or full snapshots) into the events a
// backend acts on: drops our own subnet, diffs snapshots, and answers a
// removal with the lease as it was stored, so teardown has the attributes
// (VTEP MAC, public IP) even when the store's delete event carries none.
import { leaseAttrsToJSON } from './types.ts';
import type { Lease, LeaseEvent, LeaseWatchResult } from './types.ts';

/** Identity of a lease: its subnet(s). */
export function leaseKey(l: Lease): string {
  return `${l.subnet?.toString() ?? ''}&${l.ipv6Subnet?.toString() ?? ''}`;
}

const sameAttrs = (a: Lease, b: Lease): boolean => leaseAttrsToJSON(a.attrs) === leaseAttrsToJSON(b.attrs);

export class LeaseWatcher {
  #own: string | undefined;
  readonly #leases = new Map<string, Lease>();

  constructor(ownLease?: Lease) {
    this.#own = ownLease ? leaseKey(ownLease) : undefined;
  }

  /** Sets (or changes) our own lease; it is dropped from the remote set. */
  setOwnLease(lease: Lease): void {
    this.#own = leaseKey(lease);
    this.#leases.delete(this.#own);
  }

  /** The remote leases currently known. */
  leases(): Lease[] {
    return [...this.#leases.values()];
  }

  apply(result: LeaseWatchResult): LeaseEvent[] {
    return 'snapshot' in result ? this.reset(result.snapshot) : this.update(result.events);
  }

  /**
   * Replaces the set with a full snapshot. Returns 'added' for new leases and
   * for known ones whose attributes changed, 'removed' (with the stored
   * lease) for those gone.
   */
  reset(snapshot: readonly Lease[]): LeaseEvent[] {
    const out: LeaseEvent[] = [];
    const next = new Map<string, Lease>();
    for (const l of snapshot) {
      const k = leaseKey(l);
      if (k === this.#own) continue;
      next.set(k, l);
    }
    for (const [k, old] of this.#leases) {
      if (!next.has(k)) out.push({ type: 'removed', lease: old });
    }
    for (const [k, l] of next) {
      const old = this.#leases.get(k);
      if (!old || !sameAttrs(old, l)) out.push({ type: 'added', lease: l });
    }
    this.#leases.clear();
    for (const [k, l] of next) this.#leases.set(k, l);
    return out;
  }

  /** Applies incremental events; returns the ones a backend must act on. */
  update(events: readonly LeaseEvent[]): LeaseEvent[] {
    const out: LeaseEvent[] = [];
    for (const e of events) {
      const k = leaseKey(e.lease);
      if (k === this.#own) continue;
      if (e.type === 'added') {
        this.#leases.set(k, e.lease);
        out.push(e);
      } else {
        const stored = this.#leases.get(k);
        this.#leases.delete(k);
        out.push({ type: 'removed', lease: stored ?? e.lease });
      }
    }
    return out;
  }
}
