// What the iptables and nftables proxiers of one IP family share: the
// change trackers and the applied model, the watch handlers (which only
// record changes and ask for a sync), the "initialized" gate, the sync
// metrics, and the conntrack reconciler after a successful sync. Each mode
// supplies how a sync is applied.
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { Family } from '../../lib/ip/index.ts';
import type { Logger } from '../../lib/log.ts';
import type { Conntrack } from '../../lib/netfilter/conntrack.ts';
import { secondsSince } from '../../lib/metrics.ts';
import { Endpoints, EndpointsChangeTracker, ServiceChangeTracker, ServicePorts, formatIssue, type Issue, type UpdateEndpointsMapResult, type UpdateServiceMapResult } from '../tracker/index.ts';
import type { ProxyHealth } from '../health/proxy.ts';
import { ipFamilyLabel, type ProxyMetrics } from '../metrics.ts';
import { reconcileConntrack } from './conntrack.ts';

export type SyncReason = 'requested' | 'periodic' | 'retry';

export interface FamilyDeps {
  readonly conntrack: Conntrack;
  readonly log: Logger;
  readonly metrics: ProxyMetrics;
  readonly health: ProxyHealth;
  /** Asks this family's runner for a sync (the owner wires it to the runner). */
  readonly requestSync: () => void;
  /** Wall clock in ms (full-sync period, trigger-time latency). */
  readonly now?: () => number;
}

/** The model changes one sync folds in. */
export interface Changes {
  readonly services: UpdateServiceMapResult;
  readonly endpoints: UpdateEndpointsMapResult;
  /** Services ("ns/name") whose ports or endpoints changed. */
  readonly updatedServices: ReadonlySet<string>;
}

/** What the owner needs of a family proxier, whatever the mode. */
export interface FamilyProxier {
  readonly family: Family;
  readonly services: ServicePorts;
  readonly endpoints: Endpoints;
  onServiceUpdate(previous: V1Service | undefined, current: V1Service | undefined): void;
  onEndpointSliceUpdate(slice: V1EndpointSlice, removed: boolean): void;
  setInitialized(): void;
  forceFullSync(): void;
  sync(reason: SyncReason): Promise<unknown>;
}

const isConntrackPort = (portKey: string): boolean => portKey.endsWith('/UDP') || portKey.endsWith('/SCTP');

export abstract class FamilyProxierBase {
  readonly family: Family;
  readonly serviceChanges: ServiceChangeTracker;
  readonly endpointChanges: EndpointsChangeTracker;
  readonly services = new ServicePorts();
  readonly endpoints = new Endpoints();
  protected readonly label: { ip_family: string };
  protected readonly now: () => number;
  /** Set once both Services and EndpointSlices have been read. */
  protected initialized = false;
  protected needFullSync = true;
  /** Conntrack work carried over until a sync succeeds. */
  private conntrackDue = false;
  private readonly deletedUDPClusterIPs = new Set<string>();

  constructor(
    family: Family,
    nodeName: string,
    protected readonly base: FamilyDeps,
  ) {
    this.family = family;
    this.label = { ip_family: ipFamilyLabel(family) };
    this.now = base.now ?? Date.now;
    const report = (i: Issue): void => {
      const fields = { kind: i.kind, namespace: i.namespace, name: i.name, reason: i.reason, ipFamily: this.label.ip_family };
      if (i.skipped) base.log.warn(fields, `skipping ${formatIssue(i)}`);
      else base.log.info(fields, formatIssue(i));
    };
    this.serviceChanges = new ServiceChangeTracker(family, report);
    this.endpointChanges = new EndpointsChangeTracker(family, nodeName, report);
  }

  // ---- handlers: record, then ask for a sync ------------------------------

  onServiceUpdate(previous: V1Service | undefined, current: V1Service | undefined): void {
    this.base.metrics.serviceChangesTotal.inc(this.label);
    this.serviceChanges.update(previous, current);
    this.base.metrics.serviceChangesPending.set(this.label, this.serviceChanges.pending);
    this.queue();
  }

