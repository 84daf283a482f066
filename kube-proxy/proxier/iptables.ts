// The iptables-mode apply layer of one IP family (upstream's Proxier in
// pkg/proxy/iptables). Watch handlers only record changes in the trackers
// and ask the family's runner for a sync; sync() folds the changes in,
// renders (partial when it can, KEP-3453) and feeds the whole result to one
// `iptables-restore --noflush`:
//
// - Full syncs: the first one, after a failed restore (the kernel may hold
//   anything), on a retry, when the KUBE-PROXY-CANARY chain has vanished
//   (checked on the periodic tick: a firewall reload flushed us), and once
//   per fullSyncPeriod (upstream's FullSyncPeriod, 1 h). They read
//   iptables-save once, which gives the stale chains to delete and the
//   base-chain jumps to re-insert, all in the same restore.
// - Partial syncs rewrite the top-level chains and the changed services'
//   chains only, and keep their own record of the nat chains that exist.
// - A failed restore changes nothing in the kernel (iptables-restore is
//   atomic per table and --noflush keeps the rest); it is logged with the
//   line iptables-restore names, counted, and thrown to the runner, which
//   retries with backoff; the retry is a full sync.
// - Nothing is synced before both Services and EndpointSlices have been
//   read once, so a restart never writes a ruleset without endpoints, and
//   rules are never flushed: the old ones serve until the new ones land.
import type { V1Node } from '@kubernetes/client-node';
import type { Family } from '../../lib/ip/index.ts';
import { ExecError } from '../../lib/exec.ts';
import type { IpFamily, IptablesRestore } from '../../lib/netfilter/iptables.ts';
import { IPTablesRenderer, type IPTablesOptions, type RenderResult } from '../render/iptables.ts';
import { FamilyProxierBase, type FamilyDeps, type FamilyProxier, type SyncReason } from './family.ts';
import { baseRuleLines, failingLine, hasCanary, missingJumpLines, scanSave } from './rules.ts';

/** Upstream's proxyutil.FullSyncPeriod. */
export const FULL_SYNC_PERIOD_MS = 3_600_000;

export interface FamilyProxierDeps extends FamilyDeps {
  readonly iptables: IptablesRestore;
}

export interface FamilyProxierOptions {
  readonly family: Family;
  readonly nodeName: string;
  /** The renderer's options, read at every sync (the node's IPs and labels may change). */
  readonly renderOptions: () => IPTablesOptions;
  readonly fullSyncPeriodMs?: number;
}

/** What one sync did, for the owner (health-check ports) and tests. */
export interface SyncOutcome {
  readonly full: boolean;
  readonly result: RenderResult;
  readonly conntrackDeleted: number;
  /** Where the sync's wall time went (ms), for logs and benchmarks. */
  readonly timings: SyncTimings;
}

export interface SyncTimings {
  /** iptables-save (canary check, and the full dump of a full sync). */
  readonly saveMs: number;
  /** Folding the trackers' pending changes into the model. */
  readonly foldMs: number;
  /** Rendering the restore text (with the base rules of a full sync). */
  readonly renderMs: number;
  /** The one iptables-restore. */
  readonly restoreMs: number;
  readonly conntrackMs: number;
  readonly totalMs: number;
}

const msSince = (t: bigint): number => Number(process.hrtime.bigint() - t) / 1e6;

export class RestoreFailedError extends Error {
  constructor(
    readonly family: Family,
    readonly line: number | undefined,
    readonly lineText: string | undefined,
    cause: unknown,
  ) {
    super(`iptables-restore (IPv${family}) failed${line === undefined ? '' : ` at line ${line}: ${lineText ?? ''}`}`, { cause });
    this.name = 'RestoreFailedError';
  }
}

export class IPTablesFamilyProxier extends FamilyProxierBase implements FamilyProxier {
  private readonly renderer = new IPTablesRenderer();
  private readonly ipFamily: IpFamily;
  private readonly fullSyncPeriodMs: number;
  private lastFullSync = Number.NEGATIVE_INFINITY;
  /** Our record of the nat chains that exist (refreshed from iptables-save on full syncs). */
  private existingNatChains: Set<string> | undefined;
  private lastOutcome: Omit<SyncOutcome, 'result'> | undefined;

  constructor(
    private readonly opts: FamilyProxierOptions,
    private readonly deps: FamilyProxierDeps,
  ) {
    super(opts.family, opts.nodeName, deps);
    this.ipFamily = opts.family === 4 ? 'ip' : 'ip6';
    this.fullSyncPeriodMs = opts.fullSyncPeriodMs ?? FULL_SYNC_PERIOD_MS;
  }

  get outcome(): Omit<SyncOutcome, 'result'> | undefined {
    return this.lastOutcome;
  }

  // ---- sync ---------------------------------------------------------------

