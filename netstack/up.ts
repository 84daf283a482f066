// `netstack up`: builds the cluster step by step, writing the state before
// each resource is made, so that `down` finds everything even after a
// crash or kill -9 midway.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { NetError } from '../lib/errors.ts';
import { enterNetns } from '../lib/netns/index.ts';
import {
  CLUSTER_CIDR,
  CLUSTER_CIDR6,
  ETCD_IP,
  ETCD_PREFIX,
  EXTERNAL_IP,
  EXTERNAL_IP6,
  HEALTHZ,
  SERVICE_CIDR,
  SERVICE_CIDR6,
  UNDERLAY6_CIDR,
  UNDERLAY_CIDR,
  UNDERLAY_GW,
  attachToUnderlay,
  binDir,
  makeNetns,
  namespaceObject,
  netnsRecord,
  nodeIP,
  nodeIP6,
  nodeObject,
  nodeSysctls,
  sampleDir,
  setupUnderlay,
  startDaemon,
  startEtcd,
  waitFirstSync,
  waitHealthy,
  waitSubnet,
  writeConflists,
  writeNetConfig,
} from './cluster.ts';
import { applyObjects } from './apply.ts';
import { readObjects, writeObject } from './manifests.ts';
import { ensureTools, requiredTools } from './tools.ts';
import { STATE_VERSION, StateStore, loadState } from './state.ts';
import type { NodeState, State, UpOptions } from './state.ts';

export interface UpArgs extends UpOptions {
  readonly stateDir: string;
  /** The app to deploy (default: the sample app). */
  readonly manifests?: string;
  readonly log: (msg: string) => void;
}

export function validateUpOptions(o: UpOptions): void {
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes > 50) throw new NetError('INVALID_CONFIG', `--nodes must be 1..50, not ${o.nodes}`);
  if (!['vxlan', 'host-gw', 'udp'].includes(o.backend)) throw new NetError('INVALID_CONFIG', `--backend must be vxlan, host-gw or udp, not ${o.backend}`);
  if (!['iptables', 'nftables', 'ipvs'].includes(o.proxyMode)) throw new NetError('INVALID_CONFIG', `--proxy-mode must be iptables, nftables or ipvs, not ${o.proxyMode}`);
  if (!['nftables', 'iptables'].includes(o.policyBackend)) throw new NetError('INVALID_CONFIG', `--policy-backend must be nftables or iptables, not ${o.policyBackend}`);
}

/** The initial state of a new cluster (nothing made yet). */
export function initialState(stateDir: string, o: UpOptions, prefix = `ns${randomBytes(3).toString('hex')}`): State {
  const dir = resolve(stateDir);
  const rec = (name: string): { name: string; path: string } => ({ name: `${prefix}-${name}`, path: `/var/run/netns/${prefix}-${name}` });
  return {
    version: STATE_VERSION,
    prefix,
    stateDir: dir,
    createdAt: new Date().toISOString(),
    options: { ...o },
    phase: 'creating',
    namespaces: [],
    underlay: { netns: rec('underlay'), bridge: 'br0', cidrs: o.dualStack ? [UNDERLAY_CIDR, UNDERLAY6_CIDR] : [UNDERLAY_CIDR], gateway: UNDERLAY_GW },
    etcd: { netns: rec('etcd'), ip: ETCD_IP, endpoint: `http://${ETCD_IP}:2379`, prefix: ETCD_PREFIX, dataDir: join(dir, 'etcd') },
    external: { netns: rec('external'), ip: EXTERNAL_IP, ...(o.dualStack ? { ip6: EXTERNAL_IP6 } : {}) },
    clusterCIDRs: o.dualStack ? [CLUSTER_CIDR, CLUSTER_CIDR6] : [CLUSTER_CIDR],
    serviceCIDRs: o.dualStack ? [SERVICE_CIDR, SERVICE_CIDR6] : [SERVICE_CIDR],
    cniPath: binDir(),
    dirs: { manifests: join(dir, 'manifests'), logs: join(dir, 'logs'), cniConf: join(dir, 'net.d'), nodes: join(dir, 'nodes') },
    nodes: [],
    pods: [],
    procs: [],
  };
}

