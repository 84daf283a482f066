// Kubernetes subnet manager (flanneld --kube-subnet-mgr): the lease is the
// node's spec.podCIDR(s), published attributes live in node annotations
// under `<prefix>/…`, and peers come from a Node informer. Same annotation
// names and JSON as upstream; unlike upstream, a podCIDR change or a peer
// losing its annotations produces removed/added events, and the pod CIDR
// is checked against the config for every family we run.
import { readFile } from 'node:fs/promises';
import { sleep, untilAborted } from '../../lib/abort.ts';
import { AsyncQueue } from '../../lib/async.ts';
import { retry } from '../../lib/daemon/retry.ts';
import { NetError, errorMessage } from '../../lib/errors.ts';
import { KubeClient, PODS, isKubeTransient, loadKubeConfig, nodeSource } from '../../lib/kube/index.ts';
import type { NodeSource, V1Node, V1Pod } from '../../lib/kube/index.ts';
import { parseNetworkConfig } from '../config.ts';
import { getFold } from './types.ts';
import type { Lease, LeaseAttrs, LeaseEvent, LeaseWatchResult, NetworkConfig, SubnetManager } from './types.ts';
import { IPPrefix, families, type Family } from '../../lib/ip/index.ts';

export const DEFAULT_ANNOTATION_PREFIX = 'flannel.alpha.coreos.com';

export class KubeSubnetError extends NetError {}

// ------------------------------------------------------------ annotations

export interface Annotations {
  kubeSubnetManager: string;
  backendType: string;
  backendData: string;
  backendV6Data: string;
  publicIP: string;
  publicIPv6: string;
  publicIPOverwrite: string;
  publicIPv6Overwrite: string;
  nodePublicIP: string;
  nodePublicIPv6: string;
}

/** Annotation names for a prefix (`--kube-annotation-prefix`), with upstream's rules: at most one "/", "/" appended when absent. */
export function annotationNames(prefix: string = DEFAULT_ANNOTATION_PREFIX): Annotations {
  const slashes = prefix.split('/').length - 1;
  if (slashes > 1) throw new KubeSubnetError('INVALID_ANNOTATION_PREFIX', 'subnet/kube: prefix can contain at most single slash');
  let p = slashes === 0 ? `${prefix}/` : prefix;
  if (!p.endsWith('/') && !p.endsWith('-')) p += '-';
  if (!/^(?:[a-z0-9_-]+\.)+[a-z0-9_-]+\/(?:[a-z0-9_-]+-)?$/.test(p)) {
    throw new KubeSubnetError('INVALID_ANNOTATION_PREFIX', 'subnet/kube: prefix must be in a format: fqdn/[0-9a-z-_]*');
  }
  return {
    kubeSubnetManager: `${p}kube-subnet-manager`,
    backendType: `${p}backend-type`,
    backendData: `${p}backend-data`,
    backendV6Data: `${p}backend-v6-data`,
    publicIP: `${p}public-ip`,
    publicIPv6: `${p}public-ipv6`,
    publicIPOverwrite: `${p}public-ip-overwrite`,
    publicIPv6Overwrite: `${p}public-ipv6-overwrite`,
    nodePublicIP: `${p}node-public-ip`,
    nodePublicIPv6: `${p}node-public-ipv6`,
  };
}

/** The annotations this node should carry for `attrs` (upstream AcquireLease rules, per family). */
export function desiredAnnotations(
  ann: Annotations,
  current: Readonly<Record<string, string>>,
  attrs: LeaseAttrs,
  cfg: Pick<NetworkConfig, 'enableIPv4' | 'enableIPv6'>,
): Record<string, string> {
  const type = attrs.backendType ?? '';
  const out: Record<string, string> = { [ann.backendType]: type, [ann.kubeSubnetManager]: 'true' };
  for (const family of families(cfg)) {
    const ip = family === 4 ? attrs.publicIP : attrs.publicIPv6;
    if (ip === undefined) continue;
    const data = family === 4 ? attrs.backendData : attrs.backendV6Data;
    const json = JSON.stringify(data ?? null);
    // vxlan publishes nothing for a family whose device does not exist yet.
    if (type === 'vxlan' && json === 'null') continue;
    out[family === 4 ? ann.backendData : ann.backendV6Data] = json;
    const overwrite = current[family === 4 ? ann.publicIPOverwrite : ann.publicIPv6Overwrite];
    out[family === 4 ? ann.publicIP : ann.publicIPv6] = overwrite ? overwrite : ip;
  }
  return out;
}

