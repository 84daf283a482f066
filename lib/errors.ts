// Typed errors with stable string codes. Callers switch on `code` or use the
// errno predicates below; nobody matches on message text.
import { constants } from 'node:os';

export class NetError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
  override get name(): string {
    return this.constructor.name;
  }
}

const errnoNames: Map<number, string> = new Map(
  Object.entries(constants.errno).map(([name, num]) => [num, name]),
);

/** Name of a positive errno value ("ENOENT"), or "E<n>" when unknown. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}

const errnoText: Record<string, string> = {
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  ESRCH: 'no such process',
  EINTR: 'interrupted system call',
  EIO: 'input/output error',
  EBADF: 'bad file descriptor',
  EAGAIN: 'resource temporarily unavailable',
  ENOMEM: 'cannot allocate memory',
  EACCES: 'permission denied',
  EBUSY: 'device or resource busy',
  EEXIST: 'file exists',
  ENODEV: 'no such device',
  ENOTDIR: 'not a directory',
  EINVAL: 'invalid argument',
  ENOSPC: 'no space left on device',
  ERANGE: 'numerical result out of range',
  EOPNOTSUPP: 'operation not supported',
  EAFNOSUPPORT: 'address family not supported by protocol',
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'cannot assign requested address',
  ENETUNREACH: 'network is unreachable',
  ENOBUFS: 'no buffer space available',
  ENOTSUP: 'operation not supported',
  EPROTONOSUPPORT: 'protocol not supported',
  ENOTEMPTY: 'directory not empty',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'file name too long',
};

/** A failed system call or netlink request, carrying the (positive) errno. */
export class ErrnoError extends NetError {
  readonly errno: number;
  readonly op: string;
  constructor(op: string, errno: number, detail?: string) {
    const name = errnoName(errno);
    super(name, `${op}: ${detail ? detail + ': ' : ''}${errnoText[name] ?? name.toLowerCase()}`);
    this.errno = errno;
    this.op = op;
  }
}

export function errnoOf(err: unknown): number | undefined {
  if (err instanceof ErrnoError) return err.errno;
  if (err && typeof err === 'object' && 'errno' in err) {
    const e = (err as { errno: unknown }).errno;
    // Node's fs errors carry negative errnos.
    if (typeof e === 'number') return Math.abs(e);
  }
  return undefined;
}

export const isNotFound = (err: unknown): boolean => {
  const e = errnoOf(err);
  return e === constants.errno.ENOENT || e === constants.errno.ENODEV || e === constants.errno.ESRCH;
};
export const isExists = (err: unknown): boolean => errnoOf(err) === constants.errno.EEXIST;
export const isBusy = (err: unknown): boolean => errnoOf(err) === constants.errno.EBUSY;
export const isAddrNotAvail = (err: unknown): boolean => errnoOf(err) === constants.errno.EADDRNOTAVAIL;

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
