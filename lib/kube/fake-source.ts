// FakeSource: a Source<T> that a test drives by hand. It has the cache and
// handler semantics of the real sources (add for a new key, update(old, new)
// for a known one, sync with the whole cache), so code under test cannot
// tell it from the API or a manifest directory.
import type { KubernetesObject } from '@kubernetes/client-node';
import { NetError } from '../errors.ts';
import { SourceCache, aborted } from './source.ts';
import type { Source, SyncReason } from './source.ts';
import { objectKey } from './types.ts';

export class FakeSource<T extends KubernetesObject> extends SourceCache<T> implements Source<T> {
  /** How many run() calls are in progress. */
  running = 0;

  constructor(kind = 'Fake', initial: readonly T[] = []) {
    super(kind);
    for (const o of initial) this.upsert(o);
  }

  /** Settles when `signal` aborts, like the real sources. */
  async run(signal: AbortSignal): Promise<void> {
    this.running += 1;
    try {
      await aborted(signal);
    } finally {
      this.running -= 1;
    }
  }

  /** A new object; throws if its key is known (use update). */
  add(o: T): void {
    if (this.has(o)) throw new NetError('OBJECT_EXISTS', `${this.kind} ${objectKey(o)} already exists`);
    this.upsert(o);
  }

  /** A changed object; throws if its key is unknown (use add). */
  update(o: T): void {
    if (!this.has(o)) throw new NetError('OBJECT_NOT_FOUND', `${this.kind} ${objectKey(o)} does not exist`);
    this.upsert(o);
  }

  /** Removes the object with `o`'s key; throws if unknown. */
  delete(o: T): void {
    if (!this.remove(o)) throw new NetError('OBJECT_NOT_FOUND', `${this.kind} ${objectKey(o)} does not exist`);
  }

  /** Emits `sync` with the cache; the first call makes the source synced. */
  sync(reason: SyncReason = this.synced ? 'resync' : 'initial'): void {
    this.markSynced(reason);
  }

  /**
   * Replaces the whole cache as a re-list would: adds, updates (only for
   * objects whose content changed) and deletes, then `sync(reason)`.
   */
  replace(objs: readonly T[], reason: SyncReason = this.synced ? 'relist' : 'initial'): void {
    const next = new Map(objs.map((o) => [objectKey(o), o]));
    for (const old of this.list()) if (!next.has(objectKey(old))) this.remove(old);
    for (const o of objs) {
      const old = this.get(o.metadata?.name ?? '', o.metadata?.namespace);
      if (!old || JSON.stringify(old) !== JSON.stringify(o)) this.upsert(o);
    }
    this.markSynced(reason);
  }

  /** Reports a failure to `error` handlers, as a lost watch would. */
  fail(err: unknown): void {
    this.emitError(err);
  }

  private has(o: T): boolean {
    return this.get(o.metadata?.name ?? '', o.metadata?.namespace) !== undefined;
  }
}