/** The annotations that differ (a strategic-merge patch body's map), or undefined when none do. */
export function annotationPatch(current: Readonly<Record<string, string>>, desired: Readonly<Record<string, string>>): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(desired)) if (current[k] !== v) out[k] = v;
  return Object.keys(out).length ? out : undefined;
}

// ------------------------------------------------------------ node → lease

/** Pod CIDRs by family from spec.podCIDRs (≤2, one per family), else spec.podCIDR. */
export function nodePodCIDRs(node: V1Node): Partial<Record<Family, IPPrefix>> {
  const name = node.metadata?.name ?? '';
  const list = node.spec?.podCIDRs?.length ? node.spec.podCIDRs : node.spec?.podCIDR ? [node.spec.podCIDR] : [];
  if (list.length > 2) throw new KubeSubnetError('KUBE_POD_CIDR', `node "${name}" pod cidrs should be IPv4/IPv6 only or dualstack`);
  const out: Partial<Record<Family, IPPrefix>> = {};
  for (const text of list) {
    let p: IPPrefix;
    try {
      p = IPPrefix.mustParse(text).masked();
    } catch (err) {
      throw new KubeSubnetError('KUBE_POD_CIDR', `node "${name}": invalid pod CIDR "${text}"`, { cause: err });
    }
    if (out[p.family]) throw new KubeSubnetError('KUBE_POD_CIDR', `node "${name}" pod cidrs should be IPv4/IPv6 only or dualstack`);
    out[p.family] = p;
  }
  return out;
}

export function isManaged(ann: Annotations, node: V1Node): boolean {
  return node.metadata?.annotations?.[ann.kubeSubnetManager] === 'true';
}

/**
 * The lease a managed node publishes, or an error naming what is missing.
 * Every enabled family needs a pod CIDR and a public IP annotation.
 */
export function nodeToLease(ann: Annotations, cfg: Pick<NetworkConfig, 'enableIPv4' | 'enableIPv6'>, node: V1Node): Lease {
  const name = node.metadata?.name ?? '';
  const a = node.metadata?.annotations ?? {};
  const cidrs = nodePodCIDRs(node);
  const lease: Lease = { enableIPv4: cfg.enableIPv4, enableIPv6: cfg.enableIPv6, attrs: {} };
  const bt = a[ann.backendType];
  if (bt) lease.attrs.backendType = bt;
  for (const family of families(cfg)) {
    const sn = cidrs[family];
    if (!sn) throw new KubeSubnetError('KUBE_POD_CIDR', `node "${name}" has no IPv${family} pod cidr`);
    const ip = a[family === 4 ? ann.publicIP : ann.publicIPv6];
    if (!ip) throw new KubeSubnetError('KUBE_LEASE_ATTRS', `node "${name}" has no ${family === 4 ? ann.publicIP : ann.publicIPv6} annotation`);
    const dataText = a[family === 4 ? ann.backendData : ann.backendV6Data];
    let data: unknown;
    if (dataText !== undefined && dataText !== '') {
      try {
        data = JSON.parse(dataText);
      } catch (err) {
        throw new KubeSubnetError('KUBE_LEASE_ATTRS', `node "${name}": invalid backend data JSON`, { cause: err });
      }
    }
    if (family === 4) {
      lease.subnet = sn;
      lease.attrs.publicIP = ip;
      if (data !== undefined) lease.attrs.backendData = data;
    } else {
      lease.ipv6Subnet = sn;
      lease.attrs.publicIPv6 = ip;
      if (data !== undefined) lease.attrs.backendV6Data = data;
    }
  }
  return lease;
}

const leaseKey = (l: Lease): string => `${l.subnet?.toString() ?? ''}|${l.ipv6Subnet?.toString() ?? ''}`;
const attrsKey = (l: Lease): string =>
  JSON.stringify([l.attrs.backendType ?? '', l.attrs.publicIP ?? '', l.attrs.publicIPv6 ?? '', l.attrs.backendData ?? null, l.attrs.backendV6Data ?? null]);

/**
 * Events that take a peer from lease `before` to lease `after` (either may be
 * absent): a new subnet is removed(old) + added(new); changed attributes on
 * the same subnet are added(new); identical leases yield nothing.
 */
