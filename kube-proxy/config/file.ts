// The KubeProxyConfiguration file (kubeproxy.config.k8s.io/v1alpha1), YAML
// or JSON (JSON is YAML), as `--config FILE` reads it. Upstream decodes
// strictly first and, when that fails only because of unknown fields, warns
// and decodes leniently; so do we. Fields this proxy does not act on (the
// conntrack sysctls, oomScoreAdj, …) are reported, not applied.
import { parse as parseYaml } from 'yaml';
import { NetError } from '../../lib/errors.ts';
import { parseGoDuration } from './duration.ts';

export const CONFIG_API_VERSION = 'kubeproxy.config.k8s.io/v1alpha1';
export const CONFIG_KIND = 'KubeProxyConfiguration';

export class ConfigFileError extends NetError {
  constructor(path: string, message: string) {
    super('INVALID_CONFIG', `failed to load kube-proxy config file ${path}: ${message}`);
  }
}

/** What a file may set; every field optional, durations in ms. */
export interface FileConfig {
  bindAddress?: string;
  healthzBindAddress?: string;
  metricsBindAddress?: string;
  kubeconfig?: string;
  hostnameOverride?: string;
  clusterCIDR?: string;
  mode?: string;
  nodePortAddresses?: string[];
  detectLocalMode?: string;
  bridgeInterface?: string;
  interfaceNamePrefix?: string;
  configSyncPeriodMs?: number;
  verbosity?: number;
  iptables?: { masqueradeAll?: boolean; masqueradeBit?: number; minSyncPeriodMs?: number; syncPeriodMs?: number; localhostNodePorts?: boolean };
  nftables?: { masqueradeAll?: boolean; masqueradeBit?: number; minSyncPeriodMs?: number; syncPeriodMs?: number };
  ipvs?: { scheduler?: string; syncPeriodMs?: number; minSyncPeriodMs?: number; excludeCIDRs?: string[]; strictARP?: boolean; tcpTimeoutMs?: number; tcpFinTimeoutMs?: number; udpTimeoutMs?: number };
}

export interface ParsedConfigFile {
  readonly config: FileConfig;
  /** Unknown or unsupported fields, for a warning each. */
  readonly warnings: readonly string[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Fields we read; other known v1alpha1 fields we accept but do not act on. */
const IGNORED_TOP = new Set([
  'apiVersion', 'kind', 'bindAddressHardFail', 'conntrack', 'enableProfiling', 'featureGates', 'ipvs', 'oomScoreAdj', 'portRange',
  'showHiddenMetricsForVersion', 'winkernel', 'windowsRunAsService', 'logging', 'clientConnection', 'detectLocal', 'iptables', 'nftables',
]);

class Reader {
  readonly warnings: string[] = [];
  constructor(private readonly path: string) {}

  fail(field: string, why: string): never {
    throw new ConfigFileError(this.path, `${field}: ${why}`);
  }
  string(o: Obj, key: string, field = key): string | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') this.fail(field, `expected a string, got ${JSON.stringify(v)}`);
    return v;
  }
  bool(o: Obj, key: string, field = key): boolean | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') this.fail(field, `expected a boolean, got ${JSON.stringify(v)}`);
    return v;
  }
  int(o: Obj, key: string, field = key): number | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(field, `expected an integer, got ${JSON.stringify(v)}`);
    return v;
  }
  duration(o: Obj, key: string, field = key): number | undefined {
    const s = this.string(o, key, field);
    if (s === undefined) return undefined;
    const ms = parseGoDuration(s);
    if (ms === undefined) this.fail(field, `invalid duration ${JSON.stringify(s)}`);
    return ms;
  }
  strings(o: Obj, key: string, field = key): string[] | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) this.fail(field, 'expected a list of strings');
    return v as string[];
  }
  section(o: Obj, key: string): Obj {
    const v = o[key];
    if (v === undefined || v === null) return {};
    if (!isObj(v)) this.fail(key, 'expected an object');
    return v;
  }
  unknown(o: Obj, known: readonly string[], prefix: string): void {
    for (const k of Object.keys(o)) {
      if (!known.includes(k)) this.warnings.push(`unknown field "${prefix}${k}"`);
    }
  }
}

