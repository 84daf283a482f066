// HTTP listeners of the health side: the proxy health server
// (--healthz-bind-address: /healthz, /livez) and one listener per
// health-check node port of an externalTrafficPolicy=Local LoadBalancer
// Service (k/k pkg/proxy/healthcheck/service_health.go), which answers every
// path with the count of ready local endpoints. node:http directly, because
// upstream's answers carry headers (nosniff, the endpoint weight) that
// lib/daemon's server does not set.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../../lib/log.ts';
import type { ProxyMetrics } from '../metrics.ts';
import { healthzReply, livezReply, type HealthReply, type ProxyHealth } from './proxy.ts';

export interface Listener {
  readonly port: number;
  close(): Promise<void>;
}

function send(req: IncomingMessage, res: ServerResponse, r: HealthReply): void {
  res.writeHead(r.status, r.headers);
  res.end(req.method === 'HEAD' ? undefined : r.body);
}

function listen(server: Server, host: string | undefined, port: number): Promise<Listener> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, ...(host === undefined ? {} : { host }) }, () => {
      server.off('error', reject);
      const a = server.address();
      resolve({
        port: typeof a === 'object' && a !== null ? a.port : port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

/** /healthz and /livez on host:port; other paths 404. */
export function startProxyHealthServer(health: ProxyHealth, host: string, port: number, metrics?: ProxyMetrics): Promise<Listener> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') send(req, res, healthzReply(health, metrics));
    else if (path === '/livez') send(req, res, livezReply(health, metrics));
    else res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' }).end('404 page not found\n');
  });
  return listen(server, host, port);
}

/** The body of a service health check, as upstream prints it (tab-indented JSON). */
export function serviceHealthBody(namespace: string, name: string, localEndpoints: number, proxyHealthy: boolean): string {
  return [
    '{',
    '\t"service": {',
    `\t\t"namespace": ${JSON.stringify(namespace)},`,
    `\t\t"name": ${JSON.stringify(name)}`,
    '\t},',
    `\t"localEndpoints": ${localEndpoints},`,
    `\t"serviceProxyHealthy": ${proxyHealthy}`,
    '}',
  ].join('\n');
}

/** 200 only with a ready local endpoint and a healthy proxy. */
export function serviceHealthReply(namespace: string, name: string, localEndpoints: number, proxyHealthy: boolean): HealthReply {
  return {
    status: localEndpoints > 0 && proxyHealthy ? 200 : 503,
    body: serviceHealthBody(namespace, name, localEndpoints, proxyHealthy),
    contentType: 'application/json',
    headers: { 'content-type': 'application/json', 'x-content-type-options': 'nosniff', 'x-load-balancing-endpoint-weight': String(localEndpoints) },
  };
}

interface HCServer {
  readonly port: number;
  /** By address ('' = all); an address whose bind failed is missing and retried at the next sync. */
  readonly listeners: Map<string, Listener>;
  localEndpoints: number;
}

/**
 * The health-check node port listeners: sync() with the wanted ports and the
 * local endpoint counts opens new ones, closes old ones and updates counts.
 * They listen on the node's --nodeport-addresses IPs when those are given
 * (k/k#82163), else on all addresses. A port that cannot be bound (in use)
 * is logged and tried again at the next sync; the others are unaffected.
 */
export class ServiceHealthServers {
  private readonly servers = new Map<string, HCServer>();

  constructor(
    private readonly health: ProxyHealth,
    private readonly log: Logger,
    /** The addresses to listen on; undefined (or a function returning it): all addresses. */
    private readonly hosts: (() => readonly string[] | undefined) | undefined = undefined,
  ) {}

  async sync(ports: ReadonlyMap<string, number>, localEndpoints: ReadonlyMap<string, number>): Promise<void> {
    for (const [svc, s] of this.servers) {
      if (ports.get(svc) === s.port) continue;
      this.servers.delete(svc);
      for (const l of s.listeners.values()) await l.close();
    }
    const hosts = new Set(this.hosts?.() ?? ['']);
    for (const [svc, port] of ports) {
      let s = this.servers.get(svc);
      if (!s) this.servers.set(svc, (s = { port, listeners: new Map(), localEndpoints: 0 }));
      s.localEndpoints = localEndpoints.get(svc) ?? 0;
      const entry = s;
      const slash = svc.indexOf('/');
      const [namespace, name] = [svc.slice(0, slash), svc.slice(slash + 1)];
      for (const [host, l] of entry.listeners) {
        if (hosts.has(host)) continue;
        entry.listeners.delete(host);
        await l.close();
      }
      for (const host of hosts) {
        if (entry.listeners.has(host)) continue;
        const server = createServer((req, res) => send(req, res, serviceHealthReply(namespace, name, entry.localEndpoints, this.health.health().healthy)));
        try {
          entry.listeners.set(host, await listen(server, host === '' ? undefined : host, port));
          this.log.info({ service: svc, port, host: host || '*' }, 'opened health check node port');
        } catch (err) {
          this.log.error({ err, service: svc, port, host: host || '*' }, 'failed to start health check node port, will retry at the next sync');
        }
      }
    }
  }

  /** The services with at least one listener, by port (tests, logs). */
  get open(): Map<string, number> {
    return new Map([...this.servers].filter(([, s]) => s.listeners.size > 0).map(([k, s]) => [k, s.port]));
  }

  async close(): Promise<void> {
    for (const s of this.servers.values()) for (const l of s.listeners.values()) await l.close();
    this.servers.clear();
  }
}
