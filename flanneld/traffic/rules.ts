// Masquerade and forward rules (pure): what flanneld wants in iptables or
// nftables, and the smallest change that gets there.
//
// Same chains, order and comments as upstream so a migration in either
// direction cleans up after the other:
//   nat    POSTROUTING -> FLANNEL-POSTRTG   "flanneld masq"
//   filter FORWARD     -> FLANNEL-FWD       "flanneld forward"
//   nft    ip flannel-ipv4 / ip6 flannel-ipv6, chains postrtg and forward
//
// Unlike upstream (which deletes and re-appends every rule when one is
// missing, and used to flush the chain on restart, #2237), the iptables plan
// never flushes a chain that exists: it deletes the surplus rules by number
// and inserts the missing ones at their position, in one
// `iptables-restore --noflush` transaction. A correct chain yields no text.
import { RestoreBuilder, commentArgs, ruleLine } from '../../lib/netfilter/iptables.ts';
import type { IpFamily, SaveDump } from '../../lib/netfilter/iptables.ts';
import { NftTransaction } from '../../lib/netfilter/nft.ts';
import type { NftFamily } from '../../lib/netfilter/nft.ts';
import type { Family, IPPrefix } from '../../lib/ip/index.ts';

export const MASQ_COMMENT = 'flanneld masq';
export const FORWARD_COMMENT = 'flanneld forward';
export const POSTRTG_CHAIN = 'FLANNEL-POSTRTG';
export const FORWARD_CHAIN = 'FLANNEL-FWD';
/** kube-proxy's masquerade mark: such packets are kube-proxy's to NAT (PR #1681). */
export const KUBE_PROXY_MARK = '0x4000/0x4000';

export const NFT_TABLE: Record<Family, string> = { 4: 'flannel-ipv4', 6: 'flannel-ipv6' };
export const NFT_POSTRTG = 'postrtg';
export const NFT_FORWARD = 'forward';

export const iptFamily = (f: Family): IpFamily => (f === 4 ? 'ip' : 'ip6');
export const nftFamily = (f: Family): NftFamily => (f === 4 ? 'ip' : 'ip6');
const multicast = (f: Family): string => (f === 4 ? '224.0.0.0/4' : 'ff00::/8');

/** A user chain flanneld owns, hooked from a builtin chain by one jump rule. */
export interface ChainSpec {
  table: 'nat' | 'filter';
  /** Builtin chain holding the jump (POSTROUTING, FORWARD). */
  parent: string;
  chain: string;
  /** Args of the jump rule in the parent. */
  jump: string[];
  /** The chain's rules, in order, as iptables-save prints their args. */
  rules: string[][];
}

export interface MasqInput {
  family: Family;
  /** Cluster network (FLANNEL_NETWORK). */
  network: IPPrefix;
  /** This node's lease. */
  subnet: IPPrefix;
  /** `--random-fully` / `fully-random`: off with --ip-masq-fully-random-disable or when unsupported. */
  randomFully: boolean;
}

const cidr = (p: IPPrefix): string => p.masked().toString();

/** FLANNEL-POSTRTG, in upstream's order. */
export function masqChain({ family, network, subnet, randomFully }: MasqInput): ChainSpec {
  const C = cidr(network);
  const P = cidr(subnet);
  const c = commentArgs(MASQ_COMMENT);
  const masq = ['-j', 'MASQUERADE', ...(randomFully ? ['--random-fully'] : [])];
  return {
    table: 'nat',
    parent: 'POSTROUTING',
    chain: POSTRTG_CHAIN,
    jump: [...c, '-j', POSTRTG_CHAIN],
    rules: [
      ['-m', 'mark', '--mark', KUBE_PROXY_MARK, ...c, '-j', 'RETURN'],
      ['-s', P, '-d', C, ...c, '-j', 'RETURN'],
      ['-s', C, '-d', P, ...c, '-j', 'RETURN'],
      ['!', '-s', C, '-d', P, ...c, '-j', 'RETURN'],
      ['-s', C, '!', '-d', multicast(family), ...c, ...masq],
      ['!', '-s', C, '-d', C, ...c, ...masq],
    ],
  };
}

