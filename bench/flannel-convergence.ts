// Control-plane convergence of our flanneld (vxlan): time from a new lease in
// etcd to its route on the node, with simulated peers written straight into
// etcd (upstream's key layout and value JSON, each key on its own etcd lease,
// as flanneld writes them). Plus the floor: the same kernel objects
// programmed by hand with `ip -batch` / `bridge -batch`. Bundled and run by
// bench/flannel-convergence.sh (root).
//   node flannel-convergence.mjs <out.json>
//
// World (per-run prefix, all removed at the end, also on failure):
//   <p>-u   underlay bridge br0 192.0.2.1/24; etcd on 192.0.2.1:2379 (this
//           process's main thread sits here, so its etcd client does too)
//   <p>-n1  the node: eth0 192.0.2.11, ONE dist/bin/flanneld (vxlan)
//   <p>-f   floor node: eth0 192.0.2.12, flannel.1 made by hand
// Timing: t0 = performance.now() right before the etcd put/txn is sent;
// t1 = when this process reads the RTM_NEWROUTE for the lease's subnet from a
// route-event socket opened inside <p>-n1 (Handle.subscribe). The same
// process also watches the etcd prefix, so "etcd watch" shows what part of
// the latency is etcd + gRPC before flanneld sees the event.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { World } from '../test/harness/world.ts';
import { enterNetns } from '../test/harness/etcd.ts';
import { rt } from '../lib/netlink/index.ts';
import type { Neigh, Route } from '../lib/netlink/index.ts';
import { IPPrefix } from '../lib/ip/index.ts';

const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const [outArg = '', seriesArg = '100', gapArg = '20', slowArg = '100', batchArg = '1000'] = process.argv.slice(2);
const SERIES = Number(seriesArg);
const GAP = Number(gapArg);
const SLOW = Number(slowArg);
const BATCH = Number(batchArg);
const ROOT = process.cwd();
// The shell wrapper passes a private copy of dist/bin/flanneld (others may rebuild dist/ meanwhile).
const FLANNELD = process.env['FLANNELD'] ?? join(ROOT, 'dist/bin/flanneld');
const UL_IP = '192.0.2.1';
const PREFIX = '/bench/cv';
const LEASE_TTL = 3600;

const w = new World('cv');
const tmp = mkdtempSync(join(tmpdir(), 'kn-bench-cv-'));
const children: ChildProcess[] = [];
const closers: (() => void)[] = [];
let client: Etcd3 | undefined;
let leave: (() => void) | undefined;
let stopping = false;

/** Peer k: subnet 10.(100 + k/256).(k%256).0/24, a distinct MAC, a documentation-range public IP (reused cyclically; FDB entries are per MAC). */
function peer(k: number): { subnet: string; key: string; value: string; mac: string; pub: string } {
  const a = 100 + Math.floor(k / 256);
  const b = k % 256;
  const subnet = `10.${a}.${b}.0/24`;
  const ranges = ['198.51.100', '203.0.113'];
  const pub = `${ranges[k % 2]}.${1 + (Math.floor(k / 2) % 254)}`;
  const mac = `0a:58:00:00:${(k >> 8).toString(16).padStart(2, '0')}:${(k & 255).toString(16).padStart(2, '0')}`;
  const value = JSON.stringify({ PublicIP: pub, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: mac } });
  return { subnet, key: `${PREFIX}/subnets/10.${a}.${b}.0-24`, value, mac, pub };
}

/** etcd in the underlay namespace, with room for a 1,000-put transaction (default --max-txn-ops is 128). */
async function startEtcd(ns: string): Promise<void> {
  const dataDir = join(tmp, 'etcd');
  const c = `http://${UL_IP}:2379`;
  const p = `http://${UL_IP}:2380`;
  const child = spawn(
    'ip',
    ['netns', 'exec', ns, '/usr/bin/etcd', '--name', 'bench', '--data-dir', dataDir, '--listen-client-urls', c, '--advertise-client-urls', c, '--listen-peer-urls', p, '--initial-advertise-peer-urls', p, '--initial-cluster', `bench=${p}`, '--initial-cluster-state', 'new', '--log-level', 'warn', '--max-txn-ops', '5000'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr!.resume();
  children.push(child);
  client = new Etcd3({ hosts: c, dialTimeout: 1000 });
  for (let t = 0; ; t++) {
    try {
      await client.maintenance.status();
      return;
    } catch (err) {
      if (t > 100 || child.exitCode !== null) throw new Error(`etcd did not start: ${(err as Error).message}`);
      await sleep(100);
    }
  }
}

async function grant(n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 100) {
    const chunk = await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => client!.leaseClient.leaseGrant({ TTL: LEASE_TTL })));
    ids.push(...chunk.map((r) => r.ID));
  }
  return ids;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}
