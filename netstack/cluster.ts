// The pieces of a cluster, each recorded in the state BEFORE it is made:
// namespaces and the underlay, etcd, the daemons of a node, pods (netns,
// CNI ADD through our runtime, a server, the Pod object).
//
//   <p>-underlay  bridge br0 192.0.2.1/24; this process's main thread sits
//                 here while it talks to etcd and the daemons' /healthz
//   <p>-etcd      etcd on 192.0.2.2:2379
//   <p>-external  a host outside the cluster, 192.0.2.3 (NodePort probes)
//   <p>-node-N    node hosts: eth0 192.0.2.(10+N)/24, default route via .1;
//                 flanneld, kube-proxy and netpolicy run here
//   <p>-<ns>-<pod> pods, attached by the flannel CNI plugin from the node
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { sleep } from '../lib/abort.ts';
import { NetError, errorMessage } from '../lib/errors.ts';
import { IPAddr, IPPrefix } from '../lib/ip/index.ts';
import { Handle } from '../lib/netlink/index.ts';
import { createNamedNetns, NETNS_RUN_DIR } from '../lib/netns/index.ts';
import { parseSubnetEnv } from '../lib/subnet-env.ts';
import type { V1Pod, V1Node, V1Namespace } from '../lib/kube/types.ts';
import { CniRuntime, parseConfList, processExecutor } from './cni.ts';
import type { NetConfList } from './cni.ts';
import { writeObject } from './manifests.ts';
import { startProcess } from './procs.ts';
import type { StateStore, State, NodeState, PodState, NetnsRecord, PodPort, DaemonName } from './state.ts';

export const UNDERLAY_CIDR = '192.0.2.0/24';
export const UNDERLAY_GW = '192.0.2.1';
export const ETCD_IP = '192.0.2.2';
export const EXTERNAL_IP = '192.0.2.3';
export const nodeIP = (i: number): string => `192.0.2.${10 + i}`;
export const UNDERLAY6_CIDR = '2001:db8:0:1::/64';
export const UNDERLAY6_GW = '2001:db8:0:1::1';
export const EXTERNAL_IP6 = '2001:db8:0:1::3';
export const nodeIP6 = (i: number): string => `2001:db8:0:1::${(10 + i).toString(16)}`;
export const CLUSTER_CIDR = '10.244.0.0/16';
export const CLUSTER_CIDR6 = 'fd00:10:244::/56';
export const SERVICE_CIDR = '10.96.0.0/16';
export const SERVICE_CIDR6 = 'fd00:10:96::/112';
export const ETCD_PREFIX = '/coreos.com/network';
export const HEALTHZ: Readonly<Record<DaemonName, number>> = { flanneld: 8081, 'kube-proxy': 10256, netpolicy: 10299 };
export const METRICS: Readonly<Record<DaemonName, number>> = { flanneld: 8081, 'kube-proxy': 10249, netpolicy: 9080 };

const here = dirname(fileURLToPath(import.meta.url));

/** dist/bin: beside the running executable, or the repository's when run from source. */
export function binDir(): string {
  if (process.env['NETSTACK_BIN_DIR']) return process.env['NETSTACK_BIN_DIR'];
  return existsSync(join(here, 'flanneld')) ? here : join(here, '../dist/bin');
}

/** The sample app shipped with the repository (netstack/sample). */
export function sampleDir(): string {
  return existsSync(join(here, 'flanneld')) ? join(here, '../../netstack/sample') : join(here, 'sample');
}

/** argv to run one of our Node executables with the Node running this one (the project's own Node 24). */
export function nodeArgv(exe: string, ...args: string[]): string[] {
  // Run from source (development), netstack starts itself from source too.
  if (exe === 'netstack' && existsSync(join(here, 'main.ts'))) return [process.execPath, ...process.execArgv, join(here, 'main.ts'), ...args];
  return [process.execPath, join(binDir(), exe), ...args];
}

export function netnsRecord(s: State, name: string): NetnsRecord {
  const full = `${s.prefix}-${name}`;
  if (full.length > 64) throw new NetError('INVALID_NAME', `namespace name ${full} is too long`);
  return { name: full, path: join(NETNS_RUN_DIR, full) };
}

/** Records the namespace in the state, writes it, then creates it. */
export async function makeNetns(store: StateStore, ns: NetnsRecord): Promise<void> {
  await store.update((s) => {
    if (!s.namespaces.some((n) => n.name === ns.name)) s.namespaces.push(ns);
  });
  createNamedNetns(ns.name);
}

