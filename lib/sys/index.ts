// The only FFI seam: a handful of libc calls Node core does not expose,
// made through the runtime's libc (lib/runtime: koffi on Node, bun:ffi on
// Bun; each loads on first use, so a command that needs none of them does
// not pay for it). Errors are ErrnoErrors on both runtimes alike.
import { ErrnoError } from '../errors.ts';
import { libc } from '../runtime/node.ts';

export const CLONE_NEWNET = 0x40000000;
export const CLONE_NEWNS = 0x00020000;
export const MS_BIND = 4096;
export const MS_REC = 16384;
export const MS_SHARED = 1 << 20;
export const MNT_DETACH = 2;
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;
export const TUNSETIFF = 0x400454ca;
export const IFF_TUN = 0x0001;
export const IFF_NO_PI = 0x1000;
export const IFF_MULTI_QUEUE = 0x0100;
export const IFF_VNET_HDR = 0x4000;
export const TUNSETOFFLOAD = 0x400454d0;
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const MSG_DONTWAIT = 0x40;
export const MSG_NOSIGNAL = 0x4000;
export const SOL_SOCKET = 1;
export const SOL_UDP = 17;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;
export const UDP_SEGMENT = 103;
export const UDP_GRO = 104;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;

function check(op: string, rc: number, detail?: string): void {
  if (rc < 0) throw new ErrnoError(op, libc.errno(), detail);
}

export function setns(fd: number, nstype: number): void {
  check('setns', libc.setns(fd, nstype));
}

export function unshare(flags: number): void {
  check('unshare', libc.unshare(flags));
}

export function mount(src: string | null, target: string, fstype: string | null, flags: number): void {
  check('mount', libc.mount(src, target, fstype, flags, null), target);
}

export function umount2(target: string, flags: number): void {
  check('umount2', libc.umount2(target, flags), target);
}

/** Blocking flock on the calling thread. */
export function flockSync(fd: number, op: number): void {
  check('flock', libc.flock(fd, op));
}

/** flock that waits on a koffi worker thread on Node, leaving the event loop free (blocking on Bun). */
export function flock(fd: number, op: number): Promise<void> {
  return new Promise((resolve, reject) => {
    libc.flockAsync(fd, op, (err, rc) => {
      if (err) reject(err);
      else if (rc < 0) reject(new ErrnoError('flock', libc.errno()));
      else resolve();
    });
  });
}

/** ioctl with a pointer argument (the buffer is passed in and out). */
export function ioctl(fd: number, req: number, arg: Buffer): number {
  const rc = libc.ioctlPtr(fd, req, arg);
  check('ioctl', rc);
  return rc;
}

/** ioctl with an integer argument passed by value (e.g. TUNSETOFFLOAD). */
export function ioctlInt(fd: number, req: number, arg: number): number {
  const rc = libc.ioctlInt(fd, req, arg);
  check('ioctl', rc);
  return rc;
}

/** socket(2); returns the fd. */
export function socket(domain: number, type: number, protocol: number): number {
  const fd = libc.socket(domain, type, protocol);
  check('socket', fd);
  return fd;
}

/** A `struct sockaddr_in` for an IPv4 address given as an unsigned 32-bit number. */
export function sockaddrIn(addr: number, port: number): Buffer {
  const sa = Buffer.alloc(16);
  sa.writeUInt16LE(AF_INET, 0);
  sa.writeUInt16BE(port, 2);
  sa.writeUInt32BE(addr >>> 0, 4);
  return sa;
}

/**
 * A `struct sockaddr_un` for a filesystem path, or for an abstract-namespace
 * name when `path` starts with '@' (Linux: a leading NUL, length without a
 * terminator, as systemd's NOTIFY_SOCKET convention has it).
 */
export function sockaddrUn(path: string): Buffer {
  const abstract = path.startsWith('@');
  const name = Buffer.from(abstract ? path.slice(1) : path);
  // sun_path is 108 bytes; a path needs room for its NUL terminator.
  if (name.length + 1 > 108) throw new RangeError(`unix socket path too long (${name.length} bytes): ${path}`);
  const sa = Buffer.alloc(2 + 1 + name.length);
  sa.writeUInt16LE(AF_UNIX, 0);
  name.copy(sa, abstract ? 3 : 2);
  // Abstract: 2 + NUL + name, all significant. Path: 2 + name + NUL.
  return sa;
}

/** sendto(2) of one datagram to a sockaddr buffer; returns the bytes sent. */
export function sendto(fd: number, data: Buffer, flags: number, addr: Buffer, detail?: string): number {
  const n = libc.sendto(fd, data, data.length, flags, addr, addr.length);
  check('sendto', n, detail);
  return n;
}

/** recv(2) into `buf`; returns the bytes received (use MSG_DONTWAIT or a non-blocking socket on the event loop). */
export function recv(fd: number, buf: Buffer, flags: number): number {
  const n = libc.recv(fd, buf, buf.length, flags);
  check('recv', n);
  return n;
}

/** bind(2) to a sockaddr buffer (see sockaddrIn); `detail` names the address in the error. */
export function bind(fd: number, addr: Buffer, detail?: string): void {
  check('bind', libc.bind(fd, addr, addr.length), detail);
}

/** setsockopt(2) with an int value. */
export function setsockoptInt(fd: number, level: number, name: number, value: number): void {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value);
  check('setsockopt', libc.setsockopt(fd, level, name, v, 4), `level ${level} name ${name}`);
}

/** eventfd(2); returns the fd. */
export function eventfd(initval: number, flags: number): number {
  const fd = libc.eventfd(initval, flags);
  check('eventfd', fd);
  return fd;
}
