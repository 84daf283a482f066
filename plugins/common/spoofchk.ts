// macspoofchk: drop frames from a host veth whose source MAC is not the
// container's (the reference plugins' pkg/link spoofcheck, shared by the
// plugins with a host-side veth or tap). Same nftables layout as the
// reference plugin (table bridge nat, base chain PREROUTING, per-attachment
// chains cni-br-iface-<id>-<if>[-mac], comments macspoofchk-<id>-<if>), but
// setup and teardown are each one transaction computed from one listing, so
// repeated setup does not stack jump rules and teardown never deletes what
// is absent.
import { NftTransaction, type Nft, type NftTableInfo } from '../../lib/netfilter/nft.ts';

export const SPOOFCHK_TABLE = 'nat';
export const SPOOFCHK_BASE_CHAIN = 'PREROUTING';
const T = { family: 'bridge', table: SPOOFCHK_TABLE } as const;

export interface SpoofChkAttachment {
  containerId: string;
  ifName: string;
}

export function spoofChkNames(a: SpoofChkAttachment): { ifaceChain: string; macChain: string; comment: string } {
  const ref = `${a.containerId}-${a.ifName}`;
  return { ifaceChain: `cni-br-iface-${ref}`, macChain: `cni-br-iface-${ref}-mac`, comment: `macspoofchk-${ref}` };
}

function staleJumps(a: SpoofChkAttachment, observed: NftTableInfo | undefined): NftTransaction {
  const { comment } = spoofChkNames(a);
  const tx = new NftTransaction();
  for (const r of observed?.rules ?? []) {
    if (r.chain === SPOOFCHK_BASE_CHAIN && r.comment === comment) tx.deleteRule({ ...T, chain: SPOOFCHK_BASE_CHAIN, handle: r.handle });
  }
  return tx;
}

export function renderSpoofChkSetup(a: SpoofChkAttachment & { hostVeth: string; mac: string }, observed: NftTableInfo | undefined): NftTransaction {
  const { ifaceChain, macChain, comment } = spoofChkNames(a);
  const tx = staleJumps(a, observed);
  tx.addTable({ family: 'bridge', name: SPOOFCHK_TABLE });
  tx.addChain({ ...T, name: SPOOFCHK_BASE_CHAIN, type: 'filter', hook: 'prerouting', priority: 'dstnat', policy: 'accept' });
  tx.addChain({ ...T, name: ifaceChain });
  tx.addChain({ ...T, name: macChain });
  tx.flushChain({ ...T, name: ifaceChain });
  tx.flushChain({ ...T, name: macChain });
  tx.addRule({ ...T, chain: SPOOFCHK_BASE_CHAIN, rule: `iifname "${a.hostVeth}" jump ${ifaceChain}`, comment });
  tx.addRule({ ...T, chain: ifaceChain, rule: `jump ${macChain}`, comment });
  tx.addRule({ ...T, chain: macChain, rule: `ether saddr ${a.mac.toLowerCase()} return`, comment });
  tx.addRule({ ...T, chain: macChain, rule: 'drop', comment });
  return tx;
}

export function renderSpoofChkTeardown(a: SpoofChkAttachment, observed: NftTableInfo | undefined): NftTransaction {
  const { ifaceChain, macChain } = spoofChkNames(a);
  const tx = staleJumps(a, observed);
  const has = (n: string): boolean => observed?.chains.some((c) => c.name === n) ?? false;
  // The iface chain first: deleting it drops its jump to the mac chain.
  if (has(ifaceChain)) tx.deleteChain({ ...T, name: ifaceChain });
  if (has(macChain)) tx.deleteChain({ ...T, name: macChain });
  return tx;
}

export async function setupMacSpoofChk(a: SpoofChkAttachment & { hostVeth: string; mac: string }, nft: Nft): Promise<void> {
  await nft.run(renderSpoofChkSetup(a, await nft.list('bridge', SPOOFCHK_TABLE)));
}

export async function teardownMacSpoofChk(a: SpoofChkAttachment, nft: Nft): Promise<void> {
  const tx = renderSpoofChkTeardown(a, await nft.list('bridge', SPOOFCHK_TABLE));
  if (!tx.isEmpty) await nft.run(tx);
}
