import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BoundedFrequencyRunner } from './index.ts';
import type { RunReason } from './index.ts';

describe('BoundedFrequencyRunner', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function counting(opts: Partial<ConstructorParameters<typeof BoundedFrequencyRunner>[0]> = {}) {
    const starts: number[] = [];
    const r = new BoundedFrequencyRunner({
      name: 't',
      minInterval: 1000,
      maxInterval: 10_000,
      fn: async () => {
        starts.push(Date.now());
      },
      ...opts,
    });
    return { r, starts };
  }

  it('runs once at start, then periodically every maxInterval', async () => {
    const { r, starts } = counting();
    const ac = new AbortController();
    const done = r.loop(ac.signal);
    await vi.advanceTimersByTimeAsync(0);
    expect(starts).toEqual([1_000_000]);
    await vi.advanceTimersByTimeAsync(25_000);
    expect(starts).toEqual([1_000_000, 1_010_000, 1_020_000]);
    ac.abort();
    await done;
  });

  it('coalesces run() requests and keeps minInterval between runs', async () => {
    const { r, starts } = counting();
    const ac = new AbortController();
    const done = r.loop(ac.signal);
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(100);
    r.run();
    r.run();
    r.run();
    await vi.advanceTimersByTimeAsync(899);
    expect(starts).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(starts).toEqual([1_000_000, 1_001_000]);
    // Long after minInterval, a request runs immediately.
    await vi.advanceTimersByTimeAsync(5000);
    r.run();
    await vi.advanceTimersByTimeAsync(0);
    expect(starts).toEqual([1_000_000, 1_001_000, 1_006_000]);
    ac.abort();
    await done;
  });

  it('never runs concurrently; a request during a run is served after it', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const starts: number[] = [];
    const r = new BoundedFrequencyRunner({
      name: 'slow',
      minInterval: 0,
      maxInterval: 60_000,
      fn: async () => {
        starts.push(Date.now());
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((res) => setTimeout(res, 500));
        inFlight--;
      },
    });
    const ac = new AbortController();
    const done = r.loop(ac.signal);
    await vi.advanceTimersByTimeAsync(100);
    r.run();
    r.run();
    await vi.advanceTimersByTimeAsync(2000);
    expect(maxInFlight).toBe(1);
    expect(starts).toHaveLength(2);
    // The queued request starts right after the first run ends (timer granularity 1 ms).
    expect(starts[1]! - 1_000_500).toBeGreaterThanOrEqual(0);
    expect(starts[1]! - 1_000_500).toBeLessThanOrEqual(1);
    ac.abort();
    await done;
  });

  it('retries a failed run with exponential backoff and resets after success', async () => {
    const starts: number[] = [];
    const errors: number[] = [];
    let fail = 3;
    const r = new BoundedFrequencyRunner({
      name: 'flaky',
      minInterval: 0,
      maxInterval: 100_000,
      retryInitial: 1000,
      retryMax: 3000,
      onError: (_e, n) => errors.push(n),
      fn: async () => {
        starts.push(Date.now() - 1_000_000);
        if (fail-- > 0) throw new Error('boom');
      },
    });
    const ac = new AbortController();
    const done = r.loop(ac.signal);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(starts).toEqual([0, 1000, 3000, 6000]);
    expect(errors).toEqual([1, 2, 3]);
    expect(r.consecutiveFailures).toBe(0);
    ac.abort();
    await done;
  });

  it('without runAtStart waits for run() or maxInterval', async () => {
    const { r, starts } = counting({ runAtStart: false });
    const ac = new AbortController();
    const done = r.loop(ac.signal);
    await vi.advanceTimersByTimeAsync(9_999);
    expect(starts).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(starts).toEqual([1_010_000]);
    ac.abort();
    await done;
  });

  it('abort waits for the in-flight run and stops further runs', async () => {
    let finished = false;
    const r = new BoundedFrequencyRunner({
      name: 'stop',
      minInterval: 0,
      maxInterval: 1000,
      fn: async () => {
        await new Promise((res) => setTimeout(res, 300));
        finished = true;
      },
    });
    const ac = new AbortController();
    const done = r.loop(ac.signal);
    await vi.advanceTimersByTimeAsync(100);
    ac.abort();
    let resolved = false;
    void done.then(() => (resolved = true));
    await vi.advanceTimersByTimeAsync(100);
    expect(resolved).toBe(false);
    await vi.advanceTimersByTimeAsync(200);
    expect(finished).toBe(true);
    expect(resolved).toBe(true);
    const before = r.completedRuns;
    await vi.advanceTimersByTimeAsync(5000);
    expect(r.completedRuns).toBe(before);
  });

  /** A runner recording (ms since start, reason) of every run; `failWhen` decides which runs throw. */
  function reasons(opts: Partial<ConstructorParameters<typeof BoundedFrequencyRunner>[0]> = {}, failWhen: (n: number) => boolean = () => false) {
    const runs: [number, RunReason][] = [];
    const r = new BoundedFrequencyRunner({
      name: 'reasons',
      minInterval: 100,
      maxInterval: 10_000,
      retryInitial: 1000,
      fn: async ({ reason }) => {
        runs.push([Date.now() - 1_000_000, reason]);
        if (failWhen(runs.length)) throw new Error('boom');
      },
      ...opts,
    });
    return { r, runs };
  }

  it('tells fn why it runs: periodic at start and every maxInterval, requested for run()', async () => {
    const { r, runs } = reasons();
    const ac = new AbortController();
    const done = r.loop(ac.signal);
    await vi.advanceTimersByTimeAsync(0);
    r.run();
    await vi.advanceTimersByTimeAsync(500);
    // Requests do not postpone the periodic run: it stays due 10 s after the last one.
    for (let t = 500; t < 12_000; t += 3000) {
      r.run();
      await vi.advanceTimersByTimeAsync(3000);
    }
    ac.abort();
    await done;
    expect(runs).toEqual([
      [0, 'periodic'],
      [100, 'requested'],
      [500, 'requested'],
      [3500, 'requested'],
      [6500, 'requested'],
      [9500, 'requested'],
      [10_000, 'periodic'],
    ]);
  });

  it('the run after a failure is a retry, even when a request wakes it before the backoff', async () => {
    const { r, runs } = reasons({}, (n) => n === 2 || n === 3);
    const ac = new AbortController();
    const done = r.loop(ac.signal);
    await vi.advanceTimersByTimeAsync(0);
    r.run(); // fails
    await vi.advanceTimersByTimeAsync(1000);
    r.run(); // served at once, before the 1.1 s retry, as the retry; fails again
    await vi.advanceTimersByTimeAsync(300);
    r.run(); // served at once as the retry; succeeds
    await vi.advanceTimersByTimeAsync(300);
    r.run();
    await vi.advanceTimersByTimeAsync(300);
    ac.abort();
    await done;
    expect(runs).toEqual([
      [0, 'periodic'],
      [100, 'requested'],
      [1000, 'retry'],
      [1300, 'retry'],
      [1600, 'requested'],
    ]);
  });

  it('retryAfter() schedules a retry run without a failure; from inside fn it applies to the next run', async () => {
    let once = true;
    const runs: [number, RunReason][] = [];
    const r: BoundedFrequencyRunner = new BoundedFrequencyRunner({
      name: 'partial',
      minInterval: 100,
      maxInterval: 60_000,
      fn: async ({ reason }) => {
        runs.push([Date.now() - 1_000_000, reason]);
        if (once) {
          once = false;
          r.retryAfter(2000); // e.g. applied only in part
        }
      },
    });
    const ac = new AbortController();
    const done = r.loop(ac.signal);
    await vi.advanceTimersByTimeAsync(5000);
    r.retryAfter(0);
    await vi.advanceTimersByTimeAsync(0);
    // retryAfter keeps minInterval: right after a run it waits.
    r.retryAfter(0);
    await vi.advanceTimersByTimeAsync(99);
    expect(runs).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(1);
    ac.abort();
    await done;
    expect(runs).toEqual([
      [0, 'periodic'],
      [2000, 'retry'],
      [5000, 'retry'],
      [5100, 'retry'],
    ]);
    expect(r.consecutiveFailures).toBe(0);
  });
});
