// flanneld's command line: every upstream flag with its upstream name and
// default, parsed with Go's `flag` package syntax, then FLANNELD_<NAME> env
// vars for the flags the command line did not set (coreos flagutil
// SetFlagsFromEnv: the command line wins, empty env values are ignored).
// The parser is lib/daemon/flags.ts; the table and the checks are here.
import { FlagError, GoFlagSet, parseGoBool, parseGoInt } from '../lib/daemon/flags.ts';
import type { GoFlag } from '../lib/daemon/flags.ts';

export { FlagError, parseGoBool, parseGoInt };

export interface FlanneldOptions {
  etcdEndpoints: string[];
  etcdPrefix: string;
  etcdKeyfile: string;
  etcdCertfile: string;
  etcdCAFile: string;
  etcdUsername: string;
  etcdPassword: string;
  kubeSubnetMgr: boolean;
  kubeApiUrl: string;
  kubeconfigFile: string;
  kubeAnnotationPrefix: string;
  netConfigPath: string;
  iface: string[];
  ifaceRegex: string[];
  ifaceCanReach: string;
  publicIP: string;
  publicIPv6: string;
  subnetFile: string;
  /** Minutes, 1..1439. */
  subnetLeaseRenewMargin: number;
  ipMasq: boolean;
  ipMasqFullyRandomDisable: boolean;
  /** Seconds. */
  iptablesResync: number;
  iptablesForwardRules: boolean;
  ipBlackholeRoute: boolean;
  setNodeNetworkUnavailable: boolean;
  healthzIP: string;
  healthzPort: number;
  version: boolean;
  /** klog `-v`. */
  verbosity: number;
  /** `--log-format` / `--logging-format`: text (klog lines) or json; '' is the default (text, or env KN_LOG_FORMAT). */
  logFormat: string;
  loggingFormat: string;
  /** klog `-vmodule` and `-log_backtrace_at`: accepted for compatibility, not used. */
  vmodule: string;
  logBacktraceAt: string;
  // ---- plain environment (not flags) ----
  nodeName: string | undefined;
  podName: string | undefined;
  podNamespace: string | undefined;
  /** EVENT_QUEUE_DEPTH, default 5000. */
  eventQueueDepth: number;
  /** CONT_WHEN_CACHE_NOT_READY. */
  contWhenCacheNotReady: boolean;
}

type FlagKey = Exclude<keyof FlanneldOptions, 'nodeName' | 'podName' | 'podNamespace' | 'eventQueueDepth' | 'contWhenCacheNotReady'>;

/** The flag table, in upstream's order. */
export const FLAGS: readonly GoFlag<FlagKey>[] = [
  { name: 'etcd-endpoints', key: 'etcdEndpoints', kind: 'csv', def: ['http://127.0.0.1:4001', 'http://127.0.0.1:2379'], usage: 'a comma-delimited list of etcd endpoints' },
  { name: 'etcd-prefix', key: 'etcdPrefix', kind: 'string', def: '/coreos.com/network', usage: 'etcd prefix' },
  { name: 'etcd-keyfile', key: 'etcdKeyfile', kind: 'string', def: '', usage: 'SSL key file used to secure etcd communication' },
  { name: 'etcd-certfile', key: 'etcdCertfile', kind: 'string', def: '', usage: 'SSL certification file used to secure etcd communication' },
  { name: 'etcd-cafile', key: 'etcdCAFile', kind: 'string', def: '', usage: 'SSL Certificate Authority file used to secure etcd communication' },
  { name: 'etcd-username', key: 'etcdUsername', kind: 'string', def: '', usage: 'username for BasicAuth to etcd' },
  { name: 'etcd-password', key: 'etcdPassword', kind: 'string', def: '', usage: 'password for BasicAuth to etcd' },
  { name: 'iface', key: 'iface', kind: 'list', envCommaList: true, def: [], usage: 'interface to use (IP or name) for inter-host communication; repeatable, checked in order' },
  { name: 'iface-regex', key: 'ifaceRegex', kind: 'list', def: [], usage: 'regex matching the interface (IP, then name) to use for inter-host communication; repeatable, checked after --iface' },
  { name: 'iface-can-reach', key: 'ifaceCanReach', kind: 'string', def: '', usage: "use the interface the kernel would use to reach this IP ('ip route get <ip>')" },
  { name: 'subnet-file', key: 'subnetFile', kind: 'string', def: '/run/flannel/subnet.env', usage: 'filename where env variables (subnet, MTU, ...) will be written to' },
  { name: 'public-ip', key: 'publicIP', kind: 'string', def: '', usage: 'IP accessible by other nodes for inter-host communication' },
  { name: 'public-ipv6', key: 'publicIPv6', kind: 'string', def: '', usage: 'IPv6 accessible by other nodes for inter-host communication' },
  { name: 'subnet-lease-renew-margin', key: 'subnetLeaseRenewMargin', kind: 'int', def: 60, usage: 'subnet lease renewal margin, in minutes, ranging from 1 to 1439' },
  { name: 'ip-masq', key: 'ipMasq', kind: 'bool', def: false, usage: 'setup IP masquerade rule for traffic destined outside of overlay network' },
  { name: 'ip-masq-fully-random-disable', key: 'ipMasqFullyRandomDisable', kind: 'bool', def: false, usage: 'do not use --random-fully in the masquerade rules' },
  { name: 'kube-subnet-mgr', key: 'kubeSubnetMgr', kind: 'bool', def: false, usage: 'contact the Kubernetes API for subnet assignment instead of etcd' },
  { name: 'kube-api-url', key: 'kubeApiUrl', kind: 'string', def: '', usage: 'Kubernetes API server URL; not needed in a pod' },
  { name: 'kube-annotation-prefix', key: 'kubeAnnotationPrefix', kind: 'string', def: 'flannel.alpha.coreos.com', usage: 'Kubernetes annotation prefix; "/" is appended unless it contains one' },
  { name: 'kubeconfig-file', key: 'kubeconfigFile', kind: 'string', def: '', usage: 'kubeconfig file location; not needed in a pod' },
  { name: 'version', key: 'version', kind: 'bool', def: false, usage: 'print version and exit' },
  { name: 'healthz-ip', key: 'healthzIP', kind: 'string', def: '0.0.0.0', usage: 'the IP address for healthz server to listen' },
  { name: 'healthz-port', key: 'healthzPort', kind: 'int', def: 0, usage: 'the port for healthz server to listen (0 to disable)' },
  { name: 'iptables-resync', key: 'iptablesResync', kind: 'int', def: 5, usage: 'resync period for iptables rules, in seconds' },
  { name: 'iptables-forward-rules', key: 'iptablesForwardRules', kind: 'bool', def: true, usage: 'add default accept rules to FORWARD chain in iptables' },
  { name: 'net-config-path', key: 'netConfigPath', kind: 'string', def: '/etc/kube-flannel/net-conf.json', usage: 'path to the network configuration file' },
  { name: 'ip-blackhole-route', key: 'ipBlackholeRoute', kind: 'bool', def: false, usage: 'keep a blackhole route for the local pod subnet' },
  { name: 'set-node-network-unavailable', key: 'setNodeNetworkUnavailable', kind: 'bool', def: true, usage: 'set NodeNetworkUnavailable after ready' },
  { name: 'v', key: 'verbosity', kind: 'int', def: 0, usage: 'number for the log level verbosity' },
  { name: 'log-format', key: 'logFormat', kind: 'string', def: '', usage: 'log format: text (klog lines, the default) or json' },
  { name: 'logging-format', key: 'loggingFormat', kind: 'string', def: '', usage: 'same as --log-format (the name kube-proxy uses)' },
  { name: 'vmodule', key: 'vmodule', kind: 'string', def: '', usage: 'accepted for compatibility (klog), ignored' },
  { name: 'log_backtrace_at', key: 'logBacktraceAt', kind: 'string', def: '', usage: 'accepted for compatibility (klog), ignored' },
];

