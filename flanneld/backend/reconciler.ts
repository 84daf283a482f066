// The one reconcile loop all backends share. Lease events only update the
// set of remote peers and mark the state dirty; a bounded-frequency runner
// then runs one sync. Most syncs are PARTIAL: the backend diffs the desired
// entries against what it last applied successfully, so a lease event costs
// kernel work in proportion to what changed, not to the number of peers.
// A FULL sync (device check, dump of the kernel, diff, apply) runs first,
// after any failure, after a kernel event from the backend (device deleted,
// entry removed by hand), on the periodic tick, and at the latest
// resyncInterval after the previous full one. A failed sync is retried with
// backoff; nothing here throws on a bad lease or a failed entry.
import { errorMessage } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { untilAborted } from '../../lib/abort.ts';
import { BoundedFrequencyRunner } from '../../lib/runner/index.ts';
import { LeaseWatcher, leaseKey } from '../subnet/lease-watcher.ts';
import { leaseAttrsToJSON } from '../subnet/types.ts';
import type { Lease, LeaseWatchResult } from '../subnet/types.ts';
import type { BackendHooks } from './types.ts';
import { NetError } from '../../lib/errors.ts';

export interface SyncFailure {
  /** route | neigh | fdb | device | peers */
  kind: string;
  what: string;
  error: unknown;
}

export interface SyncOptions {
  /** Read the kernel and diff against it (true), or diff against what was last applied (false). */
  full: boolean;
}

/** What a backend plugs into the loop. */
export interface Programmer {
  /** Why a remote lease cannot be used (wrong backend type, garbage backend data), or null when usable. */
  checkLease(lease: Lease): string | null;
  /**
   * Makes the kernel match `peers`. `peers` is null until the first watch
   * result arrived: then only the device is ensured, no entry is touched
   * (so a restart does not drop routes before the lease snapshot is in).
   * With `full` false the backend may trust what it last applied instead of
   * reading the kernel (it still does a full sync where it has nothing
   * trustworthy remembered, e.g. after a failure of its own).
   */
  sync(peers: readonly Lease[] | null, opts: SyncOptions): Promise<SyncFailure[]>;
  /** Kernel events that warrant a resync; returns a closer. */
  subscribe?(onChange: () => void): { close(): void };
}

export interface ReconcilerOptions {
  name: string;
  log: Logger;
  programmer: Programmer;
  ownLease: Lease | undefined;
  hooks?: BackendHooks | undefined;
  resyncInterval?: number | undefined;
  /** Minimum time between two syncs (ms); default 100. */
  minInterval?: number | undefined;
}

export class SyncIncompleteError extends NetError {
  readonly failures: SyncFailure[];
  constructor(failures: SyncFailure[]) {
    super('SYNC_INCOMPLETE', `${failures.length} datapath operation(s) failed: ${failures.map((f) => `${f.kind} ${f.what}: ${errorMessage(f.error)}`).join('; ')}`);
    this.failures = failures;
  }
}

/** "10.244.1.0/24 via 192.0.2.12" (and the IPv6 half), as upstream logs a peer. */
function peerText(l: Lease): string {
  const parts: string[] = [];
  if (l.subnet) parts.push(`${l.subnet.toString()} via ${l.attrs.publicIP ?? '?'}`);
  if (l.ipv6Subnet) parts.push(`${l.ipv6Subnet.toString()} via ${l.attrs.publicIPv6 ?? '?'}`);
  return parts.join(', ');
}
function peerFields(l: Lease): Record<string, string> {
  const f: Record<string, string> = {};
  if (l.subnet) f['subnet'] = l.subnet.toString();
  if (l.attrs.publicIP !== undefined) f['publicIP'] = l.attrs.publicIP;
  if (l.ipv6Subnet) f['ipv6Subnet'] = l.ipv6Subnet.toString();
  if (l.attrs.publicIPv6 !== undefined) f['publicIPv6'] = l.attrs.publicIPv6;
  return f;
}
/** A renewal (new expiry, same peer address and backend data) is not a new peer. */
const sameRoute = (a: Lease, b: Lease): boolean => a.attrs.publicIP === b.attrs.publicIP && a.attrs.publicIPv6 === b.attrs.publicIPv6 && leaseAttrsToJSON(a.attrs) === leaseAttrsToJSON(b.attrs);

/**
 * The set of usable remote peers: a lease whose data the backend rejects is
 * ignored with a warning, and the last good version of it (if any) stays
 * programmed, so one bad update never tears down a working route.
 */
export class PeerSet {
  readonly #watcher: LeaseWatcher;
  readonly #good = new Map<string, Lease>();
  readonly #warned = new Map<string, string>();
  #seen = false;

