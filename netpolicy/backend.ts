// The thin apply layer: a plan goes to the kernel through one of two
// backends, each owning only its own objects (nftables: `table inet
// netpolicy`; iptables: the NETPOL-* chains, the two jumps into them from
// FORWARD and INPUT, and the NP4-*/NP6-* ipsets). A full apply writes
// everything (first sync, periodic resync, retry after a failure); an update
// applies only the difference between the last applied plan and the next.
import { ExecError } from '../lib/exec.ts';
import type { Family } from '../lib/ip/index.ts';
import type { IpFamily, IptablesRestore } from '../lib/netfilter/iptables.ts';
import { parseIptablesSave } from '../lib/netfilter/iptables.ts';
import type { Ipset } from '../lib/netfilter/ipset.ts';
import type { Nft } from '../lib/netfilter/nft.ts';
import { NetError } from '../lib/errors.ts';
import type { LocalPlan } from './model/index.ts';
import { DEFAULT_TABLE, diffStates, nftCounts, nftState, type NftRenderOptions, type NftState } from './render/nftables.ts';
import { IPTABLES_JUMPS, iptablesCounts, iptablesState, renderIptablesFull, renderIptablesUpdate, type IptablesRenderOptions, type IptablesScripts } from './render/iptables.ts';

export type BackendName = 'nftables' | 'iptables';

export interface Counts {
  readonly rules: number;
  readonly elements: number;
}

/** Packets the current rules dropped, per direction. */
export interface Denied {
  readonly ingress: number;
  readonly egress: number;
}

export interface Backend {
  readonly name: BackendName;
  /** Writes the whole desired state, replacing whatever of ours is there. */
  applyFull(plan: LocalPlan): Promise<void>;
  /** Applies only what differs from `prev` (the plan last applied successfully). */
  /** Returns whether anything had to be written. */
  applyUpdate(prev: LocalPlan, next: LocalPlan): Promise<boolean>;
  /** Rules and set elements the plan renders to. */
  counts(plan: LocalPlan): Counts;
  /** Packets dropped by our rules, read from the kernel's counters. */
  denied(): Promise<Denied>;
  /** Removes everything of ours; idempotent. */
  cleanup(): Promise<void>;
}

export interface LogDenied {
  readonly logDenied?: false | { readonly ratePerSecond?: number; readonly group?: number };
}

/** An apply that failed, with the script line the tool rejected (when it names one). */
export class ApplyError extends NetError {
  constructor(
    readonly tool: string,
    readonly line: string | undefined,
    cause: unknown,
  ) {
    super('NETPOLICY_APPLY', `${tool} failed${line === undefined ? '' : ` at: ${line}`}`, { cause });
  }
}

const LINE_PATTERNS = [/\/dev\/stdin:(\d+):/, /Error occurred at line: (\d+)/, /line (\d+) failed/, /Error in line (\d+)/];

/** The script line a tool's error names (nft, iptables-restore, ipset restore), if any. */
export function failingLine(err: unknown, script: string): string | undefined {
  if (!(err instanceof ExecError)) return undefined;
  for (const re of LINE_PATTERNS) {
    const m = re.exec(err.stderr);
    if (m) return script.split('\n')[Number(m[1]) - 1];
  }
  return undefined;
}

async function step(tool: string, script: string, fn: () => Promise<void>): Promise<void> {
  if (script === '') return;
  try {
    await fn();
  } catch (err) {
    throw new ApplyError(tool, failingLine(err, script), err);
  }
}

// ---------------------------------------------------------------------------
// nftables

export class NftBackend implements Backend {
  readonly name = 'nftables';
  private readonly opts: NftRenderOptions;
  constructor(
    private readonly nft: Nft,
    opts: LogDenied = {},
  ) {
    this.opts = { table: DEFAULT_TABLE, ...(opts.logDenied ? { logDenied: opts.logDenied } : {}) };
  }

  /**
   * The table content of the plan applied last. An update diffs against it
   * instead of rendering `prev` again: at 1,000 pods / 500 policies that
   * halves the render of a one-pod change.
   */
  private applied: { readonly plan: LocalPlan; readonly state: NftState } | undefined;

