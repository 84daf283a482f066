// flanneld's main loop, in upstream's order (research flannel.md §1.1):
//   subnet manager → health server → network config (polled) → br_netfilter
//   check → external interface → backend.registerNetwork → acquire lease →
//   clean up the other traffic mode → masq/forward rules (compare-and-patch,
//   re-ensured every --iptables-resync s) → blackhole route → subnet.env →
//   ready → backend.run(lease watch) ∥ completeLease, until the signal aborts.
// Nothing is torn down on abort: the kernel keeps forwarding while flanneld
// restarts, and the next start converges from what it finds.
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { NetError, errorMessage, isExists } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { Counter, Gauge, Histogram } from '../lib/metrics.ts';
import type { Registry } from '../lib/metrics.ts';
import { RTN_BLACKHOLE } from '../lib/netlink/constants.ts';
import type { NetlinkHandle } from '../lib/netlink/index.ts';
import { daemonHandlers, startHttpServer } from '../lib/daemon/http.ts';
import type { HttpServer, Readiness } from '../lib/daemon/http.ts';
import { retry } from '../lib/daemon/retry.ts';
import { BoundedFrequencyRunner } from '../lib/runner/index.ts';
import type { BackendFactory, ExternalInterface, Network } from './backend/types.ts';
import type { FlanneldOptions } from './flags.ts';
import { selectExternalInterface } from './iface.ts';
import { readSubnetEnv, writeSubnetEnv } from './subnet/subnet-env.ts';
import type { SubnetEnv } from './subnet/subnet-env.ts';
import type { Lease, NetworkConfig, SubnetManager } from './subnet/types.ts';

/** Startup cannot continue (upstream exits 1 at these points). */
export class DaemonError extends NetError {
  constructor(code: string, message: string, cause?: unknown) {
    super(code, message, { cause });
  }
}

export const BR_NETFILTER_FILES: Record<4 | 6, string> = {
  4: 'net/bridge/bridge-nf-call-iptables',
  6: 'net/bridge/bridge-nf-call-ip6tables',
};

/** One traffic-rule mode (iptables or nftables), as the daemon drives it. */
export interface TrafficRules {
  /** Removes everything this mode installed (called on the mode NOT in use). */
  cleanUp(): Promise<void>;
  /**
   * Makes the masquerade rules match (config, lease) by compare-and-patch,
   * never by flushing. `prev` is the previous subnet.env: rules for an old
   * network/subnet are removed.
   */
  ensureMasq(p: { config: NetworkConfig; lease: Lease; prev: SubnetEnv | undefined; fullyRandom: boolean }): Promise<void>;
  /** Makes the FORWARD accept rules for the cluster network(s) match. */
  ensureForward(p: { config: NetworkConfig }): Promise<void>;
}

export interface DaemonDeps {
  log: Logger;
  registry: Registry;
  /** rtnetlink handle of the daemon's own namespace. */
  handle: NetlinkHandle;
  /** Creates the subnet manager (etcd: seeded with `prev`; kube). A `close()` on it is called at the end. */
  subnetManager(opts: FlanneldOptions, prev: SubnetEnv | undefined, signal: AbortSignal): Promise<SubnetManager>;
  /** Backends by (lower-case) type name. */
  backends: Readonly<Record<string, BackendFactory>>;
  /** The traffic-rule implementation for a mode. */
  traffic(mode: 'iptables' | 'nftables'): TrafficRules;
  /** Root of /proc/sys as seen by this namespace (tests point it elsewhere). Default /proc/sys. */
  procSys?: string;
  /** Called once ready (subnet.env written), e.g. for sd_notify; failures are logged. */
  onReady?: () => void | Promise<void>;
  /** Base delay for startup retries (ms); default 1000. */
  retryDelay?: number;
}

export interface DaemonMetrics {
  peers: Gauge<string>;
  ignoredLeases: Gauge<string>;
  programmingErrors: Counter<string>;
  reconcileDuration: Histogram<string>;
  leaseExpiration: Gauge<string>;
  ready: Gauge<string>;
  ruleSyncErrors: Counter<string>;
}

