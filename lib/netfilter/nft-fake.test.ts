import { describe, expect, it } from 'vitest';
import { ExecError } from '../exec.ts';
import { FakeNft, NftTransaction, gotoChain, type NftFamily } from './nft.ts';

const T = { family: 'ip' as NftFamily, table: 'kp' };

/** A small kube-proxy-shaped table: a concatenated verdict map, a set, base and regular chains. */
function base(): NftTransaction {
  return new NftTransaction()
    .add({ kind: 'table', family: 'ip', name: 'kp', comment: 'rules for kube-proxy' })
    .add({ kind: 'set', ...T, name: 'cluster-ips', type: 'ipv4_addr', comment: 'Active ClusterIPs' })
    .add({ kind: 'map', ...T, name: 'service-ips', type: 'ipv4_addr . inet_proto . inet_service : verdict' })
    .add({ kind: 'map', ...T, name: 'no-ep', typeof: 'ip daddr . meta l4proto . th dport : verdict', flags: ['timeout'] })
    .add({ kind: 'chain', ...T, name: 'nat-prerouting', type: 'nat', hook: 'prerouting', priority: 'dstnat' })
    .add({ kind: 'chain', ...T, name: 'filter-in', type: 'filter', hook: 'input', priority: 'dstnat - 10', policy: 'accept' })
    .add({ kind: 'chain', ...T, name: 'services' })
    .add({ kind: 'chain', ...T, name: 'svc-a' })
    .add({ kind: 'rule', ...T, chain: 'nat-prerouting', rule: 'jump services' })
    .add({ kind: 'rule', ...T, chain: 'services', rule: 'ip daddr . meta l4proto . th dport vmap @service-ips' })
    .add({ kind: 'rule', ...T, chain: 'svc-a', rule: 'meta l4proto tcp dnat to 10.180.0.1:80', comment: 'ep' })
    .add({ kind: 'element', ...T, set: 'cluster-ips', key: '172.30.0.41' })
    .add({ kind: 'element', ...T, set: 'service-ips', key: ['172.30.0.41', 'tcp', '80'], value: gotoChain('svc-a') })
    .add({ kind: 'element', ...T, set: 'no-ep', key: ['172.30.0.46', 'udp', '53'], value: 'drop', timeout: 30, comment: 'ns/svc:dns' });
}

/** Index of a rule's chain in the table, so rule lists compare chain by chain. */
const order = (t: { chains: { name: string }[]; rules: { chain: string; text: string }[] }, text: string): number =>
  t.chains.findIndex((c) => c.name === t.rules.find((r) => r.text === text)!.chain);

async function failure(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ExecError);
  return (err as ExecError).stderr;
}

