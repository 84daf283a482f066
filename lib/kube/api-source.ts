// The API source: client-node's ListWatch (list, then watch from the list's
// resourceVersion; 410 Expired re-lists) behind Source<T>, like a client-go
// informer. Consumers get add / update(old, new) / delete plus `sync` with
// the whole cache after the first list, after each re-list and on every
// resync period. ListWatch gives up after any other failure; run() starts it
// again with backoff (it resumes from its last resourceVersion).
import type { ListWatch } from '@kubernetes/client-node';
import type { KubernetesListObject, KubernetesObject, V1Node } from '@kubernetes/client-node';
import { NetError } from '../errors.ts';
import { NODES, resourcePath } from './resources.ts';
import type { KubeClient, ResourceRef } from './client.ts';
import { SourceCache } from './source.ts';
import type { Source } from './source.ts';
import { KINDS } from './types.ts';
import type { Kind, KindMap } from './types.ts';
import { sleep } from '../abort.ts';
import { Wakeup } from '../async.ts';
import { Backoff } from '../daemon/retry.ts';

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

export class ObjectSource<T extends KubernetesObject> extends SourceCache<T> implements Source<T> {
  private readonly client: KubeClient;
  private readonly res: ResourceRef;
  private readonly opts: SourceOptions;
  private lists = 0;
  private readonly backoff: Backoff;
  private running = false;
  private stopped = false;
  private stoppedPromise: Promise<void> = Promise.resolve();

  /** Set on listed items, which the API sends without kind and apiVersion (watch events carry them). */
  private readonly typeMeta: { kind: string; apiVersion: string } | undefined;

  constructor(client: KubeClient, res: ResourceRef, opts: SourceOptions = {}, kind: string = res.resource) {
    super(kind);
    this.typeMeta = kind === res.resource ? undefined : { kind, apiVersion: res.group ? `${res.group}/${res.version}` : res.version };
    this.client = client;
    this.res = res;
    this.opts = opts;
    this.backoff = new Backoff({ min: opts.retryMinMs ?? 1000, max: opts.retryMaxMs ?? 30_000 });
  }

  /** Settles when the run that run() or start() began has stopped. */
  get done(): Promise<void> {
    return this.stoppedPromise;
  }

  /**
   * Starts the source as run(signal) does and resolves once the first list
   * is in the cache (handlers have seen its adds and the `initial` sync);
   * rejects only if `signal` aborts first. `done` settles when it stopped.
   */
  start(signal: AbortSignal): Promise<void> {
    if (this.running) return Promise.reject(this.alreadyStarted());
    this.begin(signal);
    return this.waitForSync(signal);
  }

  run(signal: AbortSignal): Promise<void> {
    if (this.running) return Promise.reject(this.alreadyStarted());
    return this.begin(signal);
  }

  /** The loop's promise is kept as `done`; it does not reject (failures go to `error` handlers). */
  private begin(signal: AbortSignal): Promise<void> {
    this.running = true;
    this.stoppedPromise = this.loop(signal);
    return this.stoppedPromise;
  }

  private alreadyStarted(): NetError {
    return new NetError('KUBE_SOURCE_STARTED', `${this.kind}: source already started`);
  }

  private async loop(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const onAbort = (): void => {
      this.stopped = true;
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const restart = new Wakeup();
    const { ListWatch, Watch } = await import('./client-node.ts');
    const lw = new ListWatch<T>(
      resourcePath(this.res, { namespace: this.opts.namespace }),
      new Watch(this.client.config),
      () => this.listOnce(signal),
      false,
      this.opts.labelSelector,
      this.opts.fieldSelector,
    );
    lw.on('add', (o) => this.observed(o));
    lw.on('update', (o) => this.observed(o));
    lw.on('delete', (o) => this.remove(o));
    lw.on('error', (err) => {
      // Stopping aborts the watch request; that is not a failure.
      if (this.stopped) return;
      this.emitError(err);
      restart.fire();
    });
    const resyncMs = this.opts.resyncMs ?? 5 * 60_000;
    const resync = resyncMs > 0 ? setInterval(() => this.synced && this.emitSync('resync'), resyncMs).unref() : undefined;
    try {
      await this.startWatch(lw, restart);
      while (!signal.aborted) {
        if (!(await restart.wait(undefined, signal))) continue;
        await sleep(this.backoff.next(), signal);
        if (!signal.aborted) await this.startWatch(lw, restart);
      }
    } finally {
      this.stopped = true;
      signal.removeEventListener('abort', onAbort);
      if (resync) clearInterval(resync);
      await lw.stop();
    }
  }

  /** ListWatch.start lists (if it has no resourceVersion) and opens the watch; its failures come as `error` events. */
  private async startWatch(lw: ListWatch<T>, restart: Wakeup): Promise<void> {
    try {
      await lw.start();
    } catch (err) {
      this.emitError(err);
      restart.fire();
    }
  }

  private async listOnce(signal: AbortSignal): Promise<KubernetesListObject<T>> {
    const list = await this.client.list<T>(
      this.res,
      this.opts.namespace,
      {
        ...(this.opts.labelSelector !== undefined ? { labelSelector: this.opts.labelSelector } : {}),
        ...(this.opts.fieldSelector !== undefined ? { fieldSelector: this.opts.fieldSelector } : {}),
      },
      signal,
    );
    if (this.typeMeta) {
      for (const item of list.items) {
        item.kind ??= this.typeMeta.kind;
        item.apiVersion ??= this.typeMeta.apiVersion;
      }
    }
    // ListWatch applies the list synchronously once this promise settles;
    // report the sync right after that, before any watch event can arrive.
    setImmediate(() => this.afterList());
    return list as KubernetesListObject<T>;
  }

  private observed(o: T): void {
    this.backoff.reset();
    this.upsert(o);
  }

  private afterList(): void {
    if (this.stopped) return;
    this.lists += 1;
    this.backoff.reset();
    this.markSynced(this.lists === 1 ? 'initial' : 'relist');
  }
}

/** An API source of one of the known kinds: `apiSource(client, 'Service')` is a Source<V1Service>. */
export function apiSource<K extends Kind>(client: KubeClient, kind: K, opts: SourceOptions = {}): ObjectSource<KindMap[K]> {
  return new ObjectSource<KindMap[K]>(client, KINDS[kind].resource, opts, kind);
}

export type NodeSource = ObjectSource<V1Node>;

export function nodeSource(client: KubeClient, opts: SourceOptions = {}): NodeSource {
  return new ObjectSource<V1Node>(client, NODES, opts, 'Node');
}
