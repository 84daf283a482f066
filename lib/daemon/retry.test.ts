import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Backoff, retry } from './retry.ts';

describe('Backoff', () => {
  it('doubles from min up to max and starts over after reset()', () => {
    const b = new Backoff({ min: 100, max: 1000 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(b.failures).toBe(6);
    b.reset();
    expect(b.failures).toBe(0);
    expect(b.next()).toBe(100);
  });

  it('jitters each delay within ±jitter', () => {
    const lo = new Backoff({ min: 100, max: 5000, jitter: 0.5, random: () => 0 });
    const hi = new Backoff({ min: 100, max: 5000, jitter: 0.5, random: () => 0.999 });
    expect([lo.next(), lo.next()]).toEqual([50, 100]);
    expect([hi.next(), hi.next()]).toEqual([149, 299]);
  });

  it('a fixed interval is min = max', () => {
    const b = new Backoff({ min: 1000, max: 1000 });
    expect([b.next(), b.next(), b.next()]).toEqual([1000, 1000, 1000]);
  });

  it('rejects nonsense', () => {
    expect(() => new Backoff({ min: 10, max: 5 })).toThrow(RangeError);
    expect(() => new Backoff({ min: 1, max: 5, jitter: 2 })).toThrow(RangeError);
  });
});

describe('retry', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('retries with growing delays until fn succeeds', async () => {
    const at: number[] = [];
    const retries: [number, number][] = [];
    const p = retry(
      async (attempt) => {
        at.push(Date.now());
        if (attempt < 4) throw new Error(`fail ${attempt}`);
        return 'ok';
      },
      { min: 10, max: 25, signal: new AbortController().signal, onRetry: (_e, a, d) => retries.push([a, d]) },
    );
    await vi.advanceTimersByTimeAsync(1000);
    expect(await p).toBe('ok');
    expect(at).toEqual([0, 10, 30, 55]);
    expect(retries).toEqual([
      [1, 10],
      [2, 20],
      [3, 25],
    ]);
  });

  it('gives up after `attempts`, or at once when retryIf says no', async () => {
    let calls = 0;
    const limited = retry(
      async () => {
        calls++;
        throw new Error('always');
      },
      { min: 0, max: 0, attempts: 3, signal: new AbortController().signal },
    );
    const settled = limited.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(10);
    expect(((await settled) as Error).message).toBe('always');
    expect(calls).toBe(3);

    class Fatal extends Error {}
    calls = 0;
    const fatal = retry(
      async () => {
        calls++;
        throw new Fatal('no');
      },
      { min: 0, max: 0, retryIf: (e) => !(e instanceof Fatal), signal: new AbortController().signal },
    );
    await expect(fatal).rejects.toBeInstanceOf(Fatal);
    expect(calls).toBe(1);
  });

  it('abort ends the wait and rejects with the signal reason', async () => {
    const ac = new AbortController();
    let calls = 0;
    const p = retry(
      async () => {
        calls++;
        throw new Error('down');
      },
      { min: 60_000, max: 60_000, signal: ac.signal },
    );
    const settled = p.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(100);
    ac.abort(new Error('stop'));
    expect(((await settled) as Error).message).toBe('stop');
    expect(calls).toBe(1);
    await expect(retry(async () => 1, { min: 1, max: 1, signal: ac.signal })).rejects.toThrow('stop');
  });
});
