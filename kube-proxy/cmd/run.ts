// `kube-proxy` itself: from a validated configuration and the kernel/API
// seams to a running proxy (sources → trackers → runners → iptables,
// nftables or IPVS), with
// the healthz and metrics servers, until the signal aborts. `--cleanup`
// removes every mode's rules instead and returns.
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import { startHttpServer, metricsHandler, type HttpServer } from '../../lib/daemon/http.ts';
import type { Family } from '../../lib/ip/index.ts';
import { KubeClient } from '../../lib/kube/client.ts';
import { loadKubeConfig } from '../../lib/kube/config.ts';
import { apiSource } from '../../lib/kube/api-source.ts';
import { ManifestDir } from '../../lib/kube/manifest-dir.ts';
import type { Source } from '../../lib/kube/source.ts';
import type { Logger } from '../../lib/log.ts';
import type { Conntrack } from '../../lib/netfilter/conntrack.ts';
import type { IpFamily, IptablesRestore } from '../../lib/netfilter/iptables.ts';
import type { Ipset } from '../../lib/netfilter/ipset.ts';
import type { Nft } from '../../lib/netfilter/nft.ts';
import type { NetlinkHandle } from '../../lib/netlink/handle.ts';
import type { IpvsHandle } from '../../lib/netlink/ipvs-types.ts';
import type { ProxyConfig } from '../config/index.ts';
import { ProxyHealth } from '../health/proxy.ts';
import { ServiceHealthServers, startProxyHealthServer, type Listener } from '../health/server.ts';
import { ProxyMetrics } from '../metrics.ts';
import { IPTABLES_MODE, IPTABLES_ONLY, IPVS_MODE, NFTABLES_MODE, runCleanups, type CleanupDeps } from '../proxier/cleanup.ts';
import { iptablesBackend } from '../proxier/iptables.ts';
import { ipvsBackend, prepareIPVSNode } from '../proxier/ipvs.ts';
import { nftablesBackend } from '../proxier/nftables.ts';
import { localAddresses, nftRenderOptionsFor, primaryNodeIP, renderOptionsFor } from '../proxier/options.ts';
import { resolveNodePortAddresses } from '../render/options.ts';
import { ServiceProxy, type FamilyProxierFactory, type ProxySources } from '../proxier/proxy.ts';
import { NetError } from '../../lib/errors.ts';

export interface RunDeps {
  readonly iptables: IptablesRestore;
  readonly conntrack: Conntrack;
  readonly nft?: Nft | undefined;
  readonly ipset?: Ipset | undefined;
  readonly log: Logger;
  /** Default: a fresh registry with process metrics. */
  readonly metrics?: ProxyMetrics;
  /** Default: the Kubernetes API or the manifest directory of the config. */
  readonly sources?: ProxySources;
  /** The IPVS mode's generic netlink handle in this namespace (rejects with code ENOIPVS where the kernel has none). */
  readonly openIpvs?: () => Promise<IpvsHandle>;
  /** rtnetlink in this namespace (kube-ipvs0, the node's addresses). */
  readonly openNetlink?: () => NetlinkHandle;
}

export class UnsupportedModeError extends NetError {
  constructor(message: string) {
    super('UNSUPPORTED_MODE', message);
  }
}

const ipFamily = (f: Family): IpFamily => (f === 4 ? 'ip' : 'ip6');

/** The sources of the configuration: the manifest directory, or the API. */
export async function sourcesFor(cfg: ProxyConfig, log: Logger): Promise<ProxySources> {
  if (cfg.manifests !== undefined) {
    const dir = new ManifestDir(cfg.manifests, { log });
    return { services: dir.source('Service'), endpointSlices: dir.source('EndpointSlice'), nodes: dir.source('Node') };
  }
  const client = new KubeClient(await loadKubeConfig({ kubeconfig: cfg.kubeconfig || undefined, apiUrl: cfg.master || undefined }));
  const resyncMs = cfg.configSyncPeriodMs;
  // Upstream's informer selectors: services of another proxy and headless ones are not ours.
  const labelSelector = '!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless';
  return {
    services: apiSource(client, 'Service', { labelSelector, resyncMs }) as Source<V1Service>,
    endpointSlices: apiSource(client, 'EndpointSlice', { labelSelector, resyncMs }) as Source<V1EndpointSlice>,
    nodes: apiSource(client, 'Node', { fieldSelector: `metadata.name=${cfg.nodeName}`, resyncMs }) as Source<V1Node>,
  };
}

/** IPv4 always; IPv6 when ip6tables answers (upstream runs dual-stack when both families work). */
export async function detectFamilies(ipt: IptablesRestore, log: Logger): Promise<Family[]> {
  try {
    await ipt.save('ip6', 'nat');
    return [4, 6];
  } catch (err) {
    log.info({ err }, 'ip6tables is not usable: running single-stack IPv4');
    return [4];
  }
}

/** `--cleanup`: every mode's rules, both families, kube-ipvs0 and the IPVS table. False if something could not be removed. */
export async function cleanupAll(deps: RunDeps): Promise<boolean> {
  let ipvs: IpvsHandle | undefined;
  try {
    ipvs = await deps.openIpvs?.();
  } catch (err) {
    // No ip_vs in this kernel: there is no IPVS table to flush.
    if ((err as { code?: unknown }).code !== 'ENOIPVS') deps.log.warn({ err }, 'cannot open IPVS; its table is left as it is');
  }
  const netlink = deps.openNetlink?.();
  try {
    const d: CleanupDeps = { iptables: deps.iptables, nft: deps.nft, ipset: deps.ipset, netlink, ipvs, log: deps.log };
    return await runCleanups(d, ['ip', 'ip6'], [IPTABLES_MODE, IPVS_MODE, NFTABLES_MODE]);
  } finally {
    ipvs?.close();
    netlink?.close();
  }
}

