import { describe, expect, it } from 'vitest';
import { ExecError } from '../exec.ts';
import { FakeIpset, IpsetInputError, IpsetRestore, ipPortEntry, ipPortIpEntry, ipPortNetEntry, parseIpsetSave } from './ipset.ts';

describe('IpsetRestore', () => {
  it("renders kube-proxy's IPVS-mode sets and their commands", () => {
    const r = new IpsetRestore()
      .create({ name: 'KUBE-CLUSTER-IP', type: 'hash:ip,port', hashsize: 1024, maxelem: 65536 }, { exist: true })
      .create({ name: 'KUBE-LOOP-BACK', type: 'hash:ip,port,ip', family: 'inet6' })
      .create({ name: 'KUBE-LOAD-BALANCER-SOURCE-CIDR', type: 'hash:ip,port,net', comment: true })
      .create({ name: 'KUBE-NODE-PORT-TCP', type: 'bitmap:port' })
      .create({ name: 'KUBE-IPVS-IPS', type: 'hash:ip', timeout: 0 })
      .create({ name: 'SRC', type: 'hash:net' })
      .add('KUBE-CLUSTER-IP', ipPortEntry('10.96.0.1', 'tcp', 443), { exist: true })
      .add('KUBE-LOOP-BACK', ipPortIpEntry('fd00::5', 'udp', 53, 'fd00::5'))
      .add('KUBE-LOAD-BALANCER-SOURCE-CIDR', ipPortNetEntry('5.6.7.8', 'tcp', 80, '203.0.113.0/25'), { comment: 'ns5/svc5:p80' })
      .add('KUBE-NODE-PORT-TCP', '30080')
      .add('KUBE-IPVS-IPS', '10.96.0.1', { timeout: 60 })
      .del('KUBE-CLUSTER-IP', ipPortEntry('10.96.0.2', 'tcp', 80), { exist: true })
      .swap('SRC', 'KUBE-IPVS-IPS')
      .flush('SRC')
      .destroy('SRC')
      .flush()
      .destroy();
    expect(r.render().split('\n')).toEqual([
      'create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536 -exist',
      'create KUBE-LOOP-BACK hash:ip,port,ip family inet6',
      'create KUBE-LOAD-BALANCER-SOURCE-CIDR hash:ip,port,net family inet comment',
      'create KUBE-NODE-PORT-TCP bitmap:port range 0-65535',
      'create KUBE-IPVS-IPS hash:ip family inet timeout 0',
      'create SRC hash:net family inet',
      'add KUBE-CLUSTER-IP 10.96.0.1,tcp:443 -exist',
      'add KUBE-LOOP-BACK fd00::5,udp:53,fd00::5',
      'add KUBE-LOAD-BALANCER-SOURCE-CIDR 5.6.7.8,tcp:80,203.0.113.0/25 comment "ns5/svc5:p80"',
      'add KUBE-NODE-PORT-TCP 30080',
      'add KUBE-IPVS-IPS 10.96.0.1 timeout 60',
      'del KUBE-CLUSTER-IP 10.96.0.2,tcp:80 -exist',
      'swap SRC KUBE-IPVS-IPS',
      'flush SRC',
      'destroy SRC',
      'flush',
      'destroy',
      '',
    ]);
  });
  it('rejects names, entries and options ipset would not take', () => {
    const bad: (() => unknown)[] = [
      () => new IpsetRestore().create({ name: 'X'.repeat(32), type: 'hash:ip' }),
      () => new IpsetRestore().create({ name: 'a b', type: 'hash:ip' }),
      () => new IpsetRestore().create({ name: 'P', type: 'bitmap:port', family: 'inet' }),
      () => new IpsetRestore().create({ name: 'P', type: 'hash:ip', range: '0-10' }),
      () => new IpsetRestore().create({ name: 'P', type: 'hash:ip', hashsize: -1 }),
      () => new IpsetRestore().add('P', '1.2.3.4 timeout 5'),
      () => new IpsetRestore().add('P', '1.2.3.4', { comment: 'a"b' }),
      () => new IpsetRestore().add('P', '1.2.3.4', { timeout: 1.5 }),
    ];
    for (const f of bad) expect(f).toThrow(IpsetInputError);
  });
});

describe('parseIpsetSave', () => {
  // Captured from `ipset save` (ipset 7.17).
  const saved = `create A hash:ip family inet hashsize 1024 maxelem 65536 timeout 0 comment bucketsize 12 initval 0x947c420e
add A 10.0.0.1 timeout 99 comment "a b"
add A 10.0.0.2 timeout 0
create D hash:ip,port,net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x7a391277
add D 10.0.0.1,tcp:81,10.0.0.5
add D 10.0.0.1,tcp:80,10.0.0.0/24
create F bitmap:port range 0-65535
add F 30080
`;
  it('reads sets, options and entries with timeouts and comments', () => {
    const sets = parseIpsetSave(saved);
    expect(sets.map((s) => [s.name, s.type])).toEqual([['A', 'hash:ip'], ['D', 'hash:ip,port,net'], ['F', 'bitmap:port']]);
    expect(sets[0]!.options).toEqual({ family: 'inet', hashsize: '1024', maxelem: '65536', timeout: '0', comment: '', bucketsize: '12', initval: '0x947c420e' });
    expect(sets[0]!.entries).toEqual([{ entry: '10.0.0.1', timeout: 99, comment: 'a b' }, { entry: '10.0.0.2', timeout: 0 }]);
    expect(sets[2]!.options).toEqual({ range: '0-65535' });
    // hash:net exceptions (netpolicy's ipBlock except), in the parser and the fake.
    expect(parseIpsetSave('create B hash:net family inet\nadd B 10.0.0.0/8\nadd B 10.2.0.0/16 nomatch\n')[0]!.entries).toEqual([{ entry: '10.0.0.0/8' }, { entry: '10.2.0.0/16', nomatch: true }]);
    expect(() => parseIpsetSave('add NOPE 1.2.3.4\n')).toThrow(/line 1/);
    expect(() => parseIpsetSave('bogus\n')).toThrow(/line 1/);
  });
});

