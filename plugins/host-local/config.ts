// host-local IPAM configuration: parsed, validated and defaulted in one pass
// from the whole plugin config (IPAM plugins receive the parent's config).
// Messages keep the reference plugin's text; every failure here is a
// NetError of kind ErrorCode.InvalidConfig, which the skeleton reports as
// CNI code 7 instead of the reference's 999.
import { ErrorCode, NetError } from '../../lib/errors.ts';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import type { Family } from '../../lib/ip/index.ts';
import { parseCniArgs } from '../skel/args.ts';
import type { DNS, Route } from '../skel/types.ts';

export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';

/** One pool: a subnet and the inclusive [rangeStart, rangeEnd] inside it. */
export interface Range {
  readonly subnet: IPPrefix;
  readonly rangeStart: IPAddr;
  readonly rangeEnd: IPAddr;
  readonly gateway: IPAddr;
}

/** Disjoint ranges of one family; an ADD takes one address per range set. */
export type RangeSet = readonly Range[];

export interface HostLocalConfig {
  /** Network name (store directory name). */
  readonly name: string;
  readonly cniVersion: string;
  readonly ranges: readonly RangeSet[];
  readonly routes: readonly Route[];
  readonly dataDir: string;
  /** Path of a resolv.conf-style file to report as DNS, when set. */
  readonly resolvConf: string | undefined;
  /** Requested addresses (CNI_ARGS IP, args.cni.ips, runtimeConfig.ips), deduplicated, in that order. */
  readonly requestedIPs: readonly IPAddr[];
}

const invalid = (msg: string): NetError => new NetError(ErrorCode.InvalidConfig, msg);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const absent = (v: unknown): v is undefined | null => v === undefined || v === null;

function optString(o: Obj, key: string, where: string): string | undefined {
  const v = o[key];
  if (absent(v)) return undefined;
  if (typeof v !== 'string') throw invalid(`${where}${key}: expected a string`);
  return v;
}

function optArray(o: Obj, key: string, where: string): unknown[] | undefined {
  const v = o[key];
  if (absent(v)) return undefined;
  if (!Array.isArray(v)) throw invalid(`${where}${key}: expected an array`);
  return v;
}

/** A JSON IP address field ("" counts as absent, like Go's net.IP). */
function optIP(o: Obj, key: string, where: string): IPAddr | undefined {
  const s = optString(o, key, where);
  if (s === undefined || s === '') return undefined;
  const ip = IPAddr.parse(s);
  if (!ip) throw invalid(`invalid IP address: ${s}`);
  return ip;
}

function parseCidr(s: unknown, where: string): IPPrefix {
  if (typeof s !== 'string') throw invalid(`${where}: expected a CIDR string`);
  const p = IPPrefix.parse(s);
  if (!p) throw invalid(`invalid CIDR address: ${s}`);
  return p;
}

/** A requested address: "ip" or "ip/len" (the length is accepted and ignored). */
function parseRequested(v: unknown): IPAddr {
  if (typeof v !== 'string') throw invalid(`invalid IP address ${JSON.stringify(v)}`);
  const ip = IPAddr.parseWithOptionalPrefix(v);
  if (!ip) throw invalid(`invalid IP address ${v}`);
  return ip;
}

interface RawRange {
  subnet: IPPrefix;
  rangeStart: IPAddr | undefined;
  rangeEnd: IPAddr | undefined;
  gateway: IPAddr | undefined;
}

function readRange(v: unknown, where: string): RawRange {
  if (!isObj(v)) throw invalid(`${where}: expected a range object`);
  if (absent(v.subnet) || v.subnet === '') throw invalid(`${where}: missing subnet`);
  return {
    subnet: parseCidr(v.subnet, `${where}.subnet`),
    rangeStart: optIP(v, 'rangeStart', `${where}.`),
    rangeEnd: optIP(v, 'rangeEnd', `${where}.`),
    gateway: optIP(v, 'gateway', `${where}.`),
  };
}

function readRangeSets(v: unknown, where: string): RawRange[][] {
  if (!Array.isArray(v)) throw invalid(`${where}: expected an array of range sets`);
  return v.map((set, i) => {
    if (!Array.isArray(set)) throw invalid(`${where}[${i}]: expected an array of ranges`);
    return set.map((r, j) => readRange(r, `${where}[${i}][${j}]`));
  });
}

/** The reference's Range.Contains: in the subnet and within the bounds known so far. */
function inRange(subnet: IPPrefix, start: IPAddr | undefined, end: IPAddr | undefined, ip: IPAddr): boolean {
  if (!subnet.contains(ip)) return false;
  if (start && ip.compare(start) < 0) return false;
  if (end && ip.compare(end) > 0) return false;
  return true;
}

