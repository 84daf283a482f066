// connect() latency to a ClusterIP with 10 vs 10,000 services installed, for
// the iptables and nftables modes (issue 8: nftables flat within 10%;
// iptables reported, best and worst rule position). Per mode, three network
// namespaces made here (and deleted, also on failure): a client
// (192.0.2.2/24), a node that routes between its two veths and holds the
// proxy's rules (192.0.2.1, 198.51.100.1), and a server (198.51.100.2/24)
// listening on 8080. The rules are written by the mode's own proxier
// (iptablesBackend / nftablesBackend: the daemon's sync) in the node
// namespace; the ClusterIP under test has the server as its one endpoint,
// the other services 10 endpoints each on pod addresses nobody uses.
// Two such worlds per mode, side by side: one with 10 services, one with
// 10,000 where the two services under test are the first and the last in
// KUBE-SERVICES (nftables has no order: its map lookup is one hash, so
// there they are simply two samples). Each state gets N sequential TCP
// connects from its client (a Node client timing net.connect → 'connect':
// SYN, DNAT, SYN-ACK), after a warm-up, in --rounds alternating rounds, so
// that the machine's load drift hits every state alike; every connect is a
// new connection, so its SYN walks the NAT rules.
//   node <bundle> [--services 10000] [--connects 2000] [--rounds 5]
//        [--iptables-mode legacy|nft] [--modes iptables,nftables]
// Prints one JSON line on stdout; progress on stderr.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { IPAddr, IPPrefix, type Family } from '../lib/ip/index.ts';
import { silentLogger } from '../lib/log.ts';
import { newRegistry } from '../lib/metrics.ts';
import { RealConntrack } from '../lib/netfilter/conntrack.ts';
import { RealIptables } from '../lib/netfilter/iptables.ts';
import { RealNft } from '../lib/netfilter/nft.ts';
import { ProxyHealth } from '../kube-proxy/health/proxy.ts';
import { ProxyMetrics } from '../kube-proxy/metrics.ts';
import type { FamilyProxier } from '../kube-proxy/proxier/family.ts';
import { iptablesBackend } from '../kube-proxy/proxier/iptables.ts';
import { nftablesBackend } from '../kube-proxy/proxier/nftables.ts';
import { detectLocalByCIDR } from '../kube-proxy/render/options.ts';
import { LABEL_SERVICE_NAME } from '../kube-proxy/tracker/index.ts';
import { World } from '../test/harness/world.ts';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}
const nServices = Number(arg('services', '10000'));
const CONNECTS = Number(arg('connects', '2000'));
const WARMUP = 200;
const iptablesMode = arg('iptables-mode', 'legacy');
const modes = arg('modes', 'iptables,nftables').split(',');
const progress = (what: string, extra: Record<string, unknown> = {}): void => void process.stderr.write(`progress ${JSON.stringify({ what, ...extra })}\n`);

