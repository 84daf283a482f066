// kube-proxy's command line and configuration: upstream's flags with
// upstream's defaults (cmd/kube-proxy/app/options.go and
// pkg/proxy/apis/config/v1alpha1/defaults.go) in pflag syntax, plus
// `--manifests DIR`, and `--config FILE`.
//
// Precedence, as upstream's Options.Complete: without --config the flags
// (over the defaults) are the configuration. With --config the file (over
// the defaults) is the configuration and the other config flags are ignored,
// except the logging verbosity (-v) and --hostname-override, which upstream
// applies on top of the file. Flags that are not part of the file
// (--master, --cleanup, --manifests) always apply.
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { Command, CommanderError, Option } from 'commander';
import { NetError } from '../../lib/errors.ts';
import { IPPrefix, type Family } from '../../lib/ip/index.ts';
import { formatGoDuration, parseGoDuration } from './duration.ts';
import { parseConfigFile, type FileConfig } from './file.ts';

export type ProxyMode = 'iptables' | 'nftables' | 'ipvs';
export type DetectLocalMode = 'ClusterCIDR' | 'NodeCIDR' | 'BridgeInterface' | 'InterfaceNamePrefix';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface ProxyConfig {
  readonly mode: ProxyMode;
  readonly kubeconfig: string;
  readonly master: string;
  /** --manifests DIR: read objects from a directory instead of the API. */
  readonly manifests: string | undefined;
  /** The node name: --hostname-override, else the lower-cased hostname (upstream's NodeName). */
  readonly nodeName: string;
  readonly clusterCIDRs: readonly IPPrefix[];
  /** CIDRs or the single word "primary"; empty = all local addresses. */
  readonly nodePortAddresses: readonly string[];
  readonly masqueradeAll: boolean;
  readonly masqueradeBit: number;
  /** The active mode's: --iptables-… (iptables, nftables) or --ipvs-min-sync-period / --ipvs-sync-period. */
  readonly minSyncPeriodMs: number;
  readonly syncPeriodMs: number;
  /** The IPVS mode's settings (--ipvs-… flags, the file's `ipvs:` section). */
  readonly ipvs: IPVSConfig;
  readonly localhostNodePorts: boolean;
  readonly detectLocalMode: DetectLocalMode;
  readonly bridgeInterface: string;
  readonly interfaceNamePrefix: string;
  /** Undefined: the server is disabled (an empty address). */
  readonly healthzBindAddress: HostPort | undefined;
  readonly metricsBindAddress: HostPort | undefined;
  readonly configSyncPeriodMs: number;
  readonly verbosity: number;
  /** --logging-format / --log-format; undefined: the default (text, or env KN_LOG_FORMAT). */
  readonly logFormat: 'text' | 'json' | undefined;
  /** --version: print it and exit. */
  readonly version: boolean;
  readonly cleanup: boolean;
  readonly configFile: string | undefined;
  /** Problems that do not stop the proxy (unknown config fields, ignored flags). */
  readonly warnings: readonly string[];
}

export interface IPVSConfig {
  /** --ipvs-scheduler; "" means rr. */
  readonly scheduler: string;
  /** --ipvs-exclude-cidrs: virtual servers there are never deleted. */
  readonly excludeCIDRs: readonly IPPrefix[];
  /** --ipvs-strict-arp: arp_ignore=1, arp_announce=2. */
  readonly strictARP: boolean;
  /** --ipvs-tcp-timeout / --ipvs-tcpfin-timeout / --ipvs-udp-timeout in whole seconds; 0 leaves the kernel's. */
  readonly timeouts: { readonly tcp: number; readonly tcpFin: number; readonly udp: number };
}

export class ConfigError extends NetError {
  constructor(message: string) {
    super('INVALID_CONFIG', message);
  }
}

export const DEFAULTS = {
  healthzBindAddress: '0.0.0.0:10256',
  metricsBindAddress: '127.0.0.1:10249',
  masqueradeBit: 14,
  minSyncPeriodMs: 1000,
  syncPeriodMs: 30_000,
  ipvsMinSyncPeriodMs: 0,
  configSyncPeriodMs: 15 * 60_000,
} as const;

/** The raw values of the config flags, with whether each was given on the command line. */
export interface FlagValues {
  readonly values: Readonly<Record<string, unknown>>;
  readonly given: ReadonlySet<string>;
}

