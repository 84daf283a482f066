import { describe, expect, it } from 'vitest';
import { FLAGS, FlagError, envKey, parseFlags, parseGoInt, usage } from './flags.ts';
import type { FlanneldOptions } from './flags.ts';

function opts(argv: string[], env: Record<string, string> = {}): FlanneldOptions {
  const r = parseFlags(argv, env);
  if (r.kind !== 'run') throw new Error('expected run');
  return r.options;
}

describe('flanneld flags', () => {
  it('has upstream defaults', () => {
    const o = opts([]);
    expect(o.etcdEndpoints).toEqual(['http://127.0.0.1:4001', 'http://127.0.0.1:2379']);
    expect(o.etcdPrefix).toBe('/coreos.com/network');
    expect(o.subnetFile).toBe('/run/flannel/subnet.env');
    expect(o.netConfigPath).toBe('/etc/kube-flannel/net-conf.json');
    expect(o.kubeAnnotationPrefix).toBe('flannel.alpha.coreos.com');
    expect(o.subnetLeaseRenewMargin).toBe(60);
    expect(o.iptablesResync).toBe(5);
    expect(o.iptablesForwardRules).toBe(true);
    expect(o.setNodeNetworkUnavailable).toBe(true);
    expect(o.ipMasq).toBe(false);
    expect(o.kubeSubnetMgr).toBe(false);
    expect(o.healthzIP).toBe('0.0.0.0');
    expect(o.healthzPort).toBe(0);
    expect(o.iface).toEqual([]);
    expect(o.eventQueueDepth).toBe(5000);
    expect(o.contWhenCacheNotReady).toBe(false);
  });

  it('accepts every Go flag spelling', () => {
    const o = opts(['-ip-masq', '--kube-subnet-mgr', '--etcd-prefix=/x', '-healthz-port', '8081', '--iface', 'eth0', '-iface=192.0.2.1', '--iptables-forward-rules=false', '-v=2']);
    expect(o.ipMasq).toBe(true);
    expect(o.kubeSubnetMgr).toBe(true);
    expect(o.etcdPrefix).toBe('/x');
    expect(o.healthzPort).toBe(8081);
    expect(o.iface).toEqual(['eth0', '192.0.2.1']);
    expect(o.iptablesForwardRules).toBe(false);
    expect(o.verbosity).toBe(2);
  });

  it('does not take the next argument as a boolean value, like Go (it stops parsing there)', () => {
    const r = parseFlags(['--ip-masq', 'false', '--kube-subnet-mgr']);
    expect(r.kind === 'run' && r.options.ipMasq).toBe(true);
    expect(r.kind === 'run' && r.options.kubeSubnetMgr).toBe(false);
    expect(r.kind === 'run' && r.args).toEqual(['false', '--kube-subnet-mgr']);
  });

  it('accepts Go boolean and integer forms', () => {
    expect(opts(['--ip-masq=T']).ipMasq).toBe(true);
    expect(opts(['--iptables-forward-rules=0']).iptablesForwardRules).toBe(false);
    expect(parseGoInt('0x1F')).toBe(31);
    expect(parseGoInt('010')).toBe(8);
    expect(parseGoInt('-3')).toBe(-3);
    expect(parseGoInt('1_000')).toBe(1000);
    expect(parseGoInt('12a')).toBeUndefined();
  });

  it('rejects unknown flags, bad values and missing arguments', () => {
    expect(() => parseFlags(['--nope'])).toThrow(FlagError);
    expect(() => parseFlags(['--ip-masq=maybe'])).toThrow(FlagError);
    expect(() => parseFlags(['--healthz-port=x'])).toThrow(FlagError);
    expect(() => parseFlags(['--etcd-prefix'])).toThrow(FlagError);
    expect(() => parseFlags(['---x'])).toThrow(FlagError);
  });

  it('validates --subnet-lease-renew-margin to 1..1439', () => {
    expect(opts(['--subnet-lease-renew-margin=1']).subnetLeaseRenewMargin).toBe(1);
    expect(opts(['--subnet-lease-renew-margin=1439']).subnetLeaseRenewMargin).toBe(1439);
    expect(() => parseFlags(['--subnet-lease-renew-margin=0'])).toThrow(FlagError);
    expect(() => parseFlags(['--subnet-lease-renew-margin=1440'])).toThrow(FlagError);
  });

  it('reads FLANNELD_* for every flag not set on the command line', () => {
    const o = opts(['--etcd-prefix=/cmd'], {
      FLANNELD_ETCD_PREFIX: '/env',
      FLANNELD_ETCD_ENDPOINTS: 'http://192.0.2.10:2379,http://192.0.2.11:2379',
      FLANNELD_IP_MASQ: 'true',
      FLANNELD_IPTABLES_FORWARD_RULES: 'false',
      FLANNELD_HEALTHZ_PORT: '8081',
      FLANNELD_IFACE: 'eth1,eth2',
      FLANNELD_IFACE_REGEX: '^192\\.0\\.2\\.',
      FLANNELD_PUBLIC_IP: '',
    });
    expect(o.etcdPrefix).toBe('/cmd');
    expect(o.etcdEndpoints).toEqual(['http://192.0.2.10:2379', 'http://192.0.2.11:2379']);
    expect(o.ipMasq).toBe(true);
    expect(o.iptablesForwardRules).toBe(false);
    expect(o.healthzPort).toBe(8081);
    expect(o.iface).toEqual(['eth1', 'eth2']);
    expect(o.ifaceRegex).toEqual(['^192\\.0\\.2\\.']);
    expect(o.publicIP).toBe('');
  });

  it('command-line --iface wins over FLANNELD_IFACE', () => {
    expect(opts(['--iface=eth0'], { FLANNELD_IFACE: 'eth9' }).iface).toEqual(['eth0']);
  });

  it('maps every flag to an env key', () => {
    for (const f of FLAGS) expect(envKey(f.name)).toMatch(/^FLANNELD_[A-Z0-9_]+$/);
    expect(envKey('iptables-forward-rules')).toBe('FLANNELD_IPTABLES_FORWARD_RULES');
    expect(() => parseFlags([], { FLANNELD_SUBNET_LEASE_RENEW_MARGIN: 'abc' })).toThrow(FlagError);
  });

  it('reads NODE_NAME, POD_*, EVENT_QUEUE_DEPTH and CONT_WHEN_CACHE_NOT_READY', () => {
    const o = opts([], { NODE_NAME: 'n1', POD_NAME: 'p', POD_NAMESPACE: 'kube-flannel', EVENT_QUEUE_DEPTH: '10000', CONT_WHEN_CACHE_NOT_READY: 'true' });
    expect([o.nodeName, o.podName, o.podNamespace, o.eventQueueDepth, o.contWhenCacheNotReady]).toEqual(['n1', 'p', 'kube-flannel', 10000, true]);
    expect(() => parseFlags([], { EVENT_QUEUE_DEPTH: '-1' })).toThrow(FlagError);
  });

  it('answers -h/--help with the usage listing every flag', () => {
    const r = parseFlags(['--help']);
    expect(r.kind).toBe('help');
    for (const f of FLAGS) expect(usage()).toContain(`-${f.name}`);
    expect(usage()).toContain('(default "http://127.0.0.1:4001,http://127.0.0.1:2379")');
  });

  it('answers -version before the environment is read or anything is validated, as upstream', () => {
    expect(parseFlags(['-version'], { FLANNELD_SUBNET_LEASE_RENEW_MARGIN: 'abc', EVENT_QUEUE_DEPTH: '-1' })).toEqual({ kind: 'version' });
    expect(parseFlags(['--version', '--subnet-lease-renew-margin=0'])).toEqual({ kind: 'version' });
    expect(parseFlags([], { FLANNELD_VERSION: 'true' })).toEqual({ kind: 'version' });
    // A command-line syntax error still comes first, as in Go's flag.Parse.
    expect(() => parseFlags(['--version', '--ip-masq=maybe'])).toThrow(FlagError);
  });
});
