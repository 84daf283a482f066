// netpolicy truth tables on a real datapath, in the style of upstream's e2e
// netpol suite: namespaces x, y, z with pods a, b, c (each serving TCP and
// UDP on 80 and 81), attached with our bridge + host-local plugins on two
// node namespaces (host-gw routes over a veth underlay), plus an external
// host on the underlay. dist/bin/netpolicy runs in each node namespace,
// reading the manifest directory this test writes, once per backend. Each
// policy case is probed over the whole matrix (TCP connect, UDP echo) and
// compared with the model's evaluate(); sequences (label change, policy
// update, policy delete) and the cut of an established connection follow.
//
// Addresses: underlay 192.0.2.0/24 (nodes .11, .12, external .99); pods of
// n1 in 198.51.100.0/25, of n2 in 198.51.100.128/25.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { V1Namespace, V1NetworkPolicy, V1Node, V1Pod } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.ts';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import { buildCluster, evaluate, type Protocol } from '../../netpolicy/model/index.ts';
import { namespace, pod, policy } from '../../netpolicy/testing/fixtures.ts';
import { CASES } from '../../netpolicy/testing/truth-cases.ts';
import { RawSctp, sctpConnect, sctpResponder } from '../../netpolicy/testing/sctp.ts';
import { cniEnv, cniOk, OUR_BIN, ROOT } from '../harness/cni.ts';
import { spawnDaemon, type Daemon } from '../harness/cluster.ts';
import { underlayNodes, type UnderlayNode } from '../harness/underlay.ts';
import { until } from '../harness/until.ts';
import { isRoot, World } from '../harness/world.ts';

const NETPOLICY = join(ROOT, 'dist/bin/netpolicy');
const NS = ['x', 'y', 'z'] as const;
const CELLS = NS.flatMap((n) => ['a', 'b', 'c'].map((p) => `${n}${p}`));
const EXT_IP = '192.0.2.99';
const SUBNETS = ['198.51.100.0/25', '198.51.100.128/25'];
const PROBES: readonly (readonly [Protocol, number])[] = [
  ['TCP', 80],
  ['TCP', 81],
  ['UDP', 80],
  ['UDP', 81],
];
const PORTS: readonly (readonly [string, string, number])[] = [
  ['serve-80-tcp', 'TCP', 80],
  ['serve-81-tcp', 'TCP', 81],
  ['serve-80-udp', 'UDP', 80],
  ['serve-81-udp', 'UDP', 81],
];
const PROBE_TIMEOUT_MS = 800;

// Helpers run with the machine's Node inside the pod namespaces.
const SERVER_JS = `
import net from 'node:net';
import dgram from 'node:dgram';
let up = 0;
const ready = () => { if (++up === 4) process.stdout.write('ready\\n'); };
for (const port of [80, 81]) {
  net.createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(port, '0.0.0.0', ready);
  const u = dgram.createSocket('udp4');
  u.on('message', (m, r) => u.send(m, r.port, r.address));
  u.bind(port, '0.0.0.0', ready);
}
`;
const PROBE_JS = `
import net from 'node:net';
import dgram from 'node:dgram';
const timeout = Number(process.argv[2]);
const targets = JSON.parse(process.argv[3]);
const one = ({ ip, proto, port }) => new Promise((res) => {
  if (proto === 'TCP') {
    const s = net.connect({ host: ip, port });
    const t = setTimeout(() => done(false), timeout);
    const done = (v) => { clearTimeout(t); s.destroy(); res(v); };
    s.on('connect', () => done(true));
    s.on('error', () => done(false));
  } else {
    const u = dgram.createSocket('udp4');
    const t = setTimeout(() => done(false), timeout);
    const done = (v) => { clearTimeout(t); u.close(); res(v); };
    u.on('message', () => done(true));
    u.on('error', () => done(false));
    u.send('probe', port, ip);
  }
});
Promise.all(targets.map(one)).then((r) => process.stdout.write(JSON.stringify(r)));
`;
// One TCP connection held open: each stdin line is sent, its echo printed (or "timeout").
const HOLD_JS = `
import net from 'node:net';
import { createInterface } from 'node:readline';
const s = net.connect({ host: process.argv[2], port: Number(process.argv[3]) });
s.setEncoding('utf8');
let pending;
s.on('connect', () => process.stdout.write('connected\\n'));
s.on('error', (e) => process.stdout.write('error ' + e.code + '\\n'));
s.on('data', (d) => { if (pending) { clearTimeout(pending); pending = undefined; process.stdout.write('echo ' + d.trim() + '\\n'); } });
createInterface({ input: process.stdin }).on('line', (line) => {
  s.write(line + '\\n');
  pending = setTimeout(() => { pending = undefined; process.stdout.write('timeout\\n'); }, 1500);
});
`;

