// Network config (etcd `<prefix>/config`, or net-conf.json in kube mode):
// parsed, defaulted and validated in one place, returned as a readonly value.
// Field names match case-insensitively, like Go's encoding/json.
import { NetError } from '../lib/errors.ts';
import { getFold } from './subnet/types.ts';
import type { FamilyNetworkConfig, NetworkConfig } from './subnet/types.ts';
import { IPAddr, IPPrefix, familyBits, type Family } from '../lib/ip/index.ts';

export class NetworkConfigError extends NetError {
  constructor(message: string, cause?: unknown) {
    super('INVALID_NET_CONFIG', message, { cause });
  }
}

/**
 * The backend used when the config has no `Backend`. Upstream's code falls
 * back to "udp" while its documentation says vxlan; we follow the documented
 * (and far more useful) vxlan.
 */
export const DEFAULT_BACKEND = 'vxlan';

export interface ParseOptions {
  /**
   * Run upstream's CheckNetworkConfig rules (etcd mode). The kube manager
   * passes false: upstream only parses net-conf.json there. Defaults are
   * filled in either way where they can be computed.
   */
  validate?: boolean;
}

const FIELDS: Record<Family, { net: string; len: string; min: string; max: string; maxLen: number; defLen: number; bigEnough: number; smallest: number }> = {
  4: { net: 'Network', len: 'SubnetLen', min: 'SubnetMin', max: 'SubnetMax', maxLen: 30, defLen: 24, bigEnough: 22, smallest: 28 },
  6: { net: 'IPv6Network', len: 'IPv6SubnetLen', min: 'IPv6SubnetMin', max: 'IPv6SubnetMax', maxLen: 126, defLen: 64, bigEnough: 62, smallest: 124 },
};

/** Parses a network config from JSON text. Throws NetworkConfigError. */
export function parseNetworkConfig(text: string, opts: ParseOptions = {}): NetworkConfig {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new NetworkConfigError(`failed to parse network config: ${(err as Error).message}`, err);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new NetworkConfigError('failed to parse network config: not a JSON object');
  }
  return networkConfigFromObject(v as Record<string, unknown>, opts);
}

export function networkConfigFromObject(o: Record<string, unknown>, opts: ParseOptions = {}): NetworkConfig {
  const validate = opts.validate ?? true;
  const enableIPv4 = optBool(o, 'EnableIPv4', true);
  const enableIPv6 = optBool(o, 'EnableIPv6', false);
  const enableNFTables = optBool(o, 'EnableNFTables', false);
  const backend = parseBackend(getFold(o, 'Backend'));

  const ipv4 = enableIPv4 ? familyNet(o, 4, validate) : undefined;
  const ipv6 = enableIPv6 ? familyNet(o, 6, validate) : undefined;
  if (validate && !enableIPv4 && !enableIPv6) {
    throw new NetworkConfigError('at least one of EnableIPv4 and EnableIPv6 must be true');
  }
  const cfg: NetworkConfig = {
    enableIPv4,
    enableIPv6,
    enableNFTables,
    ...(ipv4 ? { ipv4 } : {}),
    ...(ipv6 ? { ipv6 } : {}),
    backend,
  };
  return deepFreeze(cfg);
}

function parseBackend(raw: unknown): NetworkConfig['backend'] {
  if (raw === undefined || raw === null) return { type: DEFAULT_BACKEND, raw: {} };
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new NetworkConfigError('error decoding Backend property of config: not a JSON object');
  }
  const r = raw as Record<string, unknown>;
  const t = getFold(r, 'Type');
  if (t !== undefined && typeof t !== 'string') {
    throw new NetworkConfigError('error decoding Backend property of config: Type must be a string');
  }
  return { type: t === undefined || t === '' ? DEFAULT_BACKEND : t, raw: { ...r } };
}

function optBool(o: Record<string, unknown>, key: string, def: boolean): boolean {
  const v = getFold(o, key);
  if (v === undefined || v === null) return def;
  if (typeof v !== 'boolean') throw new NetworkConfigError(`${key} must be a boolean`);
  return v;
}

