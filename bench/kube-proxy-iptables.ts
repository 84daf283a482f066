// kube-proxy iptables mode at scale, side by side with the bare tool, in two
// network namespaces this program creates (and deletes, also on failure):
//   "ours": the real IPTablesFamilyProxier (the daemon's sync: iptables-save
//           where a full sync needs it, render, one iptables-restore
//           --noflush, conntrack reconcile) on RealIptables in that netns;
//   "ref":  `iptables-restore -w --noflush` of the very same text that our
//           sync wrote, fed to the same binary in the other netns, which is
//           kept in the same state as "ours" (it gets every text ours got).
// Figures: a cold full sync (empty netns), a warm full sync (everything in
// place: the hourly / canary-loss / after-failure case), each the median of
// --rounds rounds in which ours and the reference alternate in order, and
// one endpoint change at that scale, from the EndpointSlice event to the
// rules in place (tracker fold + partial render + restore), median of
// --changes runs.
//   node <bundle> --prefix P [--services 10000] [--endpoints 10]
//        [--mode legacy|nft] [--changes 5] [--rounds 3]
// Prints one JSON line on stdout; progress on stderr. Run by
// bench/kube-proxy-iptables.sh, which writes the results file.
import { performance } from 'node:perf_hooks';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { IPAddr, IPPrefix } from '../lib/ip/index.ts';
import { run } from '../lib/exec.ts';
import { silentLogger } from '../lib/log.ts';
import { newRegistry } from '../lib/metrics.ts';
import { createNamedNetns, deleteNamedNetns } from '../lib/netns/index.ts';
import { RealConntrack } from '../lib/netfilter/conntrack.ts';
import { RealIptables, restoreArgs, type IpFamily, type IptablesRestore, type RestoreOptions, type SaveOptions } from '../lib/netfilter/iptables.ts';
import { ProxyHealth } from '../kube-proxy/health/proxy.ts';
import { ProxyMetrics } from '../kube-proxy/metrics.ts';
import { IPTablesFamilyProxier, type SyncOutcome } from '../kube-proxy/proxier/iptables.ts';
import { detectLocalByCIDR } from '../kube-proxy/render/options.ts';
import { LABEL_SERVICE_NAME } from '../kube-proxy/tracker/index.ts';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}
const prefix = arg('prefix', '');
if (prefix === '') throw new Error('--prefix NAME is required (the netns name prefix)');
const nServices = Number(arg('services', '10000'));
const nEndpoints = Number(arg('endpoints', '10'));
const mode = arg('mode', 'legacy') as 'legacy' | 'nft';
if (mode !== 'legacy' && mode !== 'nft') throw new Error('--mode legacy|nft');
const nChanges = Math.max(5, Number(arg('changes', '5')));

const progress = (what: string, extra: Record<string, unknown> = {}): void => void process.stderr.write(`progress ${JSON.stringify({ what, ...extra })}\n`);