async function withHandle<T>(path: string, fn: (h: Handle) => Promise<T>): Promise<T> {
  const h = Handle.open({ netns: path });
  try {
    return await fn(h);
  } finally {
    h.close();
  }
}

/** The underlay bridge and lo in the underlay namespace (already created). */
export async function setupUnderlay(s: State): Promise<void> {
  await withHandle(s.underlay.netns.path, async (h) => {
    await h.linkSetUp((await h.linkByName('lo')).index);
    await h.linkAdd({ name: s.underlay.bridge, kind: 'bridge', up: true });
    const br = await h.linkByName(s.underlay.bridge);
    await h.addrAdd(br.index, { address: IPPrefix.mustParse(`${UNDERLAY_GW}/24`) });
    if (s.options.dualStack) {
      h.writeSysctl(`net/ipv6/conf/${s.underlay.bridge}/accept_dad`, '0');
      await h.addrAdd(br.index, { address: IPPrefix.mustParse(`${UNDERLAY6_GW}/64`) });
    }
  });
}

/** A veth from the underlay bridge to eth0 of `ns` with the given addresses and a default route via the gateway. */
export async function attachToUnderlay(s: State, ns: NetnsRecord, peer: string, ip: string, ip6: string | undefined): Promise<void> {
  await withHandle(s.underlay.netns.path, async (hu) => {
    const br = await hu.linkByName(s.underlay.bridge);
    await withHandle(ns.path, async (h) => {
      await hu.linkAdd({ name: peer, kind: 'veth', master: br.index, up: true, veth: { peerName: 'eth0', peerNetnsFd: h.nsFd! } });
      const eth0 = await h.linkByName('eth0');
      if (ip6) h.writeSysctl('net/ipv6/conf/eth0/accept_dad', '0');
      await h.addrAdd(eth0.index, { address: IPPrefix.mustParse(`${ip}/24`) });
      if (ip6) await h.addrAdd(eth0.index, { address: IPPrefix.mustParse(`${ip6}/64`) });
      await h.linkSetUp(eth0.index);
      await h.linkSetUp((await h.linkByName('lo')).index);
      await h.routeAdd({ family: 4, dst: IPPrefix.any(4), gw: IPAddr.mustParse(UNDERLAY_GW), oif: eth0.index });
      if (ip6) await h.routeAdd({ family: 6, dst: IPPrefix.any(6), gw: IPAddr.mustParse(UNDERLAY6_GW), oif: eth0.index });
    });
  });
}

export function nodeSysctls(node: NodeState, dualStack: boolean): void {
  const h = Handle.open({ netns: node.netns.path });
  try {
    h.writeSysctl('net/ipv4/ip_forward', '1');
    if (dualStack) h.writeSysctl('net/ipv6/conf/all/forwarding', '1');
    // Pods on one bridge reach a Service endpoint on the same bridge only
    // when bridged traffic passes the node's iptables/nft (br_netfilter);
    // per namespace since Linux 5.3, and only when the module is loaded.
    for (const k of ['net/bridge/bridge-nf-call-iptables', 'net/bridge/bridge-nf-call-ip6tables']) {
      if (existsSync(join('/proc/sys', k))) h.writeSysctl(k, '1');
    }
  } finally {
    h.close();
  }
}

// ---- etcd -------------------------------------------------------------------------

export async function startEtcd(store: StateStore): Promise<void> {
  const s = store.state;
  const client = s.etcd.endpoint;
  const peer = `http://${s.etcd.ip}:2380`;
  await mkdir(s.etcd.dataDir, { recursive: true, mode: 0o700 });
  const rec = await startProcess({
    role: 'etcd',
    netns: s.etcd.netns.path,
    log: join(s.dirs.logs, 'etcd.log'),
    argv: [
      'etcd',
      '--name', 'netstack',
      '--data-dir', s.etcd.dataDir,
      '--listen-client-urls', client,
      '--advertise-client-urls', client,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `netstack=${peer}`,
      '--initial-cluster-state', 'new',
      '--log-level', 'warn',
    ],
  });
  await store.update((st) => st.procs.push(rec));
}

