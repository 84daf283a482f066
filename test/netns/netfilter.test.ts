// lib/netfilter against the real tools (nft 1.0.6, ipset 7.17, conntrack
// 1.4.7, iptables-nft 1.8.9), each run inside a namespace this suite creates
// (the runners use nsenter), and the fakes against the same sequences.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecError, run } from '../../lib/exec.ts';
import { IPAddr } from '../../lib/ip/index.ts';
import { FakeConntrack, RealConntrack, type Conntrack, type ConntrackEntry } from '../../lib/netfilter/conntrack.ts';
import { FakeIptables, RealIptables, RestoreBuilder, parseIptablesSave, type IptablesRestore } from '../../lib/netfilter/iptables.ts';
import { FakeIpset, IpsetRestore, RealIpset, ipPortEntry, ipPortIpEntry, ipPortNetEntry, type Ipset, type IpsetInfo } from '../../lib/netfilter/ipset.ts';
import { FakeNft, NftTransaction, RealNft, gotoChain, type NftFamily, type NftRunner, type NftTableInfo } from '../../lib/netfilter/nft.ts';
import { createNamedNetns, deleteNamedNetns } from '../../lib/netns/index.ts';

const prefix = `knf${randomBytes(3).toString('hex')}`;
const created: string[] = [];
let seq = 0;

function newNs(): string {
  const name = `${prefix}-${seq++}`;
  const path = createNamedNetns(name);
  created.push(name);
  return path;
}

afterAll(() => {
  for (const n of created) deleteNamedNetns(n);
});

beforeAll(async () => {
  // Without the real tools this suite would test nothing.
  for (const tool of ['nft', 'ipset', 'conntrack', 'iptables-restore']) await run(tool, ['--version']);
});

async function failure(p: Promise<unknown>): Promise<ExecError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ExecError);
  return err as ExecError;
}

// ---------------------------------------------------------------------------
// nft

const T = { family: 'ip' as NftFamily, table: 'kube-proxy' };
const T6 = { family: 'ip6' as NftFamily, table: 'kube-proxy' };
const SVC = 'service-ULMVA6XW-ns1/svc1/tcp/p80';
const EP1 = 'endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80';
const EP2 = 'endpoint-UNZV3OEC-ns1/svc1/tcp/p80__10.180.0.2/80';

