// kube-proxy --proxy-mode ipvs end to end, on the test VM's real ip_vs:
// two node namespaces on a veth underlay (198.51.100.0/24) with an external
// host, pods attached by our bridge + host-local CNI plugins (dist/bin),
// host-gw routes between the pod subnets, and dist/bin/kube-proxy in each
// node with --manifests (endpoints derived from Pods). Echo servers in the
// pods answer "<name> <client address>". Kept small: the VM is emulated.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../../lib/exec.ts';
import { IPAddr, IPPrefix } from '../../../lib/ip/index.ts';
import type { Handle } from '../../../lib/netlink/index.ts';
import { openIpvs } from '../../../lib/netlink/ipvs.ts';
import { spawnDaemon, type Daemon } from '../../harness/cluster.ts';
import { cniEnv, cniOk, inNs, OUR_BIN } from '../../harness/cni.ts';
import { World } from '../../harness/world.ts';

const KUBE_PROXY = join(OUR_BIN, 'kube-proxy');
const nodeIP = (i: number): string => `198.51.100.${10 + i}`;
const EXTERNAL_IP = '198.51.100.100';
const WEB_VIP = '172.30.0.10';
const LOCAL_VIP = '172.30.0.11';
const STICKY_VIP = '172.30.0.12';
const EMPTY_VIP = '172.30.0.13';

// TCP and UDP echo on 8080; on 8081 a TCP server that keeps connections open.
const SERVER = `
import net from 'node:net';
import dgram from 'node:dgram';
const name = process.argv[2];
net.createServer((s) => { s.end(name + ' ' + s.remoteAddress + '\\n'); s.on('error', () => {}); }).listen(8080, '0.0.0.0');
net.createServer((s) => { s.write(name + '\\n'); s.on('error', () => {}); }).listen(8081, '0.0.0.0');
const u = dgram.createSocket('udp4');
u.on('message', (_m, r) => u.send(name + ' ' + r.address, r.port, r.address));
u.bind(8080, '0.0.0.0', () => process.stdout.write('ready\\n'));
`;

// "tcp HOST PORT N" | "udp HOST PORT N" | "hold HOST PORT": JSON answers ("ERR <code>" per failure);
// hold prints the first answer, keeps the connection until stdin closes, then resets it.
const CLIENT = `
import net from 'node:net';
import dgram from 'node:dgram';
const [mode, host, port, n] = process.argv.slice(2);
const tcp = () => new Promise((res) => {
  const s = net.connect({ host, port: Number(port) });
  let d = '';
  s.setTimeout(2500, () => { s.destroy(); res('ERR ETIMEDOUT'); });
  s.on('data', (x) => (d += x));
  s.on('end', () => res(d.trim()));
  s.on('error', (e) => res('ERR ' + e.code));
});
const udp = () => new Promise((res) => {
  const u = dgram.createSocket('udp4');
  const t = setTimeout(() => { u.close(); res('ERR ETIMEDOUT'); }, 2500);
  u.on('message', (m) => { clearTimeout(t); u.close(); res(m.toString()); });
  u.on('error', (e) => { clearTimeout(t); res('ERR ' + e.code); });
  u.bind(0, () => u.send('hi', Number(port), host));
});
if (mode === 'hold') {
  const s = net.connect({ host, port: Number(port) });
  s.once('data', (d) => process.stdout.write(d.toString()));
  s.on('error', (e) => process.stdout.write('ERR ' + e.code + '\\n'));
  process.stdin.on('end', () => s.resetAndDestroy());
  process.stdin.resume();
} else {
  const out = [];
  for (let i = 0; i < Number(n); i++) out.push(mode === 'tcp' ? await tcp() : await udp());
  console.log(JSON.stringify(out));
}
`;

interface PodDef {
  readonly name: string;
  readonly node: number;
  readonly labels: Record<string, string>;
  ns: string;
  ip: string;
}

const w = new World('kpv');
const tmp = mkdtempSync(join(tmpdir(), 'kn-kpv-'));
const manifests = join(tmp, 'manifests');
const proxies = new Map<number, Daemon>();
const pods: PodDef[] = [
  { name: 'web-1a', node: 1, labels: { app: 'web', side: 'one' }, ns: '', ip: '' },
  { name: 'web-2a', node: 2, labels: { app: 'web', side: 'two' }, ns: '', ip: '' },
  { name: 'client-1', node: 1, labels: { app: 'client' }, ns: '', ip: '' },
  { name: 'client-2', node: 2, labels: { app: 'client' }, ns: '', ip: '' },
];
const pod = (name: string): PodDef => pods.find((p) => p.name === name)!;
const nodeNs: string[] = [];
let external = '';
const short = (ns: string): string => ns.split('/').pop()!;

