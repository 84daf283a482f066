// ipMasq and macspoofchk against the real iptables-restore/iptables-save and
// nft, inside a namespace this suite creates (runners use nsenter).
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.ts';
import { RealIptables, parseIptablesSave } from '../../lib/netfilter/iptables.ts';
import { RealNft, parseNftJson } from '../../lib/netfilter/nft.ts';
import { createNamedNetns, deleteNamedNetns } from '../../lib/netns/index.ts';
import { checkIPMasq, gcIPMasq, masqChainName, masqComment, referenceChainName, referenceComment, setupIPMasq, teardownIPMasq, type MasqRunners } from '../../plugins/common/ipmasq.ts';
import { setupMacSpoofChk, teardownMacSpoofChk } from '../../plugins/common/spoofchk.ts';

const prefix = `ipm${randomBytes(3).toString('hex')}`;
const created: string[] = [];
let seq = 0;

function newNs(): { path: string; runners: MasqRunners } {
  const name = `${prefix}-${seq++}`;
  const path = createNamedNetns(name);
  created.push(name);
  return { path, runners: { iptables: new RealIptables({ netns: path }), nft: new RealNft({ netns: path }) } };
}

afterAll(() => {
  for (const n of created) deleteNamedNetns(n);
});

beforeAll(async () => {
  // The suite needs the real tools; without them it would test nothing.
  await run('iptables-restore', ['--version']);
  await run('nft', ['--version']);
});

const q = (s: string) => `"${s.replace(/"/g, '\\"')}"`;
async function natRules(path: string, family: 'ip' | 'ip6'): Promise<string[]> {
  const { stdout } = await run(family === 'ip' ? 'iptables-save' : 'ip6tables-save', ['-t', 'nat'], { netns: path });
  return parseIptablesSave(stdout).rules('nat').map((r) => r.line);
}
async function natChains(path: string, family: 'ip' | 'ip6'): Promise<string[]> {
  const { stdout } = await run(family === 'ip' ? 'iptables-save' : 'ip6tables-save', ['-t', 'nat'], { netns: path });
  return [...(parseIptablesSave(stdout).table('nat')?.chains.keys() ?? [])].filter((c) => c.startsWith('CNI-'));
}
async function ruleset(path: string) {
  const { stdout } = await run('nft', ['-j', 'list', 'ruleset'], { netns: path });
  return parseNftJson(stdout);
}

const eth0 = { network: 'rcninet', containerId: 'ctr1', ifName: 'eth0', ips: [{ address: '10.99.0.2/24' }, { address: 'fd00:99::2/64' }] };
const eth1 = { network: 'rcninet', containerId: 'ctr1', ifName: 'eth1', ips: [{ address: '10.99.0.3/24' }] };