/** kube-proxy's nftables layout in small: concatenated verdict maps, typeof, timeouts, base chains at priority expressions. */
function kubeProxyBase(): NftTransaction {
  const tx = new NftTransaction()
    .add({ kind: 'table', family: 'ip', name: 'kube-proxy', comment: 'rules for kube-proxy' })
    .add({ kind: 'set', ...T, name: 'cluster-ips', type: 'ipv4_addr', comment: 'Active ClusterIPs' })
    .add({ kind: 'map', ...T, name: 'service-ips', type: 'ipv4_addr . inet_proto . inet_service : verdict', comment: 'ClusterIP, ExternalIP and LoadBalancer IP traffic' })
    .add({ kind: 'map', ...T, name: 'service-nodeports', type: 'inet_proto . inet_service : verdict', comment: 'NodePort traffic' })
    .add({ kind: 'map', ...T, name: 'no-endpoint-services', typeof: 'ip daddr . meta l4proto . th dport : verdict', flags: ['timeout'] })
    .add({ kind: 'set', ...T, name: 'src-ranges', type: 'ipv4_addr . inet_proto . inet_service', flags: ['interval'], size: 65535 })
    .add({ kind: 'chain', ...T, name: 'filter-prerouting-pre-dnat', type: 'filter', hook: 'prerouting', priority: 'dstnat - 10' })
    .add({ kind: 'chain', ...T, name: 'nat-prerouting', type: 'nat', hook: 'prerouting', priority: 'dstnat' })
    .add({ kind: 'chain', ...T, name: 'filter-input', type: 'filter', hook: 'input', priority: 0, policy: 'accept' })
    .add({ kind: 'chain', ...T, name: 'services' })
    .add({ kind: 'chain', ...T, name: 'reject-chain', comment: 'helper for @no-endpoint-services' })
    .add({ kind: 'chain', ...T, name: SVC })
    .add({ kind: 'chain', ...T, name: EP1 })
    .add({ kind: 'chain', ...T, name: EP2 })
    .add({ kind: 'rule', ...T, chain: 'nat-prerouting', rule: 'jump services' })
    .add({ kind: 'rule', ...T, chain: 'services', rule: 'ip daddr . meta l4proto . th dport vmap @service-ips' })
    .add({ kind: 'rule', ...T, chain: 'services', rule: 'meta l4proto . th dport vmap @service-nodeports', comment: 'nodeports' })
    .add({ kind: 'rule', ...T, chain: 'reject-chain', rule: 'drop' })
    .add({ kind: 'rule', ...T, chain: SVC, rule: `numgen random mod 2 vmap { 0 : goto ${EP1}, 1 : goto ${EP2} }` })
    .add({ kind: 'rule', ...T, chain: EP1, rule: 'meta l4proto tcp dnat to 10.180.0.1:80' })
    .add({ kind: 'rule', ...T, chain: EP2, rule: 'meta l4proto tcp dnat to 10.180.0.2:80' })
    .add({ kind: 'element', ...T, set: 'cluster-ips', key: '172.30.0.41' })
    .add({ kind: 'element', ...T, set: 'service-ips', key: ['172.30.0.41', 'tcp', '80'], value: gotoChain(SVC) })
    .add({ kind: 'element', ...T, set: 'service-nodeports', key: ['tcp', '30080'], value: gotoChain(SVC) })
    .add({ kind: 'element', ...T, set: 'no-endpoint-services', key: ['172.30.0.46', 'udp', '53'], value: gotoChain('reject-chain'), comment: 'ns6/svc6:dns', timeout: 3600 })
    .add({ kind: 'element', ...T, set: 'src-ranges', key: ['203.0.113.0/25', 'tcp', '80'] });
  // And the IPv6 twin's map, with IPv6 keys.
  return tx
    .add({ kind: 'table', family: 'ip6', name: 'kube-proxy' })
    .add({ kind: 'chain', ...T6, name: 'svc6' })
    .add({ kind: 'map', ...T6, name: 'service-ips', type: 'ipv6_addr . inet_proto . inet_service : verdict' })
    .add({ kind: 'element', ...T6, set: 'service-ips', key: ['fd00:30::41', 'udp', '53'], value: gotoChain('svc6') });
}

/** What real and fake must agree on (handles and the kernel's countdown `expires` aside). */
function shape(tables: NftTableInfo[]) {
  return tables
    .map((t) => ({
      table: `${t.family} ${t.name}`,
      comment: t.comment,
      chains: t.chains.map((c) => ({ name: c.name, type: c.type, hook: c.hook, prio: c.prio, policy: c.policy })).sort((a, b) => a.name.localeCompare(b.name)),
      rules: t.rules.map((r) => [r.chain, r.text, r.comment]).sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      sets: t.sets
        .map((s) => ({
          name: s.name,
          kind: s.kind,
          keyType: s.keyType,
          valueType: s.valueType,
          flags: [...(s.flags ?? [])].sort(),
          comment: s.comment,
          elements: [...(s.elements ?? [])].sort((a, b) => a.key.localeCompare(b.key)),
        }))
        .sort((a, b) => a.name.localeCompare(b.name)),
    }))
    .sort((a, b) => a.table.localeCompare(b.table));
}

async function bothRun(real: NftRunner, fake: FakeNft, tx: NftTransaction | string): Promise<void> {
  await real.run(tx);
  await fake.run(tx);
}