/** Waits for etcd (reached from the underlay) and writes the flannel network config. */
export async function writeNetConfig(s: State, timeoutMs = 30_000): Promise<void> {
  const c = new Etcd3({ hosts: s.etcd.endpoint, dialTimeout: 1000 });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await c.maintenance.status({ deadline: new Date(Date.now() + 1000) });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new NetError('ETCD_UNAVAILABLE', `etcd at ${s.etcd.endpoint} did not answer: ${errorMessage(err)}; see ${join(s.dirs.logs, 'etcd.log')}`);
        await sleep(100);
      }
    }
    await c.put(`${s.etcd.prefix}/config`).value(JSON.stringify(netConfig(s)));
  } finally {
    c.close();
  }
}

export function netConfig(s: State): Record<string, unknown> {
  const conf: Record<string, unknown> = { Network: s.clusterCIDRs[0], SubnetLen: 24, Backend: { Type: s.options.backend } };
  if (s.options.dualStack) {
    conf['EnableIPv6'] = true;
    conf['IPv6Network'] = s.clusterCIDRs[1];
    conf['IPv6SubnetLen'] = 64;
  }
  return conf;
}

/** The leases in etcd: subnet key → lease JSON. */
export async function leases(s: State): Promise<Record<string, string>> {
  const c = new Etcd3({ hosts: s.etcd.endpoint, dialTimeout: 1000 });
  try {
    return await c.getAll().prefix(`${s.etcd.prefix}/subnets/`).strings();
  } finally {
    c.close();
  }
}

// ---- daemons ------------------------------------------------------------------------

export function daemonArgv(s: State, n: NodeState, d: DaemonName): string[] {
  switch (d) {
    case 'flanneld':
      return nodeArgv(
        'flanneld',
        `--etcd-endpoints=${s.etcd.endpoint}`,
        `--etcd-prefix=${s.etcd.prefix}`,
        '--iface=eth0',
        `--public-ip=${n.ip}`,
        ...(n.ip6 ? [`--public-ipv6=${n.ip6}`] : []),
        `--subnet-file=${n.subnetFile}`,
        '--ip-masq',
        '--healthz-ip=0.0.0.0',
        `--healthz-port=${n.healthz.flanneld}`,
      );
    case 'kube-proxy':
      return nodeArgv(
        'kube-proxy',
        `--proxy-mode=${s.options.proxyMode}`,
        `--manifests=${s.dirs.manifests}`,
        `--hostname-override=${n.name}`,
        `--cluster-cidr=${s.clusterCIDRs.join(',')}`,
        `--healthz-bind-address=0.0.0.0:${n.healthz['kube-proxy']}`,
        `--metrics-bind-address=0.0.0.0:${METRICS['kube-proxy']}`,
      );
    case 'netpolicy':
      return nodeArgv(
        'netpolicy',
        `--manifests=${s.dirs.manifests}`,
        `--hostname-override=${n.name}`,
        `--backend=${s.options.policyBackend}`,
        `--healthz-bind-address=0.0.0.0:${n.healthz.netpolicy}`,
        `--metrics-bind-address=0.0.0.0:${METRICS.netpolicy}`,
      );
  }
}

export const daemonLog = (s: State, node: string, d: DaemonName): string => join(s.dirs.logs, `${node}-${d}.log`);

export async function startDaemon(store: StateStore, n: NodeState, d: DaemonName): Promise<void> {
  const s = store.state;
  const rec = await startProcess({
    role: d,
    owner: n.name,
    netns: n.netns.path,
    argv: daemonArgv(s, n, d),
    env: { ...process.env, NODE_NAME: n.name },
    log: daemonLog(s, n.name, d),
  });
  await store.update((st) => st.procs.push(rec));
}

export function logTail(path: string, bytes = 2000): string {
  try {
    const t = readFileSync(path, 'utf8');
    return t.slice(-bytes);
  } catch {
    return '(no log)';
  }
}

/** Waits for the node's subnet.env (flanneld got a lease) and returns its pod subnet(s). */
export async function waitSubnet(s: State, n: NodeState, timeoutMs = 60_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const env = parseSubnetEnv(readFileSync(n.subnetFile, 'utf8'), n.subnetFile);
      const out: string[] = [];
      if (env.subnet) out.push(env.subnet.masked().toString());
      if (env.ipv6Subnet) out.push(env.ipv6Subnet.masked().toString());
      if (out.length > 0 && (!s.options.dualStack || out.length === 2)) return out;
    } catch {
      // Not there yet.
    }
    if (Date.now() > deadline) {
      throw new NetError('FLANNELD_NO_LEASE', `flanneld on ${n.name} wrote no ${n.subnetFile} in ${timeoutMs / 1000} s:\n${logTail(daemonLog(s, n.name, 'flanneld'))}`);
    }
    await sleep(100);
  }
}