  /** One sync; throws (for the runner to retry) when the restore fails. */
  async sync(reason: SyncReason): Promise<SyncOutcome | undefined> {
    if (!this.initialized) return undefined;
    const start = process.hrtime.bigint();
    const { log, iptables, metrics } = this.deps;
    let saveMs = 0;
    let t = start;
    let full = this.needFullSync || reason === 'retry' || this.now() - this.lastFullSync >= this.fullSyncPeriodMs;
    if (!full && reason === 'periodic' && !hasCanary(await iptables.save(this.ipFamily, 'mangle'))) {
      log.info({ ipFamily: this.label.ip_family }, 'iptables canary KUBE-PROXY-CANARY is gone (firewall reload?), doing a full sync');
      full = true;
    }
    saveMs += msSince(t);
    // From here on a failure must force a full sync: the trackers' changes are folded in.
    this.needFullSync = true;
    t = process.hrtime.bigint();
    const changes = this.checkout();
    const foldMs = msSince(t);

    const options = this.opts.renderOptions();
    let jumps = { filter: [] as string[], nat: [] as string[] };
    const readDump = async (): Promise<void> => {
      // The stale chains to delete and the base-chain jumps to re-insert, all in the same restore.
      const ts = process.hrtime.bigint();
      const save = scanSave(await iptables.save(this.ipFamily));
      this.existingNatChains = new Set(save.table('nat')?.chains.keys() ?? []);
      jumps = missingJumpLines(save, this.family === 4 && (options.localhostNodePorts ?? true));
      saveMs += msSince(ts);
    };
    if (full) await readDump();
    t = process.hrtime.bigint();
    let result = this.renderer.render(
      {
        services: this.services.map,
        endpoints: this.endpoints.map,
        updatedServices: full ? undefined : changes.updatedServices,
        existingNatChains: this.existingNatChains,
        extra: full ? baseRuleLines(jumps) : undefined,
      },
      options,
    );
    if (!full && result.fullSync) {
      // The renderer turned the partial sync into a full one (its context
      // changed): make it a whole full sync, with the dump and the base rules.
      full = true;
      await readDump();
      result = this.renderer.render(
        { services: this.services.map, endpoints: this.endpoints.map, existingNatChains: this.existingNatChains, extra: baseRuleLines(jumps) },
        options,
      );
    }
    const text = result.text;
    const renderMs = msSince(start) - saveMs - foldMs;
    t = process.hrtime.bigint();
    try {
      await iptables.restore(this.ipFamily, text, { noflush: true });
    } catch (err) {
      metrics.iptablesRestoreFailuresTotal.inc(this.label);
      if (!full) metrics.iptablesPartialRestoreFailuresTotal.inc(this.label);
      const stderr = err instanceof ExecError ? err.stderr : '';
      const line = failingLine(stderr);
      const lineText = line === undefined ? undefined : lineAt(text, line);
      log.error({ err, ipFamily: this.label.ip_family, line, lineText, stderr, full }, 'Failed to execute iptables-restore; the previous rules stay in place');
      throw new RestoreFailedError(this.family, line, lineText, err);
    }
    const restoreMs = msSince(t);
    this.needFullSync = false;
    if (full) this.lastFullSync = this.now();
    if (full) {
      // Every stale service chain is gone and every active one was written: the
      // record is exactly the written chains (strings the renderer holds anyway,
      // not slices of the 30 MB dump, which can now be collected).
      this.existingNatChains = new Set(result.writtenChains);
    } else if (this.existingNatChains) {
      for (const c of result.deletedChains) this.existingNatChains.delete(c);
      for (const c of result.writtenChains) this.existingNatChains.add(c);
    }
    this.observe(result);
    this.succeeded(full, start, changes);
    t = process.hrtime.bigint();
    const conntrackDeleted = await this.cleanConntrack(full);
    const timings = { saveMs, foldMs, renderMs, restoreMs, conntrackMs: msSince(t), totalMs: msSince(start) };
    // Kept without the result: its text is the whole ruleset (30 MB at 10,000 services).
    this.lastOutcome = { full, conntrackDeleted, timings };
    log.debug(
      { ipFamily: this.label.ip_family, full, reason, services: this.services.map.size, written: result.writtenChains.length, deleted: result.deletedChains.length, ...timings },
      'synced iptables rules',
    );
    return { full, result, conntrackDeleted, timings };
  }

  /** The iptables-only metrics: rule counts and services in the DROP state. */
  private observe(r: RenderResult): void {
    const m = this.deps.metrics;
    m.iptablesRulesTotal.set({ ...this.label, table: 'filter' }, r.filterRules);
    m.iptablesRulesTotal.set({ ...this.label, table: 'nat' }, r.natRulesTotal);
    m.iptablesRulesLast.set({ ...this.label, table: 'filter' }, r.filterRules);
    m.iptablesRulesLast.set({ ...this.label, table: 'nat' }, r.natRulesWritten);
    m.noLocalEndpointsTotal.set({ ...this.label, traffic_policy: 'internal' }, r.noLocalEndpointsInternal);
    m.noLocalEndpointsTotal.set({ ...this.label, traffic_policy: 'external' }, r.noLocalEndpointsExternal);
  }
}

/** Line `n` (1-based) of `text`, without splitting all of it. */
function lineAt(text: string, n: number): string | undefined {
  let pos = 0;
  for (let i = 1; i < n; i++) {
    pos = text.indexOf('\n', pos) + 1;
    if (pos === 0) return undefined;
  }
  const end = text.indexOf('\n', pos);
  return text.slice(pos, end < 0 ? text.length : end);
}

/** The ServiceProxy backend of the iptables mode. */
export function iptablesBackend(
  iptables: IptablesRestore,
  opts: { nodeName: string; renderOptions: (family: Family, node: V1Node | undefined) => IPTablesOptions; fullSyncPeriodMs?: number },
): (family: Family, deps: FamilyDeps, node: () => V1Node | undefined) => FamilyProxier {
  return (family, deps, node) =>
    new IPTablesFamilyProxier(
      { family, nodeName: opts.nodeName, renderOptions: () => opts.renderOptions(family, node()), ...(opts.fullSyncPeriodMs === undefined ? {} : { fullSyncPeriodMs: opts.fullSyncPeriodMs }) },
      { ...deps, iptables },
    );
}
