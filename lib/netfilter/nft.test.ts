import { describe, expect, it } from 'vitest';
import { ExecError } from '../exec.ts';
import { FakeNft, NftInputError, NftTransaction, nftRuleText, parseNftJson } from './nft.ts';

describe('NftTransaction', () => {
  it('renders knftables-style commands', () => {
    const T = { family: 'inet', table: 't' } as const;
    const tx = new NftTransaction()
      .addTable({ family: 'inet', name: 't', comment: 'a table' })
      .addChain({ ...T, name: 'post', type: 'nat', hook: 'postrouting', priority: 'srcnat', policy: 'accept' })
      .addChain({ ...T, name: 'plain', comment: 'c' })
      .flushChain({ ...T, name: 'post' })
      .addRule({ ...T, chain: 'post', rule: 'ip daddr 224.0.0.0/4 return' })
      .addRule({ ...T, chain: 'plain', rule: 'masquerade', comment: 'x, y' })
      .insertRule({ ...T, chain: 'plain', rule: 'accept', handle: 4 })
      .deleteRule({ ...T, chain: 'plain', handle: 7 })
      .addMap({ ...T, name: 'm', type: 'ipv4_addr : verdict', flags: ['interval'] })
      .addElement({ ...T, set: 'm', key: '10.0.0.0/8', value: 'goto plain', comment: 'e' })
      .deleteElement({ ...T, set: 'm', key: '10.0.0.0/8', value: 'goto plain' })
      .deleteChain({ ...T, name: 'plain' })
      .deleteTable({ family: 'inet', name: 't' });
    expect(tx.render()).toBe(
      [
        'add table inet t { comment "a table" ; }',
        'add chain inet t post { type nat hook postrouting priority srcnat ; policy accept ; }',
        'add chain inet t plain { comment "c" ; }',
        'flush chain inet t post',
        'add rule inet t post ip daddr 224.0.0.0/4 return',
        'add rule inet t plain masquerade comment "x, y"',
        'insert rule inet t plain position 4 accept',
        'delete rule inet t plain handle 7',
        'add map inet t m { type ipv4_addr : verdict ; flags interval ; }',
        'add element inet t m { 10.0.0.0/8 comment "e" : goto plain }',
        'delete element inet t m { 10.0.0.0/8 }',
        'delete chain inet t plain',
        'delete table inet t',
        '',
      ].join('\n'),
    );
  });
  it('rejects comments nft cannot carry and half-specified base chains', () => {
    expect(() => new NftTransaction().addRule({ family: 'ip', table: 't', chain: 'c', rule: 'accept', comment: 'a"b' })).toThrow(NftInputError);
    expect(() => new NftTransaction().addChain({ family: 'ip', table: 't', name: 'c', type: 'nat' })).toThrow(NftInputError);
  });
});

