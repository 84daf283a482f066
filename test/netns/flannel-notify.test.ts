// flanneld tells systemd about its life as upstream does (sd_notify over
// NOTIFY_SOCKET): READY=1 once it serves (lease acquired, subnet.env
// written), WATCHDOG=1 while WATCHDOG_USEC asks for it, STOPPING=1 on
// SIGTERM. The built executable runs in a node namespace against a real
// etcd; the notify socket is a unix datagram socket in a temp directory
// (a filesystem socket is reachable from any network namespace).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotifyReceiver } from '../../lib/daemon/testing.ts';
import { Cluster } from '../harness/cluster.ts';

describe('flanneld sd_notify', () => {
  let c: Cluster;
  let dir: string;
  let rx: NotifyReceiver;

  beforeAll(async () => {
    c = await Cluster.create({ nodes: 1, netConf: { Network: '10.244.0.0/16', Backend: { Type: 'host-gw' } } });
    dir = mkdtempSync(join(tmpdir(), 'kn-notify-'));
    rx = new NotifyReceiver(join(dir, 'notify'));
  }, 60_000);

  afterAll(async () => {
    rx?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    await c?.destroy();
  }, 60_000);

  it('READY=1 once serving, WATCHDOG=1 while running, STOPPING=1 on SIGTERM', async () => {
    const n = c.node(1);
    // The harness starts flanneld with this process's environment.
    const saved = { NOTIFY_SOCKET: process.env['NOTIFY_SOCKET'], WATCHDOG_USEC: process.env['WATCHDOG_USEC'] };
    process.env['NOTIFY_SOCKET'] = rx.path;
    process.env['WATCHDOG_USEC'] = '400000';
    let started: ReturnType<Cluster['startFlanneld']>;
    try {
      started = c.startFlanneld(n);
      await started;
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    const d = await started;
    const seen: string[] = [];
    const drain = (): string[] => {
      seen.push(...rx.drain());
      return seen;
    };
    await c.waitReady(n);
    // /readyz turns 200 and READY=1 is sent in the same synchronous step.
    expect(drain().filter((s) => s !== 'WATCHDOG=1')).toEqual(['READY=1']);
    expect(existsSync(n.subnetFile)).toBe(true);
    await c.until('a watchdog ping after READY=1', () => drain().lastIndexOf('WATCHDOG=1') > seen.indexOf('READY=1'));
    expect(await d.stop('SIGTERM')).toBe(0);
    expect(drain().filter((s) => s !== 'WATCHDOG=1')).toEqual(['READY=1', 'STOPPING=1']);
  });
});
