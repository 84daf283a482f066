import { describe, expect, it } from 'vitest';
import { constants } from 'node:os';
import { ErrnoError, ErrorCode, NetError } from '../../lib/errors.ts';
import { DumpInterruptedError } from '../../lib/netlink/conn.ts';
import { NetnsNotFoundError, NotANetnsError } from '../../lib/netns/index.ts';
import { CniError, ErrCode, cniCodeOf, toCniError } from './errors.ts';
import { PluginNotFoundError } from './invoke.ts';

const { EAGAIN, EINTR, EEXIST, ENOENT } = constants.errno;
const nodeError = (code: string, errno: number): Error => Object.assign(new Error(`${code}: x`), { code, errno: -errno });

describe('the CNI mapping table (the skeleton is the only place numbers are chosen)', () => {
  const rows: [string, unknown, number][] = [
    ['invalid environment → 4', new NetError(ErrorCode.InvalidEnvironment, 'x'), 4],
    ['decoding failure → 6', new NetError(ErrorCode.DecodingFailure, 'x'), 6],
    ['invalid config → 7', new NetError(ErrorCode.InvalidConfig, 'x'), 7],
    ['unknown container → 3', new NetError(ErrorCode.UnknownContainer, 'x'), 3],
    ['netns not found → 8', new NetnsNotFoundError('/run/netns/gone'), 8],
    ['not a netns → 8', new NotANetnsError('/tmp', 'unknown FS magic'), 8],
    ['an unusable netns → 8', new NetError(ErrorCode.InvalidNetns, 'x'), 8],
    ['incompatible version → 1', new NetError(ErrorCode.IncompatibleVersion, 'x'), 1],
    ['unsupported field → 2', new NetError(ErrorCode.UnsupportedField, 'x'), 2],
    ['I/O failure → 5', new NetError(ErrorCode.IoFailure, 'x'), 5],
    ['unavailable (STATUS) → 50', new NetError(ErrorCode.Unavailable, 'x'), 50],
    ['try again → 11', new NetError(ErrorCode.TryAgain, 'x'), 11],
    ['lock timeout → 11', new NetError(ErrorCode.LockTimeout, 'x'), 11],
    ['EDUMPINTR (a netlink dump interrupted) → 11', new DumpInterruptedError('link dump'), 11],
    ['EAGAIN from a syscall → 11', new ErrnoError('recvmsg', EAGAIN), 11],
    ['EINTR from a syscall → 11', new ErrnoError('recvmsg', EINTR), 11],
    ['EINTR from node:fs → 11', nodeError('EINTR', EINTR), 11],
    ['EEXIST → 999', new ErrnoError('link add', EEXIST), 999],
    ['ENOENT from node:fs → 999', nodeError('ENOENT', ENOENT), 999],
    ['another code → 999', new NetError('INTERNAL', 'x'), 999],
    ['a plain Error → 999', new Error('x'), 999],
    ['a string → 999', 'x', 999],
    ['undefined → 999', undefined, 999],
    ['explicit plugin code (host-local 110) wins', new CniError(110, 'no IP addresses available'), 110],
    ['a relayed delegate error keeps its number', new CniError(7, 'fake ADD failed', 'because'), 7],
    ['a missing delegate plugin is a config error → 7', new PluginNotFoundError('nope', 'failed to find plugin "nope"'), 7],
    ['a CniError-shaped object from another bundle', Object.assign(new Error('x'), { cniCode: 42 }), 42],
  ];
  for (const [name, err, code] of rows) {
    it(name, () => {
      expect(cniCodeOf(err)).toBe(code);
      expect(toCniError(err).cniCode).toBe(code);
    });
  }
});

describe('toCniError', () => {
  it('keeps message and details and wraps the original', () => {
    const orig = new NetError(ErrorCode.InvalidConfig, 'bad range', { details: 'range 0' });
    const e = toCniError(orig);
    expect([e.cniCode, e.message, e.details, e.cause, e.code]).toEqual([7, 'bad range', 'range 0', orig, ErrorCode.InvalidConfig]);
  });

  it('passes a CniError through unchanged', () => {
    const e = new CniError(11, 'try later', 'lock held');
    expect(toCniError(e)).toBe(e);
  });

  it('a non-object becomes 999 with its text', () => {
    const e = toCniError('text');
    expect([e.cniCode, e.message, e.details]).toEqual([999, 'text', undefined]);
  });
});

describe('CniError', () => {
  it('is a NetError whose code names its spec number', () => {
    expect(new CniError(ErrCode.InvalidNetworkConfig, 'x')).toBeInstanceOf(NetError);
    expect(new CniError(7, 'x').code).toBe(ErrorCode.InvalidConfig);
    expect(new CniError(11, 'x').code).toBe(ErrorCode.TryAgain);
    // 8 is also "the plugin's own netns": not a not-found error
    expect(new CniError(8, 'x').code).toBe(ErrorCode.InvalidNetns);
    expect(new CniError(999, 'x').code).toBe('INTERNAL');
    expect(new CniError(112, 'x').code).toBe('CNI_112');
    expect(new PluginNotFoundError('x', 'y').code).toBe('PLUGIN_NOT_FOUND');
  });

  it('withMessage keeps the number, so a prefixed error reports the same code', () => {
    const e = new CniError(111, 'requested ip is taken', 'd').withMessage('failed to allocate for range 0: requested ip is taken');
    expect(e).toBeInstanceOf(CniError);
    expect([e.cniCode, e.details]).toEqual([111, 'd']);
  });
});
