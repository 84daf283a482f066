// The Node.js side of the runtime seam: libc through koffi, the netlink
// socket through the `netlink` package's native binding (event driven, on
// libuv). lib/runtime/bun.ts exports the same names for Bun; the Bun build
// resolves this module to that one, so neither addon enters a Bun
// executable. Only lib/sys and lib/netlink import this module.
import type { NetlinkSocket } from '../netlink/conn.ts';
import type { Libc } from '../sys/libc.ts';
import { loadNative } from '../sys/native.ts';

export const runtimeName: 'node' | 'bun' = 'node';

let loaded: Libc | undefined;

function loadLibc(): Libc {
  if (loaded) return loaded;
  // koffi's native module carries its whole API; its JS wrapper only adds
  // deprecation shims, so the addon is used directly.
  const koffi = loadNative<typeof import('koffi')>('koffi');
  const lib = koffi.load('libc.so.6');
  const flock = lib.func('int flock(int fd, int op)');
  loaded = {
    setns: lib.func('int setns(int fd, int nstype)'),
    unshare: lib.func('int unshare(int flags)'),
    mount: lib.func('int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const void *data)'),
    umount2: lib.func('int umount2(const char *target, int flags)'),
    flock,
    flockAsync: (fd, op, cb) => flock.async(fd, op, cb),
    ioctlPtr: lib.func('int ioctl(int fd, unsigned long req, void *arg)'),
    ioctlInt: lib.func('int ioctl(int fd, unsigned long req, unsigned long arg)'),
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    bind: lib.func('int bind(int fd, const void *addr, uint32_t len)'),
    setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
    sendto: lib.func('long sendto(int fd, const void *buf, unsigned long n, int flags, const void *addr, uint32_t alen)'),
    recv: lib.func('long recv(int fd, void *buf, unsigned long n, int flags)'),
    close: lib.func('int close(int fd)'),
    eventfd: lib.func('int eventfd(unsigned int initval, int flags)'),
    errno: () => koffi.errno(),
  };
  return loaded;
}

/** libc, loaded on first use so a command that needs none of it does not pay for koffi. */
export const libc: Libc = new Proxy({} as Libc, { get: (_t, name) => loadLibc()[name as keyof Libc] });

/** The `netlink` package's native socket binding (its JS wrapper is not used). */
interface NativeNetlink {
  bind(port: number, groups: number): void;
  send(port: number, groups: number, msg: Uint8Array, cb: (err?: Error) => void): void;
  close(): void;
  unref(): void;
  ref(): void;
  addMembership(group: number): void;
  setRecvBufferSize(n: number): unknown;
  setSendBufferSize(n: number): unknown;
}
type NativeNetlinkCtor = new (protocol: number, msgBuffer: number, onMessage: (msg: Buffer) => void, onError: (err: Error) => void) => NativeNetlink;

/**
 * Event driven: a send returns at once and the replies reach `onMessage`
 * from libuv's poll as they arrive, so requests pipeline freely.
 */
export class NetlinkSocketImpl implements NetlinkSocket {
  private readonly native: NativeNetlink;

  constructor(protocol: number, onMessage: (msg: Buffer) => void, onError: (err: Error) => void) {
    const { NativeNetlink } = loadNative<{ NativeNetlink: NativeNetlinkCtor }>('netlink');
    // msgBuffer 0 = peek the message size first, so large dumps are never truncated.
    this.native = new NativeNetlink(protocol, 0, onMessage, onError);
  }

  bind(port: number): void {
    this.native.bind(port, 0);
  }

  send(msg: Uint8Array, _awaiting: () => boolean, cb: (err?: Error) => void): void {
    this.native.send(0, 0, msg, cb);
  }

  addMembership(group: number): void {
    this.native.addMembership(group);
  }

  setRecvBufferSize(n: number): void {
    this.native.setRecvBufferSize(n);
  }

  setSendBufferSize(n: number): void {
    this.native.setSendBufferSize(n);
  }

  ref(): void {
    this.native.ref();
  }

  unref(): void {
    this.native.unref();
  }

  close(): void {
    this.native.close();
  }
}
