// A multi-node flannel test cluster, entirely inside namespaces this harness
// creates (never the machine's own):
//
//   <p>-ul      "underlay": bridge br0 (192.0.2.1/24)
//   <p>-etcd    etcd on 192.0.2.2:2379 (veth to br0)
//   <p>-n1..nN  node "hosts": eth0 = 192.0.2.(10+i)/24, default route via 192.0.2.1,
//               flanneld runs here as a child process (nsenter --net=…)
//   <p>-nX-pY   pods, attached by the flannel CNI plugin (bridge + host-local)
//
// The test process's main thread sits in the etcd namespace while a cluster
// exists (see enterNetns in etcd.ts), so its etcd client and HTTP probes of
// the nodes' /readyz (192.0.2.1x:8081) travel the underlay.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { Handle } from '../../lib/netlink/index.ts';
import { World } from './world.ts';
import { enterNetns, startEtcd } from './etcd.ts';
import type { EtcdServer } from './etcd.ts';
import { KubeApiFixture } from '../fixtures/kube-api/server.ts';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
export const UNDERLAY_GW = '192.0.2.1';
export const ETCD_IP = '192.0.2.2';
export const HEALTHZ_PORT = 8081;
export const nodeIP = (i: number): string => `192.0.2.${10 + i}`;

export interface FlanneldCommand {
  argv0: string;
  args: string[];
}

/**
 * How to run flanneld: the built single-file executable, exactly as shipped
 * (`npm run build` first, as CI does).
 */
export async function flanneldCommand(): Promise<FlanneldCommand> {
  const dist = join(ROOT, 'dist/bin/flanneld');
  if (!existsSync(dist)) throw new Error(`${dist} is missing: run npm run build before the e2e suite`);
  return { argv0: 'node', args: [dist] };
}

/** Kept for callers; the built executable needs no temporary bundle. */
export function removeFlanneldBundle(): void {}

export interface Daemon {
  readonly pid: number;
  readonly exited: Promise<number | null>;
  readonly log: () => string;
  /** SIGTERM (or `sig`), then wait for the exit. */
  stop(sig?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts a long-running child (flanneld) with its stderr kept (last 200 kB)
 * and a stop() that sends `sig`, escalates to SIGKILL after 10 s, and resolves
 * with the exit code. Only the started PID is ever signalled.
 */
export function spawnDaemon(cmd: string, args: readonly string[], opts: { env: NodeJS.ProcessEnv; cwd?: string }): Daemon {
  const child: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: opts.env, ...(opts.cwd ? { cwd: opts.cwd } : {}) });
  if (child.pid === undefined) throw new Error(`failed to spawn ${cmd}`);
  const pid = child.pid;
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-200_000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    pid,
    exited,
    log: () => log,
    stop: async (sig: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(pid, sig);
        const t = setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
        }, 10_000);
        const code = await exited;
        clearTimeout(t);
        return code;
      }
      return child.exitCode;
    },
  };
}

export interface Node {
  readonly index: number;
  readonly name: string;
  readonly ns: string;
  readonly ip: string;
  readonly dir: string;
  readonly subnetFile: string;
  readonly handle: Handle;
  daemon: Daemon | undefined;
}

export interface Pod {
  readonly name: string;
  readonly ns: string;
  readonly ip: string;
  readonly node: Node;
}

export interface ClusterOptions {
  nodes: number;
  /** Net config JSON: written to <prefix>/config (etcd) or net-conf.json (kube). */
  netConf: Record<string, unknown>;
  etcdPrefix?: string;
  /**
   * Kubernetes mode: the API fixture (test/fixtures/kube-api) listens on
   * 192.0.2.2:6443 instead of etcd, Node objects n1..nN carry podCIDR
   * 10.244.<i>.0/24 and flanneld runs with --kube-subnet-mgr.
   */
  kube?: boolean;
}