/** FLANNEL-FWD: accept anything from or to the cluster network. */
export function forwardChain(network: IPPrefix): ChainSpec {
  const C = cidr(network);
  const c = commentArgs(FORWARD_COMMENT);
  return {
    table: 'filter',
    parent: 'FORWARD',
    chain: FORWARD_CHAIN,
    jump: [...c, '-j', FORWARD_CHAIN],
    rules: [
      ['-s', C, ...c, '-j', 'ACCEPT'],
      ['-d', C, ...c, '-j', 'ACCEPT'],
    ],
  };
}

// ---------------------------------------------------------------------------
// iptables: compare and patch

/** Longest common subsequence of two line lists: pairs of (index in a, index in b). */
function lcs(a: readonly string[], b: readonly string[]): Array<[number, number]> {
  const n = a.length;
  const m = b.length;
  const t: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      t[i]![j] = a[i] === b[j] ? t[i + 1]![j + 1]! + 1 : Math.max(t[i + 1]![j]!, t[i]![j + 1]!);
    }
  }
  const out: Array<[number, number]> = [];
  for (let i = 0, j = 0; i < n && j < m; ) {
    if (a[i] === b[j]) {
      out.push([i, j]);
      i++;
      j++;
    } else if (t[i + 1]![j]! >= t[i]![j + 1]!) i++;
    else j++;
  }
  return out;
}

/**
 * Adds to `b` the operations that make `spec` true in the observed `dump`:
 * - a missing chain is declared (a `:CHAIN` line; only then, since with
 *   --noflush declaring an existing chain would flush it) and filled;
 * - an existing chain keeps the rules that are already right; surplus rules
 *   are deleted by number (highest first), missing ones inserted at their
 *   position, so traffic never sees an empty or half-ordered chain;
 * - exactly one jump from the parent (appended if missing, duplicates deleted).
 * Returns whether anything was added.
 */
export function planChain(dump: SaveDump, spec: ChainSpec, b: RestoreBuilder): boolean {
  const t = b.table(spec.table);
  let changed = false;
  const want = spec.rules.map((r) => ruleLine(spec.chain, r));
  if (!dump.hasChain(spec.table, spec.chain)) {
    t.chain(spec.chain);
    for (const r of spec.rules) t.append(spec.chain, r);
    changed = true;
  } else {
    const have = dump.rules(spec.table, spec.chain).map((r) => r.line);
    const keep = lcs(have, want);
    const kept = new Set(keep.map(([i]) => i));
    for (let i = have.length - 1; i >= 0; i--) {
      if (!kept.has(i)) {
        t.delete(spec.chain, [String(i + 1)]);
        changed = true;
      }
    }
    // What remains is a subsequence of `want`; insert the gaps in order.
    const present = new Set(keep.map(([, j]) => j));
    let len = keep.length;
    for (let j = 0; j < want.length; j++) {
      if (present.has(j)) continue;
      if (j >= len) t.append(spec.chain, spec.rules[j]!);
      else t.insert(spec.chain, spec.rules[j]!, j + 1);
      len++;
      changed = true;
    }
  }
  const jumpLine = ruleLine(spec.parent, spec.jump);
  const jumps = dump.rules(spec.table, spec.parent).filter((r) => r.line === jumpLine).length;
  if (jumps === 0) {
    t.append(spec.parent, spec.jump);
    changed = true;
  }
  // The parent is shared with kube-proxy, Docker, …: delete by spec, never by number.
  for (let k = 1; k < jumps; k++) {
    t.delete(spec.parent, spec.jump);
    changed = true;
  }
  return changed;
}

/** iptables-restore --noflush input making all `specs` true; '' when nothing needs to change. */
export function planIptables(dump: SaveDump, specs: readonly ChainSpec[]): string {
  const b = new RestoreBuilder();
  let changed = false;
  for (const s of specs) changed = planChain(dump, s, b) || changed;
  return changed ? b.render() : '';
}

/**
 * Removes flanneld's iptables state (when switching to nftables, or on
 * request): every jump into our chains (whatever its args), then the chains.
 * '' when there is nothing to remove.
 */