export async function up(a: UpArgs): Promise<State> {
  validateUpOptions(a);
  if (process.getuid?.() !== 0) throw new NetError('EPERM', 'netstack up needs root (it creates network namespaces)');
  ensureTools(requiredTools(a));
  const existing = await loadState(a.stateDir);
  if (existing) throw new NetError('CLUSTER_EXISTS', `a cluster (${existing.prefix}) is recorded in ${a.stateDir}: run netstack down --state-dir ${a.stateDir} first`);
  const foreign = (await readdir(a.stateDir).catch(() => [] as string[])).filter((f) => !f.startsWith('.'));
  if (foreign.length > 0) throw new NetError('STATE_DIR_NOT_EMPTY', `${a.stateDir} holds files that are not a cluster's (${foreign.slice(0, 3).join(', ')}): choose an empty or new --state-dir`);
  const appDir = a.manifests ?? sampleDir();
  if (!existsSync(appDir)) throw new NetError('MANIFEST_NOT_FOUND', `no app manifests at ${appDir} (pass --manifests DIR)`);
  const app = await readObjects(appDir);

  const s = initialState(a.stateDir, a);
  const store = new StateStore(s);
  await store.update();
  for (const d of Object.values(s.dirs)) await mkdir(d, { recursive: true });
  const t0 = performance.now();
  // Progress with the time since start, so a slow step shows itself.
  const log = (msg: string): void => a.log(msg.startsWith('  ') ? msg : `[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${msg}`);
  log(`netstack up: run ${s.prefix}, ${a.nodes} nodes, backend ${a.backend}, proxy ${a.proxyMode}, policy ${a.policyBackend}${a.dualStack ? ', dual-stack' : ''}; state in ${s.stateDir}`);

  log('underlay: bridge, etcd host, external host');
  await makeNetns(store, s.underlay.netns);
  await setupUnderlay(s);
  await makeNetns(store, s.etcd.netns);
  await attachToUnderlay(s, s.etcd.netns, 'ul-etcd', ETCD_IP, undefined);
  await makeNetns(store, s.external.netns);
  await attachToUnderlay(s, s.external.netns, 'ul-ext', EXTERNAL_IP, s.external.ip6);

  for (let i = 1; i <= a.nodes; i++) {
    const name = `node-${i}`;
    const dir = join(s.dirs.nodes, name);
    const n: NodeState = {
      name,
      netns: netnsRecord(s, name),
      ip: nodeIP(i),
      ...(a.dualStack ? { ip6: nodeIP6(i) } : {}),
      dir,
      subnetFile: join(dir, 'run/flannel/subnet.env'),
      healthz: HEALTHZ,
    };
    await store.update((st) => st.nodes.push(n));
    await makeNetns(store, n.netns);
    await attachToUnderlay(s, n.netns, `ul-${name}`, n.ip, n.ip6);
    nodeSysctls(n, a.dualStack);
    await mkdir(join(dir, 'run/flannel'), { recursive: true });
    await writeConflists(s, n);
  }
  log(`nodes: ${s.nodes.map((n) => `${n.name} ${n.ip}`).join(', ')}`);

  // From here this process talks to etcd and the daemons over the underlay.
  const leave = enterNetns(s.underlay.netns.path);
  try {
    log(`etcd: ${s.etcd.endpoint}`);
    await startEtcd(store);
    await writeNetConfig(s);

    log(`flanneld (${a.backend}) on every node`);
    for (const n of s.nodes) await startDaemon(store, n, 'flanneld');
    const podCIDRs = new Map<string, string[]>();
    for (const n of s.nodes) podCIDRs.set(n.name, await waitSubnet(s, n));
    for (const n of s.nodes) log(`  ${n.name}: pod subnet ${podCIDRs.get(n.name)!.join(', ')}`);

    // What the API would hold before any app: the nodes, the app's namespaces.
    for (const n of s.nodes) await writeObject(s.dirs.manifests, 'Node', nodeObject(n, podCIDRs.get(n.name)!));
    const namespaces = new Set<string>(['default']);
    for (const o of app) if (o.kind !== 'Namespace' && o.obj.metadata?.namespace) namespaces.add(o.obj.metadata.namespace);
    for (const ns of namespaces) if (!app.some((o) => o.kind === 'Namespace' && o.obj.metadata?.name === ns)) await writeObject(s.dirs.manifests, 'Namespace', namespaceObject(ns));

    log(`app from ${appDir}`);
    await applyObjects(store, app, log, { waitSync: false });

    // Started once the manifest directory is complete: their first sync has
    // every Pod, Service and policy of the app.
    log(`kube-proxy (${a.proxyMode}) and netpolicy (${a.policyBackend}) on every node`);
    for (const n of s.nodes) {
      await startDaemon(store, n, 'kube-proxy');
      await startDaemon(store, n, 'netpolicy');
    }
    for (const n of s.nodes) {
      await waitHealthy(s, n, 'flanneld');
      await waitHealthy(s, n, 'kube-proxy');
      await waitHealthy(s, n, 'netpolicy');
      await waitFirstSync(s, n);
    }
    await store.update((st) => {
      st.phase = 'ready';
    });
    log('ready');
  } finally {
    leave();
  }
  a.log(summary(s, a.stateDir));
  return s;
}

export function summary(s: State, stateDir: string): string {
  const sd = stateDir === '/run/netstack' ? '' : ` --state-dir ${stateDir}`;
  const lines = [
    '',
    `cluster ${s.prefix} is up:`,
    ...s.nodes.map((n) => `  node ${n.name}  ${[n.ip, n.ip6].filter(Boolean).join(' ')}  netns ${n.netns.name}`),
    ...s.pods.map((p) => `  pod  ${p.namespace}/${p.name}  ${p.ips.join(' ')}  on ${p.node}`),
    `  external host ${s.external.ip} (netns ${s.external.netns.name}), etcd ${s.etcd.endpoint}`,
    `  manifests ${s.dirs.manifests}  logs ${s.dirs.logs}`,
    '',
    `next: netstack status${sd} | netstack check${sd} | netstack exec${sd} POD -- CMD | netstack down${sd}`,
  ];
  return lines.join('\n');
}
