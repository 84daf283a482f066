// nftables cold start and one endpoint change at scale, in a network
// namespace the caller created (bench/kube-proxy-nft.sh does), written by the
// nf_tables netlink writer (the proxier's default) or by `nft -f`.
//   node <bundle> --netns /run/netns/NAME [--services N] [--endpoints E]
//        [--max-lines L] [--writer netlink|nft] [--naive]
// Prints one JSON line: render time, the transactions (count, lines, the
// slowest), cold-start wall time (render + every transaction applied), one
// endpoint change at that scale (tracker fold + plan + apply → rules in
// place), the kernel's element count of service-ips (checked with nft after
// the clock stopped) and the process's peak RSS.
// --naive applies the whole cold start as ONE `nft -f` (upstream's way).
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { IPAddr, IPPrefix } from '../lib/ip/index.ts';
import { Endpoints, EndpointsChangeTracker, LABEL_SERVICE_NAME, ServiceChangeTracker, ServicePorts } from '../kube-proxy/tracker/index.ts';
import { DEFAULT_MAX_TRANSACTION_LINES, NFTablesRenderer, type NFTablesOptions, type NFTablesPlan } from '../kube-proxy/render/nftables.ts';
import { detectLocalByCIDR } from '../kube-proxy/render/options.ts';
import { NftNetlinkWriter } from '../lib/netfilter/nft-netlink.ts';
import { NETLINK_MAX_TRANSACTION_LINES } from '../kube-proxy/proxier/nftables.ts';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}
const netns = arg('netns', '');
if (netns === '') throw new Error('--netns /run/netns/NAME is required');
const nServices = Number(arg('services', '10000'));
const nEndpoints = Number(arg('endpoints', '10'));
const naive = process.argv.includes('--naive');
const writerKind = naive ? 'nft' : arg('writer', 'netlink');
// The proxier's defaults: NETLINK_MAX_TRANSACTION_LINES with the netlink writer, the renderer's with nft.
const maxLines = Number(arg('max-lines', String(writerKind === 'netlink' ? NETLINK_MAX_TRANSACTION_LINES : DEFAULT_MAX_TRANSACTION_LINES)));
if (writerKind !== 'netlink' && writerKind !== 'nft') throw new Error('--writer netlink|nft');
const writer = writerKind === 'netlink' ? NftNetlinkWriter.open({ netns }) : undefined;

