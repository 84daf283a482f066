// Removing what kube-proxy's modes leave in the kernel (upstream's
// CleanupLeftovers of each proxier, cmd/kube-proxy/app/server_linux.go):
// the iptables mode's chains and jumps, the IPVS mode's own chains, its
// ipsets, kube-ipvs0 and (with --cleanup) the IPVS table, and the nftables
// mode's `kube-proxy` tables. At startup each mode removes the other modes'
// leftovers (only what is present; the IPVS mode keeps the chains it shares
// with the iptables mode, which its first sync rewrites); `--cleanup`
// removes everything and exits.
import type { Logger } from '../../lib/log.ts';
import type { Ipset } from '../../lib/netfilter/ipset.ts';
import { parseIptablesSave, renderArgs, type IpFamily, type IptablesRestore, type SaveDump } from '../../lib/netfilter/iptables.ts';
import type { Nft } from '../../lib/netfilter/nft.ts';
import type { NetlinkHandle } from '../../lib/netlink/handle.ts';
import type { IpvsHandle } from '../../lib/netlink/ipvs-types.ts';
import { ipsetNames, KUBE_IPVS_DEVICE } from '../render/ipvs.ts';
import { isIPTablesModeChain, isIPVSModeChain, removalText } from './rules.ts';

export const NFT_TABLE = 'kube-proxy';

export interface CleanupDeps {
  readonly iptables: IptablesRestore;
  readonly ipset?: Ipset | undefined;
  readonly nft?: Nft | undefined;
  /** rtnetlink in the node's namespace: deletes kube-ipvs0. */
  readonly netlink?: NetlinkHandle | undefined;
  /** Given only for --cleanup: the IPVS table is flushed (upstream's ipvs.Flush). */
  readonly ipvs?: IpvsHandle | undefined;
  readonly log: Logger;
}

/** Removes the chains `which` selects (and every jump to them) in one restore; true if there were any. */
async function removeChains(ipt: IptablesRestore, family: IpFamily, which: (table: string, chain: string) => boolean): Promise<boolean> {
  const text = removalText(parseIptablesSave(await ipt.save(family)), which);
  if (text === '') return false;
  await ipt.restore(family, text, { noflush: true });
  return true;
}

export async function cleanupIPTablesMode(d: CleanupDeps, family: IpFamily): Promise<boolean> {
  return removeChains(d.iptables, family, isIPTablesModeChain);
}

/** Chains of the iptables mode that the IPVS mode does not write (it shares KUBE-SERVICES, KUBE-POSTROUTING, …). */
const SHARED_WITH_IPVS: Readonly<Record<string, readonly string[]>> = {
  nat: ['KUBE-SERVICES', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ'],
  filter: ['KUBE-FORWARD', 'KUBE-PROXY-FIREWALL'],
};
const iptablesOnlyChain = (table: string, chain: string): boolean => isIPTablesModeChain(table, chain) && !(SHARED_WITH_IPVS[table]?.includes(chain) ?? false);

/** What the IPVS mode removes of an iptables-mode node at startup: the per-service chains, KUBE-NODEPORTS, KUBE-EXTERNAL-SERVICES, the canaries, filter KUBE-SERVICES. */
export async function cleanupIPTablesOnly(d: CleanupDeps, family: IpFamily): Promise<boolean> {
  return removeChains(d.iptables, family, iptablesOnlyChain);
}

/** `-D` lines for rules outside the doomed chains that match one of `sets` (they would keep the sets in use). */
function setRuleDeletions(save: SaveDump, sets: ReadonlySet<string>, doomed: (table: string, chain: string) => boolean): string {
  let out = '';
  for (const [table, t] of save.tables) {
    // Rules that jump to a doomed chain are removalText's.
    const target = (args: readonly string[]): string => args[args.indexOf('-j') + 1] ?? '';
    const lines = t.rules
      .filter((r) => !doomed(table, r.chain) && !doomed(table, target(r.args)) && r.args.some((a, i) => r.args[i - 1] === '--match-set' && sets.has(a)))
      .map((r) => `-D ${r.chain} ${renderArgs(r.args)}\n`);
    if (lines.length > 0) out += `*${table}\n${lines.join('')}COMMIT\n`;
  }
  return out;
}

/**
 * The IPVS mode's leftovers of one family: its own chains (and every rule
 * matching its sets, also in the chains it shares with the iptables mode),
 * then its ipsets of that family (KUBE-… for IPv4, KUBE-6-… for IPv6), and
 * with the IPv4 pass kube-ipvs0 and, for --cleanup, the IPVS table.
 */
export async function cleanupIPVSMode(d: CleanupDeps, family: IpFamily): Promise<boolean> {
  const sets = new Set(ipsetNames(family === 'ip' ? 4 : 6));
  const save = parseIptablesSave(await d.iptables.save(family));
  const text = setRuleDeletions(save, sets, isIPVSModeChain) + removalText(save, isIPVSModeChain);
  let removed = false;
  if (text !== '') {
    await d.iptables.restore(family, text, { noflush: true });
    removed = true;
  }
  if (d.ipset) {
    const present = (await d.ipset.list()).filter((s) => sets.has(s.name));
    if (present.length > 0) {
      await d.ipset.restore(present.map((s) => `destroy ${s.name}\n`).join(''));
      removed = true;
    }
  }
  if (family === 'ip' && d.netlink) {
    const dev = await d.netlink.linkFind(KUBE_IPVS_DEVICE);
    if (dev) {
      await d.netlink.linkDel(dev.index);
      removed = true;
    }
  }
  if (family === 'ip' && d.ipvs && (await d.ipvs.services()).length > 0) {
    await d.ipvs.flush();
    removed = true;
  }
  return removed;
}

export async function cleanupNftablesMode(d: CleanupDeps, family: IpFamily): Promise<boolean> {
  if (!d.nft) return false;
  if ((await d.nft.list(family, NFT_TABLE)) === undefined) return false;
  await d.nft.run(`delete table ${family} ${NFT_TABLE}\n`);
  return true;
}

/**
 * Runs the given cleanups for each family; a failure is logged and the
 * others still run. Returns false if any failed (`--cleanup` then exits 1).
 */
export async function runCleanups(
  d: CleanupDeps,
  families: readonly IpFamily[],
  steps: readonly { name: string; fn: (d: CleanupDeps, f: IpFamily) => Promise<boolean> }[],
): Promise<boolean> {
  let ok = true;
  for (const family of families) {
    for (const s of steps) {
      try {
        if (await s.fn(d, family)) d.log.info({ family, mode: s.name }, 'removed leftover rules');
      } catch (err) {
        ok = false;
        d.log.error({ err, family, mode: s.name }, 'cleanup failed');
      }
    }
  }
  return ok;
}

export const IPTABLES_MODE = { name: 'iptables', fn: cleanupIPTablesMode };
export const IPVS_MODE = { name: 'ipvs', fn: cleanupIPVSMode };
export const NFTABLES_MODE = { name: 'nftables', fn: cleanupNftablesMode };
/** The IPVS mode's startup step: the iptables mode's own chains only. */
export const IPTABLES_ONLY = { name: 'iptables', fn: cleanupIPTablesOnly };
