// The libc calls the project makes, as one interface with one
// implementation per runtime (lib/runtime/node.ts: koffi; lib/runtime/bun.ts:
// bun:ffi). Every call returns the C return value unchanged; errno() reads
// the errno the most recent failed call left, which lib/sys turns into an
// ErrnoError. Strings are passed as JS strings (the implementation adds the
// NUL terminator), buffers by pointer.
export interface Libc {
  setns(fd: number, nstype: number): number;
  unshare(flags: number): number;
  mount(src: string | null, target: string, fstype: string | null, flags: number, data: null): number;
  umount2(target: string, flags: number): number;
  flock(fd: number, op: number): number;
  /**
   * flock that does not hold up the caller's event loop where the runtime can
   * wait on another thread (Node: a koffi worker); calls `cb` with the return
   * value. A runtime without one blocks and calls back before returning.
   */
  flockAsync(fd: number, op: number, cb: (err: unknown, rc: number) => void): void;
  ioctlPtr(fd: number, req: number, arg: Buffer): number;
  ioctlInt(fd: number, req: number, arg: number): number;
  socket(domain: number, type: number, proto: number): number;
  bind(fd: number, addr: Buffer, len: number): number;
  setsockopt(fd: number, level: number, name: number, val: Buffer, len: number): number;
  sendto(fd: number, buf: Buffer, n: number, flags: number, addr: Buffer | null, alen: number): number;
  recv(fd: number, buf: Buffer, n: number, flags: number): number;
  close(fd: number): number;
  eventfd(initval: number, flags: number): number;
  /** errno of the last failed call on this thread. */
  errno(): number;
}
