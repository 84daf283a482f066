// The per-node agent: sources of Pods, Namespaces, NetworkPolicies and this
// node's Node feed one coalesced sync (DESIGN.md rule 6). Watch handlers
// only note that something changed and ask the runner for a run; the run
// builds the cluster model, plans this node, and applies:
//   - in full on the first run, on the periodic resync and on a retry (what
//     the kernel holds after a failure can no longer be trusted);
//   - else only the difference from the last plan applied (renderUpdate).
// A failed apply leaves the previous rules in place (one nft transaction is
// all or nothing; iptables is retried in full), is logged with the line the
// tool rejected, counted, and retried with backoff by the runner.
// After every apply that changed something, the node's conntrack entries
// that the new rules would not admit are deleted: a denied connection is
// cut, not left running on its conntrack entry.
import type { V1Namespace, V1NetworkPolicy, V1Node, V1Pod } from '@kubernetes/client-node';
import { errorMessage } from '../lib/errors.ts';
import { IPPrefix, type IPAddr } from '../lib/ip/index.ts';
import type { Source } from '../lib/kube/index.ts';
import type { Logger } from '../lib/log.ts';
import { Counter, Gauge, Histogram, secondsSince, type Registry } from '../lib/metrics.ts';
import type { Conntrack, ConntrackEntry, ConntrackFilter, ConntrackProto } from '../lib/netfilter/conntrack.ts';
import { BoundedFrequencyRunner, type Clock, type RunContext } from '../lib/runner/index.ts';
import { ApplyError, type Backend } from './backend.ts';
import { buildCluster, flowsToCut, localPlan, type Cluster, type ClusterObjects, type Flow, type LocalPlan, type Problem, type Protocol } from './model/index.ts';

export interface AgentSources {
  readonly pods: Source<V1Pod>;
  readonly namespaces: Source<V1Namespace>;
  readonly policies: Source<V1NetworkPolicy>;
  /** Nodes (at least this one): its spec.podCIDRs are the addresses held until evaluated. */
  readonly nodes: Source<V1Node>;
}

export interface AgentOptions {
  readonly nodeName: string;
  readonly sources: AgentSources;
  readonly backend: Backend;
  readonly conntrack: Conntrack;
  readonly log: Logger;
  readonly registry: Registry;
  /** 'hold' (default): an unknown address of the node's pod CIDRs is dropped until evaluated; 'open': upstream's behaviour. */
  readonly newPods?: 'hold' | 'open';
  /** Minimum time between two syncs (ms); default 0: a change is applied as soon as the previous sync ends. */
  readonly minSyncIntervalMs?: number;
  /** Periodic full resync (ms); default 5 min. */
  readonly resyncIntervalMs?: number;
  /** First retry delay after a failed sync (ms), doubling up to retryMaxMs; defaults 1 s and 30 s. */
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  readonly clock?: Clock;
  /** Called once, when the first sync is applied (systemd READY=1). */
  readonly onFirstSync?: () => void;
}

/** The cluster as the agent last synced it: what /debug/state serves and `netpolicy explain --agent` reads. */
export interface AgentState extends ClusterObjects {
  readonly node: string;
  readonly backend: string;
  readonly applied: boolean;
}

const CONNTRACK_PROTOS: Readonly<Record<string, Protocol>> = { tcp: 'TCP', udp: 'UDP', sctp: 'SCTP' };

export class Agent {
  private readonly opts: AgentOptions;
  private readonly log: Logger;
  private readonly runner: BoundedFrequencyRunner;
  private readonly m: AgentMetrics;
  /** The plan the kernel holds, once a sync applied one. */
  private applied: LocalPlan | undefined;
  private lastObjects: ClusterObjects = {};
  /** Problems already logged, so each is logged once while it lasts. */
  private loggedProblems = new Set<string>();
  /** What the current sync is doing, for the error metric and log. */
  private stage: 'read' | 'apply' | 'conntrack' = 'read';
  /** The signal of run(): a shutdown stops cutting connections midway (the next start cuts the rest). */
  private signal: AbortSignal | undefined;

