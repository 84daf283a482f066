// Polls `cond` every 10 ms until it holds. No deadline of its own: the test's
// timeout bounds the wait, so a condition that never holds fails that test.
export function until(cond: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const t = setInterval(() => {
      if (cond()) {
        clearInterval(t);
        resolve();
      }
    }, 10);
  });
}