const parseBoolFlag = (v: string): boolean => {
  // pflag's ParseBool set: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False.
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw new ConfigError(`invalid boolean value ${JSON.stringify(v)}`);
};
const durationFlag = (v: string): number => {
  const ms = parseGoDuration(v);
  if (ms === undefined) throw new ConfigError(`invalid duration ${JSON.stringify(v)}`);
  return ms;
};
const intFlag = (v: string): number => {
  const s = v.startsWith('=') ? v.slice(1) : v; // `-v=4`
  if (!/^-?[0-9]+$/.test(s)) throw new ConfigError(`invalid integer ${JSON.stringify(v)}`);
  return Number(s);
};
const sliceFlag = (v: string, prev: unknown): string[] => [...((prev as string[] | undefined) ?? []), ...v.split(',').map((s) => s.trim()).filter((s) => s !== '')];
const boolOption = (flags: string, desc: string, dflt: boolean): Option => new Option(`${flags} [bool]`, desc).argParser(parseBoolFlag).default(dflt);

/** Adds kube-proxy's flags to a command (the daemon's, and `trace` reuses the model ones). */
export function addProxyFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option('--proxy-mode <mode>', "Which proxy mode to use: on Linux this can be 'iptables' (default), 'ipvs' or 'nftables'.").default(''))
    .addOption(new Option('--kubeconfig <path>', 'Path to kubeconfig file with authorization information (the master location can be overridden by the master flag).').default(''))
    .addOption(new Option('--master <url>', 'The address of the Kubernetes API server (overrides any value in kubeconfig)').default(''))
    .addOption(new Option('--manifests <dir>', 'Read Services, EndpointSlices, Pods and Nodes from this manifest directory instead of the Kubernetes API.'))
    .addOption(new Option('--hostname-override <name>', 'If non-empty, will be used as the name of the Node that kube-proxy is running on.').default(''))
    .addOption(new Option('--cluster-cidr <cidrs>', 'The CIDR range of the pods in the cluster (one per family, comma-separated).').default(''))
    .addOption(new Option('--nodeport-addresses <cidrs>', "A list of CIDR ranges that contain valid node IPs, or alternatively, the single string 'primary'.").argParser(sliceFlag).default([]))
    .addOption(boolOption('--masquerade-all', 'SNAT all traffic sent via Service cluster IPs.', false))
    .addOption(new Option('--iptables-masquerade-bit <bit>', 'The bit of the fwmark space to mark packets requiring SNAT with. Must be within the range [0, 31].').argParser(intFlag).default(DEFAULTS.masqueradeBit))
    .addOption(new Option('--iptables-min-sync-period <duration>', 'The minimum period between iptables rule resyncs (e.g. \'5s\', \'1m\', \'2h22m\').').argParser(durationFlag).default(DEFAULTS.minSyncPeriodMs, '1s'))
    .addOption(new Option('--iptables-sync-period <duration>', 'An interval (e.g. \'5s\', \'1m\', \'2h22m\') indicating how frequently various re-synchronizing and cleanup operations are performed. Must be greater than 0.').argParser(durationFlag).default(DEFAULTS.syncPeriodMs, '30s'))
    .addOption(new Option('--ipvs-scheduler <name>', 'The ipvs scheduler type when proxy mode is ipvs').default(''))
    .addOption(new Option('--ipvs-min-sync-period <duration>', "The minimum period of IPVS rules resync (e.g. '5s', '1m', '2h22m'). A value of 0 means every Service or EndpointSlice change will result in an immediate IPVS resync.").argParser(durationFlag).default(DEFAULTS.ipvsMinSyncPeriodMs, '0s'))
    .addOption(new Option('--ipvs-sync-period <duration>', "An interval (e.g. '5s', '1m', '2h22m') indicating how frequently various re-synchronizing and cleanup operations are performed. Must be greater than 0.").argParser(durationFlag).default(DEFAULTS.syncPeriodMs, '30s'))
    .addOption(new Option('--ipvs-exclude-cidrs <cidrs>', 'A comma-separated list of CIDRs which the ipvs proxier should not touch when cleaning up IPVS rules.').argParser(sliceFlag).default([]))
    .addOption(boolOption('--ipvs-strict-arp', 'Enable strict ARP by setting arp_ignore to 1 and arp_announce to 2', false))
    .addOption(new Option('--ipvs-tcp-timeout <duration>', "The timeout for idle IPVS TCP connections, 0 to leave as-is. (e.g. '5s', '1m', '2h22m').").argParser(durationFlag).default(0, '0s'))
    .addOption(new Option('--ipvs-tcpfin-timeout <duration>', "The timeout for IPVS TCP connections after receiving a FIN packet, 0 to leave as-is. (e.g. '5s', '1m', '2h22m').").argParser(durationFlag).default(0, '0s'))
    .addOption(new Option('--ipvs-udp-timeout <duration>', "The timeout for IPVS UDP packets, 0 to leave as-is. (e.g. '5s', '1m', '2h22m').").argParser(durationFlag).default(0, '0s'))
    .addOption(boolOption('--iptables-localhost-nodeports', 'If false, kube-proxy will disable the legacy behavior of allowing NodePort services to be accessed via localhost. (Applies only to iptables mode and IPv4.)', true))
    .addOption(new Option('--detect-local-mode <mode>', 'Mode to use to detect local traffic.').choices(['ClusterCIDR', 'NodeCIDR', 'BridgeInterface', 'InterfaceNamePrefix']).default('ClusterCIDR'))
    .addOption(new Option('--pod-bridge-interface <name>', 'A bridge interface name. When --detect-local-mode is BridgeInterface, kube-proxy will consider traffic to be local if it originates from this bridge.').default(''))
    .addOption(new Option('--pod-interface-name-prefix <prefix>', 'An interface name prefix. When --detect-local-mode is InterfaceNamePrefix, traffic from interfaces with this prefix is local.').default(''))
    .addOption(new Option('--healthz-bind-address <ip:port>', 'The IP address and port for the health check server to serve on. Set empty to disable.').default(DEFAULTS.healthzBindAddress))
    .addOption(new Option('--metrics-bind-address <ip:port>', 'The IP address and port for the metrics server to serve on. Set empty to disable.').default(DEFAULTS.metricsBindAddress))
    .addOption(new Option('--config-sync-period <duration>', 'How often configuration from the apiserver is refreshed. Must be greater than 0.').argParser(durationFlag).default(DEFAULTS.configSyncPeriodMs, '15m0s'))
    .addOption(new Option('--config <file>', 'The path to the configuration file.'))
    .addOption(boolOption('--cleanup', 'If true cleanup iptables and ipvs rules and exit.', false))
    .addOption(new Option('-v, --v <level>', 'number for the log level verbosity').argParser(intFlag).default(0))
    .addOption(new Option('--logging-format <format>', 'Sets the log format. Permitted formats: "json", "text".').choices(['text', 'json']))
    .addOption(new Option('--log-format <format>', 'Same as --logging-format.').choices(['text', 'json']))
    .addOption(boolOption('--version', 'Print version information and quit.', false));
}