describe('ipMasq, iptables backend', () => {
  it('installs exactly the expected rules, checks them, and removes them completely', async () => {
    const { path, runners } = newNs();
    await setupIPMasq({ ...eth0, backend: 'iptables' }, runners);
    await setupIPMasq({ ...eth0, backend: 'iptables' }, runners); // idempotent
    const chain = masqChainName('rcninet', 'ctr1', 'eth0');
    const c = q(masqComment('rcninet', 'ctr1', 'eth0'));
    expect(await natRules(path, 'ip')).toEqual([
      `-A POSTROUTING -s 10.99.0.2/32 -m comment --comment ${c} -j ${chain}`,
      `-A ${chain} -d 10.99.0.0/24 -m comment --comment ${c} -j ACCEPT`,
      `-A ${chain} ! -d 224.0.0.0/4 -m comment --comment ${c} -j MASQUERADE`,
    ]);
    expect(await natRules(path, 'ip6')).toEqual([
      `-A POSTROUTING -s fd00:99::2/128 -m comment --comment ${c} -j ${chain}`,
      `-A ${chain} -d fd00:99::/64 -m comment --comment ${c} -j ACCEPT`,
      `-A ${chain} ! -d ff00::/8 -m comment --comment ${c} -j MASQUERADE`,
    ]);
    expect(await checkIPMasq({ ...eth0, backend: 'iptables' }, runners)).toEqual([]);

    await run('iptables', ['-t', 'nat', '-D', 'POSTROUTING', '-s', '10.99.0.2/32', '-m', 'comment', '--comment', masqComment('rcninet', 'ctr1', 'eth0'), '-j', chain], { netns: path });
    expect((await checkIPMasq({ ...eth0, backend: 'iptables' }, runners)).map((p) => [p.family, p.kind])).toEqual([['ip', 'missing-jump']]);

    await teardownIPMasq(eth0, runners);
    expect(await natRules(path, 'ip')).toEqual([]);
    expect(await natRules(path, 'ip6')).toEqual([]);
    expect(await natChains(path, 'ip')).toEqual([]);
    expect(await natChains(path, 'ip6')).toEqual([]);
  });

  it('tearing down eth1 leaves eth0 of the same pod intact', async () => {
    const { path, runners } = newNs();
    await setupIPMasq({ ...eth0, backend: 'iptables' }, runners);
    const before = await natRules(path, 'ip');
    await setupIPMasq({ ...eth1, backend: 'iptables' }, runners);
    expect(await natChains(path, 'ip')).toHaveLength(2);
    await teardownIPMasq(eth1, runners);
    expect(await natRules(path, 'ip')).toEqual(before);
    expect(await checkIPMasq({ ...eth0, backend: 'iptables' }, runners)).toEqual([]);
  });

  it('teardown of never-created state succeeds, also with no IPs', async () => {
    const { path, runners } = newNs();
    await teardownIPMasq(eth0, runners);
    await teardownIPMasq({ ...eth0, ips: [] }, runners);
    expect(await natRules(path, 'ip')).toEqual([]);
  });

  it('migrates chains written by the reference plugin without breaking the other attachment', async () => {
    const { path, runners } = newNs();
    const ref = referenceChainName('rcninet', 'ctr1');
    const rc = referenceComment('rcninet', 'ctr1');
    // What the reference plugin leaves for (ctr1, eth0) + (ctr1, eth1): one shared chain.
    const ipt = (...a: string[]) => run('iptables', ['-t', 'nat', ...a], { netns: path });
    await ipt('-N', ref);
    await ipt('-A', ref, '-d', '10.99.0.0/24', '-j', 'ACCEPT', '-m', 'comment', '--comment', rc);
    await ipt('-A', ref, '!', '-d', '224.0.0.0/4', '-j', 'MASQUERADE', '-m', 'comment', '--comment', rc);
    await ipt('-A', 'POSTROUTING', '-s', '10.99.0.2', '-j', ref, '-m', 'comment', '--comment', rc);
    await ipt('-A', 'POSTROUTING', '-s', '10.99.0.3', '-j', ref, '-m', 'comment', '--comment', rc);
    await teardownIPMasq(eth1, runners);
    const rules = await natRules(path, 'ip');
    expect(rules.filter((l) => l.startsWith('-A POSTROUTING'))).toEqual([`-A POSTROUTING -s 10.99.0.2/32 -m comment --comment ${q(rc)} -j ${ref}`]);
    expect(rules.filter((l) => l.startsWith(`-A ${ref}`))).toHaveLength(2);
    await teardownIPMasq(eth0, runners);
    expect(await natRules(path, 'ip')).toEqual([]);
    expect(await natChains(path, 'ip')).toEqual([]);
  });

  it('GC removes only attachments of this network that are not listed', async () => {
    const { path, runners } = newNs();
    await setupIPMasq({ ...eth0, backend: 'iptables' }, runners);
    await setupIPMasq({ ...eth1, backend: 'iptables' }, runners);
    await setupIPMasq({ ...eth1, network: 'othernet', backend: 'iptables' }, runners);
    await gcIPMasq('rcninet', [{ containerID: 'ctr1', ifname: 'eth0' }], runners);
    expect((await natChains(path, 'ip')).sort()).toEqual([masqChainName('rcninet', 'ctr1', 'eth0'), masqChainName('othernet', 'ctr1', 'eth1')].sort());
    expect(await checkIPMasq({ ...eth0, backend: 'iptables' }, runners)).toEqual([]);
    await gcIPMasq('rcninet', [], runners);
    expect(await natChains(path, 'ip6')).toEqual([]);
    expect(await natChains(path, 'ip')).toEqual([masqChainName('othernet', 'ctr1', 'eth1')]);
  });
});

