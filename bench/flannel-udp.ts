// Throughput of our udp backend (TUN + worker-thread datapath) against the
// kernel vxlan backend, pod to pod across two "nodes" (namespaces on a
// shared underlay bridge), iperf3 TCP, in the same run. Bundled and run by
// bench/flannel-udp.sh (root). Prints a markdown table row per backend.
//   node flannel-udp.mjs <seconds> <repeats>
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { World } from '../test/harness/world.ts';
import { attachPod, underlayNodes } from '../test/harness/underlay.ts';
import { silentLogger } from '../lib/log.ts';
import { networkConfigFromObject } from '../flanneld/config.ts';
import type { Lease, LeaseWatchResult } from '../flanneld/subnet/types.ts';
import { backends, type Network } from '../flanneld/backend/index.ts';
import { udp, type UdpOptions } from '../flanneld/backend/udp.ts';
import { IPAddr, IPPrefix } from '../lib/ip/index.ts';

const run = promisify(execFile);
const [secondsArg = '10', repeatsArg = '3'] = process.argv.slice(2);
const seconds = Number(secondsArg);
const repeats = Number(repeatsArg);

interface Variant {
  name: string;
  type: 'vxlan' | 'udp';
  udp?: UdpOptions;
}
// udp datapath variants: every offload, each alone, none (one syscall per packet each way).
const VARIANTS: Variant[] = [
  { name: 'vxlan', type: 'vxlan' },
  { name: 'udp', type: 'udp' },
  { name: 'udp (UDP_GRO only)', type: 'udp', udp: { vnetHdr: false, gro: true } },
  { name: 'udp (vnet hdr only)', type: 'udp', udp: { vnetHdr: true, gro: false } },
  { name: 'udp (no offload)', type: 'udp', udp: { vnetHdr: false, gro: false } },
];
const only = process.env['BENCH_VARIANTS']?.split(',');

async function world(w: World, v: Variant) {
  const type = v.type;
  const nets: Network[] = [];
  const leases: Lease[] = [];
  const pods: string[] = [];
  for (const node of await underlayNodes(w, 2)) {
    const { i, h, eth } = node;
    const nw = await (type === 'udp' ? udp(v.udp) : backends[type]()).registerNetwork(
      networkConfigFromObject({ Network: '10.244.0.0/16', Backend: { Type: type } }),
      { index: eth.index, name: 'eth0', mtu: eth.mtu, ifaceAddr: IPAddr.mustParse(node.ip) },
      { handle: h, log: silentLogger() },
    );
    // Pod MTU as the CNI plugin would set it from subnet.env.
    await attachPod(w, node, { mtu: nw.mtu() });
    const l: Lease = { enableIPv4: true, enableIPv6: false, subnet: IPPrefix.mustParse(`10.244.${i}.0/24`), attrs: nw.leaseAttrs() };
    await nw.setLease(l);
    nets.push(nw);
    leases.push(l);
    pods.push(`${w.prefix}-p${i}`);
  }
  const ac = new AbortController();
  const done = nets.map((nw) => {
    async function* watch(): AsyncIterable<LeaseWatchResult> {
      yield { snapshot: leases };
      await new Promise((r) => ac.signal.addEventListener('abort', r));
    }
    return nw.run(watch(), ac.signal);
  });
  return {
    pods,
    mtu: nets[0]!.mtu(),
    stop: async () => {
      ac.abort();
      await Promise.all(done);
    },
  };
}

async function iperf(client: string, server: string, serverIP: string): Promise<number> {
  const srv = spawn('ip', ['netns', 'exec', server, 'iperf3', '-s', '-1', '-p', '5201'], { stdio: 'ignore' });
  try {
    for (let i = 0; ; i++) {
      try {
        const { stdout } = await run('ip', ['netns', 'exec', client, 'iperf3', '-c', serverIP, '-p', '5201', '-t', String(seconds), '-J', '--connect-timeout', '2000'], {
          maxBuffer: 1 << 24,
          timeout: (seconds + 30) * 1000,
        });
        const j = JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number } } };
        return j.end.sum_received.bits_per_second;
      } catch (err) {
        if (i > 20) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  } finally {
    srv.kill();
  }
}

const results: { v: Variant; mtu: number; gbps: number[] }[] = [];
for (const v of VARIANTS) {
  if (only && !only.includes(v.name)) continue;
  const w = new World(`b${v.type[0]}`);
  try {
    const wd = await world(w, v);
    try {
      for (let k = 0; k < 20; k++) {
        try {
          await run('ip', ['netns', 'exec', wd.pods[0]!, 'ping', '-c', '1', '-W', '1', '10.244.2.2']);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      const gbps: number[] = [];
      for (let r = 0; r < repeats; r++) gbps.push((await iperf(wd.pods[0]!, wd.pods[1]!, '10.244.2.2')) / 1e9);
      results.push({ v, mtu: wd.mtu, gbps });
    } finally {
      await wd.stop();
    }
  } finally {
    await w.cleanup();
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const vx = results.find((r) => r.v.type === 'vxlan');
console.log('| backend | pod MTU | runs (Gbit/s) | median (Gbit/s) | / vxlan |');
console.log('|---|---|---|---|---|');
for (const r of results) {
  const ratio = vx ? (median(r.gbps) / median(vx.gbps)).toFixed(3) : '-';
  console.log(`| ${r.v.name} | ${r.mtu} | ${r.gbps.map((g) => g.toFixed(2)).join(', ')} | ${median(r.gbps).toFixed(2)} | ${ratio} |`);
}
