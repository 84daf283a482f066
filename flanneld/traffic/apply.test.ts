import { describe, expect, it } from 'vitest';
import { IPPrefix } from '../../lib/ip/index.ts';
import { silentLogger } from '../../lib/log.ts';
import { FakeIptables, parseIptablesSave, renderArgs } from '../../lib/netfilter/iptables.ts';
import { FakeNft } from '../../lib/netfilter/nft.ts';
import { parseNetworkConfig } from '../config.ts';
import type { Lease } from '../subnet/types.ts';
import { iptablesTrafficRules, nftTrafficRules } from './apply.ts';
import { FORWARD_CHAIN, NFT_FORWARD, NFT_POSTRTG, NFT_TABLE, POSTRTG_CHAIN } from './rules.ts';

const DUAL = parseNetworkConfig('{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:42::/56","Backend":{"Type":"vxlan"}}');
const V4 = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
const lease = (subnet: string, ipv6Subnet?: string): Lease => ({
  enableIPv4: true,
  enableIPv6: ipv6Subnet !== undefined,
  subnet: IPPrefix.mustParse(subnet),
  ...(ipv6Subnet ? { ipv6Subnet: IPPrefix.mustParse(ipv6Subnet) } : {}),
  attrs: {},
});

/** The rules (iptables-save args) of one chain in the fake. */
async function chain(ipt: FakeIptables, family: 'ip' | 'ip6', table: string, name: string): Promise<string[]> {
  return parseIptablesSave(await ipt.save(family, table))
    .table(table)!
    .rules.filter((r) => r.chain === name)
    .map((r) => renderArgs(r.args));
}

describe('iptables traffic rules', () => {
  it('installs masq and forward chains per family, then is a no-op while they are right', async () => {
    const ipt = new FakeIptables();
    const rules = iptablesTrafficRules(ipt, silentLogger());
    await rules.ensureMasq({ config: DUAL, lease: lease('10.244.3.0/24', 'fd00:42:0:3::/64'), prev: undefined, fullyRandom: true });
    await rules.ensureForward({ config: DUAL });
    expect(ipt.restores.map((r) => [r.family, r.noflush])).toEqual([
      ['ip', true],
      ['ip6', true],
      ['ip', true],
      ['ip6', true],
    ]);
    const masq4 = await chain(ipt, 'ip', 'nat', POSTRTG_CHAIN);
    expect(masq4).toHaveLength(6);
    expect(masq4.at(-1)).toContain('-j MASQUERADE --random-fully');
    expect(await chain(ipt, 'ip', 'nat', 'POSTROUTING')).toEqual([`-m comment --comment "flanneld masq" -j ${POSTRTG_CHAIN}`]);
    expect(await chain(ipt, 'ip6', 'nat', POSTRTG_CHAIN)).toContain('-s fd00:42:0:3::/64 -d fd00:42::/56 -m comment --comment "flanneld masq" -j RETURN');
    expect(await chain(ipt, 'ip6', 'filter', FORWARD_CHAIN)).toEqual([
      '-s fd00:42::/56 -m comment --comment "flanneld forward" -j ACCEPT',
      '-d fd00:42::/56 -m comment --comment "flanneld forward" -j ACCEPT',
    ]);

    // Already right: saves only, no restore.
    const before = ipt.restores.length;
    await rules.ensureMasq({ config: DUAL, lease: lease('10.244.3.0/24', 'fd00:42:0:3::/64'), prev: undefined, fullyRandom: true });
    await rules.ensureForward({ config: DUAL });
    expect(ipt.restores.length).toBe(before);
  });

  it('patches a chain with a missing rule back, without flushing it', async () => {
    const ipt = new FakeIptables();
    const rules = iptablesTrafficRules(ipt, silentLogger());
    await rules.ensureForward({ config: V4 });
    await ipt.restore('ip', `*filter\n-D ${FORWARD_CHAIN} -d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT\nCOMMIT\n`, { noflush: true });
    expect(await chain(ipt, 'ip', 'filter', FORWARD_CHAIN)).toHaveLength(1);
    const before = ipt.restores.length;
    await rules.ensureForward({ config: V4 });
    expect(ipt.restores.length).toBe(before + 1);
    const patch = ipt.restores.at(-1)!;
    expect(patch.noflush).toBe(true);
    expect(patch.text).not.toContain(`:${FORWARD_CHAIN}`);
    expect(patch.text).not.toMatch(/^-F /m);
    expect(await chain(ipt, 'ip', 'filter', FORWARD_CHAIN)).toEqual([
      '-s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
      '-d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
    ]);
  });

  it('a new lease replaces the old subnet\'s rules; fullyRandom off drops --random-fully', async () => {
    const ipt = new FakeIptables();
    const rules = iptablesTrafficRules(ipt, silentLogger());
    await rules.ensureMasq({ config: V4, lease: lease('10.244.3.0/24'), prev: undefined, fullyRandom: true });
    await rules.ensureMasq({ config: V4, lease: lease('10.244.9.0/24'), prev: undefined, fullyRandom: false });
    const masq = await chain(ipt, 'ip', 'nat', POSTRTG_CHAIN);
    expect(masq.join('\n')).not.toContain('10.244.3.0/24');
    expect(masq).toContain('-s 10.244.9.0/24 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN');
    expect(masq.some((r) => r.includes('--random-fully'))).toBe(false);
  });

  it('cleanUp removes the jumps and chains of both families, and does nothing when none are there', async () => {
    const ipt = new FakeIptables();
    const rules = iptablesTrafficRules(ipt, silentLogger());
    await rules.ensureMasq({ config: DUAL, lease: lease('10.244.3.0/24', 'fd00:42:0:3::/64'), prev: undefined, fullyRandom: true });
    await rules.ensureForward({ config: DUAL });
    await rules.cleanUp();
    for (const family of ['ip', 'ip6'] as const) {
      const dump = parseIptablesSave(await ipt.save(family));
      expect(dump.table('nat')?.chains.has(POSTRTG_CHAIN)).toBe(false);
      expect(dump.table('filter')?.chains.has(FORWARD_CHAIN)).toBe(false);
      expect(dump.table('nat')?.rules).toEqual([]);
      expect(dump.table('filter')?.rules).toEqual([]);
    }
    const before = ipt.restores.length;
    await rules.cleanUp();
    expect(ipt.restores.length).toBe(before);
  });
});

