// CNI versions and result conversion between the three result shapes:
//   1.0.0, 1.1.0          interfaces/ips/routes/dns (our internal Result shape)
//   0.3.0, 0.3.1, 0.4.0   the same with ips[].version "4"|"6" and fewer interface fields
//   0.1.0, 0.2.0          ip4/ip6 objects holding the first address of each family
// Key order follows the Go structs, so our output matches the reference text.
//
// Empty `dns`: for 1.x results it is omitted (current libcni, types/100
// MarshalJSON); the 0.x shapes always carry `"dns": {}` as every libcni does.
// Both forms parse everywhere. Addresses are validated but passed through
// verbatim (no re-canonicalisation).
import { IPAddr, IPPrefix, type Family } from '../../lib/ip/index.ts';
import { CniError, ErrCode, SUPPORTED_VERSIONS } from './types.ts';
import type { DNS, IPConfig, Interface, Result, Route } from './types.ts';
import { goJson } from './json.ts';

/** Parses "1.0.0" into [major, minor, micro] as libcni does ("" = 0.1.0). */
export function parseVersion(version: string): [number, number, number] {
  if (version === '') return [0, 1, 0];
  const parts = version.split('.');
  if (parts.length >= 4) throw new CniError(ErrCode.DecodingFailure, `invalid version "${version}": too many parts`);
  const names = ['major', 'minor', 'micro'];
  const nums: number[] = [0, 0, 0];
  parts.forEach((p, i) => {
    if (!/^[+-]?\d+$/.test(p)) {
      throw new CniError(ErrCode.DecodingFailure, `failed to convert ${names[i]} version part "${p}": invalid syntax`);
    }
    nums[i] = Number(p);
  });
  return [nums[0] ?? 0, nums[1] ?? 0, nums[2] ?? 0];
}