function summary(xs: number[]): { n: number; p50: number; p90: number; p99: number; max: number; min: number } {
  return { n: xs.length, min: Math.min(...xs), p50: pct(xs, 50), p90: pct(xs, 90), p99: pct(xs, 99), max: Math.max(...xs) };
}

async function main(): Promise<Record<string, unknown>> {
  const ul = w.netns('u');
  const hu = w.handle(ul);
  await hu.linkAdd({ name: 'br0', kind: 'bridge', up: true });
  const br = await hu.linkByName('br0');
  await hu.addrAdd(br.index, { address: IPPrefix.mustParse(`${UL_IP}/24`) });
  await hu.linkSetUp((await hu.linkByName('lo')).index);
  const node = async (name: string, addr: string) => {
    const ns = w.netns(name);
    const h = w.handle(ns);
    await hu.linkAdd({ name: `v${name}`, kind: 'veth', master: br.index, up: true, veth: { peerName: 'eth0', peerNetnsFd: h.nsFd! } });
    const eth = await h.linkByName('eth0');
    await h.addrAdd(eth.index, { address: IPPrefix.mustParse(`${addr}/24`) });
    await h.linkSetUp(eth.index);
    await h.linkSetUp((await h.linkByName('lo')).index);
    return { ns, h, name: `${w.prefix}-${name}` };
  };
  const n1 = await node('n1', '192.0.2.11');
  const fl = await node('f', '192.0.2.12');

  leave = enterNetns(ul);
  await startEtcd(`${w.prefix}-u`);
  await client!.put(`${PREFIX}/config`).value(JSON.stringify({ Network: '10.0.0.0/8', Backend: { Type: 'vxlan' } }));

  // flanneld
  const subnetFile = join(tmp, 'subnet.env');
  const fd = spawn('ip', ['netns', 'exec', n1.name, 'node', FLANNELD, `--etcd-endpoints=http://${UL_IP}:2379`, `--etcd-prefix=${PREFIX}`, '--iface=eth0', `--subnet-file=${subnetFile}`, '--healthz-port=8081'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  fd.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-8000)));
  fd.once('exit', (code) => {
    if (!stopping) process.stderr.write(`flanneld exited ${code}\n${log}\n`);
  });
  children.push(fd);
  for (let t = 0; !existsSync(subnetFile); t++) {
    if (t > 300 || fd.exitCode !== null) throw new Error(`flanneld wrote no subnet.env\n${log}`);
    await sleep(100);
  }
  const own = /^FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1\/24$/m.exec(readFileSync(subnetFile, 'utf8'))?.[1];
  const AFTER = 20;
  const total = SERIES + SLOW + BATCH + AFTER;
  const peers = Array.from({ length: total + 1 }, (_, k) => peer(k)).filter((p) => p.subnet !== `${own}.0/24`).slice(0, total);

  // Route/neigh events inside n1, as this process reads them.
  const routeSeen = new Map<string, number>();
  const neighSeen = new Map<string, number>();
  const fdbSeen = new Map<string, number>();
  const sub = n1.h.subscribe([rt.RTNLGRP_IPV4_ROUTE, rt.RTNLGRP_NEIGH], (type, obj) => {
    const t = performance.now();
    if (type === rt.RTM_NEWROUTE) {
      const r = obj as Route;
      if (!routeSeen.has(String(r.dst))) routeSeen.set(String(r.dst), t);
    } else if (type === rt.RTM_NEWNEIGH) {
      const n = obj as Neigh;
      if (n.family === 'bridge' && n.mac) {
        if (!fdbSeen.has(n.mac)) fdbSeen.set(n.mac, t);
      } else if (n.ip && !neighSeen.has(String(n.ip))) neighSeen.set(String(n.ip), t);
    }
  });
  closers.push(() => sub.close());
  // What etcd delivers to a watcher in this same process.
  const watchSeen = new Map<string, number>();
  const watcher = await client!.watch().prefix(`${PREFIX}/subnets/`).create();
  watcher.on('put', (kv) => {
    const k = kv.key.toString();
    if (!watchSeen.has(k)) watchSeen.set(k, performance.now());
  });
  closers.push(() => void watcher.cancel());

  // flanneld is up with its device before the first peer arrives.
  for (let t = 0; !(await n1.h.linkFind('flannel.1')); t++) {
    if (t > 300) throw new Error(`no flannel.1\n${log}`);
    await sleep(100);
  }
  await sleep(1000);

  const waitRoutes = async (subs: string[], ms: number): Promise<void> => {
    const deadline = performance.now() + ms;
    while (subs.some((s) => !routeSeen.has(s))) {
      if (performance.now() > deadline) throw new Error(`routes missing: ${subs.filter((s) => !routeSeen.has(s)).length}\n${log}`);
      await sleep(5);
    }
  };

  // Series: one lease at a time.
  const series = async (list: typeof peers, gap: number) => {
    const ids = await grant(list.length);
    const put = new Map<string, number>();
    for (const [i, p] of list.entries()) {
      const t0 = performance.now();
      put.set(p.subnet, t0);
      await client!.put(p.key).value(p.value).lease(ids[i]!);
      await sleep(gap);
    }
    await waitRoutes(list.map((p) => p.subnet), 30_000);
    return {
      route: summary(list.map((p) => routeSeen.get(p.subnet)! - put.get(p.subnet)!)),
      watch: summary(list.map((p) => watchSeen.get(p.key)! - put.get(p.subnet)!)),
    };
  };
  const fast = await series(peers.slice(0, SERIES), GAP);
  process.stderr.write(`series gap ${GAP}: ${JSON.stringify(fast)}\n`);
  const slow = await series(peers.slice(SERIES, SERIES + SLOW), 250);
  process.stderr.write(`series gap 250: ${JSON.stringify(slow)}\n`);

  // Batch: BATCH leases in one transaction.
  const batch = peers.slice(SERIES + SLOW, SERIES + SLOW + BATCH);
  const ids = await grant(batch.length);
  const t0 = performance.now();
  await client!.kv.txn({ compare: [], success: batch.map((p, i) => ({ request_put: { key: Buffer.from(p.key), value: Buffer.from(p.value), lease: ids[i]! } })), failure: [] });
  const tCommit = performance.now() - t0;
  await waitRoutes(batch.map((p) => p.subnet), 120_000);
  // Neighbour/FDB events may trail the last route only if something failed; wait for them briefly.
  const vtepIP = (p: { subnet: string }): string => p.subnet.split('/')[0]!;
  for (let t = 0; t < 200 && batch.some((p) => !neighSeen.has(vtepIP(p)) || !fdbSeen.has(p.mac)); t++) await sleep(10);
  const last = (m: Map<string, number>, keys: string[]): number => Math.max(...keys.map((k) => m.get(k) ?? Number.NaN)) - t0;
  const first = (m: Map<string, number>, keys: string[]): number => Math.min(...keys.map((k) => m.get(k) ?? Number.NaN)) - t0;
  const subnets = batch.map((p) => p.subnet);
  const batchRes = {
    n: batch.length,
    txnCommitMs: tCommit,
    watchAllMs: last(watchSeen, batch.map((p) => p.key)),
    firstRouteMs: first(routeSeen, subnets),
    allRoutesMs: last(routeSeen, subnets),
    allNeighMs: last(neighSeen, batch.map(vtepIP)),
    allFdbMs: last(fdbSeen, batch.map((p) => p.mac)),
  };
  process.stderr.write(`batch: ${JSON.stringify(batchRes)}\n`);

  // One lease at a time again, now with 1,000+ peers programmed (each sync diffs the whole state).
  await sleep(1000);
  const after = await series(peers.slice(SERIES + SLOW + BATCH), 250);
  process.stderr.write(`series after batch: ${JSON.stringify(after)}\n`);

  // Counts in the kernel at the end (every simulated peer so far).
  const dev = await n1.h.linkByName('flannel.1');
  const routes = (await n1.h.routeList({ family: 4 })).filter((r) => r.oif === dev.index && r.dst.length !== 0);
  const neighs = (await n1.h.neighList({ family: 4, index: dev.index })).filter((n) => n.ip !== undefined);
  const fdb = (await n1.h.neighList({ family: 'bridge', index: dev.index })).filter((n) => n.ip !== undefined);
  const counts = { expected: total, routes: routes.length, neighs: neighs.length, fdb: fdb.length };
  process.stderr.write(`counts: ${JSON.stringify(counts)}\n`);

  let metrics = '';
  try {
    const res = await fetch('http://192.0.2.11:8081/metrics', { signal: AbortSignal.timeout(3000) });
    metrics = (await res.text())
      .split('\n')
      .filter((l) => /^flannel_(peers|programming_errors_total|reconcile_duration_seconds_(sum|count))/.test(l))
      .join('\n');
  } catch (err) {
    metrics = `(metrics not reachable: ${(err as Error).message})`;
  }

  // Floor: the same 1,000 peers' objects by hand, in flanneld's order (neighbours, FDB, routes),
  // FLOOR_REPS times on a fresh flannel.1 each time; the run with the median total is reported.
  const files = {
    neigh: join(tmp, 'neigh.batch'),
    fdb: join(tmp, 'fdb.batch'),
    route: join(tmp, 'route.batch'),
  };
  writeFileSync(files.neigh, batch.map((p) => `neigh replace ${vtepIP(p)} dev flannel.1 lladdr ${p.mac} nud permanent`).join('\n') + '\n');
  writeFileSync(files.fdb, batch.map((p) => `fdb replace ${p.mac} dev flannel.1 self dst ${p.pub}`).join('\n') + '\n');
  writeFileSync(files.route, batch.map((p) => `route replace ${p.subnet} via ${vtepIP(p)} dev flannel.1 onlink`).join('\n') + '\n');
  const FLOOR_REPS = 5;
  const floorRuns: { neighMs: number; fdbMs: number; routeMs: number; totalMs: number }[] = [];
  let floorCounts = { routes: 0, neighs: 0, fdb: 0 };
  for (let rep = 0; rep < FLOOR_REPS; rep++) {
    await run('ip', ['-n', fl.name, 'link', 'del', 'flannel.1']).catch(() => undefined);
    await run('ip', ['-n', fl.name, 'link', 'add', 'flannel.1', 'mtu', '1450', 'type', 'vxlan', 'id', '1', 'local', '192.0.2.12', 'dev', 'eth0', 'dstport', '8472', 'nolearning']);
    await run('ip', ['-n', fl.name, 'link', 'set', 'flannel.1', 'up']);
    const f0 = performance.now();
    await run('ip', ['-n', fl.name, '-batch', files.neigh]);
    const f1 = performance.now();
    await run('bridge', ['-n', fl.name, '-batch', files.fdb]);
    const f2 = performance.now();
    await run('ip', ['-n', fl.name, '-batch', files.route]);
    const f3 = performance.now();
    floorRuns.push({ neighMs: f1 - f0, fdbMs: f2 - f1, routeMs: f3 - f2, totalMs: f3 - f0 });
    floorCounts = {
      routes: (await run('ip', ['-n', fl.name, 'route', 'show', 'dev', 'flannel.1'])).stdout.trim().split('\n').length,
      neighs: (await run('ip', ['-n', fl.name, 'neigh', 'show', 'dev', 'flannel.1'])).stdout.trim().split('\n').length,
      fdb: (await run('bridge', ['-n', fl.name, 'fdb', 'show', 'dev', 'flannel.1'])).stdout.split('\n').filter((l) => l.includes(' dst ')).length,
    };
  }
  const med = [...floorRuns].sort((a, b) => a.totalMs - b.totalMs)[Math.floor(FLOOR_REPS / 2)]!;
  // One peer by hand: three `ip`/`bridge` processes (what a per-event exec would cost).
  const p1 = batch[0]!;
  const o0 = performance.now();
  await run('ip', ['-n', fl.name, 'neigh', 'replace', '10.255.255.0', 'dev', 'flannel.1', 'lladdr', '0a:58:ff:ff:ff:ff', 'nud', 'permanent']);
  await run('bridge', ['-n', fl.name, 'fdb', 'replace', '0a:58:ff:ff:ff:ff', 'dev', 'flannel.1', 'self', 'dst', p1.pub]);
  await run('ip', ['-n', fl.name, 'route', 'replace', '10.255.255.0/24', 'via', '10.255.255.0', 'dev', 'flannel.1', 'onlink']);
  const o1 = performance.now();
  const floor = { ...med, totals: floorRuns.map((r) => r.totalMs), counts: floorCounts, onePeerThreeExecsMs: o1 - o0 };
  process.stderr.write(`floor: ${JSON.stringify(floor)}\n`);

  return { own: `${own}.0/24`, gap: GAP, fast, slow, after, batch: batchRes, counts, floor, metrics };
}

async function cleanup(): Promise<void> {
  stopping = true;
  for (const c of closers) {
    try {
      c();
    } catch {
      // closing
    }
  }
  try {
    client?.close();
  } catch {
    // closing
  }
  for (const c of children.reverse()) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
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
  const res = await main();
  const json = JSON.stringify(res, null, 1);
  if (outArg) writeFileSync(outArg, json);
  console.log(json);
} catch (err) {
  failed = true;
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
} finally {
  await cleanup();
}
if (failed) process.exitCode = 1;
