// connect() latency through an isolated pod, 500 policies vs none (issue 10:
// "nftables within 10%"). One node namespace with two pods attached by our
// loopback + bridge + host-local plugins (as test/netns/netpolicy.test.ts
// attaches them): a client (namespace "client", role=client) and a server
// (app=app5 role=server, listening on 8080). dist/bin/netpolicy runs in the
// node namespace on a manifest directory that this script swaps between
// three worlds, alternating in the same run:
//   (a) "none": the server in namespace "server", only `zz-allow-client`
//       (isolates the server, admits the client on 8080);
//   (b) "500":  the same plus the 1,000-pod / 500-policy scale world (node
//       n0 is this node: its 100 other local pods and their policies are
//       planned and applied): the table is full, the server's path the same;
//   (c) "500, 3 select the server": as (b) with the server in ns0, where the
//       scale world's deny, in-5 and team-5 select it too: its group chain
//       passes their rules before the allow.
// Each round runs N sequential TCP connects from the client's namespace (a
// Node client timing net.connect → 'connect', the SYN/SYN-ACK round trip
// through both forward base chains), after a warm-up. Before measuring, the
// server is shown isolated: without the allow policy the connect fails.
// Prints markdown. Usage (root, after `node scripts/build.mjs netpolicy
// bridge host-local loopback`): via bench/netpolicy.sh.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { V1Namespace, V1NetworkPolicy, V1Node, V1Pod } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { run } from '../lib/exec.ts';
import { namespace, pod, policy } from '../netpolicy/testing/fixtures.ts';
import { scaleWorld } from '../netpolicy/testing/scale-world.ts';
import { cniEnv, cniOk } from '../test/harness/cni.ts';
import { spawnDaemon, type Daemon } from '../test/harness/cluster.ts';
import { World } from '../test/harness/world.ts';

const ROUNDS = Number(process.argv[2] ?? 5);
const CONNECTS = Number(process.argv[3] ?? 500);
const WARMUP = 50;
// Bundled into the repository root by bench/netpolicy.sh, which runs it from there.
const OUR_BIN = join(process.cwd(), 'dist/bin');
const NETPOLICY = join(OUR_BIN, 'netpolicy');
const SUBNET = '198.51.100.0/24';
const PORT = 8080;
const NODE = 'n0';

const SERVER_JS = `
import net from 'node:net';
net.createServer((s) => { s.on('error', () => {}); s.destroy(); }).listen(${PORT}, '0.0.0.0', () => process.stdout.write('ready\\n'));
`;
// Sequential connects; prints the microseconds of each (after the warm-up), or exits 2 on a failure.
const CLIENT_JS = `
import net from 'node:net';
const [ip, n, warm, timeout] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
const one = () => new Promise((res, rej) => {
  const t0 = process.hrtime.bigint();
  const s = net.connect({ host: ip, port: ${PORT} });
  const t = setTimeout(() => { s.destroy(); rej(new Error('timeout')); }, timeout);
  s.once('connect', () => { const us = Number(process.hrtime.bigint() - t0) / 1000; clearTimeout(t); s.destroy(); res(us); });
  s.once('error', (e) => { clearTimeout(t); rej(e); });
});
const out = [];
try {
  for (let i = 0; i < warm + n; i++) { const us = await one(); if (i >= warm) out.push(us); }
} catch (e) { process.stderr.write(String(e) + '\\n'); process.exit(2); }
process.stdout.write(JSON.stringify(out));
`;

interface Pod {
  readonly nsName: string;
  readonly ip: string;
}

const w = new World('npc');
const tmp = mkdtempSync(join(tmpdir(), 'netpolicy-connect-'));
const manifests = join(tmp, 'manifests');
let generation = 0;
const daemons: Daemon[] = [];

