// The proxy health server's state and handlers (k/k pkg/proxy/healthcheck/
// proxy_health.go). Each family's proxier says when a sync was queued and
// when one succeeded; /healthz is unhealthy when an update has waited longer
// than healthTimeout (2 × syncPeriod) without a successful sync, or when the
// Node is being deleted or is tainted for deletion by the cluster autoscaler
// (KEP-3836). /livez ignores the Node. The bodies are upstream's, byte for
// byte, including Go's time.Time formatting.
import type { V1Node } from '@kubernetes/client-node';
import type { HttpReply } from '../../lib/daemon/http.ts';
import type { Family } from '../../lib/ip/index.ts';
import type { ProxyMetrics } from '../metrics.ts';

export const TAINT_TO_BE_DELETED = 'ToBeDeletedByClusterAutoscaler';

/** A wall-clock reading with its monotonic offset, as Go's time.Now() carries both. */
export interface Instant {
  readonly wallMs: number;
  /** Seconds since the process started (Go prints it as `m=+S.NNNNNNNNN`); undefined for a zero time. */
  readonly monoSeconds: number | undefined;
}

export interface HealthClock {
  now(): Instant;
}

export const systemHealthClock: HealthClock = {
  now: () => ({ wallMs: Date.now(), monoSeconds: performance.now() / 1000 }),
};

/** Go's zero time.Time: what lastUpdated is before the first successful sync. */
const ZERO: Instant = { wallMs: Number.NEGATIVE_INFINITY, monoSeconds: undefined };

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** Go's time.Time.String() of a UTC time: "2006-01-02 15:04:05.999999999 +0000 UTC m=+1.000000001". */
export function goTimeString(t: Instant): string {
  if (t.wallMs === Number.NEGATIVE_INFINITY) return '0001-01-01 00:00:00 +0000 UTC';
  const d = new Date(t.wallMs);
  const frac = pad(d.getUTCMilliseconds(), 3).replace(/0+$/, '');
  const base = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${frac === '' ? '' : `.${frac}`} +0000 UTC`;
  return t.monoSeconds === undefined ? base : `${base} m=+${t.monoSeconds.toFixed(9)}`;
}

/** Whether the Node may receive load-balancer traffic: not being deleted, not tainted for deletion. */
export function nodeEligible(node: V1Node | undefined): boolean {
  if (!node) return true;
  if (node.metadata?.deletionTimestamp !== undefined && node.metadata.deletionTimestamp !== null) return false;
  return !(node.spec?.taints ?? []).some((t) => t.key === TAINT_TO_BE_DELETED);
}

export class ProxyHealth {
  private readonly oldestPendingQueued = new Map<Family, Instant>();
  private readonly lastUpdated = new Map<Family, Instant>();
  private node: V1Node | undefined;

  constructor(
    readonly families: readonly Family[],
    /** 2 × syncPeriod in upstream's server.go. */
    readonly healthTimeoutMs: number,
    private readonly clock: HealthClock = systemHealthClock,
  ) {}

  /** A sync was asked for (upstream QueuedUpdate): keeps the oldest pending one. */
  queuedUpdate(family: Family): void {
    if (!this.oldestPendingQueued.has(family)) this.oldestPendingQueued.set(family, this.clock.now());
  }

  /** A sync succeeded (upstream Updated). */
  updated(family: Family): void {
    this.oldestPendingQueued.delete(family);
    this.lastUpdated.set(family, this.clock.now());
  }

  setNode(node: V1Node | undefined): void {
    this.node = node;
  }

  /** Healthy unless some family has an update queued for longer than the timeout. */
  health(): { healthy: boolean; lastUpdated: Instant; now: Instant } {
    const now = this.clock.now();
    let healthy = true;
    let lastUpdated = ZERO;
    for (const f of this.families) {
      const last = this.lastUpdated.get(f);
      if (last && last.wallMs > lastUpdated.wallMs) lastUpdated = last;
      const queued = this.oldestPendingQueued.get(f);
      if (queued && now.wallMs - queued.wallMs > this.healthTimeoutMs) healthy = false;
    }
    return { healthy, lastUpdated, now };
  }

  get nodeEligible(): boolean {
    return nodeEligible(this.node);
  }
}

const JSON_HEADERS = { 'content-type': 'application/json', 'x-content-type-options': 'nosniff' };

export interface HealthReply extends HttpReply {
  readonly headers: Readonly<Record<string, string>>;
}

function reply(h: ProxyHealth, withNode: boolean): HealthReply {
  const eligible = h.nodeEligible;
  const { healthy: syncHealthy, now } = h.health();
  let { lastUpdated } = h.health();
  const healthy = syncHealthy && (!withNode || eligible);
  // Upstream: a healthy answer reports lastUpdated as now (older releases' semantics).
  if (healthy) lastUpdated = now;
  const body = withNode
    ? `{"lastUpdated": ${JSON.stringify(goTimeString(lastUpdated))},"currentTime": ${JSON.stringify(goTimeString(now))}, "nodeEligible": ${eligible}}`
    : `{"lastUpdated": ${JSON.stringify(goTimeString(lastUpdated))},"currentTime": ${JSON.stringify(goTimeString(now))}}`;
  return { status: healthy ? 200 : 503, body, contentType: 'application/json', headers: JSON_HEADERS };
}

/** GET /healthz. */
export function healthzReply(h: ProxyHealth, metrics?: ProxyMetrics): HealthReply {
  const r = reply(h, true);
  metrics?.proxyHealthzTotal.inc({ code: String(r.status) });
  return r;
}

/** GET /livez: the sync state only. */
export function livezReply(h: ProxyHealth, metrics?: ProxyMetrics): HealthReply {
  const r = reply(h, false);
  metrics?.proxyLivezTotal.inc({ code: String(r.status) });
  return r;
}