  constructor(opts: AgentOptions) {
    this.opts = opts;
    this.log = opts.log;
    this.m = agentMetrics(opts.registry, opts.backend);
    this.runner = new BoundedFrequencyRunner({
      name: 'netpolicy-sync',
      fn: (ctx) => this.sync(ctx),
      minInterval: opts.minSyncIntervalMs ?? 0,
      maxInterval: opts.resyncIntervalMs ?? 5 * 60_000,
      retryInitial: opts.retryInitialMs ?? 1000,
      retryMax: opts.retryMaxMs ?? 30_000,
      onError: (err, failures) => this.syncFailed(err, failures),
      ...(opts.clock ? { clock: opts.clock } : {}),
    });
  }

  /** True once the first sync is applied: /healthz answers 200 from then on. */
  get ready(): boolean {
    return this.applied !== undefined;
  }

  /** The objects of the last sync. */
  state(): AgentState {
    return { node: this.opts.nodeName, backend: this.opts.backend.name, applied: this.ready, ...this.lastObjects };
  }

  /** Watches and syncs until `signal` aborts. The rules stay in place when it ends (a restart must not open the node). */
  async run(signal: AbortSignal): Promise<void> {
    this.signal = signal;
    const { sources } = this.opts;
    const all = [sources.pods, sources.namespaces, sources.policies, sources.nodes] as const;
    const changed = (): void => this.runner.run();
    const unsubscribe = all.map((s) =>
      (s as Source<V1Pod>).subscribe({
        add: changed,
        update: changed,
        delete: changed,
        sync: changed,
        error: (err) => this.log.warn({ kind: s.kind, err: errorMessage(err) }, 'watch failed, retrying'),
      }),
    );
    const running = all.map((s) => s.run(signal));
    try {
      // The first sync waits for every source: a plan from a partial view
      // would isolate too little or too much.
      await Promise.all(all.map((s) => s.waitForSync(signal)));
      this.log.info({ node: this.opts.nodeName, backend: this.opts.backend.name }, 'sources synced, starting sync loop');
      await this.runner.loop(signal);
    } catch (err) {
      if (!signal.aborted) throw err;
    } finally {
      unsubscribe.forEach((u) => u());
      await Promise.all(running);
    }
  }

  /** One sync; exported for tests through the runner's reasons. */
  async sync(ctx: RunContext): Promise<void> {
    const start = process.hrtime.bigint();
    this.stage = 'read';
    const { sources, nodeName, backend } = this.opts;
    const objects: ClusterObjects = { pods: sources.pods.list(), namespaces: sources.namespaces.list(), policies: sources.policies.list() };
    const cluster = buildCluster(objects);
    this.reportProblems(cluster.problems);
    const podCIDRs = this.opts.newPods === 'open' ? [] : nodePodCIDRs(sources.nodes.list().find((n) => n.metadata?.name === nodeName), this.log);
    const plan = localPlan(cluster, nodeName, { podCIDRs });

    this.stage = 'apply';
    const prev = this.applied;
    const full = prev === undefined || ctx.reason !== 'requested';
    const mode = full ? 'full' : 'partial';
    let changed = true;
    if (full) await backend.applyFull(plan);
    else changed = await backend.applyUpdate(prev, plan);
    const first = this.applied === undefined;
    this.applied = plan;
    // What /debug/state serves is what the kernel enforces.
    this.lastObjects = objects;
    if (first) {
      this.log.info({ node: nodeName, pods: plan.pods.length, policies: plan.policies.length }, 'first sync applied');
      this.opts.onFirstSync?.();
    }
    this.m.duration.observe({ mode }, secondsSince(start));
    this.updateGauges(cluster, plan);
    this.log.debug({ reason: ctx.reason, mode, changed, seconds: secondsSince(start) }, 'sync applied');
    const cutStart = process.hrtime.bigint();
    this.stage = 'conntrack';
    if (changed) await this.cutDenied(cluster);
    this.log.debug({ seconds: secondsSince(cutStart) }, 'conntrack checked');
  }

