// A bounded-frequency runner, after Kubernetes' async.BoundedFrequencyRunner:
// callers say "something changed" with run(); the function runs at most once
// per minInterval (requests in between coalesce into one run), at least once
// per maxInterval (periodic full resync), never concurrently with itself, and
// after a failure again after an exponential backoff.
import { NetError } from '../errors.ts';

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock (also what vitest's fake timers replace). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface RunnerOptions {
  name: string;
  fn: () => Promise<void>;
  /** Minimum time between the starts of two runs (ms). 0 = no limit. */
  minInterval: number;
  /** Maximum time between the end of one run and the start of the next (ms); Infinity = no periodic run. */
  maxInterval: number;
  /** First retry delay after a failure (ms); doubles per consecutive failure. Default 1000. */
  retryInitial?: number;
  /** Cap of the retry delay (ms). Default maxInterval, or 60 s if that is infinite. */
  retryMax?: number;
  /** Run once as soon as loop() starts. Default true. */
  runAtStart?: boolean;
  /** Told about every failed run (the runner itself never throws). */
  onError?: (err: unknown, consecutiveFailures: number) => void;
  clock?: Clock;
}

export class RunnerStateError extends NetError {
  constructor(message: string) {
    super('RUNNER_STATE', message);
  }
}

export class BoundedFrequencyRunner {
  readonly name: string;
  private readonly opts: Required<Omit<RunnerOptions, 'onError' | 'clock'>> & { onError: RunnerOptions['onError'] | undefined };
  private readonly clock: Clock;
  private pending = false;
  private running = false;
  private lastStart = Number.NEGATIVE_INFINITY;
  private lastEnd = Number.NEGATIVE_INFINITY;
  private retryAt: number | undefined;
  private failures = 0;
  private timer: unknown;
  private active = false;
  private finished: (() => void) | undefined;
  private runs = 0;

  constructor(opts: RunnerOptions) {
    if (opts.minInterval < 0 || opts.maxInterval <= 0 || opts.minInterval > opts.maxInterval) {
      throw new RangeError(`runner ${opts.name}: need 0 <= minInterval <= maxInterval, maxInterval > 0`);
    }
    this.name = opts.name;
    this.clock = opts.clock ?? systemClock;
    this.opts = {
      name: opts.name,
      fn: opts.fn,
      minInterval: opts.minInterval,
      maxInterval: opts.maxInterval,
      retryInitial: opts.retryInitial ?? 1000,
      retryMax: opts.retryMax ?? (Number.isFinite(opts.maxInterval) ? opts.maxInterval : 60_000),
      runAtStart: opts.runAtStart ?? true,
      onError: opts.onError,
    };
  }

  /** Number of completed runs (successful or not). */
  get completedRuns(): number {
    return this.runs;
  }

  /** Consecutive failures of the most recent runs (0 after a success). */
  get consecutiveFailures(): number {
    return this.failures;
  }

  /** Requests a run; coalesces with other requests and respects minInterval. */
  run(): void {
    this.pending = true;
    if (this.active) this.schedule();
  }

  /**
   * Drives the runner until `signal` aborts; resolves once any in-flight run
   * has finished. Only one loop per runner.
   */
  loop(signal: AbortSignal): Promise<void> {
    if (this.active) throw new RunnerStateError(`runner ${this.name}: loop already running`);
    if (signal.aborted) return Promise.resolve();
    this.active = true;
    if (this.opts.runAtStart) this.pending = true;
    else if (this.lastEnd === Number.NEGATIVE_INFINITY) this.lastEnd = this.clock.now();
    return new Promise<void>((resolve) => {
      const stop = (): void => {
        this.active = false;
        this.cancelTimer();
        if (!this.running) resolve();
        else this.finished = resolve;
      };
      signal.addEventListener('abort', stop, { once: true });
      this.schedule();
    });
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) {
      this.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  private schedule(): void {
    if (!this.active || this.running) return;
    this.cancelTimer();
    const now = this.clock.now();
    const earliest = this.lastStart === Number.NEGATIVE_INFINITY ? now : this.lastStart + this.opts.minInterval;
    // Periodic run: maxInterval after the last run ended (lastEnd is set before any wait).
    let at = this.lastEnd === Number.NEGATIVE_INFINITY ? Number.POSITIVE_INFINITY : this.lastEnd + this.opts.maxInterval;
    if (this.pending) at = Math.min(at, earliest);
    if (this.retryAt !== undefined) at = Math.min(at, Math.max(this.retryAt, earliest));
    if (at === Number.POSITIVE_INFINITY) return; // nothing to do until run()
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.fire();
    }, Math.max(0, at - now));
  }

  private async fire(): Promise<void> {
    if (!this.active || this.running) return;
    this.running = true;
    this.pending = false;
    this.retryAt = undefined;
    this.lastStart = this.clock.now();
    try {
      await this.opts.fn();
      this.failures = 0;
    } catch (err) {
      this.failures++;
      const delay = Math.min(this.opts.retryMax, this.opts.retryInitial * 2 ** (this.failures - 1));
      this.retryAt = this.clock.now() + delay;
      try {
        this.opts.onError?.(err, this.failures);
      } catch {
        // a reporting failure must not stop the runner
      }
    } finally {
      this.runs++;
      this.running = false;
      this.lastEnd = this.clock.now();
      if (this.active) this.schedule();
      else if (this.finished) {
        const f = this.finished;
        this.finished = undefined;
        f();
      }
    }
  }
}
