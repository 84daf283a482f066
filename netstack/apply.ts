// `netstack apply FILE|DIR` (and the app part of `up`): objects go into the
// manifest directory the daemons watch, one file per object, filled as the
// API server would (ClusterIPs, NodePorts). Pods are created as `up` creates
// them (netns, CNI ADD, server, Pod with status); a Pod that exists already
// is left as it is (pods are not updated in place). Other kinds replace their
// file. With waitSync, apply returns once every kube-proxy and netpolicy
// affected has finished a sync after the files were written.
import { sleep } from '../lib/abort.ts';
import { NetError } from '../lib/errors.ts';
import type { ManifestObject } from '../lib/kube/manifest.ts';
import type { V1Pod, V1Service } from '../lib/kube/types.ts';
import { METRICS, createPod, httpGet, metricSum, placeNode } from './cluster.ts';
import { allocateService, servicesIn, takenBy, writeObject } from './manifests.ts';
import type { DaemonName, NodeState, State, StateStore } from './state.ts';

export interface ApplyOptions {
  /** Wait for the daemons to sync the change (needs this thread on the underlay). */
  readonly waitSync: boolean;
  readonly timeoutMs?: number;
}

const SYNC_METRIC: Partial<Record<DaemonName, string>> = {
  'kube-proxy': 'kubeproxy_sync_proxy_rules_duration_seconds_count',
  netpolicy: 'netpolicy_sync_duration_seconds_count',
};

/** Which daemons read a kind. */
export function readersOf(kind: string): DaemonName[] {
  switch (kind) {
    case 'Service':
    case 'EndpointSlice':
      return ['kube-proxy'];
    case 'NetworkPolicy':
    case 'Namespace':
      return ['netpolicy'];
    case 'Pod':
    case 'Node':
      return ['kube-proxy', 'netpolicy'];
    default:
      return [];
  }
}

async function syncCounts(s: State, daemons: readonly DaemonName[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const n of s.nodes) {
    for (const d of daemons) {
      const metric = SYNC_METRIC[d];
      if (!metric) continue;
      const r = await httpGet(n.ip, METRICS[d], '/metrics');
      out.set(`${n.name}/${d}`, r?.status === 200 ? metricSum(r.body, metric) : -1);
    }
  }
  return out;
}

export async function applyObjects(store: StateStore, objects: readonly ManifestObject[], log: (msg: string) => void, opts: ApplyOptions): Promise<void> {
  const s = store.state;
  const readers = new Set<DaemonName>();
  for (const o of objects) for (const d of readersOf(o.kind)) readers.add(d);
  const before = opts.waitSync ? await syncCounts(s, [...readers]) : new Map<string, number>();

  const existing = await servicesIn(s.dirs.manifests);
  const mine = new Set(objects.filter((o) => o.kind === 'Service').map((o) => `${o.obj.metadata?.namespace ?? 'default'}/${o.obj.metadata?.name}`));
  const taken = takenBy(existing.filter((x) => !mine.has(`${x.metadata?.namespace ?? 'default'}/${x.metadata?.name}`)));
  // Services that keep their addresses on update.
  const old = new Map(existing.map((x) => [`${x.metadata?.namespace ?? 'default'}/${x.metadata?.name}`, x]));

  // Namespaces and policies first: a pod then starts under its policies.
  const order = ['Namespace', 'NetworkPolicy', 'Node', 'Pod', 'Service', 'EndpointSlice'];
  const sorted = [...objects].sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
  let podIndex = s.pods.length;
  let pods: { pod: V1Pod; node: NodeState }[] = [];
  const createPods = async (): Promise<void> => {
    const batch = pods;
    pods = [];
    // A few at a time, as a runtime starts pods: each is a netns, two CNI ADDs and a server.
    await mapBounded(batch, 4, (x) => createPod(store, x.pod, x.node, log));
  };
  for (const o of sorted) {
    const meta = o.obj.metadata ?? {};
    if (o.kind !== 'Namespace' && o.kind !== 'Node') meta.namespace ??= 'default';
    o.obj.metadata = meta;
    const ref = `${o.kind} ${meta.namespace ? meta.namespace + '/' : ''}${meta.name}`;
    if (o.kind === 'Pod') {
      if (s.pods.some((p) => p.namespace === meta.namespace && p.name === meta.name) || pods.some((x) => x.pod.metadata?.namespace === meta.namespace && x.pod.metadata?.name === meta.name)) {
        log(`  ${ref}: exists, left as it is`);
        continue;
      }
      pods.push({ pod: o.obj as V1Pod, node: placeNode(s.nodes, o.obj as V1Pod, podIndex++) });
      continue;
    }
    // Pods before the Services that select them.
    if (pods.length > 0) await createPods();
    let obj = o.obj;
    if (o.kind === 'Service') {
      const svc = structuredClone(o.obj as V1Service);
      const prev = old.get(`${meta.namespace}/${meta.name}`);
      if (prev && !svc.spec?.clusterIP && prev.spec?.clusterIP) {
        svc.spec = { ...(svc.spec ?? {}), clusterIP: prev.spec.clusterIP, clusterIPs: prev.spec.clusterIPs ?? [prev.spec.clusterIP] };
      }
      const filled = allocateService(svc, s.serviceCIDRs, taken);
      taken.ips.add(filled.spec!.clusterIP ?? '');
      obj = filled;
      const ports = (filled.spec?.ports ?? []).map((p) => `${p.port}/${p.protocol}${p.nodePort ? ` nodePort ${p.nodePort}` : ''}`).join(', ');
      log(`  ${ref}: ${filled.spec?.clusterIPs?.join(', ') ?? 'headless'} ${ports}`);
    } else {
      if (o.kind === 'Namespace') {
        // The API server labels every Namespace with its name (namespaceSelector relies on it).
        obj = structuredClone(o.obj);
        obj.metadata = { ...obj.metadata, labels: { ...(obj.metadata?.labels ?? {}), 'kubernetes.io/metadata.name': meta.name ?? '' } };
      }
      log(`  ${ref}`);
    }
    await writeObject(s.dirs.manifests, o.kind, obj);
  }
  if (pods.length > 0) await createPods();

  if (!opts.waitSync || readers.size === 0) return;
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  for (;;) {
    const now = await syncCounts(s, [...readers]);
    const pending = [...before].filter(([k, v]) => (now.get(k) ?? -1) <= v).map(([k]) => k);
    if (pending.length === 0) return;
    if (Date.now() > deadline) throw new NetError('SYNC_TIMEOUT', `no sync after the change by ${pending.join(', ')}`);
    await sleep(100);
  }
}

/** Runs `fn` over `items`, at most `limit` at once; the first failure is thrown once all have settled. */
async function mapBounded<T>(items: readonly T[], limit: number, fn: (x: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  let first: unknown;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const x = items[next++]!;
      try {
        await fn(x);
      } catch (err) {
        first ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (first !== undefined) throw first;
}
