// kube-proxy's Prometheus metrics with upstream's names, types, buckets and
// labels (k/k pkg/proxy/metrics/metrics.go, subsystem `kubeproxy`, label
// `ip_family` on the per-family ones), so existing dashboards and alerts
// keep working.
import { Counter, Gauge, Histogram, newRegistry, type Registry } from '../lib/metrics.ts';
import type { Family } from '../lib/ip/index.ts';

/** prometheus.ExponentialBuckets(start, factor, count). */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start * factor ** i);
}

/** metrics.MergeBuckets(LinearBuckets(0.25, 0.25, 2), LinearBuckets(1, 1, 59), LinearBuckets(60, 5, 12), LinearBuckets(120, 30, 7)). */
function networkProgrammingBuckets(): number[] {
  const lin = (start: number, width: number, n: number): number[] => Array.from({ length: n }, (_, i) => start + width * i);
  return [...new Set([...lin(0.25, 0.25, 2), ...lin(1, 1, 59), ...lin(60, 5, 12), ...lin(120, 30, 7)])].sort((a, b) => a - b);
}

export const ipFamilyLabel = (f: Family): string => (f === 4 ? 'IPv4' : 'IPv6');

export class ProxyMetrics {
  readonly registry: Registry;
  readonly syncProxyRulesLatency: Histogram<'ip_family'>;
  readonly syncFullProxyRulesLatency: Histogram<'ip_family'>;
  readonly syncPartialProxyRulesLatency: Histogram<'ip_family'>;
  readonly syncProxyRulesLastTimestamp: Gauge<'ip_family'>;
  readonly syncProxyRulesLastQueuedTimestamp: Gauge<'ip_family'>;
  readonly networkProgrammingLatency: Histogram<'ip_family'>;
  readonly endpointChangesPending: Gauge<'ip_family'>;
  readonly endpointChangesTotal: Counter<'ip_family'>;
  readonly serviceChangesPending: Gauge<'ip_family'>;
  readonly serviceChangesTotal: Counter<'ip_family'>;
  readonly iptablesRestoreFailuresTotal: Counter<'ip_family'>;
  readonly iptablesPartialRestoreFailuresTotal: Counter<'ip_family'>;
  readonly iptablesRulesTotal: Gauge<'table' | 'ip_family'>;
  readonly iptablesRulesLast: Gauge<'table' | 'ip_family'>;
  readonly noLocalEndpointsTotal: Gauge<'traffic_policy' | 'ip_family'>;
  readonly nftablesSyncFailuresTotal: Counter<'ip_family'>;
  readonly proxyHealthzTotal: Counter<'code'>;
  readonly proxyLivezTotal: Counter<'code'>;
  readonly reconcileConntrackFlowsLatency: Histogram<'ip_family'>;
  readonly reconcileConntrackFlowsDeletedEntriesTotal: Counter<'ip_family'>;

  constructor(registry: Registry = newRegistry({ defaultMetrics: true, component: 'kube-proxy' })) {
    this.registry = registry;
    const registers = [registry];
    const hist = (name: string, help: string, buckets: number[]): Histogram<'ip_family'> =>
      new Histogram({ name: `kubeproxy_${name}`, help, buckets, labelNames: ['ip_family'], registers });
    const gauge = (name: string, help: string): Gauge<'ip_family'> => new Gauge({ name: `kubeproxy_${name}`, help, labelNames: ['ip_family'], registers });
    const counter = (name: string, help: string): Counter<'ip_family'> => new Counter({ name: `kubeproxy_${name}`, help, labelNames: ['ip_family'], registers });
    const syncBuckets = exponentialBuckets(0.001, 2, 15);
    this.syncProxyRulesLatency = hist('sync_proxy_rules_duration_seconds', 'SyncProxyRules latency in seconds', syncBuckets);
    this.syncFullProxyRulesLatency = hist('sync_full_proxy_rules_duration_seconds', 'SyncProxyRules latency in seconds for full resyncs', syncBuckets);
    this.syncPartialProxyRulesLatency = hist('sync_partial_proxy_rules_duration_seconds', 'SyncProxyRules latency in seconds for partial resyncs', syncBuckets);
    this.syncProxyRulesLastTimestamp = gauge('sync_proxy_rules_last_timestamp_seconds', 'The last time proxy rules were successfully synced');
    this.syncProxyRulesLastQueuedTimestamp = gauge('sync_proxy_rules_last_queued_timestamp_seconds', 'The last time a sync of proxy rules was queued');
    this.networkProgrammingLatency = hist('network_programming_duration_seconds', 'In Cluster Network Programming Latency in seconds', networkProgrammingBuckets());
    this.endpointChangesPending = gauge('sync_proxy_rules_endpoint_changes_pending', 'Pending proxy rules Endpoint changes');
    this.endpointChangesTotal = counter('sync_proxy_rules_endpoint_changes_total', 'Cumulative proxy rules Endpoint changes');
    this.serviceChangesPending = gauge('sync_proxy_rules_service_changes_pending', 'Pending proxy rules Service changes');
    this.serviceChangesTotal = counter('sync_proxy_rules_service_changes_total', 'Cumulative proxy rules Service changes');
    this.iptablesRestoreFailuresTotal = counter('sync_proxy_rules_iptables_restore_failures_total', 'Cumulative proxy iptables restore failures');
    this.iptablesPartialRestoreFailuresTotal = counter('sync_proxy_rules_iptables_partial_restore_failures_total', 'Cumulative proxy iptables partial restore failures');
    this.iptablesRulesTotal = new Gauge({ name: 'kubeproxy_sync_proxy_rules_iptables_total', help: 'Total number of iptables rules owned by kube-proxy', labelNames: ['table', 'ip_family'], registers });
    this.iptablesRulesLast = new Gauge({ name: 'kubeproxy_sync_proxy_rules_iptables_last', help: 'Number of iptables rules written by kube-proxy in last sync', labelNames: ['table', 'ip_family'], registers });
    this.noLocalEndpointsTotal = new Gauge({
      name: 'kubeproxy_sync_proxy_rules_no_local_endpoints_total',
      help: 'Number of services with a Local traffic policy and no endpoints',
      labelNames: ['traffic_policy', 'ip_family'],
      registers,
    });
    this.nftablesSyncFailuresTotal = counter('sync_proxy_rules_nftables_sync_failures_total', 'Cumulative proxy nftables sync failures');
    this.proxyHealthzTotal = new Counter({ name: 'kubeproxy_proxy_healthz_total', help: 'Cumulative proxy healthz HTTP status', labelNames: ['code'], registers });
    this.proxyLivezTotal = new Counter({ name: 'kubeproxy_proxy_livez_total', help: 'Cumulative proxy livez HTTP status', labelNames: ['code'], registers });
    this.reconcileConntrackFlowsLatency = hist('conntrack_reconciler_sync_duration_seconds', 'ReconcileConntrackFlowsLatency latency in seconds', exponentialBuckets(0.001, 2, 15));
    this.reconcileConntrackFlowsDeletedEntriesTotal = counter('conntrack_reconciler_deleted_entries_total', 'Cumulative conntrack flows deleted by conntrack reconciler');
  }
}
