// Pod-to-pod TCP throughput across two "nodes" (namespaces on one veth/bridge
// underlay, MTU 1500): our flanneld (vxlan, host-gw, udp) side by side with
// the same datapath built by hand with `ip`/`bridge` (the kernel's best), in
// the same run. Bundled and run by bench/flannel-throughput.sh (root).
//   node flannel-throughput.mjs <seconds> <repeats> <out.json>
//
// World (everything inside namespaces made here, per-run prefix, all removed
// at the end, also on failure):
//   <p>-u            underlay: bridge br0 192.0.2.1/24, etcd on 192.0.2.1:2379
//   <p>-<case>-n1/2  nodes: eth0 = 192.0.2.(10+10k+i)/24 (veth into br0)
//   <p>-<case>-p1/2  one pod per node: eth0 10.244.x.2 behind cni0 (bridge + veth,
//                    attached identically in every case; pod MTU from subnet.env
//                    for flanneld cases and the same value for hand-built ones)
// Cases stay up side by side; iperf3 runs round-robin over them, the order
// reversed every round, so drift (other load on the machine) spreads evenly.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { World } from '../test/harness/world.ts';
import { enterNetns, startEtcd } from '../test/harness/etcd.ts';
import type { EtcdServer } from '../test/harness/etcd.ts';
import type { Handle } from '../lib/netlink/index.ts';
import { IPAddr, IPPrefix } from '../lib/ip/index.ts';

const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const [secondsArg = '10', repeatsArg = '3', outArg = ''] = process.argv.slice(2);
const seconds = Number(secondsArg);
const repeats = Number(repeatsArg);
const ROOT = process.cwd();
// The shell wrapper passes a private copy of dist/bin/flanneld (others may rebuild dist/ meanwhile).
const FLANNELD = process.env['FLANNELD'] ?? join(ROOT, 'dist/bin/flanneld');
const UL_IP = '192.0.2.1';

type Backend = 'vxlan' | 'host-gw' | 'udp';
interface CaseDef {
  id: string;
  label: string;
  backend: Backend;
  ours: boolean;
  /** Hand-built plus the FORWARD rules flanneld installs by default (isolates their cost). */
  rules?: boolean;
}
const CASES: CaseDef[] = [
  { id: 'hv', label: 'vxlan, hand-built', backend: 'vxlan', ours: false },
  { id: 'hr', label: 'vxlan, hand-built + flanneld\'s FORWARD rules', backend: 'vxlan', ours: false, rules: true },
  { id: 'fv', label: 'vxlan, our flanneld', backend: 'vxlan', ours: true },
  { id: 'hh', label: 'host-gw, hand-built', backend: 'host-gw', ours: false },
  { id: 'fh', label: 'host-gw, our flanneld', backend: 'host-gw', ours: true },
  { id: 'fu', label: 'udp, our flanneld', backend: 'udp', ours: true },
];

interface Live {
  def: CaseDef;
  nodes: string[]; // netns names
  pods: string[];
  podIPs: string[];
  mtu: number;
  daemons: ChildProcess[];
  deviceDump: string;
  gbps: number[];
  retrans: number[];
  load: number[];
  /** CPU seconds used by this case's flanneld processes, and by all flanneld processes, during each run. */
  cpuOwn: number[];
  cpuAll: number[];
  /** Runs after which pod-to-pod ping failed (the case is not measured again). */
  broken: string | undefined;
  truncated: string;
}

/** utime+stime of a process and its waited-for children (iptables-restore etc.) in seconds (0 once it is gone). */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100; // USER_HZ
  } catch {
    return 0;
  }
}
const cpuOf = (ls: readonly Live[]): number => ls.reduce((a, l) => a + l.daemons.reduce((b, d) => b + cpuSeconds(d.pid), 0), 0);

const w = new World('tp');
const tmp = mkdtempSync(join(tmpdir(), 'kn-bench-tp-'));
const children: ChildProcess[] = [];
let etcd: EtcdServer | undefined;
let client: Etcd3 | undefined;
let leave: (() => void) | undefined;