async function attach(node: string, name: string): Promise<Pod> {
  const path = w.netns(name);
  const conf = {
    cniVersion: '1.0.0',
    name: 'npc',
    type: 'bridge',
    bridge: 'cni0',
    isGateway: true,
    ipMasq: false,
    ipam: { type: 'host-local', ranges: [[{ subnet: SUBNET }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(tmp, 'ipam') },
  };
  await cniOk({ node, plugin: join(OUR_BIN, 'loopback'), env: cniEnv('ADD', `npc-${name}`, path, 'lo', OUR_BIN), stdin: { cniVersion: '1.0.0', name: 'lo', type: 'loopback' } });
  const out = await cniOk({ node, plugin: join(OUR_BIN, 'bridge'), env: cniEnv('ADD', `npc-${name}`, path, 'eth0', OUR_BIN), stdin: conf });
  return { nsName: `${w.prefix}-${name}`, ip: String(out.json.ips[0].address).split('/')[0]! };
}

const allow = (ns: string): V1NetworkPolicy => policy(ns, 'zz-allow-client', {
  podSelector: { matchLabels: { role: 'server' } },
  ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'client' } }, podSelector: { matchLabels: { role: 'client' } } }], ports: [{ port: PORT }] }],
});
const DENY = policy('server', 'zz-deny-server', { podSelector: { matchLabels: { role: 'server' } }, policyTypes: ['Ingress'] });

const MEASURED = ['none', '500', '500sel'] as const;
type WorldName = (typeof MEASURED)[number] | 'isolated';
const LABEL: Record<(typeof MEASURED)[number], string> = { none: '(a) none', '500': '(b) 500', '500sel': '(c) 500, 3 select the server' };

/** Writes one world into the manifest directory in one rename; returns its generation. */
function write(which: WorldName, client: Pod, server: Pod): string {
  generation += 1;
  const scale = which === '500' || which === '500sel' ? scaleWorld(1000) : { pods: [], namespaces: [], policies: [] };
  const serverNs = which === '500sel' ? 'ns0' : 'server';
  const namespaces: V1Namespace[] = [...scale.namespaces, namespace('client'), ...(serverNs === 'server' ? [namespace('server')] : [])];
  for (const n of namespaces) n.metadata!.annotations = { 'netpolicy-bench/generation': String(generation) };
  const pods: V1Pod[] = [
    ...scale.pods,
    pod('client', 'client', { labels: { role: 'client' }, ips: [client.ip], node: NODE }),
    pod(serverNs, 'server', { labels: { app: 'app5', role: 'server' }, ips: [server.ip], node: NODE, ports: [['http', 'TCP', PORT]] }),
  ];
  const node: V1Node = { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE }, spec: { podCIDR: SUBNET, podCIDRs: [SUBNET] } };
  const policies: V1NetworkPolicy[] = [...scale.policies, which === 'isolated' ? DENY : allow(serverNs)];
  const hidden = join(manifests, '.world.yaml.tmp');
  writeFileSync(hidden, [node, ...namespaces, ...pods, ...policies].map((x) => stringify(x)).join('---\n'));
  renameSync(hidden, join(manifests, 'world.yaml'));
  return String(generation);
}

/** Until the agent reports `gen` as applied (its /debug/state carries the namespaces' annotation). */
async function applied(nodeNs: string, gen: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      const { stdout } = await run('curl', ['-s', '--max-time', '2', 'http://127.0.0.1:9080/debug/state'], { netns: nodeNs });
      const s = JSON.parse(stdout) as { applied: boolean; namespaces?: V1Namespace[] };
      const gens = new Set((s.namespaces ?? []).map((x) => x.metadata?.annotations?.['netpolicy-bench/generation']));
      if (s.applied && gens.size === 1 && gens.has(gen)) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`generation ${gen} not applied within 30 s`);
}