  onEndpointSliceUpdate(slice: V1EndpointSlice, removed: boolean): void {
    this.base.metrics.endpointChangesTotal.inc(this.label);
    this.endpointChanges.endpointSliceUpdate(slice, removed);
    this.base.metrics.endpointChangesPending.set(this.label, this.endpointChanges.pending);
    this.queue();
  }

  /** Both sources are synced: syncs may start. */
  setInitialized(): void {
    if (this.initialized) return;
    this.initialized = true;
    this.queue();
  }

  /** The node's labels or IPs changed: the rendering context changed, rewrite everything. */
  forceFullSync(): void {
    this.needFullSync = true;
    this.queue();
  }

  /**
   * A change is pending. The health clock starts even before the sources are
   * synced (as upstream's Sync() does), so a proxy that never gets its first
   * full read turns unhealthy after the health timeout.
   */
  protected queue(): void {
    this.base.health.queuedUpdate(this.family);
    this.base.metrics.syncProxyRulesLastQueuedTimestamp.set(this.label, this.now() / 1000);
    if (this.initialized) this.base.requestSync();
  }

  /** Folds the trackers' pending changes into the model and notes the conntrack work they make. */
  protected checkout(): Changes {
    const services = this.services.update(this.serviceChanges);
    const endpoints = this.endpoints.update(this.endpointChanges);
    this.base.metrics.serviceChangesPending.set(this.label, 0);
    this.base.metrics.endpointChangesPending.set(this.label, 0);
    for (const ip of services.deletedUDPClusterIPs) this.deletedUDPClusterIPs.add(ip);
    if (endpoints.staleEndpoints.length > 0 || endpoints.newlyActiveServicePorts.size > 0 || this.deletedUDPClusterIPs.size > 0 || [...services.changedPorts].some(isConntrackPort)) {
      this.conntrackDue = true;
    }
    return { services, endpoints, updatedServices: new Set([...services.updatedServices, ...endpoints.updatedServices]) };
  }

  /** After a successful apply: the common metrics and the proxy health. */
  protected succeeded(full: boolean, start: bigint, changes: Changes): void {
    const m = this.base.metrics;
    const seconds = secondsSince(start);
    m.syncProxyRulesLatency.observe(this.label, seconds);
    (full ? m.syncFullProxyRulesLatency : m.syncPartialProxyRulesLatency).observe(this.label, seconds);
    const now = this.now();
    m.syncProxyRulesLastTimestamp.set(this.label, now / 1000);
    for (const times of changes.endpoints.lastChangeTriggerTimes.values()) {
      for (const t of times) m.networkProgrammingLatency.observe(this.label, Math.max(0, (now - t.getTime()) / 1000));
    }
    this.base.health.updated(this.family);
  }

  /**
   * The conntrack reconciler, after the rules are in place (an entry made
   * before would be made by the old rules). It runs when UDP/SCTP endpoints
   * or services changed and on every full sync (which also catches events
   * missed across a restart). A failure is logged and the work stays due.
   */
  protected async cleanConntrack(full: boolean): Promise<number> {
    if (!this.conntrackDue && !full) return 0;
    const start = process.hrtime.bigint();
    try {
      const n = await reconcileConntrack(this.base.conntrack, this.family, this.services.map, this.endpoints.map, this.deletedUDPClusterIPs);
      this.conntrackDue = false;
      this.deletedUDPClusterIPs.clear();
      this.base.metrics.reconcileConntrackFlowsDeletedEntriesTotal.inc(this.label, n);
      if (n > 0) this.base.log.info({ ipFamily: this.label.ip_family, deleted: n }, 'deleted stale UDP/SCTP conntrack entries');
      return n;
    } catch (err) {
      this.base.log.warn({ err, ipFamily: this.label.ip_family }, 'conntrack cleanup failed, will retry at the next sync');
      return 0;
    } finally {
      this.base.metrics.reconcileConntrackFlowsLatency.observe(this.label, secondsSince(start));
    }
  }
}
