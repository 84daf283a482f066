// A bounded-frequency runner, after Kubernetes' async.BoundedFrequencyRunner:
// callers say "something changed" with run(); the function runs at most once
// per minInterval (requests in between coalesce into one run), at least once
// per maxInterval (periodic full resync), never concurrently with itself, and
// after a failure again after an exponential backoff.
//
// The function is told why it runs, so it can choose between a partial sync
// (apply what changed) and a full one (read the kernel, diff, apply):
//   'periodic'  a full sync is due: the first run, and maxInterval after the
//               last periodic or retry run, however many requested runs came
//               in between (so a busy stream of changes never postpones it);
//   'retry'     the previous run failed, or retryAfter() was called: what was
//               applied before can no longer be trusted;
//   'requested' only run() asked for it.
// When several hold at once the first in the order retry, periodic,
// requested wins: a retry or periodic run also serves pending requests.
import { Backoff } from '../daemon/retry.ts';
import { NetError } from '../errors.ts';

export type RunReason = 'requested' | 'periodic' | 'retry';

export interface RunContext {
  reason: RunReason;
}

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
  fn: (ctx: RunContext) => Promise<void>;
  /** Minimum time between the starts of two runs (ms). 0 = no limit. */
  minInterval: number;
  /** Maximum time from the end of one periodic (or retry) run to the start of the next periodic one (ms); Infinity = none. */
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
  /** End of the last periodic or retry run: the next periodic run is due maxInterval later. */
  private lastFullEnd = Number.NEGATIVE_INFINITY;
  private retryAt: number | undefined;
  /** retryAt came from a failure or retryAfter(): the next run, whenever it starts, is a retry. */
  private retryDue = false;
  private readonly backoff: Backoff;
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
    this.backoff = new Backoff({ min: Math.min(this.opts.retryInitial, this.opts.retryMax), max: this.opts.retryMax });
  }

  /** Number of completed runs (successful or not). */
  get completedRuns(): number {
    return this.runs;
  }

  /** Consecutive failures of the most recent runs (0 after a success). */
  get consecutiveFailures(): number {
    return this.backoff.failures;
  }

  /** Requests a run; coalesces with other requests and respects minInterval. */
  run(): void {
    this.pending = true;
    if (this.active) this.schedule();
  }

  /**
   * Makes the next run a 'retry', starting no later than `ms` from now
   * (minInterval still holds). From inside fn it applies to the run after
   * the current one, e.g. when a sync succeeded only in part.
   */
  retryAfter(ms: number): void {
    const at = this.clock.now() + Math.max(0, ms);
    this.retryAt = this.retryAt === undefined ? at : Math.min(this.retryAt, at);
    this.retryDue = true;
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
    // Without runAtStart the first periodic run is maxInterval after the start.
    if (!this.opts.runAtStart && this.lastFullEnd === Number.NEGATIVE_INFINITY) this.lastFullEnd = this.clock.now();
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
    // Periodic run: maxInterval after the last full one (at once before the first).
    const periodicAt = Math.max(this.periodicDue(), earliest);
    let at = periodicAt;
    if (this.pending) at = Math.min(at, earliest);
    if (this.retryAt !== undefined) at = Math.min(at, Math.max(this.retryAt, earliest));
    if (at === Number.POSITIVE_INFINITY) return; // nothing to do until run()
    // Decided here, not from the clock when the timer fires: timers may fire
    // a little early by the wall clock.
    const periodic = at >= periodicAt;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.fire(periodic);
    }, Math.max(0, at - now));
  }

  private periodicDue(): number {
    return this.lastFullEnd === Number.NEGATIVE_INFINITY ? Number.NEGATIVE_INFINITY : this.lastFullEnd + this.opts.maxInterval;
  }

  private async fire(periodic: boolean): Promise<void> {
    if (!this.active || this.running) return;
    this.running = true;
    this.lastStart = this.clock.now();
    const reason: RunReason = this.retryDue ? 'retry' : periodic || this.lastStart >= this.periodicDue() ? 'periodic' : 'requested';
    this.pending = false;
    this.retryAt = undefined;
    this.retryDue = false;
    try {
      await this.opts.fn({ reason });
      this.backoff.reset();
    } catch (err) {
      const delay = this.backoff.next();
      this.retryAt = Math.min(this.retryAt ?? Number.POSITIVE_INFINITY, this.clock.now() + delay);
      this.retryDue = true;
      try {
        this.opts.onError?.(err, this.backoff.failures);
      } catch {
        // a reporting failure must not stop the runner
      }
    } finally {
      this.runs++;
      this.running = false;
      if (reason !== 'requested') this.lastFullEnd = this.clock.now();
      if (this.active) this.schedule();
      else if (this.finished) {
        const f = this.finished;
        this.finished = undefined;
        f();
      }
    }
  }
}
