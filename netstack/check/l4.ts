// TCP connect and UDP echo probes from inside a network namespace, in this
// process: the socket is created with socket(2) while the thread is in the
// namespace (withNetnsSync, DESIGN.md rule 3), then handed to Node's own net
// and dgram by its fd (net.Socket({ fd }), dgram bind({ fd })), which connect
// and poll it on the event loop. A socket stays in the namespace it was born
// in, so no await ever runs inside one.
import dgram from 'node:dgram';
import net from 'node:net';
import { closeSync } from 'node:fs';
import { errnoName } from '../../lib/errors.ts';
import type { Family } from '../../lib/ip/index.ts';
import { withNetnsSync } from '../../lib/netns/index.ts';
import { AF_INET, AF_INET6, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_STREAM, socket } from '../../lib/sys/index.ts';

export interface L4Result {
  readonly outcome: 'open' | 'refused' | 'timeout' | 'unreachable' | 'error';
  readonly detail?: string;
}

const UNREACHABLE = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EACCES', 'EPERM']);

function socketIn(nsFd: number | null, family: Family, type: number): number {
  return withNetnsSync(nsFd, () => socket(family === 6 ? AF_INET6 : AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
}

function classify(err: unknown): L4Result {
  const code = (err as NodeJS.ErrnoException).code ?? (typeof (err as NodeJS.ErrnoException).errno === 'number' ? errnoName(-(err as NodeJS.ErrnoException).errno!) : undefined);
  if (code === 'ECONNREFUSED') return { outcome: 'refused', detail: code };
  if (code && UNREACHABLE.has(code)) return { outcome: 'unreachable', detail: code };
  return { outcome: 'error', detail: code ?? (err as Error).message };
}

/** A TCP handshake to ip:port from the namespace `nsFd`: open, refused (RST), unreachable, or timeout. */
export function tcpProbe(nsFd: number | null, family: Family, ip: string, port: number, timeoutMs: number): Promise<L4Result> {
  let fd: number;
  try {
    fd = socketIn(nsFd, family, SOCK_STREAM);
  } catch (err) {
    return Promise.resolve({ outcome: 'error', detail: (err as Error).message });
  }
  let s: net.Socket;
  try {
    s = new net.Socket({ fd, readable: true, writable: true });
  } catch (err) {
    closeSync(fd);
    return Promise.resolve({ outcome: 'error', detail: (err as Error).message });
  }
  return new Promise<L4Result>((resolve) => {
    const done = (r: L4Result): void => {
      clearTimeout(timer);
      s.removeAllListeners();
      s.on('error', () => {});
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ outcome: 'timeout' }), timeoutMs);
    s.once('connect', () => done({ outcome: 'open' }));
    s.once('error', (err) => done(classify(err)));
    s.connect({ host: ip, port });
  });
}

/**
 * A UDP datagram to ip:port from the namespace `nsFd`, answered by an echo
 * of the same payload: open; refused (ICMP port unreachable on the connected
 * socket); unreachable; or timeout. The datagram is sent again every third
 * of the timeout (UDP has no retransmission of its own).
 */
export function udpProbe(nsFd: number | null, family: Family, ip: string, port: number, timeoutMs: number, tag: string): Promise<L4Result> {
  let fd: number;
  try {
    fd = socketIn(nsFd, family, SOCK_DGRAM);
  } catch (err) {
    return Promise.resolve({ outcome: 'error', detail: (err as Error).message });
  }
  const u = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
  const payload = Buffer.from(`netstack-check ${tag}`);
  return new Promise<L4Result>((resolve) => {
    let resend: NodeJS.Timeout | undefined;
    let settled = false;
    const done = (r: L4Result): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(resend);
      u.removeAllListeners();
      u.on('error', () => {});
      try {
        u.close();
      } catch {
        // already closed
      }
      resolve(r);
    };
    const timer = setTimeout(() => done({ outcome: 'timeout' }), timeoutMs);
    u.on('error', (err) => done(classify(err)));
    u.on('message', (msg) => {
      if (msg.equals(payload)) done({ outcome: 'open' });
    });
    const send = (): void => u.send(payload, (err) => err && done(classify(err)));
    try {
      u.bind({ fd }, () => {
        // Without a callback, a failed connect is an 'error' event.
        u.once('connect', () => {
          send();
          resend = setInterval(send, Math.max(50, Math.floor(timeoutMs / 3)));
        });
        u.connect(port, ip);
      });
    } catch (err) {
      // The handle did not take the fd: it is still ours to close.
      closeSync(fd);
      done({ outcome: 'error', detail: (err as Error).message });
    }
  });
}
