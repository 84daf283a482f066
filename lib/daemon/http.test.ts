import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Gauge, Registry } from 'prom-client';
import { daemonHandlers, startHttpServer } from './http.ts';
import type { HttpServer } from './http.ts';

let srv: HttpServer | undefined;
let dir: string | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Reply {
  status: number;
  body: string;
  type: string | undefined;
}

// Over a Unix socket: unit tests open no TCP ports in the machine's namespace.
function call(socketPath: string, path: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: res.headers['content-type'] }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function serve(handlers: Parameters<typeof startHttpServer>[0]['handlers']): Promise<string> {
  dir = mkdtempSync(join(tmpdir(), 'daemon-http-'));
  const sock = join(dir, 'h.sock');
  srv = await startHttpServer({ host: '', port: 0, socketPath: sock, handlers });
  return sock;
}

describe('daemon HTTP server', () => {
  it('serves /healthz, flips /readyz from 503 to 200, exposes /metrics', async () => {
    const registry = new Registry();
    new Gauge({ name: 'flannel_test_peers', help: 'peers', registers: [registry] }).set(3);
    let ready = false;
    const sock = await serve(daemonHandlers({ name: 'flanneld', registry, readiness: () => ({ ready, reason: 'subnet.env not written' }) }));
    expect(await call(sock, '/healthz')).toEqual({ status: 200, body: 'flanneld is running', type: 'text/plain; charset=utf-8' });
    expect(await call(sock, '/readyz')).toMatchObject({ status: 503, body: 'flanneld is not ready: subnet.env not written' });
    ready = true;
    expect(await call(sock, '/readyz?verbose')).toMatchObject({ status: 200, body: 'flanneld is ready' });
    const m = await call(sock, '/metrics');
    expect(m.status).toBe(200);
    expect(m.type).toBe(registry.contentType);
    expect(m.body).toContain('flannel_test_peers 3');
    expect(await call(sock, '/nope')).toMatchObject({ status: 404, body: '404 page not found\n' });
    expect(await call(sock, '/healthz', 'POST')).toMatchObject({ status: 405 });
  });

  it('without readiness there is no /readyz; a failing handler answers 500', async () => {
    const sock = await serve({
      ...daemonHandlers({ name: 'netpolicy', registry: new Registry() }),
      '/broken': () => {
        throw new Error('no state yet');
      },
    });
    expect(await call(sock, '/healthz')).toMatchObject({ status: 200, body: 'netpolicy is running' });
    expect((await call(sock, '/readyz')).status).toBe(404);
    expect(await call(sock, '/broken')).toMatchObject({ status: 500, body: 'broken: no state yet\n' });
    expect((await call(sock, '/constructor')).status).toBe(404);
  });
});
