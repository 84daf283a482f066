import { describe, expect, it, vi } from 'vitest';
import { AsyncQueue, Wakeup } from './async.ts';

describe('AsyncQueue', () => {
  it('hands values over in order, to a consumer that waits before or after the push', async () => {
    const q = new AsyncQueue<number>();
    q.push(1);
    expect(await q.next()).toBe(1);
    const waiting = q.next();
    q.push(2);
    q.push(3);
    expect(await waiting).toBe(2);
    expect(q.size).toBe(1);
    expect(await q.next()).toBe(3);
  });

  it('drains what is queued after close(), then ends; pushes after close are dropped', async () => {
    const q = new AsyncQueue<string>();
    q.push('a');
    q.push('b');
    q.close();
    q.push('c');
    const seen: string[] = [];
    for await (const v of q) seen.push(v);
    expect(seen).toEqual(['a', 'b']);
    expect(await q.next()).toBeUndefined();
  });

  it('close() wakes a waiting consumer', async () => {
    const q = new AsyncQueue<number>();
    const waiting = q.next();
    q.close();
    expect(await waiting).toBeUndefined();
  });

  it('fail() ends the stream with the error after the queued values', async () => {
    const q = new AsyncQueue<number>();
    q.push(1);
    q.fail(new Error('broken'));
    expect(await q.next()).toBe(1);
    await expect(q.next()).rejects.toThrow('broken');
    // A later fail() does not replace the first outcome.
    q.fail(new Error('other'));
    await expect(q.next()).rejects.toThrow('broken');
  });
});

describe('Wakeup', () => {
  it('a fire() before wait() is remembered once', async () => {
    const w = new Wakeup();
    w.fire();
    w.fire();
    const ac = new AbortController();
    expect(await w.wait(60_000, ac.signal)).toBe(true);
    vi.useFakeTimers();
    try {
      const second = w.wait(1000, ac.signal);
      await vi.advanceTimersByTimeAsync(1000);
      expect(await second).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });

  it('fire() wakes a waiting loop; abort ends the wait without a fire', async () => {
    const w = new Wakeup();
    const ac = new AbortController();
    const waiting = w.wait(60_000, ac.signal);
    w.fire();
    expect(await waiting).toBe(true);
    const aborted = w.wait(60_000, ac.signal);
    ac.abort();
    expect(await aborted).toBe(false);
    // Already aborted: returns at once.
    expect(await w.wait(60_000, ac.signal)).toBe(false);
  });
});