const nsName = (n: string): string => `${w.prefix}-${n}`;
async function ip(ns: string, args: string[]): Promise<string> {
  const { stdout } = await run('ip', ['-n', ns, ...args]);
  return stdout;
}

async function main(): Promise<void> {
  const ul = w.netns('u');
  const hu = w.handle(ul);
  await hu.linkAdd({ name: 'br0', kind: 'bridge', up: true });
  const br = await hu.linkByName('br0');
  await hu.addrAdd(br.index, { address: IPPrefix.mustParse(`${UL_IP}/24`) });
  await hu.linkSetUp((await hu.linkByName('lo')).index);
  leave = enterNetns(ul);
  etcd = await startEtcd({ nsPath: ul, host: UL_IP });
  client = new Etcd3({ hosts: etcd.endpoint });

  const lives: Live[] = [];
  for (const [k, def] of CASES.entries()) lives.push(await build(k, def, hu, br.index));

  // Every case must pass traffic before measuring.
  for (const l of lives) await waitPing(l);
  for (const l of lives) l.deviceDump = await deviceDump(l);

  const order = [...lives];
  for (let r = 0; r < repeats; r++) {
    const seq = r % 2 === 0 ? order : [...order].reverse();
    for (const l of seq) {
      if (l.broken) continue;
      const before = loadavg()[0]!;
      const own0 = cpuOf([l]);
      const all0 = cpuOf(lives);
      const res = await iperf(l);
      if (!(await pingOnce(l))) l.broken = `pods no longer reach each other after round ${r + 1}`;
      l.cpuOwn.push(cpuOf([l]) - own0);
      l.cpuAll.push(cpuOf(lives) - all0);
      l.gbps.push(res.bps / 1e9);
      l.retrans.push(res.retrans);
      l.load.push(before);
      process.stderr.write(`round ${r + 1} ${l.def.id}: ${(res.bps / 1e9).toFixed(2)} Gbit/s (retrans ${res.retrans}, load1 ${before.toFixed(2)})${l.broken ? ` BROKEN: ${l.broken}` : ''}\n`);
    }
  }
  for (const l of lives) l.truncated = (await Promise.all(l.nodes.map(truncatedPkts))).join(' / ');

  const out = lives.map((l) => ({ id: l.def.id, label: l.def.label, backend: l.def.backend, ours: l.def.ours, mtu: l.mtu, gbps: l.gbps, retrans: l.retrans, load1: l.load, cpuOwn: l.cpuOwn, cpuAll: l.cpuAll, broken: l.broken, truncated: l.truncated, device: l.deviceDump }));
  if (outArg) writeFileSync(outArg, JSON.stringify(out, null, 1));
  console.log(table(lives));
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]): number => Math.sqrt(xs.reduce((a, b) => a + (b - mean(xs)) ** 2, 0) / Math.max(1, xs.length - 1));

function table(lives: Live[]): string {
  const by = (id: string): Live => lives.find((l) => l.def.id === id)!;
  const lines = [
    '| case | pod MTU | runs (Gbit/s, in run order) | mean ± sd (Gbit/s) | TCP retransmits per run | load1 at start of each run | flanneld CPU s (with its child processes) per run: this case / all cases | IpExtInTruncatedPkts node1 / node2 at the end |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const l of lives) {
    lines.push(`| ${l.def.label} | ${l.mtu} | ${l.gbps.map((g) => g.toFixed(2)).join(', ')} | ${mean(l.gbps).toFixed(2)} ± ${sd(l.gbps).toFixed(2)} | ${l.retrans.join(', ')} | ${l.load.map((x) => x.toFixed(2)).join(', ')} | ${l.cpuOwn.map((x, i) => `${x.toFixed(2)} / ${l.cpuAll[i]!.toFixed(2)}`).join(', ')} | ${l.truncated} |`);
    if (l.broken) lines.push(`| ↳ ${l.def.label}: **${l.broken}** | | | | | | | |`);
  }
  const ratio = (a: string, b: string): string => (mean(by(a).gbps) / mean(by(b).gbps)).toFixed(3);
  lines.push('');
  lines.push('| ratio (of means) | value | goal |');
  lines.push('|---|---|---|');
  lines.push(`| vxlan: ours / hand-built | ${ratio('fv', 'hv')} | ≥ 0.95 |`);
  lines.push(`| host-gw: ours / hand-built | ${ratio('fh', 'hh')} | ≥ 0.95 |`);
  lines.push(`| vxlan: hand-built + FORWARD rules / hand-built (cost of the rules alone) | ${ratio('hr', 'hv')} | |`);
  lines.push(`| vxlan: ours / hand-built + FORWARD rules | ${ratio('fv', 'hr')} | |`);
  lines.push(`| udp (ours) / vxlan (ours) | ${ratio('fu', 'fv')} | ≥ 0.25 |`);
  lines.push(`| udp (ours) / vxlan (hand-built) | ${ratio('fu', 'hv')} | |`);
  lines.push('');
  lines.push('Kernel objects on node 1 of each case (`ip -d link show type vxlan`, `ip route`, permanent neighbours, `bridge fdb show dev flannel.1`):');
  for (const l of lives) {
    lines.push('', `<details><summary>${l.def.label}</summary>`, '', '```', l.deviceDump, '```', '', '</details>');
  }
  return lines.join('\n');
}

