// A blocking netlink socket over a libc binding (bun:ffi in the plugins,
// koffi in a daemon): send() writes the requests with sendto(2), then
// receives and delivers datagrams until none of the requests it sent is
// unanswered (`awaiting()` false). Nothing is in flight between two sends,
// so there is no poller, no ref/unref and no multicast.
//
// Two users: the CNI plugins' only netlink socket (lib/runtime/bun.ts), and
// kube-proxy's nf_tables batches (lib/netfilter/nft-netlink.ts), where a
// batch must be ONE sendmsg of up to tens of megabytes: SO_SNDBUFFORCE
// (CAP_NET_ADMIN) takes any size, the `netlink` addon's SO_SNDBUF stops at
// net.core.wmem_max. The kernel processes a send before sendto returns, so
// every answer is queued by then.
import { ErrnoError, NetError } from '../errors.ts';
import type { NetlinkSocket, NetlinkSocketCtor } from '../netlink/conn.ts';
import type { Libc } from '../sys/libc.ts';

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
const MSG_PEEK = 2;
const MSG_TRUNC = 0x20;
const MSG_DONTWAIT = 0x40;
const EPERM = 1;
const EINTR = 4;
const EAGAIN = 11;
const ENOBUFS = 105;
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

function int(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return b;
}

export interface BlockingOptions {
  /** A kernel that has not answered in this long never will: fail instead of hanging. */
  readonly recvTimeoutS: number;
  /** Requests per send (see NetlinkSocket.maxBatchMessages); undefined: no limit. */
  readonly maxBatchMessages?: number;
  /** NETLINK_CAP_ACK: errors carry only the failing message's header, not its body (big batches). */
  readonly capAck?: boolean;
  /** What addMembership says: blocking sockets take no subscriptions. */
  readonly noMulticast: string;
}

/** The socket class for a libc binding and options, as NetlinkConn takes it. */
export function blockingNetlinkSocket(libc: Libc, o: BlockingOptions): NetlinkSocketCtor & (new (...a: ConstructorParameters<NetlinkSocketCtor>) => BlockingNetlinkSocket) {
  return class extends BlockingNetlinkSocket {
    constructor(protocol: number, onMessage: (msg: Buffer) => void, onError: (err: Error) => void) {
      super(libc, o, protocol, onMessage, onError);
    }
  };
}

export class BlockingNetlinkSocket implements NetlinkSocket {
  readonly maxBatchMessages: number;
  private readonly fd: number;
  private buf = Buffer.allocUnsafe(RECV_BUFFER_BYTES);
  private closed = false;

  constructor(
    private readonly libc: Libc,
    private readonly o: BlockingOptions,
    protocol: number,
    private readonly onMessage: (msg: Buffer) => void,
    private readonly onError: (err: Error) => void,
  ) {
    this.maxBatchMessages = o.maxBatchMessages ?? Infinity;
    this.fd = libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (this.fd < 0) throw new ErrnoError('socket', libc.errno());
    try {
      const timeout = Buffer.alloc(16); // struct timeval { tv_sec, tv_usec }, 64-bit fields
      timeout.writeBigInt64LE(BigInt(o.recvTimeoutS), 0);
      this.opt(SOL_SOCKET, SO_RCVTIMEO, timeout, 'SO_RCVTIMEO');
      if (o.capAck) this.opt(SOL_NETLINK, NETLINK_CAP_ACK, int(1), 'NETLINK_CAP_ACK');
    } catch (err) {
      libc.close(this.fd);
      throw err;
    }
  }

  private opt(level: number, name: number, v: Buffer, what: string): void {
    if (this.libc.setsockopt(this.fd, level, name, v, v.length) < 0) throw new ErrnoError('setsockopt', this.libc.errno(), what);
  }

  /** The FORCE variant (CAP_NET_ADMIN) first, else the one capped by net.core.[rw]mem_max. */
  private bufSize(force: number, plain: number, n: number, what: string): void {
    if (this.libc.setsockopt(this.fd, SOL_SOCKET, force, int(n), 4) >= 0) return;
    if (this.libc.errno() !== EPERM) throw new ErrnoError('setsockopt', this.libc.errno(), what);
    this.opt(SOL_SOCKET, plain, int(n), what);
  }

  bind(port: number): void {
    const sa = sockaddrNl(port);
    if (this.libc.bind(this.fd, sa, sa.length) < 0) throw new ErrnoError('bind', this.libc.errno());
  }

  send(msg: Uint8Array, awaiting: () => boolean, cb: (err?: Error) => void): void {
    const data = Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength);
    for (;;) {
      if (this.libc.sendto(this.fd, data, data.length, 0, KERNEL, KERNEL.length) >= 0) break;
      const errno = this.libc.errno();
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
    while (this.libc.recv(this.fd, this.buf, this.buf.length, MSG_DONTWAIT | MSG_TRUNC) >= 0 || this.libc.errno() === ENOBUFS);
  }

  /** One whole datagram (its size is peeked first, so a large answer is never truncated), as a copy the caller may keep. */
  private receive(): Buffer {
    const size = this.recvRetrying(this.buf, MSG_PEEK | MSG_TRUNC);
    if (size > this.buf.length) this.buf = Buffer.allocUnsafe(size);
    const n = this.recvRetrying(this.buf, 0);
    return Buffer.from(this.buf.subarray(0, n));
  }

  private recvRetrying(buf: Buffer, flags: number): number {
    for (;;) {
      const n = this.libc.recv(this.fd, buf, buf.length, flags);
      if (n >= 0) return n;
      const errno = this.libc.errno();
      if (errno === EAGAIN) throw new ErrnoError('recv', errno, `no answer from the kernel within ${this.o.recvTimeoutS} s`);
      if (errno !== EINTR) throw new ErrnoError('recv', errno);
    }
  }

  addMembership(_group: number): void {
    throw new NetError('UNSUPPORTED', this.o.noMulticast);
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
    this.libc.close(this.fd);
  }
}
