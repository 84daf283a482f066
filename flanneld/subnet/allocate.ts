// Pure lease allocation: given the config and the leases in the store, decide
// which subnet(s) this node takes. Same policy as upstream's tryAcquireLease:
//   1. reuse the lease carrying our public IP if it still fits the config;
//   2. else, per family, the previous subnet from subnet.env if free and fitting;
//   3. else a random one of the first 100 free subnets from SubnetMin.
import { NetError } from '../../lib/errors.ts';
import { familyConfig, leaseSubnet } from './types.ts';
import type { FamilyNetworkConfig, Lease, NetworkConfig } from './types.ts';
import { FAMILIES, IPAddr, IPPrefix, type Family } from '../../lib/ip/index.ts';

export class OutOfSubnetsError extends NetError {
  constructor(family: Family) {
    super('OUT_OF_SUBNETS', `out of subnets${family === 6 ? ' (IPv6)' : ''}`);
  }
}

/** How many free candidates to collect before picking one at random. */
export const FREE_CANDIDATES = 100;

export interface AllocateInput {
  config: NetworkConfig;
  /** Every lease and reservation currently in the store. */
  existing: readonly Lease[];
  publicIP?: string | undefined;
  publicIPv6?: string | undefined;
  /** FLANNEL_SUBNET / FLANNEL_IPV6_SUBNET from the previous subnet.env (masked or not). */
  previous?: { subnet?: IPPrefix | undefined; ipv6Subnet?: IPPrefix | undefined } | undefined;
  /** Uniform integer in [0, n). Defaults to Math.random. */
  random?: ((n: number) => number) | undefined;
}

export type AllocationPlan =
  | {
      kind: 'reuse';
      /** The existing lease (or reservation) to take over with our new attrs. */
      lease: Lease;
    }
  | {
      kind: 'new';
      subnet?: IPPrefix;
      ipv6Subnet?: IPPrefix;
      /** Leases with our public IP that no longer fit the config: delete them first. */
      stale: Lease[];
    };

/** The config of each family that has one (enabled and parsed), IPv4 first. */
const familyConfigs = (cfg: NetworkConfig): FamilyNetworkConfig[] =>
  FAMILIES.map((f) => familyConfig(cfg, f)).filter((f): f is FamilyNetworkConfig => f !== undefined);

/** Whether `sn` is a valid lease for this family config (inside Min..Max, right length). */
export function isSubnetCompatible(fc: FamilyNetworkConfig, sn: IPPrefix | undefined): boolean {
  if (!sn || sn.family !== fc.family || sn.length !== fc.subnetLen || !sn.isCanonical()) return false;
  return fc.network.contains(sn) && sn.addr.compare(fc.subnetMin.network()) >= 0 && sn.addr.compare(fc.subnetMax.network()) <= 0;
}

/** Whether a stored lease fits the whole config: exactly the enabled families, each compatible. */
export function isLeaseCompatible(cfg: NetworkConfig, lease: Lease): boolean {
  for (const family of FAMILIES) {
    const fc = familyConfig(cfg, family);
    const sn = leaseSubnet(lease, family);
    if (fc ? !isSubnetCompatible(fc, sn) : sn !== undefined) return false;
  }
  return true;
}

function ownsPublicIP(cfg: NetworkConfig, lease: Lease, ip4: string | undefined, ip6: string | undefined): boolean {
  if (cfg.enableIPv4) return ip4 !== undefined && lease.attrs.publicIP === ip4;
  return ip6 !== undefined && lease.attrs.publicIPv6 === ip6;
}

export function planAllocation(input: AllocateInput): AllocationPlan {
  const { config, existing } = input;
  const random = input.random ?? ((n: number) => Math.floor(Math.random() * n));
  const stale: Lease[] = [];
  for (const l of existing) {
    if (!ownsPublicIP(config, l, input.publicIP, input.publicIPv6)) continue;
    if (isLeaseCompatible(config, l)) return { kind: 'reuse', lease: l };
    // Reservations are the operator's: never delete them, just don't use them.
    if (l.expiration !== undefined) stale.push(l);
  }
  const others = existing.filter((l) => !stale.includes(l));
  const plan: AllocationPlan = { kind: 'new', stale };
  for (const fc of familyConfigs(config)) {
    const taken = others.map((l) => leaseSubnet(l, fc.family)).filter((p): p is IPPrefix => p !== undefined);
    const prevRaw = fc.family === 4 ? input.previous?.subnet : input.previous?.ipv6Subnet;
    const prev = prevRaw?.masked();
    let chosen: IPPrefix;
    if (prev && isSubnetCompatible(fc, prev) && !taken.some((t) => t.overlaps(prev))) {
      chosen = prev;
    } else {
      const free = freeSubnets(fc, taken, FREE_CANDIDATES);
      if (free.length === 0) throw new OutOfSubnetsError(fc.family);
      const i = random(free.length);
      chosen = free[Math.min(Math.max(0, Math.floor(i)), free.length - 1)]!;
    }
    if (fc.family === 4) plan.subnet = chosen;
    else plan.ipv6Subnet = chosen;
  }
  return plan;
}

/**
 * The first `limit` subnets of length subnetLen in [SubnetMin, SubnetMax]
 * that overlap nothing in `taken`. Skips over taken ranges instead of stepping
 * through them, so a huge IPv6 range costs O(leases + limit).
 */
export function freeSubnets(fc: FamilyNetworkConfig, taken: readonly IPPrefix[], limit: number): IPPrefix[] {
  const size = 1n << BigInt(fc.subnetMin.bits - fc.subnetLen);
  // Merged, sorted [start, end] ranges of taken space in this family.
  const ranges = taken
    .filter((p) => p.family === fc.family)
    .map((p): [bigint, bigint] => [p.network().value, p.last().value])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const merged: Array<[bigint, bigint]> = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1] + 1n) {
      if (r[1] > last[1]) last[1] = r[1];
    } else merged.push([r[0], r[1]]);
  }
  const out: IPPrefix[] = [];
  const max = fc.subnetMax.network().value;
  let c = fc.subnetMin.network().value;
  let i = 0;
  while (c <= max && out.length < limit) {
    while (i < merged.length && merged[i]![1] < c) i++;
    const r = merged[i];
    if (r && r[0] <= c + size - 1n) {
      // Overlaps: jump to the first aligned candidate after this range.
      c = ((r[1] + 1n + size - 1n) / size) * size;
      continue;
    }
    out.push(new IPPrefix(IPAddr.of(fc.family, c), fc.subnetLen));
    c += size;
  }
  return out;
}