/** Commander attribute name → our flag name, for error messages and precedence. */
const FLAG_NAMES: Readonly<Record<string, string>> = {
  proxyMode: 'proxy-mode',
  kubeconfig: 'kubeconfig',
  master: 'master',
  manifests: 'manifests',
  hostnameOverride: 'hostname-override',
  clusterCidr: 'cluster-cidr',
  nodeportAddresses: 'nodeport-addresses',
  masqueradeAll: 'masquerade-all',
  iptablesMasqueradeBit: 'iptables-masquerade-bit',
  iptablesMinSyncPeriod: 'iptables-min-sync-period',
  iptablesSyncPeriod: 'iptables-sync-period',
  iptablesLocalhostNodeports: 'iptables-localhost-nodeports',
  ipvsScheduler: 'ipvs-scheduler',
  ipvsMinSyncPeriod: 'ipvs-min-sync-period',
  ipvsSyncPeriod: 'ipvs-sync-period',
  ipvsExcludeCidrs: 'ipvs-exclude-cidrs',
  ipvsStrictArp: 'ipvs-strict-arp',
  ipvsTcpTimeout: 'ipvs-tcp-timeout',
  ipvsTcpfinTimeout: 'ipvs-tcpfin-timeout',
  ipvsUdpTimeout: 'ipvs-udp-timeout',
  detectLocalMode: 'detect-local-mode',
  podBridgeInterface: 'pod-bridge-interface',
  podInterfaceNamePrefix: 'pod-interface-name-prefix',
  healthzBindAddress: 'healthz-bind-address',
  metricsBindAddress: 'metrics-bind-address',
  configSyncPeriod: 'config-sync-period',
  config: 'config',
  cleanup: 'cleanup',
  loggingFormat: 'logging-format',
  logFormat: 'log-format',
  version: 'version',
  v: 'v',
};