/** Parses the file's text; `path` only names it in errors. */
export function parseConfigFile(text: string, path: string): ParsedConfigFile {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigFileError(path, (err as Error).message);
  }
  if (!isObj(doc)) throw new ConfigFileError(path, 'not a KubeProxyConfiguration object');
  if (doc.kind !== CONFIG_KIND) throw new ConfigFileError(path, `kind ${JSON.stringify(doc.kind)} is not ${CONFIG_KIND}`);
  if (doc.apiVersion !== CONFIG_API_VERSION) throw new ConfigFileError(path, `apiVersion ${JSON.stringify(doc.apiVersion)} is not ${CONFIG_API_VERSION}`);
  const r = new Reader(path);
  const c: FileConfig = {};
  const set = <K extends keyof FileConfig>(k: K, v: FileConfig[K] | undefined): void => {
    if (v !== undefined) c[k] = v;
  };
  set('bindAddress', r.string(doc, 'bindAddress'));
  set('healthzBindAddress', r.string(doc, 'healthzBindAddress'));
  set('metricsBindAddress', r.string(doc, 'metricsBindAddress'));
  set('hostnameOverride', r.string(doc, 'hostnameOverride'));
  set('clusterCIDR', r.string(doc, 'clusterCIDR'));
  set('mode', r.string(doc, 'mode'));
  set('nodePortAddresses', r.strings(doc, 'nodePortAddresses'));
  set('detectLocalMode', r.string(doc, 'detectLocalMode'));
  set('configSyncPeriodMs', r.duration(doc, 'configSyncPeriod'));
  const cc = r.section(doc, 'clientConnection');
  set('kubeconfig', r.string(cc, 'kubeconfig', 'clientConnection.kubeconfig'));
  const dl = r.section(doc, 'detectLocal');
  set('bridgeInterface', r.string(dl, 'bridgeInterface', 'detectLocal.bridgeInterface'));
  set('interfaceNamePrefix', r.string(dl, 'interfaceNamePrefix', 'detectLocal.interfaceNamePrefix'));
  r.unknown(dl, ['bridgeInterface', 'interfaceNamePrefix'], 'detectLocal.');
  const logging = r.section(doc, 'logging');
  set('verbosity', r.int(logging, 'verbosity', 'logging.verbosity'));
  const ipt = r.section(doc, 'iptables');
  c.iptables = {};
  const iptSet = <K extends keyof NonNullable<FileConfig['iptables']>>(k: K, v: NonNullable<FileConfig['iptables']>[K] | undefined): void => {
    if (v !== undefined) c.iptables![k] = v;
  };
  iptSet('masqueradeAll', r.bool(ipt, 'masqueradeAll', 'iptables.masqueradeAll'));
  iptSet('masqueradeBit', r.int(ipt, 'masqueradeBit', 'iptables.masqueradeBit'));
  iptSet('minSyncPeriodMs', r.duration(ipt, 'minSyncPeriod', 'iptables.minSyncPeriod'));
  iptSet('syncPeriodMs', r.duration(ipt, 'syncPeriod', 'iptables.syncPeriod'));
  iptSet('localhostNodePorts', r.bool(ipt, 'localhostNodePorts', 'iptables.localhostNodePorts'));
  r.unknown(ipt, ['masqueradeAll', 'masqueradeBit', 'minSyncPeriod', 'syncPeriod', 'localhostNodePorts'], 'iptables.');
  const nft = r.section(doc, 'nftables');
  c.nftables = {};
  const nftSet = <K extends keyof NonNullable<FileConfig['nftables']>>(k: K, v: NonNullable<FileConfig['nftables']>[K] | undefined): void => {
    if (v !== undefined) c.nftables![k] = v;
  };
  nftSet('masqueradeAll', r.bool(nft, 'masqueradeAll', 'nftables.masqueradeAll'));
  nftSet('masqueradeBit', r.int(nft, 'masqueradeBit', 'nftables.masqueradeBit'));
  nftSet('minSyncPeriodMs', r.duration(nft, 'minSyncPeriod', 'nftables.minSyncPeriod'));
  nftSet('syncPeriodMs', r.duration(nft, 'syncPeriod', 'nftables.syncPeriod'));
  r.unknown(nft, ['masqueradeAll', 'masqueradeBit', 'minSyncPeriod', 'syncPeriod'], 'nftables.');
  const ipvs = r.section(doc, 'ipvs');
  c.ipvs = {};
  const ipvsSet = <K extends keyof NonNullable<FileConfig['ipvs']>>(k: K, v: NonNullable<FileConfig['ipvs']>[K] | undefined): void => {
    if (v !== undefined) c.ipvs![k] = v;
  };
  ipvsSet('scheduler', r.string(ipvs, 'scheduler', 'ipvs.scheduler'));
  ipvsSet('syncPeriodMs', r.duration(ipvs, 'syncPeriod', 'ipvs.syncPeriod'));
  ipvsSet('minSyncPeriodMs', r.duration(ipvs, 'minSyncPeriod', 'ipvs.minSyncPeriod'));
  ipvsSet('excludeCIDRs', r.strings(ipvs, 'excludeCIDRs', 'ipvs.excludeCIDRs'));
  ipvsSet('strictARP', r.bool(ipvs, 'strictARP', 'ipvs.strictARP'));
  ipvsSet('tcpTimeoutMs', r.duration(ipvs, 'tcpTimeout', 'ipvs.tcpTimeout'));
  ipvsSet('tcpFinTimeoutMs', r.duration(ipvs, 'tcpFinTimeout', 'ipvs.tcpFinTimeout'));
  ipvsSet('udpTimeoutMs', r.duration(ipvs, 'udpTimeout', 'ipvs.udpTimeout'));
  r.unknown(ipvs, ['scheduler', 'syncPeriod', 'minSyncPeriod', 'excludeCIDRs', 'strictARP', 'tcpTimeout', 'tcpFinTimeout', 'udpTimeout'], 'ipvs.');
  const read = new Set(['bindAddress', 'healthzBindAddress', 'metricsBindAddress', 'hostnameOverride', 'clusterCIDR', 'mode', 'nodePortAddresses', 'detectLocalMode', 'configSyncPeriod']);
  for (const k of Object.keys(doc)) {
    if (read.has(k)) continue;
    if (!IGNORED_TOP.has(k)) r.warnings.push(`unknown field "${k}"`);
    else if (['conntrack', 'oomScoreAdj', 'portRange', 'winkernel', 'featureGates'].includes(k)) r.warnings.push(`field "${k}" is not supported by this kube-proxy and is ignored`);
  }
  return { config: c, warnings: r.warnings };
}