  async applyFull(plan: LocalPlan): Promise<void> {
    const state = nftState(plan, this.opts);
    const script = renderFlatFullState(state);
    this.applied = undefined;
    await step('nft -f -', script, () => this.nft.run(script));
    this.applied = { plan, state };
  }

  async applyUpdate(prev: LocalPlan, next: LocalPlan): Promise<boolean> {
    const from = this.applied?.plan === prev ? this.applied.state : nftState(prev, this.opts);
    const to = nftState(next, this.opts);
    const script = diffStates(from, to);
    this.applied = undefined;
    await step('nft -f -', script, () => this.nft.run(script));
    this.applied = { plan: next, state: to };
    return script !== '';
  }

  counts(plan: LocalPlan): Counts {
    return nftCounts(nftState(plan, this.opts));
  }

  async denied(): Promise<Denied> {
    const t = await this.nft.list('inet', DEFAULT_TABLE);
    const out = { ingress: 0, egress: 0 };
    for (const r of t?.rules ?? []) {
      // The group chains end in `counter drop`: everything they count was denied.
      const dir = r.chain.startsWith('grp_in_') ? 'ingress' : r.chain.startsWith('grp_eg_') ? 'egress' : undefined;
      const m = /counter packets (\d+)/.exec(r.text);
      if (dir && m && /\bdrop\b/.test(r.text)) out[dir] += Number(m[1]);
    }
    return out;
  }

  async cleanup(): Promise<void> {
    // `add` then `delete`: removes the table whether or not it exists, in one transaction.
    const script = `add table inet ${DEFAULT_TABLE}\ndelete table inet ${DEFAULT_TABLE}\n`;
    await step('nft -f -', script, () => this.nft.run(script));
  }
}

/**
 * The whole table as one atomic transaction of single-line commands (what
 * renderFull writes as one block, here as the update from an empty table):
 * the table is dropped and built anew, so nothing stale of ours survives,
 * and nothing else is touched. Single lines let a failure name its line.
 */
export function renderFlatFull(plan: LocalPlan, opts: NftRenderOptions = {}): string {
  return renderFlatFullState(nftState(plan, opts));
}

function renderFlatFullState(next: NftState): string {
  const empty: NftState = { table: next.table, sets: new Map(), chains: new Map() };
  const t = `inet ${next.table}`;
  return `add table ${t}\ndelete table ${t}\nadd table ${t}\n${diffStates(empty, next)}`;
}

// ---------------------------------------------------------------------------
// iptables + ipset

const CHAIN_PREFIX = 'NETPOL-';
const SET_PREFIX = /^NP[46]-/;
const IPFAM: Record<Family, IpFamily> = { 4: 'ip', 6: 'ip6' };

export class IptablesBackend implements Backend {
  readonly name = 'iptables';
  private readonly opts: IptablesRenderOptions;
  constructor(
    private readonly ipt: IptablesRestore,
    private readonly ipset: Ipset,
    opts: LogDenied & { mark?: number } = {},
  ) {
    this.opts = { ...(opts.logDenied ? { logDenied: opts.logDenied } : {}), ...(opts.mark !== undefined ? { mark: opts.mark } : {}) };
  }

  async applyFull(plan: LocalPlan): Promise<void> {
    const saved = { 4: await this.saveFilter(4), 6: await this.saveFilter(6) };
    const sets = (await this.ipset.list()).map((s) => s.name).filter((n) => SET_PREFIX.test(n));
    const stale = {
      chains: { 4: ourChains(saved[4]), 6: ourChains(saved[6]) },
      sets,
    };
    const s = renderIptablesFull(plan, this.opts, stale);
    // The jumps into our chains go first in FORWARD and INPUT, exactly once:
    // ahead of kube-proxy's and flannel's rules, which may ACCEPT.
    const scripts: IptablesScripts = {
      ...s,
      iptables: withJumps(s.iptables, saved[4]),
      ip6tables: withJumps(s.ip6tables, saved[6]),
    };
    await this.applyScripts(scripts);
  }

  async applyUpdate(prev: LocalPlan, next: LocalPlan): Promise<boolean> {
    const s = renderIptablesUpdate(prev, next, this.opts);
    await this.applyScripts(s);
    return Object.values(s).some((t) => t !== '');
  }