  constructor(
    ownLease: Lease | undefined,
    private readonly check: (l: Lease) => string | null,
    private readonly log: Logger,
    /** Told how many current leases are being ignored after each update. */
    private readonly onIgnored?: (count: number) => void,
  ) {
    this.#watcher = new LeaseWatcher(ownLease);
  }

  setOwnLease(lease: Lease): void {
    this.#watcher.setOwnLease(lease);
    this.#good.delete(leaseKey(lease));
  }

  /** Whether any watch result has been applied. */
  get initialized(): boolean {
    return this.#seen;
  }

  apply(result: LeaseWatchResult): void {
    this.#seen = true;
    this.#watcher.apply(result);
    const current = new Map(this.#watcher.leases().map((l) => [leaseKey(l), l] as const));
    for (const [k, l] of this.#good) {
      if (current.has(k)) continue;
      this.#good.delete(k);
      this.log.info(peerFields(l), `Subnet removed: ${peerText(l)}`);
    }
    for (const k of [...this.#warned.keys()]) if (!current.has(k)) this.#warned.delete(k);
    let ignored = 0;
    for (const [k, l] of current) {
      const why = this.check(l);
      if (why === null) {
        const before = this.#good.get(k);
        if (before === undefined || !sameRoute(before, l)) this.log.info(peerFields(l), `Subnet added: ${peerText(l)}`);
        this.#good.set(k, l);
        this.#warned.delete(k);
        continue;
      }
      ignored++;
      const sig = leaseAttrsToJSON(l.attrs);
      if (this.#warned.get(k) !== sig) {
        this.#warned.set(k, sig);
        this.log.warn({ subnet: k, reason: why, kept: this.#good.has(k) }, 'ignoring remote lease');
      }
    }
    this.onIgnored?.(ignored);
  }

  peers(): Lease[] {
    return [...this.#good.values()];
  }
}

/** Runs the loop until `signal` aborts. */
export async function runReconciler(opts: ReconcilerOptions, watch: AsyncIterable<LeaseWatchResult>, signal: AbortSignal): Promise<void> {
  const { log, programmer, hooks } = opts;
  const resyncInterval = opts.resyncInterval ?? 10_000;
  // The runner says why a sync runs: 'periodic' (the first one, then every
  // resyncInterval) and 'retry' (after a failure or a kernel event) are full,
  // 'requested' (lease events) partial. One exception: until a sync with
  // peers has succeeded, only the device was ensured and nothing remembered
  // is trustworthy, so that one reads the kernel too.
  let peersSynced = false;
  const peers = new PeerSet(opts.ownLease, (l) => programmer.checkLease(l), log, (n) => hooks?.onIgnoredLeases?.(n));
  const runner = new BoundedFrequencyRunner({
    name: opts.name,
    // A burst of lease events is coalesced into syncs at most 10 ms apart:
    // with 100 ms a lease arriving just after a sync started waited up to
    // 100 ms more (p99 106-113 ms in bench/results/flannel-convergence-*).
    minInterval: opts.minInterval ?? 10,
    maxInterval: resyncInterval,
    retryInitial: 500,
    runAtStart: true,
    onError: (err, n) => log.warn({ err, consecutiveFailures: n }, 'datapath sync incomplete, will retry'),
    fn: async ({ reason }) => {
      const start = process.hrtime.bigint();
      const list = peers.initialized ? peers.peers() : null;
      const full = reason !== 'requested' || !peersSynced;
      let failures: SyncFailure[];
      try {
        failures = await programmer.sync(list, { full });
      } catch (err) {
        failures = [{ kind: 'sync', what: opts.name, error: err }];
      }
      if (failures.length === 0 && list !== null) peersSynced = true;
      for (const f of failures) hooks?.onProgrammingError?.(f.kind);
      hooks?.onSyncDuration?.(Number(process.hrtime.bigint() - start) / 1e9, failures.length === 0);
      if (list) hooks?.onPeers?.(list.length);
      // The runner retries (with backoff) and makes that run a full one.
      if (failures.length) throw new SyncIncompleteError(failures);
    },
  });
  // The runner stops with the caller's signal, and also when the watch fails.
  const inner = new AbortController();
  const stop = (): void => inner.abort();
  signal.addEventListener('abort', stop, { once: true });
  // A kernel event (device deleted, entry removed by hand) makes what was
  // applied untrustworthy, as a failure does: a full sync, now.
  const sub = programmer.subscribe?.(() => runner.retryAfter(0));
  const loop = runner.loop(inner.signal);
  try {
    for await (const result of watch) {
      if (signal.aborted) break;
      peers.apply(result);
      runner.run();
    }
    // The stream ended (or the signal fired): keep the datapath as it is and wait for shutdown.
    await untilAborted(signal);
  } finally {
    signal.removeEventListener('abort', stop);
    inner.abort();
    sub?.close();
    await loop;
  }
}
