// The vxlan backend: one kernel VXLAN device per family (flannel.<VNI>,
// flannel-v6.<VNI>) and per remote node a neighbour entry (remote VTEP IP =
// the remote subnet's network address → VTEP MAC), an FDB entry (VTEP MAC →
// remote public IP) and an onlink route via the remote VTEP IP; or, with
// DirectRouting and an on-link peer, a plain route via its public IP.
// Everything is reconciled: a deleted device is recreated with the same MAC
// and all entries are replayed.
import { randomBytes } from 'node:crypto';
import { isExists, isNotFound } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import type { Link, NetlinkHandle } from '../../lib/netlink/index.ts';
import { leaseKey } from '../subnet/lease-watcher.ts';
import { getFold } from '../subnet/types.ts';
import type { Lease, LeaseAttrs, LeaseWatchResult, NetworkConfig } from '../subnet/types.ts';
import { applyOps } from './apply.ts';
import { cfgBool, cfgInt, ensureLeaseAddress, networkOf, publicIPOf, subnetOf, subscribeDeviceEvents } from './common.ts';
import { entryKey, ownedFdb, ownedNeighs, ownedRoutes, planSync, routeEntry, type Entry } from './reconcile.ts';
import { runReconciler, type Programmer, type SyncFailure } from './reconciler.ts';
import { BackendConfigError, type Backend, type BackendContext, type ExternalInterface, type Network } from './types.ts';
import { families, type Family, type IPAddr } from '../../lib/ip/index.ts';

export interface VxlanConfig {
  vni: number;
  /** 0 = kernel default (8472). */
  port: number;
  gbp: boolean;
  learning: boolean;
  directRouting: boolean;
  /** Explicit MTU (Backend.MTU); otherwise ext MTU minus the encapsulation overhead. */
  mtu: number | undefined;
}

export function parseVxlanConfig(raw: Readonly<Record<string, unknown>>): VxlanConfig {
  const mtu = cfgInt(raw, 'MTU', 0, 0, 65535);
  return {
    vni: cfgInt(raw, 'VNI', 1, 0, 0xffffff),
    port: cfgInt(raw, 'Port', 0, 0, 65535),
    gbp: cfgBool(raw, 'GBP', false),
    learning: cfgBool(raw, 'Learning', false),
    directRouting: cfgBool(raw, 'DirectRouting', false),
    mtu: mtu === 0 ? undefined : mtu,
  };
}

/** Outer header overhead: IP (20 or 40) + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const vxlanOverhead = (underlay: Family): number => (underlay === 4 ? 50 : 70);
export const vxlanDeviceName = (family: Family, vni: number): string => (family === 4 ? `flannel.${vni}` : `flannel-v6.${vni}`);
const KERNEL_VXLAN_PORT = 8472;

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** The VTEP MAC a remote lease publishes for `family`, or why it has none. */
export function vtepOf(lease: Lease, family: Family): { mac: string } | { error: string } {
  const data = family === 4 ? lease.attrs.backendData : lease.attrs.backendV6Data;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return { error: `no vxlan backend data for IPv${family}` };
  const mac = getFold(data as Record<string, unknown>, 'VtepMAC');
  if (typeof mac !== 'string' || !MAC_RE.test(mac.toLowerCase())) return { error: `invalid VtepMAC ${JSON.stringify(mac)}` };
  return { mac: mac.toLowerCase() };
}

interface FamilyDevice {
  family: Family;
  name: string;
  local: IPAddr;
  mtu: number;
  mac: string;
  index: number;
}

/** Whether an existing device can be kept (upstream vxlanLinksIncompat). */
export function vxlanCompatible(link: Link, want: { vni: number; local: IPAddr; extIndex: number; port: number; gbp: boolean; learning: boolean }): boolean {
  const v = link.vxlan;
  if (link.kind !== 'vxlan' || !v) return false;
  return (
    v.vni === want.vni &&
    want.local.equals(v.local) &&
    v.link === want.extIndex &&
    (v.port ?? KERNEL_VXLAN_PORT) === (want.port || KERNEL_VXLAN_PORT) &&
    (v.gbp ?? false) === want.gbp &&
    (v.learning ?? false) === want.learning &&
    !v.l2miss &&
    !v.l3miss
  );
}

/**
 * The desired entries for the remote peers in `family`. `direct` holds, for
 * DirectRouting, the peers whose public IP is on-link (their ext ifindex).
 */
export function vxlanDesired(peers: readonly Lease[], family: Family, devIndex: number, direct: ReadonlyMap<string, number>): Entry[] {
  const out: Entry[] = [];
  for (const l of peers) {
    const sub = subnetOf(l, family);
    const pub = publicIPOf(l, family);
    const vtep = vtepOf(l, family);
    if (!sub || !pub || 'error' in vtep) continue;
    const peer = leaseKey(l);
    const directOif = direct.get(peer);
    if (directOif !== undefined) {
      out.push(routeEntry(peer, family, sub, pub, directOif));
      continue;
    }
    const vtepIP = sub.network();
    out.push({ kind: 'neigh', peer, index: devIndex, family, ip: vtepIP, mac: vtep.mac });
    out.push({ kind: 'fdb', peer, index: devIndex, mac: vtep.mac, dst: pub });
    out.push(routeEntry(peer, family, sub, vtepIP, devIndex, true));
  }
  return out;
}