export function planIptablesCleanup(dump: SaveDump): string {
  const b = new RestoreBuilder();
  let changed = false;
  for (const [table, chain] of [
    ['nat', POSTRTG_CHAIN],
    ['filter', FORWARD_CHAIN],
  ] as const) {
    const t = dump.table(table);
    if (!t) continue;
    for (const r of t.rules) {
      const j = r.args.indexOf('-j');
      if (j >= 0 && r.args[j + 1] === chain && r.chain !== chain) {
        b.table(table).delete(r.chain, r.args);
        changed = true;
      }
    }
    if (t.chains.has(chain)) {
      b.table(table).flush(chain).deleteChain(chain);
      changed = true;
    }
  }
  return changed ? b.render() : '';
}

// ---------------------------------------------------------------------------
// nftables: one transaction per family. Flush + re-add inside a single nft
// transaction is atomic, so the chain is never seen empty.

/** Masquerade rules (nft list form), same semantics as the iptables chain. */
export function nftMasqRules({ family, network, subnet, randomFully }: MasqInput): string[] {
  const f = nftFamily(family);
  const C = cidr(network);
  const P = cidr(subnet);
  const masq = randomFully ? 'masquerade fully-random' : 'masquerade';
  return [
    // Bit test like iptables' --mark 0x4000/0x4000 (upstream's nft rule compares the whole mark).
    'meta mark & 0x00004000 == 0x00004000 return',
    `${f} saddr ${P} ${f} daddr ${C} return`,
    `${f} saddr ${C} ${f} daddr ${P} return`,
    // As iptables `! -s C -d P` (upstream's nft rule has `saddr != P daddr C`, see research §6.3).
    `${f} saddr != ${C} ${f} daddr ${P} return`,
    `${f} saddr ${C} ${f} daddr != ${multicast(family)} ${masq}`,
    `${f} saddr != ${C} ${f} daddr ${C} ${masq}`,
  ];
}

export function nftForwardRules(family: Family, network: IPPrefix): string[] {
  const f = nftFamily(family);
  const C = cidr(network);
  return [`${f} saddr ${C} accept`, `${f} daddr ${C} accept`];
}

function nftTable(tx: NftTransaction, family: Family): { family: NftFamily; table: string } {
  const t = { family: nftFamily(family), table: NFT_TABLE[family] };
  tx.addTable({ family: t.family, name: t.table, comment: `rules for ${t.table}` });
  return t;
}

/** Ensures table + postrtg chain with exactly the masquerade rules. */
export function nftMasqTransaction(input: MasqInput, tx = new NftTransaction()): NftTransaction {
  const t = nftTable(tx, input.family);
  const chain = { ...t, name: NFT_POSTRTG };
  tx.addChain({ ...chain, type: 'nat', hook: 'postrouting', priority: 'srcnat', comment: 'chain to manage traffic masquerading by flannel' });
  tx.flushChain(chain);
  for (const rule of nftMasqRules(input)) tx.addRule({ ...t, chain: NFT_POSTRTG, rule });
  return tx;
}

/** Ensures table + forward chain with exactly the accept rules. Never a drop policy. */
export function nftForwardTransaction(family: Family, network: IPPrefix, tx = new NftTransaction()): NftTransaction {
  const t = nftTable(tx, family);
  const chain = { ...t, name: NFT_FORWARD };
  tx.addChain({ ...chain, type: 'filter', hook: 'forward', priority: 'filter', comment: 'chain to accept flannel traffic' });
  tx.flushChain(chain);
  for (const rule of nftForwardRules(family, network)) tx.addRule({ ...t, chain: NFT_FORWARD, rule });
  return tx;
}

/**
 * Deletes flanneld's nft table of a family (when switching to iptables). The
 * `add table` first makes the delete succeed whether or not it existed.
 */
export function nftCleanupTransaction(family: Family, tx = new NftTransaction()): NftTransaction {
  const f = nftFamily(family);
  tx.addTable({ family: f, name: NFT_TABLE[family] });
  tx.deleteTable({ family: f, name: NFT_TABLE[family] });
  return tx;
}