describe('nft', () => {
  it('creates tables, concatenated sets and verdict maps exactly as the fake models them', async () => {
    const real = new RealNft({ netns: newNs() });
    const fake = new FakeNft();
    await real.check(kubeProxyBase());
    expect(await real.listRuleset()).toEqual([]); // check mode applied nothing
    await bothRun(real, fake, kubeProxyBase());
    const listed = await real.listRuleset();
    expect(shape(listed)).toEqual(shape(await fake.listRuleset()));
    const t = listed.find((x) => x.family === 'ip')!;
    expect(t.chains.find((c) => c.name === 'filter-prerouting-pre-dnat')!.prio).toBe(-110);
    expect(t.sets.find((s) => s.name === 'no-endpoint-services')!.elements).toEqual([{ key: '172.30.0.46 . udp . 53', value: 'goto reject-chain', timeout: 3600, comment: 'ns6/svc6:dns' }]);
    expect(t.rules.find((r) => r.chain === SVC)!.text).toBe(`numgen random mod 2 vmap { 0 : goto ${EP1}, 1 : goto ${EP2} }`);
    // Running the same add transaction again changes no object (rules are appended again, on both).
    await bothRun(real, fake, kubeProxyBase());
    expect(shape(await real.listRuleset())).toEqual(shape(await fake.listRuleset()));
  });

  it('fails like the fake on create of existing and delete of missing objects, atomically', async () => {
    const real = new RealNft({ netns: newNs() });
    const fake = new FakeNft();
    await bothRun(real, fake, kubeProxyBase());
    const before = shape(await real.listRuleset());
    const cases: [NftTransaction, RegExp][] = [
      [new NftTransaction().create({ kind: 'table', family: 'ip', name: 'kube-proxy' }), /File exists/],
      [new NftTransaction().create({ kind: 'chain', ...T, name: 'services' }), /File exists/],
      [new NftTransaction().add({ kind: 'element', ...T, set: 'cluster-ips', key: '172.30.0.99' }).create({ kind: 'element', ...T, set: 'cluster-ips', key: '172.30.0.41' }), /File exists/],
      [new NftTransaction().add({ kind: 'element', ...T, set: 'service-ips', key: ['172.30.0.41', 'tcp', '80'], value: 'drop' }), /File exists/],
      [new NftTransaction().add({ kind: 'set', ...T, name: 'cluster-ips', type: 'ipv6_addr' }), /File exists/],
      [new NftTransaction().add({ kind: 'chain', ...T, name: 'fresh' }).delete({ kind: 'chain', ...T, name: 'nope' }), /No such file or directory/],
      [new NftTransaction().delete({ kind: 'element', ...T, set: 'cluster-ips', key: '10.9.9.9' }), /No such file or directory/],
      [new NftTransaction().flush({ kind: 'table', family: 'ip', name: 'kube-proxy' }).add({ kind: 'rule', ...T, chain: 'services', rule: 'goto nowhere' }), /No such file or directory/],
      [new NftTransaction().add({ kind: 'element', ...T, set: 'service-ips', key: ['10.0.0.1', 'tcp', '1'], value: 'goto nowhere' }), /No such file or directory/],
      [new NftTransaction().delete({ kind: 'chain', ...T, name: SVC }), /Device or resource busy/],
      [new NftTransaction().add({ kind: 'element', ...T, set: 'cluster-ips', key: '10.0.0.1', timeout: 5 }), /Invalid argument/],
    ];
    for (const [tx, re] of cases) {
      expect((await failure(real.run(tx))).stderr).toMatch(re);
      expect((await failure(fake.run(tx))).stderr).toMatch(re);
      expect(shape(await real.listRuleset())).toEqual(before);
      expect(shape(await fake.listRuleset())).toEqual(before);
    }
  });

  it('destroys present and missing objects alike (emulated for nft 1.0.6), flushes tables keeping elements', async () => {
    const real = new RealNft({ netns: newNs() });
    const fake = new FakeNft();
    await bothRun(real, fake, kubeProxyBase());
    const destroy = new NftTransaction()
      .destroy({ kind: 'chain', ...T, name: 'not-there' })
      .destroy({ kind: 'set', ...T, name: 'not-there', type: 'ipv4_addr' })
      .destroy({ kind: 'element', ...T, set: 'cluster-ips', key: '10.9.9.9' })
      .destroy({ kind: 'element', ...T, set: 'cluster-ips', key: '172.30.0.41' })
      .destroy({ kind: 'element', ...T, set: 'service-nodeports', key: ['tcp', '30080'], value: gotoChain(SVC) })
      .destroy({ kind: 'table', family: 'inet', name: 'never-made' })
      .flush({ kind: 'table', family: 'ip', name: 'kube-proxy' })
      // Unreferenced once the table's rules are gone; reject-chain is not (a map element goes to it).
      .destroy({ kind: 'chain', ...T, name: EP1 });
    await real.check(destroy);
    await bothRun(real, fake, destroy);
    await bothRun(real, fake, destroy); // and again, with everything already gone
    const after = shape(await real.listRuleset());
    expect(after).toEqual(shape(await fake.listRuleset()));
    const ip = after.find((t) => t.table === 'ip kube-proxy')!;
    expect(ip.rules).toEqual([]);
    expect(ip.chains.map((c) => c.name)).not.toContain(EP1);
    expect((await failure(real.run(new NftTransaction().destroy({ kind: 'chain', ...T, name: 'reject-chain' })))).stderr).toMatch(/Device or resource busy/);
    expect((await failure(fake.run(new NftTransaction().destroy({ kind: 'chain', ...T, name: 'reject-chain' })))).stderr).toMatch(/Device or resource busy/);
    expect(ip.sets.find((s) => s.name === 'cluster-ips')!.elements).toEqual([]);
    expect(ip.sets.find((s) => s.name === 'service-ips')!.elements).toHaveLength(1);
    await bothRun(real, fake, new NftTransaction().destroy({ kind: 'table', family: 'ip', name: 'kube-proxy' }).destroy({ kind: 'table', family: 'ip6', name: 'kube-proxy' }));
    expect(await real.listRuleset()).toEqual([]);
    expect(fake.dump()).toBe('');
  });

  it('inserts, appends after and replaces rules by handle as the fake does', async () => {
    const real = new RealNft({ netns: newNs() });
    const fake = new FakeNft();
    const setup = new NftTransaction()
      .add({ kind: 'table', family: 'inet', name: 'np' })
      .add({ kind: 'chain', family: 'inet', table: 'np', name: 'c' })
      .add({ kind: 'rule', family: 'inet', table: 'np', chain: 'c', rule: 'tcp dport 22 accept', comment: 'ssh' })
      .add({ kind: 'rule', family: 'inet', table: 'np', chain: 'c', rule: 'udp dport 53 accept' });
    await bothRun(real, fake, setup);
    const handleOf = async (n: NftRunner, text: string) => (await n.list('inet', 'np'))!.rules.find((r) => r.text === text)!.handle;
    for (const n of [real, fake] as NftRunner[]) {
      const h = await handleOf(n, 'tcp dport 22 accept');
      await n.run(
        new NftTransaction()
          .replace({ family: 'inet', table: 'np', chain: 'c', rule: 'tcp dport 2222 accept', comment: 'ssh moved', handle: h })
          .add({ kind: 'rule', family: 'inet', table: 'np', chain: 'c', rule: 'tcp dport 25 accept', handle: h })
          .insert({ family: 'inet', table: 'np', chain: 'c', rule: 'tcp dport 24 accept', handle: await handleOf(n, 'udp dport 53 accept') })
          .insert({ family: 'inet', table: 'np', chain: 'c', rule: 'tcp dport 1 drop' }),
      );
      expect(await handleOf(n, 'tcp dport 2222 accept')).toBe(h);
    }
    const rules = async (n: NftRunner) => (await n.list('inet', 'np'))!.rules.map((r) => [r.text, r.comment]);
    expect(await rules(real)).toEqual([
      ['tcp dport 1 drop', undefined],
      ['tcp dport 2222 accept', 'ssh moved'],
      ['tcp dport 25 accept', undefined],
      ['tcp dport 24 accept', undefined],
      ['udp dport 53 accept', undefined],
    ]);
    expect(await rules(fake)).toEqual(await rules(real));
  });

  it('check mode rejects bad input and applies nothing', async () => {
    const real = new RealNft({ netns: newNs() });
    const fake = new FakeNft();
    await bothRun(real, fake, kubeProxyBase());
    const before = shape(await real.listRuleset());
    const bad = [
      'add chain ip kube-proxy "quoted name"\n',
      'add rule ip kube-proxy services jump nowhere\n',
      new NftTransaction().create({ kind: 'set', ...T, name: 'cluster-ips', type: 'ipv4_addr' }),
      new NftTransaction().add({ kind: 'element', ...T, set: 'service-ips', key: ['172.30.0.41', 'tcp'], value: 'drop' }),
    ];
    for (const tx of bad) {
      await failure(real.check(tx));
      await failure(fake.check(tx));
    }
    await real.check(new NftTransaction().add({ kind: 'chain', ...T, name: 'would-be' }));
    await fake.check(new NftTransaction().add({ kind: 'chain', ...T, name: 'would-be' }));
    expect(shape(await real.listRuleset())).toEqual(before);
    expect(shape(await fake.listRuleset())).toEqual(before);
    expect(await real.list('ip', 'missing')).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------
// ipset

/** What real and fake must agree on: the kernel adds bucketsize/initval and lists entries in hash order. */
function ipsetShape(sets: IpsetInfo[]) {
  return sets
    .map((s) => {
      const { bucketsize: _b, initval: _i, ...options } = s.options;
      return { name: s.name, type: s.type, options, entries: s.entries.map((e) => ({ ...e, timeout: e.timeout === undefined ? undefined : e.timeout > 0 })).sort((a, b) => a.entry.localeCompare(b.entry)) };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

const ipvsSets = (): IpsetRestore =>
  new IpsetRestore()
    .create({ name: 'KUBE-CLUSTER-IP', type: 'hash:ip,port', hashsize: 1024, maxelem: 65536 })
    .create({ name: 'KUBE-LOOP-BACK', type: 'hash:ip,port,ip' })
    .create({ name: 'KUBE-LB-SRC-CIDR', type: 'hash:ip,port,net', comment: true })
    .create({ name: 'KUBE-NODE-PORT-TCP', type: 'bitmap:port' })
    .create({ name: 'KUBE-IPVS-IPS', type: 'hash:ip', timeout: 0 })
    .create({ name: 'KUBE-6', type: 'hash:net', family: 'inet6' })
    .add('KUBE-CLUSTER-IP', ipPortEntry('10.96.0.1', 'tcp', 443))
    .add('KUBE-CLUSTER-IP', '10.96.0.10,53')
    .add('KUBE-LOOP-BACK', ipPortIpEntry('10.244.1.5', 'udp', 53, '10.244.1.5'))
    .add('KUBE-LB-SRC-CIDR', ipPortNetEntry('5.6.7.8', 'tcp', 80, '203.0.113.0/25'), { comment: 'ns5/svc5:p80' })
    .add('KUBE-LB-SRC-CIDR', ipPortNetEntry('5.6.7.8', 'tcp', 80, '203.0.113.200/32'))
    .add('KUBE-NODE-PORT-TCP', '30080')
    .add('KUBE-IPVS-IPS', '10.96.0.1', { timeout: 600 })
    .add('KUBE-IPVS-IPS', '10.96.0.10')
    .add('KUBE-6', 'fd00:30::/64')
    .add('KUBE-6', 'fd00:31::1/128');

describe('ipset', () => {
  it('restores and saves the IPVS-mode set types as the fake does', async () => {
    const real = new RealIpset({ netns: newNs() });
    const fake = new FakeIpset();
    for (const s of [real, fake] as Ipset[]) await s.restore(ipvsSets());
    const listed = await real.list();
    expect(ipsetShape(listed)).toEqual(ipsetShape(await fake.list()));
    expect(listed.find((s) => s.name === 'KUBE-CLUSTER-IP')!.entries.map((e) => e.entry).sort()).toEqual(['10.96.0.1,tcp:443', '10.96.0.10,tcp:53']);
    expect(ipsetShape(await real.list('KUBE-LB-SRC-CIDR'))).toEqual(ipsetShape(await fake.list('KUBE-LB-SRC-CIDR')));
    await failure(real.list('NOPE'));
    await failure(fake.list('NOPE'));
  });

  it('fails on the same lines, leaves earlier lines applied, and -exist forgives', async () => {
    const real = new RealIpset({ netns: newNs() });
    const fake = new FakeIpset();
    for (const s of [real, fake] as Ipset[]) await s.restore(ipvsSets());
    const failing = [
      new IpsetRestore().add('KUBE-IPVS-IPS', '10.96.0.20').add('KUBE-IPVS-IPS', '10.96.0.10'),
      new IpsetRestore().create({ name: 'KUBE-CLUSTER-IP', type: 'hash:ip' }),
      new IpsetRestore().add('KUBE-MISSING', '1.1.1.1'),
      new IpsetRestore().del('KUBE-IPVS-IPS', '10.96.0.77'),
      new IpsetRestore().add('KUBE-CLUSTER-IP', '10.96.0.3,tcp:80', { timeout: 5 }),
      new IpsetRestore().swap('KUBE-CLUSTER-IP', 'KUBE-IPVS-IPS'),
    ];
    for (const r of failing) {
      const [a, b] = [await failure(real.restore(r)), await failure(fake.restore(r))];
      expect(b.stderr).toBe(a.stderr);
    }
    const forgiven = new IpsetRestore()
      .create({ name: 'KUBE-CLUSTER-IP', type: 'hash:ip,port' })
      .add('KUBE-IPVS-IPS', '10.96.0.10')
      .del('KUBE-IPVS-IPS', '10.96.0.77');
    for (const s of [real, fake] as Ipset[]) {
      await s.restore(forgiven, { exist: true });
      await s.restore('add KUBE-NODE-PORT-TCP 30080 -exist\n');
    }
    expect(ipsetShape(await real.list())).toEqual(ipsetShape(await fake.list()));
    expect((await real.list('KUBE-IPVS-IPS'))[0]!.entries.map((e) => e.entry).sort()).toEqual(['10.96.0.1', '10.96.0.10', '10.96.0.20']);
  });

  it('swaps a rebuilt set into place, flushes and destroys', async () => {
    const real = new RealIpset({ netns: newNs() });
    const fake = new FakeIpset();
    const rebuild = new IpsetRestore()
      .create({ name: 'KUBE-CLUSTER-IP-tmp', type: 'hash:ip,port' })
      .add('KUBE-CLUSTER-IP-tmp', ipPortEntry('10.96.0.99', 'udp', 53))
      .swap('KUBE-CLUSTER-IP-tmp', 'KUBE-CLUSTER-IP')
      .destroy('KUBE-CLUSTER-IP-tmp')
      .flush('KUBE-LOOP-BACK')
      .destroy('KUBE-6');
    for (const s of [real, fake] as Ipset[]) {
      await s.restore(ipvsSets());
      await s.restore(rebuild);
    }
    const listed = await real.list();
    expect(ipsetShape(listed)).toEqual(ipsetShape(await fake.list()));
    expect(listed.find((s) => s.name === 'KUBE-CLUSTER-IP')!.entries).toEqual([{ entry: '10.96.0.99,udp:53' }]);
    for (const s of [real, fake] as Ipset[]) await s.restore(new IpsetRestore().flush().destroy());
    expect(await real.list()).toEqual([]);
    expect(await fake.list()).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// conntrack

const ip = IPAddr.mustParse;
type Insert = Parameters<RealConntrack['insert']>[0];
const udp = (src: string, dst: string, sport: number, dport: number, replySrc = dst): Insert => ({
  proto: 'udp',
  timeout: 120,
  orig: { src: ip(src), dst: ip(dst), sport, dport },
  reply: { src: ip(replySrc), dst: ip(src), sport: dport, dport: sport },
});
const flows = (entries: ConntrackEntry[]) => entries.map((e) => `${e.proto} ${e.orig.src}:${e.orig.sport} > ${e.orig.dst}:${e.orig.dport} reply from ${e.reply.src}`).sort();

describe('conntrack', () => {
  it('deletes UDP entries by original destination and port, and by reply source, in both families', async () => {
    const real = new RealConntrack({ netns: newNs() });
    const fake = new FakeConntrack();
    const entries: Insert[] = [
      udp('198.51.100.1', '198.51.100.10', 40000, 53), // a "service IP" flow, no DNAT
      udp('198.51.100.1', '198.51.100.10', 40001, 5353),
      udp('198.51.100.2', '198.51.100.11', 40002, 53, '198.51.100.20'), // DNATed to an endpoint
      udp('198.51.100.3', '198.51.100.12', 40003, 53, '198.51.100.20'),
      { ...udp('198.51.100.1', '198.51.100.10', 40004, 53), proto: 'tcp', state: 'ESTABLISHED' },
      udp('fd00::1', 'fd00::10', 40005, 53),
      udp('fd00::2', 'fd00::11', 40006, 53, 'fd00::20'),
    ];
    for (const c of [real, fake]) for (const e of entries) await c.insert(e);
    expect(flows(await real.list(4))).toEqual(flows(await fake.list(4)));
    const steps: [Parameters<Conntrack['delete']>[0], number][] = [
      [{ proto: 'udp', origDst: ip('198.51.100.10'), origDstPort: 53 }, 1],
      [{ proto: 'udp', origDst: ip('198.51.100.10'), origDstPort: 53 }, 0], // nothing left: exit 1, not an error
      [{ proto: 'udp', replySrc: ip('198.51.100.20') }, 2],
      [{ proto: 'udp', origDst: ip('fd00::10') }, 1],
      [{ proto: 'udp', replySrc: ip('fd00::20') }, 1],
      [{ proto: 'udp', replySrc: ip('fd00::99') }, 0],
    ];
    for (const [filter, n] of steps) {
      expect(await real.delete(filter)).toBe(n);
      expect(await fake.delete(filter)).toBe(n);
    }
    for (const family of [4, 6] as const) expect(flows(await real.list(family))).toEqual(flows(await fake.list(family)));
    expect(flows(await real.list(4))).toEqual(['tcp 198.51.100.1:40004 > 198.51.100.10:53 reply from 198.51.100.10', 'udp 198.51.100.1:40001 > 198.51.100.10:5353 reply from 198.51.100.10']);
    expect(await real.list(6)).toEqual([]);
    expect(await real.list(4, 'udp')).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------
// iptables-restore --counters / --noflush / lock wait

describe('iptables-restore', () => {
  it('restores [pkts:bytes] with --counters under --noflush and the xtables lock flags, as the fake does', async () => {
    const path = newNs();
    const real = new RealIptables({ netns: path, waitSeconds: 5, waitIntervalUsec: 100000 });
    const fake = new FakeIptables();
    const b = new RestoreBuilder();
    b.table('filter')
      .chain('INPUT', 'ACCEPT', { packets: 5, bytes: 600 })
      .chain('KUBE-FIREWALL')
      .append('INPUT', ['-j', 'KUBE-FIREWALL'], { packets: 7, bytes: 800 })
      .append('KUBE-FIREWALL', ['-s', '198.51.100.1', '-j', 'DROP']);
    b.table('nat').chain('KUBE-SERVICES').append('KUBE-SERVICES', ['-d', '10.96.0.1/32', '-p', 'tcp', '-m', 'tcp', '--dport', '443', '-j', 'RETURN']);
    const later = new RestoreBuilder();
    later.table('filter').chain('KUBE-FIREWALL').append('KUBE-FIREWALL', ['-s', '198.51.100.2', '-j', 'DROP'], { packets: 1, bytes: 1 });
    for (const ipt of [real, fake] as IptablesRestore[]) {
      await ipt.restore('ip', b.render(), { noflush: true, counters: true });
      // Without --counters the rule's prefix is ignored; redeclaring the chain flushes it.
      await ipt.restore('ip', later.render(), { noflush: true });
    }
    const normalized = async (ipt: IptablesRestore, table: string) => {
      const d = parseIptablesSave(await ipt.save('ip', table, { counters: true }));
      return { chains: [...d.table(table)!.chains.values()], rules: d.rules(table) };
    };
    for (const table of ['filter', 'nat']) expect(await normalized(real, table)).toEqual(await normalized(fake, table));
    const filter = await normalized(real, 'filter');
    expect(filter.chains.find((c) => c.name === 'INPUT')!.counters).toEqual({ packets: 5n, bytes: 600n });
    expect(filter.rules.map((r) => [r.line, r.counters])).toEqual([
      ['-A INPUT -j KUBE-FIREWALL', { packets: 7n, bytes: 800n }],
      ['-A KUBE-FIREWALL -s 198.51.100.2/32 -j DROP', { packets: 0n, bytes: 0n }],
    ]);
    // ip6tables-restore: its own tables; it restores chain policy counters
    // but (iptables-nft 1.8.9) not rule counters, and the fake says so too.
    const six = new RestoreBuilder();
    six.table('filter').chain('INPUT', 'ACCEPT', { packets: 8, bytes: 9 }).append('INPUT', ['-d', 'fd00:96::1/128', '-j', 'RETURN'], { packets: 3, bytes: 4 });
    for (const ipt of [real, fake] as IptablesRestore[]) await ipt.restore('ip6', six.render(), { noflush: true, counters: true });
    const dump6 = async (ipt: IptablesRestore) => {
      const d = parseIptablesSave(await ipt.save('ip6', 'filter', { counters: true }));
      return { input: d.table('filter')!.chains.get('INPUT')!.counters, rules: d.rules('filter').map((r) => [r.line, r.counters]) };
    };
    expect(await dump6(real)).toEqual({ input: { packets: 8n, bytes: 9n }, rules: [['-A INPUT -d fd00:96::1/128 -j RETURN', { packets: 0n, bytes: 0n }]] });
    expect(await dump6(fake)).toEqual(await dump6(real));
    expect(parseIptablesSave(await real.save('ip', 'filter')).rules('filter')).toHaveLength(2); // IPv4 untouched
  });
});