/** GET http://<node>:<port>/<path> over the underlay; undefined when nothing answers. */
export async function httpGet(ip: string, port: number, path: string, timeoutMs = 2000): Promise<{ status: number; body: string } | undefined> {
  try {
    const host = ip.includes(':') ? `[${ip}]` : ip;
    const res = await fetch(`http://${host}:${port}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, body: await res.text() };
  } catch {
    return undefined;
  }
}

export async function waitHealthy(s: State, n: NodeState, d: DaemonName, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await httpGet(n.ip, n.healthz[d], '/healthz');
    if (r?.status === 200) return;
    if (Date.now() > deadline) {
      throw new NetError('DAEMON_UNHEALTHY', `${d} on ${n.name}: /healthz ${r ? r.status : 'does not answer'} after ${timeoutMs / 1000} s:\n${logTail(daemonLog(s, n.name, d))}`);
    }
    await sleep(200);
  }
}

// ---- manifests the cluster itself owns ------------------------------------------------

export function nodeObject(n: NodeState, podCIDRs: readonly string[]): V1Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: n.name, labels: { 'kubernetes.io/hostname': n.name, 'kubernetes.io/os': 'linux' } },
    spec: { podCIDR: podCIDRs[0]!, podCIDRs: [...podCIDRs] },
    status: {
      addresses: [{ type: 'InternalIP', address: n.ip }, ...(n.ip6 ? [{ type: 'InternalIP', address: n.ip6 }] : []), { type: 'Hostname', address: n.name }],
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  };
}

export function namespaceObject(name: string): V1Namespace {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name } } };
}

// ---- pods ----------------------------------------------------------------------------

export function conflists(n: NodeState): { pod: NetConfList; lo: NetConfList } {
  const pod = parseConfList(
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'cbr0',
      plugins: [
        {
          type: 'flannel',
          subnetFile: n.subnetFile,
          dataDir: join(n.dir, 'flannel-cni'),
          ipam: { dataDir: join(n.dir, 'ipam') },
          delegate: { hairpinMode: true, isDefaultGateway: true },
        },
      ],
    }),
  );
  const lo = parseConfList(JSON.stringify({ cniVersion: '1.0.0', name: 'lo', plugins: [{ type: 'loopback' }] }));
  return { pod, lo };
}

export async function writeConflists(s: State, n: NodeState): Promise<void> {
  const { pod, lo } = conflists(n);
  const dir = join(s.dirs.cniConf, n.name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, '10-flannel.conflist'), JSON.stringify(pod, null, 2) + '\n');
  await writeFile(join(dir, '99-loopback.conflist'), JSON.stringify(lo, null, 2) + '\n');
}

export function cniRuntime(s: Pick<State, 'cniPath'>, n: NodeState): CniRuntime {
  return new CniRuntime([s.cniPath], join(n.dir, 'cni-cache'), processExecutor({ nodeNetns: n.netns.path }));
}

export function rtConf(p: Pick<PodState, 'containerId' | 'netns' | 'namespace' | 'name'>, ifName: string): { containerId: string; netns: string; ifName: string; args: [string, string][] } {
  return {
    containerId: p.containerId,
    netns: p.netns.path,
    ifName,
    args: [
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAMESPACE', p.namespace],
      ['K8S_POD_NAME', p.name],
      ['K8S_POD_INFRA_CONTAINER_ID', p.containerId],
    ],
  };
}

export function podPorts(pod: V1Pod): PodPort[] {
  const out: PodPort[] = [];
  for (const c of pod.spec?.containers ?? []) {
    for (const p of c.ports ?? []) {
      const protocol = p.protocol === 'UDP' ? 'UDP' : 'TCP';
      if (p.protocol === 'SCTP') continue;
      if (!out.some((x) => x.port === p.containerPort && x.protocol === protocol)) out.push({ ...(p.name ? { name: p.name } : {}), port: p.containerPort, protocol });
    }
  }
  return out;
}

/** Round-robin placement: the node of the i-th pod. */
export function placeNode(nodes: readonly NodeState[], pod: V1Pod, i: number): NodeState {
  const wanted = pod.spec?.nodeName;
  if (wanted) {
    const n = nodes.find((x) => x.name === wanted);
    if (!n) throw new NetError('INVALID_MANIFEST', `Pod ${pod.metadata?.namespace}/${pod.metadata?.name}: spec.nodeName ${wanted} is not a node of this cluster`);
    return n;
  }
  return nodes[i % nodes.length]!;
}

/**
 * Creates one pod: its netns (recorded first), CNI ADD of lo and eth0, a
 * server on its container ports, and the Pod object with status.
 */
export async function createPod(store: StateStore, manifest: V1Pod, node: NodeState, log: (msg: string) => void): Promise<PodState> {
  const s = store.state;
  const namespace = manifest.metadata?.namespace ?? 'default';
  const name = manifest.metadata?.name;
  if (!name) throw new NetError('INVALID_MANIFEST', 'a Pod without metadata.name');
  if (s.pods.some((p) => p.namespace === namespace && p.name === name)) throw new NetError('POD_EXISTS', `Pod ${namespace}/${name} exists already`);
  const netns = netnsRecord(s, `${namespace}-${name}`.slice(0, 40));
  const pod: PodState = {
    namespace,
    name,
    labels: { ...(manifest.metadata?.labels ?? {}) },
    node: node.name,
    netns,
    containerId: `${s.prefix}-${namespace}-${name}`,
    ips: [],
    ports: podPorts(manifest),
  };
  await store.update((st) => st.pods.push(pod));
  await makeNetns(store, netns);
  const rt = cniRuntime(s, node);
  const { pod: list, lo } = conflists(node);
  await rt.add(lo, rtConf(pod, 'lo'));
  const result = (await rt.add(list, rtConf(pod, 'eth0'))) as { ips?: { address: string }[] };
  const ips = (result.ips ?? []).map((x) => x.address.split('/')[0]!).sort((a, b) => Number(a.includes(':')) - Number(b.includes(':')));
  if (ips.length === 0) throw new NetError('CNI_NO_IP', `CNI ADD of ${namespace}/${name} returned no IP: ${JSON.stringify(result)}`);
  pod.ips = ips;
  await store.update();
  const tcp = pod.ports.filter((p) => p.protocol === 'TCP').map((p) => String(p.port));
  const udp = pod.ports.filter((p) => p.protocol === 'UDP').map((p) => String(p.port));
  const rec = await startProcess({
    role: 'server',
    owner: `${namespace}/${name}`,
    netns: netns.path,
    argv: nodeArgv('netstack', 'serve', '--name', `${namespace}/${name}`, '--tcp', tcp.join(','), '--udp', udp.join(',')),
    log: join(s.dirs.logs, `pod-${namespace}-${name}.log`),
  });
  await store.update((st) => st.procs.push(rec));
  const obj: V1Pod = structuredClone(manifest);
  obj.apiVersion = 'v1';
  obj.kind = 'Pod';
  obj.metadata = { ...obj.metadata, name, namespace };
  obj.spec = { ...(obj.spec ?? { containers: [] }), nodeName: node.name };
  obj.status = {
    phase: 'Running',
    hostIP: node.ip,
    hostIPs: [{ ip: node.ip }, ...(node.ip6 ? [{ ip: node.ip6 }] : [])],
    podIP: ips[0]!,
    podIPs: ips.map((ip) => ({ ip })),
    conditions: [{ type: 'Ready', status: 'True' }],
  };
  pod.manifest = await writeObject(s.dirs.manifests, 'Pod', obj);
  await store.update();
  log(`  pod ${namespace}/${name} on ${node.name}: ${ips.join(', ')}`);
  return pod;
}

/** Waits until kube-proxy and netpolicy on the node have each finished a sync (their /metrics say so). */
export async function waitFirstSync(s: State, n: NodeState, timeoutMs = 60_000): Promise<void> {
  const probes: [DaemonName, string][] = [
    ['kube-proxy', 'kubeproxy_sync_proxy_rules_last_timestamp_seconds'],
    ['netpolicy', 'netpolicy_sync_duration_seconds_count'],
  ];
  const deadline = Date.now() + timeoutMs;
  for (const [d, metric] of probes) {
    for (;;) {
      const r = await httpGet(n.ip, METRICS[d], '/metrics');
      if (r?.status === 200 && metricSum(r.body, metric) > 0) break;
      if (Date.now() > deadline) throw new NetError('DAEMON_NO_SYNC', `${d} on ${n.name} has not synced in ${timeoutMs / 1000} s:\n${logTail(daemonLog(s, n.name, d))}`);
      await sleep(100);
    }
  }
}

/** Sum of a metric's samples (all label sets) in Prometheus text. */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) sum += v;
  }
  return sum;
}
