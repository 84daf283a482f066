// kube-proxy IPVS mode at scale against the real ip_vs, in a network
// namespace the caller created (bench/kube-proxy-ipvs.sh does, inside the
// test VM): the IPVS proxier (kube-proxy/proxier/ipvs.ts) over the real
// IPVS genl client, rtnetlink, ipset and iptables-restore.
//   node <bundle> --netns /run/netns/NAME [--services N] [--endpoints E] [--changes K]
// Prints one JSON line:
//   - first sync (cold: every virtual and real server, kube-ipvs0 addresses, sets, rules);
//   - one endpoint change, ours: a partial sync (median of K), with its IPVS messages;
//   - the same change under a full resync, which is what upstream's proxier
//     does on every sync (it lists and compares every virtual server): ours
//     with the kernel dump (median of K);
//   - the kernel's virtual server count afterwards (checked after the clock stopped).
import { performance } from 'node:perf_hooks';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { IPAddr, IPPrefix } from '../lib/ip/index.ts';
import { silentLogger } from '../lib/log.ts';
import { newRegistry } from '../lib/metrics.ts';
import { FakeConntrack } from '../lib/netfilter/conntrack.ts';
import { RealIpset } from '../lib/netfilter/ipset.ts';
import { RealIptables } from '../lib/netfilter/iptables.ts';
import { Handle } from '../lib/netlink/handle.ts';
import { openIpvs } from '../lib/netlink/ipvs.ts';
import { ProxyHealth } from '../kube-proxy/health/proxy.ts';
import { ProxyMetrics } from '../kube-proxy/metrics.ts';
import { IPVSFamilyProxier, type IPVSSyncOutcome } from '../kube-proxy/proxier/ipvs.ts';
import { detectLocalByCIDR } from '../kube-proxy/render/options.ts';
import { LABEL_SERVICE_NAME } from '../kube-proxy/tracker/index.ts';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}
const netns = arg('netns', '');
if (netns === '') throw new Error('--netns /run/netns/NAME is required');
const nServices = Number(arg('services', '1000'));
const nEndpoints = Number(arg('endpoints', '10'));
const nChanges = Number(arg('changes', '5'));

const v4 = (n: number): string => `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
const CLUSTER_BASE = Number(IPAddr.mustParse('10.96.0.0').value);
const POD_BASE = Number(IPAddr.mustParse('10.128.0.0').value);

const service = (i: number): V1Service => ({
  kind: 'Service',
  metadata: { namespace: `ns${i % 100}`, name: `svc${i}` },
  spec: { type: 'ClusterIP', clusterIP: v4(CLUSTER_BASE + i + 1), ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
});
const slice = (i: number, shift = 0): V1EndpointSlice => ({
  kind: 'EndpointSlice',
  addressType: 'IPv4',
  metadata: { namespace: `ns${i % 100}`, name: `svc${i}-abc`, labels: { [LABEL_SERVICE_NAME]: `svc${i}` } },
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  // UDP-free and remote (node j): no hairpin entries; TCP so a removed endpoint drains.
  endpoints: Array.from({ length: nEndpoints }, (_, j) => ({ addresses: [v4(POD_BASE + i * nEndpoints + j + (j === 0 ? shift : 0))], nodeName: `node${j}` })),
});

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number): number => Math.round(x * 10) / 10;

async function main(): Promise<void> {
  const ipvs = await openIpvs({ netns });
  const netlink = Handle.open({ netns });
  await netlink.linkSetUp((await netlink.linkByName('lo')).index);
  let now = Date.now();
  const p = new IPVSFamilyProxier(
    { family: 4, nodeName: 'bench', renderOptions: () => ({ family: 4, nodeName: 'bench', localDetector: detectLocalByCIDR(IPPrefix.mustParse('10.128.0.0/9')) }) },
    {
      ipvs,
      netlink,
      ipset: new RealIpset({ netns }),
      iptables: new RealIptables({ netns }),
      conntrack: new FakeConntrack(),
      log: silentLogger(),
      metrics: new ProxyMetrics(newRegistry()),
      health: new ProxyHealth([4], 60_000),
      requestSync: () => {},
      now: () => now,
    },
  );
  for (let i = 0; i < nServices; i++) {
    p.onServiceUpdate(undefined, service(i));
    p.onEndpointSliceUpdate(slice(i), false);
  }
  p.setInitialized();
  const timed = async (fn: () => Promise<IPVSSyncOutcome | undefined>): Promise<{ ms: number; o: IPVSSyncOutcome }> => {
    const t0 = performance.now();
    const o = (await fn())!;
    return { ms: performance.now() - t0, o };
  };
  process.stderr.write(`progress first sync of ${nServices} × ${nEndpoints}\n`);
  const first = await timed(() => p.sync('requested'));

  // One endpoint replaced in one service: the partial sync (ours).
  const partial: { ms: number; o: IPVSSyncOutcome }[] = [];
  for (let k = 1; k <= nChanges; k++) {
    const i = (k * 7919) % nServices;
    p.onEndpointSliceUpdate(slice(i, 1_000_000 + k), false);
    const t0 = performance.now();
    const r = await timed(() => p.sync('requested'));
    partial.push({ ms: performance.now() - t0, o: r.o });
  }
  // The same change under a full resync (upstream's every sync: all virtual servers listed and compared).
  const fullResync: { ms: number; o: IPVSSyncOutcome }[] = [];
  for (let k = 1; k <= nChanges; k++) {
    const i = (k * 104729) % nServices;
    p.onEndpointSliceUpdate(slice(i, 2_000_000 + k), false);
    p.forceFullSync();
    fullResync.push(await timed(() => p.sync('requested')));
  }
  now += 1;
  const kernelServices = (await ipvs.services()).length;
  const out = {
    services: nServices,
    endpoints: nEndpoints,
    firstSync: { ms: round(first.ms), ipvsMessages: first.o.ipvsMessages, addresses: first.o.addressesChanged, ipsetLines: first.o.ipsetLines },
    endpointChange: {
      partial: { medianMs: round(median(partial.map((x) => x.ms))), ipvsMessages: median(partial.map((x) => x.o.ipvsMessages)), virtualServersTouched: median(partial.map((x) => x.o.virtualServersTouched)), iptablesRestored: partial.some((x) => x.o.iptablesRestored) },
      fullResync: { medianMs: round(median(fullResync.map((x) => x.ms))), ipvsMessages: median(fullResync.map((x) => x.o.ipvsMessages)), virtualServersTouched: median(fullResync.map((x) => x.o.virtualServersTouched)) },
      runs: nChanges,
    },
    kernelServices,
    peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  ipvs.close();
  netlink.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
