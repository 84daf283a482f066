// The Bun side of the runtime seam (same exports as ./node.ts): libc through
// bun:ffi, and a netlink socket made of plain blocking libc calls. A CNI
// plugin is a short-lived process with nothing else to do while the kernel
// answers, so, like the Go reference plugins, it simply waits in recv(2).
import { dlopen, ptr, read, type Pointer } from 'bun:ffi';
import { ErrnoError, NetError } from '../errors.ts';
import type { NetlinkSocket } from '../netlink/conn.ts';
import type { Libc } from '../sys/libc.ts';

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

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_RCVBUFFORCE = 33;
const SO_RCVBUF = 8;
const SO_RCVTIMEO = 20;
const MSG_PEEK = 2;
const MSG_TRUNC = 0x20;
const MSG_DONTWAIT = 0x40;
const EPERM = 1;
const EINTR = 4;
const EAGAIN = 11;
const ENOBUFS = 105;
/**
 * Requests per send. The kernel answers a whole send before we read, and an
 * ACK costs about 1 KiB of the receive buffer (208 KiB by default), so 128
 * ACKs always fit; more would be dropped with ENOBUFS.
 */
const MAX_BATCH_MESSAGES = 128;
/** A kernel that has not answered in this long never will: fail instead of hanging the plugin. */
const RECV_TIMEOUT_S = 30;
/** The kernel caps a dump's datagrams at 32 KiB; twice that avoids regrowing for large single answers. */
const RECV_BUFFER_BYTES = 64 * 1024;

/** A `struct sockaddr_nl` (family, pad, port id, groups). */
function sockaddrNl(port: number): Buffer {
  const sa = Buffer.alloc(12);
  sa.writeUInt16LE(AF_NETLINK, 0);
  sa.writeUInt32LE(port >>> 0, 4);
  return sa;
}

const KERNEL = sockaddrNl(0);

/**
 * Blocking: send() writes the requests with sendto(2), then receives and
 * delivers datagrams until none of the requests it sent is unanswered
 * (`awaiting()` false). Nothing is in flight between two sends, so there is
 * no poller, no ref/unref and no multicast: subscriptions are Node only.
 */
export class NetlinkSocketImpl implements NetlinkSocket {
  readonly maxBatchMessages = MAX_BATCH_MESSAGES;
  private readonly fd: number;
  private buf = Buffer.allocUnsafe(RECV_BUFFER_BYTES);
  private closed = false;

  constructor(
    protocol: number,
    private readonly onMessage: (msg: Buffer) => void,
    private readonly onError: (err: Error) => void,
  ) {
    this.fd = libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (this.fd < 0) throw new ErrnoError('socket', libc.errno());
    const timeout = Buffer.alloc(16); // struct timeval { tv_sec, tv_usec }, 64-bit fields
    timeout.writeBigInt64LE(BigInt(RECV_TIMEOUT_S), 0);
    if (libc.setsockopt(this.fd, SOL_SOCKET, SO_RCVTIMEO, timeout, timeout.length) < 0) {
      const errno = libc.errno();
      libc.close(this.fd);
      throw new ErrnoError('setsockopt', errno, 'SO_RCVTIMEO');
    }
  }

  bind(port: number): void {
    const sa = sockaddrNl(port);
    if (libc.bind(this.fd, sa, sa.length) < 0) throw new ErrnoError('bind', libc.errno());
  }

  send(msg: Uint8Array, awaiting: () => boolean, cb: (err?: Error) => void): void {
    const data = Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength);
    for (;;) {
      if (libc.sendto(this.fd, data, data.length, 0, KERNEL, KERNEL.length) >= 0) break;
      const errno = libc.errno();
      if (errno === EINTR) continue;
      cb(new ErrnoError('sendto', errno));
      return;
    }
    cb();
    try {
      while (!this.closed && awaiting()) this.onMessage(this.receive());
    } catch (err) {
      // After an overrun the kernel has dropped answers: throw away what is
      // still queued, so the next send starts from an empty queue and reads
      // only its own answers.
      if ((err as ErrnoError).errno === ENOBUFS) this.discardQueued();
      this.onError(err as Error);
    }
  }

  private discardQueued(): void {
    while (libc.recv(this.fd, this.buf, this.buf.length, MSG_DONTWAIT | MSG_TRUNC) >= 0 || libc.errno() === ENOBUFS);
  }

  /** One whole datagram: its size is peeked first so a large answer is never truncated. */
  private receive(): Buffer {
    const size = this.recvRetrying(this.buf, MSG_PEEK | MSG_TRUNC);
    if (size > this.buf.length) this.buf = Buffer.allocUnsafe(size);
    const n = this.recvRetrying(this.buf, 0);
    return this.buf.subarray(0, n);
  }

  private recvRetrying(buf: Buffer, flags: number): number {
    for (;;) {
      const n = libc.recv(this.fd, buf, buf.length, flags);
      if (n >= 0) return n;
      const errno = libc.errno();
      if (errno === EAGAIN) throw new ErrnoError('recv', errno, `no answer from the kernel within ${RECV_TIMEOUT_S} s`);
      if (errno !== EINTR) throw new ErrnoError('recv', errno);
    }
  }

  addMembership(_group: number): void {
    throw new NetError('UNSUPPORTED', 'netlink multicast subscriptions need the Node.js runtime');
  }

  setRecvBufferSize(n: number): void {
    const v = Buffer.alloc(4);
    v.writeInt32LE(n);
    // SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it the capped SO_RCVBUF is the best there is.
    if (libc.setsockopt(this.fd, SOL_SOCKET, SO_RCVBUFFORCE, v, 4) >= 0) return;
    if (libc.errno() !== EPERM || libc.setsockopt(this.fd, SOL_SOCKET, SO_RCVBUF, v, 4) < 0) {
      throw new ErrnoError('setsockopt', libc.errno(), 'SO_RCVBUF');
    }
  }

  ref(): void {}

  unref(): void {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc.close(this.fd);
  }
}
