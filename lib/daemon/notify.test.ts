import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startWatchdog, systemdNotifier, watchdogTimeout } from './notify.ts';
import { NotifyReceiver as Receiver } from './testing.ts';

let dir: string;
let rx: Receiver | undefined;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sd-notify-'));
});
afterEach(() => {
  rx?.close();
  rx = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe('sd_notify', () => {
  it('sends READY=1 and STOPPING=1 as datagrams to NOTIFY_SOCKET', () => {
    rx = new Receiver(join(dir, 'notify'));
    const n = systemdNotifier({ NOTIFY_SOCKET: rx.path });
    expect(n.notify('READY=1')).toBe(true);
    expect(n.notify('STOPPING=1')).toBe(true);
    n.close();
    expect(rx.drain()).toEqual(['READY=1', 'STOPPING=1']);
  });

  it('reaches an abstract-namespace socket ("@name")', () => {
    const name = `@kn-sd-notify-test-${process.pid}-${Date.now()}`;
    rx = new Receiver(name);
    const n = systemdNotifier({ NOTIFY_SOCKET: name });
    n.notify('READY=1');
    n.close();
    expect(rx.drain()).toEqual(['READY=1']);
  });

  it('is a no-op without NOTIFY_SOCKET, and fails with the errno when nobody listens', () => {
    expect(systemdNotifier({}).notify('READY=1')).toBe(false);
    const n = systemdNotifier({ NOTIFY_SOCKET: join(dir, 'absent') });
    expect(() => n.notify('READY=1')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    n.close();
  });

  it('watchdog: WATCHDOG_USEC/2, only for our WATCHDOG_PID', () => {
    expect(watchdogTimeout({}, 42)).toBeUndefined();
    expect(watchdogTimeout({ WATCHDOG_USEC: '3000000' }, 42)).toBe(3000);
    expect(watchdogTimeout({ WATCHDOG_USEC: '3000000', WATCHDOG_PID: '42' }, 42)).toBe(3000);
    expect(watchdogTimeout({ WATCHDOG_USEC: '3000000', WATCHDOG_PID: '7' }, 42)).toBeUndefined();
    expect(watchdogTimeout({ WATCHDOG_USEC: 'soon' }, 42)).toBeUndefined();
  });

  it('pings WATCHDOG=1 every half timeout until stopped', () => {
    rx = new Receiver(join(dir, 'notify'));
    const n = systemdNotifier({ NOTIFY_SOCKET: rx.path });
    vi.useFakeTimers();
    try {
      const errors: unknown[] = [];
      const w = startWatchdog(n, 2000, (e) => errors.push(e));
      vi.advanceTimersByTime(999);
      expect(rx.drain()).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(rx.drain()).toEqual(['WATCHDOG=1']);
      vi.advanceTimersByTime(2000);
      expect(rx.drain()).toEqual(['WATCHDOG=1', 'WATCHDOG=1']);
      w.stop();
      vi.advanceTimersByTime(5000);
      expect(rx.drain()).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      vi.useRealTimers();
      n.close();
    }
  });
});
