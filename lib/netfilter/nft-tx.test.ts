import { describe, expect, it } from 'vitest';
import { NftInputError, NftTransaction, elementKey, gotoChain, renderDuration, type NftFamily } from './nft.ts';

const T = { family: 'ip' as NftFamily, table: 'kube-proxy' };

describe('NftTransaction verbs', () => {
  it("renders kube-proxy's base objects as its upstream golden test prints them", () => {
    const tx = new NftTransaction()
      .add({ kind: 'table', family: 'ip', name: 'kube-proxy', comment: 'rules for kube-proxy' })
      .add({ kind: 'set', ...T, name: 'cluster-ips', type: 'ipv4_addr', comment: 'Active ClusterIPs' })
      .add({ kind: 'map', ...T, name: 'service-ips', type: 'ipv4_addr . inet_proto . inet_service : verdict', comment: 'ClusterIP, ExternalIP and LoadBalancer IP traffic' })
      .add({ kind: 'chain', ...T, name: 'filter-prerouting-pre-dnat', type: 'filter', hook: 'prerouting', priority: -110 })
      .add({ kind: 'chain', ...T, name: 'reject-chain', comment: 'helper for @no-endpoint-services / @no-endpoint-nodeports' })
      .add({ kind: 'chain', ...T, name: 'services' })
      .add({ kind: 'rule', ...T, chain: 'services', rule: 'ip daddr . meta l4proto . th dport vmap @service-ips' })
      .add({ kind: 'chain', ...T, name: 'service-ULMVA6XW-ns1/svc1/tcp/p80' })
      .add({ kind: 'element', ...T, set: 'cluster-ips', key: '172.30.0.41' })
      .add({ kind: 'element', ...T, set: 'service-ips', key: ['172.30.0.41', 'tcp', '80'], value: gotoChain('service-ULMVA6XW-ns1/svc1/tcp/p80') })
      .add({ kind: 'element', ...T, set: 'service-ips', key: ['1.2.3.4', 'tcp', '80'], comment: 'ns2/svc2:p80', value: 'drop' });
    expect(tx.render()).toBe(
      [
        'add table ip kube-proxy { comment "rules for kube-proxy" ; }',
        'add set ip kube-proxy cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }',
        'add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }',
        'add chain ip kube-proxy filter-prerouting-pre-dnat { type filter hook prerouting priority -110 ; }',
        'add chain ip kube-proxy reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }',
        'add chain ip kube-proxy services',
        'add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips',
        'add chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80',
        'add element ip kube-proxy cluster-ips { 172.30.0.41 }',
        'add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }',
        'add element ip kube-proxy service-ips { 1.2.3.4 . tcp . 80 comment "ns2/svc2:p80" : drop }',
        '',
      ].join('\n'),
    );
  });

  it('renders create, insert, replace, delete and flush for every kind', () => {
    const tx = new NftTransaction()
      .create({ kind: 'table', family: 'inet', name: 't' })
      .create({ kind: 'chain', family: 'inet', table: 't', name: 'in', type: 'filter', hook: 'input', priority: 'filter', policy: 'drop', comment: 'c' })
      .create({ kind: 'set', family: 'inet', table: 't', name: 's', typeof: 'ip saddr . tcp dport', flags: ['interval', 'timeout'], timeout: 3600, size: 65535, policy: 'memory' })
      .create({ kind: 'element', family: 'inet', table: 't', set: 's', key: ['10.0.0.0/24', '80'], timeout: '1h30m', comment: 'e' })
      .insert({ family: 'inet', table: 't', chain: 'in', rule: 'tcp dport 22 accept' })
      .insert({ family: 'inet', table: 't', chain: 'in', rule: 'tcp dport 23 accept', handle: 4 })
      .add({ kind: 'rule', family: 'inet', table: 't', chain: 'in', rule: 'tcp dport 24 accept', handle: 4, comment: 'after 4' })
      .replace({ family: 'inet', table: 't', chain: 'in', rule: 'tcp dport 25 accept', handle: 4 })
      .delete({ kind: 'rule', family: 'inet', table: 't', chain: 'in', handle: 5 })
      .delete({ kind: 'element', family: 'inet', table: 't', set: 's', key: ['10.0.0.0/24', '80'], timeout: 5, comment: 'ignored' })
      .flush({ kind: 'set', family: 'inet', table: 't', name: 's' })
      .flush({ kind: 'map', family: 'inet', table: 't', name: 'm' })
      .flush({ kind: 'chain', family: 'inet', table: 't', name: 'in' })
      .flush({ kind: 'table', family: 'inet', name: 't' })
      .delete({ kind: 'set', family: 'inet', table: 't', name: 's' })
      .delete({ kind: 'chain', family: 'inet', table: 't', name: 'in' })
      .delete({ kind: 'table', family: 'inet', name: 't' });
    expect(tx.render().split('\n')).toEqual([
      'create table inet t',
      'create chain inet t in { type filter hook input priority filter ; policy drop ; comment "c" ; }',
      'create set inet t s { typeof ip saddr . tcp dport ; flags interval,timeout ; timeout 3600s ; size 65535 ; policy memory ; }',
      'create element inet t s { 10.0.0.0/24 . 80 timeout 1h30m comment "e" }',
      'insert rule inet t in tcp dport 22 accept',
      'insert rule inet t in position 4 tcp dport 23 accept',
      'add rule inet t in position 4 tcp dport 24 accept comment "after 4"',
      'replace rule inet t in handle 4 tcp dport 25 accept',
      'delete rule inet t in handle 5',
      'delete element inet t s { 10.0.0.0/24 . 80 }',
      'flush set inet t s',
      'flush map inet t m',
      'flush chain inet t in',
      'flush table inet t',
      'delete set inet t s',
      'delete chain inet t in',
      'delete table inet t',
      '',
    ]);
    expect(tx.length).toBe(17);
  });

  it('writes destroy as add+delete for nft 1.0.6, or natively when asked', () => {
    const objs = [
      { kind: 'table', family: 'ip', name: 'kube-proxy', comment: 'kept out of the add' },
      { kind: 'chain', ...T, name: 'nat-output', type: 'nat', hook: 'output', priority: -100 },
      { kind: 'map', ...T, name: 'm', type: 'inet_proto . inet_service : verdict' },
      { kind: 'element', ...T, set: 'm', key: ['tcp', '3001'], value: 'drop', comment: 'c', timeout: 9 },
    ] as const;
    const emulated = new NftTransaction();
    const native = new NftTransaction({ destroy: 'native' });
    for (const o of objs) {
      emulated.destroy(o);
      native.destroy(o);
    }
    native.destroy({ kind: 'rule', ...T, chain: 'nat-output', handle: 7 });
    expect(emulated.render().split('\n')).toEqual([
      'add table ip kube-proxy',
      'delete table ip kube-proxy',
      'add chain ip kube-proxy nat-output',
      'delete chain ip kube-proxy nat-output',
      'add map ip kube-proxy m { type inet_proto . inet_service : verdict ; }',
      'delete map ip kube-proxy m',
      'add element ip kube-proxy m { tcp . 3001 : drop }',
      'delete element ip kube-proxy m { tcp . 3001 }',
      '',
    ]);
    expect(native.render().split('\n')).toEqual([
      'destroy table ip kube-proxy',
      'destroy chain ip kube-proxy nat-output',
      'destroy map ip kube-proxy m',
      'destroy element ip kube-proxy m { tcp . 3001 }',
      'destroy rule ip kube-proxy nat-output handle 7',
      '',
    ]);
    expect(() => new NftTransaction().destroy({ kind: 'rule', ...T, chain: 'c', handle: 1 })).toThrow(NftInputError);
  });

  it('keeps the rendering of the shorthands flanneld and the bridge use', () => {
    const tx = new NftTransaction()
      .addSet({ ...T, name: 's', type: 'ipv4_addr', flags: ['interval'] })
      .createElement({ ...T, set: 's', key: '10.0.0.0/8' })
      .replaceRule({ ...T, chain: 'c', rule: 'accept', handle: 3 })
      .deleteSet({ ...T, name: 's' })
      .deleteSet({ ...T, name: 'm' }, 'map');
    expect(tx.render()).toBe(
      'add set ip kube-proxy s { type ipv4_addr ; flags interval ; }\ncreate element ip kube-proxy s { 10.0.0.0/8 }\nreplace rule ip kube-proxy c handle 3 accept\ndelete set ip kube-proxy s\ndelete map ip kube-proxy m\n',
    );
  });

  it('rejects what nft would not parse', () => {
    const bad: (() => unknown)[] = [
      () => new NftTransaction().add({ kind: 'chain', ...T, name: 'my chain' }),
      () => new NftTransaction().add({ kind: 'chain', ...T, name: '1abc' }),
      () => new NftTransaction().add({ kind: 'table', family: 'ip', name: '"q"' }),
      () => new NftTransaction().add({ kind: 'chain', ...T, name: 'c', policy: 'drop' }),
      () => new NftTransaction().add({ kind: 'chain', ...T, name: 'c', hook: 'input', priority: 0 }),
      () => new NftTransaction().add({ kind: 'set', ...T, name: 's' }),
      () => new NftTransaction().add({ kind: 'set', ...T, name: 's', type: 'ipv4_addr', typeof: 'ip saddr' }),
      () => new NftTransaction().add({ kind: 'set', ...T, name: 's', type: 'ipv4_addr : verdict' }),
      () => new NftTransaction().add({ kind: 'map', ...T, name: 'm', type: 'ipv4_addr' }),
      () => new NftTransaction().add({ kind: 'set', ...T, name: 's', type: 'ipv4_addr', timeout: 1.5 }),
      () => new NftTransaction().add({ kind: 'element', ...T, set: 's', key: '1.2.3.4', timeout: '10 s' }),
      () => new NftTransaction().add({ kind: 'element', ...T, set: 's', key: [] }),
      () => new NftTransaction().add({ kind: 'element', ...T, set: 's', key: ['1.2.3.4', '{ x }'] }),
      () => new NftTransaction().add({ kind: 'element', ...T, set: 's', key: '1.2.3.4', comment: 'x'.repeat(129) }),
      () => new NftTransaction().add({ kind: 'rule', ...T, chain: 'c', rule: 'accept\nflush ruleset' }),
      () => new NftTransaction().add({ kind: 'rule', ...T, chain: 'c', rule: '' }),
      () => new NftTransaction().replace({ ...T, chain: 'c', rule: 'accept' } as never),
      () => new NftTransaction().delete({ kind: 'rule', ...T, chain: 'c', handle: 0 }),
      () => gotoChain('a b'),
    ];
    for (const f of bad) expect(f).toThrow(NftInputError);
  });

  it('renders durations and keys', () => {
    expect(renderDuration(0)).toBe('0s');
    expect(renderDuration(10800)).toBe('10800s');
    expect(renderDuration('1d2h3m4s5ms')).toBe('1d2h3m4s5ms');
    expect(() => renderDuration('5x')).toThrow(NftInputError);
    expect(elementKey(['fd00::1', 'udp', '53'])).toBe('fd00::1 . udp . 53');
    expect(elementKey('10.0.0.0/8')).toBe('10.0.0.0/8');
  });
});
