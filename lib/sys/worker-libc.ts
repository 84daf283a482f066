// libc bindings for worker threads, as JavaScript source text. An eval'd
// worker (the only kind a single-file executable can start) cannot import
// this package, so it gets the declarations as source and the koffi addon as
// a file path: nativeAddonPath('koffi') from ./native.ts, which is the copy
// the main thread itself loaded (materialised from the executable, or the
// one in node_modules in development). Still the one FFI seam: every libc
// prototype the project uses is declared in lib/sys.
//
// The source defines `openLibc(addonPath)`, returning:
//   koffi, errno(), address(buffer) → number,
//   read(fd, buf, n), write(fd, buf, n), readAt(fd, addr, n), writeAt(fd, addr, n),
//   recv(fd, buf, n, flags), recvmsg(fd, msghdr, flags), sendto(fd, addr, n, flags, sa, salen),
//   sendmsg(fd, msghdr, flags), setsockopt(fd, level, name, buf, len), poll(fds, n, timeoutMs)
// (`addr` arguments are raw addresses from address(), for slices of a buffer).
// Only take the address of a buffer larger than 64 bytes: V8 keeps smaller
// typed arrays on its moving heap, so a stored address would go stale.
export const WORKER_LIBC_SRC = String.raw`
function openLibc(addonPath) {
  const mod = { exports: {} };
  process.dlopen(mod, addonPath);
  const koffi = mod.exports;
  const lib = koffi.load('libc.so.6');
  return {
    koffi,
    errno: () => koffi.errno(),
    address: (b) => Number(koffi.address(b)),
    read: lib.func('long read(int fd, void *buf, unsigned long n)'),
    write: lib.func('long write(int fd, const void *buf, unsigned long n)'),
    readAt: lib.func('long read(int fd, uintptr_t buf, unsigned long n)'),
    writeAt: lib.func('long write(int fd, uintptr_t buf, unsigned long n)'),
    recv: lib.func('long recv(int fd, void *buf, unsigned long n, int flags)'),
    recvmsg: lib.func('long recvmsg(int fd, void *msg, int flags)'),
    sendto: lib.func('long sendto(int fd, uintptr_t buf, unsigned long n, int flags, const void *addr, uint32_t alen)'),
    sendmsg: lib.func('long sendmsg(int fd, const void *msg, int flags)'),
    setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
    poll: lib.func('int poll(void *fds, unsigned long n, int timeout)'),
  };
}
`;