export function leaseTransition(before: Lease | undefined, after: Lease | undefined): LeaseEvent[] {
  if (!before && !after) return [];
  if (!before) return [{ type: 'added', lease: after! }];
  if (!after) return [{ type: 'removed', lease: before }];
  if (leaseKey(before) !== leaseKey(after)) return [{ type: 'removed', lease: before }, { type: 'added', lease: after }];
  if (attrsKey(before) !== attrsKey(after)) return [{ type: 'added', lease: after }];
  return [];
}

/** The VTEP MAC published in a backend-data annotation (`{"VNI":1,"VtepMAC":"…"}`), if any. */
export function vtepMacOf(dataText: string | undefined): string | undefined {
  if (!dataText) return undefined;
  try {
    const v = JSON.parse(dataText) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const mac = getFold(v as Record<string, unknown>, 'VtepMAC');
      if (typeof mac === 'string' && mac !== '') return mac;
    }
  } catch {
    // not JSON: nothing stored
  }
  return undefined;
}

// ------------------------------------------------------------ the manager

export interface KubeSubnetManagerOptions {
  /** `--kubeconfig-file`. */
  kubeconfig?: string;
  /** `--kube-api-url`. */
  apiUrl?: string;
  /** `--kube-annotation-prefix`. */
  annotationPrefix?: string;
  /** `--net-config-path` (default /etc/kube-flannel/net-conf.json). */
  netConfigPath?: string;
  /** `--set-node-network-unavailable` (default true). */
  setNodeNetworkUnavailable?: boolean;
  /** NODE_NAME / POD_NAME / POD_NAMESPACE come from here (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** How long acquireLease waits for the node to appear and the patch to succeed (default 30 s). */
  acquireTimeoutMs?: number;
  /** How long creation waits for the node cache to sync (default 10 min). */
  syncTimeoutMs?: number;
  /** Retry interval for API calls (default 3 s). */
  retryMs?: number;
  /** Node informer resync period (default 5 min). */
  resyncMs?: number;
  log?: (msg: string) => void;
}

export class KubeSubnetManager implements SubnetManager {
  readonly nodeName: string;
  private readonly client: KubeClient;
  private readonly ann: Annotations;
  private readonly config: NetworkConfig;
  private readonly source: NodeSource;
  private readonly opts: KubeSubnetManagerOptions;
  /** Current lease of every managed node, by node name. */
  private readonly leases = new Map<string, Lease>();
  /** One queue per watchLeases() consumer. */
  private readonly queues = new Set<AsyncQueue<LeaseWatchResult>>();

  private constructor(client: KubeClient, nodeName: string, config: NetworkConfig, ann: Annotations, opts: KubeSubnetManagerOptions) {
    this.client = client;
    this.nodeName = nodeName;
    this.config = config;
    this.ann = ann;
    this.opts = opts;
    this.source = nodeSource(client, { resyncMs: opts.resyncMs ?? 5 * 60_000 });
    this.source.subscribe({
      add: (n) => this.observe(n.metadata?.name ?? '', n),
      update: (_o, n) => this.observe(n.metadata?.name ?? '', n),
      delete: (n) => this.observe(n.metadata?.name ?? '', undefined),
      sync: (_all, reason) => {
        if (reason === 'relist') this.publish({ snapshot: [...this.leases.values()] });
      },
      error: (err) => this.log(`node watch failed, retrying: ${errorMessage(err)}`),
    });
  }

