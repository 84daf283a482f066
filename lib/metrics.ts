// Prometheus metrics helpers on prom-client. Each daemon owns one Registry
// (never the global default, so tests and several components in one process
// do not collide) and serves it on /metrics.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export { Counter, Gauge, Histogram, Registry };

export function newRegistry(opts: { defaultMetrics?: boolean; prefix?: string } = {}): Registry {
  const reg = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics(opts.prefix === undefined ? { register: reg } : { register: reg, prefix: opts.prefix });
  return reg;
}

/** Seconds since `start` (a process.hrtime.bigint() value). */
export function secondsSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** Runs `fn`, observing its duration (seconds) in `h` with `labels`, success or not. */
export async function timed<T>(h: Histogram<string>, labels: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const start = process.hrtime.bigint();
  try {
    return await fn();
  } finally {
    h.observe(labels, secondsSince(start));
  }
}

/** Text exposition of a registry with its content type, for an HTTP handler. */
export async function exposition(reg: Registry): Promise<{ contentType: string; body: string }> {
  return { contentType: reg.contentType, body: await reg.metrics() };
}