describe('parseNftJson', () => {
  // Shape of `nft -j list table` from nftables 1.0.6.
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6', json_schema_version: 1 } },
      { table: { family: 'bridge', name: 'nat', handle: 1 } },
      { chain: { family: 'bridge', table: 'nat', name: 'PREROUTING', handle: 1, type: 'filter', hook: 'prerouting', prio: -300, policy: 'accept' } },
      { chain: { family: 'bridge', table: 'nat', name: 'cni-br-iface-c-eth0-mac', handle: 3 } },
      {
        rule: {
          family: 'bridge', table: 'nat', chain: 'PREROUTING', handle: 4, comment: 'macspoofchk-c-eth0',
          expr: [{ match: { op: '==', left: { meta: { key: 'iifname' } }, right: 'veth1234' } }, { jump: { target: 'cni-br-iface-c-eth0' } }],
        },
      },
      {
        rule: {
          family: 'bridge', table: 'nat', chain: 'cni-br-iface-c-eth0-mac', handle: 6,
          expr: [{ match: { op: '==', left: { payload: { protocol: 'ether', field: 'saddr' } }, right: '5e:2f:23:56:cc:0e' } }, { return: null }],
        },
      },
      { set: { family: 'bridge', table: 'nat', name: 's', handle: 9, type: 'ipv4_addr', elem: ['10.0.0.1'] } },
    ],
  });
  it('collects chains, rules with comment and text, and sets', () => {
    const [t] = parseNftJson(json);
    expect(t!.chains.map((c) => [c.name, c.hook, c.prio])).toEqual([['PREROUTING', 'prerouting', -300], ['cni-br-iface-c-eth0-mac', undefined, undefined]]);
    expect(t!.rules.map((r) => [r.chain, r.handle, r.comment, r.text])).toEqual([
      ['PREROUTING', 4, 'macspoofchk-c-eth0', 'iifname "veth1234" jump cni-br-iface-c-eth0'],
      ['cni-br-iface-c-eth0-mac', 6, undefined, 'ether saddr 5e:2f:23:56:cc:0e return'],
    ]);
    expect(t!.sets[0]!.elem).toEqual(['10.0.0.1']);
  });
  it('renders expressions as nft list prints them', () => {
    expect(
      nftRuleText([
        { match: { op: '==', left: { payload: { protocol: 'ip6', field: 'saddr' } }, right: 'fd00::2' } },
        { match: { op: '!=', left: { payload: { protocol: 'ip6', field: 'daddr' } }, right: { prefix: { addr: 'fd00::', len: 64 } } } },
        { masquerade: null },
      ]),
    ).toBe('ip6 saddr fd00::2 ip6 daddr != fd00::/64 masquerade');
    expect(nftRuleText([{ match: { op: '==', left: { meta: { key: 'mark' } }, right: 16384 } }, { masquerade: { flags: ['fully-random'] } }])).toBe('meta mark 16384 masquerade fully-random');
    expect(nftRuleText([{ goto: { target: 'x' } }])).toBe('goto x');
  });
});

describe('FakeNft', () => {
  const T = { family: 'inet', table: 't' } as const;
  const base = (): NftTransaction =>
    new NftTransaction()
      .addTable({ family: 'inet', name: 't' })
      .addChain({ ...T, name: 'post', type: 'nat', hook: 'postrouting', priority: 'srcnat' })
      .addChain({ ...T, name: 'c' })
      .addRule({ ...T, chain: 'post', rule: 'goto c' })
      .addRule({ ...T, chain: 'c', rule: 'ip saddr == 10.0.0.2 masquerade', comment: 'k' });
  it('lists what was added, with handles, priorities and normalized text', async () => {
    const f = new FakeNft();
    await f.run(base());
    const t = await f.list('inet', 't');
    expect(t!.chains.find((c) => c.name === 'post')).toMatchObject({ hook: 'postrouting', prio: 100, type: 'nat' });
    expect(t!.rules.map((r) => [r.chain, r.comment, r.text])).toEqual([['post', undefined, 'goto c'], ['c', 'k', 'ip saddr 10.0.0.2 masquerade']]);
    expect(await f.list('inet', 'missing')).toBeUndefined();
  });
  it('is atomic and fails with nft errors', async () => {
    const f = new FakeNft();
    await f.run(base());
    const before = JSON.stringify(await f.list('inet', 't'));
    const bad: [string, RegExp][] = [
      ['delete rule inet t c handle 99\n', /No such file or directory/],
      ['flush chain inet t c\ndelete chain inet t c\n', /Device or resource busy/],
      ['add rule inet t c jump nowhere\n', /No such file or directory/],
      ['delete chain inet t nope\n', /No such file or directory/],
    ];
    for (const [text, re] of bad) {
      const err = await f.run(text).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ExecError);
      expect((err as ExecError).stderr).toMatch(re);
      expect(JSON.stringify(await f.list('inet', 't'))).toBe(before);
    }
  });
  it('deletes rules by handle', async () => {
    const f = new FakeNft();
    await f.run(base());
    const r = (await f.list('inet', 't'))!.rules.find((x) => x.comment === 'k')!;
    await f.run(new NftTransaction().deleteRule({ ...T, chain: 'c', handle: r.handle }));
    expect((await f.list('inet', 't'))!.rules.map((x) => x.text)).toEqual(['goto c']);
  });
});
