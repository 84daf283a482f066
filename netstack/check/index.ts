// `netstack check`: probes the running cluster and compares what it sees with
// what should be, from the same manifests the daemons read.
//
//   const { ok, rows, report } = await runCheck(state, { families: [4, 6] });
//
// expect.ts plans the probes and their expected outcome (netpolicy model +
// Services), probe.ts runs them from inside the pods' and the external host's
// namespaces, report.ts prints the matrix. `ok` is false on any mismatch and
// on any disagreement between the state and the manifests.
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Family } from '../../lib/ip/index.ts';
import { ManifestDir, type Kind, type KindMap } from '../../lib/kube/index.ts';
import type { NodeState, State } from '../state.ts';
import { planProbes, type CheckObjects, type Topology } from './expect.ts';
import { runProbes, type ProbeOptions } from './probe.ts';
import { formatReport } from './report.ts';
import { matches, type Row } from './types.ts';

export type { CheckObjects, Topology } from './expect.ts';
export { planProbes } from './expect.ts';
export { formatReport } from './report.ts';
export { runProbes } from './probe.ts';
export type * from './types.ts';

export interface CheckOptions extends ProbeOptions {
  /** Families to probe; default: the cluster's (IPv4, and IPv6 with --dual-stack). */
  readonly families?: readonly Family[];
  readonly signal?: AbortSignal;
}

/** What check reads of the state `up` wrote (a State is one). */
export type CheckState = Pick<State, 'phase' | 'options' | 'pods' | 'external'> & {
  readonly nodes: readonly Pick<NodeState, 'name' | 'ip' | 'ip6'>[];
  readonly dirs: Pick<State['dirs'], 'manifests'>;
};

export interface CheckResult {
  readonly ok: boolean;
  readonly rows: Row[];
  readonly problems: string[];
  readonly report: string;
}

export async function runCheck(state: CheckState, opts: CheckOptions = {}): Promise<CheckResult> {
  const t0 = performance.now();
  const runs: readonly Family[] = state.options.dualStack ? [4, 6] : [4];
  const families = opts.families ?? runs;
  const objs = await readCheckObjects(state.dirs.manifests, opts.signal);
  const plan = planProbes(objs, topologyOf(state), families);
  const problems = [...plan.problems];
  for (const f of families) if (!runs.includes(f)) problems.unshift(`IPv${f} asked for, but the cluster does not run it (netstack up --dual-stack)`);
  if (state.phase !== 'ready') problems.unshift(`netstack up did not finish (state phase "${state.phase}")`);
  const results = await runProbes(plan.probes, opts);
  const rows = plan.probes.map((probe, i) => {
    const result = results[i]!;
    return { probe, result, match: matches(probe.expect.outcome, result.observed) };
  });
  const o = state.options;
  const title = `netstack check: ${count(state.nodes.length, 'node')}, ${count(state.pods.length, 'pod')}; ${o.backend}, kube-proxy ${o.proxyMode}, netpolicy ${o.policyBackend}; IPv${families.join(' + IPv')}`;
  const report = formatReport(rows, { problems, elapsedMs: performance.now() - t0, title });
  return { ok: problems.length === 0 && rows.every((r) => r.match), rows, problems, report };
}

const count = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;

/** Where the cluster's pods, nodes and the external host are, from the state `up` wrote. */
export function topologyOf(state: CheckState): Topology {
  const ips = (...xs: (string | undefined)[]): string[] => xs.filter((x): x is string => !!x);
  return {
    pods: state.pods.map((p) => ({ key: `${p.namespace}/${p.name}`, node: p.node, netns: p.netns.path, ips: p.ips })),
    nodes: state.nodes.map((n) => ({ name: n.name, ips: ips(n.ip, n.ip6) })),
    external: { netns: state.external.netns.path, ips: ips(state.external.ip, state.external.ip6) },
  };
}

/** The objects of a manifest directory, read once (not watched), with the EndpointSlices derived from Pods. */
export async function readCheckObjects(dir: string, signal?: AbortSignal): Promise<CheckObjects> {
  const md = new ManifestDir(dir, { watch: false });
  const kinds = ['Pod', 'Namespace', 'NetworkPolicy', 'Service', 'EndpointSlice'] as const satisfies readonly Kind[];
  const sources = kinds.map((k) => md.source(k));
  const stop = new AbortController();
  const abort = (): void => stop.abort(signal?.reason);
  signal?.addEventListener('abort', abort, { once: true });
  const running = sources.map((s) => s.run(stop.signal));
  try {
    await Promise.all(sources.map((s) => s.waitForSync(stop.signal, 10_000)));
    const list = <K extends (typeof kinds)[number]>(k: K): KindMap[K][] => sources[kinds.indexOf(k)]!.list() as KubernetesObject[] as KindMap[K][];
    return { pods: list('Pod'), namespaces: list('Namespace'), policies: list('NetworkPolicy'), services: list('Service'), slices: list('EndpointSlice') };
  } finally {
    stop.abort();
    signal?.removeEventListener('abort', abort);
    await Promise.all(running);
  }
}