/** Builds one case: two nodes, datapath (hand or flanneld), one pod per node. */
async function build(k: number, def: CaseDef, hu: Handle, brIndex: number): Promise<Live> {
  const nodes: string[] = [];
  const hs: Handle[] = [];
  const nodeIPs: string[] = [];
  for (const i of [1, 2]) {
    const ns = w.netns(`${def.id}-n${i}`);
    const h = w.handle(ns);
    const addr = `192.0.2.${10 + 10 * k + i}`;
    await hu.linkAdd({ name: `${def.id}${i}`, kind: 'veth', master: brIndex, up: true, veth: { peerName: 'eth0', peerNetnsFd: h.nsFd! } });
    const eth = await h.linkByName('eth0');
    await h.addrAdd(eth.index, { address: IPPrefix.mustParse(`${addr}/24`) });
    await h.linkSetUp(eth.index);
    await h.linkSetUp((await h.linkByName('lo')).index);
    h.writeSysctl('net/ipv4/ip_forward', '1');
    nodes.push(nsName(`${def.id}-n${i}`));
    hs.push(h);
    nodeIPs.push(addr);
  }

  // Pod subnets and MTU: from flanneld's subnet.env, or fixed for hand-built.
  let subnets = ['10.244.1.0/24', '10.244.2.0/24'];
  let mtu = def.backend === 'vxlan' ? 1450 : def.backend === 'udp' ? 1472 : 1500;
  const daemons: ChildProcess[] = [];
  if (def.ours) {
    const prefix = `/bench/${def.id}`;
    await client!.put(`${prefix}/config`).value(JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: def.backend } }));
    const envs: string[] = [];
    for (const [i, ns] of nodes.entries()) {
      const subnetFile = join(tmp, `${def.id}-n${i + 1}.env`);
      envs.push(subnetFile);
      const child = spawn('ip', ['netns', 'exec', ns, 'node', FLANNELD, `--etcd-endpoints=http://${UL_IP}:2379`, `--etcd-prefix=${prefix}`, '--iface=eth0', `--subnet-file=${subnetFile}`], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let log = '';
      child.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
      child.once('exit', (code) => {
        if (!stopping) process.stderr.write(`flanneld ${ns} exited ${code}\n${log}\n`);
      });
      children.push(child);
      daemons.push(child);
    }
    subnets = [];
    for (const f of envs) {
      for (let t = 0; !existsSync(f); t++) {
        if (t > 300 || daemons.some((d) => d.exitCode !== null)) throw new Error(`${f} not written (flanneld exited?)`);
        await sleep(100);
      }
      const env = readFileSync(f, 'utf8');
      const sn = /^FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1\/24$/m.exec(env);
      const m = /^FLANNEL_MTU=(\d+)$/m.exec(env);
      if (!sn || !m) throw new Error(`bad subnet.env ${env}`);
      subnets.push(`${sn[1]}.0/24`);
      mtu = Number(m[1]);
    }
  } else if (def.backend === 'vxlan') {
    const macs = ['02:00:00:00:0a:01', '02:00:00:00:0a:02'];
    for (const [i, ns] of nodes.entries()) {
      const j = 1 - i;
      const peerNet = subnets[j]!.split('/')[0]!;
      // flannel.1 as flanneld makes it: VNI 1, local = eth0 address, dev eth0, port 8472, no learning, MTU 1450, address <subnet>.0/32.
      await ip(ns, ['link', 'add', 'flannel.1', 'address', macs[i]!, 'mtu', '1450', 'type', 'vxlan', 'id', '1', 'local', nodeIPs[i]!, 'dev', 'eth0', 'dstport', '8472', 'nolearning']);
      await ip(ns, ['addr', 'add', `${subnets[i]!.split('/')[0]}/32`, 'dev', 'flannel.1']);
      await ip(ns, ['link', 'set', 'flannel.1', 'up']);
      await ip(ns, ['neigh', 'replace', peerNet, 'dev', 'flannel.1', 'lladdr', macs[j]!, 'nud', 'permanent']);
      await run('bridge', ['-n', ns, 'fdb', 'replace', macs[j]!, 'dev', 'flannel.1', 'self', 'dst', nodeIPs[j]!]);
      await ip(ns, ['route', 'replace', subnets[j]!, 'via', peerNet, 'dev', 'flannel.1', 'onlink']);
    }
  } else {
    for (const [i, ns] of nodes.entries()) await ip(ns, ['route', 'replace', subnets[1 - i]!, 'via', nodeIPs[1 - i]!, 'dev', 'eth0']);
  }

  if (def.rules) {
    // What flanneld's default --iptables-forward-rules writes (see its iptables-save in the dump).
    const text = [
      '*filter',
      ':FLANNEL-FWD - [0:0]',
      '-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD',
      '-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
      '-A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
      'COMMIT',
      '',
    ].join('\n');
    for (const ns of nodes) {
      await new Promise<void>((resolve, reject) => {
        const c = spawn('ip', ['netns', 'exec', ns, 'iptables-restore', '--noflush'], { stdio: ['pipe', 'ignore', 'inherit'] });
        c.once('error', reject);
        c.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`iptables-restore exited ${code}`))));
        c.stdin!.end(text);
      });
    }
  }

  // Pods: cni0 (gateway .1) + veth, MTU = pod MTU, default route via cni0 — same in every case.
  const pods: string[] = [];
  const podIPs: string[] = [];
  for (const [i, h] of hs.entries()) {
    const base = subnets[i]!.split('.').slice(0, 3).join('.');
    const pod = w.netns(`${def.id}-p${i + 1}`);
    const hp = w.handle(pod);
    await h.linkAdd({ name: 'cni0', kind: 'bridge', mtu, up: true });
    const cni = await h.linkByName('cni0');
    await h.addrAdd(cni.index, { address: IPPrefix.mustParse(`${base}.1/24`) });
    await h.linkAdd({ name: 'veth0', kind: 'veth', mtu, master: cni.index, veth: { peerName: 'eth0', peerNetnsFd: hp.nsFd!, peerMtu: mtu } });
    await h.linkSetUp((await h.linkByName('veth0')).index);
    const pe = await hp.linkByName('eth0');
    await hp.addrAdd(pe.index, { address: IPPrefix.mustParse(`${base}.2/24`) });
    await hp.linkSetUp(pe.index);
    await hp.linkSetUp((await hp.linkByName('lo')).index);
    await hp.routeAdd({ family: 4, dst: IPPrefix.any(4), gw: IPAddr.mustParse(`${base}.1`) });
    pods.push(nsName(`${def.id}-p${i + 1}`));
    podIPs.push(`${base}.2`);
  }
  return { def, nodes, pods, podIPs, mtu, daemons, deviceDump: '', gbps: [], retrans: [], load: [], cpuOwn: [], cpuAll: [], broken: undefined, truncated: '' };
}

