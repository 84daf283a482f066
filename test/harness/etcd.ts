// A real etcd (Debian etcd-server, /usr/bin/etcd) for root tests, running
// INSIDE a test network namespace, never in the machine's own one.
//
// How the test process reaches it: `enterNetns()` moves the test worker's
// main thread into the namespace for the duration of a test file and returns
// a function that moves it back. libuv opens TCP sockets on the main thread,
// so every gRPC connection etcd3 makes afterwards is created inside the
// namespace, and a socket stays in the namespace it was created in. Call
// `leave()` in afterAll, after closing the clients. Vitest's own IPC channel
// was opened before and is unaffected.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from '../../lib/abort.ts';
import { Etcd3 } from 'etcd3';
import { Handle } from '../../lib/netlink/index.ts';

export const ETCD_BIN = '/usr/bin/etcd';

/** Moves the calling thread into a namespace; see lib/netns. */
export { enterNetns } from '../../lib/netns/index.ts';

export interface EtcdServer {
  /** Client URL, reachable from inside the namespace. */
  readonly endpoint: string;
  readonly pid: number;
  readonly dataDir: string;
  /** Kills etcd by PID, waits for it to exit and removes the data dir. Idempotent. */
  stop(): Promise<void>;
}

export interface StartEtcdOptions {
  /** Path of the namespace to run in (/var/run/netns/<name>). */
  nsPath: string;
  /** Address inside the namespace to listen on; default 127.0.0.1 (lo is brought up). */
  host?: string;
  clientPort?: number;
  peerPort?: number;
  /** Milliseconds to wait for health. */
  timeoutMs?: number;
}

/**
 * Starts etcd in the namespace with a fresh temp data dir and waits until it
 * answers a Status call. The calling thread must already be inside the
 * namespace (see enterNetns), since the health check connects from here.
 */
export async function startEtcd(opts: StartEtcdOptions): Promise<EtcdServer> {
  if (!isInNetns(opts.nsPath)) throw new Error('startEtcd: enterNetns(nsPath) first');
  const host = opts.host ?? '127.0.0.1';
  const clientPort = opts.clientPort ?? 2379;
  const peerPort = opts.peerPort ?? 2380;
  // lo is down in a fresh namespace.
  const h = Handle.open({ netns: opts.nsPath });
  try {
    const lo = await h.linkByName('lo');
    if (!lo.up) await h.linkSetUp(lo.index);
  } finally {
    h.close();
  }
  const dataDir = await mkdtemp(join(tmpdir(), 'kn-etcd-'));
  const client = `http://${host}:${clientPort}`;
  const peer = `http://${host}:${peerPort}`;
  const args = [
    `--net=${opts.nsPath}`,
    ETCD_BIN,
    '--name', 'test',
    '--data-dir', dataDir,
    '--listen-client-urls', client,
    '--advertise-client-urls', client,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `test=${peer}`,
    '--initial-cluster-state', 'new',
    '--log-level', 'warn',
  ];
  // nsenter execs etcd, so the child's PID is etcd's PID.
  const child: ChildProcess = spawn('nsenter', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (!stopped) {
      stopped = true;
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        process.kill(child.pid, 'SIGTERM');
        const t = setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
        }, 5000);
        await exited;
        clearTimeout(t);
      }
    }
    await rm(dataDir, { recursive: true, force: true });
  };
  if (child.pid === undefined) {
    await stop();
    throw new Error('failed to spawn etcd');
  }
  const pid = child.pid;
  try {
    await waitHealthy(client, opts.timeoutMs ?? 20_000, () => child.exitCode !== null);
  } catch (err) {
    await stop();
    throw new Error(`etcd did not become healthy: ${(err as Error).message}\n${stderr}`);
  }
  return { endpoint: client, pid, dataDir, stop };
}

async function waitHealthy(endpoint: string, timeoutMs: number, dead: () => boolean): Promise<void> {
  const c = new Etcd3({ hosts: endpoint, dialTimeout: 1000 });
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  try {
    while (Date.now() < deadline) {
      if (dead()) throw new Error('etcd exited');
      try {
        await c.maintenance.status({ deadline: new Date(Date.now() + 1000) });
        return;
      } catch (err) {
        last = err;
        await sleep(100);
      }
    }
    throw new Error(`timeout: ${(last as Error | undefined)?.message ?? ''}`);
  } finally {
    c.close();
  }
}

/** Whether the calling thread is in the namespace at `nsPath`. */
export function isInNetns(nsPath: string): boolean {
  const a = openSync('/proc/thread-self/ns/net', 'r');
  try {
    return fstatSync(a).ino === statSync(nsPath).ino;
  } finally {
    closeSync(a);
  }
}
