// flanneld's HTTP endpoints (--healthz-ip/--healthz-port):
//   GET /healthz  200 "flanneld is running" while the process serves (liveness)
//   GET /readyz   200 once the traffic rules and subnet.env are in place, 503 with the reason before
//   GET /metrics  Prometheus text exposition
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface Readiness {
  ready: boolean;
  /** Why not ready yet (shown in the 503 body). */
  reason: string;
}

export interface HealthServerOptions {
  host: string;
  port: number;
  /** Listen on this Unix socket instead of host:port (tests). */
  socketPath?: string;
  registry: Registry;
  readiness: () => Readiness;
}

export interface HealthServer {
  /** The bound port (useful with port 0 in tests). */
  port: number;
  close(): Promise<void>;
}

export function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain; charset=utf-8', allow: 'GET, HEAD' }).end('method not allowed\n');
      return;
    }
    switch (path) {
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('flanneld is running');
        return;
      case '/readyz': {
        const r = opts.readiness();
        if (r.ready) res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('flanneld is ready');
        else res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' }).end(`flanneld is not ready: ${r.reason}`);
        return;
      }
      case '/metrics':
        opts.registry.metrics().then(
          (body) => res.writeHead(200, { 'content-type': opts.registry.contentType }).end(body),
          (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics: ${(err as Error).message}\n`),
        );
        return;
      default:
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const onListening = (): void => {
      server.off('error', reject);
      const a = server.address();
      const port = a !== null && typeof a === 'object' ? (a as AddressInfo).port : 0;
      resolve({
        port,
        close: () =>
          new Promise<void>((res) => {
            server.close(() => res());
            server.closeAllConnections();
          }),
      });
    };
    if (opts.socketPath !== undefined) server.listen(opts.socketPath, onListening);
    else server.listen(opts.port, opts.host, onListening);
  });
}
