// macspoofchk's nft transactions, rendered and run against lib/netfilter's FakeNft.
import { describe, expect, it } from 'vitest';
import { FakeNft } from '../../lib/netfilter/nft.ts';
import { renderSpoofChkSetup, renderSpoofChkTeardown, setupMacSpoofChk, teardownMacSpoofChk } from './spoofchk.ts';

describe('macspoofchk', () => {
  const a = { containerId: 'ds1', ifName: 'eth0', hostVeth: 'vethd5d7d488', mac: '5E:2F:23:56:CC:0E' };
  it('renders the reference layout in one transaction', () => {
    expect(renderSpoofChkSetup(a, undefined).render()).toBe(
      [
        'add table bridge nat',
        'add chain bridge nat PREROUTING { type filter hook prerouting priority dstnat ; policy accept ; }',
        'add chain bridge nat cni-br-iface-ds1-eth0',
        'add chain bridge nat cni-br-iface-ds1-eth0-mac',
        'flush chain bridge nat cni-br-iface-ds1-eth0',
        'flush chain bridge nat cni-br-iface-ds1-eth0-mac',
        'add rule bridge nat PREROUTING iifname "vethd5d7d488" jump cni-br-iface-ds1-eth0 comment "macspoofchk-ds1-eth0"',
        'add rule bridge nat cni-br-iface-ds1-eth0 jump cni-br-iface-ds1-eth0-mac comment "macspoofchk-ds1-eth0"',
        'add rule bridge nat cni-br-iface-ds1-eth0-mac ether saddr 5e:2f:23:56:cc:0e return comment "macspoofchk-ds1-eth0"',
        'add rule bridge nat cni-br-iface-ds1-eth0-mac drop comment "macspoofchk-ds1-eth0"',
        '',
      ].join('\n'),
    );
    expect(renderSpoofChkTeardown(a, undefined).isEmpty).toBe(true);
  });
  it('does not stack jumps on repeated setup and tears down completely', async () => {
    const nft = new FakeNft();
    await setupMacSpoofChk(a, nft);
    await setupMacSpoofChk(a, nft);
    await setupMacSpoofChk({ ...a, ifName: 'eth1', hostVeth: 'veth2' }, nft);
    const t = await nft.list('bridge', 'nat');
    expect(t!.rules.filter((r) => r.chain === 'PREROUTING').map((r) => r.comment)).toEqual(['macspoofchk-ds1-eth0', 'macspoofchk-ds1-eth1']);
    await teardownMacSpoofChk(a, nft);
    await teardownMacSpoofChk(a, nft);
    const after = await nft.list('bridge', 'nat');
    expect(after!.chains.map((c) => c.name)).toEqual(['PREROUTING', 'cni-br-iface-ds1-eth1', 'cni-br-iface-ds1-eth1-mac']);
    expect(after!.rules.filter((r) => r.chain === 'PREROUTING').map((r) => r.text)).toEqual(['iifname "veth2" jump cni-br-iface-ds1-eth1']);
  });
});