export function rangeContains(r: Range, ip: IPAddr): boolean {
  return inRange(r.subnet, r.rangeStart, r.rangeEnd, ip);
}

export function rangeString(r: Range): string {
  return `${r.rangeStart}-${r.rangeEnd}`;
}

export function rangeSetString(set: RangeSet): string {
  return set.map(rangeString).join(',');
}

export function rangeSetFamily(set: RangeSet): Family {
  return set[0]!.subnet.family;
}

/** The range of `set` that contains `ip`, if any. */
export function rangeFor(set: RangeSet, ip: IPAddr): Range | undefined {
  return set.find((r) => rangeContains(r, ip));
}

function rangesOverlap(a: Range, b: Range): boolean {
  if (a.subnet.family !== b.subnet.family) return false;
  return rangeContains(a, b.rangeStart) || rangeContains(a, b.rangeEnd) || rangeContains(b, a.rangeStart) || rangeContains(b, a.rangeEnd);
}

/** Validates and defaults one range; throws the reference's message (without the set prefix). */
function canonicalizeRange(raw: RawRange): Range {
  const { subnet } = raw;
  const bits = subnet.addr.bits;
  if (subnet.length > bits - 2) throw new Error(`Network ${subnet} too small to allocate from`);
  if (subnet.hasHostBits()) {
    throw new Error(`Network has host bits set. For a subnet mask of length ${subnet.length} the network address is ${subnet.network()}`);
  }
  const gateway = raw.gateway ?? subnet.network().next();
  let rangeStart = raw.rangeStart;
  if (rangeStart) {
    if (!inRange(subnet, rangeStart, raw.rangeEnd, rangeStart)) throw new Error(`RangeStart ${rangeStart} not in network ${subnet}`);
  } else {
    rangeStart = subnet.network().next();
  }
  let rangeEnd = raw.rangeEnd;
  if (rangeEnd) {
    if (!inRange(subnet, rangeStart, rangeEnd, rangeEnd)) throw new Error(`RangeEnd ${rangeEnd} not in network ${subnet}`);
  } else {
    rangeEnd = subnet.family === 4 ? subnet.last().prev() : subnet.last();
  }
  return { subnet, rangeStart, rangeEnd, gateway };
}

function canonicalizeRangeSet(raw: RawRange[]): RangeSet {
  if (raw.length === 0) throw new Error('empty range set');
  const out: Range[] = [];
  for (const r of raw) {
    const c = canonicalizeRange(r);
    if (out.length > 0 && out[0]!.subnet.family !== c.subnet.family) throw new Error('mixed address families');
    out.push(c);
  }
  for (let i = 0; i < out.length; i++) {
    for (let j = i + 1; j < out.length; j++) {
      if (rangesOverlap(out[i]!, out[j]!)) throw new Error(`subnets ${rangeString(out[i]!)} and ${rangeString(out[j]!)} overlap`);
    }
  }
  return out;
}

function parseRoute(v: unknown, where: string): Route {
  if (!isObj(v)) throw invalid(`${where}: expected a route object`);
  const route: Route = { dst: parseCidr(v.dst, `${where}.dst`).toString() };
  const gw = optIP(v, 'gw', `${where}.`);
  if (gw) route.gw = gw.toString();
  for (const key of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
    const n = v[key];
    if (absent(n)) continue;
    if (typeof n !== 'number' || !Number.isInteger(n)) throw invalid(`${where}.${key}: expected an integer`);
    route[key] = n;
  }
  return route;
}

/** Compares dotted CNI versions; non-numeric parts make it "not at least". */
function versionAtLeast(v: string, min: string): boolean {
  const a = v.split('.').map(Number);
  const b = min.split('.').map(Number);
  if (a.length !== 3 || a.some((x) => !Number.isInteger(x) || x < 0)) return false;
  for (let i = 0; i < 3; i++) {
    if (a[i]! !== b[i]!) return a[i]! > b[i]!;
  }
  return true;
}

/** The `ipam` object of a plugin config, or throws the reference's error. */
function ipamOf(config: Readonly<Obj>): Obj {
  const ipam = config.ipam;
  if (absent(ipam)) throw invalid("IPAM config missing 'ipam' key");
  if (!isObj(ipam)) throw invalid("invalid 'ipam': expected an object");
  return ipam;
}

/**
 * Parses the host-local config from the whole plugin config (stdin) plus the
 * raw CNI_ARGS. `cniVersion` is the request's version (for the ≤0.2.0 rule).
 */