const v4 = (n: number): string => `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
const CLUSTER_BASE = Number(IPAddr.mustParse('10.96.0.0').value);
const POD_BASE = Number(IPAddr.mustParse('10.128.0.0').value);

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
    endpoints: Array.from({ length: nEndpoints }, (_, j) => ({ addresses: [v4(POD_BASE + i * nEndpoints + j + shift)], nodeName: `node${j % 50}` })),
  };
}

const options: NFTablesOptions = {
  family: 4,
  nodeName: 'node0',
  localDetector: detectLocalByCIDR(IPPrefix.mustParse('10.128.0.0/9')),
  serviceCIDRs: ['10.96.0.0/12'],
  maxTransactionLines: naive ? Number.MAX_SAFE_INTEGER : maxLines,
  // As the proxier sets it: the netlink writer takes new chains in their service's batch.
  precreateChains: writerKind !== 'netlink',
};

function nft(text: string): number {
  const t = performance.now();
  const r = spawnSync('nsenter', [`--net=${netns}`, '--', 'nft', '-f', '-'], { input: text, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`nft failed: ${r.stderr.toString().slice(0, 2000)}`);
  return performance.now() - t;
}

/** Applies and commits each transaction; with `progress`, reports each one on stderr (for runs cut short). */
async function apply(r: NFTablesRenderer, plan: NFTablesPlan, progress?: number): Promise<number[]> {
  const times: number[] = [];
  let ports = 0;
  for (const [i, t] of plan.transactions.entries()) {
    if (writer) {
      const s = performance.now();
      if (t.commands.length > 0) await writer.apply(t.table, t.commands);
      times.push(performance.now() - s);
    } else times.push(t.text === '' ? 0 : nft(t.text));
    r.commit(t);
    ports += t.servicePorts.length;
    if (progress !== undefined) {
      const elapsedMs = Math.round(performance.now() - progress);
      console.error(`progress ${JSON.stringify({ tx: i + 1, of: plan.transactions.length, servicePortsProgrammed: ports, lastTxMs: Math.round(times[i]!), elapsedMs })}`);
    }
  }
  return times;
}

const svcTracker = new ServiceChangeTracker(4);
const epTracker = new EndpointsChangeTracker(4, 'node0');
const services = new ServicePorts();
const endpoints = new Endpoints();
for (let i = 0; i < nServices; i++) {
  svcTracker.update(undefined, service(i));
  epTracker.endpointSliceUpdate(slice(i), false);
}
services.update(svcTracker);
endpoints.update(epTracker);

const renderer = new NFTablesRenderer(options);
const input = { services: services.map, endpoints: endpoints.map };
const t0 = performance.now();
const plan = renderer.plan(input);
const renderMs = performance.now() - t0;
console.error(`progress ${JSON.stringify({ rendered: true, renderMs: Math.round(renderMs), transactions: plan.transactions.length })}`);
const times = await apply(renderer, plan, t0);
const coldMs = performance.now() - t0;

// One endpoint of one service changes: fold, plan, apply; a few times, median reported.
const changes: { totalMs: number; nftMs: number; lines: number }[] = [];
for (let k = 1; k <= 5; k++) {
  epTracker.endpointSliceUpdate(slice(4242 % nServices, k % 2), false);
  const t = performance.now();
  endpoints.update(epTracker);
  const p = renderer.plan(input);
  const nftTimes = await apply(renderer, p);
  changes.push({ totalMs: performance.now() - t, nftMs: nftTimes.reduce((a, b) => a + b, 0), lines: p.transactions.reduce((a, b) => a + b.lines, 0) });
}
changes.sort((a, b) => a.totalMs - b.totalMs);
const median = changes[Math.floor(changes.length / 2)]!;
const rssMB = Math.round(process.resourceUsage().maxRSS / 1024);
writer?.close();

// What the kernel holds, asked after the clock stopped: one element per service port in service-ips.
const listed = spawnSync('nsenter', [`--net=${netns}`, '--', 'nft', '-j', 'list', 'map', 'ip', 'kube-proxy', 'service-ips'], { maxBuffer: 1 << 28 });
const kernelServiceIPs = listed.status === 0 ? ((JSON.parse(listed.stdout.toString()) as { nftables: { map?: { elem?: unknown[] } }[] }).nftables.find((o) => o.map)?.map?.elem?.length ?? 0) : -1;

console.log(
  JSON.stringify({
    services: nServices,
    endpoints: nEndpoints,
    writer: writerKind,
    naive,
    maxLines: naive ? null : maxLines,
    chains: renderer.state.chains.size,
    elements: renderer.state.elements.size,
    transactions: plan.transactions.length,
    lines: plan.transactions.reduce((a, b) => a + b.lines, 0),
    renderMs: Math.round(renderMs),
    applyMs: Math.round(times.reduce((a, b) => a + b, 0)),
    slowestTxMs: Math.round(Math.max(...times)),
    txMs: times.map((t) => Math.round(t)),
    txLines: plan.transactions.map((t) => t.lines),
    firstTxMs: Math.round(times[0] ?? 0),
    lastTxMs: Math.round(times[times.length - 1] ?? 0),
    coldStartMs: Math.round(coldMs),
    endpointChange: { medianMs: Number(median.totalMs.toFixed(1)), applyMs: Number(median.nftMs.toFixed(1)), lines: median.lines },
    kernelServiceIPs,
    maxRssMB: rssMB,
  }),
);
