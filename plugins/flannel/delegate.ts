// The flannel plugin's own config and the delegate config it renders from
// subnet.env (flannel-io/cni-plugin flannel.go + flannel_linux.go doCmdAdd,
// getDelegateIPAM). The rendered JSON is byte-compatible with upstream, which
// marshals a Go map: keys sorted at every level, except route objects, which
// are Go structs (dst, gw, mtu, advmss, priority, table, scope).
import { ErrorCode, NetError } from '../../lib/errors.ts';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import { goJson } from '../skel/json.ts';
import type { FlannelSubnetEnv } from './subnet-env.ts';

export const DEFAULT_SUBNET_FILE = '/run/flannel/subnet.env';
export const DEFAULT_DATA_DIR = '/var/lib/cni/flannel';

type JsonObject = Record<string, unknown>;

export interface FlannelConf {
  readonly name: string;
  readonly type: string;
  /** '' when the config has none. */
  readonly cniVersion: string;
  readonly subnetFile: string;
  readonly dataDir: string;
  /** The user's delegate dictionary (unvalidated; see validateDelegate). */
  readonly delegate: Readonly<JsonObject> | undefined;
  readonly ipam: Readonly<JsonObject> | undefined;
  readonly runtimeConfig: Readonly<JsonObject> | undefined;
}

/** The flannel config is unusable (ErrorCode.InvalidConfig: CNI code 7 at the skeleton). */
export class FlannelConfigError extends NetError {
  constructor(msg: string) {
    super(ErrorCode.InvalidConfig, msg);
  }
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function goKind(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (v === null) return 'null';
  return typeof v === 'boolean' ? 'bool' : typeof v;
}

function optString(conf: JsonObject, key: string, fallback: string): string {
  const v = conf[key];
  if (v === undefined || v === null || v === '') return fallback;
  if (typeof v !== 'string') {
    throw new FlannelConfigError(
      `failed to load netconf: json: cannot unmarshal ${goKind(v)} into Go struct field NetConf.${key} of type string`,
    );
  }
  return v;
}

function optObject(conf: JsonObject, key: string): JsonObject | undefined {
  const v = conf[key];
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) {
    throw new FlannelConfigError(
      `failed to load netconf: json: cannot unmarshal ${goKind(v)} into Go struct field NetConf.${key} of type map[string]interface {}`,
    );
  }
  return v;
}

/** Parses the plugin's stdin object (already JSON-decoded by the skeleton) with upstream defaults. */
export function parseFlannelConf(conf: Readonly<JsonObject>): FlannelConf {
  const c = conf as JsonObject;
  return {
    name: optString(c, 'name', ''),
    type: optString(c, 'type', ''),
    cniVersion: optString(c, 'cniVersion', ''),
    // An empty string means "default" (upstream would try to open "").
    subnetFile: optString(c, 'subnetFile', DEFAULT_SUBNET_FILE),
    dataDir: optString(c, 'dataDir', DEFAULT_DATA_DIR),
    delegate: optObject(c, 'delegate'),
    ipam: optObject(c, 'ipam'),
    runtimeConfig: optObject(c, 'runtimeConfig'),
  };
}

/** Upstream's checks of the user's delegate dictionary (cmdAdd), same messages. */
export function validateDelegate(delegate: Readonly<JsonObject> | undefined): void {
  if (delegate === undefined) return;
  if (Object.hasOwn(delegate, 'type') && typeof delegate.type !== 'string') {
    throw new FlannelConfigError("'delegate' dictionary, if present, must have (string) 'type' field");
  }
  if (Object.hasOwn(delegate, 'name')) {
    throw new FlannelConfigError("'delegate' dictionary must not have 'name' field, it'll be set by flannel");
  }
  if (Object.hasOwn(delegate, 'ipam')) {
    throw new FlannelConfigError("'delegate' dictionary must not have 'ipam' field, it'll be set by flannel");
  }
}

// ---- routes (Go types.Route) ------------------------------------------------------

const ROUTE_INT_KEYS = ['mtu', 'advmss', 'priority'] as const;
const ROUTE_PTR_KEYS = ['table', 'scope'] as const;

function routeError(detail: string): FlannelConfigError {
  return new FlannelConfigError(`failed to assemble Delegate IPAM: failed to read IPAM routes: failed to parse ipam.routes: ${detail}`);
}

