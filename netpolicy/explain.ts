// `netpolicy explain`: the verdict for one connection, by the same model the
// agent enforces, from a manifest directory or from a running agent's state
// (/debug/state on its metrics address, see agent.ts AgentState).
import type { V1Namespace, V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { NetError } from '../lib/errors.ts';
import { ManifestDir } from '../lib/kube/index.ts';
import { buildCluster, evaluate, explainText, type Cluster, type ClusterObjects, type Endpoint, type Verdict } from './model/index.ts';
import type { ExplainFlags } from './flags.ts';

/** The cluster of a manifest directory, read once (not watched). */
export async function clusterFromManifests(dir: string, signal?: AbortSignal): Promise<Cluster> {
  const md = new ManifestDir(dir, { watch: false });
  const sources = [md.source('Pod'), md.source('Namespace'), md.source('NetworkPolicy')] as const;
  const stop = new AbortController();
  const abort = (): void => stop.abort(signal?.reason);
  signal?.addEventListener('abort', abort, { once: true });
  const running = sources.map((s) => s.run(stop.signal));
  try {
    await Promise.all(sources.map((s) => s.waitForSync(stop.signal, 10_000)));
    return buildCluster({ pods: sources[0].list(), namespaces: sources[1].list(), policies: sources[2].list() });
  } finally {
    stop.abort();
    signal?.removeEventListener('abort', abort);
    await Promise.all(running);
  }
}

export class AgentStateError extends NetError {
  constructor(message: string, cause?: unknown) {
    super('NETPOL_AGENT_STATE', message, cause === undefined ? undefined : { cause });
  }
}

/** The cluster a running agent last synced, from `<url>/debug/state`. */
export async function clusterFromAgent(url: string, fetchFn: typeof fetch = fetch): Promise<Cluster> {
  const target = new URL('/debug/state', url);
  let body: unknown;
  try {
    const res = await fetchFn(target, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new AgentStateError(`${target.href}: HTTP ${res.status}`);
    body = await res.json();
  } catch (err) {
    if (err instanceof AgentStateError) throw err;
    throw new AgentStateError(`${target.href}: ${err instanceof Error ? err.message : String(err)}`, err);
  }
  const o = body as ClusterObjects & { pods?: V1Pod[]; namespaces?: V1Namespace[]; policies?: V1NetworkPolicy[] };
  if (typeof o !== 'object' || o === null || !Array.isArray(o.pods) || !Array.isArray(o.policies)) throw new AgentStateError(`${target.href}: not an agent state`);
  return buildCluster({ pods: o.pods, namespaces: o.namespaces ?? [], policies: o.policies });
}

/** "ns/name" is a pod; anything else is an address. */
export function endpoint(text: string): Endpoint {
  return text.includes('/') && !text.includes(':') && !/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(text) ? { pod: text } : { ip: text };
}

export function explainVerdict(c: Cluster, f: Pick<ExplainFlags, 'source' | 'destination' | 'port' | 'protocol' | 'family'>): Verdict {
  return evaluate(c, endpoint(f.source), { pod: f.destination }, f.port, f.protocol, f.family === undefined ? {} : { family: f.family });
}

/** The human text: the connection asked about, then the model's explanation per direction. */
export function explainReport(v: Verdict, f: Pick<ExplainFlags, 'source' | 'destination' | 'port' | 'protocol'>): string {
  return `${f.source} -> ${f.destination} ${f.protocol}/${f.port}\n${explainText(v)}\n`;
}

/** The verdict as JSON (addresses as text). */
export function explainJSON(v: Verdict): string {
  return `${JSON.stringify({ ...v, srcIP: v.srcIP?.toString(), dstIP: v.dstIP?.toString() }, null, 2)}\n`;
}
