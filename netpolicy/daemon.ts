// What main.ts runs: the agent with its real dependencies (sources from the
// API or a manifest directory, the chosen backend over the real tools,
// conntrack, the health and metrics servers), `--cleanup`, and `explain`.
import { readFile, writeFile } from 'node:fs/promises';
import { errorMessage } from '../lib/errors.ts';
import { metricsHandler, startHttpServer, type HttpHandler, type HttpServer } from '../lib/daemon/index.ts';
import { KubeClient, ManifestDir, apiSource, loadKubeConfig } from '../lib/kube/index.ts';
import type { Logger } from '../lib/log.ts';
import { newRegistry } from '../lib/metrics.ts';
import { RealConntrack } from '../lib/netfilter/conntrack.ts';
import { RealIpset } from '../lib/netfilter/ipset.ts';
import { RealIptables } from '../lib/netfilter/iptables.ts';
import { RealNft } from '../lib/netfilter/nft.ts';
import { Agent, type AgentSources } from './agent.ts';
import { IptablesBackend, NftBackend, type Backend, type BackendName } from './backend.ts';
import { clusterFromAgent, clusterFromManifests, explainJSON, explainReport, explainVerdict } from './explain.ts';
import type { AgentFlags, ExplainFlags, HostPort } from './flags.ts';

export function realBackend(name: BackendName, logDenied: boolean): Backend {
  const log = logDenied ? { logDenied: { ratePerSecond: 10 } } : {};
  return name === 'nftables' ? new NftBackend(new RealNft(), log) : new IptablesBackend(new RealIptables({ waitSeconds: 5 }), new RealIpset(), log);
}

async function sources(flags: AgentFlags, log: Logger): Promise<AgentSources> {
  if (flags.manifests !== undefined) {
    const md = new ManifestDir(flags.manifests, { log });
    return { pods: md.source('Pod'), namespaces: md.source('Namespace'), policies: md.source('NetworkPolicy'), nodes: md.source('Node') };
  }
  const client = new KubeClient(await loadKubeConfig({ kubeconfig: flags.kubeconfig }));
  return {
    pods: apiSource(client, 'Pod'),
    namespaces: apiSource(client, 'Namespace'),
    policies: apiSource(client, 'NetworkPolicy'),
    nodes: apiSource(client, 'Node', { fieldSelector: `metadata.name=${flags.hostnameOverride}` }),
  };
}

/**
 * Bridged traffic between two pods of this node must pass the IP hooks to
 * be policed (br_netfilter). The switches are per network namespace; without
 * the module there are none, and same-node traffic is not policed: say so.
 */
async function ensureBridgeNetfilter(log: Logger): Promise<void> {
  for (const name of ['bridge-nf-call-iptables', 'bridge-nf-call-ip6tables']) {
    const path = `/proc/sys/net/bridge/${name}`;
    try {
      if ((await readFile(path, 'utf8')).trim() !== '1') await writeFile(path, '1\n');
    } catch (err) {
      log.warn({ path, err: errorMessage(err) }, 'br_netfilter is not available: traffic between pods of this node over a bridge is not policed');
    }
  }
}

async function serve(addr: HostPort | undefined, handlers: Record<string, HttpHandler>, what: string, log: Logger): Promise<HttpServer | undefined> {
  if (!addr) return undefined;
  const s = await startHttpServer({ host: addr.host, port: addr.port, handlers });
  log.info({ address: `${addr.host}:${s.port}` }, `serving ${what}`);
  return s;
}

export async function runAgent(flags: AgentFlags, log: Logger, signal: AbortSignal, ready: () => void): Promise<void> {
  const backend = realBackend(flags.backend, flags.logDenied);
  if (flags.cleanup) {
    await backend.cleanup();
    log.info({ backend: backend.name }, 'cleaned up');
    return;
  }
  // Switching backends must not leave the other one's rules dropping traffic.
  const other = realBackend(flags.backend === 'nftables' ? 'iptables' : 'nftables', false);
  await other.cleanup().catch((err: unknown) => log.debug({ backend: other.name, err: errorMessage(err) }, 'no cleanup of the other backend'));
  await ensureBridgeNetfilter(log);

  const registry = newRegistry({ defaultMetrics: true, component: 'netpolicy' });
  const agent = new Agent({ nodeName: flags.hostnameOverride, sources: await sources(flags, log), backend, conntrack: new RealConntrack(), log, registry, newPods: flags.newPods, onFirstSync: ready });
  const healthz: HttpHandler = () => (agent.ready ? { status: 200, body: 'ok' } : { status: 503, body: 'first sync not applied yet' });
  const servers = [
    await serve(flags.healthzBindAddress, { '/healthz': healthz }, 'healthz', log),
    await serve(flags.metricsBindAddress, { '/metrics': metricsHandler(registry), '/healthz': healthz, '/debug/state': () => ({ status: 200, body: JSON.stringify(agent.state()), contentType: 'application/json' }) }, 'metrics', log),
  ];
  try {
    await agent.run(signal);
  } finally {
    await Promise.all(servers.map((s) => s?.close()));
  }
}

/** Prints the verdict; resolves with the exit code: 0 allowed, 1 denied (as `kubectl auth can-i`). */
export async function runExplain(flags: ExplainFlags, out: (s: string) => void): Promise<number> {
  const cluster = flags.manifests !== undefined ? await clusterFromManifests(flags.manifests) : await clusterFromAgent(flags.agent!);
  const v = explainVerdict(cluster, flags);
  out(flags.json ? explainJSON(v) : explainReport(v, flags));
  return v.allowed ? 0 : 1;
}