/** Reads the flag values of a parsed command. */
export function flagValues(cmd: Command): FlagValues {
  const opts = cmd.opts();
  const values: Record<string, unknown> = {};
  const given = new Set<string>();
  for (const [attr, name] of Object.entries(FLAG_NAMES)) {
    values[name] = opts[attr];
    if (cmd.getOptionValueSource(attr) === 'cli') given.add(name);
  }
  return { values, given };
}

export function parseHostPort(s: string, what: string): HostPort | undefined {
  if (s === '') return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:]*)):([0-9]+)$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ConfigError(`${what}: invalid address ${JSON.stringify(s)} (want IP:port)`);
  return { host: m[1] ?? m[2] ?? '', port };
}

function parseClusterCIDRs(s: string): IPPrefix[] {
  const out: IPPrefix[] = [];
  for (const part of s.split(',').map((x) => x.trim()).filter((x) => x !== '')) {
    const p = IPPrefix.parse(part);
    if (!p) throw new ConfigError(`clusterCIDR: invalid CIDR ${JSON.stringify(part)}`);
    if (out.some((q) => q.family === p.family)) throw new ConfigError(`clusterCIDR: at most one CIDR per IP family, got ${JSON.stringify(s)}`);
    out.push(p.masked());
  }
  return out;
}

function checkNodePortAddresses(list: readonly string[]): void {
  for (const a of list) {
    if (a === 'primary') {
      if (list.length > 1) throw new ConfigError('nodePortAddresses: "primary" must be the only entry');
      continue;
    }
    if (!IPPrefix.parse(a)) throw new ConfigError(`nodePortAddresses: invalid CIDR ${JSON.stringify(a)}`);
  }
}

function checkMode(m: string): ProxyMode {
  if (m === '') return 'iptables';
  if (m === 'iptables' || m === 'nftables' || m === 'ipvs') return m;
  throw new ConfigError(`proxy mode ${JSON.stringify(m)}: must be one of iptables, nftables, ipvs`);
}

function checkDetectLocal(m: string): DetectLocalMode {
  if (m === '') return 'ClusterCIDR';
  if (m === 'ClusterCIDR' || m === 'NodeCIDR' || m === 'BridgeInterface' || m === 'InterfaceNamePrefix') return m;
  throw new ConfigError(`detectLocalMode ${JSON.stringify(m)}: must be one of ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix`);
}

/**
 * The configuration from flag values and, with --config, the file's parsed
 * contents: defaulted, validated, frozen. Pure but for the hostname default.
 */