describe('FakeIpset', () => {
  const setup = new IpsetRestore()
    .create({ name: 'A', type: 'hash:ip', timeout: 0, comment: true })
    .create({ name: 'B', type: 'hash:ip,port' })
    .create({ name: 'N', type: 'hash:net' })
    .create({ name: 'P', type: 'bitmap:port' })
    .add('A', '10.0.0.1', { timeout: 100, comment: 'a b' })
    .add('A', '10.0.0.2')
    .add('B', '10.0.0.2,80')
    .add('N', '10.0.0.5/32')
    .add('P', '30080');
  async function failure(p: Promise<unknown>): Promise<string> {
    const err = await p.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ExecError);
    return (err as ExecError).stderr;
  }
  it('canonicalizes entries the way ipset save prints them', async () => {
    const f = new FakeIpset();
    await f.restore(setup);
    expect(f.save()).toBe(
      [
        'create A hash:ip family inet hashsize 1024 maxelem 65536 timeout 0 comment',
        'add A 10.0.0.1 timeout 100 comment "a b"',
        'add A 10.0.0.2 timeout 0',
        'create B hash:ip,port family inet hashsize 1024 maxelem 65536',
        'add B 10.0.0.2,tcp:80',
        'create N hash:net family inet hashsize 1024 maxelem 65536',
        'add N 10.0.0.5',
        'create P bitmap:port range 0-65535',
        'add P 30080',
        '',
      ].join('\n'),
    );
    expect(parseIpsetSave(f.save())).toEqual(await f.list());
  });
  it('keeps nomatch entries of hash:net sets, and refuses them elsewhere', async () => {
    const f = new FakeIpset();
    await f.restore('create N hash:net family inet\nadd N 10.0.0.0/8\nadd N 10.2.0.0/16 nomatch\ncreate I hash:ip family inet\n');
    expect(f.save()).toContain('add N 10.2.0.0/16 nomatch\n');
    expect(parseIpsetSave(f.save())).toEqual(await f.list());
    expect(await failure(f.restore('add I 10.0.0.1 nomatch\n'))).toMatch(/nomatch/);
  });
  it('fails with ipset 7.17 messages, keeping the lines before the failing one', async () => {
    const f = new FakeIpset();
    await f.restore(setup);
    expect(await failure(f.restore(new IpsetRestore().add('A', '10.0.0.3').add('A', '10.0.0.2')))).toBe("ipset v7.17: Error in line 2: Element cannot be added to the set: it's already added\n");
    expect((await f.list('A'))[0]!.entries.map((e) => e.entry)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    const cases: [string, RegExp][] = [
      ['create A hash:ip\n', /Set cannot be created: set with the same name already exists/],
      ['add Z 1.1.1.1\n', /The set with the given name does not exist/],
      ['del A 10.0.0.77\n', /Element cannot be deleted from the set: it's not added/],
      ['destroy Z\n', /The set with the given name does not exist/],
      ['swap A B\n', /The sets cannot be swapped: their type does not match/],
      ['add B 10.0.0.1,tcp:80 timeout 5\n', /Timeout cannot be used: set was created without timeout support/],
      ['add B 10.0.0.1\n', /Second element is missing/],
      ['add P 70000\n', /out of range/],
    ];
    for (const [text, re] of cases) expect(await failure(f.restore(text))).toMatch(re);
    await expect(f.list('Z')).rejects.toThrow(/does not exist/);
  });
  it('-exist ignores existing sets and entries and missing entries, not type clashes', async () => {
    const f = new FakeIpset();
    await f.restore(setup);
    await f.restore('create A hash:ip\nadd A 10.0.0.2\ndel A 10.0.0.99\n', { exist: true });
    await f.restore('add B 10.0.0.2,tcp:80 -exist\n');
    expect(await failure(f.restore('create A hash:net\n', { exist: true }))).toMatch(/same name already exists/);
    expect(f.restores.map((r) => r.exist)).toEqual([false, true, false, true]);
  });
  it('swaps, flushes and destroys', async () => {
    const f = new FakeIpset();
    await f.restore(setup);
    await f.restore(new IpsetRestore().create({ name: 'A2', type: 'hash:ip', timeout: 0, comment: true }).add('A2', '192.0.2.1').swap('A2', 'A').destroy('A2').flush('B'));
    expect((await f.list()).map((s) => [s.name, s.entries.map((e) => e.entry)])).toEqual([['A', ['192.0.2.1']], ['B', []], ['N', ['10.0.0.5']], ['P', ['30080']]]);
    await f.restore(new IpsetRestore().flush().destroy());
    expect(await f.list()).toEqual([]);
  });
});
