// The apply side of the traffic rules (the plans are in rules.ts): what
// flanneld's main loop drives through the TrafficRules interface.
//   iptables  per family and table: iptables-save, plan the difference,
//             one `iptables-restore --noflush` when something differs
//             (compare and patch; nothing runs when the rules are right);
//   nftables  one transaction per family (the tables are flanneld's own,
//             so each transaction rebuilds its chain).
import { families } from '../../lib/ip/index.ts';
import type { Family } from '../../lib/ip/index.ts';
import type { Logger } from '../../lib/log.ts';
import { saveParsed } from '../../lib/netfilter/iptables.ts';
import type { IptablesRestore } from '../../lib/netfilter/iptables.ts';
import type { Nft } from '../../lib/netfilter/nft.ts';
import type { TrafficRules } from '../daemon.ts';
import { familyConfig, leaseSubnet } from '../subnet/types.ts';
import type { Lease, NetworkConfig } from '../subnet/types.ts';
import {
  forwardChain,
  iptFamily,
  masqChain,
  nftCleanupTransaction,
  nftForwardTransaction,
  nftMasqTransaction,
  planIptables,
  planIptablesCleanup,
} from './rules.ts';
import type { ChainSpec, MasqInput } from './rules.ts';

/** Per enabled family with a lease subnet: the masquerade input. */
function masqInputs(config: NetworkConfig, lease: Lease, randomFully: boolean): MasqInput[] {
  const out: MasqInput[] = [];
  for (const family of families(config)) {
    const net = familyConfig(config, family);
    const subnet = leaseSubnet(lease, family);
    if (net && subnet) out.push({ family, network: net.network, subnet, randomFully });
  }
  return out;
}

function forwardInputs(config: NetworkConfig): { family: Family; network: MasqInput['network'] }[] {
  return families(config).flatMap((family) => {
    const net = familyConfig(config, family);
    return net ? [{ family, network: net.network }] : [];
  });
}

/** Traffic rules over iptables-restore: compare-and-patch, one --noflush batch per family and table. */
export function iptablesTrafficRules(ipt: IptablesRestore, log: Logger): TrafficRules {
  const apply = async (family: Family, table: 'nat' | 'filter', specs: ChainSpec[]): Promise<void> => {
    const text = planIptables(await saveParsed(ipt, iptFamily(family), table), specs);
    if (text === '') return;
    log.info({ family, table }, 'patching iptables rules');
    await ipt.restore(iptFamily(family), text, { noflush: true });
  };
  return {
    async cleanUp() {
      for (const family of [4, 6] as const) {
        const text = planIptablesCleanup(await saveParsed(ipt, iptFamily(family)));
        if (text !== '') await ipt.restore(iptFamily(family), text, { noflush: true });
      }
    },
    async ensureMasq({ config, lease, fullyRandom }) {
      // The chain is patched to exactly the wanted rules, so rules for a previous network or subnet go too.
      for (const input of masqInputs(config, lease, fullyRandom)) await apply(input.family, 'nat', [masqChain(input)]);
    },
    async ensureForward({ config }) {
      for (const { family, network } of forwardInputs(config)) await apply(family, 'filter', [forwardChain(network)]);
    },
  };
}

/** Traffic rules over nft: one transaction per family. */
export function nftTrafficRules(nft: Nft): TrafficRules {
  return {
    async cleanUp() {
      for (const family of [4, 6] as const) await nft.run(nftCleanupTransaction(family));
    },
    async ensureMasq({ config, lease, fullyRandom }) {
      for (const input of masqInputs(config, lease, fullyRandom)) await nft.run(nftMasqTransaction(input));
    },
    async ensureForward({ config }) {
      for (const { family, network } of forwardInputs(config)) await nft.run(nftForwardTransaction(family, network));
    },
  };
}
