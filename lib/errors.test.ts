import { describe, expect, it } from 'vitest';
import { constants } from 'node:os';
import {
  ErrnoError,
  ErrorCode,
  NetError,
  codeOf,
  errnoOf,
  errorMessage,
  isAddrNotAvail,
  isBusy,
  isExists,
  isNotFound,
  isTemporary,
  wrapError,
} from './errors.ts';

const { ENOENT, ENODEV, ESRCH, EEXIST, EBUSY, EAGAIN, EINTR, EINVAL, EADDRNOTAVAIL } = constants.errno;

/** What node:fs throws: a plain Error with a negative errno and a string code. */
function nodeFsError(code: string, errno: number): Error {
  return Object.assign(new Error(`${code}: boom, open '/x'`), { code, errno: -errno, syscall: 'open' });
}

describe('NetError, the root', () => {
  it('carries code, cause and details; its name is the subclass name', () => {
    class ThingError extends NetError {}
    const cause = new Error('low');
    const e = new ThingError('THING', 'high', { cause, details: 'more' });
    expect(e).toBeInstanceOf(NetError);
    expect(e).toBeInstanceOf(Error);
    expect([e.code, e.message, e.cause, e.details, e.name]).toEqual(['THING', 'high', cause, 'more', 'ThingError']);
    expect('cause' in new NetError('X', 'no cause')).toBe(false);
  });

  it('ErrnoError is a NetError with the errno name as code and Go-like text', () => {
    const e = new ErrnoError('link add', EEXIST, 'cni0');
    expect(e).toBeInstanceOf(NetError);
    expect([e.code, e.errno, e.op, e.message]).toEqual(['EEXIST', EEXIST, 'link add', 'link add: cni0: file exists']);
  });

  it('withMessage and wrapError keep the kind, wrap the original and prefix like Go %w', () => {
    const inner = new NetError(ErrorCode.LockTimeout, 'timed out', { details: 'lock held' });
    const w = wrapError('failed to allocate for range 0: ', inner);
    expect([w.code, w.message, w.details, w.cause]).toEqual([ErrorCode.LockTimeout, 'failed to allocate for range 0: timed out', 'lock held', inner]);
    expect(inner.withMessage('other', { keepDetails: false }).details).toBeUndefined();
    expect(inner.withMessage('other').details).toBe('lock held');
    const plain = wrapError('p: ', new Error('x'));
    expect([plain.code, plain.message]).toEqual(['INTERNAL', 'p: x']);
    expect(wrapError('p: ', 'text', ErrorCode.IoFailure).code).toBe(ErrorCode.IoFailure);
  });
});

describe('errno and code predicates', () => {
  it('errnoOf reads ErrnoError, Node errors (negative errno) and errno-named codes', () => {
    expect(errnoOf(new ErrnoError('x', ENOENT))).toBe(ENOENT);
    expect(errnoOf(nodeFsError('ENOENT', ENOENT))).toBe(ENOENT);
    expect(errnoOf(new NetError('ENODEV', 'Link not found: eth9'))).toBe(ENODEV);
    expect(errnoOf(new NetError('NETNS_NOT_FOUND', 'x'))).toBeUndefined();
    expect(errnoOf(new Error('plain'))).toBeUndefined();
    expect(errnoOf(undefined)).toBeUndefined();
    expect(codeOf(new NetError('A', 'a'))).toBe('A');
    expect(codeOf(nodeFsError('ENOENT', ENOENT))).toBeUndefined();
  });

  it('isNotFound holds for every error that means "does not exist"', () => {
    const yes = [
      new ErrnoError('link get', ENODEV),
      new ErrnoError('kill', ESRCH),
      nodeFsError('ENOENT', ENOENT),
      // LinkNotFoundError carries code ENODEV and no errno field
      new NetError('ENODEV', 'Link not found: eth9'),
      new NetError(ErrorCode.NetnsNotFound, 'failed to open netns "/x": no such file or directory'),
      new NetError('KUBE_NOT_FOUND', 'nodes "n1" not found'),
    ];
    for (const e of yes) expect(isNotFound(e), e.message).toBe(true);
    const no = [new ErrnoError('x', EEXIST), new NetError(ErrorCode.NotANetns, 'x'), new Error('not found'), 'ENOENT', null];
    for (const e of no) expect(isNotFound(e), String(e)).toBe(false);
  });

  it('isExists, isBusy, isAddrNotAvail', () => {
    expect(isExists(new ErrnoError('x', EEXIST))).toBe(true);
    expect(isExists(nodeFsError('EEXIST', EEXIST))).toBe(true);
    expect(isExists(new NetError('LEASE_EXISTS', 'x'))).toBe(true);
    expect(isExists(new ErrnoError('x', EBUSY))).toBe(false);
    expect(isBusy(new ErrnoError('x', EBUSY))).toBe(true);
    expect(isAddrNotAvail(new NetError('EADDRNOTAVAIL', 'x'))).toBe(true);
    expect(isAddrNotAvail(new ErrnoError('x', EADDRNOTAVAIL))).toBe(true);
  });

  it('isTemporary: EAGAIN, EINTR, an interrupted dump, a lock timeout, TRY_AGAIN', () => {
    const yes = [
      new ErrnoError('recv', EAGAIN),
      new ErrnoError('recv', EINTR),
      nodeFsError('EAGAIN', EAGAIN),
      new NetError(ErrorCode.DumpInterrupted, 'link dump: dump interrupted'),
      new NetError(ErrorCode.LockTimeout, 'timed out'),
      new NetError(ErrorCode.TryAgain, 'later'),
    ];
    for (const e of yes) expect(isTemporary(e), e.message).toBe(true);
    for (const e of [new ErrnoError('x', EINVAL), new NetError('INTERNAL', 'x'), new Error('EAGAIN')]) expect(isTemporary(e)).toBe(false);
  });

  it('errorMessage', () => {
    expect(errorMessage(new Error('m'))).toBe('m');
    expect(errorMessage(42)).toBe('42');
  });
});
