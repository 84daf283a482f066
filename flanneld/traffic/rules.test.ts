import { describe, expect, it } from 'vitest';
import { parseIptablesSave } from '../../lib/netfilter/iptables.ts';
import { IPPrefix } from '../../lib/ip/index.ts';
import {
  forwardChain,
  masqChain,
  nftCleanupTransaction,
  nftForwardTransaction,
  nftMasqTransaction,
  planIptables,
  planIptablesCleanup,
} from './rules.ts';

const N4 = IPPrefix.mustParse('10.244.0.0/16');
const P4 = IPPrefix.mustParse('10.244.3.0/24');
const N6 = IPPrefix.mustParse('fd00:42::/56');
const P6 = IPPrefix.mustParse('fd00:42:0:3::/64');

// What iptables-save prints once flanneld's v4 rules are in place.
const CHAIN4 = [
  '-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN',
  '-A FLANNEL-POSTRTG -s 10.244.3.0/24 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN',
  '-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.3.0/24 -m comment --comment "flanneld masq" -j RETURN',
  '-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.3.0/24 -m comment --comment "flanneld masq" -j RETURN',
  '-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
  '-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
];
const JUMP4 = '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG';

function save(nat: string[], filter: string[] = [], natChains = [':FLANNEL-POSTRTG - [0:0]']): string {
  return [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    ...natChains,
    ...nat,
    'COMMIT',
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':FORWARD DROP [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ...filter,
    'COMMIT',
    '',
  ].join('\n');
}