/** Runs the proxy until `signal` aborts. */
export async function runProxy(cfg: ProxyConfig, signal: AbortSignal, ready: () => void, deps: RunDeps): Promise<void> {
  const { log } = deps;
  for (const w of cfg.warnings) log.warn({ configFile: cfg.configFile }, w);
  const metrics = deps.metrics ?? new ProxyMetrics();
  const families = await detectFamilies(deps.iptables, log);
  log.info({ mode: cfg.mode, families: families.map((f) => `IPv${f}`), nodeName: cfg.nodeName, manifests: cfg.manifests }, 'starting kube-proxy');
  let backend: FamilyProxierFactory;
  const handles: { close(): void }[] = [];
  let netlink: NetlinkHandle | undefined;
  if (cfg.mode === 'ipvs') {
    if (!deps.openIpvs || !deps.openNetlink || !deps.ipset) throw new UnsupportedModeError('ipvs mode needs IPVS (generic netlink), rtnetlink and ipset');
    log.warn({}, 'The ipvs proxier is deprecated upstream (KEP-5495) and may be removed in a future release; use nftables instead');
    const ipvs = await deps.openIpvs();
    handles.push(ipvs);
    netlink = deps.openNetlink();
    handles.push(netlink);
    await prepareIPVSNode(netlink, ipvs, { strictARP: cfg.ipvs.strictARP, timeouts: cfg.ipvs.timeouts }, log);
    backend = ipvsBackend(cfg, { ipvs, netlink, ipset: deps.ipset, iptables: deps.iptables });
  } else if (cfg.mode === 'nftables') {
    if (!deps.nft) throw new UnsupportedModeError('nftables mode needs nft');
    backend = nftablesBackend(deps.nft, { nodeName: cfg.nodeName, renderOptions: (family, node) => nftRenderOptionsFor(cfg, family, node) });
  } else {
    backend = iptablesBackend(deps.iptables, { nodeName: cfg.nodeName, renderOptions: (family, node) => renderOptionsFor(cfg, family, node) });
  }
  // The other modes' leftovers (upstream's platformCleanup): only what is there.
  // The IPVS mode keeps the chains it shares with the iptables mode (its first sync rewrites them).
  const others = cfg.mode === 'nftables' ? [IPTABLES_MODE, IPVS_MODE] : cfg.mode === 'ipvs' ? [NFTABLES_MODE, IPTABLES_ONLY] : [NFTABLES_MODE, IPVS_MODE];
  const cleanupNetlink = cfg.mode === 'ipvs' ? undefined : deps.openNetlink?.();
  try {
    await runCleanups({ iptables: deps.iptables, nft: deps.nft, ipset: deps.ipset, netlink: cleanupNetlink, log }, families.map(ipFamily), others);
  } finally {
    cleanupNetlink?.close();
  }

  const health = new ProxyHealth(families, 2 * cfg.syncPeriodMs);
  // Health-check node ports listen where NodePorts answer (k/k#82163): the --nodeport-addresses IPs, or everywhere.
  const hcHosts = (): string[] | undefined => {
    if (cfg.nodePortAddresses.length === 0) return undefined;
    const npas = families.map((f) => resolveNodePortAddresses(f, cfg.nodePortAddresses, { primaryIP: primaryNodeIP(f, undefined, localAddresses()), localAddresses: localAddresses() }));
    return npas.some((n) => n.matchAll) ? undefined : npas.flatMap((n) => n.ips.map(String));
  };
  const serviceHealth = new ServiceHealthServers(health, log, hcHosts);
  const proxy = new ServiceProxy(
    { families, nodeName: cfg.nodeName, minSyncPeriodMs: cfg.minSyncPeriodMs, syncPeriodMs: cfg.syncPeriodMs, backend },
    { conntrack: deps.conntrack, log, metrics, health, serviceHealth },
  );
  const servers: (HttpServer | Listener)[] = [];
  try {
    if (cfg.healthzBindAddress) {
      servers.push(await startProxyHealthServer(health, cfg.healthzBindAddress.host, cfg.healthzBindAddress.port, metrics));
      log.info({ address: cfg.healthzBindAddress }, 'serving /healthz and /livez');
    }
    if (cfg.metricsBindAddress) {
      servers.push(
        await startHttpServer({
          host: cfg.metricsBindAddress.host,
          port: cfg.metricsBindAddress.port,
          handlers: {
            '/metrics': metricsHandler(metrics.registry),
            '/healthz': () => ({ status: 200, body: 'ok' }),
            '/proxyMode': () => ({ status: 200, body: cfg.mode }),
          },
        }),
      );
      log.info({ address: cfg.metricsBindAddress }, 'serving /metrics');
    }
    ready();
    await proxy.run(deps.sources ?? (await sourcesFor(cfg, log)), signal);
  } finally {
    for (const s of servers) await s.close();
    for (const h of handles) h.close();
  }
}