export function resolveConfig(flags: FlagValues, file?: { config: FileConfig; warnings: readonly string[] }, host: () => string = hostname): ProxyConfig {
  const f = flags.values;
  const str = (name: string): string => (f[name] as string | undefined) ?? '';
  const warnings: string[] = [...(file?.warnings ?? [])];
  if (file) {
    const ignored = [...flags.given].filter((n) => !['config', 'v', 'hostname-override', 'master', 'manifests', 'cleanup', 'logging-format', 'log-format', 'version'].includes(n));
    for (const n of ignored) warnings.push(`--${n} is ignored: --config is set and its file takes precedence`);
  }
  const fc: FileConfig = file?.config ?? {};
  const useFile = file !== undefined;
  const pick = <T>(fromFile: T | undefined, flag: T, dflt: T): T => (useFile ? (fromFile ?? dflt) : flag);
  const mode = checkMode(pick(fc.mode, str('proxy-mode'), ''));
  // In the file the iptables and nftables sections are separate; the active mode's applies.
  const section = mode === 'nftables' ? fc.nftables : fc.iptables;
  const masqueradeBit = pick(section?.masqueradeBit, f['iptables-masquerade-bit'] as number, DEFAULTS.masqueradeBit);
  if (!Number.isInteger(masqueradeBit) || masqueradeBit < 0 || masqueradeBit > 31) throw new ConfigError(`masqueradeBit ${masqueradeBit}: must be within [0, 31]`);
  const ipvsMode = mode === 'ipvs';
  const minSyncPeriodMs = ipvsMode
    ? pick(fc.ipvs?.minSyncPeriodMs, f['ipvs-min-sync-period'] as number, DEFAULTS.ipvsMinSyncPeriodMs)
    : pick(section?.minSyncPeriodMs, f['iptables-min-sync-period'] as number, DEFAULTS.minSyncPeriodMs);
  const syncPeriodMs = ipvsMode ? pick(fc.ipvs?.syncPeriodMs, f['ipvs-sync-period'] as number, DEFAULTS.syncPeriodMs) : pick(section?.syncPeriodMs, f['iptables-sync-period'] as number, DEFAULTS.syncPeriodMs);
  const ipvs = resolveIPVS(fc, f, pick);
  if (!(syncPeriodMs > 0)) throw new ConfigError(`syncPeriod ${formatGoDuration(syncPeriodMs)}: must be greater than 0`);
  if (minSyncPeriodMs < 0) throw new ConfigError(`minSyncPeriod ${formatGoDuration(minSyncPeriodMs)}: must be greater than or equal to 0`);
  if (minSyncPeriodMs > syncPeriodMs) throw new ConfigError(`minSyncPeriod ${formatGoDuration(minSyncPeriodMs)}: must be less than or equal to syncPeriod ${formatGoDuration(syncPeriodMs)}`);
  const configSyncPeriodMs = pick(fc.configSyncPeriodMs, f['config-sync-period'] as number, DEFAULTS.configSyncPeriodMs);
  if (!(configSyncPeriodMs > 0)) throw new ConfigError('configSyncPeriod: must be greater than 0');
  const nodePortAddresses = pick(fc.nodePortAddresses, f['nodeport-addresses'] as string[], []);
  checkNodePortAddresses(nodePortAddresses);
  const detectLocalMode = checkDetectLocal(pick(fc.detectLocalMode, str('detect-local-mode'), ''));
  const bridgeInterface = pick(fc.bridgeInterface, str('pod-bridge-interface'), '');
  const interfaceNamePrefix = pick(fc.interfaceNamePrefix, str('pod-interface-name-prefix'), '');
  if (detectLocalMode === 'BridgeInterface' && bridgeInterface === '') throw new ConfigError('detectLocalMode BridgeInterface needs --pod-bridge-interface');
  if (detectLocalMode === 'InterfaceNamePrefix' && interfaceNamePrefix === '') throw new ConfigError('detectLocalMode InterfaceNamePrefix needs --pod-interface-name-prefix');
  // Upstream: the flag wins over the file for these two.
  const hostnameOverride = (flags.given.has('hostname-override') ? str('hostname-override') : pick(fc.hostnameOverride, str('hostname-override'), '')).trim();
  const verbosity = flags.given.has('v') ? (f['v'] as number) : pick(fc.verbosity, f['v'] as number, 0);
  const nodeName = (hostnameOverride !== '' ? hostnameOverride : host()).toLowerCase();
  const cfg: ProxyConfig = {
    mode,
    kubeconfig: pick(fc.kubeconfig, str('kubeconfig'), ''),
    master: str('master'),
    manifests: f['manifests'] as string | undefined,
    nodeName,
    clusterCIDRs: parseClusterCIDRs(pick(fc.clusterCIDR, str('cluster-cidr'), '')),
    nodePortAddresses,
    masqueradeAll: pick(section?.masqueradeAll, f['masquerade-all'] as boolean, false),
    masqueradeBit,
    minSyncPeriodMs,
    syncPeriodMs,
    ipvs,
    localhostNodePorts: pick(fc.iptables?.localhostNodePorts, f['iptables-localhost-nodeports'] as boolean, true),
    detectLocalMode,
    bridgeInterface,
    interfaceNamePrefix,
    healthzBindAddress: parseHostPort(pick(fc.healthzBindAddress, str('healthz-bind-address'), DEFAULTS.healthzBindAddress), 'healthzBindAddress'),
    metricsBindAddress: parseHostPort(pick(fc.metricsBindAddress, str('metrics-bind-address'), DEFAULTS.metricsBindAddress), 'metricsBindAddress'),
    configSyncPeriodMs,
    verbosity,
    logFormat: (f['logging-format'] ?? f['log-format']) as 'text' | 'json' | undefined,
    version: f['version'] === true,
    cleanup: f['cleanup'] as boolean,
    configFile: f['config'] as string | undefined,
    warnings,
  };
  return Object.freeze(cfg);
}

const IPVS_SCHEDULER_NAME = /^[a-z]{1,15}$/;