describe('FakeNft', () => {
  it('dumps its state the way nft list ruleset prints it', async () => {
    const f = new FakeNft();
    await f.run(base());
    expect(f.dump()).toBe(
      [
        'table ip kp {',
        '\tcomment "rules for kube-proxy"',
        '\tset cluster-ips {',
        '\t\ttype ipv4_addr',
        '\t\tcomment "Active ClusterIPs"',
        '\t\telements = { 172.30.0.41 }',
        '\t}',
        '',
        '\tmap service-ips {',
        '\t\ttype ipv4_addr . inet_proto . inet_service : verdict',
        '\t\telements = { 172.30.0.41 . tcp . 80 : goto svc-a }',
        '\t}',
        '',
        '\tmap no-ep {',
        '\t\ttypeof ip daddr . meta l4proto . th dport : verdict',
        '\t\tflags timeout',
        '\t\telements = { 172.30.0.46 . udp . 53 timeout 30s comment "ns/svc:dns" : drop }',
        '\t}',
        '',
        '\tchain nat-prerouting {',
        '\t\ttype nat hook prerouting priority dstnat; policy accept;',
        '\t\tjump services',
        '\t}',
        '',
        '\tchain filter-in {',
        '\t\ttype filter hook input priority -110; policy accept;',
        '\t}',
        '',
        '\tchain services {',
        '\t\tip daddr . meta l4proto . th dport vmap @service-ips',
        '\t}',
        '',
        '\tchain svc-a {',
        '\t\tmeta l4proto tcp dnat to 10.180.0.1:80 comment "ep"',
        '\t}',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('lists sets and maps with their types, flags and elements', async () => {
    const f = new FakeNft();
    await f.run(base());
    const t = (await f.list('ip', 'kp'))!;
    expect(t.comment).toBeUndefined(); // as in nft 1.0.6's JSON; dump() has it
    const noEp = t.sets.find((s) => s.name === 'no-ep')!;
    expect(noEp).toMatchObject({ kind: 'map', keyType: 'ipv4_addr . inet_proto . inet_service', valueType: 'verdict', flags: ['timeout'] });
    expect(noEp.elements).toEqual([{ key: '172.30.0.46 . udp . 53', value: 'drop', timeout: 30, comment: 'ns/svc:dns' }]);
    expect(t.chains.find((c) => c.name === 'filter-in')).toMatchObject({ hook: 'input', prio: -110, policy: 'accept' });
    expect((await f.listRuleset()).map((x) => `${x.family} ${x.name}`)).toEqual(['ip kp']);
  });

  it('add leaves existing objects; create fails EEXIST', async () => {
    const f = new FakeNft();
    await f.run(base());
    const first = (await f.list('ip', 'kp'))!;
    await f.run(base());
    const second = (await f.list('ip', 'kp'))!;
    // Tables, chains, sets and elements stay as they were; rules are appended again.
    expect(second.chains).toEqual(first.chains);
    expect(second.sets).toEqual(first.sets);
    expect(second.rules.map((r) => r.text)).toEqual([...first.rules.map((r) => r.text), ...first.rules.map((r) => r.text)].sort((x, y) => order(second, x) - order(second, y)));
    const exists: NftTransaction[] = [
      new NftTransaction().create({ kind: 'table', family: 'ip', name: 'kp' }),
      new NftTransaction().create({ kind: 'chain', ...T, name: 'services' }),
      new NftTransaction().create({ kind: 'set', ...T, name: 'cluster-ips', type: 'ipv4_addr' }),
      new NftTransaction().create({ kind: 'element', ...T, set: 'cluster-ips', key: '172.30.0.41' }),
      new NftTransaction().add({ kind: 'element', ...T, set: 'service-ips', key: ['172.30.0.41', 'tcp', '80'], value: 'drop' }),
      new NftTransaction().add({ kind: 'set', ...T, name: 'cluster-ips', type: 'ipv6_addr' }),
    ];
    for (const tx of exists) expect(await failure(f.run(tx))).toMatch(/Could not process rule: File exists/);
    // The same element again (same value) is fine for add.
    await f.run(new NftTransaction().add({ kind: 'element', ...T, set: 'service-ips', key: ['172.30.0.41', 'tcp', '80'], value: 'goto svc-a' }));
  });

  it('delete fails ENOENT for what is missing; destroy never does', async () => {
    const f = new FakeNft();
    await f.run(base());
    const missing: NftTransaction[] = [
      new NftTransaction().delete({ kind: 'table', family: 'ip', name: 'nope' }),
      new NftTransaction().delete({ kind: 'chain', ...T, name: 'nope' }),
      new NftTransaction().delete({ kind: 'set', ...T, name: 'nope' }),
      new NftTransaction().delete({ kind: 'element', ...T, set: 'cluster-ips', key: '10.9.9.9' }),
      new NftTransaction().delete({ kind: 'rule', ...T, chain: 'services', handle: 999 }),
      new NftTransaction().add({ kind: 'rule', ...T, chain: 'services', rule: 'accept', handle: 999 }),
      new NftTransaction().replace({ ...T, chain: 'services', rule: 'accept', handle: 999 }),
      new NftTransaction().add({ kind: 'rule', ...T, chain: 'services', rule: 'goto nowhere' }),
      new NftTransaction().add({ kind: 'rule', ...T, chain: 'services', rule: 'ip saddr @nothing drop' }),
      new NftTransaction().add({ kind: 'element', ...T, set: 'service-ips', key: ['1.1.1.1', 'tcp', '1'], value: 'goto nowhere' }),
      new NftTransaction().flush({ kind: 'chain', ...T, name: 'nope' }),
    ];
    for (const tx of missing) expect(await failure(f.run(tx))).toMatch(/No such file or directory/);
    const before = f.dump();
    const destroy = (native: boolean): NftTransaction =>
      new NftTransaction({ destroy: native ? 'native' : 'emulate' })
        .destroy({ kind: 'chain', ...T, name: 'nope' })
        .destroy({ kind: 'set', ...T, name: 'nope', type: 'ipv4_addr' })
        .destroy({ kind: 'element', ...T, set: 'cluster-ips', key: '10.9.9.9' })
        .destroy({ kind: 'table', family: 'ip', name: 'other' });
    await f.run(destroy(false));
    await f.run(destroy(true).destroy({ kind: 'rule', ...T, chain: 'services', handle: 999 }).destroy({ kind: 'chain', family: 'ip', table: 'gone', name: 'x' }));
    expect(f.dump()).toBe(before);
    await f.run(new NftTransaction().destroy({ kind: 'element', ...T, set: 'cluster-ips', key: '172.30.0.41' }).destroy({ kind: 'table', family: 'ip', name: 'kp' }));
    expect(f.dump()).toBe('');
  });

  it('keeps referenced chains and sets (EBUSY), deletes a chain with its own rules', async () => {
    const f = new FakeNft();
    await f.run(base());
    expect(await failure(f.run(new NftTransaction().delete({ kind: 'chain', ...T, name: 'svc-a' })))).toMatch(/Device or resource busy/);
    expect(await failure(f.run(new NftTransaction().delete({ kind: 'chain', ...T, name: 'services' })))).toMatch(/Device or resource busy/);
    expect(await failure(f.run(new NftTransaction().delete({ kind: 'map', ...T, name: 'service-ips' })))).toMatch(/Device or resource busy/);
    await f.run(
      new NftTransaction()
        .delete({ kind: 'element', ...T, set: 'service-ips', key: ['172.30.0.41', 'tcp', '80'] })
        .delete({ kind: 'chain', ...T, name: 'svc-a' })
        .flush({ kind: 'chain', ...T, name: 'services' })
        .delete({ kind: 'map', ...T, name: 'service-ips' }),
    );
    const t = (await f.list('ip', 'kp'))!;
    expect(t.chains.map((c) => c.name)).toEqual(['nat-prerouting', 'filter-in', 'services']);
    expect(t.sets.map((s) => s.name)).toEqual(['cluster-ips', 'no-ep']);
  });

  it('flush table empties chains and keeps set elements; flush set empties the set', async () => {
    const f = new FakeNft();
    await f.run(base());
    await f.run(new NftTransaction().flush({ kind: 'table', family: 'ip', name: 'kp' }));
    let t = (await f.list('ip', 'kp'))!;
    expect(t.rules).toEqual([]);
    expect(t.sets.find((s) => s.name === 'cluster-ips')!.elements).toEqual([{ key: '172.30.0.41' }]);
    await f.run(new NftTransaction().flush({ kind: 'set', ...T, name: 'cluster-ips' }).flush({ kind: 'map', ...T, name: 'service-ips' }));
    t = (await f.list('ip', 'kp'))!;
    expect(t.sets.map((s) => s.elements!.length)).toEqual([0, 0, 1]);
  });

  it('places rules by position, replaces in place keeping the handle', async () => {
    const f = new FakeNft();
    await f.run(base());
    const h = (await f.list('ip', 'kp'))!.rules.find((r) => r.chain === 'svc-a')!.handle;
    await f.run(
      new NftTransaction()
        .insert({ ...T, chain: 'svc-a', rule: 'ip saddr 10.180.0.1 jump services' })
        .add({ kind: 'rule', ...T, chain: 'svc-a', rule: 'counter', handle: h })
        .insert({ ...T, chain: 'svc-a', rule: 'drop', handle: h })
        .replace({ ...T, chain: 'svc-a', rule: 'meta l4proto tcp dnat to 10.180.0.2:80', handle: h }),
    );
    const rules = (await f.list('ip', 'kp'))!.rules.filter((r) => r.chain === 'svc-a');
    expect(rules.map((r) => [r.text, r.comment])).toEqual([
      ['ip saddr 10.180.0.1 jump services', undefined],
      ['drop', undefined],
      ['meta l4proto tcp dnat to 10.180.0.2:80', undefined],
      ['counter', undefined],
    ]);
    expect(rules[2]!.handle).toBe(h);
  });

  it('rejects element timeouts without the timeout flag, values in sets, wrong key arity, intervals without the flag', async () => {
    const f = new FakeNft();
    await f.run(base());
    const invalid: NftTransaction[] = [
      new NftTransaction().add({ kind: 'element', ...T, set: 'cluster-ips', key: '10.0.0.1', timeout: 5 }),
      new NftTransaction().add({ kind: 'element', ...T, set: 'cluster-ips', key: '10.0.0.1', value: 'drop' }),
      new NftTransaction().add({ kind: 'element', ...T, set: 'service-ips', key: ['10.0.0.1', 'tcp', '80'] }),
      new NftTransaction().add({ kind: 'element', ...T, set: 'service-ips', key: ['10.0.0.1', 'tcp'], value: 'drop' }),
      new NftTransaction().add({ kind: 'element', ...T, set: 'cluster-ips', key: '10.0.0.0/24' }),
    ];
    for (const tx of invalid) expect(await failure(f.run(tx))).toMatch(/Invalid argument/);
    await f.run(
      new NftTransaction()
        .add({ kind: 'set', ...T, name: 'ranges', type: 'ipv4_addr . inet_service', flags: ['interval'] })
        .add({ kind: 'element', ...T, set: 'ranges', key: ['10.0.0.0/24', '1000-2000'] }),
    );
    expect((await f.list('ip', 'kp'))!.sets.find((s) => s.name === 'ranges')!.elements).toEqual([{ key: '10.0.0.0/24 . 1000-2000' }]);
  });

  it('is atomic: a failing transaction changes nothing, and check never changes anything', async () => {
    const f = new FakeNft();
    await f.run(base());
    const before = f.dump();
    const tx = new NftTransaction()
      .add({ kind: 'chain', ...T, name: 'new-chain' })
      .add({ kind: 'element', ...T, set: 'cluster-ips', key: '172.30.0.99' })
      .flush({ kind: 'table', family: 'ip', name: 'kp' })
      .delete({ kind: 'chain', ...T, name: 'nope' });
    const stderr = await failure(f.run(tx));
    expect(stderr).toMatch(/^\/dev\/stdin:4:1-\d+: Error: Could not process rule: No such file or directory\ndelete chain ip kp nope\n$/);
    expect(f.dump()).toBe(before);
    expect(await failure(f.check(tx))).toMatch(/No such file/);
    await f.check(new NftTransaction().add({ kind: 'chain', ...T, name: 'new-chain' }));
    expect(f.dump()).toBe(before);
    expect(f.checks).toHaveLength(2);
    expect(await failure(f.run('add chain ip kp\n'))).toMatch(/syntax error/);
  });
});
