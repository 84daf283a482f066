import { describe, expect, it } from 'vitest';
import { IPAddr } from '../../lib/ip/index.ts';
import { CniError } from '../skel/types.ts';
import { HostLocalErrCode, candidates, freeCount, pickAddress } from './allocator.ts';
import type { StoreView } from './allocator.ts';
import { loadConfig } from './config.ts';
import type { RangeSet } from './config.ts';

const ip = (s: string): IPAddr => IPAddr.parse(s)!;

function set(...ranges: Record<string, string>[]): RangeSet {
  return loadConfig({ name: 'n', cniVersion: '1.0.0', ipam: { ranges: [ranges] } }, '', '1.0.0').ranges[0]!;
}

function view(taken: string[], last?: string, owned: string[] = []): StoreView {
  const t = new Set(taken);
  return { isTaken: (a) => t.has(a.toString()), takenCount: t.size, lastReserved: last ? ip(last) : undefined, owned: owned.map(ip) };
}

const walk = (s: RangeSet, last?: string): string[] => [...candidates(s, last ? ip(last) : undefined)].map((c) => c.ip.toString());

function errorOf(fn: () => unknown): CniError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CniError);
    return err as CniError;
  }
  throw new Error('expected an error');
}

describe('candidates (round robin)', () => {
  const s29 = set({ subnet: '10.98.0.0/29' });
  it.each<[string, string | undefined, string[]]>([
    ['fresh store starts at rangeStart, skips gateway', undefined, ['.2', '.3', '.4', '.5', '.6']],
    ['starts after last reserved', '10.98.0.3', ['.4', '.5', '.6', '.2', '.3']],
    ['wraps when last reserved is rangeEnd', '10.98.0.6', ['.2', '.3', '.4', '.5', '.6']],
    ['ignores a last reserved outside the set', '10.99.0.3', ['.2', '.3', '.4', '.5', '.6']],
  ])('%s', (_n, last, want) => {
    expect(walk(s29, last)).toEqual(want.map((x) => `10.98.0${x}`));
  });

  it('walks the ranges of a set in order and wraps to the first', () => {
    const s = set({ subnet: '10.1.0.0/24', rangeStart: '10.1.0.10', rangeEnd: '10.1.0.11' }, { subnet: '10.2.0.0/30' });
    expect(walk(s)).toEqual(['10.1.0.10', '10.1.0.11', '10.2.0.2']);
    expect(walk(s, '10.1.0.11')).toEqual(['10.2.0.2', '10.1.0.10', '10.1.0.11']);
    expect(walk(s, '10.2.0.2')).toEqual(['10.1.0.10', '10.1.0.11', '10.2.0.2']);
  });

  it('never yields the v4 network or broadcast, even when rangeStart/rangeEnd name them', () => {
    const s = set({ subnet: '10.3.0.0/30', rangeStart: '10.3.0.0', rangeEnd: '10.3.0.3', gateway: '10.3.0.9' });
    expect(walk(s)).toEqual(['10.3.0.1', '10.3.0.2']);
  });

  it('yields the last v6 address (no broadcast in v6) and skips a custom gateway', () => {
    const s = set({ subnet: 'fd00::/126', gateway: 'fd00::2' });
    expect(walk(s)).toEqual(['fd00::1', 'fd00::3']);
  });
});

describe('pickAddress', () => {
  const s29 = set({ subnet: '10.98.0.0/29' });
  it('takes the next free address after last reserved', () => {
    expect(pickAddress(s29, view(['10.98.0.2', '10.98.0.5'], '10.98.0.4'), 'c').ip.toString()).toBe('10.98.0.6');
    expect(pickAddress(s29, view(['10.98.0.5', '10.98.0.6'], '10.98.0.4'), 'c').ip.toString()).toBe('10.98.0.2');
  });

  it('reports exhaustion with the raw range set text and code 110', () => {
    const e = errorOf(() => pickAddress(s29, view(['10.98.0.2', '10.98.0.3', '10.98.0.4', '10.98.0.5', '10.98.0.6']), 'c'));
    expect(e.message).toBe('no IP addresses available in range set: 10.98.0.1-10.98.0.6');
    expect(e.cniCode).toBe(HostLocalErrCode.PoolExhausted);
  });

  it('finds a free address in a huge v6 range without walking it', () => {
    const s = set({ subnet: 'fd00::/64' });
    expect(pickAddress(s, view(['fd00::2', 'fd00::3'], 'fd00::1'), 'c').ip.toString()).toBe('fd00::4');
  });

  it('refuses a second address for the same attachment in this set', () => {
    const e = errorOf(() => pickAddress(s29, view(['10.98.0.3'], undefined, ['fd00::9', '10.98.0.3']), 'ctr1'));
    expect(e.message).toBe('10.98.0.3 has been allocated to ctr1, duplicate allocation is not allowed');
    expect(e.cniCode).toBe(HostLocalErrCode.DuplicateAllocation);
    expect(pickAddress(s29, view([], undefined, ['fd00::9']), 'ctr1').ip.toString()).toBe('10.98.0.2');
  });

  it('handles requested addresses', () => {
    const s = set({ subnet: '10.97.0.0/24', rangeStart: '10.97.0.10', rangeEnd: '10.97.0.20', gateway: '10.97.0.15' }, { subnet: '10.96.5.0/24' });
    expect(pickAddress(s, view([]), 'c', ip('10.96.5.77')).ip.toString()).toBe('10.96.5.77');
    expect(errorOf(() => pickAddress(s, view([]), 'c', ip('10.97.0.15'))).message).toBe("requested ip 10.97.0.15 is subnet's gateway");
    const taken = errorOf(() => pickAddress(s, view(['10.97.0.12']), 'c', ip('10.97.0.12')));
    expect(taken.message).toBe('requested IP address 10.97.0.12 is not available in range set 10.97.0.10-10.97.0.20,10.96.5.1-10.96.5.254');
    expect(taken.cniCode).toBe(HostLocalErrCode.RequestedIPUnavailable);
  });
});

describe('freeCount', () => {
  it('counts allocatable addresses minus reservations inside the set', () => {
    const s29 = set({ subnet: '10.98.0.0/29' });
    expect(freeCount(s29, [])).toBe(5n);
    expect(freeCount(s29, [ip('10.98.0.2'), ip('10.98.0.1'), ip('10.99.0.2'), ip('10.98.0.2')])).toBe(4n);
    expect(freeCount(set({ subnet: '10.3.0.0/30', rangeStart: '10.3.0.0', rangeEnd: '10.3.0.3' }), [])).toBe(1n);
  });
});
