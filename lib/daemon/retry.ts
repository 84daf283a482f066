// Retry with exponential backoff: the one implementation for every loop that
// tries again after a failure (etcd watches and keep-alives, lease
// acquisition, Kubernetes API calls, the daemon's start-up steps, the
// bridge plugin's iptables/nft transactions).
//
//   Backoff  the delay sequence: min, min·factor, … capped at max, each
//            optionally jittered by ±jitter·delay; reset() after a success.
//   retry()  calls fn until it succeeds, a retryIf() says no, the attempts
//            run out, or the signal aborts (then it rejects with the
//            signal's reason, so callers test `signal.aborted`).
//
// Runtime-neutral (timers only): the CNI plugins use it too.
import { sleep } from '../abort.ts';

export interface BackoffOptions {
  /** First delay (ms). */
  min: number;
  /** Largest delay (ms). */
  max: number;
  /** Growth per consecutive failure; default 2. */
  factor?: number;
  /**
   * Spread of each delay, 0..1: a delay d becomes uniform in
   * [d·(1-jitter), d·(1+jitter)). Default 0. Jitter keeps two nodes that
   * failed together (a lost race, an etcd restart) from retrying in step.
   */
  jitter?: number;
  /** Uniform in [0, 1); default Math.random. */
  random?: () => number;
}

export class Backoff {
  readonly #min: number;
  readonly #max: number;
  readonly #factor: number;
  readonly #jitter: number;
  readonly #random: () => number;
  #current: number;
  #failures = 0;

  constructor(opts: BackoffOptions) {
    if (!(opts.min >= 0) || !(opts.max >= opts.min)) throw new RangeError(`backoff: need 0 <= min <= max, got ${opts.min}, ${opts.max}`);
    const jitter = opts.jitter ?? 0;
    if (!(jitter >= 0 && jitter <= 1)) throw new RangeError(`backoff: jitter must be within 0..1, got ${jitter}`);
    this.#min = opts.min;
    this.#max = opts.max;
    this.#factor = opts.factor ?? 2;
    this.#jitter = jitter;
    this.#random = opts.random ?? Math.random;
    this.#current = opts.min;
  }

  /** Consecutive failures since the last reset(). */
  get failures(): number {
    return this.#failures;
  }

  /** The delay to wait after this failure; the one after it grows. */
  next(): number {
    const base = this.#current;
    this.#failures++;
    this.#current = Math.min(this.#max, Math.max(this.#min, base * this.#factor));
    if (this.#jitter === 0) return base;
    return Math.floor(base * (1 - this.#jitter + 2 * this.#jitter * this.#random()));
  }

  /** After a success: the next failure waits `min` again. */
  reset(): void {
    this.#current = this.#min;
    this.#failures = 0;
  }

  /** Waits next() ms, or until `signal` aborts (never rejects). */
  sleep(signal: AbortSignal): Promise<void> {
    return sleep(this.next(), signal);
  }
}

export interface RetryOptions extends BackoffOptions {
  /** Stops the retries (a daemon's lifecycle signal); a short-lived CNI plugin has none. */
  signal?: AbortSignal;
  /** Give up after this many attempts (the last error is thrown); default unlimited. */
  attempts?: number;
  /** Whether this error is worth another attempt; default always. */
  retryIf?: (err: unknown, attempt: number) => boolean;
  /** Told before each wait, e.g. to log the failure. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/** Calls `fn(attempt)` (1, 2, …) until it resolves; see the header for when it gives up. */
export async function retry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const signal = opts.signal ?? new AbortController().signal;
  const backoff = new Backoff(opts);
  for (let attempt = 1; ; attempt++) {
    signal.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (err) {
      signal.throwIfAborted();
      if (attempt >= (opts.attempts ?? Number.POSITIVE_INFINITY)) throw err;
      if (opts.retryIf && !opts.retryIf(err, attempt)) throw err;
      const delay = backoff.next();
      opts.onRetry?.(err, attempt, delay);
      await sleep(delay, signal);
    }
  }
}