/** The `ipvs:` settings, from the file or the flags (as the other settings: with --config, the file). */
function resolveIPVS(fc: FileConfig, f: Readonly<Record<string, unknown>>, pick: <T>(fromFile: T | undefined, flag: T, dflt: T) => T): IPVSConfig {
  const scheduler = pick(fc.ipvs?.scheduler, (f['ipvs-scheduler'] as string | undefined) ?? '', '');
  if (scheduler !== '' && !IPVS_SCHEDULER_NAME.test(scheduler)) throw new ConfigError(`ipvs scheduler ${JSON.stringify(scheduler)}: not a scheduler name`);
  const excludeCIDRs: IPPrefix[] = [];
  for (const c of pick(fc.ipvs?.excludeCIDRs, (f['ipvs-exclude-cidrs'] as string[] | undefined) ?? [], [])) {
    const p = IPPrefix.parse(c);
    if (!p) throw new ConfigError(`ipvs excludeCIDRs: invalid CIDR ${JSON.stringify(c)}`);
    excludeCIDRs.push(p.masked());
  }
  const secs = (what: string, ms: number): number => {
    if (ms < 0) throw new ConfigError(`ipvs ${what} ${formatGoDuration(ms)}: must be greater than or equal to 0`);
    return Math.floor(ms / 1000);
  };
  return {
    scheduler,
    excludeCIDRs,
    strictARP: pick(fc.ipvs?.strictARP, (f['ipvs-strict-arp'] as boolean | undefined) ?? false, false),
    timeouts: {
      tcp: secs('tcpTimeout', pick(fc.ipvs?.tcpTimeoutMs, (f['ipvs-tcp-timeout'] as number | undefined) ?? 0, 0)),
      tcpFin: secs('tcpFinTimeout', pick(fc.ipvs?.tcpFinTimeoutMs, (f['ipvs-tcpfin-timeout'] as number | undefined) ?? 0, 0)),
      udp: secs('udpTimeout', pick(fc.ipvs?.udpTimeoutMs, (f['ipvs-udp-timeout'] as number | undefined) ?? 0, 0)),
    },
  };
}

/** The cluster CIDR of one family (for the ClusterCIDR local-traffic detector). */
export function clusterCIDRFor(cfg: ProxyConfig, family: Family): IPPrefix | undefined {
  return cfg.clusterCIDRs.find((p) => p.family === family);
}

/** A bad command line: the message, and the exit code pflag gives it (2). */
export class UsageError extends NetError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/**
 * Runs commander over argv and turns its errors into UsageError (commander
 * would print and exit itself otherwise; only main.ts exits).
 */
export function parseCommand(cmd: Command, argv: readonly string[], writeHelp: (s: string) => void = (s) => process.stdout.write(s)): void {
  // Errors come back as UsageError for main to print; --help text goes to writeHelp.
  cmd.exitOverride().configureOutput({ writeErr: () => {}, writeOut: writeHelp });
  try {
    cmd.parse(argv as string[], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help') throw err;
      throw new UsageError(err.message.replace(/^error: /, ''));
    }
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
}

/** Parses argv of the daemon (no subcommand) and loads --config; the one entry main uses. */
export async function loadConfig(argv: readonly string[], read: (path: string) => Promise<string> = (p) => readFile(p, 'utf8')): Promise<ProxyConfig> {
  const cmd = addProxyFlags(new Command('kube-proxy').allowExcessArguments(false)).addHelpText(
    'after',
    '\nCommands:\n  trace [options]  trace a packet through the rules rendered for --manifests DIR (or the kernel\'s); see `kube-proxy trace --help`\n',
  );
  parseCommand(cmd, argv);
  return configFromCommand(cmd, read);
}

/** The configuration of an already parsed command (with addProxyFlags' flags). */
export async function configFromCommand(cmd: Command, read: (path: string) => Promise<string> = (p) => readFile(p, 'utf8')): Promise<ProxyConfig> {
  const flags = flagValues(cmd);
  const path = flags.values['config'] as string | undefined;
  let file: ReturnType<typeof parseConfigFile> | undefined;
  if (path !== undefined) {
    let text: string;
    try {
      text = await read(path);
    } catch (err) {
      throw new ConfigError(`failed to read kube-proxy config file ${path}: ${(err as Error).message}`);
    }
    file = parseConfigFile(text, path);
  }
  return resolveConfig(flags, file);
}