function sh(cmd: string, args: string[], input?: string, env?: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { input, env: env ?? process.env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export class Cluster {
  readonly world: World;
  readonly nodes: Node[] = [];
  readonly pods: Pod[] = [];
  readonly prefix: string;
  etcd!: EtcdServer;
  client!: Etcd3;
  /** Kube mode only. */
  api: KubeApiFixture | undefined;
  apiUrl = '';
  netConfPath = '';
  private leave: (() => void) | undefined;
  private readonly dir: string;
  private readonly daemons = new Set<Daemon>();

  private constructor(readonly opts: ClusterOptions) {
    this.world = new World('fl');
    this.prefix = opts.etcdPrefix ?? '/coreos.com/network';
    this.dir = mkdtempSync(join(tmpdir(), 'kn-flannel-e2e-'));
  }

  /** Builds the namespaces, underlay and etcd. On failure everything is removed again. */
  static async create(opts: ClusterOptions): Promise<Cluster> {
    const c = new Cluster(opts);
    try {
      await c.setup();
    } catch (err) {
      await c.destroy().catch(() => undefined);
      throw err;
    }
    return c;
  }

  private async setup(): Promise<void> {
    const w = this.world;
    const ul = w.netns('ul');
    const hUl = w.handle(ul);
    await hUl.linkAdd({ name: 'br0', kind: 'bridge', up: true });
    const br = await hUl.linkByName('br0');
    await hUl.addrAdd(br.index, { address: IPPrefix.mustParse(`${UNDERLAY_GW}/24`) });
    const lo = await hUl.linkByName('lo');
    await hUl.linkSetUp(lo.index);

    const attach = async (nsPath: string, peer: string, ip: string): Promise<Handle> => {
      const h = w.handle(nsPath);
      const fd = h.nsFd;
      if (fd === null) throw new Error('namespace handle without fd');
      await hUl.linkAdd({ name: peer, kind: 'veth', master: br.index, up: true, veth: { peerName: 'eth0', peerNetnsFd: fd } });
      const eth0 = await h.linkByName('eth0');
      await h.addrAdd(eth0.index, { address: IPPrefix.mustParse(`${ip}/24`) });
      await h.linkSetUp(eth0.index);
      await h.linkSetUp((await h.linkByName('lo')).index);
      await h.routeAdd({ family: 4, dst: IPPrefix.any(4), gw: IPAddr.mustParse(UNDERLAY_GW), oif: eth0.index });
      return h;
    };

    const etcdNs = w.netns('etcd');
    await attach(etcdNs, 'ul-etcd', ETCD_IP);
    for (let i = 1; i <= this.opts.nodes; i++) {
      const ns = w.netns(`n${i}`);
      const h = await attach(ns, `ul-n${i}`, nodeIP(i));
      h.writeSysctl('net/ipv4/ip_forward', '1');
      const dir = join(this.dir, `n${i}`);
      this.nodes.push({ index: i, name: `n${i}`, ns, ip: nodeIP(i), dir, subnetFile: join(dir, 'run/flannel/subnet.env'), handle: h, daemon: undefined });
    }

    this.leave = enterNetns(etcdNs);
    if (this.opts.kube) {
      this.api = new KubeApiFixture();
      this.apiUrl = await this.api.listen(ETCD_IP, 6443);
      this.netConfPath = join(this.dir, 'net-conf.json');
      writeFileSync(this.netConfPath, JSON.stringify(this.opts.netConf));
      for (const n of this.nodes) {
        const cidr = `10.244.${n.index}.0/24`;
        this.api.create('nodes', { metadata: { name: n.name }, spec: { podCIDR: cidr, podCIDRs: [cidr] } });
      }
      return;
    }
    this.etcd = await startEtcd({ nsPath: etcdNs, host: ETCD_IP });
    this.client = new Etcd3({ hosts: this.etcd.endpoint });
    await this.client.put(`${this.prefix}/config`).value(JSON.stringify(this.opts.netConf));
  }

  node(i: number): Node {
    const n = this.nodes[i - 1];
    if (!n) throw new Error(`no node ${i}`);
    return n;
  }

  /** Starts flanneld inside the node's namespace. */
  async startFlanneld(n: Node, extra: string[] = []): Promise<Daemon> {
    const cmd = await flanneldCommand();
    const args = [
      `--net=${n.ns}`,
      cmd.argv0,
      ...cmd.args,
      ...(this.opts.kube
        ? ['--kube-subnet-mgr', `--kube-api-url=${this.apiUrl}`, `--net-config-path=${this.netConfPath}`]
        : [`--etcd-endpoints=http://${ETCD_IP}:2379`, `--etcd-prefix=${this.prefix}`]),
      '--iface=eth0',
      `--subnet-file=${n.subnetFile}`,
      `--healthz-port=${HEALTHZ_PORT}`,
      '--iptables-resync=1',
      ...extra,
    ];
    const d = spawnDaemon('nsenter', args, { env: { ...process.env, NODE_NAME: n.name } });
    const stop = d.stop;
    d.stop = async (sig) => {
      const code = await stop(sig);
      this.daemons.delete(d);
      return code;
    };
    this.daemons.add(d);
    n.daemon = d;
    return d;
  }

  /** GET http://<node>:8081/<path> over the underlay; undefined when nothing answers. */
  async probe(n: Node, path: string): Promise<{ status: number; body: string } | undefined> {
    try {
      const res = await fetch(`http://${n.ip}:${HEALTHZ_PORT}${path}`, { signal: AbortSignal.timeout(2000) });
      return { status: res.status, body: await res.text() };
    } catch {
      return undefined;
    }
  }

  /** Polls `cond` every 100 ms until it holds; throws with `what` (and the daemon logs) after `ms`. */
  async until(what: string, cond: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (await cond()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    const logs = this.nodes.map((n) => `--- ${n.name}\n${n.daemon?.log().slice(-3000) ?? '(no daemon)'}`).join('\n');
    throw new Error(`timed out waiting for ${what}\n${logs}`);
  }

  async waitReady(n: Node): Promise<void> {
    await this.until(`${n.name} /readyz`, async () => (await this.probe(n, '/readyz'))?.status === 200);
  }

  /** The pod subnet this node wrote to subnet.env (FLANNEL_SUBNET, e.g. 10.244.7.1/24). */
  subnetOf(n: Node): string {
    const m = /^FLANNEL_SUBNET=(.+)$/m.exec(readFileSync(n.subnetFile, 'utf8'));
    if (!m) throw new Error(`${n.subnetFile} has no FLANNEL_SUBNET`);
    return m[1]!;
  }

  /** Creates a pod namespace on `n` and attaches it with the flannel CNI plugin. */
  async addPod(n: Node, name: string): Promise<Pod> {
    const ns = this.world.netns(`${n.name}-${name}`);
    const conf = {
      cniVersion: '1.0.0',
      name: 'cbr0',
      type: 'flannel',
      subnetFile: n.subnetFile,
      dataDir: join(n.dir, 'flannel-cni'),
      ipam: { dataDir: join(n.dir, 'ipam') },
      delegate: { hairpinMode: true, isDefaultGateway: true },
    };
    const env = {
      ...process.env,
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: `${n.name}-${name}`,
      CNI_NETNS: ns,
      CNI_IFNAME: 'eth0',
      CNI_PATH: join(ROOT, 'dist/bin'),
    };
    const r = sh('nsenter', [`--net=${n.ns}`, join(ROOT, 'dist/bin/flannel')], JSON.stringify(conf), env);
    if (r.status !== 0) throw new Error(`CNI ADD ${name} on ${n.name} failed (${r.status}): ${r.stdout}${r.stderr}`);
    const result = JSON.parse(r.stdout) as { ips?: { address: string }[] };
    const ip = result.ips?.[0]?.address.split('/')[0];
    if (!ip) throw new Error(`CNI ADD returned no IP: ${r.stdout}`);
    const pod = { name, ns, ip, node: n };
    this.pods.push(pod);
    return pod;
  }

  /** `ping` from a pod; returns the transmitted/received counts. */
  ping(from: Pod, to: string, args: string[] = ['-c', '3', '-i', '0.2', '-W', '2']): { sent: number; received: number; out: string } {
    const r = sh('nsenter', [`--net=${from.ns}`, 'ping', '-n', ...args, to]);
    return { ...parsePing(r.stdout), out: r.stdout + r.stderr };
  }

  /** Starts a long-running ping (SIGINT it to get the summary). */
  pingLong(from: Pod, to: string, intervalS = 0.05): { stop(): Promise<{ sent: number; received: number; out: string }> } {
    const child = spawn('nsenter', [`--net=${from.ns}`, 'ping', '-n', '-i', String(intervalS), to], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    return {
      stop: async () => {
        // nsenter execs ping, so this PID is ping's.
        if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGINT');
        await exited;
        return { ...parsePing(out), out };
      },
    };
  }

  /** A TCP round trip from one pod to another: a one-shot echo server in `to`, a client in `from`. */
  async tcpEcho(from: Pod, to: Pod, port = 8080): Promise<string> {
    const server = spawn(
      'nsenter',
      [`--net=${to.ns}`, 'node', '-e', `const s=require('net').createServer(c=>{c.pipe(c);c.on('end',()=>s.close())});s.listen(${port},'${to.ip}',()=>console.log('up'))`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        server.stdout.once('data', () => resolve());
        server.once('exit', (c) => reject(new Error(`echo server exited ${c}`)));
      });
      const r = sh('nsenter', [
        `--net=${from.ns}`,
        'node',
        '-e',
        `const c=require('net').connect(${port},'${to.ip}',()=>c.end('hello from ${from.name}'));let d='';c.on('data',x=>d+=x);c.on('close',()=>{process.stdout.write(d)});c.setTimeout(5000,()=>{c.destroy();process.exit(3)})`,
      ]);
      return r.stdout;
    } finally {
      if (server.exitCode === null && server.pid !== undefined) process.kill(server.pid, 'SIGKILL');
    }
  }

  /** Lease keys in etcd (`<prefix>/subnets/…`). */
  async leaseKeys(): Promise<string[]> {
    return this.client.getAll().prefix(`${this.prefix}/subnets/`).keys();
  }

  /** Stops every daemon, closes etcd, leaves its namespace, removes namespaces and temp files. */
  async destroy(): Promise<void> {
    const errors: unknown[] = [];
    for (const d of [...this.daemons]) await d.stop().catch((e: unknown) => errors.push(e));
    try {
      this.client?.close();
    } catch (e) {
      errors.push(e);
    }
    await this.api?.close().catch((e: unknown) => errors.push(e));
    await this.etcd?.stop().catch((e: unknown) => errors.push(e));
    this.leave?.();
    this.leave = undefined;
    await this.world.cleanup().catch((e: unknown) => errors.push(e));
    rmSync(this.dir, { recursive: true, force: true });
    if (errors.length) throw new AggregateError(errors, 'cluster cleanup failed');
  }
}

function parsePing(out: string): { sent: number; received: number } {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  return m ? { sent: Number(m[1]), received: Number(m[2]) } : { sent: 0, received: 0 };
}

/** Writes a file (for kubeconfigs etc. in a cluster's temp dir). */
export function writeTemp(dir: string, name: string, content: string): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}
