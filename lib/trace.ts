// Opt-in per-phase timing for short-lived processes (the CNI plugins):
// KN_TRACE_PHASES=1 writes one stderr line per phase with its duration, so a
// slow invocation can be taken apart without a profiler:
//
//   kn-phase <name> <ms> ms
//
// Phases are sequential marks (each one lasts from the previous mark, or from
// the process start for the first) or spans around parts that may run side
// by side (DEL's veth removal, IPAM release and firewall teardown).
// performance.now() counts from the runtime's time origin, which Node and
// Bun both put at the process start, so the first mark is "process start to
// first line of our code". Off (the default) every call is one branch on a
// constant; the lines go to fd 2 synchronously, so process.exit loses none.
import { writeSync } from 'node:fs';

const enabled = process.env['KN_TRACE_PHASES'] === '1';
let last = 0;

function emit(name: string, ms: number): void {
  try {
    writeSync(2, `kn-phase ${name} ${ms.toFixed(2)} ms\n`);
  } catch {
    // a closed stderr must not change the plugin's outcome
  }
}

/** Whether KN_TRACE_PHASES=1 is set (for call sites that would build a name). */
export const tracing = enabled;

/** Ends the phase `name`: it lasted from the previous mark (or the process start) until now. */
export function traceMark(name: string): void {
  if (!enabled) return;
  const now = performance.now();
  emit(name, now - last);
  last = now;
}

/** Times `fn` as the phase `name`, independently of the sequential marks (it may overlap others). */
export function traceSpan<T>(name: string, fn: () => Promise<T>): Promise<T> {
  if (!enabled) return fn();
  const t0 = performance.now();
  return fn().finally(() => emit(name, performance.now() - t0));
}
