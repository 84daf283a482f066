// The parts of an iptables-mode sync that the pure renderer leaves to the
// apply layer: the base-chain jumps (upstream's iptablesJumpChains, ensured
// on full syncs), the KUBE-PROXY-CANARY chains, and the text that removes
// everything kube-proxy made (`--cleanup`, and another mode's leftovers).
import { BUILTIN_CHAINS, SaveDump, renderArgs, ruleLine, splitArgs, type SavedTable } from '../../lib/netfilter/iptables.ts';
import type { ExtraLines } from '../render/iptables.ts';
import { isServiceChainName } from '../render/names.ts';
import {
  KUBE_EXTERNAL_SERVICES,
  KUBE_FIREWALL,
  KUBE_FORWARD,
  KUBE_MARK_MASQ,
  KUBE_NODEPORTS,
  KUBE_POSTROUTING,
  KUBE_PROXY_CANARY,
  KUBE_PROXY_FIREWALL,
  KUBE_SERVICES,
} from '../render/iptables.ts';

export interface JumpRule {
  readonly table: 'filter' | 'nat';
  readonly chain: string;
  readonly args: readonly string[];
}

const jump = (table: 'filter' | 'nat', chains: readonly string[], target: string, extra: readonly string[], comment?: string): JumpRule[] =>
  chains.map((chain) => ({ table, chain, args: [...extra, ...(comment === undefined ? [] : ['-m', 'comment', '--comment', comment]), '-j', target] }));

const NEW = ['-m', 'conntrack', '--ctstate', 'NEW'];

/**
 * The jumps from the built-in chains, in upstream's order; each is inserted
 * at position 1 when missing, so the last one inserted ends up first.
 * `kubeFirewall`: IPv4 with localhost NodePorts (the renderer then writes
 * the KUBE-FIREWALL chain).
 */
export function jumpRules(kubeFirewall: boolean): JumpRule[] {
  return [
    ...jump('filter', ['INPUT', 'FORWARD'], KUBE_EXTERNAL_SERVICES, NEW, 'kubernetes externally-visible service portals'),
    ...jump('filter', ['INPUT'], KUBE_NODEPORTS, [], 'kubernetes health check service ports'),
    ...jump('filter', ['FORWARD', 'OUTPUT'], KUBE_SERVICES, NEW, 'kubernetes service portals'),
    ...jump('filter', ['FORWARD'], KUBE_FORWARD, [], 'kubernetes forwarding rules'),
    ...jump('filter', ['INPUT', 'OUTPUT', 'FORWARD'], KUBE_PROXY_FIREWALL, NEW, 'kubernetes load balancer firewall'),
    ...jump('nat', ['OUTPUT', 'PREROUTING'], KUBE_SERVICES, [], 'kubernetes service portals'),
    ...jump('nat', ['POSTROUTING'], KUBE_POSTROUTING, [], 'kubernetes postrouting rules'),
    ...(kubeFirewall ? jump('filter', ['INPUT', 'OUTPUT'], KUBE_FIREWALL, []) : []),
  ];
}

/** `-I CHAIN 1 …` lines for the jumps `save` lacks, per table, in insertion order. */
export function missingJumpLines(save: SaveDump, kubeFirewall: boolean): { filter: string[]; nat: string[] } {
  const out = { filter: [] as string[], nat: [] as string[] };
  for (const j of jumpRules(kubeFirewall)) {
    if (!save.hasRule(j.table, j.chain, j.args)) out[j.table].push(`-I ${j.chain} 1 ${renderArgs(j.args)}`);
  }
  return out;
}

/**
 * The missing jumps and the canary chains, as lines the renderer joins into
 * a "*filter … COMMIT *nat … COMMIT" text (RenderInput.extra), still one
 * restore: the canary is declared first in each table, the jumps go at the
 * end of their table (the chains they target are declared above them), and
 * the mangle canary gets its own table section.
 */
export function baseRuleLines(jumps: { filter: readonly string[]; nat: readonly string[] }): ExtraLines {
  const canary = `:${KUBE_PROXY_CANARY} - [0:0]\n`;
  const lines = (ls: readonly string[]): string => ls.map((l) => `${l}\n`).join('');
  return { head: `*mangle\n${canary}COMMIT\n`, filterDecls: canary, natDecls: canary, filterTail: lines(jumps.filter), natTail: lines(jumps.nat) };
}

/**
 * What a full sync needs of an iptables-save dump: every table's chain
 * names, and the rules of the built-in chains only (where the jumps live).
 * The rules of user chains, 300,000 of them at 10,000 services, are
 * skipped unparsed: parsing them all (parseIptablesSave) cost seconds and
 * a few hundred MB for nothing. Chain names are slices of the dump, which
 * they keep alive as long as the result lives: use it for one sync (the
 * proxier keeps the chains it wrote instead).
 */
