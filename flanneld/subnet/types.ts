// The shared subnet-lease model: what a subnet manager (etcd or Kubernetes)
// hands to the backends and the main loop. Mirrors flannel's pkg/lease and
// pkg/subnet.Manager, with values instead of strings.
import { NetError } from '../../lib/errors.ts';
import type { Family, IPPrefix } from '../../lib/ip/index.ts';

/** Per-family part of the network config, present only when that family is enabled. */
export interface FamilyNetworkConfig {
  readonly family: Family;
  /** Cluster network (`Network` / `IPv6Network`). */
  readonly network: IPPrefix;
  /** Lease size (`SubnetLen` / `IPv6SubnetLen`). */
  readonly subnetLen: number;
  /** First and last allocatable lease (`SubnetMin`/`SubnetMax`), as prefixes of length subnetLen. */
  readonly subnetMin: IPPrefix;
  readonly subnetMax: IPPrefix;
}

/** The parsed, defaulted network config (etcd `<prefix>/config` or net-conf.json). */
export interface NetworkConfig {
  readonly enableIPv4: boolean;
  readonly enableIPv6: boolean;
  readonly enableNFTables: boolean;
  /** Present iff enableIPv4. */
  readonly ipv4?: FamilyNetworkConfig;
  /** Present iff enableIPv6. */
  readonly ipv6?: FamilyNetworkConfig;
  /** `Backend`: the type (lower-case as written, default "vxlan") and the raw object for backend-specific keys. */
  readonly backend: { readonly type: string; readonly raw: Readonly<Record<string, unknown>> };
}

/** The per-family view of a config, for code written once with a `family` parameter. */
export function familyConfig(cfg: NetworkConfig, family: Family): FamilyNetworkConfig | undefined {
  return family === 4 ? cfg.ipv4 : cfg.ipv6;
}

export interface LeaseAttrs {
  publicIP?: string;
  publicIPv6?: string;
  backendType?: string;
  /** Raw backend JSON value, e.g. `{VNI: 1, VtepMAC: "…"}`. */
  backendData?: unknown;
  backendV6Data?: unknown;
}

export interface Lease {
  enableIPv4: boolean;
  enableIPv6: boolean;
  subnet?: IPPrefix;
  ipv6Subnet?: IPPrefix;
  attrs: LeaseAttrs;
  /** undefined = no TTL (an etcd reservation, or a kube lease). */
  expiration?: Date;
}

export function leaseSubnet(lease: Lease, family: Family): IPPrefix | undefined {
  return family === 4 ? lease.subnet : lease.ipv6Subnet;
}

export interface LeaseEvent {
  type: 'added' | 'removed';
  lease: Lease;
}

/** Either incremental events or a full snapshot (after a watch gap/compaction, and always first). */
export type LeaseWatchResult = { events: LeaseEvent[] } | { snapshot: Lease[] };

export interface SubnetManager {
  getNetworkConfig(signal: AbortSignal): Promise<NetworkConfig>;
  /** Allocates (or reuses) this node's lease and publishes `attrs` on it. */
  acquireLease(attrs: LeaseAttrs, signal: AbortSignal): Promise<Lease>;
  /** All leases in the cluster; the first yield is a snapshot. Ends when `signal` aborts. */
  watchLeases(signal: AbortSignal): AsyncIterable<LeaseWatchResult>;
  /** Keeps the lease alive until `signal` aborts; resolves then. Rejects only on unrecoverable loss. */
  completeLease(lease: Lease, signal: AbortSignal): Promise<void>;
  /**
   * Checks, writing nothing, that acquireLease can succeed now (kube: the
   * node has a podCIDR inside Network; etcd: a subnet is free or ours can be
   * reused), throwing the error acquireLease would. The daemon retries it
   * before the backend creates any device, so a subnet that does not fit
   * leaves nothing half-configured.
   */
  checkLease?(publicIP: { v4?: string; v6?: string }, signal: AbortSignal): Promise<void>;
  /** MACs previously published for this node (kube: backend-data annotations), to keep VTEP MACs stable. */
  getStoredMacAddresses?(): { v4?: string; v6?: string };
  /** Public IPs the user pinned for this node (kube: node-public-ip annotations). */
  getStoredPublicIP?(): { v4?: string; v6?: string };
  name(): string;
}

// ---------------------------------------------------------------------------
// Value JSON, exactly as upstream stores it in etcd:
// {"PublicIP":"192.0.2.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"…"}}
// PublicIP is always present ("0.0.0.0" when unset), PublicIPv6 is always present
// (null when unset), the rest are omitted when empty.

export class LeaseDecodeError extends NetError {
  constructor(message: string, cause?: unknown) {
    super('LEASE_DECODE', message, { cause });
  }
}

export function leaseAttrsToJSON(attrs: LeaseAttrs): string {
  const out: Record<string, unknown> = {
    PublicIP: attrs.publicIP ?? '0.0.0.0',
    PublicIPv6: attrs.publicIPv6 ?? null,
  };
  if (attrs.backendType) out['BackendType'] = attrs.backendType;
  if (attrs.backendData !== undefined) out['BackendData'] = attrs.backendData;
  if (attrs.backendV6Data !== undefined) out['BackendV6Data'] = attrs.backendV6Data;
  return JSON.stringify(out);
}

/** Looks up a key the way Go's encoding/json does: exact match first, then case-insensitive. */
export function getFold(obj: Record<string, unknown>, key: string): unknown {
  if (Object.hasOwn(obj, key)) return obj[key];
  const lower = key.toLowerCase();
  for (const k of Object.keys(obj)) if (k.toLowerCase() === lower) return obj[k];
  return undefined;
}

export function leaseAttrsFromJSON(text: string): LeaseAttrs {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new LeaseDecodeError(`invalid lease attributes JSON: ${(err as Error).message}`, err);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new LeaseDecodeError('invalid lease attributes JSON: not an object');
  }
  const o = v as Record<string, unknown>;
  const attrs: LeaseAttrs = {};
  const pub = getFold(o, 'PublicIP');
  if (typeof pub === 'string' && pub !== '' && pub !== '0.0.0.0') attrs.publicIP = pub;
  const pub6 = getFold(o, 'PublicIPv6');
  if (typeof pub6 === 'string' && pub6 !== '') attrs.publicIPv6 = pub6;
  const bt = getFold(o, 'BackendType');
  if (typeof bt === 'string' && bt !== '') attrs.backendType = bt;
  const bd = getFold(o, 'BackendData');
  if (bd !== undefined) attrs.backendData = bd;
  const bd6 = getFold(o, 'BackendV6Data');
  if (bd6 !== undefined) attrs.backendV6Data = bd6;
  return attrs;
}

/**
 * Whether two leases name the same subnet, the way upstream's sameSubnet
 * compares them: by v4 subnet, v6 subnet, or both in dual-stack.
 */
export function sameSubnet(a: Lease, b: Lease): boolean {
  const v4 = a.enableIPv4 || (!a.enableIPv4 && !a.enableIPv6);
  const v6 = a.enableIPv6;
  if (v4 && !eqPrefix(a.subnet, b.subnet)) return false;
  if (v6 && !eqPrefix(a.ipv6Subnet, b.ipv6Subnet)) return false;
  return true;
}

function eqPrefix(a: IPPrefix | undefined, b: IPPrefix | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.equals(b);
}
