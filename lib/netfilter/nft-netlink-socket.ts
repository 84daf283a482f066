// A blocking NETLINK_NETFILTER socket for nf_tables batches, over the
// runtime's libc (koffi on Node). Why not the event-driven `netlink` addon:
// a batch must be ONE sendmsg, and a cold start at 10,000 services is tens of
// megabytes; the addon can raise SO_SNDBUF only up to net.core.wmem_max
// (4 MiB here), while SO_SNDBUFFORCE (CAP_NET_ADMIN, which a proxy has) takes
// any size. The kernel processes a batch inside sendmsg, so every answer is
// queued by the time sendto returns: send() then drains them. The event loop
// waits for the kernel's commit, as it would for any synchronous syscall.
import { ErrnoError, NetError } from '../errors.ts';
import type { NetlinkSocket } from '../netlink/conn.ts';
import { libc } from '../runtime/node.ts';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_RCVTIMEO = 20;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const MSG_DONTWAIT = 0x40;
const MSG_PEEK = 0x2;
const MSG_TRUNC = 0x20;
const EPERM = 1;
const EINTR = 4;
const EAGAIN = 11;
const ENOBUFS = 105;
/** Answers to a batch arrive before sendto returns; this only guards against a kernel that never answers. */
const RECV_TIMEOUT_S = 60;

function sockaddrNl(port: number): Buffer {
  const sa = Buffer.alloc(12);
  sa.writeUInt16LE(AF_NETLINK, 0);
  sa.writeUInt32LE(port >>> 0, 4);
  return sa;
}
const KERNEL = sockaddrNl(0);

function int(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return b;
}

export class BlockingNetlinkSocket implements NetlinkSocket {
  private readonly fd: number;
  private buf = Buffer.allocUnsafe(64 * 1024);
  private closed = false;

  constructor(
    protocol: number,
    private readonly onMessage: (msg: Buffer) => void,
    private readonly onError: (err: Error) => void,
  ) {
    this.fd = libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (this.fd < 0) throw new ErrnoError('socket', libc.errno());
    try {
      const timeout = Buffer.alloc(16);
      timeout.writeBigInt64LE(BigInt(RECV_TIMEOUT_S), 0);
      this.opt(SOL_SOCKET, SO_RCVTIMEO, timeout, 'SO_RCVTIMEO');
      // Errors then carry only the failing message's header, not its whole body.
      this.opt(SOL_NETLINK, NETLINK_CAP_ACK, int(1), 'NETLINK_CAP_ACK');
    } catch (err) {
      libc.close(this.fd);
      throw err;
    }
  }

  private opt(level: number, name: number, v: Buffer, what: string): void {
    if (libc.setsockopt(this.fd, level, name, v, v.length) < 0) throw new ErrnoError('setsockopt', libc.errno(), what);
  }

  /** The FORCE variant (CAP_NET_ADMIN) first, else the one capped by net.core.[rw]mem_max. */
  private bufSize(force: number, plain: number, n: number, what: string): void {
    if (libc.setsockopt(this.fd, SOL_SOCKET, force, int(n), 4) >= 0) return;
    if (libc.errno() !== EPERM) throw new ErrnoError('setsockopt', libc.errno(), what);
    this.opt(SOL_SOCKET, plain, int(n), what);
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
      if ((err as ErrnoError).errno === ENOBUFS) this.discardQueued();
      this.onError(err as Error);
    }
  }

  private discardQueued(): void {
    while (libc.recv(this.fd, this.buf, this.buf.length, MSG_DONTWAIT | MSG_TRUNC) >= 0 || libc.errno() === ENOBUFS);
  }

  private receive(): Buffer {
    const size = this.recvRetrying(this.buf, MSG_PEEK | MSG_TRUNC);
    if (size > this.buf.length) this.buf = Buffer.allocUnsafe(size);
    const n = this.recvRetrying(this.buf, 0);
    // A copy: the caller may keep it past the next receive.
    return Buffer.from(this.buf.subarray(0, n));
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
    throw new NetError('UNSUPPORTED', 'the blocking nf_tables socket takes no subscriptions');
  }

  setRecvBufferSize(n: number): void {
    this.bufSize(SO_RCVBUFFORCE, SO_RCVBUF, n, 'SO_RCVBUF');
  }

  setSendBufferSize(n: number): void {
    this.bufSize(SO_SNDBUFFORCE, SO_SNDBUF, n, 'SO_SNDBUF');
  }

  ref(): void {}
  unref(): void {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc.close(this.fd);
  }
}