interface PodInfo {
  cell: string;
  ns: string;
  name: string;
  nsName: string;
  node: UnderlayNode;
  ip: string;
}

const w = new World('np');
const children: ChildProcess[] = [];
let tmp: string;
let manifests: string;
let nodes: UnderlayNode[];
let extNs: string;
const pods = new Map<string, PodInfo>();
const labels = new Map<string, Record<string, string>>();
let generation = 0;
const sctpSockets = new Map<string, RawSctp>();

function spawnIn(nsName: string, args: string[]): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', nsName, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  return child;
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (l) => {
      rl.close();
      resolve(l);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code} before its first line`)));
  });
}

async function attach(cell: string, i: number): Promise<void> {
  const node = nodes[i % 2]!;
  const [ns, name] = [cell[0]!, cell[1]!];
  const path = w.netns(`${ns}-${name}`);
  const conf = {
    cniVersion: '1.0.0',
    name: 'np',
    type: 'bridge',
    bridge: 'cni0',
    isGateway: true,
    ipMasq: false,
    ipam: { type: 'host-local', ranges: [[{ subnet: SUBNETS[node.i - 1] }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(tmp, `ipam-${node.i}`) },
  };
  // Our loopback plugin brings lo up: a pod reaching its own address goes over lo.
  await cniOk({ node: node.ns, plugin: join(OUR_BIN, 'loopback'), env: cniEnv('ADD', `np-${cell}`, path, 'lo', OUR_BIN), stdin: { cniVersion: '1.0.0', name: 'lo', type: 'loopback' } });
  const out = await cniOk({ node: node.ns, plugin: join(OUR_BIN, 'bridge'), env: cniEnv('ADD', `np-${cell}`, path, 'eth0', OUR_BIN), stdin: conf });
  const ip = String(out.json.ips[0].address).split('/')[0]!;
  pods.set(cell, { cell, ns, name, nsName: `${w.prefix}-${ns}-${name}`, node, ip });
  labels.set(cell, { pod: name });
}

/** The objects of the world now, with `policies`. */
function objects(policies: V1NetworkPolicy[]): { pods: V1Pod[]; namespaces: V1Namespace[]; nodes: V1Node[]; policies: V1NetworkPolicy[] } {
  const nsObjs = NS.map((n) => {
    const o = namespace(n, { ns: n });
    o.metadata!.annotations = { 'netpolicy-test/generation': String(generation) };
    return o;
  });
  const podObjs = [...pods.values()].map((p) => pod(p.ns, p.name, { labels: labels.get(p.cell)!, ips: [p.ip], node: `n${p.node.i}`, ports: PORTS }));
  const nodeObjs: V1Node[] = nodes.map((n) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name: `n${n.i}` }, spec: { podCIDR: SUBNETS[n.i - 1]!, podCIDRs: [SUBNETS[n.i - 1]!] } }));
  return { pods: podObjs, namespaces: nsObjs, nodes: nodeObjs, policies };
}

/** Writes the manifest directory in one rename (the agents read it whole); returns the model's cluster. */
function write(policies: V1NetworkPolicy[]): ReturnType<typeof buildCluster> {
  generation += 1;
  const o = objects(policies);
  const all = [...o.nodes, ...o.namespaces, ...o.pods, ...o.policies];
  const hidden = join(manifests, '.world.yaml.tmp');
  writeFileSync(hidden, all.map((x) => stringify(x)).join('---\n'));
  renameSync(hidden, join(manifests, 'world.yaml'));
  return buildCluster(o);
}

/** Until both agents report the current generation as applied. */
async function enforcedNow(): Promise<void> {
  const want = String(generation);
  for (const n of nodes) await until(() => enforced.get(n.i) === want);
}

async function apply(policies: V1NetworkPolicy[]): Promise<ReturnType<typeof buildCluster>> {
  const c = write(policies);
  await enforcedNow();
  return c;
}

/** Per node, the generation its agent last reported as applied (polled from /debug/state). */
const enforced = new Map<number, string>();
let polling = false;
async function pollStates(): Promise<void> {
  while (polling) {
    for (const n of nodes) {
      try {
        const { stdout } = await run('curl', ['-s', '--max-time', '2', 'http://127.0.0.1:9080/debug/state'], { netns: n.ns });
        const s = JSON.parse(stdout) as { applied: boolean; namespaces?: V1Namespace[] };
        const gens = new Set((s.namespaces ?? []).map((x) => x.metadata?.annotations?.['netpolicy-test/generation']));
        if (s.applied && gens.size === 1) enforced.set(n.i, [...gens][0]!);
      } catch {
        // not up yet
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function metric(n: UnderlayNode, name: string): Promise<number> {
  const { stdout } = await run('curl', ['-s', '--max-time', '2', 'http://127.0.0.1:9080/metrics'], { netns: n.ns });
  const line = stdout.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return Number(line?.split(' ').at(-1) ?? NaN);
}

interface Probe {
  src: string;
  dst: string;
  proto: Protocol;
  port: number;
}

async function probeAll(list: readonly Probe[]): Promise<boolean[]> {
  const bySrc = new Map<string, number[]>();
  list.forEach((p, i) => {
    const l = bySrc.get(p.src);
    if (l) l.push(i);
    else bySrc.set(p.src, [i]);
  });
  const out: boolean[] = new Array<boolean>(list.length).fill(false);
  await Promise.all(
    [...bySrc].map(async ([src, idx]) => {
      const targets = idx.map((i) => ({ ip: pods.get(list[i]!.dst)!.ip, proto: list[i]!.proto, port: list[i]!.port }));
      const nsPath = src === 'ext' ? extNs : w.nsPath(`${src[0]}-${src[1]}`);
      const { stdout } = await run('node', [join(tmp, 'probe.mjs'), String(PROBE_TIMEOUT_MS), JSON.stringify(targets)], { netns: nsPath, timeoutMs: 20_000 });
      (JSON.parse(stdout) as boolean[]).forEach((v, k) => (out[idx[k]!] = v));
    }),
  );
  return out;
}

const SOURCES = [...CELLS, 'ext'];
const ALL_PROBES: Probe[] = SOURCES.flatMap((src) => CELLS.flatMap((dst) => PROBES.map(([proto, port]) => ({ src, dst, proto, port }))));

function expectedOf(c: ReturnType<typeof buildCluster>, p: Probe): boolean {
  const src = p.src === 'ext' ? { ip: EXT_IP } : { pod: `${p.src[0]}/${p.src[1]}` };
  return evaluate(c, src, { pod: `${p.dst[0]}/${p.dst[1]}` }, p.port, p.proto).allowed;
}

/** Matrix text, one block per probe kind: rows sources, columns destinations. */
function render(values: (p: Probe) => boolean): string {
  return PROBES.map(([proto, port]) => {
    const rows = SOURCES.map((src) => `${src.padEnd(3)} ${CELLS.map((dst) => (values({ src, dst, proto, port }) ? '1' : '0')).join('')}`);
    return `${proto}/${port}\n${rows.join('\n')}`;
  }).join('\n');
}

/**
 * Probes the whole matrix and returns it with the model's, as text. A
 * mismatch is probed twice more (a reply lost under load is not a verdict);
 * a cell that the datapath wrongly allows stays wrong whatever the retries.
 */
async function matrix(c: ReturnType<typeof buildCluster>): Promise<{ got: string; want: string }> {
  const got = await probeAll(ALL_PROBES);
  for (let round = 0; round < 2; round++) {
    const bad = ALL_PROBES.map((p, i) => i).filter((i) => got[i] !== expectedOf(c, ALL_PROBES[i]!));
    if (bad.length === 0) break;
    const again = await probeAll(bad.map((i) => ALL_PROBES[i]!));
    bad.forEach((i, k) => (got[i] = again[k]!));
  }
  const key = (p: Probe): string => `${p.src} ${p.dst} ${p.proto} ${p.port}`;
  const gotMap = new Map(ALL_PROBES.map((p, i) => [key(p), got[i]!]));
  return { got: render((p) => gotMap.get(key(p))!), want: render((p) => expectedOf(c, p)) };
}

/** SCTP/80 from every source to every pod: handshakes over raw sockets, all at once. */
async function sctpMatrix(c: ReturnType<typeof buildCluster>, opts: { badChecksum?: boolean } = {}): Promise<{ got: string; want: string }> {
  const probes = SOURCES.flatMap((src) => CELLS.map((dst) => ({ src, dst, proto: 'SCTP' as Protocol, port: 80 })));
  const once = (list: typeof probes): Promise<boolean[]> => Promise.all(list.map((p) => (p.src === p.dst ? Promise.resolve(true) : sctpConnect(sctpSockets.get(p.src)!, pods.get(p.dst)!.ip, p.port, PROBE_TIMEOUT_MS, opts))));
  const got = await once(probes);
  const expect1 = (p: Probe): boolean => (opts.badChecksum ? p.src === p.dst : expectedOf(c, p));
  for (let round = 0; round < 2; round++) {
    const bad = probes.map((_, i) => i).filter((i) => got[i] !== expect1(probes[i]!));
    if (bad.length === 0) break;
    const again = await once(bad.map((i) => probes[i]!));
    bad.forEach((i, k) => (got[i] = again[k]!));
  }
  const text = (v: (i: number) => boolean): string => SOURCES.map((src, r) => `${src.padEnd(3)} ${CELLS.map((_, k) => (v(r * CELLS.length + k) ? '1' : '0')).join('')}`).join('\n');
  return { got: text((i) => got[i]!), want: text((i) => expect1(probes[i]!)) };
}

const PICKED = [
  'default deny ingress in x',
  'x/a admits pod b of namespace y (both selectors: AND)',
  'x/a admits namespace y on TCP 80-81 (endPort)',
  'x/a admits everyone on the named port serve-81-udp',
  'default deny egress in x',
  'y may send only to x, and x admits only y: both directions must allow',
  'a rejected policy on x/a fails closed; a valid one in z keeps working',
];
const cases = CASES.filter((c) => PICKED.includes(c.name));
const A = { matchLabels: { pod: 'a' } };
const ownCases: { name: string; policies: V1NetworkPolicy[] }[] = [
  {
    name: 'x/a admits 198.51.100.0/24 except the pods of n2 (ipBlock with except, external host outside)',
    policies: [policy('x', 'blk', { podSelector: A, ingress: [{ from: [{ ipBlock: { cidr: '198.51.100.0/24', except: [SUBNETS[1]] } }] }] })],
  },
];

beforeAll(async () => {
  if (!isRoot) throw new Error('the netns suites run as root');
  tmp = mkdtempSync(join(tmpdir(), 'netpolicy-netns-'));
  manifests = join(tmp, 'manifests');
  rmSync(manifests, { recursive: true, force: true });
  await run('mkdir', ['-p', manifests]);
  writeFileSync(join(tmp, 'server.mjs'), SERVER_JS);
  writeFileSync(join(tmp, 'probe.mjs'), PROBE_JS);
  writeFileSync(join(tmp, 'hold.mjs'), HOLD_JS);
  nodes = await underlayNodes(w, 2);
  // host-gw: each node routes the other's pod subnet over the underlay.
  for (const n of nodes) {
    const other = nodes.find((m) => m !== n)!;
    await n.h.routeAdd({ family: 4, dst: IPPrefix.mustParse(SUBNETS[other.i - 1]!), gw: IPAddr.mustParse(other.ip) });
  }
  // The external host, on the underlay bridge.
  extNs = w.netns('ext');
  const hu = w.handle(w.nsPath('u'));
  const he = w.handle(extNs);
  await he.linkAdd({ name: 'eth0', kind: 'veth', veth: { peerName: 'uext', peerNetnsFd: hu.nsFd! } });
  const up = await hu.linkByName('uext');
  await hu.linkSetMaster(up.index, (await hu.linkByName('br0')).index);
  await hu.linkSetUp(up.index);
  const eth = await he.linkByName('eth0');
  await he.addrAdd(eth.index, { address: IPPrefix.mustParse(`${EXT_IP}/24`) });
  await he.linkSetUp(eth.index);
  await he.linkSetUp((await he.linkByName('lo')).index);
  for (const n of nodes) await he.routeAdd({ family: 4, dst: IPPrefix.mustParse(SUBNETS[n.i - 1]!), gw: IPAddr.mustParse(n.ip) });

  for (const [i, cell] of CELLS.entries()) await attach(cell, i);
  await Promise.all(
    [...pods.values()].map(async (p) => {
      const s = spawnIn(p.nsName, ['node', join(tmp, 'server.mjs')]);
      expect(await firstLine(s)).toBe('ready');
    }),
  );
  // SCTP: one raw socket per pod answers handshakes on 80 and 81, and initiates the probes.
  for (const p of pods.values()) {
    const sock = new RawSctp(w.nsPath(`${p.ns}-${p.name}`));
    sctpSockets.set(p.cell, sock);
    sctpResponder(sock, [80, 81]);
  }
  sctpSockets.set('ext', new RawSctp(extNs));
  polling = true;
  void pollStates();
}, 120_000);

afterAll(async () => {
  polling = false;
  for (const s of sctpSockets.values()) s.close();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
  await new Promise((r) => setTimeout(r, 100)); // the last state poll
  try {
    await w.cleanup();
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}, 60_000);

describe.each(['nftables', 'iptables'] as const)('netpolicy %s backend, two nodes, pods x/y/z × a/b/c', (backend) => {
  const agents: Daemon[] = [];

  beforeAll(async () => {
    enforced.clear();
    labels.forEach((_, cell) => labels.set(cell, { pod: cell[1]! }));
    write([]);
    for (const n of nodes) {
      agents.push(
        spawnDaemon('ip', ['netns', 'exec', n.nsName, NETPOLICY, '--manifests', manifests, '--hostname-override', `n${n.i}`, '--backend', backend, '--healthz-bind-address', '127.0.0.1:10299', '--metrics-bind-address', '127.0.0.1:9080'], {
          env: process.env,
        }),
      );
    }
    await enforcedNow();
  }, 60_000);

  afterAll(async () => {
    const logs = agents.map((a) => a.log());
    const codes = await Promise.all(agents.splice(0).map((a) => a.stop()));
    for (const n of nodes) await run(NETPOLICY, ['--cleanup', '--backend', backend, '--healthz-bind-address', '', '--metrics-bind-address', ''], { netns: n.ns });
    expect(codes, logs.join('\n')).toEqual([0, 0]);
  }, 60_000);

  it('healthz answers 200 once the first sync is applied', async () => {
    for (const n of nodes) {
      const { stdout } = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:10299/healthz'], { netns: n.ns });
      expect(stdout).toBe('200');
    }
  });

  for (const c of [...cases, ...ownCases]) {
    it(`truth table: ${c.name}`, async () => {
      const cluster = await apply(c.policies);
      const m = await matrix(cluster);
      expect(m.got).toBe(m.want);
    }, 60_000);
  }

  it('sequence: a label change admits a pod, a policy update narrows the ports, a delete opens everything', async () => {
    const p = (ports?: unknown): V1NetworkPolicy =>
      policy('x', 'clients', { podSelector: A, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { role: 'client' } } }], ...(ports ? { ports } : {}) }] });
    let c = await apply([p()]);
    let m = await matrix(c);
    expect(m.got).toBe(m.want);
    labels.set('yb', { pod: 'b', role: 'client' });
    c = await apply([p()]);
    expect(evaluate(c, { pod: 'y/b' }, { pod: 'x/a' }, 80, 'TCP').allowed).toBe(true);
    m = await matrix(c);
    expect(m.got).toBe(m.want);
    c = await apply([p([{ protocol: 'UDP', port: 81 }])]);
    m = await matrix(c);
    expect(m.got).toBe(m.want);
    c = await apply([]);
    m = await matrix(c);
    expect(m.got).toBe(m.want);
    labels.set('yb', { pod: 'b' });
  }, 120_000);

  it('SCTP probed over raw IP sockets (protocol 132: INIT/INIT-ACK/COOKIE-ECHO/COOKIE-ACK with CRC32c; no kernel SCTP sockets here)', async () => {
    // Self-probes are skipped here: a pod's own raw socket would see its INIT as well as answer it.
    let c = await apply([]);
    let m = await sctpMatrix(c);
    expect(m.got).toBe(m.want);
    // A wrong CRC32c: conntrack marks the packets invalid and the agent's rules drop them.
    m = await sctpMatrix(c, { badChecksum: true });
    expect(m.got).toBe(m.want);
    c = await apply([policy('x', 'sctp', { podSelector: A, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ protocol: 'SCTP', port: 80 }] }] }), policy('y', 'deny', { podSelector: {} })]);
    m = await sctpMatrix(c);
    expect(m.got).toBe(m.want);
    c = await apply(cases.find((x) => x.name === 'default deny ingress in x')!.policies);
    m = await sctpMatrix(c);
    expect(m.got).toBe(m.want);
  }, 60_000);

  it('holds the traffic of a new pod until the agent has evaluated it (no open window), then lets it through', async () => {
    await apply([]);
    const cell = backend === 'nftables' ? 'xn' : 'xi';
    await attach(cell, 0); // on n1, not in the manifests yet
    expect(await firstLine(spawnIn(pods.get(cell)!.nsName, ['node', join(tmp, 'server.mjs')]))).toBe('ready');
    const probes: Probe[] = [
      { src: cell, dst: 'xa', proto: 'TCP', port: 80 }, // same node
      { src: 'xc', dst: cell, proto: 'UDP', port: 80 }, // same node, over the bridge
      { src: 'xb', dst: cell, proto: 'TCP', port: 81 }, // from n2
    ];
    expect(await probeAll(probes)).toEqual([false, false, false]);
    const c = await apply([]);
    expect(probes.map((p) => expectedOf(c, p))).toEqual([true, true, true]);
    expect(await probeAll(probes)).toEqual([true, true, true]);
  }, 60_000);

  it('cuts an established connection that a new policy denies', async () => {
    await apply([]);
    const xa = pods.get('xa')!;
    const client = pods.get('xb')!; // on the other node
    expect(client.node).not.toBe(xa.node);
    const hold = spawnIn(client.nsName, ['node', join(tmp, 'hold.mjs'), xa.ip, '80']);
    const lines = createInterface({ input: hold.stdout! })[Symbol.asyncIterator]();
    const next = async (): Promise<string> => String((await lines.next()).value);
    const send = async (s: string): Promise<string> => {
      hold.stdin!.write(`${s}\n`);
      return next();
    };
    try {
      expect(await next()).toBe('connected');
      expect(await send('one')).toBe('echo one');
      const tracked = async (): Promise<string> =>
        (await run('conntrack', ['-L', '-p', 'tcp', '--orig-src', client.ip, '--orig-dst', xa.ip, '--dport', '80'], { netns: xa.node.ns })).stdout;
      expect(await tracked()).toMatch(/ESTABLISHED/);
      const cutBefore = await metric(xa.node, 'netpolicy_conntrack_flows_cut_total');
      expect(cutBefore).not.toBeNaN();
      await apply([policy('x', 'deny', { podSelector: {} })]);
      // The agent deletes the entry on xa's node (the ingress side) after applying.
      while (/ESTABLISHED/.test(await tracked())) await new Promise((r) => setTimeout(r, 20));
      expect(await metric(xa.node, 'netpolicy_conntrack_flows_cut_total')).toBeGreaterThan(cutBefore);
      expect(await send('two')).toBe('timeout');
    } finally {
      hold.kill('SIGKILL');
    }
  }, 60_000);
});
