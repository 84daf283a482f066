// An object source over the Kubernetes API: client-node's ListWatch (list,
// then watch from the list's resourceVersion; 410 Expired re-lists) wrapped so
// that consumers get add / update(old, new) / delete plus a `sync` callback
// with the whole cache after the first list, after each re-list and on every
// resync period. Watch failures that ListWatch gives up on are retried with
// backoff. Generic over the resource; NodeSource is the Node instance.
import { ListWatch, Watch } from '@kubernetes/client-node';
import type { KubernetesListObject, KubernetesObject, V1Node } from '@kubernetes/client-node';
import { NetError } from '../errors.ts';
import { NODES, resourcePath } from './client.ts';
import type { KubeClient, ResourceRef } from './client.ts';

export type SyncReason = 'initial' | 'relist' | 'resync';

export interface SourceHandlers<T> {
  add?(obj: T): void;
  update?(oldObj: T, newObj: T): void;
  delete?(obj: T): void;
  /** The full cache: after the first list, after every re-list, and every resync period. */
  sync?(objs: readonly T[], reason: SyncReason): void;
  /** A list/watch failure; the source retries on its own. */
  error?(err: unknown): void;
}

export interface SourceOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Period of `sync(..., 'resync')` callbacks; 0 disables (default 5 min, as flannel). */
  resyncMs?: number;
  /** Retry backoff after a failed list/watch (default 1 s doubling to 30 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
}

const objKey = (o: KubernetesObject): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class ObjectSource<T extends KubernetesObject> {
  private readonly client: KubeClient;
  private readonly res: ResourceRef;
  private readonly opts: SourceOptions;
  private readonly known = new Map<string, T>();
  private readonly handlers = new Set<SourceHandlers<T>>();
  private readonly syncWaiters = new Set<() => void>();
  private lw: ListWatch<T> | undefined;
  private listed = 0;
  private retryMs: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(client: KubeClient, res: ResourceRef, opts: SourceOptions = {}) {
    this.client = client;
    this.res = res;
    this.opts = opts;
    this.retryMs = opts.retryMinMs ?? 1000;
  }

  /** Registers handlers; returns the unsubscribe function. */
  subscribe(h: SourceHandlers<T>): () => void {
    this.handlers.add(h);
    return () => this.handlers.delete(h);
  }

  get synced(): boolean {
    return this.listed > 0;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.known.get(`${namespace ?? ''}/${name}`);
  }

  list(): T[] {
    return [...this.known.values()];
  }

  /**
   * Starts listing and watching until `signal` aborts. Resolves once the
   * first list is in the cache (handlers have seen its adds and the
   * `initial` sync); rejects only if `signal` aborts first.
   */
  async start(signal: AbortSignal): Promise<void> {
    if (this.lw) throw new NetError('KUBE_SOURCE_STARTED', 'source already started');
    signal.throwIfAborted();
    const path = resourcePath(this.res, { namespace: this.opts.namespace });
    const listFn = async (): Promise<KubernetesListObject<T>> => {
      const list = await this.client.list<T>(this.res, this.opts.namespace, {
        ...(this.opts.labelSelector !== undefined ? { labelSelector: this.opts.labelSelector } : {}),
        ...(this.opts.fieldSelector !== undefined ? { fieldSelector: this.opts.fieldSelector } : {}),
      });
      // ListWatch applies the list synchronously once this promise settles;
      // report the sync right after that, before any watch event can arrive.
      setImmediate(() => this.afterList());
      return list as KubernetesListObject<T>;
    };
    const lw = new ListWatch<T>(path, new Watch(this.client.config), listFn, false, this.opts.labelSelector, this.opts.fieldSelector);
    this.lw = lw;
    lw.on('add', (o) => this.upsert(o));
    lw.on('update', (o) => this.upsert(o));
    lw.on('delete', (o) => this.remove(o));
    lw.on('error', (err) => this.failed(err));
    const onAbort = (): void => this.stop();
    signal.addEventListener('abort', onAbort, { once: true });
    const resync = this.opts.resyncMs ?? 5 * 60_000;
    if (resync > 0) {
      this.resyncTimer = setInterval(() => {
        if (this.synced) this.emitSync('resync');
      }, resync);
      this.resyncTimer.unref();
    }
    const synced = this.waitForSync(signal);
    await lw.start();
    await synced;
  }

  /** Resolves when the first list is in the cache; rejects when `signal` aborts or after timeoutMs. */
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
        timer = setTimeout(() => done(new NetError('KUBE_SYNC_TIMEOUT', `${this.res.resource}: cache not synced after ${timeoutMs} ms`)), timeoutMs);
      }
    });
  }

  private stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    void this.lw?.stop();
  }

  private upsert(o: T): void {
    const k = objKey(o);
    const old = this.known.get(k);
    this.known.set(k, o);
    this.retryMs = this.opts.retryMinMs ?? 1000;
    for (const h of [...this.handlers]) {
      if (old) h.update?.(old, o);
      else h.add?.(o);
    }
  }

  private remove(o: T): void {
    const k = objKey(o);
    if (!this.known.delete(k)) return;
    for (const h of [...this.handlers]) h.delete?.(o);
  }

  private afterList(): void {
    if (this.stopped) return;
    this.listed += 1;
    this.retryMs = this.opts.retryMinMs ?? 1000;
    this.emitSync(this.listed === 1 ? 'initial' : 'relist');
    for (const w of [...this.syncWaiters]) w();
  }

  private emitSync(reason: SyncReason): void {
    const all = this.list();
    for (const h of [...this.handlers]) h.sync?.(all, reason);
  }

  /** ListWatch stops after a non-410 failure; start it again with backoff (it resumes from its resourceVersion). */
  private failed(err: unknown): void {
    for (const h of [...this.handlers]) h.error?.(err);
    if (this.stopped || this.retryTimer) return;
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, this.opts.retryMaxMs ?? 30_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.stopped) void this.lw?.start();
    }, delay);
  }
}

export type NodeSource = ObjectSource<V1Node>;

export function nodeSource(client: KubeClient, opts: SourceOptions = {}): NodeSource {
  return new ObjectSource<V1Node>(client, NODES, opts);
}
