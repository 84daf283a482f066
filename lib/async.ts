// Hand-offs between a producer and an async consumer, without polling:
//   AsyncQueue  an unbounded FIFO a loop pushes into and a consumer awaits
//               (`for await`), closed normally or with an error;
//   Wakeup      a level-triggered "something happened" flag a loop waits on
//               with a timeout, so a burst of fire()s wakes it once.
// Both are single-consumer: one pending next()/wait() at a time.
import { sleep, untilAborted } from './abort.ts';

/** Values are never undefined: next() returns undefined for "closed and drained". */
export class AsyncQueue<T extends {}> implements AsyncIterable<T> {
  #items: T[] = [];
  #closed = false;
  #failed = false;
  #error: unknown;
  #waiter: (() => void) | undefined;

  /** Appends a value; ignored once the queue is closed. */
  push(value: T): void {
    if (this.#closed) return;
    this.#items.push(value);
    this.#wake();
  }

  /** No more values: next() drains what is queued, then returns undefined. */
  close(): void {
    this.#closed = true;
    this.#wake();
  }

  /** Closes with an error: next() drains what is queued, then throws it. */
  fail(err: unknown): void {
    if (this.#closed) return;
    this.#failed = true;
    this.#error = err;
    this.close();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Values waiting to be taken. */
  get size(): number {
    return this.#items.length;
  }

  /** The next value; undefined once closed and drained. */
  async next(): Promise<T | undefined> {
    for (;;) {
      if (this.#items.length > 0) return this.#items.shift();
      if (this.#closed) {
        if (this.#failed) throw this.#error;
        return undefined;
      }
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const v = await this.next();
      if (v === undefined) return;
      yield v;
    }
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }
}

export class Wakeup {
  #pending = false;
  #waiter: AbortController | undefined;

  /** Wakes the current wait(), or the next one if nobody waits now. */
  fire(): void {
    this.#pending = true;
    this.#waiter?.abort();
  }

  /**
   * Resolves on the first of: a fire() (also one that came before this
   * call and was not consumed yet), `ms` elapsed (undefined: no timeout),
   * `signal` aborted. Never rejects. Returns whether it was woken by fire().
   */
  async wait(ms: number | undefined, signal: AbortSignal): Promise<boolean> {
    if (!this.#pending && !signal.aborted) {
      const ac = new AbortController();
      this.#waiter = ac;
      const stop = (): void => ac.abort();
      signal.addEventListener('abort', stop, { once: true });
      try {
        await (ms === undefined ? untilAborted(ac.signal) : sleep(ms, ac.signal));
      } finally {
        signal.removeEventListener('abort', stop);
        if (this.#waiter === ac) this.#waiter = undefined;
      }
    }
    const fired = this.#pending;
    this.#pending = false;
    return fired;
  }
}
