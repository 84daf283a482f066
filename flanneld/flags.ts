// flanneld's command line: every upstream flag with its upstream name and
// default, parsed with Go's `flag` package syntax, then FLANNELD_<NAME> env
// vars for the flags the command line did not set (coreos flagutil
// SetFlagsFromEnv: the command line wins, empty env values are ignored).
import { NetError } from '../lib/errors.ts';

export class FlagError extends NetError {
  constructor(message: string) {
    super('INVALID_FLAG', message);
  }
}

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

type Kind = 'string' | 'bool' | 'int' | 'list' | 'csv';
type FlagKey = Exclude<keyof FlanneldOptions, 'nodeName' | 'podName' | 'podNamespace' | 'eventQueueDepth' | 'contWhenCacheNotReady'>;

interface FlagSpec {
  name: string;
  key: FlagKey;
  kind: Kind;
  def: string | boolean | number | string[];
  usage: string;
}

/** The flag table, in upstream's order. */
export const FLAGS: readonly FlagSpec[] = [
  { name: 'etcd-endpoints', key: 'etcdEndpoints', kind: 'csv', def: ['http://127.0.0.1:4001', 'http://127.0.0.1:2379'], usage: 'a comma-delimited list of etcd endpoints' },
  { name: 'etcd-prefix', key: 'etcdPrefix', kind: 'string', def: '/coreos.com/network', usage: 'etcd prefix' },
  { name: 'etcd-keyfile', key: 'etcdKeyfile', kind: 'string', def: '', usage: 'SSL key file used to secure etcd communication' },
  { name: 'etcd-certfile', key: 'etcdCertfile', kind: 'string', def: '', usage: 'SSL certification file used to secure etcd communication' },
  { name: 'etcd-cafile', key: 'etcdCAFile', kind: 'string', def: '', usage: 'SSL Certificate Authority file used to secure etcd communication' },
  { name: 'etcd-username', key: 'etcdUsername', kind: 'string', def: '', usage: 'username for BasicAuth to etcd' },
  { name: 'etcd-password', key: 'etcdPassword', kind: 'string', def: '', usage: 'password for BasicAuth to etcd' },
  { name: 'iface', key: 'iface', kind: 'list', def: [], usage: 'interface to use (IP or name) for inter-host communication; repeatable, checked in order' },
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
  { name: 'vmodule', key: 'vmodule', kind: 'string', def: '', usage: 'accepted for compatibility (klog), ignored' },
  { name: 'log_backtrace_at', key: 'logBacktraceAt', kind: 'string', def: '', usage: 'accepted for compatibility (klog), ignored' },
];

const byName = new Map(FLAGS.map((f) => [f.name, f]));

export type ParseResult = { kind: 'run'; options: FlanneldOptions; args: string[] } | { kind: 'help'; usage: string };

/** Go's strconv.ParseBool. */
export function parseGoBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(s)) return false;
  return undefined;
}

/** Go's strconv.ParseInt(s, 0, 64) for the ranges flags use: sign, 0x/0o/0b/leading-0 octal, underscores. */
export function parseGoInt(s: string): number | undefined {
  const m = /^([+-]?)(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)$/.exec(s);
  if (!m) return undefined;
  let body = m[2]!.replace(/_/g, '');
  let v: number;
  if (/^0[xXoObB]/.test(body)) v = Number(body.toLowerCase());
  else if (body.length > 1 && body.startsWith('0')) v = parseInt(body.slice(1), 8);
  else v = Number(body);
  if (!Number.isSafeInteger(v)) return undefined;
  return m[1] === '-' ? -v : v;
}

function defaults(): Record<FlagKey, unknown> {
  const o = {} as Record<FlagKey, unknown>;
  for (const f of FLAGS) o[f.key] = Array.isArray(f.def) ? [...f.def] : f.def;
  return o;
}