describe('ipMasq, nftables backend', () => {
  const masqRules = async (path: string) =>
    (await ruleset(path)).find((t) => t.family === 'inet' && t.name === 'cni_plugins_masquerade')?.rules.map((r) => `${r.chain}: ${r.text}${r.comment ? ` # ${r.comment}` : ''}`) ?? [];

  it('installs the reference layout, tears down per ifname, GCs, tolerates missing state', async () => {
    const { path, runners } = newNs();
    await teardownIPMasq(eth0, runners); // nothing there yet
    await setupIPMasq({ ...eth0, backend: 'nftables' }, runners);
    await setupIPMasq({ ...eth0, backend: 'nftables' }, runners);
    await setupIPMasq({ ...eth1, backend: 'nftables' }, runners);
    const c0 = (await ruleset(path)).flatMap((t) => t.rules).find((r) => r.text.startsWith('ip saddr 10.99.0.2'))!.comment!;
    const c1 = (await ruleset(path)).flatMap((t) => t.rules).find((r) => r.text.startsWith('ip saddr 10.99.0.3'))!.comment!;
    expect(c0).toMatch(/^[0-9a-f]{16}-[0-9a-f]{16}, net: rcninet, if: eth0, id: ctr1$/);
    expect(await masqRules(path)).toEqual([
      `masq_checks: ip saddr 10.99.0.2 ip daddr != 10.99.0.0/24 masquerade # ${c0}`,
      `masq_checks: ip6 saddr fd00:99::2 ip6 daddr != fd00:99::/64 masquerade # ${c0}`,
      `masq_checks: ip saddr 10.99.0.3 ip daddr != 10.99.0.0/24 masquerade # ${c1}`,
      'postrouting: ip daddr 224.0.0.0/4 return',
      'postrouting: ip6 daddr ff00::/8 return',
      'postrouting: goto masq_checks',
    ]);
    const post = (await ruleset(path)).flatMap((t) => t.chains).find((ch) => ch.name === 'postrouting')!;
    expect([post.type, post.hook, post.prio]).toEqual(['nat', 'postrouting', 100]);
    expect(await checkIPMasq({ ...eth0, backend: 'nftables' }, runners)).toEqual([]);

    await teardownIPMasq(eth1, runners);
    expect((await masqRules(path)).filter((l) => l.startsWith('masq_checks'))).toHaveLength(2);
    expect(await checkIPMasq({ ...eth0, backend: 'nftables' }, runners)).toEqual([]);

    await gcIPMasq('rcninet', [], runners);
    expect((await masqRules(path)).filter((l) => l.startsWith('masq_checks'))).toEqual([]);
    expect((await checkIPMasq({ ...eth0, backend: 'nftables' }, runners)).map((p) => p.kind)).toEqual(['missing-rule', 'missing-rule']);
  });

  it('DEL finds the state in the other backend when the config changed since ADD', async () => {
    // ADD used nftables, DEL's config says iptables: iptables holds nothing,
    // so the nftables state is looked up and removed.
    const a = newNs();
    await setupIPMasq({ ...eth0, backend: 'nftables' }, a.runners);
    await teardownIPMasq(eth0, a.runners, 'iptables');
    expect((await masqRules(a.path)).filter((l) => l.startsWith('masq_checks'))).toEqual([]);
    // And the other way round.
    const b = newNs();
    await setupIPMasq({ ...eth0, backend: 'iptables' }, b.runners);
    await teardownIPMasq(eth0, b.runners, 'nftables');
    expect(await natRules(b.path, 'ip')).toEqual([]);
  });
});

describe('macspoofchk', () => {
  it('installs the reference layout once and removes it', async () => {
    const { path, runners } = newNs();
    const a = { containerId: 'ds1', ifName: 'eth0', hostVeth: 'vethd5d7d488', mac: '5e:2f:23:56:cc:0e' };
    await teardownMacSpoofChk(a, runners.nft); // never created
    await setupMacSpoofChk(a, runners.nft);
    await setupMacSpoofChk(a, runners.nft);
    const t = (await ruleset(path)).find((x) => x.family === 'bridge' && x.name === 'nat')!;
    expect(t.chains.map((c) => [c.name, c.hook ?? null, c.prio ?? null])).toEqual([
      ['PREROUTING', 'prerouting', -300],
      ['cni-br-iface-ds1-eth0', null, null],
      ['cni-br-iface-ds1-eth0-mac', null, null],
    ]);
    expect(t.rules.map((r) => [r.chain, r.text, r.comment])).toEqual([
      ['PREROUTING', 'iifname "vethd5d7d488" jump cni-br-iface-ds1-eth0', 'macspoofchk-ds1-eth0'],
      ['cni-br-iface-ds1-eth0', 'jump cni-br-iface-ds1-eth0-mac', 'macspoofchk-ds1-eth0'],
      ['cni-br-iface-ds1-eth0-mac', 'ether saddr 5e:2f:23:56:cc:0e return', 'macspoofchk-ds1-eth0'],
      ['cni-br-iface-ds1-eth0-mac', 'drop', 'macspoofchk-ds1-eth0'],
    ]);
    await teardownMacSpoofChk(a, runners.nft);
    const after = (await ruleset(path)).find((x) => x.family === 'bridge' && x.name === 'nat')!;
    expect(after.chains.map((c) => c.name)).toEqual(['PREROUTING']);
    expect(after.rules).toEqual([]);
  });
});
