// The small server `up` starts in every pod (`netstack serve`, run inside the
// pod's netns): for each TCP port an echo server that answers an HTTP
// request with 200 and "<namespace>/<name>\n", and for each UDP port a
// datagram echo. It listens on all addresses (IPv4 and IPv6).
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import type { Socket as UdpSocket } from 'node:dgram';
import type { Server } from 'node:net';

export interface ServeOptions {
  readonly name: string;
  readonly tcp: readonly number[];
  readonly udp: readonly number[];
}

export async function serve(o: ServeOptions, signal: AbortSignal): Promise<void> {
  const servers: Server[] = [];
  const sockets: UdpSocket[] = [];
  for (const port of o.tcp) {
    const s = createServer((c) => {
      c.on('error', () => c.destroy());
      c.once('data', (first: Buffer) => {
        if (/^(GET|HEAD|POST|PUT) /.test(first.toString('latin1', 0, 8))) {
          const body = `${o.name}\n`;
          c.end(`HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
          return;
        }
        c.write(first);
        c.pipe(c);
      });
    });
    await listenAny((host, cb) => s.listen({ port, host, ipv6Only: false }, cb), s);
    servers.push(s);
  }
  for (const port of o.udp) {
    let u: UdpSocket;
    try {
      u = await bindUdp('udp6', port);
    } catch {
      // No IPv6 in this namespace.
      u = await bindUdp('udp4', port);
    }
    sockets.push(u);
  }
  process.stdout.write(`serving ${o.name}: tcp ${o.tcp.join(',') || '-'} udp ${o.udp.join(',') || '-'}\n`);
  await new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
  for (const s of servers) s.close();
  for (const u of sockets) u.close();
}

function bindUdp(type: 'udp4' | 'udp6', port: number): Promise<UdpSocket> {
  const u = createSocket(type === 'udp6' ? { type, ipv6Only: false } : { type });
  u.on('message', (msg, rinfo) => u.send(msg, rinfo.port, rinfo.address));
  return new Promise((resolve, reject) => {
    u.once('error', (e) => {
      u.close();
      reject(e);
    });
    u.bind(port, type === 'udp6' ? '::' : '0.0.0.0', () => {
      u.removeAllListeners('error');
      u.on('error', () => undefined);
      resolve(u);
    });
  });
}

/** Listens on '::' (both families), or on 0.0.0.0 where the namespace has no IPv6. */
async function listenAny(listen: (host: string, cb: () => void) => void, s: Server): Promise<void> {
  for (const host of ['::', '0.0.0.0']) {
    try {
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        listen(host, () => {
          s.removeListener('error', reject);
          resolve();
        });
      });
      return;
    } catch (err) {
      if (host === '0.0.0.0') throw err;
    }
  }
}
