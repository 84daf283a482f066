import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../log.ts';
import { untilAborted } from '../abort.ts';
import { runDaemon } from './lifecycle.ts';
import type { DaemonHost } from './lifecycle.ts';
import { NotifyReceiver } from './testing.ts';

/** A process stand-in: signals and fatal events are emitted by the test; exit() is recorded. */
class Host extends EventEmitter implements DaemonHost {
  readonly exits: number[] = [];
  constructor(readonly env: Record<string, string | undefined> = {}, readonly pid = 4242) {
    super();
  }
  exit(code: number): void {
    this.exits.push(code);
  }
}

/** A logger whose JSON lines the test reads. */
function capture(): { log: ReturnType<typeof createLogger>; lines: () => { level: string; msg: string; [k: string]: unknown }[] } {
  const out: string[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(chunk.toString());
      cb();
    },
  });
  const log = createLogger({ name: 'testd', format: 'json', destination: dest });
  return { log, lines: () => out.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as never) };
}

let dir: string;
let rx: NotifyReceiver;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'daemon-life-'));
  rx = new NotifyReceiver(join(dir, 'notify'));
});
afterEach(() => {
  rx.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('runDaemon', () => {
  it('SIGTERM aborts the signal; a clean end exits 0; systemd hears READY=1 then STOPPING=1', async () => {
    const host = new Host({ NOTIFY_SOCKET: rx.path });
    const { log, lines } = capture();
    let started: () => void = () => {};
    const running = new Promise<void>((r) => (started = r));
    const code = runDaemon(
      {
        name: 'testd',
        log,
        run: async ({ signal, ready }) => {
          ready();
          started();
          await untilAborted(signal);
        },
      },
      host,
    );
    await running;
    expect(rx.drain()).toEqual(['READY=1']);
    host.emit('SIGTERM');
    expect(await code).toBe(0);
    expect(rx.drain()).toEqual(['STOPPING=1']);
    expect(host.exits).toEqual([]);
    expect(lines().map((l) => [l.level, l.msg, l['signal']])).toEqual([
      ['info', 'shutting down', 'SIGTERM'],
      ['info', 'exiting cleanly', undefined],
    ]);
    // Everything it registered on the process is gone again.
    expect(host.eventNames()).toEqual([]);
  });

  it('a failing run exits 1 with "<name> failed", the error and its code', async () => {
    const host = new Host({ NOTIFY_SOCKET: rx.path });
    const { log, lines } = capture();
    const err = Object.assign(new Error('lease lost'), { code: 'LEASE_LOST' });
    expect(await runDaemon({ name: 'testd', log, run: () => Promise.reject(err) }, host)).toBe(1);
    expect(lines()).toEqual([expect.objectContaining({ level: 'error', msg: 'testd failed', err: { message: 'lease lost', code: 'LEASE_LOST' } })]);
    expect(rx.drain()).toEqual(['STOPPING=1']);
  });

  it('a second signal exits at once with 128+signo', async () => {
    const host = new Host();
    const { log } = capture();
    let release: () => void = () => {};
    const stuck = new Promise<void>((r) => (release = r));
    const code = runDaemon({ name: 'testd', log, run: () => stuck }, host);
    host.emit('SIGINT');
    expect(host.exits).toEqual([]);
    host.emit('SIGINT');
    host.emit('SIGTERM');
    expect(host.exits).toEqual([130, 143]);
    release();
    expect(await code).toBe(0);
  });

  it('an unhandled rejection or uncaught exception is logged and fatal', async () => {
    const host = new Host({ NOTIFY_SOCKET: rx.path });
    const { log, lines } = capture();
    const ac = new AbortController();
    const code = runDaemon({ name: 'testd', log, run: () => untilAborted(ac.signal) }, host);
    host.emit('unhandledRejection', new Error('floating'));
    host.emit('uncaughtException', new Error('thrown'));
    expect(host.exits).toEqual([1, 1]);
    expect(lines().map((l) => [l.level, l.msg, l['err']])).toEqual([
      ['fatal', 'unhandled rejection', { message: 'floating' }],
      ['fatal', 'uncaught exception', { message: 'thrown' }],
    ]);
    expect(rx.drain()).toEqual(['STOPPING=1']);
    ac.abort();
    await code;
  });

  it('pings the watchdog while running when systemd asks for it', async () => {
    const host = new Host({ NOTIFY_SOCKET: rx.path, WATCHDOG_USEC: '20000', WATCHDOG_PID: '4242' });
    const { log } = capture();
    const seen: string[] = [];
    const ac = new AbortController();
    const code = runDaemon(
      {
        name: 'testd',
        log,
        // Runs until the first ping has arrived (every 10 ms here).
        run: async () => {
          while (!seen.includes('WATCHDOG=1')) {
            seen.push(...rx.drain());
            await new Promise((r) => setTimeout(r, 5));
          }
          ac.abort();
        },
      },
      host,
    );
    expect(await code).toBe(0);
    expect(seen).toContain('WATCHDOG=1');
  });
});
