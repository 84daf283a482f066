import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FakeIptables, parseIptablesSave } from '../../lib/netfilter/iptables.ts';
import { FakeNft } from '../../lib/netfilter/nft.ts';
import {
  checkIPMasq,
  defaultIPMasqBackend,
  gcIPMasq,
  masqChainName,
  masqComment,
  nftMasqComment,
  parseMasqComment,
  parseMasqIP,
  referenceChainName,
  renderIptablesSetup,
  renderIptablesTeardown,
  renderNftSetup,
  setupIPMasq,
  teardownIPMasq,
} from './ipmasq.ts';

const eth0 = { network: 'rcninet', containerId: 'ctr1', ifName: 'eth0', ips: [{ address: '10.99.0.2/24' }] };
const eth1 = { network: 'rcninet', containerId: 'ctr1', ifName: 'eth1', ips: [{ address: '10.99.0.3/24' }] };
const fakes = () => ({ iptables: new FakeIptables(), nft: new FakeNft() });
const natLines = async (ipt: FakeIptables, family: 'ip' | 'ip6' = 'ip') => parseIptablesSave(await ipt.save(family, 'nat')).rules('nat').map((r) => r.line);

describe('naming', () => {
  it('reproduces the reference chain name observed for (rcninet, ctr1)', () => {
    expect(referenceChainName('rcninet', 'ctr1')).toBe('CNI-54702c499765f12e03e54a3e');
  });
  it('keys our chain by ifname, never equal to a reference chain', () => {
    const a = masqChainName('rcninet', 'ctr1', 'eth0');
    expect(a).toMatch(/^CNI-[0-9a-f]{24}$/);
    expect(a).not.toBe(masqChainName('rcninet', 'ctr1', 'eth1'));
    expect(a).not.toBe(referenceChainName('rcninet', 'ctr1'));
  });
  it('writes comments that parse back', () => {
    expect(masqComment('rcninet', 'ctr1', 'eth0')).toBe('name: "rcninet" id: "ctr1" if: "eth0"');
    expect(parseMasqComment('name: "rcninet" id: "ctr1" if: "eth0"')).toEqual({ network: 'rcninet', containerId: 'ctr1', ifName: 'eth0' });
    expect(parseMasqComment('name: "rcninet" id: "ctr1"')).toEqual({ network: 'rcninet', containerId: 'ctr1', ifName: undefined });
    expect(parseMasqComment('flanneld masq')).toBeUndefined();
  });
  it('uses the reference nft comment format', () => {
    expect(nftMasqComment('rcninet', 'eth0', 'ctr1')).toMatch(/^[0-9a-f]{16}-[0-9a-f]{16}, net: rcninet, if: eth0, id: ctr1$/);
  });
  it('parses addresses to canonical ip and subnet', () => {
    expect(parseMasqIP('10.99.0.2/24')).toEqual({ family: 'ip', ip: '10.99.0.2', subnet: '10.99.0.0/24' });
    expect(parseMasqIP('fd00:0095:0::2/64')).toEqual({ family: 'ip6', ip: 'fd00:95::2', subnet: 'fd00:95::/64' });
  });
});