export function loadConfig(config: Readonly<Obj>, cniArgs: string, cniVersion: string): HostLocalConfig {
  const ipam = ipamOf(config);
  const name = typeof config.name === 'string' ? config.name : '';

  // Requested addresses: CNI_ARGS, then args.cni.ips, then runtimeConfig.ips.
  const requested: IPAddr[] = [];
  const envArgs = parseCniArgs(cniArgs, ['IP']);
  const ipArg = envArgs.get('IP');
  if (ipArg !== undefined && ipArg !== '') {
    const ip = IPAddr.parseWithOptionalPrefix(ipArg);
    if (!ip) throw invalid(`ARGS: error parsing value of "IP=${ipArg}": invalid IP address ${ipArg}`);
    requested.push(ip);
  }
  const args = config.args;
  if (isObj(args) && isObj(args.cni)) {
    for (const v of optArray(args.cni, 'ips', 'args.cni.') ?? []) requested.push(parseRequested(v));
  }
  const rc = isObj(config.runtimeConfig) ? config.runtimeConfig : {};
  for (const v of optArray(rc, 'ips', 'runtimeConfig.') ?? []) requested.push(parseRequested(v));
  const seen = new Set<string>();
  const requestedIPs = requested.filter((ip) => {
    const k = ip.toString();
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });

  // Range sets: runtimeConfig.ipRanges, then the legacy single range, then ipam.ranges.
  const rawSets: RawRange[][] = [];
  if (!absent(rc.ipRanges)) rawSets.push(...readRangeSets(rc.ipRanges, 'runtimeConfig.ipRanges'));
  if (!absent(ipam.subnet) && ipam.subnet !== '') rawSets.push([readRange(ipam, 'ipam')]);
  if (!absent(ipam.ranges)) rawSets.push(...readRangeSets(ipam.ranges, 'ipam.ranges'));
  if (rawSets.length === 0) throw invalid('no IP ranges specified');

  const ranges: RangeSet[] = [];
  const perFamily = { 4: 0, 6: 0 };
  rawSets.forEach((raw, i) => {
    let set: RangeSet;
    try {
      set = canonicalizeRangeSet(raw);
    } catch (err) {
      throw invalid(`invalid range set ${i}: ${(err as Error).message}`);
    }
    perFamily[rangeSetFamily(set)]++;
    ranges.push(set);
  });
  if ((perFamily[4] > 1 || perFamily[6] > 1) && !versionAtLeast(cniVersion, '0.3.0')) {
    throw invalid(`CNI version ${cniVersion} does not support more than 1 address per family`);
  }
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      if (ranges[i]!.some((a) => ranges[j]!.some((b) => rangesOverlap(a, b)))) {
        throw invalid(`range set ${i} overlaps with ${j}`);
      }
    }
  }

  const routes = (optArray(ipam, 'routes', 'ipam.') ?? []).map((r, i) => parseRoute(r, `ipam.routes[${i}]`));
  const dataDir = optString(ipam, 'dataDir', 'ipam.') || DEFAULT_DATA_DIR;
  const resolvConf = optString(ipam, 'resolvConf', 'ipam.') || undefined;

  return Object.freeze({
    name,
    cniVersion,
    ranges: Object.freeze(ranges),
    routes: Object.freeze(routes),
    dataDir,
    resolvConf,
    requestedIPs: Object.freeze(requestedIPs),
  });
}

/**
 * Where the store of this config lives, derived as leniently as possible:
 * DEL and GC must work even when the rest of the config no longer validates.
 */
export function storeLocation(config: Readonly<Obj>): { name: string; dataDir: string } {
  const name = typeof config.name === 'string' ? config.name : '';
  const ipam = config.ipam;
  const dd = isObj(ipam) && typeof ipam.dataDir === 'string' && ipam.dataDir !== '' ? ipam.dataDir : DEFAULT_DATA_DIR;
  return { name, dataDir: dd };
}

/** Parses resolv.conf text: nameserver, domain, search, options; '#' and ';' start comments. */
export function parseResolvConf(text: string): DNS {
  const dns: DNS = {};
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line[0] === '#' || line[0] === ';') continue;
    const fields = line.split(/\s+/);
    if (fields.length < 2) continue;
    const [key, first, ...rest] = fields as [string, string, ...string[]];
    switch (key) {
      case 'nameserver':
        (dns.nameservers ??= []).push(first);
        break;
      case 'domain':
        dns.domain = first;
        break;
      case 'search':
        (dns.search ??= []).push(first, ...rest);
        break;
      case 'options':
        (dns.options ??= []).push(first, ...rest);
        break;
    }
  }
  return dns;
}
