// Prometheus metrics helpers on prom-client. Each daemon owns one Registry
// (never the global default, so tests and several components in one process
// do not collide) and serves it on /metrics.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { VERSION } from './version.ts';

export { Counter, Gauge, Histogram, Registry };

/**
 * A daemon's registry. With `component`, it carries
 * `kube_netstack_build_info{component,version,node_version} 1`, which says
 * what runs where (the role kubernetes_build_info has upstream).
 */
export function newRegistry(opts: { defaultMetrics?: boolean; prefix?: string; component?: string } = {}): Registry {
  const reg = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics(opts.prefix === undefined ? { register: reg } : { register: reg, prefix: opts.prefix });
  if (opts.component !== undefined) {
    new Gauge({
      name: 'kube_netstack_build_info',
      help: 'A metric with a constant 1 value labelled by the component, its version and the Node.js it runs on.',
      labelNames: ['component', 'version', 'node_version'],
      registers: [reg],
    }).set({ component: opts.component, version: VERSION, node_version: process.version }, 1);
  }
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
