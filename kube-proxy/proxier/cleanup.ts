// Removing what kube-proxy's modes leave in the kernel (upstream's
// CleanupLeftovers of each proxier, cmd/kube-proxy/app/server_linux.go):
// the iptables mode's chains and jumps, the IPVS mode's own chains and
// KUBE-* ipsets, and the nftables mode's `kube-proxy` tables. At startup the
// iptables mode removes the other modes' leftovers (only what is present);
// `--cleanup` removes everything and exits.
import type { Logger } from '../../lib/log.ts';
import type { Ipset } from '../../lib/netfilter/ipset.ts';
import { parseIptablesSave, type IpFamily, type IptablesRestore } from '../../lib/netfilter/iptables.ts';
import type { Nft } from '../../lib/netfilter/nft.ts';
import { isIPTablesModeChain, isIPVSModeChain, removalText } from './rules.ts';

export const NFT_TABLE = 'kube-proxy';

export interface CleanupDeps {
  readonly iptables: IptablesRestore;
  readonly ipset?: Ipset | undefined;
  readonly nft?: Nft | undefined;
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

export async function cleanupIPVSMode(d: CleanupDeps, family: IpFamily): Promise<boolean> {
  let removed = await removeChains(d.iptables, family, isIPVSModeChain);
  if (d.ipset && family === 'ip') {
    // The ipsets serve both families; they can go once their iptables users are gone.
    const sets = (await d.ipset.list()).filter((s) => s.name.startsWith('KUBE-'));
    if (sets.length > 0) {
      await d.ipset.restore(sets.map((s) => `flush ${s.name}\ndestroy ${s.name}\n`).join(''));
      removed = true;
    }
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