  private async applyScripts(s: IptablesScripts): Promise<void> {
    await step('ipset restore', s.ipsetPre, () => this.ipset.restore(s.ipsetPre));
    await step('iptables-restore', s.iptables, () => this.ipt.restore('ip', s.iptables, { noflush: true }));
    await step('ip6tables-restore', s.ip6tables, () => this.ipt.restore('ip6', s.ip6tables, { noflush: true }));
    await step('ipset restore', s.ipsetPost, () => this.ipset.restore(s.ipsetPost));
  }

  private async saveFilter(f: Family): Promise<string> {
    return this.ipt.save(IPFAM[f], 'filter');
  }

  counts(plan: LocalPlan): Counts {
    return iptablesCounts(iptablesState(plan, this.opts));
  }

  async denied(): Promise<Denied> {
    const out = { ingress: 0, egress: 0 };
    for (const f of [4, 6] as const) {
      const dump = parseIptablesSave(await this.ipt.save(IPFAM[f], 'filter', { counters: true }));
      for (const r of dump.rules('filter')) {
        // A group chain's last rule is its DROP.
        const dir = r.chain.startsWith('NETPOL-GI-') ? 'ingress' : r.chain.startsWith('NETPOL-GE-') ? 'egress' : undefined;
        if (dir && r.args.at(-1) === 'DROP' && r.args.at(-2) === '-j') out[dir] += Number(r.counters?.packets ?? 0);
      }
    }
    return out;
  }

  async cleanup(): Promise<void> {
    for (const f of [4, 6] as const) {
      const saved = await this.saveFilter(f);
      const chains = ourChains(saved);
      const jumps = jumpDeletes(saved);
      if (chains.length === 0 && jumps.length === 0) continue;
      // Jumps first, then every chain flushed before any is deleted (they refer to each other).
      const lines = ['*filter', ...jumps, ...chains.map((c) => `:${c} - [0:0]`), ...chains.map((c) => `-X ${c}`), 'COMMIT'];
      const script = lines.join('\n') + '\n';
      await step(`${IPFAM[f]}tables-restore`, script, () => this.ipt.restore(IPFAM[f], script, { noflush: true }));
    }
    const sets = (await this.ipset.list()).map((s) => s.name).filter((n) => SET_PREFIX.test(n));
    const script = sets.map((n) => `destroy ${n}\n`).join('');
    await step('ipset restore', script, () => this.ipset.restore(script));
  }
}

function ourChains(saved: string): string[] {
  const t = parseIptablesSave(saved).table('filter');
  return t ? [...t.chains.keys()].filter((c) => c.startsWith(CHAIN_PREFIX)) : [];
}

/** `-D` lines for every jump of ours in the built-in chains. */
function jumpDeletes(saved: string): string[] {
  const dump = parseIptablesSave(saved);
  const out: string[] = [];
  for (const j of IPTABLES_JUMPS) {
    for (const r of dump.rules('filter', j.chain)) if (r.line === `-A ${j.chain} ${j.rule}`) out.push(`-D ${j.chain} ${j.rule}`);
  }
  return out;
}

/**
 * The full restore text with the jumps ensured: nothing when each is
 * already the first rule of its chain and there only once; else every copy
 * deleted and one inserted at the top, in the same atomic restore.
 */
export function withJumps(restore: string, saved: string): string {
  const dump = parseIptablesSave(saved);
  const lines: string[] = [];
  for (const j of IPTABLES_JUMPS) {
    const rules = dump.rules('filter', j.chain);
    const line = `-A ${j.chain} ${j.rule}`;
    const copies = rules.filter((r) => r.line === line).length;
    if (copies === 1 && rules[0]?.line === line) continue;
    for (let i = 0; i < copies; i++) lines.push(`-D ${j.chain} ${j.rule}`);
    lines.push(`-I ${j.chain} 1 ${j.rule}`);
  }
  if (lines.length === 0) return restore;
  const at = restore.lastIndexOf('COMMIT\n');
  return `${restore.slice(0, at)}${lines.join('\n')}\n${restore.slice(at)}`;
}