describe('nftables traffic rules', () => {
  it('one transaction per family builds flannel-ipv4/flannel-ipv6; cleanUp deletes them, present or not', async () => {
    const nft = new FakeNft();
    const rules = nftTrafficRules(nft);
    await rules.ensureMasq({ config: DUAL, lease: lease('10.244.3.0/24', 'fd00:42:0:3::/64'), prev: undefined, fullyRandom: true });
    await rules.ensureForward({ config: DUAL });
    expect(nft.runs).toHaveLength(4);
    const t4 = await nft.list('ip', NFT_TABLE[4]);
    const t6 = await nft.list('ip6', NFT_TABLE[6]);
    expect(t4?.chains.map((c) => c.name).sort()).toEqual([NFT_FORWARD, NFT_POSTRTG]);
    expect(t4?.rules.filter((r) => r.chain === NFT_POSTRTG)).toHaveLength(6);
    expect(t4?.rules.filter((r) => r.chain === NFT_POSTRTG).at(-1)?.text).toContain('masquerade fully-random');
    expect(t6?.rules.filter((r) => r.chain === NFT_FORWARD).map((r) => r.text)).toEqual(['ip6 saddr fd00:42::/56 accept', 'ip6 daddr fd00:42::/56 accept']);

    // Ensuring again rebuilds the chains to the same content.
    await rules.ensureMasq({ config: DUAL, lease: lease('10.244.3.0/24', 'fd00:42:0:3::/64'), prev: undefined, fullyRandom: true });
    expect((await nft.list('ip', NFT_TABLE[4]))?.rules.filter((r) => r.chain === NFT_POSTRTG)).toHaveLength(6);

    await rules.cleanUp();
    expect(await nft.list('ip', NFT_TABLE[4])).toBeUndefined();
    expect(await nft.list('ip6', NFT_TABLE[6])).toBeUndefined();
    await rules.cleanUp();
    expect(await nft.list('ip', NFT_TABLE[4])).toBeUndefined();
  });

  it('only the enabled families get rules', async () => {
    const nft = new FakeNft();
    await nftTrafficRules(nft).ensureForward({ config: V4 });
    expect(await nft.list('ip', NFT_TABLE[4])).toBeDefined();
    expect(await nft.list('ip6', NFT_TABLE[6])).toBeUndefined();
  });
});