  /**
   * Resolves the node name, reads net-conf.json, starts the Node informer and
   * waits for its first sync. The informer runs until `signal` aborts.
   */
  static async create(opts: KubeSubnetManagerOptions, signal: AbortSignal): Promise<KubeSubnetManager> {
    const ann = annotationNames(opts.annotationPrefix ?? DEFAULT_ANNOTATION_PREFIX);
    const client = new KubeClient(await loadKubeConfig({ kubeconfig: opts.kubeconfig, apiUrl: opts.apiUrl }));
    const env = opts.env ?? process.env;
    const nodeName = await resolveNodeName(client, env, signal);
    const path = opts.netConfigPath ?? '/etc/kube-flannel/net-conf.json';
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new KubeSubnetError('NET_CONFIG_READ', `failed to read net conf: ${errorMessage(err)}`, { cause: err });
    }
    const config = kubeNetworkConfig(text);
    const m = new KubeSubnetManager(client, nodeName, config, ann, opts);
    // The informer runs until `signal` aborts, or until creation fails (the
    // sync timed out): then it is stopped here and its end awaited.
    const informer = new AbortController();
    const stop = (): void => informer.abort(signal.reason);
    signal.addEventListener('abort', stop, { once: true });
    if (signal.aborted) stop();
    // start() resolves once the first list is in the cache and rejects only
    // when its signal aborts first; waitForSync adds the timeout.
    const started = m.source.start(informer.signal);
    try {
      await Promise.all([started, m.source.waitForSync(informer.signal, opts.syncTimeoutMs ?? 10 * 60_000)]);
    } catch (err) {
      stop();
      signal.removeEventListener('abort', stop);
      await Promise.allSettled([started]);
      throw err;
    }
    return m;
  }

  name(): string {
    return `Kubernetes Subnet Manager - ${this.nodeName}`;
  }

  getNetworkConfig(_signal: AbortSignal): Promise<NetworkConfig> {
    return Promise.resolve(this.config);
  }

  async checkLease(_publicIP: { v4?: string; v6?: string }, signal: AbortSignal): Promise<void> {
    await this.nodeLease({}, Date.now() + (this.opts.acquireTimeoutMs ?? 30_000), signal);
  }

  async acquireLease(attrs: LeaseAttrs, signal: AbortSignal): Promise<Lease> {
    const deadline = Date.now() + (this.opts.acquireTimeoutMs ?? 30_000);
    const { node, lease } = await this.nodeLease(attrs, deadline, signal);
    const current = node.metadata?.annotations ?? {};
    const patch = annotationPatch(current, desiredAnnotations(this.ann, current, attrs, this.config));
    if (patch) {
      await this.retrying(deadline, signal, () => this.client.patchNodeStatus(this.nodeName, { metadata: { annotations: patch } }, signal));
    }
    return lease;
  }

  /** Waits for our Node and turns its podCIDR(s) into a lease; throws when they are missing or outside Network. */
  private async nodeLease(attrs: LeaseAttrs, deadline: number, signal: AbortSignal): Promise<{ node: V1Node; lease: Lease }> {
    let node = this.source.get(this.nodeName);
    while (!node) {
      if (Date.now() >= deadline) {
        throw new KubeSubnetError('KUBE_NODE_NOT_FOUND', `timeout contacting kube-api, failed to patch node "${this.nodeName}": node not found`);
      }
      await sleep(Math.min(this.opts.retryMs ?? 3000, 200), signal);
      signal.throwIfAborted();
      node = this.source.get(this.nodeName);
    }
    const cidrs = nodePodCIDRs(node);
    if (!cidrs[4] && !cidrs[6]) throw new KubeSubnetError('KUBE_POD_CIDR', `node "${this.nodeName}" pod cidr not assigned`);
    const lease: Lease = { enableIPv4: this.config.enableIPv4, enableIPv6: this.config.enableIPv6, attrs: { ...attrs } };
    for (const family of families(this.config)) {
      const net = family === 4 ? this.config.ipv4?.network : this.config.ipv6?.network;
      const sn = cidrs[family];
      if (!sn) throw new KubeSubnetError('KUBE_POD_CIDR', `node "${this.nodeName}" has no IPv${family} pod cidr, but IPv${family} is enabled in the flannel net config`);
      if (!net || !net.contains(sn)) {
        throw new KubeSubnetError('KUBE_POD_CIDR', `subnet "${net?.toString() ?? ''}" specified in the flannel net config doesn't contain "${sn.toString()}" PodCIDR of the "${this.nodeName}" node`);
      }
      if (family === 4) lease.subnet = sn;
      else lease.ipv6Subnet = sn;
    }
    return { node, lease };
  }

  async *watchLeases(signal: AbortSignal): AsyncIterable<LeaseWatchResult> {
    const q = new AsyncQueue<LeaseWatchResult>();
    q.push({ snapshot: [...this.leases.values()] });
    this.queues.add(q);
    const onAbort = (): void => q.close();
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    try {
      for (;;) {
        const next = await q.next();
        // After abort nothing more is handed out, queued or not.
        if (next === undefined || signal.aborted) break;
        yield next;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.queues.delete(q);
    }
  }

  async completeLease(_lease: Lease, signal: AbortSignal): Promise<void> {
    if (this.opts.setNodeNetworkUnavailable ?? true) {
      const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      const condition = {
        type: 'NetworkUnavailable',
        status: 'False',
        reason: 'FlannelIsUp',
        message: 'Flannel is running on this node',
        lastTransitionTime: now,
        lastHeartbeatTime: now,
      };
      try {
        await this.retrying(Infinity, signal, () => this.client.patchNodeStatus(this.nodeName, { status: { conditions: [condition] } }, signal));
      } catch (err) {
        if (signal.aborted) return;
        throw err;
      }
    }
    await untilAborted(signal);
  }

  getStoredMacAddresses(): { v4?: string; v6?: string } {
    const a = this.source.get(this.nodeName)?.metadata?.annotations ?? {};
    const v4 = vtepMacOf(a[this.ann.backendData]);
    const v6 = vtepMacOf(a[this.ann.backendV6Data]);
    return { ...(v4 ? { v4 } : {}), ...(v6 ? { v6 } : {}) };
  }

  getStoredPublicIP(): { v4?: string; v6?: string } {
    const a = this.source.get(this.nodeName)?.metadata?.annotations ?? {};
    const v4 = a[this.ann.nodePublicIP];
    const v6 = a[this.ann.nodePublicIPv6];
    return { ...(v4 ? { v4 } : {}), ...(v6 ? { v6 } : {}) };
  }

  private observe(name: string, node: V1Node | undefined): void {
    let lease: Lease | undefined;
    if (node && isManaged(this.ann, node)) {
      try {
        lease = nodeToLease(this.ann, this.config, node);
      } catch (err) {
        // A bad update (garbage backend-data, a missing annotation) of a node
        // we already know keeps its last good lease: never tear down working
        // routes for it. Deleting the node or its kube-subnet-manager
        // annotation still removes it.
        lease = this.leases.get(name);
        this.log(`error turning node "${name}" to lease${lease ? ', keeping its last good lease' : ''}: ${errorMessage(err)}`);
      }
    }
    const events = leaseTransition(this.leases.get(name), lease);
    if (lease) this.leases.set(name, lease);
    else this.leases.delete(name);
    if (events.length) this.publish({ events });
  }

  private publish(r: LeaseWatchResult): void {
    for (const q of this.queues) q.push(r);
  }

  /** Retries transient API failures every retryMs (default 3 s) until `deadline` (ms since the epoch). */
  private retrying<T>(deadline: number, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    const every = this.opts.retryMs ?? 3000;
    return retry(fn, {
      min: every,
      max: every,
      signal,
      retryIf: (err) => isKubeTransient(err) && Date.now() < deadline,
      onRetry: (err) => this.log(`kube API call failed, retrying: ${errorMessage(err)}`),
    });
  }

  private log(msg: string): void {
    this.opts.log?.(msg);
  }
}