export function daemonMetrics(registry: Registry): DaemonMetrics {
  return {
    peers: new Gauge({ name: 'flannel_peers', help: 'Remote leases currently programmed into the datapath.', registers: [registry] }),
    ignoredLeases: new Gauge({ name: 'flannel_ignored_leases', help: 'Remote leases ignored because their backend data is unusable.', registers: [registry] }),
    programmingErrors: new Counter({ name: 'flannel_programming_errors_total', help: 'Failed datapath programming operations, by kind.', labelNames: ['kind'], registers: [registry] }),
    reconcileDuration: new Histogram({
      name: 'flannel_reconcile_duration_seconds',
      help: 'Duration of one datapath reconcile pass.',
      labelNames: ['result'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    leaseExpiration: new Gauge({ name: 'flannel_lease_expiration_timestamp_seconds', help: 'Expiration of this node\'s subnet lease (0: no expiry).', registers: [registry] }),
    ready: new Gauge({ name: 'flannel_ready', help: '1 once traffic rules and subnet.env are in place.', registers: [registry] }),
    ruleSyncErrors: new Counter({ name: 'flannel_traffic_rule_sync_errors_total', help: 'Failed masquerade/forward rule syncs.', labelNames: ['rules'], registers: [registry] }),
  };
}

/**
 * Retries a start-up step with capped exponential backoff (base … 30·base),
 * logging each failure, until it succeeds; undefined when `signal` aborted.
 */
async function retrying<T>(what: string, fn: () => Promise<T>, signal: AbortSignal, log: Logger, base: number): Promise<T | undefined> {
  try {
    return await retry(() => fn(), {
      min: base,
      max: base * 30,
      signal,
      onRetry: (err, attempt, retryInMs) => log.error({ err, attempt, retryInMs }, `${what} failed, retrying`),
    });
  } catch (err) {
    if (signal.aborted) return undefined;
    throw err;
  }
}

/** Fails like upstream when br_netfilter is missing in iptables mode. */
export async function checkBrNetfilter(config: NetworkConfig, procSys = '/proc/sys'): Promise<void> {
  if (config.enableNFTables) return;
  const fams: (4 | 6)[] = [];
  if (config.enableIPv4) fams.push(4);
  if (config.enableIPv6) fams.push(6);
  for (const f of fams) {
    const path = join(procSys, BR_NETFILTER_FILES[f]);
    try {
      await access(path);
    } catch (err) {
      throw new DaemonError(
        'BR_NETFILTER_MISSING',
        `Failed to check br_netfilter: stat /proc/sys/${BR_NETFILTER_FILES[f]}: no such file or directory (load the br_netfilter kernel module)`,
        err,
      );
    }
  }
}

/** Public IPs pinned on the node (kube `node-public-ip` annotations) override the flags. */
function effectivePublicIPs(opts: FlanneldOptions, sm: SubnetManager): { publicIP: string; publicIPv6: string } {
  const stored = sm.getStoredPublicIP?.() ?? {};
  return { publicIP: stored.v4 ?? opts.publicIP, publicIPv6: stored.v6 ?? opts.publicIPv6 };
}

/**
 * Runs flanneld until `signal` aborts (resolves) or an unrecoverable error
 * (rejects with DaemonError or the manager's error, e.g. LeaseLostError).
 */
export async function run(opts: FlanneldOptions, signal: AbortSignal, deps: DaemonDeps): Promise<void> {
  const log = deps.log;
  const base = deps.retryDelay ?? 1000;
  const m = daemonMetrics(deps.registry);
  let readiness: Readiness = { ready: false, reason: 'starting' };
  const stage = (reason: string): void => {
    readiness = { ready: false, reason };
  };

  const prev = await readSubnetEnv(opts.subnetFile).catch((err: unknown) => {
    log.warn({ err, file: opts.subnetFile }, 'ignoring unreadable previous subnet file');
    return undefined;
  });

  stage('creating subnet manager');
  let sm: SubnetManager;
  try {
    sm = await deps.subnetManager(opts, prev, signal);
  } catch (err) {
    if (signal.aborted) return;
    throw new DaemonError('SUBNET_MANAGER', `Failed to create SubnetManager: ${errorMessage(err)}`, err);
  }
  log.info({ manager: sm.name() }, 'created subnet manager');

  let health: HttpServer | undefined;
  if (opts.healthzPort > 0) {
    health = await startHttpServer({
      host: opts.healthzIP,
      port: opts.healthzPort,
      handlers: daemonHandlers({ name: 'flanneld', registry: deps.registry, readiness: () => readiness }),
    });
    log.info({ ip: opts.healthzIP, port: health.port }, 'serving /healthz, /readyz and /metrics');
  }

  const background: Promise<unknown>[] = [];
  // Everything started here lives until the daemon ends, for whatever reason.
  const life = new AbortController();
  const endLife = (): void => life.abort();
  signal.addEventListener('abort', endLife, { once: true });
  try {
    stage('waiting for the network config');
    const config = await retrying('getting the network config', () => sm.getNetworkConfig(signal), signal, log, base);
    if (config === undefined) return;
    log.info({ backend: config.backend.type, ipv4: config.ipv4?.network.toString(), ipv6: config.ipv6?.network.toString(), nftables: config.enableNFTables }, 'network config');

    await checkBrNetfilter(config, deps.procSys);

    stage('selecting the external interface');
    const pub = effectivePublicIPs(opts, sm);
    let ext: ExternalInterface;
    try {
      ext = await selectExternalInterface(
        deps.handle,
        { iface: opts.iface, ifaceRegex: opts.ifaceRegex, ifaceCanReach: opts.ifaceCanReach, ...pub, enableIPv4: config.enableIPv4, enableIPv6: config.enableIPv6 },
        log,
      );
    } catch (err) {
      throw new DaemonError('NO_EXTERNAL_INTERFACE', errorMessage(err), err);
    }
    log.info({ iface: ext.name, index: ext.index, mtu: ext.mtu, addr: ext.ifaceAddr, v6addr: ext.ifaceV6Addr, publicIP: ext.extAddr, publicIPv6: ext.extV6Addr }, 'using interface');

    const factory = deps.backends[config.backend.type.toLowerCase()];
    if (!factory) throw unknownBackend(config.backend.type, Object.keys(deps.backends));
    if (sm.checkLease) {
      // A subnet that does not fit (podCIDR outside Network, pool exhausted) is
      // waited out here, before the backend creates devices.
      stage('waiting for a subnet lease');
      const v4 = (ext.extAddr ?? ext.ifaceAddr)?.toString();
      const v6 = (ext.extV6Addr ?? ext.ifaceV6Addr)?.toString();
      const pubs = { ...(v4 !== undefined ? { v4 } : {}), ...(v6 !== undefined ? { v6 } : {}) };
      await retrying('checking for a subnet lease', () => sm.checkLease!(pubs, signal), signal, log, base);
      if (signal.aborted) return;
    }
    stage('registering the backend network');
    const storedMacs = sm.getStoredMacAddresses?.();
    let network: Network;
    try {
      network = await factory().registerNetwork(config, ext, {
        handle: deps.handle,
        log: log.child({ backend: config.backend.type }),
        ...(storedMacs ? { storedMacs } : {}),
        hooks: {
          onPeers: (n) => m.peers.set(n),
          onIgnoredLeases: (n) => m.ignoredLeases.set(n),
          onProgrammingError: (kind) => m.programmingErrors.inc({ kind }),
          onSyncDuration: (s, ok) => m.reconcileDuration.observe({ result: ok ? 'ok' : 'error' }, s),
        },
      });
    } catch (err) {
      throw new DaemonError('REGISTER_NETWORK', `Error registering network: ${errorMessage(err)}`, err);
    }

    stage('acquiring the subnet lease');
    const lease = await retrying('acquiring the subnet lease', () => sm.acquireLease(network.leaseAttrs(), signal), signal, log, base);
    if (lease === undefined) return;
    m.leaseExpiration.set(lease.expiration ? lease.expiration.getTime() / 1000 : 0);
    log.info({ subnet: lease.subnet?.toString(), ipv6Subnet: lease.ipv6Subnet?.toString(), expiration: lease.expiration?.toISOString() }, 'acquired lease');
    await retrying('configuring the lease on the backend', () => network.setLease(lease), signal, log, base);
    if (signal.aborted) return;

    // Traffic rules: remove the other mode's artifacts, then ensure ours.
    const mode = config.enableNFTables ? 'nftables' : 'iptables';
    const other = config.enableNFTables ? 'iptables' : 'nftables';
    stage(`installing ${mode} rules`);
    try {
      await deps.traffic(other).cleanUp();
    } catch (err) {
      log.warn({ err, mode: other }, 'failed to clean up the other traffic mode');
    }
    const rules = deps.traffic(mode);
    const syncs: { name: string; fn: () => Promise<void> }[] = [];
    if (opts.ipMasq) {
      let prevForMasq = prev;
      syncs.push({
        name: 'masq',
        fn: async () => {
          await rules.ensureMasq({ config, lease, prev: prevForMasq, fullyRandom: !opts.ipMasqFullyRandomDisable });
          prevForMasq = undefined; // stale rules are gone after the first success
        },
      });
    }
    if (opts.iptablesForwardRules) syncs.push({ name: 'forward', fn: () => rules.ensureForward({ config }) });
    if (opts.ipBlackholeRoute) syncs.push({ name: 'blackhole', fn: () => ensureBlackholeRoutes(deps.handle, lease) });
    for (const s of syncs) {
      await retrying(`setting up ${s.name} rules`, s.fn, signal, log, base);
      if (signal.aborted) return;
    }
    for (const s of syncs) {
      const runner = new BoundedFrequencyRunner({
        name: s.name,
        fn: s.fn,
        minInterval: 1000,
        maxInterval: opts.iptablesResync * 1000,
        retryInitial: 1000,
        runAtStart: false,
        onError: (err, n) => {
          m.ruleSyncErrors.inc({ rules: s.name });
          log.error({ err, failures: n }, `${s.name} rule sync failed`);
        },
      });
      background.push(runner.loop(life.signal));
    }

    stage('writing the subnet file');
    await retrying(`writing ${opts.subnetFile}`, () => writeSubnetEnv(opts.subnetFile, { config, lease, mtu: network.mtu(), ipMasq: opts.ipMasq }), signal, log, base);
    if (signal.aborted) return;
    log.info({ file: opts.subnetFile }, 'wrote subnet file');
    readiness = { ready: true, reason: '' };
    m.ready.set(1);
    if (deps.onReady) {
      try {
        await deps.onReady();
      } catch (err) {
        log.warn({ err }, 'ready notification failed');
      }
    }

    log.info('running backend');
    const backendRun = network.run(sm.watchLeases(life.signal), life.signal);
    const complete = sm.completeLease(lease, life.signal);
    // Whichever ends first (normally both, on abort) ends the daemon.
    const first = await Promise.race([
      backendRun.then(() => ({ who: 'backend' as const })),
      complete.then(() => ({ who: 'lease' as const })),
    ]).catch((err: unknown) => ({ who: 'error' as const, err }));
    life.abort();
    await Promise.allSettled([backendRun, complete]);
    if (first.who === 'error') throw first.err;
    if (!signal.aborted) throw new DaemonError('STOPPED', `${first.who} loop ended unexpectedly`);
  } finally {
    life.abort();
    signal.removeEventListener('abort', endLife);
    readiness = { ready: false, reason: 'shutting down' };
    m.ready.set(0);
    await Promise.allSettled(background);
    await health?.close();
    try {
      (sm as { close?: () => void }).close?.();
    } catch (err) {
      log.warn({ err }, 'closing the subnet manager failed');
    }
  }
}

/** `ip route add blackhole <lease subnet>` per family, kept if present (a same-metric real route wins). */
async function ensureBlackholeRoutes(h: NetlinkHandle, lease: Lease): Promise<void> {
  for (const [family, p] of [
    [4, lease.subnet],
    [6, lease.ipv6Subnet],
  ] as const) {
    if (!p) continue;
    try {
      await h.routeAdd({ family, dst: p.masked(), type: RTN_BLACKHOLE });
    } catch (err) {
      if (!isExists(err)) throw err;
    }
  }
}

/** Upstream flannel's backends that this flanneld does not have. */
export const UNSUPPORTED_BACKENDS = ['wireguard', 'ipip', 'ipsec', 'alloc', 'extension', 'gce', 'aws-vpc', 'ali-vpc', 'tencent-vpc'];

function unknownBackend(type: string, supported: readonly string[]): DaemonError {
  const t = type.toLowerCase();
  const list = supported.length ? supported.join(', ') : 'none';
  return UNSUPPORTED_BACKENDS.includes(t)
    ? new DaemonError('UNSUPPORTED_BACKEND', `Error fetching backend: backend type ${JSON.stringify(type)} is an upstream flannel backend that this flanneld does not implement; supported: ${list}`)
    : new DaemonError('UNKNOWN_BACKEND', `Error fetching backend: unknown backend type: ${type}; supported: ${list}`);
}
