// A level-triggered wakeup for the sources' loops: `kick()` before `wait()`
// is not lost, many kicks before one wait are one wakeup.

export class Wakeup {
  private pending = false;
  private waiter: (() => void) | undefined;

  kick(): void {
    this.pending = true;
    this.waiter?.();
  }

  /**
   * Resolves true on a kick (consuming it), false after `ms` (undefined:
   * no timeout) or when `signal` aborts. Never rejects.
   */
  wait(signal: AbortSignal, ms?: number): Promise<boolean> {
    if (this.pending || signal.aborted) return Promise.resolve(this.take());
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(() => done(), ms);
      const done = (): void => {
        if (timer) clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.waiter = undefined;
        resolve(this.take());
      };
      this.waiter = done;
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private take(): boolean {
    const was = this.pending;
    this.pending = false;
    return was;
  }
}

/** Resolves after `ms` or when `signal` aborts, whichever is first. Never rejects. */
export function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
