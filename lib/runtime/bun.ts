// The Bun side of the runtime seam (same exports as ./node.ts): libc through
// bun:ffi, and a netlink socket made of plain blocking libc calls. A CNI
// plugin is a short-lived process with nothing else to do while the kernel
// answers, so, like the Go reference plugins, it simply waits in recv(2).
import { dlopen, ptr, read, type Pointer } from 'bun:ffi';
import type { Libc } from '../sys/libc.ts';
import { blockingNetlinkSocket } from './blocking-netlink.ts';

export const runtimeName: 'node' | 'bun' = 'bun';

const SYMBOLS = {
  setns: { args: ['i32', 'i32'], returns: 'i32' },
  unshare: { args: ['i32'], returns: 'i32' },
  mount: { args: ['ptr', 'ptr', 'ptr', 'u64', 'ptr'], returns: 'i32' },
  umount2: { args: ['ptr', 'i32'], returns: 'i32' },
  flock: { args: ['i32', 'i32'], returns: 'i32' },
  // Both ioctl variants: the pointer one passes the buffer's address.
  ioctl: { args: ['i32', 'u64', 'u64'], returns: 'i32' },
  socket: { args: ['i32', 'i32', 'i32'], returns: 'i32' },
  bind: { args: ['i32', 'ptr', 'u32'], returns: 'i32' },
  setsockopt: { args: ['i32', 'i32', 'i32', 'ptr', 'u32'], returns: 'i32' },
  sendto: { args: ['i32', 'ptr', 'u64', 'i32', 'ptr', 'u32'], returns: 'i64_fast' },
  recv: { args: ['i32', 'ptr', 'u64', 'i32'], returns: 'i64_fast' },
  close: { args: ['i32'], returns: 'i32' },
  eventfd: { args: ['u32', 'i32'], returns: 'i32' },
  __errno_location: { args: [], returns: 'ptr' },
} as const;

/** A NUL-terminated copy of `s` for a `const char *` argument. */
const cstr = (s: string | null): Buffer | null => (s === null ? null : Buffer.from(`${s}\0`));

let loaded: Libc | undefined;

function loadLibc(): Libc {
  if (loaded) return loaded;
  const c = dlopen('libc.so.6', SYMBOLS).symbols;
  // errno is thread-local at a fixed address per thread; all our calls are on
  // the one JS thread. It is copied right after a failing call, before any
  // other code can run a system call that would overwrite it.
  const errnoAt = c.__errno_location() as Pointer;
  let lastErrno = 0;
  const rc = (r: number | bigint): number => {
    const n = Number(r);
    if (n < 0) lastErrno = read.i32(errnoAt, 0);
    return n;
  };
  const flock = (fd: number, op: number): number => rc(c.flock(fd, op));
  loaded = {
    setns: (fd, nstype) => rc(c.setns(fd, nstype)),
    unshare: (flags) => rc(c.unshare(flags)),
    mount: (src, target, fstype, flags, data) => rc(c.mount(cstr(src), cstr(target), cstr(fstype), flags, data)),
    umount2: (target, flags) => rc(c.umount2(cstr(target), flags)),
    flock,
    // No FFI worker threads here: the lock is taken blocking, which is what
    // a single-threaded plugin waiting for its store lock does anyway.
    flockAsync: (fd, op, cb) => cb(null, flock(fd, op)),
    ioctlPtr: (fd, req, arg) => rc(c.ioctl(fd, req, ptr(arg))),
    ioctlInt: (fd, req, arg) => rc(c.ioctl(fd, req, arg)),
    socket: (domain, type, proto) => rc(c.socket(domain, type, proto)),
    bind: (fd, addr, len) => rc(c.bind(fd, addr, len)),
    setsockopt: (fd, level, name, val, len) => rc(c.setsockopt(fd, level, name, val, len)),
    sendto: (fd, buf, n, flags, addr, alen) => rc(c.sendto(fd, buf, n, flags, addr, alen)),
    recv: (fd, buf, n, flags) => rc(c.recv(fd, buf, n, flags)),
    close: (fd) => rc(c.close(fd)),
    eventfd: (initval, flags) => rc(c.eventfd(initval, flags)),
    errno: () => lastErrno,
  };
  return loaded;
}

/** libc, opened on first use (as on Node) so a VERSION call does not pay for dlopen. */
export const libc: Libc = new Proxy({} as Libc, { get: (_t, name) => loadLibc()[name as keyof Libc] });

/**
 * Requests per send. The kernel answers a whole send before we read, and an
 * ACK costs about 1 KiB of the receive buffer (208 KiB by default), so 128
 * ACKs always fit; more would be dropped with ENOBUFS.
 */
const MAX_BATCH_MESSAGES = 128;

/** The plugins' netlink socket: blocking (blocking-netlink.ts), as a short-lived plugin wants. */
export const NetlinkSocketImpl = blockingNetlinkSocket(libc, {
  recvTimeoutS: 30,
  maxBatchMessages: MAX_BATCH_MESSAGES,
  noMulticast: 'netlink multicast subscriptions need the Node.js runtime',
});
