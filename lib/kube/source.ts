// The one interface every object source implements, and the cache behind it.
//
// A Source<T> keeps the current set of objects of one kind and tells its
// subscribers about changes: add / update(old, new) / delete, plus `sync`
// with the whole cache once the first full read is in (and after every
// re-list, and every resync period), plus `error` for failures it retries
// on its own. `run(signal)` does the reading and settles when `signal`
// aborts; handlers only record changes (DESIGN.md rule 6).
//
// Implementations: ObjectSource (the API, ./api-source.ts), the manifest
// directory (./manifest-dir.ts) and FakeSource (./fake-source.ts, tests).
import type { KubernetesObject } from '@kubernetes/client-node';
import { NetError } from '../errors.ts';
import { objectKey } from './types.ts';

/** Why `sync` is called: the first full read, a re-list after a lost watch, or the periodic resync. */
export type SyncReason = 'initial' | 'relist' | 'resync';

export interface SourceHandlers<T> {
  add?(obj: T): void;
  update?(oldObj: T, newObj: T): void;
  delete?(obj: T): void;
  /** The full cache: after the first list, after every re-list, and every resync period. */
  sync?(objs: readonly T[], reason: SyncReason): void;
  /** A failure the source retries on its own (list/watch error, unreadable directory). */
  error?(err: unknown): void;
}

export interface Source<T extends KubernetesObject> {
  /** The object kind, for logs and errors ("Service"). */
  readonly kind: string;
  /** Registers handlers; returns the unsubscribe function. */
  subscribe(h: SourceHandlers<T>): () => void;
  /** True once the first full read is in the cache. */
  readonly synced: boolean;
  get(name: string, namespace?: string): T | undefined;
  list(): T[];
  /**
   * Reads and watches until `signal` aborts, then stops and resolves.
   * Failures are reported to `error` handlers and retried, never thrown.
   */
  run(signal: AbortSignal): Promise<void>;
  /** Resolves when the first full read is in the cache; rejects when `signal` aborts or after timeoutMs. */
  waitForSync(signal: AbortSignal, timeoutMs?: number): Promise<void>;
}

/**
 * The cache and handler fan-out shared by the sources. Subclasses feed it
 * with `upsert` / `remove` / `markSynced` / `emitSync` / `emitError`.
 */
export abstract class SourceCache<T extends KubernetesObject> {
  readonly kind: string;
  private readonly known = new Map<string, T>();
  private readonly handlers = new Set<SourceHandlers<T>>();
  private readonly syncWaiters = new Set<() => void>();
  private syncs = 0;

  constructor(kind: string) {
    this.kind = kind;
  }

  subscribe(h: SourceHandlers<T>): () => void {
    this.handlers.add(h);
    return () => this.handlers.delete(h);
  }

  get synced(): boolean {
    return this.syncs > 0;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.known.get(`${namespace ?? ''}/${name}`);
  }

  list(): T[] {
    return [...this.known.values()];
  }

  waitForSync(signal: AbortSignal, timeoutMs?: number): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (err?: unknown): void => {
        this.syncWaiters.delete(ok);
        signal.removeEventListener('abort', onAbort);
        if (timer) clearTimeout(timer);
        if (err === undefined) resolve();
        else reject(err);
      };
      const ok = (): void => done();
      const onAbort = (): void => done(signal.reason);
      if (signal.aborted) return onAbort();
      this.syncWaiters.add(ok);
      signal.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => done(new NetError('KUBE_SYNC_TIMEOUT', `${this.kind}: cache not synced after ${timeoutMs} ms`)), timeoutMs);
      }
    });
  }

  /** Stores `o` and tells handlers: `add` when new, else `update(old, o)`. */
  protected upsert(o: T): void {
    const k = objectKey(o);
    const old = this.known.get(k);
    this.known.set(k, o);
    for (const h of [...this.handlers]) {
      if (old) h.update?.(old, o);
      else h.add?.(o);
    }
  }

  /** Drops the object with `o`'s key; `delete` handlers get `o` (the API's final state). False when unknown. */
  protected remove(o: T): boolean {
    if (!this.known.delete(objectKey(o))) return false;
    for (const h of [...this.handlers]) h.delete?.(o);
    return true;
  }

  /** The first call makes the source synced and releases waitForSync; every call emits `sync`. */
  protected markSynced(reason: SyncReason): void {
    this.syncs += 1;
    this.emitSync(reason);
    for (const w of [...this.syncWaiters]) w();
  }

  protected emitSync(reason: SyncReason): void {
    const all = this.list();
    for (const h of [...this.handlers]) h.sync?.(all, reason);
  }

  protected emitError(err: unknown): void {
    for (const h of [...this.handlers]) h.error?.(err);
  }
}

/** Resolves when `signal` aborts (at once if it has). */
export function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
