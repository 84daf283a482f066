// The nftables-mode apply layer of one IP family (upstream's
// pkg/proxy/nftables Proxier) over the renderer of render/nftables.ts, which
// remembers what it applied and plans only the difference, cut into
// transactions at service-port boundaries. Each transaction is one
// `nft -f -`, all or nothing; the ones that succeed are committed to the
// renderer's state, so after a failure the next plan starts from what is
// really in the kernel. The table is never listed per sync (k/k#139513):
// only once at startup, to know whether a previous run left one, in which
// case the first plan deletes and recreates it (renderer.reset()). A second
// failure in a row resets too: the kernel no longer matches our record.
//
// A plan that rebuilds an existing table runs as ONE transaction: its
// chunks, applied one by one, would leave the services of the later chunks
// without rules in between (a restart must not drop traffic while it syncs).
// A cold start, where nothing is there to lose, keeps the chunks.
import type { V1Node } from '@kubernetes/client-node';
import type { Family } from '../../lib/ip/index.ts';
import { ExecError } from '../../lib/exec.ts';
import type { Nft } from '../../lib/netfilter/nft.ts';
import { KUBE_PROXY_TABLE, NFTablesRenderer, type NFTablesOptions, type NFTablesPlan } from '../render/nftables.ts';
import { FamilyProxierBase, type FamilyDeps, type FamilyProxier, type SyncReason } from './family.ts';

export interface NFTablesFamilyOptions {
  readonly family: Family;
  readonly nodeName: string;
  /** The renderer's options, read at every sync (the node's IPs and labels may change). */
  readonly renderOptions: () => NFTablesOptions;
}

export interface NFTablesSyncOutcome {
  readonly full: boolean;
  readonly plan: NFTablesPlan;
  readonly conntrackDeleted: number;
}

export class NftTransactionError extends Error {
  constructor(
    readonly family: Family,
    readonly stderr: string,
    cause: unknown,
  ) {
    super(`nft transaction (IPv${family}) failed: ${stderr.trim().split('\n')[0] ?? ''}`, { cause });
    this.name = 'NftTransactionError';
  }
}

export class NFTablesFamilyProxier extends FamilyProxierBase implements FamilyProxier {
  private renderer: NFTablesRenderer | undefined;
  private rendererSignature: string | undefined;
  private consecutiveFailures = 0;
  private lastOutcome: NFTablesSyncOutcome | undefined;

  constructor(
    private readonly opts: NFTablesFamilyOptions,
    private readonly deps: FamilyDeps & { readonly nft: Nft },
  ) {
    super(opts.family, opts.nodeName, deps);
  }

  get outcome(): NFTablesSyncOutcome | undefined {
    return this.lastOutcome;
  }

  /** The renderer for the current options: a new context means a new renderer that rebuilds the table. */
  private async rendererFor(options: NFTablesOptions): Promise<{ renderer: NFTablesRenderer; full: boolean; rebuild: boolean }> {
    const signature = JSON.stringify(options);
    let full = false;
    let rebuild = false;
    if (!this.renderer || signature !== this.rendererSignature) {
      const first = this.renderer === undefined;
      this.renderer = new NFTablesRenderer(options);
      this.rendererSignature = signature;
      // At startup a previous run's table may be there: start from a clean one.
      const exists = !first || (await this.deps.nft.list(this.opts.family === 4 ? 'ip' : 'ip6', KUBE_PROXY_TABLE)) !== undefined;
      if (exists) this.renderer.reset();
      full = true;
      rebuild = exists;
    } else if (this.needFullSync || this.consecutiveFailures >= 2) {
      this.renderer.reset();
      full = true;
      rebuild = true;
    }
    return { renderer: this.renderer, full, rebuild };
  }

  /** One sync; throws (for the runner to retry) when a transaction fails. */
  async sync(reason: SyncReason): Promise<NFTablesSyncOutcome | undefined> {
    if (!this.initialized) return undefined;
    const start = process.hrtime.bigint();
    const { log, metrics, nft } = this.deps;
    const changes = this.checkout();
    const { renderer, full, rebuild } = await this.rendererFor(this.opts.renderOptions());
    this.needFullSync = false;
    const plan = renderer.plan({ services: this.services.map, endpoints: this.endpoints.map });
    // A rebuild of a table that exists goes in one piece (see above).
    const batches = rebuild && plan.transactions.length > 1 ? [plan.transactions] : plan.transactions.map((t) => [t]);
    for (const [i, batch] of batches.entries()) {
      try {
        await nft.run(batch.map((t) => t.text).join('\n'));
      } catch (err) {
        this.consecutiveFailures++;
        metrics.nftablesSyncFailuresTotal.inc(this.label);
        const stderr = err instanceof ExecError ? err.stderr : String(err);
        const servicePorts = batch.flatMap((t) => t.servicePorts).slice(0, 10);
        log.error({ err, ipFamily: this.label.ip_family, transaction: i, of: batches.length, servicePorts, stderr }, 'nft transaction failed; what it would change stays as it was');
        throw new NftTransactionError(this.family, stderr, err);
      }
      for (const t of batch) renderer.commit(t);
    }
    this.consecutiveFailures = 0;
    metrics.noLocalEndpointsTotal.set({ ...this.label, traffic_policy: 'internal' }, plan.noLocalEndpointsInternal);
    metrics.noLocalEndpointsTotal.set({ ...this.label, traffic_policy: 'external' }, plan.noLocalEndpointsExternal);
    this.succeeded(full, start, changes);
    const conntrackDeleted = await this.cleanConntrack(full);
    this.lastOutcome = { full, plan, conntrackDeleted };
    log.debug({ ipFamily: this.label.ip_family, full, reason, transactions: plan.transactions.length, changed: plan.servicePortsChanged }, 'synced nftables rules');
    return this.lastOutcome;
  }
}

/** The ServiceProxy backend of the nftables mode. */
export function nftablesBackend(
  nft: Nft,
  opts: { nodeName: string; renderOptions: (family: Family, node: V1Node | undefined) => NFTablesOptions },
): (family: Family, deps: FamilyDeps, node: () => V1Node | undefined) => FamilyProxier {
  return (family, deps, node) => new NFTablesFamilyProxier({ family, nodeName: opts.nodeName, renderOptions: () => opts.renderOptions(family, node()) }, { ...deps, nft });
}
