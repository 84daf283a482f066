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

describe('parseNftJson, sets and maps', () => {
  // Captured from `nft -j list ruleset` (nftables 1.0.6) after the kube-proxy-shaped objects below were added.
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
      { table: { family: 'ip', name: 'foo', handle: 1, comment: 'rules' } },
      {
        map: {
          family: 'ip', name: 'm', table: 'foo', type: ['ipv4_addr', 'inet_proto', 'inet_service'], handle: 2, comment: 'm', map: 'verdict',
          elem: [[{ concat: ['10.0.0.3', 'udp', 53] }, { goto: { target: 'service-ULMVA6XW-ns1/svc1/tcp/p80' } }]],
        },
      },
      {
        set: {
          family: 'ip', name: 's', table: 'foo', type: ['ipv4_addr', 'inet_proto', 'inet_service'], handle: 3, comment: 'x y', size: 65535, flags: ['interval', 'timeout'],
          elem: [{ elem: { val: { concat: [{ prefix: { addr: '10.0.0.0', len: 24 } }, 'udp', 53] }, timeout: 30, expires: 22, comment: 'z' } }],
        },
      },
      {
        map: {
          family: 'ip', name: 'm2', table: 'foo', type: ['ipv4_addr', 'inet_proto', 'inet_service'], handle: 4, map: 'verdict', flags: ['timeout'],
          elem: [[{ elem: { val: { concat: ['10.0.0.2', 'tcp', 80] }, timeout: 10, expires: 2, comment: 'c' } }, { goto: { target: 'c' } }]],
        },
      },
      { map: { family: 'ip', name: 'mm', table: 'foo', type: ['inet_proto', 'inet_service'], handle: 12, map: 'ipv4_addr', elem: [[{ concat: ['tcp', 80] }, '1.2.3.4']] } },
      { set: { family: 'ip', name: 'p', table: 'foo', type: 'inet_service', handle: 13, flags: ['interval'], elem: [{ range: [1000, 2000] }, 3000] } },
      {
        rule: {
          family: 'ip', table: 'foo', chain: 'service-ULMVA6XW-ns1/svc1/tcp/p80', handle: 10,
          expr: [{ vmap: { key: { numgen: { mode: 'random', mod: 1, offset: 0 } }, data: { set: [[0, { goto: { target: 'c' } }]] } } }],
        },
      },
      {
        rule: {
          family: 'ip', table: 'foo', chain: 'services', handle: 11,
          expr: [{ vmap: { key: { concat: [{ payload: { protocol: 'ip', field: 'daddr' } }, { meta: { key: 'l4proto' } }, { payload: { protocol: 'th', field: 'dport' } }] }, data: '@service-ips' } }],
        },
      },
    ],
  });
  it('normalizes types, flags and elements (concatenations, prefixes, ranges, timeouts, comments, verdicts)', () => {
    const [t] = parseNftJson(json);
    expect(t!.comment).toBe('rules');
    const by = (n: string) => t!.sets.find((s) => s.name === n)!;
    expect(by('m')).toMatchObject({ kind: 'map', keyType: 'ipv4_addr . inet_proto . inet_service', valueType: 'verdict', comment: 'm' });
    expect(by('m').elements).toEqual([{ key: '10.0.0.3 . udp . 53', value: 'goto service-ULMVA6XW-ns1/svc1/tcp/p80' }]);
    expect(by('s')).toMatchObject({ kind: 'set', flags: ['interval', 'timeout'], size: 65535, comment: 'x y' });
    expect(by('s').elements).toEqual([{ key: '10.0.0.0/24 . udp . 53', timeout: 30, comment: 'z' }]);
    expect(by('m2').elements).toEqual([{ key: '10.0.0.2 . tcp . 80', value: 'goto c', timeout: 10, comment: 'c' }]);
    expect(by('mm').elements).toEqual([{ key: 'tcp . 80', value: '1.2.3.4' }]);
    expect(by('p').elements).toEqual([{ key: '1000-2000' }, { key: '3000' }]);
    expect(by('p').keyType).toBe('inet_service');
    expect(t!.rules.map((r) => r.text)).toEqual(['numgen random mod 1 vmap { 0 : goto c }', 'ip daddr . meta l4proto . th dport vmap @service-ips']);
  });
  it('fails on input that is not nft JSON', () => {
    expect(() => parseNftJson('not json')).toThrow(/cannot parse nft JSON/);
    expect(() => parseNftJson('{"x": 1}')).toThrow(/lacks "nftables"/);
  });
});