const FLAG_SET = new GoFlagSet(FLAGS, { program: 'flanneld', envPrefix: 'FLANNELD' });

export type ParseResult = { kind: 'run'; options: FlanneldOptions; args: string[] } | { kind: 'help'; usage: string } | { kind: 'version' };

/**
 * Parses argv (without node and script) the way Go's flag package does:
 * `-name`, `--name`, `-name=value`, `-name value` (not for booleans), `--`
 * ends the flags, and so does the first non-flag argument. `-version` on
 * the command line is answered before the environment is read, as
 * upstream does, so a bad FLANNELD_* value does not stop it.
 */
export function parseFlags(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): ParseResult {
  const cmd = FLAG_SET.parseCommandLine(argv);
  if (cmd.kind === 'help') return { kind: 'help', usage: usage() };
  if (cmd.values.version === true) return { kind: 'version' };
  FLAG_SET.applyEnv(cmd, env);
  const args = cmd.args;
  const o = cmd.values;
  if (o.version === true) return { kind: 'version' };

  const opts = o as unknown as FlanneldOptions;
  const margin = opts.subnetLeaseRenewMargin;
  if (margin <= 0 || margin >= 24 * 60) {
    throw new FlagError('Invalid subnet-lease-renew-margin option, out of acceptable range (1..1439 minutes)');
  }
  for (const f of [opts.logFormat, opts.loggingFormat]) if (f !== '' && f !== 'text' && f !== 'json') throw new FlagError(`invalid --log-format "${f}": must be text or json`);
  if (opts.healthzPort < 0 || opts.healthzPort > 65535) throw new FlagError(`invalid --healthz-port ${opts.healthzPort}`);
  if (opts.iptablesResync < 1) throw new FlagError(`invalid --iptables-resync ${opts.iptablesResync}: must be at least 1 second`);
  for (const r of opts.ifaceRegex) {
    try {
      new RegExp(r);
    } catch {
      throw new FlagError(`invalid --iface-regex "${r}"`);
    }
  }

  opts.nodeName = nonEmpty(env['NODE_NAME']);
  opts.podName = nonEmpty(env['POD_NAME']);
  opts.podNamespace = nonEmpty(env['POD_NAMESPACE']);
  opts.eventQueueDepth = 5000;
  const depth = nonEmpty(env['EVENT_QUEUE_DEPTH']);
  if (depth !== undefined) {
    const n = parseGoInt(depth);
    if (n === undefined || n <= 0) throw new FlagError(`invalid EVENT_QUEUE_DEPTH "${depth}"`);
    opts.eventQueueDepth = n;
  }
  opts.contWhenCacheNotReady = false;
  const cont = nonEmpty(env['CONT_WHEN_CACHE_NOT_READY']);
  if (cont !== undefined) {
    const b = parseGoBool(cont);
    if (b === undefined) throw new FlagError(`invalid CONT_WHEN_CACHE_NOT_READY "${cont}"`);
    opts.contWhenCacheNotReady = b;
  }
  return { kind: 'run', options: opts, args };
}

const nonEmpty = (s: string | undefined): string | undefined => (s === undefined || s === '' ? undefined : s);

/** FLANNELD_ETCD_ENDPOINTS for etcd-endpoints. */
export function envKey(flag: string): string {
  return FLAG_SET.envKey(flag);
}

/** Usage text in the shape of Go's PrintDefaults. */
export function usage(): string {
  return FLAG_SET.usage();
}
