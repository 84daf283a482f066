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
// That transaction deletes and recreates the table inside one kernel batch:
// packets see the old table or the new one, never a half; established
// connections keep their NAT bindings (conntrack), only affinity entries are
// lost. A cold start, where nothing is there to lose, keeps the chunks.
//
// The transactions go to the kernel through an NftBatchWriter: by default
// the nf_tables netlink writer (lib/netfilter/nft-netlink.ts: one batch per
// transaction, no nft process and no cache dump), or `nft -f -` with the
// same text when none is given (FakeNft in unit tests, or
// KUBE_PROXY_NFT_WRITER=nft).
import type { V1Node } from '@kubernetes/client-node';
import type { Family } from '../../lib/ip/index.ts';
import { ExecError } from '../../lib/exec.ts';
import { RealNft, type Nft } from '../../lib/netfilter/nft.ts';
import { NftBatchError, NftNetlinkWriter, type NftBatchWriter } from '../../lib/netfilter/nft-netlink.ts';
import { KUBE_PROXY_TABLE, NFTablesRenderer, type NFTablesOptions, type NFTablesPlan } from '../render/nftables.ts';
import { FamilyProxierBase, type FamilyDeps, type FamilyProxier, type SyncReason } from './family.ts';

export interface NFTablesFamilyOptions {
  readonly family: Family;
  readonly nodeName: string;
  /** The renderer's options, read at every sync (the node's IPs and labels may change). */
  readonly renderOptions: () => NFTablesOptions;
}

/**
 * Commands per batch when the netlink writer applies them (unless the
 * options say otherwise). The kernel binds each anonymous set (one per
 * service port: its numgen vmap) with a walk of the whole pending batch
 * (__nft_set_trans_bind), so a batch costs the square of its size; a few
 * thousand commands keep that small next to the per-batch commit.
 */
export const NETLINK_MAX_TRANSACTION_LINES = 8_000;

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
    private readonly deps: FamilyDeps & { readonly nft: Nft; readonly writer?: () => NftBatchWriter },
  ) {
    super(opts.family, opts.nodeName, deps);
  }

  get outcome(): NFTablesSyncOutcome | undefined {
    return this.lastOutcome;
  }

  /**
   * With the netlink writer, the table found in the kernel (at startup, after
   * a change of context, on a full resync or after repeated failures) is
   * listed once and taken over (NFTablesRenderer.adopt): every service is
   * rewritten in its own batch, chunked, and nothing is flushed wholesale.
   * (One batch rebuilding a big table would cost the kernel the square of its
   * size: each anonymous set is bound with a walk of the whole batch.)
   */
  private async adopt(renderer: NFTablesRenderer, writer: NftBatchWriter): Promise<void> {
    const family = this.opts.family === 4 ? 'ip' : 'ip6';
    const listed = await this.deps.nft.list(family, KUBE_PROXY_TABLE);
    const table = { family, name: KUBE_PROXY_TABLE } as const;
    writer.reset(table);
    if (!listed) {
      renderer.reset();
      return;
    }
    renderer.adopt(listed);
    for (const s of listed.sets) {
      const kind = s.kind ?? 'set';
      try {
        writer.knownSet(table, s.name, kind, `${s.keyType ?? ''}${s.valueType !== undefined ? ` : ${s.valueType}` : ''}`);
      } catch {
        // Not a set kube-proxy writes: the plan only ever deletes it whole.
      }
    }
  }

  /** The renderer for the current options: a new context means a new renderer that rebuilds the table. */
  private async rendererFor(options: NFTablesOptions): Promise<{ renderer: NFTablesRenderer; full: boolean; rebuild: boolean }> {
    const signature = JSON.stringify(options);
    let full = false;
    let rebuild = false;
    const writer = this.deps.writer?.();
    if (writer && (!this.renderer || signature !== this.rendererSignature || this.needFullSync || this.consecutiveFailures >= 2)) {
      if (!this.renderer || signature !== this.rendererSignature) {
        this.renderer = new NFTablesRenderer(options);
        this.rendererSignature = signature;
      }
      await this.adopt(this.renderer, writer);
      return { renderer: this.renderer, full: true, rebuild: false };
    }
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
    const options = this.opts.renderOptions();
    // With the netlink writer: smaller batches, and new chains created in their service's own batch.
    const { renderer, full, rebuild } = await this.rendererFor(this.deps.writer ? { maxTransactionLines: NETLINK_MAX_TRANSACTION_LINES, precreateChains: false, ...options } : options);
    this.needFullSync = false;
    const plan = renderer.plan({ services: this.services.map, endpoints: this.endpoints.map });
    // A rebuild of a table that exists goes in one piece (see above).
    const batches = rebuild && plan.transactions.length > 1 ? [plan.transactions] : plan.transactions.map((t) => [t]);
    const writer = this.deps.writer?.();
    for (const [i, batch] of batches.entries()) {
      try {
        if (writer) await writer.apply(batch[0]!.table, batch.length === 1 ? batch[0]!.commands : batch.flatMap((t) => t.commands));
        else await nft.run(batch.map((t) => t.text).join(''));
      } catch (err) {
        this.consecutiveFailures++;
        metrics.nftablesSyncFailuresTotal.inc(this.label);
        const stderr = err instanceof ExecError ? err.stderr : err instanceof Error ? err.message : String(err);
        const servicePorts = batch.flatMap((t) => t.servicePorts).slice(0, 10);
        const failing = err instanceof NftBatchError ? err.command : undefined;
        log.error({ err, ipFamily: this.label.ip_family, transaction: i, of: batches.length, servicePorts, failing, stderr }, 'nft transaction failed; what it would change stays as it was');
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

/**
 * The writer for an Nft: the netlink writer in the namespace RealNft runs
 * in (opened on first use, shared by both families), unless
 * KUBE_PROXY_NFT_WRITER=nft asks for `nft -f`; none for other Nft
 * implementations (fakes), which then get the text.
 */
export function defaultNftWriter(nft: Nft, env: NodeJS.ProcessEnv = process.env): (() => NftBatchWriter) | undefined {
  if (!(nft instanceof RealNft) || env.KUBE_PROXY_NFT_WRITER === 'nft') return undefined;
  let w: NftBatchWriter | undefined;
  return () => (w ??= NftNetlinkWriter.open(nft.netns !== undefined ? { netns: nft.netns } : {}));
}

/** The ServiceProxy backend of the nftables mode. */
export function nftablesBackend(
  nft: Nft,
  opts: { nodeName: string; renderOptions: (family: Family, node: V1Node | undefined) => NFTablesOptions; writer?: () => NftBatchWriter },
): (family: Family, deps: FamilyDeps, node: () => V1Node | undefined) => FamilyProxier {
  const writer = opts.writer ?? defaultNftWriter(nft);
  return (family, deps, node) =>
    new NFTablesFamilyProxier({ family, nodeName: opts.nodeName, renderOptions: () => opts.renderOptions(family, node()) }, { ...deps, nft, ...(writer ? { writer } : {}) });
}
