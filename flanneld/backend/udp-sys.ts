// libc calls the udp backend needs on the main thread and Node does not
// expose as plain fds: a UDP socket (created inside the node's namespace,
// handed to the datapath threads by number), an eventfd, and the TUN device.
// (Candidates for lib/sys; kept here while that file has another owner.)
import { closeSync, constants as fsc, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ErrnoError } from '../../lib/errors.ts';
import { IFF_NO_PI, IFF_TUN, TUNSETIFF, ioctl } from '../../lib/sys/index.ts';
import { withNetnsSync } from '../../lib/netns/index.ts';
import { parseAddr } from '../subnet/prefix.ts';

interface Fns {
  socket: (domain: number, type: number, proto: number) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  setsockopt: (fd: number, level: number, name: number, val: Buffer, len: number) => number;
  eventfd: (initval: number, flags: number) => number;
  errno: () => number;
}
let fns: Fns | undefined;
function load(): Fns {
  if (fns) return fns;
  const require = createRequire(import.meta.url);
  const koffi = require('koffi') as typeof import('koffi');
  const lib = koffi.load('libc.so.6');
  fns = {
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    bind: lib.func('int bind(int fd, const void *addr, uint32_t len)'),
    setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
    eventfd: lib.func('int eventfd(unsigned int initval, int flags)'),
    errno: () => koffi.errno(),
  };
  return fns;
}

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;

/** A blocking UDP socket bound to ip:port, created in the namespace `nsFd` (null: current). */
export function udpSocketIn(nsFd: number | null, ip: string, port: number, bufBytes = 4 << 20): number {
  const f = load();
  const fd = withNetnsSync(nsFd, () => f.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd < 0) throw new ErrnoError('socket', f.errno());
  try {
    const sa = Buffer.alloc(16);
    sa.writeUInt16LE(AF_INET, 0);
    sa.writeUInt16BE(port, 2);
    sa.writeUInt32BE(Number(parseAddr(ip).value), 4);
    if (f.bind(fd, sa, 16) < 0) throw new ErrnoError('bind', f.errno(), `${ip}:${port}`);
    const v = Buffer.alloc(4);
    v.writeInt32LE(bufBytes);
    // Best effort: larger buffers absorb bursts; failure only costs throughput.
    f.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, v, 4);
    f.setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, v, 4);
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

export function eventFd(): number {
  const f = load();
  const fd = f.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) throw new ErrnoError('eventfd', f.errno());
  return fd;
}

/**
 * Creates (or attaches to) the TUN device `name` in the namespace `nsFd`:
 * /dev/net/tun is opened and TUNSETIFF issued while the thread is in the
 * namespace, so the device is born there. Returns the non-blocking fd; the
 * device lives as long as the fd is open.
 */
export function openTunIn(nsFd: number | null, name: string): number {
  return withNetnsSync(nsFd, () => {
    const fd = openSync('/dev/net/tun', fsc.O_RDWR | fsc.O_NONBLOCK);
    try {
      const ifr = Buffer.alloc(40);
      ifr.write(name, 0, 15, 'latin1');
      ifr.writeUInt16LE(IFF_TUN | IFF_NO_PI, 16);
      ioctl(fd, TUNSETIFF, ifr);
      return fd;
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  });
}