  private syncFailed(err: unknown, failures: number): void {
    const stage = this.stage;
    this.m.errors.inc({ stage });
    const fields = err instanceof ApplyError ? { tool: err.tool, line: err.line, err: errorMessage(err.cause) } : { err: errorMessage(err) };
    this.log.error({ ...fields, stage, failures }, stage === 'conntrack' ? 'cutting denied connections failed, retrying' : 'sync failed: previous rules stay, retrying');
  }

  /** Logs each problem of the inputs once while it lasts; rejected policies are counted. */
  private reportProblems(problems: readonly Problem[]): void {
    const now = new Set<string>();
    const rejected = new Set<string>();
    for (const p of problems) {
      const id = `${p.kind}\n${p.object}\n${p.field}\n${p.reason}`;
      now.add(id);
      if (p.kind === 'NetworkPolicy') rejected.add(p.object);
      if (this.loggedProblems.has(id)) continue;
      if (p.kind === 'NetworkPolicy') {
        this.log.warn({ policy: p.object, field: p.field, reason: p.reason }, 'policy rejected: it isolates the pods it selects and allows nothing');
      } else this.log.warn({ pod: p.object, field: p.field, reason: p.reason }, 'pod field ignored');
    }
    this.loggedProblems = now;
    this.m.rejected.set(rejected.size);
  }

  private updateGauges(cluster: Cluster, plan: LocalPlan): void {
    this.m.policies.set(cluster.policies.length);
    this.m.isolated.set({ direction: 'ingress' }, plan.pods.filter((p) => p.ingress !== undefined).length);
    this.m.isolated.set({ direction: 'egress' }, plan.pods.filter((p) => p.egress !== undefined).length);
    const c = this.opts.backend.counts(plan);
    this.m.rules.set(c.rules);
    this.m.elements.set(c.elements);
  }

  /** Deletes the node's conntrack entries that the rules just applied would not admit. */
  private async cutDenied(cluster: Cluster): Promise<void> {
    const entries: ConntrackEntry[] = [];
    for (const f of [4, 6] as const) entries.push(...(await this.opts.conntrack.list(f)));
    const flows: (Flow & { entry: ConntrackEntry })[] = [];
    for (const e of entries) {
      const protocol = CONNTRACK_PROTOS[e.proto];
      if (protocol === undefined || e.orig.dport === undefined || !live(e)) continue;
      flows.push({ src: e.orig.src, dst: e.orig.dst, protocol, port: e.orig.dport, entry: e });
    }
    const cut = new Set(flowsToCut(cluster, this.opts.nodeName, flows) as (Flow & { entry: ConntrackEntry })[]);
    const filters = cutFilters(flows, cut);
    // `conntrack -D` takes one filter per process: a few at a time.
    for (let i = 0; i < filters.length && !this.signal?.aborted; i += CUT_CONCURRENCY) {
      await Promise.all(filters.slice(i, i + CUT_CONCURRENCY).map((f) => this.cutOne(f)));
    }
  }

  private async cutOne(f: ConntrackFilter & { origDst: IPAddr }): Promise<void> {
    const n = await this.opts.conntrack.delete(f);
    this.m.cut.inc(n);
    const { origSrc, origSrcPort, origDstPort } = f as { origSrc?: IPAddr; origSrcPort?: number; origDstPort?: number };
    this.log.info({ proto: f.proto, src: origSrc?.toString(), sport: origSrcPort, dst: f.origDst.toString(), dport: origDstPort, entries: n }, 'cut connections that policy now denies');
  }
}

/**
 * The fewest deletions that remove every flow to cut and no live flow that
 * stays allowed: by destination when no allowed live flow shares it, else
 * by destination and port, else the exact flow (both addresses and ports).
 * Deleting an entry that is not live (closing, or never answered) is harmless:
 * its next packet is `new` and meets the rules.
 */