const v4 = (n: number): string => `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
const CLUSTER_BASE = Number(IPAddr.mustParse('10.96.0.0').value);
const POD_BASE = Number(IPAddr.mustParse('10.128.0.0').value);
const SERVER_IP = '198.51.100.2';
const PORT = 8080;
/** The services under test: the first and the last in KUBE-SERVICES. */
const TARGET_FIRST = 'target-first';
const TARGET_FIRST_IP = '10.95.0.10';
const TARGET_LAST = 'target-last';
const TARGET_LAST_IP = '10.95.0.11';

const service = (name: string, ip: string): V1Service => ({
  kind: 'Service',
  metadata: { namespace: 'bench', name },
  spec: { type: 'ClusterIP', clusterIP: ip, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
});
const slice = (name: string, ips: readonly string[]): V1EndpointSlice => ({
  kind: 'EndpointSlice',
  addressType: 'IPv4',
  metadata: { namespace: 'bench', name: `${name}-abc`, labels: { [LABEL_SERVICE_NAME]: name } },
  ports: [{ name: 'http', port: PORT, protocol: 'TCP' }],
  endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'other' })),
});
const filler = (i: number): [V1Service, V1EndpointSlice] => [
  service(`svc${i}`, v4(CLUSTER_BASE + i + 1)),
  slice(`svc${i}`, Array.from({ length: 10 }, (_, j) => v4(POD_BASE + i * 10 + j))),
];

const SERVER_JS = `
import net from 'node:net';
net.createServer((s) => { s.on('error', () => {}); s.destroy(); }).listen(${PORT}, '0.0.0.0', () => process.stdout.write('ready\\n'));
`;
// Sequential connects; prints the microseconds of each (after the warm-up), or exits 2 on a failure.
const CLIENT_JS = `
import net from 'node:net';
const [ip, n, warm] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const one = () => new Promise((res, rej) => {
  const t0 = process.hrtime.bigint();
  const s = net.connect({ host: ip, port: 80 });
  const t = setTimeout(() => { s.destroy(); rej(new Error('timeout connecting to ' + ip)); }, 3000);
  s.once('connect', () => { const us = Number(process.hrtime.bigint() - t0) / 1000; clearTimeout(t); s.destroy(); res(us); });
  s.once('error', (e) => { clearTimeout(t); rej(e); });
});
const out = [];
try {
  for (let i = 0; i < warm + n; i++) { const us = await one(); if (i >= warm) out.push(us); }
} catch (e) { process.stderr.write(String(e) + '\\n'); process.exit(2); }
process.stdout.write(JSON.stringify(out));
`;

const tmp = mkdtempSync(join(tmpdir(), 'kp-connect-'));
writeFileSync(join(tmp, 'server.mjs'), SERVER_JS);
writeFileSync(join(tmp, 'client.mjs'), CLIENT_JS);
const children: ReturnType<typeof spawn>[] = [];

function inNs(nsPath: string, args: readonly string[]): ReturnType<typeof spawn> {
  const c = spawn('nsenter', [`--net=${nsPath}`, '--', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(c);
  return c;
}

function connects(clientNs: string, ip: string, n: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const c = inNs(clientNs, [join(tmp, 'client.mjs'), ip, String(n), String(WARMUP)]);
    let out = '';
    let err = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    c.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as number[]) : reject(new Error(`client failed (${code}): ${err.trim()}`))));
  });
}

interface Stats {
  readonly n: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly mean: number;
}
function stats(us: readonly number[]): Stats {
  const s = [...us].sort((a, b) => a - b);
  const q = (p: number): number => Math.round(s[Math.min(s.length - 1, Math.floor(p * s.length))]!);
  return { n: s.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), mean: Math.round(s.reduce((a, b) => a + b, 0) / s.length) };
}

/** client — node — server, each its own netns; returns the paths. */
async function topology(w: World, tag: string): Promise<{ client: string; node: string; server: string }> {
  const client = w.netns(`${tag}-client`);
  const node = w.netns(`${tag}-node`);
  const server = w.netns(`${tag}-server`);
  const hn = w.handle(node);
  const link = async (peerNs: string, nodeIf: string, nodeIP: string, peerIP: string): Promise<void> => {
    const hp = w.handle(peerNs);
    await hn.linkAdd({ name: nodeIf, kind: 'veth', up: true, veth: { peerName: 'eth0', peerNetnsFd: hp.nsFd! } });
    await hn.addrAdd((await hn.linkByName(nodeIf)).index, { address: IPPrefix.mustParse(`${nodeIP}/24`) });
    const eth0 = await hp.linkByName('eth0');
    await hp.addrAdd(eth0.index, { address: IPPrefix.mustParse(`${peerIP}/24`) });
    await hp.linkSetUp(eth0.index);
    await hp.linkSetUp((await hp.linkByName('lo')).index);
    await hp.routeAdd({ family: 4, dst: IPPrefix.any(4), gw: IPAddr.mustParse(nodeIP), oif: eth0.index });
  };
  await link(client, 'vc', '192.0.2.1', '192.0.2.2');
  await link(server, 'vs', '198.51.100.1', SERVER_IP);
  await hn.linkSetUp((await hn.linkByName('lo')).index);
  hn.writeSysctl('net/ipv4/ip_forward', '1');
  return { client, node, server };
}

async function startServer(serverNs: string): Promise<void> {
  const s = inNs(serverNs, [join(tmp, 'server.mjs')]);
  await new Promise<void>((resolve, reject) => {
    s.stdout!.once('data', () => resolve());
    s.once('exit', (code) => reject(new Error(`server exited (${code})`)));
  });
}

function proxierFor(mode: string, nodeNs: string): FamilyProxier {
  const family: Family = 4;
  const deps = {
    conntrack: new RealConntrack({ netns: nodeNs }),
    log: silentLogger(),
    metrics: new ProxyMetrics(newRegistry()),
    health: new ProxyHealth([family], 3_600_000),
    requestSync: () => {},
  };
  const localDetector = detectLocalByCIDR(IPPrefix.mustParse('10.128.0.0/9'));
  if (mode === 'iptables') {
    return iptablesBackend(new RealIptables({ netns: nodeNs, mode: iptablesMode as 'legacy' | 'nft' }), {
      nodeName: 'node0',
      renderOptions: () => ({ family, nodeName: 'node0', localDetector }),
    })(family, deps, () => undefined);
  }
  return nftablesBackend(new RealNft({ netns: nodeNs }), {
    nodeName: 'node0',
    renderOptions: () => ({ family, nodeName: 'node0', localDetector, serviceCIDRs: ['10.95.0.0/16', '10.96.0.0/12'] }),
  })(family, deps, () => undefined);
}

async function timedSync(p: FamilyProxier, what: string): Promise<number> {
  const t = performance.now();
  await p.sync('requested');
  const s = (performance.now() - t) / 1000;
  progress(what, { syncS: Math.round(s * 10) / 10 });
  return s;
}

const ROUNDS = Number(arg('rounds', '5'));
const results: Record<string, unknown> = {};
try {
  for (const mode of modes) {
    const w = new World(`kc${mode[0]}`);
    try {
      // Two worlds side by side, measured in alternating rounds (the machine's load drifts):
      // "small" with 10 services, "big" with the whole scale; the targets' one endpoint is each world's server.
      const small = await topology(w, 's');
      const big = await topology(w, 'b');
      await startServer(small.server);
      await startServer(big.server);
      const add = (p: FamilyProxier, name: string, ip: string): void => {
        p.onServiceUpdate(undefined, service(name, ip));
        p.onEndpointSliceUpdate(slice(name, [SERVER_IP]), false);
      };
      const fill = (p: FamilyProxier, from: number, to: number): void => {
        for (let i = from; i < to; i++) {
          const [s, e] = filler(i);
          p.onServiceUpdate(undefined, s);
          p.onEndpointSliceUpdate(e, false);
        }
      };
      const pSmall = proxierFor(mode, small.node);
      add(pSmall, TARGET_FIRST, TARGET_FIRST_IP);
      fill(pSmall, 0, 9);
      pSmall.setInitialized();
      await timedSync(pSmall, `${mode}: 10 services synced`);
      // The first and the last service in KUBE-SERVICES (the trackers keep insertion order).
      const pBig = proxierFor(mode, big.node);
      add(pBig, TARGET_FIRST, TARGET_FIRST_IP);
      fill(pBig, 0, nServices - 2);
      add(pBig, TARGET_LAST, TARGET_LAST_IP);
      pBig.setInitialized();
      const loadS = await timedSync(pBig, `${mode}: ${nServices} services synced`);
      const samples = { small: [] as number[], bigFirst: [] as number[], bigLast: [] as number[] };
      const per = Math.ceil(CONNECTS / ROUNDS);
      for (let r = 0; r < ROUNDS; r++) {
        samples.small.push(...(await connects(small.client, TARGET_FIRST_IP, per)));
        samples.bigFirst.push(...(await connects(big.client, TARGET_FIRST_IP, per)));
        samples.bigLast.push(...(await connects(big.client, TARGET_LAST_IP, per)));
        progress(`${mode}: round ${r + 1} of ${ROUNDS}`, { small: stats(samples.small).p50, bigFirst: stats(samples.bigFirst).p50, bigLast: stats(samples.bigLast).p50 });
      }
      results[mode] = {
        ...(mode === 'iptables' ? { iptablesMode } : {}),
        services10: stats(samples.small),
        [`services${nServices}`]: { targetFirst: stats(samples.bigFirst), targetLast: stats(samples.bigLast) },
        syncAtScaleS: Math.round(loadS * 10) / 10,
      };
    } finally {
      for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
      await w.cleanup();
    }
  }
  console.log(JSON.stringify({ services: nServices, connects: CONNECTS, rounds: ROUNDS, warmup: WARMUP, ...results }));
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
}
