// The host-gw backend: per remote node one route `<subnet> via <public IP>
// dev <ext>`. Needs layer-2 adjacency between nodes and no NAT. Reconciled
// like the others: stale routes (peers deleted while we were down) are
// removed, routes removed by hand are restored.
import type { Logger } from '../../lib/log.ts';
import type { NetlinkHandle } from '../../lib/netlink/index.ts';
import { leaseKey } from '../subnet/lease-watcher.ts';
import type { Lease, LeaseAttrs, LeaseWatchResult, NetworkConfig } from '../subnet/types.ts';
import { applyOps } from './apply.ts';
import { networkOf, publicIPOf, subnetOf, subscribeDeviceEvents } from './common.ts';
import { entryKey, ownedRoutes, planSync, routeEntry, type Entry } from './reconcile.ts';
import { runReconciler, type Programmer, type SyncFailure } from './reconciler.ts';
import { BackendConfigError, type Backend, type BackendContext, type ExternalInterface, type Network } from './types.ts';
import { families, type Family } from '../../lib/ip/index.ts';

export function hostGwDesired(peers: readonly Lease[], family: Family, extIndex: number): Entry[] {
  const out: Entry[] = [];
  for (const l of peers) {
    const sub = subnetOf(l, family);
    const pub = publicIPOf(l, family);
    if (!sub || !pub) continue;
    out.push(routeEntry(leaseKey(l), family, sub, pub, extIndex));
  }
  return out;
}

class HostGwNetwork implements Network {
  #lease: Lease | undefined;
  readonly #families: Family[];
  constructor(
    private readonly cfg: NetworkConfig,
    private readonly ext: ExternalInterface,
    private readonly h: NetlinkHandle,
    private readonly log: Logger,
    private readonly ctx: BackendContext,
  ) {
    this.#families = families(cfg);
  }

  leaseAttrs(): LeaseAttrs {
    const attrs: LeaseAttrs = { backendType: 'host-gw' };
    if (this.cfg.enableIPv4 && this.ext.extAddr) attrs.publicIP = this.ext.extAddr.toString();
    if (this.cfg.enableIPv6 && this.ext.extV6Addr) attrs.publicIPv6 = this.ext.extV6Addr.toString();
    return attrs;
  }

  mtu(): number {
    return this.ext.mtu;
  }

  async setLease(lease: Lease): Promise<void> {
    this.#lease = lease;
  }

  /**
   * The reconcile step for the shared loop: a full sync dumps the routes and
   * diffs against them, a partial one diffs against what the last sync of
   * that family applied without failure (see vxlan.ts programmer()).
   */
  programmer(): Programmer {
    // Per family: the routes (by entryKey) we hold as far as we know.
    const applied = new Map<Family, Map<string, Entry>>();
    return {
      checkLease: (l) => {
        if (l.attrs.backendType !== 'host-gw') return `backend type ${JSON.stringify(l.attrs.backendType)} is not host-gw`;
        for (const f of this.#families) if (subnetOf(l, f) && !publicIPOf(l, f)) return `no public IPv${f} address`;
        return null;
      },
      sync: async (peers, { full }) => {
        const failures: SyncFailure[] = [];
        if (!peers) {
          applied.clear();
          return failures;
        }
        for (const family of this.#families) {
          const known = applied.get(family);
          applied.delete(family);
          let have: Entry[];
          if (!full && known) have = [...known.values()];
          else {
            const routes = await this.h.routeList({ family });
            have = ownedRoutes(routes, { family, network: networkOf(this.cfg, family), extIndex: this.ext.index });
          }
          const desired = hostGwDesired(peers, family, this.ext.index);
          const failed = await applyOps(this.h, planSync(desired, have));
          for (const f of failed) failures.push({ kind: 'route', what: `${f.op.op} ${f.op.entry.kind === 'route' ? f.op.entry.dst : ''}`, error: f.error });
          if (!failed.length) applied.set(family, new Map(desired.map((e) => [entryKey(e), e] as const)));
        }
        return failures;
      },
      subscribe: (onChange) => subscribeDeviceEvents(this.h, [], () => [this.ext.index], onChange),
    };
  }

  run(watch: AsyncIterable<LeaseWatchResult>, signal: AbortSignal): Promise<void> {
    return runReconciler(
      { name: 'host-gw', log: this.log, programmer: this.programmer(), ownLease: this.#lease, hooks: this.ctx.hooks, resyncInterval: this.ctx.resyncInterval },
      watch,
      signal,
    );
  }
}

export const hostGw = (): Backend => ({
  async registerNetwork(cfg, ext, ctx) {
    for (const f of families(cfg)) {
      const iface = f === 4 ? ext.ifaceAddr : ext.ifaceV6Addr;
      const pub = (f === 4 ? ext.extAddr : ext.extV6Addr) ?? iface;
      if (!iface) throw new BackendConfigError(`host-gw: external interface ${ext.name} has no IPv${f} address`);
      if (!pub?.equals(iface)) {
        throw new BackendConfigError(
          "your PublicIP differs from interface IP, meaning that probably you're on a NAT, which is not supported by host-gw backend",
        );
      }
    }
    const e: ExternalInterface = { ...ext };
    if (cfg.enableIPv4 && !e.extAddr && e.ifaceAddr) e.extAddr = e.ifaceAddr;
    if (cfg.enableIPv6 && !e.extV6Addr && e.ifaceV6Addr) e.extV6Addr = e.ifaceV6Addr;
    return new HostGwNetwork(cfg, e, ctx.handle, ctx.log.child({ backend: 'host-gw' }), ctx);
  },
});