const v4 = (n: number): string => `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
const CLUSTER_BASE = Number(IPAddr.mustParse('10.96.0.0').value);
const POD_BASE = Number(IPAddr.mustParse('10.128.0.0').value);

/** One TCP port per service; every tenth a NodePort (as the nftables bench). */
function service(i: number): V1Service {
  const nodePort = i % 10 === 0 ? { nodePort: 30000 + (i / 10) } : {};
  return {
    kind: 'Service',
    metadata: { namespace: `ns${i % 100}`, name: `svc${i}` },
    spec: { type: i % 10 === 0 ? 'NodePort' : 'ClusterIP', clusterIP: v4(CLUSTER_BASE + i + 1), ports: [{ name: 'http', port: 80, protocol: 'TCP', ...nodePort }] },
  };
}

function slice(i: number, shift = 0): V1EndpointSlice {
  return {
    kind: 'EndpointSlice',
    addressType: 'IPv4',
    metadata: { namespace: `ns${i % 100}`, name: `svc${i}-abc`, labels: { [LABEL_SERVICE_NAME]: `svc${i}` } },
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: Array.from({ length: nEndpoints }, (_, j) => ({
      addresses: [v4(POD_BASE + i * nEndpoints + j + shift)],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: `node${j % 50}`,
    })),
  };
}

/** The binary both sides run (RealIptables picks the same one for this mode). */
const restoreBin = mode === 'legacy' ? 'iptables-legacy-restore' : 'iptables-nft-restore';

/** Records what ours fed to iptables-restore, so that the reference restores the very same text. */
class Recording implements IptablesRestore {
  last = '';
  constructor(private readonly inner: IptablesRestore) {}
  restore(family: IpFamily, text: string, opts: RestoreOptions): Promise<void> {
    this.last = text;
    return this.inner.restore(family, text, opts);
  }
  save(family: IpFamily, table?: string, opts?: SaveOptions): Promise<string> {
    return this.inner.save(family, table, opts);
  }
}

async function reference(nsPath: string, text: string): Promise<number> {
  const t = performance.now();
  await run(restoreBin, restoreArgs({ noflush: true }), { netns: nsPath, input: text });
  return performance.now() - t;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const r1 = (x: number): number => Math.round(x * 10) / 10;
const timings = (o: SyncOutcome) => Object.fromEntries(Object.entries(o.timings).map(([k, v]) => [k, r1(v)]));

const ROUNDS = Math.max(1, Number(arg('rounds', '3')));
const created: string[] = [];
const makeNetns = (name: string): string => {
  const path = createNamedNetns(name);
  created.push(name);
  return path;
};
const dropNetns = (name: string): void => {
  deleteNamedNetns(name);
  created.splice(created.indexOf(name), 1);
};

/** A proxier in `nsPath` that has seen every object (not timed: the daemon has them before its first sync). */
function makeProxier(nsPath: string): { proxier: IPTablesFamilyProxier; ipt: Recording } {
  const ipt = new Recording(new RealIptables({ netns: nsPath, mode }));
  const proxier = new IPTablesFamilyProxier(
    {
      family: 4,
      nodeName: 'node0',
      renderOptions: () => ({ family: 4, nodeName: 'node0', localDetector: detectLocalByCIDR(IPPrefix.mustParse('10.128.0.0/9')), masqueradeBit: 14 }),
    },
    { iptables: ipt, conntrack: new RealConntrack({ netns: nsPath }), log: silentLogger(), metrics: new ProxyMetrics(newRegistry()), health: new ProxyHealth([4], 60_000), requestSync: () => {} },
  );
  for (let i = 0; i < nServices; i++) {
    proxier.onServiceUpdate(undefined, service(i));
    proxier.onEndpointSliceUpdate(slice(i), false);
  }
  proxier.setInitialized();
  return { proxier, ipt };
}

interface Pair {
  readonly ours: SyncOutcome;
  readonly refMs: number;
}
const summary = (pairs: readonly Pair[]) => {
  const m = (f: (p: Pair) => number): number => r1(median(pairs.map(f)));
  const renderMs = m((p) => p.ours.timings.renderMs);
  const refMs = m((p) => p.refMs);
  const totalMs = m((p) => p.ours.timings.totalMs);
  return {
    medianOf: pairs.length,
    ours: { saveMs: m((p) => p.ours.timings.saveMs), foldMs: m((p) => p.ours.timings.foldMs), renderMs, restoreMs: m((p) => p.ours.timings.restoreMs), conntrackMs: m((p) => p.ours.timings.conntrackMs), totalMs },
    refMs,
    renderShare: r1((100 * renderMs) / refMs),
    totalRatio: Number((totalMs / refMs).toFixed(3)),
    // Each round's own ratio: both sides of a round ran back to back.
    roundRatios: pairs.map((p) => Number((p.ours.timings.totalMs / p.refMs).toFixed(3))),
    runs: pairs.map((p) => ({ ours: timings(p.ours), refMs: r1(p.refMs) })),
  };
};

try {
  // Cold full syncs: each round a fresh proxier and two empty namespaces; the order of ours and
  // the reference alternates (the reference needs our text, so "reference first" replays the previous round's text).
  const cold: Pair[] = [];
  let last: { proxier: IPTablesFamilyProxier; ipt: Recording; oursPath: string; refPath: string } | undefined;
  let lastText = '';
  let coldOutcome: SyncOutcome | undefined;
  for (let r = 0; r < ROUNDS; r++) {
    const oursName = `${prefix}-ours${r}`;
    const refName = `${prefix}-ref${r}`;
    const oursPath = makeNetns(oursName);
    const refPath = makeNetns(refName);
    const { proxier, ipt } = makeProxier(oursPath);
    let refMs = 0;
    const refFirst = r % 2 === 1 && lastText !== '';
    if (refFirst) refMs = await reference(refPath, lastText);
    progress('cold full sync, ours', { round: r + 1 });
    const o = (await proxier.sync('periodic'))!;
    coldOutcome ??= o;
    if (refFirst && ipt.last !== lastText) throw new Error('cold texts differ between rounds');
    if (!refFirst) refMs = await reference(refPath, ipt.last);
    lastText = ipt.last;
    cold.push({ ours: o, refMs });
    progress('cold full sync', { round: r + 1, oursMs: r1(o.timings.totalMs), refMs: r1(refMs), refFirst });
    if (last) {
      dropNetns(`${prefix}-ours${r - 1}`);
      dropNetns(`${prefix}-ref${r - 1}`);
    }
    last = { proxier, ipt, oursPath, refPath };
  }
  const { proxier, ipt, refPath } = last!;

  // Warm full syncs (rules in place: the hourly / canary-loss / after-failure case), order alternating.
  const warm: Pair[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    proxier.forceFullSync();
    let refMs = 0;
    const refFirst = r % 2 === 1;
    // The warm text is the same every time (the jumps are present now): replay it first on odd rounds.
    if (refFirst) refMs = await reference(refPath, ipt.last);
    const o = (await proxier.sync('requested'))!;
    if (!refFirst) refMs = await reference(refPath, ipt.last);
    warm.push({ ours: o, refMs });
    progress('warm full sync', { round: r + 1, oursMs: r1(o.timings.totalMs), refMs: r1(refMs), refFirst });
  }

  // One endpoint change at scale → rules in place, as the daemon sees it.
  const changes: { totalMs: number; restoreMs: number; refMs: number; lines: number; full: boolean }[] = [];
  const target = 4242 % nServices;
  for (let k = 1; k <= nChanges; k++) {
    const t = performance.now();
    proxier.onEndpointSliceUpdate(slice(target, k % 2), false);
    const o = (await proxier.sync('requested'))!;
    const totalMs = performance.now() - t;
    const refMs = await reference(refPath, ipt.last);
    changes.push({ totalMs, restoreMs: o.timings.restoreMs, refMs, lines: ipt.last.split('\n').length - 1, full: o.full });
    progress('endpoint change', { k, totalMs: r1(totalMs), refMs: r1(refMs) });
  }

  console.log(
    JSON.stringify({
      services: nServices,
      endpoints: nEndpoints,
      mode,
      binary: restoreBin,
      rounds: ROUNDS,
      lines: lastText.split('\n').length - 1,
      bytes: lastText.length,
      natRules: coldOutcome!.result.natRulesTotal,
      filterRules: coldOutcome!.result.filterRules,
      largeClusterMode: coldOutcome!.result.largeClusterMode,
      cold: summary(cold),
      warm: summary(warm),
      endpointChange: {
        medianMs: r1(median(changes.map((c) => c.totalMs))),
        restoreMedianMs: r1(median(changes.map((c) => c.restoreMs))),
        refMedianMs: r1(median(changes.map((c) => c.refMs))),
        oursOutsideRestoreMedianMs: r1(median(changes.map((c) => c.totalMs - c.restoreMs))),
        lines: changes[0]!.lines,
        allPartial: changes.every((c) => !c.full),
        runs: changes.map((c) => ({ totalMs: r1(c.totalMs), restoreMs: r1(c.restoreMs), refMs: r1(c.refMs) })),
      },
      rssMB: Math.round(process.memoryUsage().rss / 1e6),
    }),
  );
} finally {
  for (const n of created.reverse()) {
    try {
      deleteNamedNetns(n);
    } catch (err) {
      process.stderr.write(`could not delete netns ${n}: ${String(err)}\n`);
    }
  }
}