/** Runs the client; resolves with the connect times (µs), or undefined when a connect failed. */
function connects(client: Pod, server: Pod, n: number, warm: number, timeoutMs: number): Promise<number[] | undefined> {
  return new Promise((resolve, reject) => {
    const c = spawn('ip', ['netns', 'exec', client.nsName, 'node', join(tmp, 'client.mjs'), server.ip, String(n), String(warm), String(timeoutMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.once('exit', (code) => {
      if (code === 0) resolve(JSON.parse(out) as number[]);
      else if (code === 2) resolve(undefined);
      else reject(new Error(`client exited ${code}: ${err}`));
    });
  });
}

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

async function main(): Promise<void> {
  const startLoad = loadavg().map((x) => x.toFixed(1)).join(' ');
  const nodeNs = w.netns('node');
  const h = w.handle(nodeNs);
  await h.linkSetUp((await h.linkByName('lo')).index);
  writeFileSync(join(tmp, 'server.mjs'), SERVER_JS);
  writeFileSync(join(tmp, 'client.mjs'), CLIENT_JS);
  await run('mkdir', ['-p', manifests]);
  const client = await attach(nodeNs, 'client');
  const server = await attach(nodeNs, 'server');
  const srv = spawn('ip', ['netns', 'exec', server.nsName, 'node', join(tmp, 'server.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
  w.onCleanup(() => void (srv.exitCode === null && srv.signalCode === null && srv.kill('SIGKILL')));
  await new Promise<void>((resolve) => createInterface({ input: srv.stdout! }).once('line', () => resolve()));

  const rows: string[] = [];
  for (const backend of ['nftables', 'iptables'] as const) {
    write('none', client, server);
    const agent = spawnDaemon('ip', ['netns', 'exec', `${w.prefix}-node`, NETPOLICY, '--manifests', manifests, '--hostname-override', NODE, '--backend', backend, '--healthz-bind-address', '127.0.0.1:10299', '--metrics-bind-address', '127.0.0.1:9080'], { env: process.env });
    daemons.push(agent);
    try {
      await applied(nodeNs, String(generation));
      // The server really is isolated: without the allow policy the client gets nowhere.
      await applied(nodeNs, write('isolated', client, server));
      if ((await connects(client, server, 1, 0, 1000)) !== undefined) throw new Error(`${backend}: the server is not isolated`);
      const times = { none: [] as number[], '500': [] as number[], '500sel': [] as number[] };
      const roundMedians = { none: [] as number[], '500': [] as number[], '500sel': [] as number[] };
      for (let r = 0; r < ROUNDS; r++) {
        for (const which of MEASURED) {
          await applied(nodeNs, write(which, client, server));
          // Let the agent finish what follows an apply (conntrack listing, metrics) off the measurement.
          await new Promise((res) => setTimeout(res, 500));
          const t = await connects(client, server, CONNECTS, WARMUP, 2000);
          if (!t) throw new Error(`${backend} (${which}): the allowed connect failed`);
          times[which].push(...t);
          roundMedians[which].push(quantile(t, 0.5));
        }
      }
      const pct = (a: number, b: number): string => `${b >= a ? '+' : ''}${(((b - a) / a) * 100).toFixed(1)} %`;
      const spread = (xs: number[]): string => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;
      const [m0, p0] = [quantile(times.none, 0.5), quantile(times.none, 0.99)];
      for (const which of MEASURED) {
        const [m, p] = [quantile(times[which], 0.5), quantile(times[which], 0.99)];
        const vs = which === 'none' ? '' : ` (${pct(m0, m)})`;
        // The goal is (b) against (a), for nftables: at most 10 % slower. (c) is reported beside it.
        const goal = which === '500' && backend === 'nftables' ? ((m - m0) / m0 <= 0.1 ? 'met (≤ +10 %)' : 'missed (> +10 %)') : which === 'none' ? '' : 'reported';
        rows.push(`| ${backend} | ${LABEL[which]} | ${m.toFixed(0)} µs${vs} | ${p.toFixed(0)} µs${which === 'none' ? '' : ` (${pct(p0, p)})`} | ${spread(roundMedians[which])} µs | ${goal} |`);
      }
    } finally {
      const code = await agent.stop();
      daemons.splice(daemons.indexOf(agent), 1);
      await run(NETPOLICY, ['--cleanup', '--backend', backend, '--healthz-bind-address', '', '--metrics-bind-address', ''], { netns: nodeNs });
      if (code !== 0) throw new Error(`${backend} agent exited ${code}: ${agent.log().slice(-2000)}`);
    }
  }

  console.log(`## connect() through an isolated pod: 500 policies vs none (goal: nftables within 10 %)\n`);
  console.log(
    `One node namespace, client and server pods on its bridge (our loopback + bridge + host-local), dist/bin/netpolicy enforcing. The server is isolated in every world (shown first: without the allow policy the connect fails). ` +
      `(a) none: only the policy admitting the client; (b) 500: plus the 1,000-pod / 500-policy scale world with this node as n0 (100 other local pods, their policies applied), the server's own path unchanged; (c) as (b) with the server in ns0, where the scale world's deny, in-5 and team-5 select it too (their rules are passed before the allow). ` +
      `${ROUNDS} rounds alternating (a), (b), (c), ${CONNECTS} sequential connects each (after ${WARMUP} warm-up), pooled; a Node client in the client's netns timing net.connect → 'connect'. Load average at the start: ${startLoad} (2 cores, shared).\n`,
  );
  console.log('| backend | world | median (Δ vs a) | p99 (Δ vs a) | round medians | goal |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

try {
  await main();
} finally {
  for (const d of daemons) await d.stop('SIGKILL');
  try {
    await w.cleanup();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
