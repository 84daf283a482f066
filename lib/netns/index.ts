// Network namespaces by path. Entering a namespace (setns) only ever happens
// around a synchronous block: enter, open sockets/files, leave, with no await
// in between. Everything after that works through the opened descriptors.
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, rmSync, statfsSync, writeFileSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { NetError, ErrnoError, errnoOf, isNotFound } from '../errors.ts';
import { CLONE_NEWNET, MNT_DETACH, MS_BIND, MS_REC, MS_SHARED, mount, setns, umount2, unshare } from '../sys/index.ts';

export const NETNS_RUN_DIR = '/var/run/netns';
const NSFS_MAGIC = 0x6e736673;
const PROC_SUPER_MAGIC = 0x9fa0;

export class NetnsNotFoundError extends NetError {
  readonly path: string;
  constructor(path: string, cause?: unknown) {
    super('NETNS_NOT_FOUND', `failed to open netns "${path}": no such file or directory`, { cause });
    this.path = path;
  }
}

export class NotANetnsError extends NetError {
  readonly path: string;
  constructor(path: string, why: string) {
    super('NOT_A_NETNS', `failed to open netns "${path}": ${why}`);
    this.path = path;
  }
}

/**
 * Checks that `path` is a network namespace and returns an open O_RDONLY fd.
 * Distinguishes "does not exist" from "exists but is not a netns".
 */
export function openNetns(path: string): number {
  let st;
  try {
    st = statfsSync(path);
  } catch (err) {
    if (isNotFound(err)) throw new NetnsNotFoundError(path, err);
    throw new NotANetnsError(path, `failed to Statfs "${path}": ${(err as Error).message}`);
  }
  if (st.type !== NSFS_MAGIC && st.type !== PROC_SUPER_MAGIC) {
    throw new NotANetnsError(path, `unknown FS magic on "${path}": ${st.type.toString(16)}`);
  }
  const fd = openSync(path, 'r');
  // On nsfs, an inode under /proc/<pid>/ns/ may still be another kind of
  // namespace (mnt, uts, ...). Only setns with CLONE_NEWNET can tell; do it
  // with a round trip that changes nothing visible.
  try {
    probeNetnsFd(fd, path);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

function probeNetnsFd(fd: number, path: string): void {
  const self = openSync('/proc/thread-self/ns/net', 'r');
  try {
    try {
      setns(fd, CLONE_NEWNET);
    } catch (err) {
      throw new NotANetnsError(path, `not a network namespace (${(err as Error).message})`);
    }
    setns(self, CLONE_NEWNET);
  } finally {
    closeSync(self);
  }
}

/** Inode number of a namespace file, to compare two namespaces. */
export function netnsInode(fdOrPath: number | string): number {
  if (typeof fdOrPath === 'number') return fstatSync(fdOrPath).ino;
  const fd = openSync(fdOrPath, 'r');
  try {
    return fstatSync(fd).ino;
  } finally {
    closeSync(fd);
  }
}

/**
 * Runs `fn` synchronously with the calling thread inside the namespace `nsFd`
 * and always returns to the original namespace. `fn` must not be async: the
 * thread's namespace would leak into whatever the event loop runs next.
 */
export function withNetnsSync<T>(nsFd: number | null, fn: () => T): T {
  if (nsFd === null) return fn();
  const self = openSync('/proc/thread-self/ns/net', 'r');
  try {
    setns(nsFd, CLONE_NEWNET);
    try {
      const out = fn();
      if (out instanceof Promise) throw new Error('withNetnsSync: callback must be synchronous');
      return out;
    } finally {
      setns(self, CLONE_NEWNET);
    }
  } finally {
    closeSync(self);
  }
}

/** The fd of the calling thread's current network namespace. */
export function currentNetnsFd(): number {
  return openSync('/proc/thread-self/ns/net', 'r');
}

let runDirShared = false;

/** Makes NETNS_RUN_DIR a shared mount point, as `ip netns add` does. */
function ensureRunDir(): void {
  if (runDirShared) return;
  mkdirSync(NETNS_RUN_DIR, { recursive: true, mode: 0o755 });
  try {
    mount('', NETNS_RUN_DIR, 'none', MS_SHARED | MS_REC);
  } catch (err) {
    if (errnoOf(err) !== 22 /* EINVAL: not a mount point yet */) throw err;
    mount(NETNS_RUN_DIR, NETNS_RUN_DIR, 'none', MS_BIND | MS_REC);
    mount('', NETNS_RUN_DIR, 'none', MS_SHARED | MS_REC);
  }
  runDirShared = true;
}

/** Creates a named namespace at /var/run/netns/<name>, like `ip netns add`. */
export function createNamedNetns(name: string): string {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name) || name === '.' || name === '..') {
    throw new NetError('INVALID_NAME', `invalid netns name "${name}"`);
  }
  ensureRunDir();
  const path = join(NETNS_RUN_DIR, name);
  const fd = openSync(path, fsc.O_RDONLY | fsc.O_CREAT | fsc.O_EXCL, 0o444);
  closeSync(fd);
  const self = openSync('/proc/thread-self/ns/net', 'r');
  try {
    unshare(CLONE_NEWNET);
    try {
      mount('/proc/thread-self/ns/net', path, 'none', MS_BIND);
    } finally {
      setns(self, CLONE_NEWNET);
    }
  } catch (err) {
    rmSync(path, { force: true });
    throw err;
  } finally {
    closeSync(self);
  }
  return path;
}

/** Deletes a named namespace like `ip netns del`; missing is not an error. */
export function deleteNamedNetns(name: string): void {
  const path = join(NETNS_RUN_DIR, name);
  if (!existsSync(path)) return;
  try {
    umount2(path, MNT_DETACH);
  } catch (err) {
    if (errnoOf(err) !== 22 /* EINVAL: not mounted */) throw err;
  }
  rmSync(path, { force: true });
}

export function writeSysctlIn(nsFd: number | null, key: string, value: string): void {
  withNetnsSync(nsFd, () => writeFileSync(join('/proc/sys', key), value));
}

export { ErrnoError };

/**
 * Moves the calling thread (the main thread, for a CLI or a test) into the
 * namespace at `nsPath` and returns the function that moves it back. Sockets
 * libuv opens on this thread afterwards (gRPC, fetch) are created inside the
 * namespace, and a socket stays where it was created. For processes whose
 * whole job is to talk to one namespace (netstack's cluster commands, root
 * tests); a daemon uses withNetnsSync instead. Not re-entrant.
 */
export function enterNetns(nsPath: string): () => void {
  const self = openSync('/proc/thread-self/ns/net', 'r');
  let target: number;
  try {
    target = openNetns(nsPath);
  } catch (err) {
    closeSync(self);
    throw err;
  }
  try {
    setns(target, CLONE_NEWNET);
  } catch (err) {
    closeSync(self);
    throw err;
  } finally {
    closeSync(target);
  }
  let left = false;
  return () => {
    if (left) return;
    left = true;
    try {
      setns(self, CLONE_NEWNET);
    } finally {
      closeSync(self);
    }
  };
}
