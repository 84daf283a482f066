import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Gauge, Registry } from 'prom-client';
import { startHealthServer } from './http.ts';
import type { HealthServer } from './http.ts';

let srv: HealthServer | undefined;
let dir: string | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// Over a Unix socket: unit tests open no TCP ports in the machine's namespace.
function get(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('health server', () => {
  it('serves /healthz, flips /readyz from 503 to 200, exposes /metrics', async () => {
    dir = mkdtempSync(join(tmpdir(), 'flanneld-http-'));
    const sock = join(dir, 'h.sock');
    const registry = new Registry();
    new Gauge({ name: 'flannel_test_peers', help: 'peers', registers: [registry] }).set(3);
    let ready = false;
    srv = await startHealthServer({ host: '', port: 0, socketPath: sock, registry, readiness: () => ({ ready, reason: 'subnet.env not written' }) });
    expect(await get(sock, '/healthz')).toEqual({ status: 200, body: 'flanneld is running' });
    const r1 = await get(sock, '/readyz');
    expect(r1.status).toBe(503);
    expect(r1.body).toContain('subnet.env not written');
    ready = true;
    expect((await get(sock, '/readyz')).status).toBe(200);
    const m = await get(sock, '/metrics');
    expect(m.status).toBe(200);
    expect(m.body).toContain('flannel_test_peers 3');
    expect((await get(sock, '/nope')).status).toBe(404);
  });
});