/** net-conf.json for kube mode: parsed like upstream (no SubnetLen rules), but every enabled family needs its Network. */
export function kubeNetworkConfig(text: string): NetworkConfig {
  const cfg = parseNetworkConfig(text, { validate: false });
  if (!cfg.enableIPv4 && !cfg.enableIPv6) throw new KubeSubnetError('INVALID_NET_CONFIG', 'at least one of EnableIPv4 and EnableIPv6 must be true');
  if (cfg.enableIPv4 && !cfg.ipv4) throw new KubeSubnetError('INVALID_NET_CONFIG', 'please define a correct Network parameter in the flannel config');
  if (cfg.enableIPv6 && !cfg.ipv6) throw new KubeSubnetError('INVALID_NET_CONFIG', 'please define a correct IPv6Network parameter in the flannel config');
  return cfg;
}

async function resolveNodeName(client: KubeClient, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<string> {
  const nodeName = env['NODE_NAME'];
  if (nodeName) return nodeName;
  const podName = env['POD_NAME'];
  const podNamespace = env['POD_NAMESPACE'];
  if (!podName || !podNamespace) throw new KubeSubnetError('KUBE_NODE_NAME', 'env variables POD_NAME and POD_NAMESPACE must be set');
  let pod: V1Pod;
  try {
    pod = await client.get<V1Pod>(PODS, podName, podNamespace, signal);
  } catch (err) {
    throw new KubeSubnetError('KUBE_NODE_NAME', `error retrieving pod spec for '${podNamespace}/${podName}': ${errorMessage(err)}`, { cause: err });
  }
  const n = pod.spec?.nodeName;
  if (!n) throw new KubeSubnetError('KUBE_NODE_NAME', `node name not present in pod spec '${podNamespace}/${podName}'`);
  return n;
}