export function scanSave(text: string): SaveDump {
  const dump = new SaveDump();
  let table: SavedTable | undefined;
  let builtins: readonly string[] = [];
  let pos = 0;
  while (pos < text.length) {
    let nl = text.indexOf('\n', pos);
    if (nl < 0) nl = text.length;
    const c = text.charCodeAt(pos);
    if (c === 0x2a /* '*' */) {
      const name = text.slice(pos + 1, nl).trim();
      table = dump.tables.get(name) ?? { name, chains: new Map(), rules: [] };
      dump.tables.set(name, table);
      builtins = BUILTIN_CHAINS[name] ?? [];
    } else if (table !== undefined && c === 0x3a /* ':' */) {
      const sp = text.indexOf(' ', pos);
      const end = sp < 0 || sp > nl ? nl : sp;
      const name = text.slice(pos + 1, end);
      let policy: string | undefined;
      if (name.length < 12 && end < nl) {
        // A built-in chain: ":INPUT ACCEPT [0:0]" (user chains print "-").
        const p = text.slice(end + 1, nl).split(' ')[0] ?? '';
        policy = p === '-' || p === '' ? undefined : p;
      }
      table.chains.set(name, { name, policy });
    } else if (table !== undefined && c === 0x2d /* '-' */ && text.startsWith('-A ', pos)) {
      const sp = text.indexOf(' ', pos + 3);
      const chain = text.slice(pos + 3, sp < 0 || sp > nl ? nl : sp);
      if (builtins.includes(chain)) {
        const toks = splitArgs(text.slice(pos, nl));
        const args = toks.slice(2);
        table.rules.push({ chain: toks[1]!, args, line: ruleLine(toks[1]!, args) });
      }
    } else if (c === 0x43 /* 'C' */ && text.startsWith('COMMIT', pos)) {
      table = undefined;
    }
    pos = nl + 1;
  }
  return dump;
}

/** Whether the mangle canary exists in an `iptables-save -t mangle` text. */
export function hasCanary(mangleSave: string): boolean {
  return mangleSave.split('\n').some((l) => l.startsWith(`:${KUBE_PROXY_CANARY} `));
}

/** The top-level chains of the iptables mode; kube-proxy owns them outright. */
const OWN_CHAINS: Readonly<Record<string, readonly string[]>> = {
  filter: [KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS, KUBE_PROXY_FIREWALL, KUBE_PROXY_CANARY],
  nat: [KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ, KUBE_PROXY_CANARY],
  mangle: [KUBE_PROXY_CANARY],
};

/** Chains only the IPVS mode makes (its KUBE-SERVICES, KUBE-POSTROUTING, … are shared with the iptables mode). */
export const IPVS_CHAINS: Readonly<Record<string, readonly string[]>> = {
  nat: ['KUBE-LOAD-BALANCER', 'KUBE-NODE-PORT', 'KUBE-MARK-DROP'],
  filter: ['KUBE-IPVS-FILTER', 'KUBE-IPVS-OUT-FILTER', 'KUBE-SOURCE-RANGES-FIREWALL', 'KUBE-NODE-PORT'],
};

/**
 * A restore that removes the given chains: first every rule elsewhere that
 * jumps to one of them (the built-in chains' jumps included), then the
 * chains themselves (flushed, then deleted). Chains not in `save` are left
 * alone. Empty when there is nothing to remove.
 */
export function removalText(save: SaveDump, chainsOf: (table: string, chain: string) => boolean): string {
  let out = '';
  for (const [table, t] of save.tables) {
    const doomed = [...t.chains.keys()].filter((c) => chainsOf(table, c));
    if (doomed.length === 0) continue;
    const gone = new Set(doomed);
    const lines: string[] = [];
    for (const r of t.rules) {
      const target = r.args[r.args.indexOf('-j') + 1] ?? r.args[r.args.indexOf('-g') + 1];
      if (!gone.has(r.chain) && target !== undefined && gone.has(target)) lines.push(`-D ${r.chain} ${renderArgs(r.args)}`);
    }
    out += `*${table}\n${doomed.map((c) => `:${c} - [0:0]\n`).join('')}${lines.map((l) => `${l}\n`).join('')}${doomed.map((c) => `-X ${c}\n`).join('')}COMMIT\n`;
  }
  return out;
}

/** Every chain of the iptables mode: top-level, per-service, canary (not kubelet's KUBE-FIREWALL). */
export function isIPTablesModeChain(table: string, chain: string): boolean {
  return (OWN_CHAINS[table]?.includes(chain) ?? false) || (table === 'nat' && isServiceChainName(chain));
}

export function isIPVSModeChain(table: string, chain: string): boolean {
  return IPVS_CHAINS[table]?.includes(chain) ?? false;
}

/** The 1-based restore line that iptables-restore names in its error, if any. */
export function failingLine(stderr: string): number | undefined {
  const m = /Error occurred at line: (\d+)/.exec(stderr) ?? /line (\d+) failed/.exec(stderr) ?? /^line (\d+):/m.exec(stderr);
  return m ? Number(m[1]) : undefined;
}
