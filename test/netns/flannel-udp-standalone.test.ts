// The udp backend from the shipped executable alone: dist/bin/flanneld
// (`npm run build` first) copied to a temporary directory outside the
// repository, with no node_modules anywhere above it and an empty native
// addon cache, so koffi can only come from the addon embedded in the file
// (materialised by lib/sys/native.ts; the datapath threads dlopen that same
// copy). Two node namespaces with etcd, flanneld --backend udp in each, pods
// attached by the flannel CNI plugin, ping pod to pod.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, ETCD_IP, HEALTHZ_PORT, ROOT, spawnDaemon } from '../harness/cluster.ts';
import type { Daemon, Node, Pod } from '../harness/cluster.ts';

/** Directories from `dir` up to / that hold a node_modules. */
function nodeModulesAbove(dir: string): string[] {
  const found: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, 'node_modules'))) found.push(d);
    if (dirname(d) === d) return found;
  }
}

describe('flanneld udp backend from the single-file executable outside the repository', () => {
  let c: Cluster | undefined;
  let dir = '';
  const daemons: Daemon[] = [];
  const pods: Pod[] = [];

  /** Runs the copied executable in the node's namespace (cwd and env free of the repository). */
  function start(n: Node): Daemon {
    const exe = join(dir, 'bin', 'flanneld');
    const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', NODE_NAME: n.name, KN_NATIVE_DIR: join(dir, 'native'), HOME: dir };
    const args = [
      `--net=${n.ns}`,
      'node',
      exe,
      `--etcd-endpoints=http://${ETCD_IP}:2379`,
      `--etcd-prefix=${c!.prefix}`,
      '--iface=eth0',
      `--subnet-file=${n.subnetFile}`,
      `--healthz-port=${HEALTHZ_PORT}`,
    ];
    const d = spawnDaemon('nsenter', args, { cwd: dir, env });
    daemons.push(d);
    n.daemon = d;
    return d;
  }

  beforeAll(async () => {
    const built = join(ROOT, 'dist/bin/flanneld');
    if (!existsSync(built)) throw new Error(`${built} is missing: run npm run build first`);
    dir = mkdtempSync(join(tmpdir(), 'kn-udp-standalone-'));
    mkdirSync(join(dir, 'bin'));
    copyFileSync(built, join(dir, 'bin', 'flanneld'));
    c = await Cluster.create({ nodes: 2, netConf: { Network: '10.244.0.0/16', Backend: { Type: 'udp' } } });
    for (const n of c.nodes) start(n);
    for (const n of c.nodes) await c.waitReady(n);
    for (const n of c.nodes) pods.push(await c.addPod(n, 'a'));
  }, 120_000);

  afterAll(async () => {
    for (const d of daemons) await d.stop().catch(() => undefined);
    await c?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('runs where no node_modules can be resolved, extracting koffi from the executable', () => {
    expect(dir.startsWith(ROOT)).toBe(false);
    expect(nodeModulesAbove(join(dir, 'bin'))).toEqual([]);
    // The embedded addons were written to the fresh cache: koffi among them.
    expect(readdirSync(join(dir, 'native')).filter((f) => /^koffi-[0-9a-f]{16}\.node$/.test(f))).toHaveLength(1);
  });

  it('pods on the two nodes ping each other through the udp datapath threads', async () => {
    const [a, b] = pods as [Pod, Pod];
    await c!.until('pod a → pod b', () => c!.ping(a, b.ip, ['-c', '1', '-W', '1']).received === 1);
    const r = c!.ping(b, a.ip, ['-c', '3', '-i', '0.2', '-W', '2']);
    expect(r.received).toBe(3);
    // Two kernel forwarding hops and two udp datapath hops (each decrements the TTL).
    expect(r.out).toMatch(/ttl=60 /);
    for (const d of daemons) expect(d.log()).not.toMatch(/udp datapath thread stopped|Cannot find module/);
  });

  // Bulk TCP takes the batched paths (TSO super-packets cut into datagrams,
  // UDP GRO, segments glued into GSO writes to the TUN): every byte must arrive.
  it.each([
    [0, 1],
    [1, 0],
  ])('a 24 MiB TCP transfer from pod %i to pod %i arrives byte for byte', async (from, to) => {
    const src = pods[from]!;
    const dst = pods[to]!;
    const port = 9000 + from;
    const server = spawn(
      'nsenter',
      [
        `--net=${dst.ns}`,
        'node',
        '-e',
        `const h=require('crypto').createHash('sha256');let n=0;const s=require('net').createServer(c=>{c.on('data',d=>{h.update(d);n+=d.length});c.on('end',()=>{process.stdout.write(n+' '+h.digest('hex'));s.close()})});s.listen(${port},'${dst.ip}',()=>process.stderr.write('up'))`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let got = '';
    server.stdout.on('data', (d: Buffer) => (got += d.toString()));
    const done = new Promise<void>((resolve) => server.once('exit', () => resolve()));
    try {
      await new Promise<void>((resolve, reject) => {
        server.stderr.once('data', () => resolve());
        server.once('exit', (code) => reject(new Error(`receiver exited ${code}`)));
      });
      const client = spawn(
        'nsenter',
        [
          `--net=${src.ns}`,
          'node',
          '-e',
          `const crypto=require('crypto');const h=crypto.createHash('sha256');const c=require('net').connect(${port},'${dst.ip}');let left=24*1024*1024;function more(){while(left>0){const b=crypto.randomBytes(Math.min(left,65536+Math.floor(Math.random()*999)));left-=b.length;h.update(b);if(!c.write(b))return c.once('drain',more)}c.end(()=>process.stdout.write(String(24*1024*1024)+' '+h.digest('hex')))}c.on('connect',more)`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let sent = '';
      client.stdout.on('data', (d: Buffer) => (sent += d.toString()));
      await new Promise<void>((resolve) => client.once('exit', () => resolve()));
      await done;
      expect(sent).toMatch(/^25165824 [0-9a-f]{64}$/);
      expect(got).toBe(sent);
    } finally {
      if (server.exitCode === null && server.pid !== undefined) process.kill(server.pid, 'SIGKILL');
    }
  });
});
