// The only FFI seam: a handful of libc calls Node core does not expose.
// koffi is loaded on first use so a plugin command that needs none of them
// does not pay for it.
import { ErrnoError } from '../errors.ts';
import { loadNative } from './native.ts';

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

interface Libc {
  setns: (fd: number, nstype: number) => number;
  unshare: (flags: number) => number;
  mount: (src: string | null, target: string, fstype: string | null, flags: number, data: null) => number;
  umount2: (target: string, flags: number) => number;
  flock: (fd: number, op: number) => number;
  ioctlPtr: (fd: number, req: number, arg: Buffer) => number;
  errno: () => number;
  flockAsync: (fd: number, op: number, cb: (err: unknown, res: number) => void) => void;
}

let libc: Libc | undefined;

function load(): Libc {
  if (libc) return libc;
  // koffi's native module carries its whole API; its JS wrapper only adds
  // deprecation shims, so the addon is used directly.
  const koffi = loadNative<typeof import('koffi')>('koffi');
  const lib = koffi.load('libc.so.6');
  const flock = lib.func('int flock(int fd, int op)');
  libc = {
    setns: lib.func('int setns(int fd, int nstype)'),
    unshare: lib.func('int unshare(int flags)'),
    mount: lib.func('int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const void *data)'),
    umount2: lib.func('int umount2(const char *target, int flags)'),
    flock,
    ioctlPtr: lib.func('int ioctl(int fd, unsigned long req, void *arg)'),
    errno: () => koffi.errno(),
    flockAsync: (fd, op, cb) => flock.async(fd, op, cb),
  };
  return libc;
}

function check(op: string, rc: number, detail?: string): void {
  if (rc < 0) throw new ErrnoError(op, load().errno(), detail);
}

export function setns(fd: number, nstype: number): void {
  check('setns', load().setns(fd, nstype));
}

export function unshare(flags: number): void {
  check('unshare', load().unshare(flags));
}

export function mount(src: string | null, target: string, fstype: string | null, flags: number): void {
  check('mount', load().mount(src, target, fstype, flags, null), target);
}

export function umount2(target: string, flags: number): void {
  check('umount2', load().umount2(target, flags), target);
}

/** Blocking flock on the calling thread. */
export function flockSync(fd: number, op: number): void {
  check('flock', load().flock(fd, op));
}

/** flock that waits on a koffi worker thread, leaving the event loop free. */
export function flock(fd: number, op: number): Promise<void> {
  const l = load();
  return new Promise((resolve, reject) => {
    l.flockAsync(fd, op, (err, rc) => {
      if (err) reject(err);
      else if (rc < 0) reject(new ErrnoError('flock', l.errno()));
      else resolve();
    });
  });
}

/** ioctl with a pointer argument (the buffer is passed in and out). */
export function ioctl(fd: number, req: number, arg: Buffer): number {
  const rc = load().ioctlPtr(fd, req, arg);
  check('ioctl', rc);
  return rc;
}
