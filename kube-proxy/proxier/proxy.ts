// The Service proxy of a node: one family proxier (iptables or nftables
// mode) and one bounded-frequency runner per IP family (upstream's
// MetaProxier and per-family runners), so each family syncs, fails and
// retries on its own. The sources feed both families; handlers only record
// changes.
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import type { Family } from '../../lib/ip/index.ts';
import type { Source } from '../../lib/kube/source.ts';
import type { Logger } from '../../lib/log.ts';
import type { Conntrack } from '../../lib/netfilter/conntrack.ts';
import { BoundedFrequencyRunner, type Clock } from '../../lib/runner/index.ts';
import type { ProxyHealth } from '../health/proxy.ts';
import type { ServiceHealthServers } from '../health/server.ts';
import type { ProxyMetrics } from '../metrics.ts';
import type { FamilyDeps, FamilyProxier } from './family.ts';

export interface ProxySources {
  readonly services: Source<V1Service>;
  readonly endpointSlices: Source<V1EndpointSlice>;
  /** This node's object (topology labels, IPs, deletion for /healthz); optional in manifest mode. */
  readonly nodes?: Source<V1Node> | undefined;
}

/** Makes the mode's proxier of one family; `node()` is the current Node object. */
export type FamilyProxierFactory = (family: Family, deps: FamilyDeps, node: () => V1Node | undefined) => FamilyProxier;

export interface ServiceProxyOptions {
  readonly families: readonly Family[];
  readonly nodeName: string;
  readonly minSyncPeriodMs: number;
  readonly syncPeriodMs: number;
  readonly backend: FamilyProxierFactory;
  /** First retry delay after a failed sync (ms); doubles up to syncPeriod. Default 1 s. */
  readonly retryInitialMs?: number;
}

export interface ServiceProxyDeps {
  readonly conntrack: Conntrack;
  readonly log: Logger;
  readonly metrics: ProxyMetrics;
  readonly health: ProxyHealth;
  readonly serviceHealth?: ServiceHealthServers | undefined;
  readonly clock?: Clock;
}

/** The Node fields the rules depend on: a change to these forces a full sync. */
const nodeSignature = (n: V1Node | undefined): string =>
  JSON.stringify([n?.metadata?.labels?.['topology.kubernetes.io/zone'] ?? '', (n?.status?.addresses ?? []).map((a) => `${a.type}=${a.address}`)]);

export class ServiceProxy {
  readonly proxiers: ReadonlyMap<Family, FamilyProxier>;
  private readonly runners = new Map<Family, BoundedFrequencyRunner>();
  private node: V1Node | undefined;

  constructor(
    private readonly opts: ServiceProxyOptions,
    private readonly deps: ServiceProxyDeps,
  ) {
    const proxiers = new Map<Family, FamilyProxier>();
    for (const family of opts.families) {
      const runner = new BoundedFrequencyRunner({
        name: `proxy-IPv${family}`,
        fn: async ({ reason }) => {
          await proxier.sync(reason);
          await this.syncServiceHealth();
        },
        minInterval: opts.minSyncPeriodMs,
        maxInterval: opts.syncPeriodMs,
        retryInitial: Math.min(opts.retryInitialMs ?? 1000, opts.syncPeriodMs),
        retryMax: opts.syncPeriodMs,
        onError: (err, failures) => deps.log.warn({ err, ipFamily: `IPv${family}`, failures }, 'sync failed, retrying with backoff'),
        ...(deps.clock ? { clock: deps.clock } : {}),
      });
      const proxier: FamilyProxier = opts.backend(
        family,
        { ...deps, requestSync: () => runner.run(), ...(deps.clock ? { now: () => deps.clock!.now() } : {}) },
        () => this.node,
      );
      proxiers.set(family, proxier);
      this.runners.set(family, runner);
    }
    this.proxiers = proxiers;
  }

  private each(fn: (p: FamilyProxier) => void): void {
    for (const p of this.proxiers.values()) fn(p);
  }

  private setNode(node: V1Node | undefined): void {
    const changed = nodeSignature(node) !== nodeSignature(this.node);
    this.node = node;
    this.deps.health.setNode(node);
    if (changed) this.each((p) => p.forceFullSync());
  }

  /** Subscribes to the sources (handlers only record changes); returns the unsubscribe function. */
  attach(sources: ProxySources): () => void {
    const offs = [
      sources.services.subscribe({
        add: (s) => this.each((p) => p.onServiceUpdate(undefined, s)),
        update: (o, s) => this.each((p) => p.onServiceUpdate(o, s)),
        delete: (s) => this.each((p) => p.onServiceUpdate(s, undefined)),
      }),
      sources.endpointSlices.subscribe({
        add: (s) => this.each((p) => p.onEndpointSliceUpdate(s, false)),
        update: (_o, s) => this.each((p) => p.onEndpointSliceUpdate(s, false)),
        delete: (s) => this.each((p) => p.onEndpointSliceUpdate(s, true)),
      }),
    ];
    const nodes = sources.nodes;
    if (nodes) {
      const mine = (n: V1Node): boolean => n.metadata?.name === this.opts.nodeName;
      offs.push(
        nodes.subscribe({
          add: (n) => mine(n) && this.setNode(n),
          update: (_o, n) => mine(n) && this.setNode(n),
          delete: (n) => mine(n) && this.setNode(undefined),
        }),
      );
      this.node = nodes.get(this.opts.nodeName);
      this.deps.health.setNode(this.node);
    }
    // Objects already in the caches (a source that was read before attach).
    for (const svc of sources.services.list()) this.each((p) => p.onServiceUpdate(undefined, svc));
    for (const slice of sources.endpointSlices.list()) this.each((p) => p.onEndpointSliceUpdate(slice, false));
    return () => offs.forEach((off) => off());
  }

  /**
   * Runs the sources and the runners until `signal` aborts. The first sync
   * waits until Services and EndpointSlices are both read.
   */
  async run(sources: ProxySources, signal: AbortSignal): Promise<void> {
    const detach = this.attach(sources);
    const running = [sources.services.run(signal), sources.endpointSlices.run(signal), ...(sources.nodes ? [sources.nodes.run(signal)] : [])];
    const loops = [...this.runners.values()].map((r) => r.loop(signal));
    try {
      await Promise.all([sources.services.waitForSync(signal), sources.endpointSlices.waitForSync(signal)]);
      if (sources.nodes) this.setNode(sources.nodes.get(this.opts.nodeName));
      this.each((p) => p.setInitialized());
    } catch (err) {
      if (!signal.aborted) throw err;
    } finally {
      await Promise.all([...loops, ...running]);
      detach();
      await this.deps.serviceHealth?.close();
    }
  }

  /** Health-check node ports: union over the families, the larger local count. */
  private async syncServiceHealth(): Promise<void> {
    const hc = this.deps.serviceHealth;
    if (!hc) return;
    const ports = new Map<string, number>();
    const local = new Map<string, number>();
    for (const p of this.proxiers.values()) {
      for (const [svc, port] of p.services.healthCheckNodePorts()) ports.set(svc, port);
      for (const [svc, n] of p.endpoints.localReadyEndpoints()) local.set(svc, Math.max(local.get(svc) ?? 0, n));
    }
    await hc.sync(ports, local);
  }
}