export function cutFilters<F extends Flow & { entry: ConntrackEntry }>(live: readonly F[], cut: ReadonlySet<F>): (ConntrackFilter & { origDst: IPAddr })[] {
  const kept = live.filter((f) => !cut.has(f));
  const byDst = new Set(kept.map((f) => `${f.entry.proto} ${f.dst.toString()}`));
  const byPort = new Set(kept.map((f) => `${f.entry.proto} ${f.dst.toString()} ${f.port}`));
  const out = new Map<string, ConntrackFilter & { origDst: IPAddr }>();
  for (const f of cut) {
    const proto = f.entry.proto as ConntrackProto;
    const dst = `${proto} ${f.dst.toString()}`;
    const port = `${dst} ${f.port}`;
    if (!byDst.has(dst)) out.set(dst, { proto, origDst: f.dst });
    else if (!byPort.has(port)) out.set(port, { proto, origDst: f.dst, origDstPort: f.port });
    else {
      const o = f.entry.orig;
      out.set(`${port} ${o.src.toString()} ${o.sport}`, { proto, origDst: o.dst, origDstPort: f.port, origSrc: o.src, ...(o.sport !== undefined ? { origSrcPort: o.sport } : {}) });
    }
  }
  return [...out.values()];
}

const CUT_CONCURRENCY = 8;

/**
 * Whether an entry carries a connection the rules could be bypassing: one
 * that has seen a reply (its packets are `established`) and is not closing.
 * An unreplied entry's next packet is still `new`, and so policed anyway.
 */
function live(e: ConntrackEntry): boolean {
  return !e.flags.includes('UNREPLIED') && e.state !== 'TIME_WAIT' && e.state !== 'CLOSE';
}

function nodePodCIDRs(node: V1Node | undefined, log: Logger): IPPrefix[] {
  const texts = node?.spec?.podCIDRs?.length ? node.spec.podCIDRs : node?.spec?.podCIDR ? [node.spec.podCIDR] : [];
  const out: IPPrefix[] = [];
  for (const t of texts) {
    const p = IPPrefix.parse(t);
    if (p) out.push(p.masked());
    else log.warn({ podCIDR: t }, 'node podCIDR is not a prefix; ignored');
  }
  return out;
}

interface AgentMetrics {
  readonly policies: Gauge<string>;
  readonly rejected: Gauge<string>;
  readonly isolated: Gauge<string>;
  readonly rules: Gauge<string>;
  readonly elements: Gauge<string>;
  readonly duration: Histogram<string>;
  readonly errors: Counter<string>;
  readonly cut: Counter<string>;
}

function agentMetrics(registry: Registry, backend: Backend): AgentMetrics {
  const registers = [registry];
  new Gauge({
    name: 'netpolicy_denied_packets',
    help: 'Packets dropped by the current rules (from the kernel counters; a full resync starts them at 0)',
    labelNames: ['direction'],
    registers,
    async collect() {
      try {
        const d = await backend.denied();
        this.set({ direction: 'ingress' }, d.ingress);
        this.set({ direction: 'egress' }, d.egress);
      } catch {
        // No table yet (before the first sync): nothing was denied by us.
        this.reset();
      }
    },
  });
  return {
    policies: new Gauge({ name: 'netpolicy_policies', help: 'NetworkPolicies in the cluster, rejected ones included', registers }),
    rejected: new Gauge({ name: 'netpolicy_rejected_policies', help: 'NetworkPolicies rejected as invalid (they isolate and allow nothing)', registers }),
    isolated: new Gauge({ name: 'netpolicy_local_pods_isolated', help: 'Pods on this node isolated by some policy, per direction', labelNames: ['direction'], registers }),
    rules: new Gauge({ name: 'netpolicy_rules', help: 'Rules the agent holds in the kernel', registers }),
    elements: new Gauge({ name: 'netpolicy_set_elements', help: 'Set and map elements the agent holds in the kernel', registers }),
    duration: new Histogram({
      name: 'netpolicy_sync_duration_seconds',
      help: 'Duration of a successful sync (plan + apply), full or partial',
      labelNames: ['mode'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    errors: new Counter({ name: 'netpolicy_sync_errors_total', help: 'Failed syncs, by stage (read, apply, conntrack)', labelNames: ['stage'], registers }),
    cut: new Counter({ name: 'netpolicy_conntrack_flows_cut_total', help: 'Conntrack entries deleted because policy now denies them', registers }),
  };
}