/** One user route as Go unmarshals and re-marshals a types.Route: unknown keys dropped, zero ints omitted. */
function normalizeRoute(r: unknown): JsonObject {
  if (!isObject(r)) throw routeError(`json: cannot unmarshal ${goKind(r)} into Go value of type types.route`);
  const out: JsonObject = {};
  const dst = r.dst;
  if (typeof dst !== 'string') throw routeError(`json: cannot unmarshal ${goKind(dst)} into Go value of type string`);
  const prefix = IPPrefix.parse(dst);
  if (!prefix) throw routeError(`invalid CIDR address: ${dst}`);
  out.dst = prefix.toString(); // host bits kept, as types.IPNet does
  if (r.gw !== undefined && r.gw !== null && r.gw !== '') {
    const gw = typeof r.gw === 'string' ? IPAddr.parse(r.gw) : undefined;
    if (!gw) throw routeError(`invalid IP address: ${String(r.gw)}`);
    out.gw = gw.toString();
  }
  for (const k of [...ROUTE_INT_KEYS, ...ROUTE_PTR_KEYS]) {
    const v = r[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw routeError(`json: cannot unmarshal ${goKind(v)} into Go struct field route.${k} of type int`);
    }
    // Plain ints are omitempty; table/scope are pointers and kept when 0.
    if (v !== 0 || (ROUTE_PTR_KEYS as readonly string[]).includes(k)) out[k] = v;
  }
  return out;
}

// ---- rendering ----------------------------------------------------------------------

/** Values whose key order is fixed (Go structs); sortKeys leaves them as they are. */
const structs = new WeakSet<object>();

/** Recursively sorts object keys the way Go's encoding/json orders map keys (by bytes). */
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (!isObject(v) || structs.has(v)) return v;
  const out: JsonObject = {};
  const keys = Object.keys(v).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const k of keys) out[k] = sortKeys(v[k]);
  return out;
}

/** The delegate's IPAM section: input ipam + type default + ranges + routes. */
export function buildDelegateIpam(conf: FlannelConf, env: FlannelSubnetEnv): JsonObject {
  const ipam: JsonObject = { ...(conf.ipam ?? {}) };
  if (!Object.hasOwn(ipam, 'type')) ipam.type = 'host-local';
  const ranges: JsonObject[][] = [];
  for (const sn of [env.subnet, env.ipv6Subnet]) {
    if (sn !== undefined) ranges.push([{ subnet: sn.toString() }]);
  }
  // Go marshals a nil slice as null: a file with neither subnet cannot parse, so never here.
  ipam.ranges = ranges;
  const userRoutes = ipam.routes;
  const routes: JsonObject[] = [];
  if (userRoutes !== undefined) {
    if (userRoutes !== null && !Array.isArray(userRoutes)) {
      throw routeError(`json: cannot unmarshal ${goKind(userRoutes)} into Go value of type []types.Route`);
    }
    for (const r of userRoutes ?? []) routes.push(normalizeRoute(r));
  }
  for (const nw of [...env.networks, ...env.ipv6Networks]) routes.push({ dst: nw.toString() });
  for (const r of routes) structs.add(r);
  ipam.routes = routes;
  return ipam;
}

/** The delegate config object (keys sorted like upstream's JSON). Validates the user's delegate. */
export function buildDelegate(conf: FlannelConf, env: FlannelSubnetEnv): JsonObject {
  validateDelegate(conf.delegate);
  const d: JsonObject = { ...(conf.delegate ?? {}) };
  if (conf.runtimeConfig !== undefined) d.runtimeConfig = conf.runtimeConfig;
  d.name = conf.name;
  if (!Object.hasOwn(d, 'type')) d.type = 'bridge';
  if (!Object.hasOwn(d, 'ipMasq')) d.ipMasq = !env.ipMasq; // the bridge masquerades only if flanneld does not
  if (!Object.hasOwn(d, 'mtu')) d.mtu = env.mtu;
  if (d.type === 'bridge' && !Object.hasOwn(d, 'isGateway')) d.isGateway = true;
  if (conf.cniVersion !== '') d.cniVersion = conf.cniVersion;
  d.ipam = buildDelegateIpam(conf, env);
  return sortKeys(d) as JsonObject;
}

/** The delegate's bytes as upstream writes them: compact Go JSON, no newline. */
export function renderDelegate(delegate: JsonObject): Buffer {
  return Buffer.from(goJson(delegate));
}

/** The delegate type (string, validated by buildDelegate). */
export function delegateType(delegate: JsonObject): string {
  return typeof delegate.type === 'string' ? delegate.type : '';
}