describe('iptables masquerade/forward plan', () => {
  const masq4 = masqChain({ family: 4, network: N4, subnet: P4, randomFully: true });

  it('from nothing: declares the chains and appends every rule in order', () => {
    expect(planIptables(parseIptablesSave(save([], [], [])), [masq4, forwardChain(N4)])).toBe(
      [
        '*nat',
        ':FLANNEL-POSTRTG - [0:0]',
        ...CHAIN4,
        JUMP4,
        'COMMIT',
        '*filter',
        ':FLANNEL-FWD - [0:0]',
        '-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
        '-A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
        '-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('a correct chain needs no change at all', () => {
    expect(planIptables(parseIptablesSave(save([JUMP4, ...CHAIN4])), [masq4])).toBe('');
  });

  it('restart with a new subnet: patches in place, never flushes or re-declares the chain', () => {
    const masqNew = masqChain({ family: 4, network: N4, subnet: IPPrefix.mustParse('10.244.9.0/24'), randomFully: true });
    const plan = planIptables(parseIptablesSave(save([JUMP4, ...CHAIN4])), [masqNew]);
    expect(plan).toBe(
      [
        '*nat',
        '-D FLANNEL-POSTRTG 4',
        '-D FLANNEL-POSTRTG 3',
        '-D FLANNEL-POSTRTG 2',
        '-I FLANNEL-POSTRTG 2 -s 10.244.9.0/24 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN',
        '-I FLANNEL-POSTRTG 3 -s 10.244.0.0/16 -d 10.244.9.0/24 -m comment --comment "flanneld masq" -j RETURN',
        '-I FLANNEL-POSTRTG 4 ! -s 10.244.0.0/16 -d 10.244.9.0/24 -m comment --comment "flanneld masq" -j RETURN',
        'COMMIT',
        '',
      ].join('\n'),
    );
    expect(plan).not.toMatch(/^(-F|:FLANNEL)/m);
  });

  it('missing middle rule is inserted at its position; foreign rules and duplicate jumps are removed', () => {
    const cur = [JUMP4, JUMP4, CHAIN4[0]!, CHAIN4[2]!, '-A FLANNEL-POSTRTG -s 192.0.2.1/32 -j RETURN', ...CHAIN4.slice(3)];
    expect(planIptables(parseIptablesSave(save(cur)), [masq4])).toBe(
      [
        '*nat',
        '-D FLANNEL-POSTRTG 3',
        `-I FLANNEL-POSTRTG 2 ${CHAIN4[1]!.slice('-A FLANNEL-POSTRTG '.length)}`,
        '-D POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('without random-fully, and for IPv6 by the same code', () => {
    const m = masqChain({ family: 6, network: N6, subnet: P6, randomFully: false });
    expect(m.rules.map((r) => r.join(' '))).toEqual([
      '-m mark --mark 0x4000/0x4000 -m comment --comment flanneld masq -j RETURN',
      '-s fd00:42:0:3::/64 -d fd00:42::/56 -m comment --comment flanneld masq -j RETURN',
      '-s fd00:42::/56 -d fd00:42:0:3::/64 -m comment --comment flanneld masq -j RETURN',
      '! -s fd00:42::/56 -d fd00:42:0:3::/64 -m comment --comment flanneld masq -j RETURN',
      '-s fd00:42::/56 ! -d ff00::/8 -m comment --comment flanneld masq -j MASQUERADE',
      '! -s fd00:42::/56 -d fd00:42::/56 -m comment --comment flanneld masq -j MASQUERADE',
    ]);
  });

  it('cleanup removes jumps and chains, and nothing when absent', () => {
    const cur = save([JUMP4, ...CHAIN4], ['-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD', '-A FLANNEL-FWD -s 10.244.0.0/16 -j ACCEPT']);
    const withFwd = cur.replace(':OUTPUT ACCEPT [0:0]\n-A FORWARD', ':OUTPUT ACCEPT [0:0]\n:FLANNEL-FWD - [0:0]\n-A FORWARD');
    expect(planIptablesCleanup(parseIptablesSave(withFwd))).toBe(
      [
        '*nat',
        '-D POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG',
        '-F FLANNEL-POSTRTG',
        '-X FLANNEL-POSTRTG',
        'COMMIT',
        '*filter',
        '-D FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD',
        '-F FLANNEL-FWD',
        '-X FLANNEL-FWD',
        'COMMIT',
        '',
      ].join('\n'),
    );
    expect(planIptablesCleanup(parseIptablesSave(save([], [], [])))).toBe('');
  });
});

describe('nftables transactions', () => {
  it('masquerade + forward for IPv4 in one atomic transaction', () => {
    const tx = nftMasqTransaction({ family: 4, network: N4, subnet: P4, randomFully: true });
    nftForwardTransaction(4, N4, tx);
    expect(tx.render()).toBe(
      [
        'add table ip flannel-ipv4 { comment "rules for flannel-ipv4" ; }',
        'add chain ip flannel-ipv4 postrtg { type nat hook postrouting priority srcnat ; comment "chain to manage traffic masquerading by flannel" ; }',
        'flush chain ip flannel-ipv4 postrtg',
        'add rule ip flannel-ipv4 postrtg meta mark & 0x00004000 == 0x00004000 return',
        'add rule ip flannel-ipv4 postrtg ip saddr 10.244.3.0/24 ip daddr 10.244.0.0/16 return',
        'add rule ip flannel-ipv4 postrtg ip saddr 10.244.0.0/16 ip daddr 10.244.3.0/24 return',
        'add rule ip flannel-ipv4 postrtg ip saddr != 10.244.0.0/16 ip daddr 10.244.3.0/24 return',
        'add rule ip flannel-ipv4 postrtg ip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random',
        'add rule ip flannel-ipv4 postrtg ip saddr != 10.244.0.0/16 ip daddr 10.244.0.0/16 masquerade fully-random',
        'add table ip flannel-ipv4 { comment "rules for flannel-ipv4" ; }',
        'add chain ip flannel-ipv4 forward { type filter hook forward priority filter ; comment "chain to accept flannel traffic" ; }',
        'flush chain ip flannel-ipv4 forward',
        'add rule ip flannel-ipv4 forward ip saddr 10.244.0.0/16 accept',
        'add rule ip flannel-ipv4 forward ip daddr 10.244.0.0/16 accept',
        '',
      ].join('\n'),
    );
  });

  it('IPv6 without fully-random; cleanup deletes the table even if absent', () => {
    const tx = nftMasqTransaction({ family: 6, network: N6, subnet: P6, randomFully: false });
    expect(tx.render()).toContain('add rule ip6 flannel-ipv6 postrtg ip6 saddr fd00:42::/56 ip6 daddr != ff00::/8 masquerade\n');
    expect(nftCleanupTransaction(6).render()).toBe('add table ip6 flannel-ipv6\ndelete table ip6 flannel-ipv6\n');
  });
});
