// Typed errors with stable string codes. NetError is the one root class of
// the project's errors: a stable `code`, the wrapped `cause`, and optional
// `details` for a human; components subclass it, never Error directly. Callers switch on `code` or use the predicates below;
// nobody matches on message text. Boundaries translate codes: the CNI
// skeleton (plugins/skel/errors.ts) alone turns them into CNI error numbers.
//
// Code conventions, relied on by the predicates:
//   - an errno name ("ENODEV", "EAGAIN") means exactly that errno,
//   - a code ending in "_NOT_FOUND" means the thing does not exist,
//   - a code ending in "_EXISTS" means it already exists,
//   - the kinds in ErrorCode have a meaning at every boundary.
import { constants } from 'node:os';

export interface NetErrorOptions {
  cause?: unknown;
  /** Extra text for a human (the CNI error's `details`). */
  details?: string | undefined;
}

export class NetError extends Error {
  readonly code: string;
  readonly details: string | undefined;
  constructor(code: string, message: string, options?: NetErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details;
  }
  override get name(): string {
    return this.constructor.name;
  }
  /**
   * The same kind of error with another message and this one as its cause;
   * details carry over unless `keepDetails` is false. Subclasses override it
   * to keep their extra fields.
   */
  withMessage(message: string, opts: { keepDetails?: boolean } = {}): NetError {
    return new NetError(this.code, message, { cause: this, details: opts.keepDetails === false ? undefined : this.details });
  }
}

/** Kinds of failure that boundaries translate (CNI numbers, exit codes, HTTP status). */
export const ErrorCode = {
  /** The process environment is unusable (CNI_* variables). */
  InvalidEnvironment: 'INVALID_ENVIRONMENT',
  /** Input could not be decoded (JSON, a version string). */
  DecodingFailure: 'DECODING_FAILURE',
  /** Configuration decoded but is not valid. */
  InvalidConfig: 'INVALID_CONFIG',
  IncompatibleVersion: 'INCOMPATIBLE_VERSION',
  UnsupportedField: 'UNSUPPORTED_FIELD',
  UnknownContainer: 'UNKNOWN_CONTAINER',
  /** Reading or writing local state failed. */
  IoFailure: 'IO_FAILURE',
  /** Transient: the same request may succeed later. */
  TryAgain: 'TRY_AGAIN',
  /** Waiting for a lock timed out (transient). */
  LockTimeout: 'LOCK_TIMEOUT',
  /** The component cannot serve requests now (CNI STATUS). */
  Unavailable: 'UNAVAILABLE',
  NetnsNotFound: 'NETNS_NOT_FOUND',
  NotANetns: 'NOT_A_NETNS',
  /** A netns that exists but cannot be used for this request (the plugin's own, say). */
  InvalidNetns: 'INVALID_NETNS',
  /** A netlink dump was interrupted by a concurrent change (NLM_F_DUMP_INTR); retry it. */
  DumpInterrupted: 'EDUMPINTR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

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

/**
 * The (positive) errno an error carries: ErrnoError, Node's fs/net errors
 * (negative errno), or a NetError whose code is an errno name.
 */
export function errnoOf(err: unknown): number | undefined {
  if (err instanceof ErrnoError) return err.errno;
  if (err && typeof err === 'object' && 'errno' in err) {
    const e = (err as { errno: unknown }).errno;
    // Node's fs errors carry negative errnos.
    if (typeof e === 'number') return Math.abs(e);
  }
  if (err instanceof NetError && Object.hasOwn(constants.errno, err.code)) {
    return constants.errno[err.code as keyof typeof constants.errno];
  }
  return undefined;
}

/** The stable code of a NetError, undefined for anything else. */
export function codeOf(err: unknown): string | undefined {
  return err instanceof NetError ? err.code : undefined;
}

const { ENOENT, ENODEV, ESRCH, EEXIST, EBUSY, EADDRNOTAVAIL, EAGAIN, EWOULDBLOCK, EINTR } = constants.errno;

export const isNotFound = (err: unknown): boolean => {
  const e = errnoOf(err);
  return e === ENOENT || e === ENODEV || e === ESRCH || codeOf(err)?.endsWith('_NOT_FOUND') === true;
};
export const isExists = (err: unknown): boolean => errnoOf(err) === EEXIST || codeOf(err)?.endsWith('_EXISTS') === true;
export const isBusy = (err: unknown): boolean => errnoOf(err) === EBUSY;
export const isAddrNotAvail = (err: unknown): boolean => errnoOf(err) === EADDRNOTAVAIL;

const TRANSIENT_CODES: ReadonlySet<string> = new Set([ErrorCode.TryAgain, ErrorCode.LockTimeout, ErrorCode.DumpInterrupted]);

/** Transient: retrying the same operation may succeed (EAGAIN, EINTR, an interrupted dump, a lock timeout). */
export const isTemporary = (err: unknown): boolean => {
  const e = errnoOf(err);
  if (e === EAGAIN || e === EWOULDBLOCK || e === EINTR) return true;
  const code = codeOf(err);
  return code !== undefined && TRANSIENT_CODES.has(code);
};

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The same kind of error with `prefix` before its message and the original as
 * cause (Go's `fmt.Errorf("prefix: %w", err)`): code and details carry over;
 * anything that is not a NetError becomes one with `fallbackCode`.
 */
export function wrapError(prefix: string, err: unknown, fallbackCode: string = 'INTERNAL'): NetError {
  if (err instanceof NetError) return err.withMessage(prefix + err.message);
  return new NetError(fallbackCode, prefix + errorMessage(err), { cause: err });
}