async function pingOnce(l: Live): Promise<boolean> {
  for (let t = 0; t < 3; t++) {
    try {
      await run('ip', ['netns', 'exec', l.pods[0]!, 'ping', '-n', '-c', '1', '-W', '1', l.podIPs[1]!]);
      return true;
    } catch {
      // retry
    }
  }
  return false;
}

/** IpExtInTruncatedPkts of a node: packets that arrived shorter than their IP header says. */
async function truncatedPkts(ns: string): Promise<string> {
  const { stdout } = await run('ip', ['netns', 'exec', ns, 'cat', '/proc/net/netstat']);
  const lines = stdout.split('\n').filter((x) => x.startsWith('IpExt:'));
  const names = lines[0]?.split(' ') ?? [];
  const vals = lines[1]?.split(' ') ?? [];
  return vals[names.indexOf('InTruncatedPkts')] ?? '?';
}

async function waitPing(l: Live): Promise<void> {
  for (let t = 0; ; t++) {
    try {
      await run('ip', ['netns', 'exec', l.pods[0]!, 'ping', '-n', '-c', '1', '-W', '1', l.podIPs[1]!]);
      return;
    } catch (err) {
      if (t > 120) throw new Error(`${l.def.id}: pods cannot reach each other: ${(err as Error).message}`);
      await sleep(250);
    }
  }
}

