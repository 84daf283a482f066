// A daemon's small HTTP server (health, readiness, Prometheus metrics):
// handlers registered by path, GET and HEAD only, 404 for anything else.
// What a daemon serves where is its own choice; daemonHandlers() gives
// the common set:
//   GET /healthz  200 "<name> is running" while the process serves (liveness)
//   GET /readyz   200 "<name> is ready", or 503 "<name> is not ready: <reason>"
//   GET /metrics  the registry in Prometheus text exposition
import { createServer } from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface HttpReply {
  status: number;
  body: string;
  /** Default text/plain; charset=utf-8. */
  contentType?: string;
}

export type HttpHandler = (req: IncomingMessage) => HttpReply | Promise<HttpReply>;

export interface Readiness {
  ready: boolean;
  /** Why not ready yet (shown in the 503 body). */
  reason: string;
}

export interface HttpServerOptions {
  host: string;
  port: number;
  /** Listen on this Unix socket instead of host:port (tests). */
  socketPath?: string;
  /** By exact path (no query string). */
  handlers: Readonly<Record<string, HttpHandler>>;
}

export interface HttpServer {
  /** The bound port (useful with port 0). */
  port: number;
  close(): Promise<void>;
}

const TEXT = 'text/plain; charset=utf-8';

const text = (status: number, body: string): HttpReply => ({ status, body });

/** The registry's metrics, in its content type. */
export function metricsHandler(registry: Registry): HttpHandler {
  return async () => ({ status: 200, body: await registry.metrics(), contentType: registry.contentType });
}

/** /healthz, /metrics and, with `readiness`, /readyz, with the bodies in the header. */
export function daemonHandlers(opts: { name: string; registry: Registry; readiness?: () => Readiness }): Record<string, HttpHandler> {
  const { name, readiness } = opts;
  return {
    '/healthz': () => text(200, `${name} is running`),
    ...(readiness
      ? {
          '/readyz': () => {
            const r = readiness();
            return r.ready ? text(200, `${name} is ready`) : text(503, `${name} is not ready: ${r.reason}`);
          },
        }
      : {}),
    '/metrics': metricsHandler(opts.registry),
  };
}

export function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': TEXT, allow: 'GET, HEAD' }).end('method not allowed\n');
      return;
    }
    const handler = Object.hasOwn(opts.handlers, path) ? opts.handlers[path] : undefined;
    if (!handler) {
      res.writeHead(404, { 'content-type': TEXT }).end('404 page not found\n');
      return;
    }
    // A handler that throws answers 500; the server itself never fails a request silently.
    Promise.resolve()
      .then(() => handler(req))
      .then(
        (r) => res.writeHead(r.status, { 'content-type': r.contentType ?? TEXT }).end(r.body),
        (err: unknown) => res.writeHead(500, { 'content-type': TEXT }).end(`${path.slice(1)}: ${err instanceof Error ? err.message : String(err)}\n`),
      );
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