/** a >= b, comparing parsed versions. Throws CniError code 6 on a malformed version. */
export function versionAtLeast(a: string, b: string): boolean {
  const x = parseVersion(a);
  const y = parseVersion(b);
  for (let i = 0; i < 3; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

export function isSupportedVersion(v: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

type Shape = 'v1' | 'v04' | 'v02';
function shapeOf(version: string): Shape | undefined {
  switch (version) {
    case '1.0.0':
    case '1.1.0':
      return 'v1';
    case '0.3.0':
    case '0.3.1':
    case '0.4.0':
      return 'v04';
    case '0.1.0':
    case '0.2.0':
      return 'v02';
    default:
      return undefined;
  }
}

/** Address family of an IP ("10.0.0.1") or CIDR ("10.0.0.1/24"); IPv4-mapped IPv6 counts as 4, as in Go. */
export function familyOf(ipOrCidr: string): Family | undefined {
  return IPAddr.parse(ipOrCidr.split('/')[0] ?? '')?.family;
}

const isCidr = (s: string): boolean => IPPrefix.parse(s) !== undefined;

// ---- output ----------------------------------------------------------------

function dnsObject(dns: DNS | undefined): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (!dns) return o;
  if (dns.nameservers && dns.nameservers.length > 0) o.nameservers = [...dns.nameservers];
  if (dns.domain) o.domain = dns.domain;
  if (dns.search && dns.search.length > 0) o.search = [...dns.search];
  if (dns.options && dns.options.length > 0) o.options = [...dns.options];
  return o;
}

function routeObject(r: Route): Record<string, unknown> {
  const o: Record<string, unknown> = { dst: r.dst };
  if (r.gw) o.gw = r.gw;
  if (r.mtu) o.mtu = r.mtu;
  if (r.advmss) o.advmss = r.advmss;
  if (r.priority) o.priority = r.priority;
  if (r.table !== undefined) o.table = r.table;
  if (r.scope !== undefined) o.scope = r.scope;
  return o;
}

function interfaceObject(i: Interface, full: boolean): Record<string, unknown> {
  const o: Record<string, unknown> = { name: i.name };
  if (i.mac) o.mac = i.mac;
  if (full && i.mtu) o.mtu = i.mtu;
  if (i.sandbox) o.sandbox = i.sandbox;
  if (full && i.socketPath) o.socketPath = i.socketPath;
  if (full && i.pciID) o.pciID = i.pciID;
  return o;
}

function ipObject(ip: IPConfig, withVersion: boolean): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (withVersion) o.version = familyOf(ip.address) === 4 ? '4' : '6';
  if (ip.interface !== undefined) o.interface = ip.interface;
  o.address = ip.address;
  if (ip.gateway) o.gateway = ip.gateway;
  return o;
}

/**
 * The result as the JSON object a plugin prints for `toVersion`, keys in the
 * reference order. Throws CniError (999, "cannot convert: no valid IP
 * addresses") when a 0.1.0/0.2.0 result would carry no IP, and code 1 for an
 * unsupported version.
 */
export function convertResult(result: Result, toVersion: string): Record<string, unknown> {
  const shape = shapeOf(toVersion);
  if (shape === undefined) {
    throw new CniError(ErrCode.IncompatibleVersion, `unsupported CNI result version "${toVersion}"`);
  }
  const out: Record<string, unknown> = { cniVersion: toVersion };
  if (shape === 'v02') {
    const perFamily = new Map<Family, Record<string, unknown>>();
    for (const ip of result.ips ?? []) {
      const fam = familyOf(ip.address);
      if (fam === undefined || perFamily.has(fam)) continue;
      const o: Record<string, unknown> = { ip: ip.address };
      if (ip.gateway) o.gateway = ip.gateway;
      perFamily.set(fam, o);
    }
    if (perFamily.size === 0) throw new CniError(ErrCode.Internal, 'cannot convert: no valid IP addresses');
    for (const r of result.routes ?? []) {
      const target = perFamily.get(familyOf(r.dst) === 4 ? 4 : 6);
      if (!target) continue;
      const route: Record<string, unknown> = { dst: r.dst };
      if (r.gw) route.gw = r.gw;
      ((target.routes ??= []) as unknown[]).push(route);
    }
    const ip4 = perFamily.get(4);
    const ip6 = perFamily.get(6);
    if (ip4) out.ip4 = ip4;
    if (ip6) out.ip6 = ip6;
    out.dns = dnsObject(result.dns);
    return out;
  }
  const full = shape === 'v1';
  if (result.interfaces && result.interfaces.length > 0) {
    out.interfaces = result.interfaces.map((i) => interfaceObject(i, full));
  }
  if (result.ips && result.ips.length > 0) out.ips = result.ips.map((ip) => ipObject(ip, !full));
  if (result.routes && result.routes.length > 0) out.routes = result.routes.map(routeObject);
  const dns = dnsObject(result.dns);
  if (!full || Object.keys(dns).length > 0) out.dns = dns;
  return out;
}

/** The result as a plugin prints it: 4-space indented, no trailing newline. */
export function formatResult(result: Result, version: string): string {
  return goJson(convertResult(result, version), 4);
}

// ---- input -----------------------------------------------------------------

function decodeError(msg: string): CniError {
  return new CniError(ErrCode.DecodingFailure, msg);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optString(o: Record<string, unknown>, key: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw decodeError(`${where}.${key}: expected a string, got ${JSON.stringify(v)}`);
  return v === '' ? undefined : v;
}

function optInt(o: Record<string, unknown>, key: string, where: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw decodeError(`${where}.${key}: expected an integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

function optStrings(o: Record<string, unknown>, key: string, where: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
    throw decodeError(`${where}.${key}: expected a list of strings`);
  }
  return v.length > 0 ? [...(v as string[])] : undefined;
}

function optArray(o: Record<string, unknown>, key: string, where: string): Record<string, unknown>[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((e) => !isObject(e))) throw decodeError(`${where}.${key}: expected a list of objects`);
  return v as Record<string, unknown>[];
}

function cidr(o: Record<string, unknown>, key: string, where: string): string {
  const v = optString(o, key, where);
  if (v === undefined || !isCidr(v)) throw decodeError(`${where}.${key}: invalid CIDR address: ${v ?? ''}`);
  return v;
}

function optIP(o: Record<string, unknown>, key: string, where: string): string | undefined {
  const v = optString(o, key, where);
  if (v !== undefined && familyOf(v) === undefined) throw decodeError(`${where}.${key}: invalid IP address: ${v}`);
  return v;
}

function parseRoute(o: Record<string, unknown>, where: string): Route {
  const r: Route = { dst: cidr(o, 'dst', where) };
  const gw = optIP(o, 'gw', where);
  if (gw !== undefined) r.gw = gw;
  for (const k of ['mtu', 'advmss', 'priority'] as const) {
    const v = optInt(o, k, where);
    if (v) r[k] = v;
  }
  for (const k of ['table', 'scope'] as const) {
    const v = optInt(o, k, where);
    if (v !== undefined) r[k] = v;
  }
  return r;
}

function parseDns(o: Record<string, unknown>): DNS | undefined {
  const v = o.dns;
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw decodeError('dns: expected an object');
  const d: DNS = {};
  const nameservers = optStrings(v, 'nameservers', 'dns');
  const domain = optString(v, 'domain', 'dns');
  const search = optStrings(v, 'search', 'dns');
  const options = optStrings(v, 'options', 'dns');
  if (nameservers) d.nameservers = nameservers;
  if (domain) d.domain = domain;
  if (search) d.search = search;
  if (options) d.options = options;
  return Object.keys(d).length > 0 ? d : undefined;
}

/**
 * Parses a result of any supported version (ADD output of a delegated plugin,
 * prevResult) into the current shape. A result without `cniVersion` is taken
 * to be in `fallbackVersion` (the config's). Accepts an object, a JSON string
 * or JSON bytes. Throws CniError: 6 for malformed content, 1 for an
 * unsupported version.
 */
export function parseResult(json: unknown, fallbackVersion: string): Result {
  let obj: unknown = json;
  if (typeof json === 'string' || Buffer.isBuffer(json)) {
    try {
      obj = JSON.parse(json.toString());
    } catch (err) {
      throw decodeError(`failed to parse result: ${(err as Error).message}`);
    }
  }
  if (!isObject(obj)) throw decodeError('failed to parse result: not a JSON object');
  const declared = obj.cniVersion;
  if (declared !== undefined && typeof declared !== 'string') throw decodeError('cniVersion: expected a string');
  const version = declared ? declared : fallbackVersion;
  const shape = shapeOf(version);
  if (shape === undefined) {
    throw new CniError(ErrCode.IncompatibleVersion, `unsupported CNI result version "${version}"`);
  }
  const result: Result = {};
  const ips: IPConfig[] = [];
  const routes: Route[] = [];
  if (shape === 'v02') {
    for (const key of ['ip4', 'ip6'] as const) {
      const v = obj[key];
      if (v === undefined || v === null) continue;
      if (!isObject(v)) throw decodeError(`${key}: expected an object`);
      const ip: IPConfig = { address: cidr(v, 'ip', key) };
      const gw = optIP(v, 'gateway', key);
      if (gw !== undefined) ip.gateway = gw;
      ips.push(ip);
      optArray(v, 'routes', key).forEach((r, i) => routes.push(parseRoute(r, `${key}.routes[${i}]`)));
    }
  } else {
    const interfaces = optArray(obj, 'interfaces', 'result').map((o, i) => {
      const where = `interfaces[${i}]`;
      const name = o.name;
      if (typeof name !== 'string') throw decodeError(`${where}.name: expected a string`);
      const itf: Interface = { name };
      const mac = optString(o, 'mac', where);
      const sandbox = optString(o, 'sandbox', where);
      if (mac !== undefined) itf.mac = mac;
      if (shape === 'v1') {
        const mtu = optInt(o, 'mtu', where);
        if (mtu) itf.mtu = mtu;
      }
      if (sandbox !== undefined) itf.sandbox = sandbox;
      if (shape === 'v1') {
        const socketPath = optString(o, 'socketPath', where);
        const pciID = optString(o, 'pciID', where);
        if (socketPath !== undefined) itf.socketPath = socketPath;
        if (pciID !== undefined) itf.pciID = pciID;
      }
      return itf;
    });
    if (interfaces.length > 0) result.interfaces = interfaces;
    optArray(obj, 'ips', 'result').forEach((o, i) => {
      const where = `ips[${i}]`;
      const ip: IPConfig = { address: cidr(o, 'address', where) };
      const itf = optInt(o, 'interface', where);
      const gw = optIP(o, 'gateway', where);
      if (itf !== undefined) ip.interface = itf;
      if (gw !== undefined) ip.gateway = gw;
      ips.push(ip);
    });
    optArray(obj, 'routes', 'result').forEach((r, i) => routes.push(parseRoute(r, `routes[${i}]`)));
  }
  // Key order of the returned object mirrors the printed order.
  const ordered: Result = {};
  if (result.interfaces) ordered.interfaces = result.interfaces;
  if (ips.length > 0) ordered.ips = ips;
  if (routes.length > 0) ordered.routes = routes;
  const dns = parseDns(obj);
  if (dns) ordered.dns = dns;
  return ordered;
}