function manifest(file: string, docs: readonly object[]): void {
  const path = join(manifests, file);
  writeFileSync(`${path}.tmp`, docs.map((d) => JSON.stringify(d)).join('\n---\n'));
  renameSync(`${path}.tmp`, path);
}
const podObject = (p: PodDef): object => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: p.name, namespace: 'default', labels: p.labels },
  spec: { nodeName: `node-${p.node}`, containers: [{ name: 'c', image: 'x' }] },
  status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }], conditions: [{ type: 'Ready', status: 'True' }] },
});
const service = (name: string, spec: object): object => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec });

async function client(ns: string, ...args: string[]): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'exec', short(ns), process.execPath, join(tmp, 'client.mjs'), ...args]);
  return JSON.parse(stdout) as string[];
}
const names = (answers: readonly string[]): Set<string> => new Set(answers.map((a) => a.split(' ')[0]!));

async function eventually(fn: () => Promise<boolean>): Promise<void> {
  for (;;) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The real servers (address:port/weight) of a virtual server in a node, from the kernel. */
async function realServers(node: number, vip: string, port: number): Promise<string[]> {
  const h = await openIpvs({ netns: nodeNs[node - 1]! });
  try {
    const key = { family: 4 as const, address: IPAddr.mustParse(vip), protocol: 'tcp' as const, port };
    return (await h.destinations(key)).map((d) => `${d.address}:${d.port}/${d.weight}`).sort();
  } finally {
    h.close();
  }
}

async function underlay(): Promise<void> {
  const hu = w.handle(w.netns('u'));
  await hu.linkAdd({ name: 'br0', kind: 'bridge', up: true });
  const br = await hu.linkByName('br0');
  const attach = async (h: Handle, peer: string, ip: string): Promise<void> => {
    await h.linkAdd({ name: 'eth0', kind: 'veth', veth: { peerName: peer, peerNetnsFd: hu.nsFd! } });
    const up = await hu.linkByName(peer);
    await hu.linkSetMaster(up.index, br.index);
    await hu.linkSetUp(up.index);
    const eth = await h.linkByName('eth0');
    await h.addrAdd(eth.index, { address: IPPrefix.mustParse(`${ip}/24`) });
    await h.linkSetUp(eth.index);
    await h.linkSetUp((await h.linkByName('lo')).index);
  };
  for (const i of [1, 2]) {
    const ns = w.netns(`n${i}`);
    nodeNs.push(ns);
    const h = w.handle(ns);
    await attach(h, `u${i}`, nodeIP(i));
    const other = i === 1 ? 2 : 1;
    await h.routeAdd({ family: 4, dst: IPPrefix.mustParse(`10.244.${other}.0/24`), gw: IPAddr.mustParse(nodeIP(other)) });
    await h.routeAdd({ family: 4, dst: IPPrefix.any(4), gw: IPAddr.mustParse(EXTERNAL_IP) });
  }
  external = w.netns('x');
  await attach(w.handle(external), 'ux', EXTERNAL_IP);
}

async function attachPods(): Promise<void> {
  for (const p of pods) {
    p.ns = w.netns(p.name);
    const node = nodeNs[p.node - 1]!;
    const conf = {
      cniVersion: '1.0.0',
      name: 'kpvnet',
      type: 'bridge',
      bridge: 'cni0',
      isGateway: true,
      isDefaultGateway: true,
      ipMasq: false,
      hairpinMode: true,
      ipam: { type: 'host-local', subnet: `10.244.${p.node}.0/24`, dataDir: join(tmp, `ipam-${p.node}`) },
    };
    const r = await cniOk({ node, plugin: join(OUR_BIN, 'bridge'), env: cniEnv('ADD', `cid-${p.name}`, p.ns, 'eth0', OUR_BIN), stdin: conf });
    p.ip = String(r.json.ips[0].address).split('/')[0]!;
    w.onCleanup(async () => {
      await cniOk({ node, plugin: join(OUR_BIN, 'bridge'), env: cniEnv('DEL', `cid-${p.name}`, p.ns, 'eth0', OUR_BIN), stdin: conf });
    });
  }
  // Replies between pods on one bridge must pass IPVS to be un-NATed.
  for (const ns of nodeNs) {
    if (existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables')) await inNs(ns, 'sh', '-c', 'echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables');
  }
}

function startProxy(i: number): Daemon {
  const d = spawnDaemon(
    'ip',
    [
      'netns', 'exec', short(nodeNs[i - 1]!), KUBE_PROXY,
      '--proxy-mode=ipvs', '--manifests', manifests, `--hostname-override=node-${i}`, '--cluster-cidr=10.244.0.0/16',
      '--ipvs-min-sync-period=0', '--ipvs-sync-period=2s', '-v=2',
    ],
    { env: process.env },
  );
  proxies.set(i, d);
  return d;
}

const WEB = service('web', {
  type: 'NodePort',
  clusterIP: WEB_VIP,
  clusterIPs: [WEB_VIP],
  selector: { app: 'web' },
  ports: [
    { name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30080 },
    { name: 'udp', port: 53, targetPort: 8080, protocol: 'UDP', nodePort: 30053 },
    { name: 'hold', port: 81, targetPort: 8081, protocol: 'TCP' },
  ],
});
const LOCAL = service('local', {
  type: 'NodePort',
  clusterIP: LOCAL_VIP,
  clusterIPs: [LOCAL_VIP],
  externalTrafficPolicy: 'Local',
  selector: { side: 'one' },
  ports: [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30081 }],
});
const STICKY = service('sticky', {
  clusterIP: STICKY_VIP,
  clusterIPs: [STICKY_VIP],
  sessionAffinity: 'ClientIP',
  sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } },
  selector: { app: 'web' },
  ports: [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' }],
});
const EMPTY = service('empty', { clusterIP: EMPTY_VIP, clusterIPs: [EMPTY_VIP], selector: { app: 'nothing' }, ports: [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' }] });

describe('kube-proxy e2e (ipvs mode, real ip_vs)', () => {
  beforeAll(async () => {
    writeFileSync(join(tmp, 'server.mjs'), SERVER);
    writeFileSync(join(tmp, 'client.mjs'), CLIENT);
    await run('mkdir', ['-p', manifests]);
    await underlay();
    await attachPods();
    for (const p of pods.filter((x) => x.labels.app === 'web')) {
      const d = spawnDaemon('ip', ['netns', 'exec', short(p.ns), process.execPath, join(tmp, 'server.mjs'), p.name], { env: process.env });
      w.onCleanup(async () => void (await d.stop()));
    }
    for (const p of pods.filter((x) => x.labels.app === 'web')) {
      await eventually(async () => (await client(pod('client-1').ns, 'tcp', p.ip, '8080', '1'))[0]?.startsWith(p.name) ?? false);
    }
    manifest('nodes.yaml', [1, 2].map((i) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name: `node-${i}` }, status: { addresses: [{ type: 'InternalIP', address: nodeIP(i) }] } })));
    manifest('pods.yaml', pods.filter((p) => p.labels.app === 'web').map(podObject));
    manifest('services.yaml', [WEB, LOCAL, STICKY, EMPTY]);
    startProxy(1);
    startProxy(2);
    for (const c of ['client-1', 'client-2']) {
      await eventually(async () => names(await client(pod(c).ns, 'tcp', WEB_VIP, '80', '4')).size === 2);
    }
  }, 280_000);

  afterAll(async () => {
    if (process.env.KP_DEBUG) for (const [i, d] of proxies) process.stderr.write(`--- kube-proxy node-${i}\n${d.log()}\n`);
    try {
      for (const d of proxies.values()) await d.stop();
      await w.cleanup();
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 120_000);

  it('ClusterIP TCP and UDP from pods on both nodes reach both backends through IPVS', async () => {
    for (const c of ['client-1', 'client-2']) {
      const t = await client(pod(c).ns, 'tcp', WEB_VIP, '80', '6');
      expect(t.filter((a) => a.startsWith('ERR'))).toEqual([]);
      expect(names(t)).toEqual(new Set(['web-1a', 'web-2a']));
      const u = await client(pod(c).ns, 'udp', WEB_VIP, '53', '6');
      expect(u.filter((a) => a.startsWith('ERR'))).toEqual([]);
      expect(names(u)).toEqual(new Set(['web-1a', 'web-2a']));
      // Pod to pod through the VIP keeps the client's address.
      expect(t.every((a) => a.endsWith(pod(c).ip))).toBe(true);
    }
    const stdout = await inNs(nodeNs[0]!, 'ip', '-o', 'addr', 'show', 'dev', 'kube-ipvs0');
    expect(stdout).toContain(`${WEB_VIP}/32`);
  });

  it('NodePort from the external host reaches both backends, masqueraded', async () => {
    const got = await client(external, 'tcp', nodeIP(1), '30080', '6');
    expect(got.filter((a) => a.startsWith('ERR'))).toEqual([]);
    expect(names(got)).toEqual(new Set(['web-1a', 'web-2a']));
    // web-2a is on the other node: it sees node-1's address, not the client's.
    expect(got.filter((a) => a.startsWith('web-2a')).every((a) => a.endsWith(nodeIP(1)))).toBe(true);
  });

  it('externalTrafficPolicy Local: the client address is kept on a node with the endpoint; a node without one drops', async () => {
    const here = await client(external, 'tcp', nodeIP(1), '30081', '3');
    expect(here).toEqual(Array(3).fill(`web-1a ${EXTERNAL_IP}`));
    expect(await client(external, 'tcp', nodeIP(2), '30081', '1')).toEqual(['ERR ETIMEDOUT']);
    // Pods on that node still reach the service (through the cluster endpoints).
    expect(names(await client(pod('client-2').ns, 'tcp', nodeIP(2), '30081', '2'))).toEqual(new Set(['web-1a']));
  });

  it('session affinity sticks to one backend', async () => {
    for (const c of ['client-1', 'client-2']) expect(names(await client(pod(c).ns, 'tcp', STICKY_VIP, '80', '6')).size).toBe(1);
  });

  it('a Service without endpoints refuses connections at once', async () => {
    expect(await client(pod('client-1').ns, 'tcp', EMPTY_VIP, '80', '2')).toEqual(['ERR ECONNREFUSED', 'ERR ECONNREFUSED']);
    // Another port of a service IP is refused too (KUBE-IPVS-FILTER).
    expect(await client(pod('client-1').ns, 'tcp', WEB_VIP, '22', '1')).toEqual(['ERR ECONNREFUSED']);
  });

  it('endpoint removal and addition take effect; a removed TCP real server drains at weight 0 until its connection ends', async () => {
    const web2 = pod('web-2a');
    // A connection held through the VIP to each backend (rr alternates).
    const holds: ChildProcess[] = [];
    const held = new Set<string>();
    for (let i = 0; i < 4 && held.size < 2; i++) {
      const c = spawn('ip', ['netns', 'exec', short(pod('client-1').ns), process.execPath, join(tmp, 'client.mjs'), 'hold', WEB_VIP, '81'], { stdio: ['pipe', 'pipe', 'ignore'] });
      holds.push(c);
      const first = await new Promise<string>((res) => c.stdout!.once('data', (d: Buffer) => res(d.toString().trim())));
      held.add(first);
    }
    try {
      expect(held).toEqual(new Set(['web-1a', 'web-2a']));
      manifest('pods.yaml', [podObject(pod('web-1a'))]);
      await eventually(async () => {
        const rs = await realServers(1, WEB_VIP, 81);
        return rs.includes(`${web2.ip}:8081/0`);
      });
      expect(await realServers(1, WEB_VIP, 81)).toEqual([`${pod('web-1a').ip}:8081/1`, `${web2.ip}:8081/0`]);
      // New connections go to the remaining backend only.
      expect(names(await client(pod('client-1').ns, 'tcp', WEB_VIP, '80', '4'))).toEqual(new Set(['web-1a']));
    } finally {
      for (const c of holds) c.stdin!.end();
    }
    // Reset connections expire from IPVS (CLOSE state, 10 s), then the periodic sync deletes the real server.
    await eventually(async () => (await realServers(1, WEB_VIP, 81)).length === 1);
    expect(await realServers(1, WEB_VIP, 81)).toEqual([`${pod('web-1a').ip}:8081/1`]);
    manifest('pods.yaml', pods.filter((p) => p.labels.app === 'web').map(podObject));
    await eventually(async () => names(await client(pod('client-1').ns, 'tcp', WEB_VIP, '80', '4')).size === 2);
  });

  it('--cleanup leaves no IPVS state behind: no virtual server, no kube-ipvs0, no ipset, no KUBE chain', async () => {
    for (const [i, d] of proxies) {
      await d.stop();
      proxies.delete(i);
      const ns = short(nodeNs[i - 1]!);
      await run('ip', ['netns', 'exec', ns, KUBE_PROXY, '--cleanup']);
      const h = await openIpvs({ netns: nodeNs[i - 1]! });
      try {
        expect(await h.services()).toEqual([]);
      } finally {
        h.close();
      }
      expect((await run('ip', ['netns', 'exec', ns, 'ip', '-o', 'link'])).stdout).not.toContain('kube-ipvs0');
      expect((await run('ip', ['netns', 'exec', ns, 'ipset', 'list', '-n'])).stdout.trim()).toBe('');
      expect((await run('ip', ['netns', 'exec', ns, 'iptables-save'])).stdout).not.toMatch(/KUBE-(?!FIREWALL)/);
    }
  }, 120_000);
});