function setValue(o: Record<FlagKey, unknown>, f: FlagSpec, raw: string, fresh: Set<string>, source: string): void {
  switch (f.kind) {
    case 'string':
      o[f.key] = raw;
      break;
    case 'bool': {
      const b = parseGoBool(raw);
      if (b === undefined) throw new FlagError(`invalid boolean value "${raw}" for ${source}: parse error`);
      o[f.key] = b;
      break;
    }
    case 'int': {
      const n = parseGoInt(raw);
      if (n === undefined) throw new FlagError(`invalid value "${raw}" for ${source}: parse error`);
      o[f.key] = n;
      break;
    }
    case 'csv':
      o[f.key] = raw.split(',');
      break;
    case 'list': {
      // Repeatable: each occurrence appends. Flags replace the default list on first use.
      const cur = fresh.has(f.name) ? (o[f.key] as string[]) : [];
      fresh.add(f.name);
      o[f.key] = [...cur, raw];
      break;
    }
  }
}

/**
 * Parses argv (without node and script) the way Go's flag package does:
 * `-name`, `--name`, `-name=value`, `-name value` (not for booleans), `--`
 * ends the flags, and so does the first non-flag argument.
 */
export function parseFlags(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): ParseResult {
  const o = defaults();
  const setOnCmdline = new Set<string>();
  const listSeen = new Set<string>();
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (a.length < 2 || a[0] !== '-') break;
    let body = a.slice(a[1] === '-' ? 2 : 1);
    if (body === '' || body[0] === '-' || body[0] === '=') throw new FlagError(`bad flag syntax: ${a}`);
    let value: string | undefined;
    const eq = body.indexOf('=');
    if (eq >= 0) {
      value = body.slice(eq + 1);
      body = body.slice(0, eq);
    }
    if (body === 'h' || body === 'help') {
      if (!byName.has(body)) return { kind: 'help', usage: usage() };
    }
    const f = byName.get(body);
    if (!f) throw new FlagError(`flag provided but not defined: -${body}`);
    if (value === undefined) {
      if (f.kind === 'bool') value = 'true';
      else {
        if (i + 1 >= argv.length) throw new FlagError(`flag needs an argument: -${body}`);
        value = argv[++i]!;
      }
    }
    setValue(o, f, value, listSeen, `flag -${f.name}`);
    setOnCmdline.add(f.name);
  }
  const args = argv.slice(i);

  for (const f of FLAGS) {
    if (setOnCmdline.has(f.name)) continue;
    const key = envKey(f.name);
    const v = env[key];
    if (v === undefined || v === '') continue;
    if (f.key === 'iface') {
      // An interface name or IP cannot contain a comma: accept a list here (upstream takes one value).
      for (const part of v.split(',')) if (part.trim() !== '') setValue(o, f, part.trim(), listSeen, key);
    } else setValue(o, f, v, listSeen, key);
  }

  const opts = o as unknown as FlanneldOptions;
  const margin = opts.subnetLeaseRenewMargin;
  if (margin <= 0 || margin >= 24 * 60) {
    throw new FlagError('Invalid subnet-lease-renew-margin option, out of acceptable range (1..1439 minutes)');
  }
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
  return `FLANNELD_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/** Usage text in the shape of Go's PrintDefaults. */
export function usage(program = 'flanneld'): string {
  const lines = [`Usage: ${program} [OPTION]...`];
  for (const f of [...FLAGS].sort((a, b) => a.name.localeCompare(b.name))) {
    const type = f.kind === 'bool' ? '' : f.kind === 'int' ? ' int' : f.kind === 'list' ? ' value' : ' string';
    lines.push(`  -${f.name}${type}`);
    let def = '';
    if (f.kind === 'bool') def = f.def ? ' (default true)' : '';
    else if (f.kind === 'int') def = f.def !== 0 ? ` (default ${String(f.def)})` : '';
    else if (f.kind === 'csv') def = ` (default "${(f.def as string[]).join(',')}")`;
    else if (f.kind === 'string' && f.def !== '') def = ` (default "${String(f.def)}")`;
    lines.push(`    \t${f.usage}${def}`);
  }
  return lines.join('\n') + '\n';
}
