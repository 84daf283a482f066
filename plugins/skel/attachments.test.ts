import { describe, expect, it } from 'vitest';
import { ErrorCode, NetError } from '../../lib/errors.ts';
import { attachmentKey, validAttachments } from './attachments.ts';
import { cniCodeOf } from './errors.ts';

function errorOf(config: Record<string, unknown>): NetError {
  try {
    validAttachments(config);
  } catch (err) {
    expect(err).toBeInstanceOf(NetError);
    return err as NetError;
  }
  throw new Error('expected an error');
}

describe('validAttachments', () => {
  it('reads cni.dev/valid-attachments, else the 1.1.0 tag name cni.dev/attachments', () => {
    const list = [{ containerID: 'a', ifname: 'eth0' }, { containerID: 'b', ifname: 'net1', extra: 1 }];
    expect(validAttachments({ 'cni.dev/valid-attachments': list })).toEqual([
      { containerId: 'a', ifName: 'eth0' },
      { containerId: 'b', ifName: 'net1' },
    ]);
    expect(validAttachments({ 'cni.dev/attachments': list.slice(0, 1) })).toEqual([{ containerId: 'a', ifName: 'eth0' }]);
    // libcni sends both; the current name wins
    expect(validAttachments({ 'cni.dev/valid-attachments': [], 'cni.dev/attachments': list })).toEqual([]);
  });

  it('no list (absent or null) is undefined: GC then removes nothing', () => {
    expect(validAttachments({})).toBeUndefined();
    expect(validAttachments({ 'cni.dev/valid-attachments': null })).toBeUndefined();
    expect(validAttachments({ 'cni.dev/valid-attachments': null, 'cni.dev/attachments': [] })).toEqual([]);
  });

  it('a list that is not an array is a decoding error (6)', () => {
    for (const v of [{}, 'a', 1, true]) {
      const e = errorOf({ 'cni.dev/valid-attachments': v });
      expect([e.code, e.message, cniCodeOf(e)]).toEqual([ErrorCode.DecodingFailure, 'cni.dev/valid-attachments: expected an array', 6]);
    }
    expect(errorOf({ 'cni.dev/attachments': 'x' }).message).toBe('cni.dev/attachments: expected an array');
  });

  it('one malformed entry fails the whole list, so a live attachment is never collected', () => {
    const good = { containerID: 'a', ifname: 'eth0' };
    const bad: unknown[] = [null, 'a', ['a', 'eth0'], {}, { containerID: 'a' }, { ifname: 'eth0' }, { containerID: 1, ifname: 'eth0' }, { containerID: 'a', ifname: null }, { containerId: 'a', ifName: 'eth0' }];
    for (const b of bad) {
      const e = errorOf({ 'cni.dev/valid-attachments': [good, b] });
      expect(e.code).toBe(ErrorCode.DecodingFailure);
      expect(e.message).toBe('cni.dev/valid-attachments[1]: expected {"containerID": string, "ifname": string}');
    }
  });

  it('attachmentKey tells (id, ifname) pairs apart', () => {
    const k = attachmentKey({ containerId: 'a', ifName: 'b' });
    expect(k).toBe(attachmentKey({ containerId: 'a', ifName: 'b' }));
    expect(k).not.toBe(attachmentKey({ containerId: 'a', ifName: 'c' }));
    expect(attachmentKey({ containerId: 'ab', ifName: 'c' })).not.toBe(attachmentKey({ containerId: 'a', ifName: 'bc' }));
  });
});