async function deviceDump(l: Live): Promise<string> {
  const n = l.nodes[0]!;
  const parts = [await ip(n, ['-d', 'link', 'show', 'type', 'vxlan']).catch(() => ''), await ip(n, ['route', 'show']), await ip(n, ['neigh', 'show', 'nud', 'permanent'])];
  const fdb = await run('bridge', ['-n', n, 'fdb', 'show', 'dev', 'flannel.1']).then((r) => r.stdout, () => '');
  const rules = await run('ip', ['netns', 'exec', n, 'iptables-save']).then((r) => r.stdout.split('\n').filter((x) => x.startsWith('-A')), () => []);
  return [...parts, fdb, `iptables rules: ${rules.length ? rules.join(' ; ') : 'none'}`].join('').trim();
}

async function iperf(l: Live): Promise<{ bps: number; retrans: number }> {
  // A run that stalls (datapath stopped forwarding) is killed and counted as 0.
  const limit = (seconds + 30) * 1000;
  const srv = spawn('ip', ['netns', 'exec', l.pods[1]!, 'iperf3', '-s', '-1', '-B', l.podIPs[1]!, '-p', '5201'], { stdio: 'ignore' });
  children.push(srv);
  try {
    for (let i = 0; ; i++) {
      try {
        const { stdout } = await run('ip', ['netns', 'exec', l.pods[0]!, 'iperf3', '-c', l.podIPs[1]!, '-p', '5201', '-t', String(seconds), '-J', '--connect-timeout', '3000'], { maxBuffer: 1 << 24, timeout: limit, killSignal: 'SIGKILL' });
        const j = JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number }; sum_sent: { retransmits?: number } } };
        return { bps: j.end.sum_received.bits_per_second, retrans: j.end.sum_sent.retransmits ?? 0 };
      } catch (err) {
        if ((err as { killed?: boolean }).killed) {
          process.stderr.write(`${l.def.id}: iperf3 did not finish within ${limit} ms, counted as 0\n`);
          return { bps: 0, retrans: -1 };
        }
        if (i > 20) throw err;
        await sleep(250);
      }
    }
  } finally {
    if (srv.exitCode === null && srv.signalCode === null) srv.kill('SIGKILL');
  }
}

let stopping = false;
async function cleanup(): Promise<void> {
  stopping = true;
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
  try {
    client?.close();
  } catch {
    // closing
  }
  await etcd?.stop().catch(() => undefined);
  leave?.();
  await w.cleanup().catch((e: unknown) => process.stderr.write(`cleanup: ${String(e)}\n`));
  rmSync(tmp, { recursive: true, force: true });
}

let failed = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    process.stderr.write(`${sig}: cleaning up\n`);
    void cleanup().finally(() => process.exit(130));
  });
}
try {
  await main();
} catch (err) {
  failed = true;
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
} finally {
  await cleanup();
}
if (failed) process.exitCode = 1;