function optPrefix(o: Record<string, unknown>, key: string, family: Family): IPPrefix | undefined {
  const v = getFold(o, key);
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new NetworkConfigError(`${key} must be a CIDR string`);
  let p: IPPrefix;
  try {
    p = IPPrefix.mustParse(v);
  } catch (err) {
    throw new NetworkConfigError(`${key}: invalid CIDR "${v}"`, err);
  }
  if (p.family !== family) throw new NetworkConfigError(`${key}: "${v}" is not an IPv${family} network`);
  return p.masked();
}

function optAddr(o: Record<string, unknown>, key: string, family: Family): IPAddr | undefined {
  const v = getFold(o, key);
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new NetworkConfigError(`${key} must be an IP address string`);
  let a: IPAddr;
  try {
    a = IPAddr.mustParse(v);
  } catch (err) {
    throw new NetworkConfigError(`${key}: invalid IP address "${v}"`, err);
  }
  if (a.family !== family) throw new NetworkConfigError(`${key}: "${v}" is not an IPv${family} address`);
  // Upstream treats the zero address as "unset".
  return a.isUnspecified() ? undefined : a;
}

function optUint(o: Record<string, unknown>, key: string): number | undefined {
  const v = getFold(o, key);
  if (v === undefined || v === null || v === 0) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw new NetworkConfigError(`${key} must be a non-negative integer`);
  }
  return v;
}

function familyNet(o: Record<string, unknown>, family: Family, validate: boolean): FamilyNetworkConfig | undefined {
  const f = FIELDS[family];
  const network = optPrefix(o, f.net, family);
  if (!network) {
    if (!validate) return undefined;
    throw new NetworkConfigError(`please define a correct ${f.net} parameter in the flannel config`);
  }
  const bits = familyBits(family);
  let subnetLen = optUint(o, f.len);
  if (subnetLen !== undefined) {
    if (validate && subnetLen > f.maxLen) {
      throw new NetworkConfigError(`${f.len} must be less than /${f.maxLen + 1}`);
    }
    if (validate && subnetLen < network.length + 2) {
      throw new NetworkConfigError(`${f.net} must be able to accommodate at least four subnets`);
    }
    if (subnetLen > bits) throw new NetworkConfigError(`${f.len} /${subnetLen} is too long for IPv${family}`);
  } else if (network.length > f.smallest) {
    if (validate) {
      throw new NetworkConfigError(`${f.net} is too small. Minimum useful network prefix is /${f.smallest}`);
    }
    subnetLen = Math.min(network.length + 2, bits);
  } else {
    subnetLen = network.length <= f.bigEnough ? f.defLen : network.length + 2;
  }

  const size = 1n << BigInt(bits - subnetLen);

  let min = optAddr(o, f.min, family);
  if (min === undefined) min = network.network().add(size);
  else if (validate && !network.contains(min)) {
    throw new NetworkConfigError(`${f.min} is not in the range of the ${f.net}`);
  }
  let max = optAddr(o, f.max, family);
  if (max === undefined) max = network.last().add(1n - size);
  else if (validate && !network.contains(max)) {
    throw new NetworkConfigError(`${f.max} is not in the range of the ${f.net}`);
  }
  const minP = new IPPrefix(min, subnetLen);
  const maxP = new IPPrefix(max, subnetLen);
  if (validate) {
    if (minP.hasHostBits()) throw new NetworkConfigError(`${f.min} is not on a ${f.len} boundary: ${min.toString()}`);
    if (maxP.hasHostBits()) throw new NetworkConfigError(`${f.max} is not on a ${f.len} boundary: ${max.toString()}`);
    if (min.compare(max) > 0) throw new NetworkConfigError(`${f.min} ${min.toString()} is after ${f.max} ${max.toString()}`);
  }
  return { family, network, subnetLen, subnetMin: minP, subnetMax: maxP };
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !(v instanceof IPPrefix) && !(v instanceof IPAddr) && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}