class VxlanNetwork implements Network {
  readonly #devs: FamilyDevice[];
  #lease: Lease | undefined;

  constructor(
    private readonly cfg: NetworkConfig,
    private readonly vx: VxlanConfig,
    private readonly ext: ExternalInterface,
    private readonly h: NetlinkHandle,
    private readonly log: Logger,
    private readonly ctx: BackendContext,
    devs: FamilyDevice[],
  ) {
    this.#devs = devs;
  }

  leaseAttrs(): LeaseAttrs {
    const attrs: LeaseAttrs = { backendType: 'vxlan' };
    for (const d of this.#devs) {
      if (d.family === 4) {
        const pub = this.ext.extAddr ?? this.ext.ifaceAddr;
        if (pub) attrs.publicIP = pub.toString();
        attrs.backendData = { VNI: this.vx.vni, VtepMAC: d.mac };
      } else {
        const pub = this.ext.extV6Addr ?? this.ext.ifaceV6Addr;
        if (pub) attrs.publicIPv6 = pub.toString();
        attrs.backendV6Data = { VNI: this.vx.vni, VtepMAC: d.mac };
      }
    }
    return attrs;
  }

  mtu(): number {
    return Math.min(...this.#devs.map((d) => d.mtu));
  }

  async setLease(lease: Lease): Promise<void> {
    this.#lease = lease;
    for (const d of this.#devs) await ensureLeaseAddress(this.h, d.index, lease, d.family, networkOf(this.cfg, d.family));
  }

  /** Creates or repairs the device; returns its ifindex. */
  async ensureDevice(d: FamilyDevice): Promise<void> {
    const want = { vni: this.vx.vni, local: d.local, extIndex: this.ext.index, port: this.vx.port, gbp: this.vx.gbp, learning: this.vx.learning };
    let link = await this.h.linkFind(d.name);
    if (link && !vxlanCompatible(link, want)) {
      this.log.warn({ device: d.name }, 'existing vxlan device has an incompatible configuration; recreating it');
      await this.h.linkDel(link.index);
      link = undefined;
    }
    if (!link) {
      try {
        await this.h.linkAdd({
          name: d.name,
          kind: 'vxlan',
          mtu: d.mtu,
          mac: d.mac,
          vxlan: { vni: this.vx.vni, local: d.local, link: this.ext.index, port: this.vx.port, learning: this.vx.learning, gbp: this.vx.gbp },
        });
      } catch (err) {
        if (!isExists(err)) throw err;
      }
      link = await this.h.linkByName(d.name);
      if (d.index !== 0) this.log.info({ device: d.name, mac: d.mac }, 'recreated vxlan device');
    }
    // A new ifindex means a new device: address and entries are replayed by this sync.
    d.index = link.index;
    if (link.mac !== d.mac) await this.h.linkSetMac(link.index, d.mac);
    if (link.mtu !== d.mtu) await this.h.linkSetMtu(link.index, d.mtu);
    if (d.family === 6 || this.cfg.enableIPv6) {
      try {
        this.h.writeSysctl(`net/ipv6/conf/${d.name}/accept_ra`, '0');
      } catch (err) {
        if (!isNotFound(err)) throw err; // IPv6 disabled in this namespace
      }
    }
    if (this.#lease) await ensureLeaseAddress(this.h, link.index, this.#lease, d.family, networkOf(this.cfg, d.family));
    if (!link.up) await this.h.linkSetUp(link.index);
  }

  /**
   * Peers whose public IP is on-link on the external interface
   * (DirectRouting). One route lookup per public IP, cached in `cache`
   * (key family|IP → ext ifindex, or null when not direct); a full sync
   * passes an empty cache so every lookup is redone.
   */
  async directPeers(peers: readonly Lease[], family: Family, cache: Map<string, number | null>): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (!this.vx.directRouting) return out;
    for (const l of peers) {
      const pub = publicIPOf(l, family);
      if (!pub) continue;
      const key = `${family}|${pub}`;
      let oif = cache.get(key);
      if (oif === undefined) {
        oif = null;
        try {
          const r = await this.h.routeGet(pub);
          if (r.gw === undefined && r.oif !== undefined && r.oif !== this.#devs.find((d) => d.family === family)?.index) oif = r.oif;
        } catch {
          // unreachable: not direct
        }
        cache.set(key, oif);
      }
      if (oif !== null) out.set(leaseKey(l), oif);
    }
    return out;
  }

  /** The entries of `d` that are ours in the kernel (three dumps, one at a time: a netlink socket serves a single dump). */
  async observed(d: FamilyDevice): Promise<Entry[]> {
    const routes = await this.h.routeList({ family: d.family });
    const neighs = await this.h.neighList({ family: d.family, index: d.index });
    const fdb = await this.h.neighList({ family: 'bridge', index: d.index });
    return [
      ...ownedRoutes(routes, { family: d.family, network: networkOf(this.cfg, d.family), devIndex: d.index, extIndex: this.ext.index }),
      ...ownedNeighs(neighs, d.index, d.family),
      ...ownedFdb(fdb, d.index, d.family),
    ];
  }

  /**
   * The reconcile step for the shared loop. A full sync ensures the device,
   * dumps its entries and diffs against them; a partial one diffs against
   * what the last sync of that device applied without failure and touches
   * nothing else (a deleted device or entry is reported by the kernel event
   * subscription, which makes the next sync full; changes by hand that send
   * no delete event are repaired by the periodic full sync).
   */
  programmer(): Programmer {
    // Per device name: its ifindex and the entries (by entryKey) it holds as far as we know.
    const applied = new Map<string, { index: number; entries: Map<string, Entry> }>();
    const direct = new Map<string, number | null>();
    return {
      checkLease: (l) => {
        if (l.attrs.backendType !== 'vxlan') return `backend type ${JSON.stringify(l.attrs.backendType)} is not vxlan`;
        for (const d of this.#devs) {
          if (!subnetOf(l, d.family)) continue;
          if (!publicIPOf(l, d.family)) return `no public IPv${d.family} address`;
          const v = vtepOf(l, d.family);
          if ('error' in v) return v.error;
        }
        return null;
      },
      sync: async (peers, { full }) => {
        const failures: SyncFailure[] = [];
        if (full) direct.clear();
        for (const d of this.#devs) {
          const known = applied.get(d.name);
          const partial = !full && peers !== null && known !== undefined && known.index === d.index;
          applied.delete(d.name);
          if (!partial) {
            try {
              await this.ensureDevice(d);
            } catch (error) {
              failures.push({ kind: 'device', what: d.name, error });
              continue;
            }
          }
          if (!peers) continue;
          const desired = vxlanDesired(peers, d.family, d.index, await this.directPeers(peers, d.family, direct));
          const ops = planSync(desired, partial ? [...known.entries.values()] : await this.observed(d));
          if (ops.length) this.log.debug({ device: d.name, ops: ops.length, full: !partial }, 'applying datapath changes');
          const failed = await applyOps(this.h, ops);
          for (const f of failed) {
            failures.push({ kind: f.op.entry.kind, what: `${f.op.op} ${JSON.stringify(f.op.entry)}`, error: f.error });
          }
          // After a failure nothing is remembered: the next sync of this device reads the kernel.
          if (!failed.length) applied.set(d.name, { index: d.index, entries: new Map(desired.map((e) => [entryKey(e), e] as const)) });
        }
        return failures;
      },
      subscribe: (onChange) =>
        subscribeDeviceEvents(
          this.h,
          this.#devs.map((d) => d.name),
          () => [...this.#devs.map((d) => d.index), ...(this.vx.directRouting ? [this.ext.index] : [])],
          onChange,
        ),
    };
  }

  run(watch: AsyncIterable<LeaseWatchResult>, signal: AbortSignal): Promise<void> {
    return runReconciler(
      { name: 'vxlan', log: this.log, programmer: this.programmer(), ownLease: this.#lease, hooks: this.ctx.hooks, resyncInterval: this.ctx.resyncInterval },
      watch,
      signal,
    );
  }
}

export const vxlan = (): Backend => ({
  async registerNetwork(cfg, ext, ctx) {
    const vx = parseVxlanConfig(cfg.backend.raw);
    const log = ctx.log.child({ backend: 'vxlan' });
    const devs: FamilyDevice[] = [];
    for (const family of families(cfg)) {
      const local = family === 4 ? ext.ifaceAddr : ext.ifaceV6Addr;
      if (!local) throw new BackendConfigError(`vxlan: external interface ${ext.name} has no IPv${family} address`);
      const name = vxlanDeviceName(family, vx.vni);
      const existing = await ctx.handle.linkFind(name);
      const stored = family === 4 ? ctx.storedMacs?.v4 : ctx.storedMacs?.v6;
      const compatible =
        existing && vxlanCompatible(existing, { vni: vx.vni, local, extIndex: ext.index, port: vx.port, gbp: vx.gbp, learning: vx.learning });
      // MAC chosen before the device exists (systemd MACAddressPolicy race, flannel #1155); kept across re-creation.
      const mac = (stored && MAC_RE.test(stored.toLowerCase()) ? stored.toLowerCase() : undefined) ?? (compatible ? existing.mac : undefined) ?? randomMac();
      const mtu = vx.mtu ?? ext.mtu - vxlanOverhead(family);
      devs.push({ family, name, local, mtu, mac, index: 0 });
    }
    const nw = new VxlanNetwork(cfg, vx, ext, ctx.handle, log, ctx, devs);
    for (const d of devs) await nw.ensureDevice(d);
    return nw;
  },
});