describe('iptables renderers', () => {
  const chain = masqChainName('rcninet', 'ctr1', 'eth0');
  const c = '"name: \\"rcninet\\" id: \\"ctr1\\" if: \\"eth0\\""';
  it('renders setup as one transaction in iptables-save form', () => {
    const text = renderIptablesSetup(eth0, 'ip', [parseMasqIP('10.99.0.2/24')], parseIptablesSave(''));
    expect(text).toBe(
      [
        '*nat',
        `:${chain} - [0:0]`,
        `-A ${chain} -d 10.99.0.0/24 -m comment --comment ${c} -j ACCEPT`,
        `-A ${chain} ! -d 224.0.0.0/4 -m comment --comment ${c} -j MASQUERADE`,
        `-A POSTROUTING -s 10.99.0.2/32 -m comment --comment ${c} -j ${chain}`,
        'COMMIT',
        '',
      ].join('\n'),
    );
  });
  it('teardown deletes only what is there', () => {
    expect(renderIptablesTeardown(eth0, 'ip', [parseMasqIP('10.99.0.2/24')], parseIptablesSave(''))).toBe('');
  });
  it('migrates a reference chain: drops this IP jump, keeps the chain while another attachment uses it', () => {
    const ref = referenceChainName('rcninet', 'ctr1');
    const rc = '"name: \\"rcninet\\" id: \\"ctr1\\""';
    const saved = [
      '*nat',
      ':POSTROUTING ACCEPT [0:0]',
      `:${ref} - [0:0]`,
      `-A POSTROUTING -s 10.99.0.2/32 -m comment --comment ${rc} -j ${ref}`,
      `-A POSTROUTING -s 10.99.0.3/32 -m comment --comment ${rc} -j ${ref}`,
      `-A ${ref} -d 10.99.0.0/24 -m comment --comment ${rc} -j ACCEPT`,
      'COMMIT',
    ].join('\n');
    const dump = parseIptablesSave(saved);
    expect(renderIptablesTeardown(eth1, 'ip', [parseMasqIP('10.99.0.3/24')], dump)).toBe(
      ['*nat', `-D POSTROUTING -s 10.99.0.3/32 -m comment --comment ${rc} -j ${ref}`, 'COMMIT', ''].join('\n'),
    );
    const last = parseIptablesSave(saved.replace(/^-A POSTROUTING -s 10.99.0.3.*\n/m, ''));
    expect(renderIptablesTeardown(eth0, 'ip', [parseMasqIP('10.99.0.2/24')], last)).toBe(
      ['*nat', `-D POSTROUTING -s 10.99.0.2/32 -m comment --comment ${rc} -j ${ref}`, `-F ${ref}`, `-X ${ref}`, 'COMMIT', ''].join('\n'),
    );
  });
});

describe('iptables backend through the fake', () => {
  it('sets up idempotently with one save and one restore per family', async () => {
    const r = fakes();
    const dual = { ...eth0, ips: [{ address: '10.99.0.2/24' }, { address: 'fd00:95::2/64' }] };
    await setupIPMasq({ ...dual, backend: 'iptables' }, r);
    expect(r.iptables.restores).toHaveLength(2);
    expect(r.iptables.saves).toBe(2);
    const v4 = await natLines(r.iptables);
    const v6 = await natLines(r.iptables, 'ip6');
    await setupIPMasq({ ...dual, backend: 'iptables' }, r);
    expect(await natLines(r.iptables)).toEqual(v4);
    expect(await natLines(r.iptables, 'ip6')).toEqual(v6);
    expect(v6.join('\n')).toContain('! -d ff00::/8');
    expect(await checkIPMasq({ ...dual, backend: 'iptables' }, r)).toEqual([]);
  });
  it('keeps eth0 intact when eth1 of the same pod is torn down', async () => {
    const r = fakes();
    await setupIPMasq({ ...eth0, backend: 'iptables' }, r);
    const only0 = await natLines(r.iptables);
    await setupIPMasq({ ...eth1, backend: 'iptables' }, r);
    await teardownIPMasq(eth1, r);
    expect(await natLines(r.iptables)).toEqual(only0);
    expect(await checkIPMasq({ ...eth0, backend: 'iptables' }, r)).toEqual([]);
  });
  it('tears down without IPs (netns gone) and tolerates missing state', async () => {
    const r = fakes();
    await teardownIPMasq(eth0, r);
    await setupIPMasq({ ...eth0, backend: 'iptables' }, r);
    await teardownIPMasq({ ...eth0, ips: [] }, r);
    expect(await natLines(r.iptables)).toEqual([]);
    expect(parseIptablesSave(await r.iptables.save('ip')).hasChain('nat', masqChainName('rcninet', 'ctr1', 'eth0'))).toBe(false);
  });
  it('reports missing jump and chain on check', async () => {
    const r = fakes();
    await setupIPMasq({ ...eth0, backend: 'iptables' }, r);
    const jump = (await natLines(r.iptables)).find((l) => l.startsWith('-A POSTROUTING'))!;
    await r.iptables.restore('ip', `*nat\n${jump.replace('-A', '-D')}\nCOMMIT\n`, { noflush: true });
    expect((await checkIPMasq({ ...eth0, backend: 'iptables' }, r)).map((p) => p.kind)).toEqual(['missing-jump']);
    expect((await checkIPMasq({ ...eth1, backend: 'iptables' }, r)).map((p) => p.kind)).toEqual(['missing-chain', 'missing-jump']);
  });
  it('GC removes attachments not listed, in both forms, and only of this network', async () => {
    const r = fakes();
    await setupIPMasq({ ...eth0, backend: 'iptables' }, r);
    await setupIPMasq({ ...eth1, backend: 'iptables' }, r);
    await setupIPMasq({ ...eth0, network: 'other', backend: 'iptables' }, r);
    const ref = referenceChainName('rcninet', 'gone');
    await r.iptables.restore('ip', `*nat\n:${ref} - [0:0]\n-A ${ref} -m comment --comment "name: \\"rcninet\\" id: \\"gone\\"" -j MASQUERADE\n-A POSTROUTING -s 10.99.0.9/32 -j ${ref}\nCOMMIT\n`, { noflush: true });
    await gcIPMasq('rcninet', [{ containerID: 'ctr1', ifname: 'eth0' }], r);
    const d = parseIptablesSave(await r.iptables.save('ip'));
    expect(d.hasChain('nat', masqChainName('rcninet', 'ctr1', 'eth0'))).toBe(true);
    expect(d.hasChain('nat', masqChainName('rcninet', 'ctr1', 'eth1'))).toBe(false);
    expect(d.hasChain('nat', ref)).toBe(false);
    expect(d.hasChain('nat', masqChainName('other', 'ctr1', 'eth0'))).toBe(true);
    expect(d.rules('nat', 'POSTROUTING').map((x) => x.args[1])).toEqual(['10.99.0.2/32', '10.99.0.2/32']);
  });
});

