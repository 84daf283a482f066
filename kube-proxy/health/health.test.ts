import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../lib/log.ts';
import { newRegistry } from '../../lib/metrics.ts';
import { ProxyMetrics } from '../metrics.ts';
import { goTimeString, healthzReply, livezReply, nodeEligible, ProxyHealth, type HealthClock, type Instant } from './proxy.ts';
import { ServiceHealthServers, serviceHealthReply, startProxyHealthServer } from './server.ts';

class Clock implements HealthClock {
  wallMs = Date.UTC(2026, 11, 3, 18, 0, 0, 120);
  mono = 5;
  now(): Instant {
    return { wallMs: this.wallMs, monoSeconds: this.mono };
  }
  tick(ms: number): void {
    this.wallMs += ms;
    this.mono += ms / 1000;
  }
}

describe('goTimeString', () => {
  it('prints as Go time.Time.String()', () => {
    expect(goTimeString({ wallMs: Date.UTC(2026, 11, 3, 18, 0, 0, 120), monoSeconds: 5.25 })).toBe('2026-12-03 18:00:00.12 +0000 UTC m=+5.250000000');
    expect(goTimeString({ wallMs: Date.UTC(2026, 0, 2, 3, 4, 5, 0), monoSeconds: undefined })).toBe('2026-01-02 03:04:05 +0000 UTC');
    expect(goTimeString({ wallMs: Number.NEGATIVE_INFINITY, monoSeconds: undefined })).toBe('0001-01-01 00:00:00 +0000 UTC');
  });
});

describe('ProxyHealth', () => {
  it('is healthy with nothing queued, and unhealthy when a queued update waits longer than the timeout', () => {
    const c = new Clock();
    const h = new ProxyHealth([4, 6], 60_000, c);
    expect(h.health().healthy).toBe(true);
    h.queuedUpdate(4);
    c.tick(60_000);
    expect(h.health().healthy).toBe(true);
    h.queuedUpdate(4); // the oldest pending one counts
    c.tick(1);
    expect(h.health().healthy).toBe(false);
    h.updated(4);
    expect(h.health().healthy).toBe(true);
    h.queuedUpdate(6);
    c.tick(60_001);
    expect(h.health().healthy).toBe(false);
  });

  it('answers /healthz with upstream JSON; healthy reports lastUpdated as now', () => {
    const c = new Clock();
    const m = new ProxyMetrics(newRegistry());
    const h = new ProxyHealth([4], 60_000, c);
    const r = healthzReply(h, m);
    expect(r.status).toBe(200);
    expect(r.headers).toEqual({ 'content-type': 'application/json', 'x-content-type-options': 'nosniff' });
    expect(r.body).toBe('{"lastUpdated": "2026-12-03 18:00:00.12 +0000 UTC m=+5.000000000","currentTime": "2026-12-03 18:00:00.12 +0000 UTC m=+5.000000000", "nodeEligible": true}');
    h.queuedUpdate(4);
    c.tick(60_001);
    const bad = healthzReply(h, m);
    expect(bad.status).toBe(503);
    expect(bad.body).toBe('{"lastUpdated": "0001-01-01 00:00:00 +0000 UTC","currentTime": "2026-12-03 18:01:00.121 +0000 UTC m=+65.001000000", "nodeEligible": true}');
  });

  it('fails /healthz but not /livez when the node is being deleted or tainted by the autoscaler', () => {
    const h = new ProxyHealth([4], 60_000, new Clock());
    h.setNode({ metadata: { name: 'n' }, spec: { taints: [{ key: 'ToBeDeletedByClusterAutoscaler', effect: 'NoSchedule' }] } });
    expect(healthzReply(h).status).toBe(503);
    expect(healthzReply(h).body).toContain('"nodeEligible": false');
    expect(livezReply(h).status).toBe(200);
    expect(nodeEligible({ metadata: { name: 'n', deletionTimestamp: new Date() } })).toBe(false);
    expect(nodeEligible({ metadata: { name: 'n' } })).toBe(true);
    expect(nodeEligible(undefined)).toBe(true);
  });
});

describe('service health check', () => {
  it('has upstream body and headers; 200 only with local endpoints and a healthy proxy', () => {
    const r = serviceHealthReply('ns', 'web', 2, true);
    expect(r.status).toBe(200);
    expect(r.body).toBe('{\n\t"service": {\n\t\t"namespace": "ns",\n\t\t"name": "web"\n\t},\n\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}');
    expect(r.headers['x-load-balancing-endpoint-weight']).toBe('2');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(serviceHealthReply('ns', 'web', 0, true).status).toBe(503);
    expect(serviceHealthReply('ns', 'web', 3, false).status).toBe(503);
  });

  it('opens, updates and closes health-check node port listeners', async () => {
    const h = new ProxyHealth([4], 60_000);
    const hc = new ServiceHealthServers(h, silentLogger(), () => ['127.0.0.1']);
    // Port 0 is not a valid node port; use a free port found by listening once.
    const probe = await startProxyHealthServer(h, '127.0.0.1', 0);
    const port = probe.port;
    await probe.close();
    try {
      await hc.sync(new Map([['ns/web', port]]), new Map([['ns/web', 1]]));
      let res = await fetch(`http://127.0.0.1:${port}/anything`);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-load-balancing-endpoint-weight')).toBe('1');
      expect(JSON.parse(await res.text())).toEqual({ service: { namespace: 'ns', name: 'web' }, localEndpoints: 1, serviceProxyHealthy: true });
      await hc.sync(new Map([['ns/web', port]]), new Map());
      res = await fetch(`http://127.0.0.1:${port}/`);
      expect(res.status).toBe(503);
      await res.text();
      await hc.sync(new Map(), new Map());
      expect(hc.open.size).toBe(0);
      await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
    } finally {
      await hc.close();
    }
  });

  it('listens on the given node addresses only, following changes', async () => {
    const h = new ProxyHealth([4], 60_000);
    let hosts = ['127.0.0.1'];
    const hc = new ServiceHealthServers(h, silentLogger(), () => hosts);
    const probe = await startProxyHealthServer(h, '127.0.0.1', 0);
    const port = probe.port;
    await probe.close();
    try {
      await hc.sync(new Map([['ns/web', port]]), new Map([['ns/web', 1]]));
      const ok = await fetch(`http://127.0.0.1:${port}/`);
      expect(ok.status).toBe(200);
      await ok.text();
      await expect(fetch(`http://127.0.0.2:${port}/`)).rejects.toThrow();
      hosts = ['127.0.0.2'];
      await hc.sync(new Map([['ns/web', port]]), new Map([['ns/web', 1]]));
      const moved = await fetch(`http://127.0.0.2:${port}/`);
      expect(moved.status).toBe(200);
      await moved.text();
      await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
    } finally {
      await hc.close();
    }
  });

  it('serves /healthz and /livez over HTTP', async () => {
    const h = new ProxyHealth([4], 60_000);
    const srv = await startProxyHealthServer(h, '127.0.0.1', 0);
    try {
      const res = await fetch(`http://127.0.0.1:${srv.port}/healthz`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json');
      expect(Object.keys(JSON.parse(await res.text()))).toEqual(['lastUpdated', 'currentTime', 'nodeEligible']);
      const nf = await fetch(`http://127.0.0.1:${srv.port}/nope`);
      expect(nf.status).toBe(404);
      await nf.text();
    } finally {
      await srv.close();
    }
  });
});
