// systemd readiness notification (sd_notify), as upstream flannel sends it
// through coreos/go-systemd daemon.SdNotify: one datagram per state change to
// the unix socket named by NOTIFY_SOCKET (a path, or '@name' for the abstract
// namespace). Without NOTIFY_SOCKET (not started by systemd with
// Type=notify) every call is a no-op, as in go-systemd.
//
//   READY=1     once the daemon serves (flanneld: lease acquired, subnet.env written)
//   STOPPING=1  when shutdown begins
//   WATCHDOG=1  every WATCHDOG_USEC/2 while running, when WATCHDOG_USEC is set
//               and WATCHDOG_PID is unset or ours (sd_watchdog_enabled)
//
// node:dgram has no unix datagram sockets, so the socket is lib/sys's.
import { closeSync } from 'node:fs';
import { AF_UNIX, MSG_DONTWAIT, MSG_NOSIGNAL, SOCK_CLOEXEC, SOCK_DGRAM, sendto, sockaddrUn, socket } from '../sys/index.ts';

export type NotifyEnv = Readonly<Record<string, string | undefined>>;

/** The watchdog period systemd expects a ping within (ms), or undefined when the watchdog is off for us. */
export function watchdogTimeout(env: NotifyEnv, pid: number): number | undefined {
  const usec = env['WATCHDOG_USEC'];
  if (usec === undefined || usec === '') return undefined;
  const n = Number(usec);
  if (!Number.isSafeInteger(n) || n <= 0) return undefined;
  const wpid = env['WATCHDOG_PID'];
  if (wpid !== undefined && wpid !== '' && Number(wpid) !== pid) return undefined;
  return n / 1000;
}

export interface Notifier {
  /** Sends one state string (e.g. "READY=1"); false when there is nowhere to send it. Throws ErrnoError. */
  notify(state: string): boolean;
  close(): void;
}

/** A notifier for NOTIFY_SOCKET, or one that drops everything when it is unset. */
export function systemdNotifier(env: NotifyEnv): Notifier {
  const path = env['NOTIFY_SOCKET'];
  if (path === undefined || path === '') return { notify: () => false, close: () => {} };
  return new SocketNotifier(path);
}

class SocketNotifier implements Notifier {
  readonly #path: string;
  readonly #addr: Buffer;
  #fd: number | undefined;

  constructor(path: string) {
    this.#path = path;
    this.#addr = sockaddrUn(path);
  }

  notify(state: string): boolean {
    // Opened on first use and kept: one socket for READY, STOPPING and every WATCHDOG ping.
    this.#fd ??= socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    // Never block the event loop on a busy systemd: a full queue is EAGAIN, reported to the caller.
    sendto(this.#fd, Buffer.from(state), MSG_DONTWAIT | MSG_NOSIGNAL, this.#addr, this.#path);
    return true;
  }

  close(): void {
    if (this.#fd === undefined) return;
    closeSync(this.#fd);
    this.#fd = undefined;
  }
}

/**
 * Pings WATCHDOG=1 every timeout/2 until stopped, as systemd recommends;
 * `onError` hears about a failed send (the next ping tries again).
 */
export function startWatchdog(notifier: Notifier, timeoutMs: number, onError: (err: unknown) => void): { stop(): void } {
  const ping = (): void => {
    try {
      notifier.notify('WATCHDOG=1');
    } catch (err) {
      onError(err);
    }
  };
  const timer = setInterval(ping, Math.max(1, Math.floor(timeoutMs / 2)));
  // The watchdog never keeps a daemon alive that has nothing else to do.
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