describe('nftables backend through the fake', () => {
  it('renders the reference layout', () => {
    const tx = renderNftSetup(eth0, undefined);
    expect(tx.render()).toBe(
      [
        'add table inet cni_plugins_masquerade { comment "Masquerading for plugins from github.com/containernetworking/plugins" ; }',
        'add chain inet cni_plugins_masquerade masq_checks { comment "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet" ; }',
        'add chain inet cni_plugins_masquerade postrouting { type nat hook postrouting priority srcnat ; }',
        'flush chain inet cni_plugins_masquerade postrouting',
        'add rule inet cni_plugins_masquerade postrouting ip daddr 224.0.0.0/4 return',
        'add rule inet cni_plugins_masquerade postrouting ip6 daddr ff00::/8 return',
        'add rule inet cni_plugins_masquerade postrouting goto masq_checks',
        `add rule inet cni_plugins_masquerade masq_checks ip saddr 10.99.0.2 ip daddr != 10.99.0.0/24 masquerade comment "${nftMasqComment('rcninet', 'eth0', 'ctr1')}"`,
        '',
      ].join('\n'),
    );
  });
  it('replaces stale rules on setup, tears down per ifname, GCs per network', async () => {
    const r = fakes();
    await setupIPMasq({ ...eth0, backend: 'nftables' }, r);
    await setupIPMasq({ ...eth0, backend: 'nftables' }, r);
    await setupIPMasq({ ...eth1, backend: 'nftables' }, r);
    const texts = async () => (await r.nft.list('inet', 'cni_plugins_masquerade'))!.rules.filter((x) => x.chain === 'masq_checks').map((x) => x.text);
    expect(await texts()).toEqual(['ip saddr 10.99.0.2 ip daddr != 10.99.0.0/24 masquerade', 'ip saddr 10.99.0.3 ip daddr != 10.99.0.0/24 masquerade']);
    expect(await checkIPMasq({ ...eth0, backend: 'nftables' }, r)).toEqual([]);
    await teardownIPMasq(eth1, r);
    expect(await texts()).toEqual(['ip saddr 10.99.0.2 ip daddr != 10.99.0.0/24 masquerade']);
    expect((await checkIPMasq({ ...eth1, backend: 'nftables' }, r)).map((p) => p.kind)).toEqual(['missing-rule']);
    await gcIPMasq('rcninet', [], r);
    expect(await texts()).toEqual([]);
  });
});

describe('backend default', () => {
  it('prefers iptables, nftables only when iptables-restore is absent', () => {
    expect(defaultIPMasqBackend('/nonexistent')).toBe('iptables');
    expect(defaultIPMasqBackend('/usr/sbin:/sbin:/usr/bin')).toBe('iptables');
    const dir = mkdtempSync(join(tmpdir(), 'ipmasq-path-'));
    try {
      writeFileSync(join(dir, 'nft'), '#!/bin/sh\n', { mode: 0o755 });
      expect(defaultIPMasqBackend(dir)).toBe('nftables');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
