import { describe, expect, it } from 'vitest';
import { formatGoDuration, parseGoDuration } from './duration.ts';
import { ConfigError, loadConfig, UsageError } from './index.ts';
import { ConfigFileError, parseConfigFile } from './file.ts';

const noFile = async (p: string): Promise<string> => {
  throw new Error(`ENOENT: ${p}`);
};
const files = (m: Record<string, string>) => async (p: string): Promise<string> => {
  const t = m[p];
  if (t === undefined) throw new Error(`ENOENT: ${p}`);
  return t;
};

describe('Go durations', () => {
  it('parses what time.ParseDuration parses', () => {
    expect(parseGoDuration('1s')).toBe(1000);
    expect(parseGoDuration('15m0s')).toBe(900_000);
    expect(parseGoDuration('1h2m3.5s')).toBe(3_723_500);
    expect(parseGoDuration('250ms')).toBe(250);
    expect(parseGoDuration('0')).toBe(0);
    expect(parseGoDuration('-2s')).toBe(-2000);
    expect(parseGoDuration('10')).toBeUndefined();
    expect(parseGoDuration('s')).toBeUndefined();
    expect(parseGoDuration('')).toBeUndefined();
    expect(parseGoDuration('1x')).toBeUndefined();
  });
  it('prints as Go does', () => {
    expect(formatGoDuration(1000)).toBe('1s');
    expect(formatGoDuration(900_000)).toBe('15m0s');
    expect(formatGoDuration(3_600_000)).toBe('1h0m0s');
    expect(formatGoDuration(500)).toBe('500ms');
  });
});

describe('flags', () => {
  it('has upstream defaults', async () => {
    const c = await loadConfig([], noFile);
    expect(c.mode).toBe('iptables');
    expect(c.healthzBindAddress).toEqual({ host: '0.0.0.0', port: 10256 });
    expect(c.metricsBindAddress).toEqual({ host: '127.0.0.1', port: 10249 });
    expect(c.masqueradeBit).toBe(14);
    expect(c.minSyncPeriodMs).toBe(1000);
    expect(c.syncPeriodMs).toBe(30_000);
    expect(c.configSyncPeriodMs).toBe(900_000);
    expect(c.masqueradeAll).toBe(false);
    expect(c.localhostNodePorts).toBe(true);
    expect(c.detectLocalMode).toBe('ClusterCIDR');
    expect(c.nodePortAddresses).toEqual([]);
    expect(c.clusterCIDRs).toEqual([]);
    expect(c.cleanup).toBe(false);
    expect(c.verbosity).toBe(0);
    expect(c.manifests).toBeUndefined();
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('parses pflag syntax', async () => {
    const c = await loadConfig(
      [
        '--proxy-mode=nftables', '--hostname-override', 'Node-A', '--cluster-cidr=10.244.0.0/16,fd00:10::/48',
        '--nodeport-addresses=192.0.2.0/24', '--nodeport-addresses', '198.51.100.0/24,fd00::/64', '--masquerade-all',
        '--iptables-min-sync-period=0', '--iptables-sync-period', '1m', '--iptables-masquerade-bit=15',
        '--iptables-localhost-nodeports=false', '--healthz-bind-address=127.0.0.1:0', '--metrics-bind-address=',
        '--manifests', '/etc/m', '-v', '4', '--cleanup=false',
      ],
      noFile,
    );
    expect(c.mode).toBe('nftables');
    expect(c.nodeName).toBe('node-a');
    expect(c.clusterCIDRs.map(String)).toEqual(['10.244.0.0/16', 'fd00:10::/48']);
    expect(c.nodePortAddresses).toEqual(['192.0.2.0/24', '198.51.100.0/24', 'fd00::/64']);
    expect(c.masqueradeAll).toBe(true);
    expect(c.minSyncPeriodMs).toBe(0);
    expect(c.syncPeriodMs).toBe(60_000);
    expect(c.masqueradeBit).toBe(15);
    expect(c.localhostNodePorts).toBe(false);
    expect(c.healthzBindAddress).toEqual({ host: '127.0.0.1', port: 0 });
    expect(c.metricsBindAddress).toBeUndefined();
    expect(c.manifests).toBe('/etc/m');
    expect(c.verbosity).toBe(4);
    expect(c.cleanup).toBe(false);
  });

  it('takes the node name from the hostname when not overridden', async () => {
    const c = await loadConfig([], noFile);
    expect(c.nodeName).toBe(c.nodeName.toLowerCase());
    expect(c.nodeName).not.toBe('');
  });

  it.each([
    [['--proxy-mode=userspace'], /proxy mode "userspace"/],
    [['--iptables-masquerade-bit=32'], /masqueradeBit 32/],
    [['--iptables-sync-period=0'], /syncPeriod 0s: must be greater than 0/],
    [['--iptables-min-sync-period=1m'], /minSyncPeriod 1m0s: must be less than or equal to syncPeriod 30s/],
    [['--iptables-sync-period=5'], /invalid duration/],
    [['--cluster-cidr=10.0.0.0/8,10.1.0.0/16'], /one CIDR per IP family/],
    [['--cluster-cidr=nonsense'], /invalid CIDR/],
    [['--nodeport-addresses=primary,10.0.0.0/8'], /"primary" must be the only entry/],
    [['--nodeport-addresses=10.0.0.300/8'], /invalid CIDR/],
    [['--healthz-bind-address=10256'], /invalid address/],
    [['--masquerade-all=maybe'], /invalid boolean/],
    [['--no-such-flag'], /unknown option/],
    [['--detect-local-mode=BridgeInterface'], /needs --pod-bridge-interface/],
  ])('rejects %j', async (argv, msg) => {
    await expect(loadConfig(argv, noFile)).rejects.toThrow(msg);
    await expect(loadConfig(argv, noFile)).rejects.toSatisfy((e) => e instanceof UsageError || e instanceof ConfigError);
  });
});

const FILE_YAML = `
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: 10.244.0.0/16
hostnameOverride: from-file
healthzBindAddress: 0.0.0.0:20256
metricsBindAddress: 127.0.0.1:20249
nodePortAddresses: [primary]
clientConnection:
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
iptables:
  masqueradeAll: true
  masqueradeBit: 13
  minSyncPeriod: 2s
  syncPeriod: 45s
logging:
  verbosity: 2
conntrack:
  maxPerCore: 0
bogus: 1
`;

describe('--config', () => {
  it('reads a YAML KubeProxyConfiguration', async () => {
    const c = await loadConfig(['--config', '/c.yaml'], files({ '/c.yaml': FILE_YAML }));
    expect(c.clusterCIDRs.map(String)).toEqual(['10.244.0.0/16']);
    expect(c.nodeName).toBe('from-file');
    expect(c.healthzBindAddress).toEqual({ host: '0.0.0.0', port: 20256 });
    expect(c.metricsBindAddress).toEqual({ host: '127.0.0.1', port: 20249 });
    expect(c.nodePortAddresses).toEqual(['primary']);
    expect(c.kubeconfig).toBe('/var/lib/kube-proxy/kubeconfig.conf');
    expect(c.masqueradeAll).toBe(true);
    expect(c.masqueradeBit).toBe(13);
    expect(c.minSyncPeriodMs).toBe(2000);
    expect(c.syncPeriodMs).toBe(45_000);
    expect(c.verbosity).toBe(2);
    expect(c.configFile).toBe('/c.yaml');
    expect(c.warnings).toContain('unknown field "bogus"');
    expect(c.warnings.some((w) => w.includes('"conntrack" is not supported'))).toBe(true);
  });

  it('reads JSON and defaults what the file leaves out', async () => {
    const json = JSON.stringify({ apiVersion: 'kubeproxy.config.k8s.io/v1alpha1', kind: 'KubeProxyConfiguration', mode: 'nftables', nftables: { syncPeriod: '10s' } });
    const c = await loadConfig(['--config=/c.json'], files({ '/c.json': json }));
    expect(c.mode).toBe('nftables');
    expect(c.syncPeriodMs).toBe(10_000);
    expect(c.minSyncPeriodMs).toBe(1000);
    expect(c.healthzBindAddress).toEqual({ host: '0.0.0.0', port: 10256 });
  });

  it('lets -v, --hostname-override, --master and --manifests override the file and ignores other flags, as upstream', async () => {
    const c = await loadConfig(
      ['--config', '/c.yaml', '-v', '5', '--hostname-override=flag-node', '--masquerade-all=false', '--master', 'https://192.0.2.1:6443', '--manifests=/m'],
      files({ '/c.yaml': FILE_YAML }),
    );
    expect(c.verbosity).toBe(5);
    expect(c.nodeName).toBe('flag-node');
    expect(c.masqueradeAll).toBe(true);
    expect(c.master).toBe('https://192.0.2.1:6443');
    expect(c.manifests).toBe('/m');
    expect(c.warnings).toContain('--masquerade-all is ignored: --config is set and its file takes precedence');
  });

  it.each([
    ['kind: Pod\napiVersion: v1\n', /kind "Pod"/],
    ['kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1beta9\n', /apiVersion/],
    ['kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\niptables: {syncPeriod: fast}\n', /iptables.syncPeriod: invalid duration/],
    ['kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nmode: 3\n', /mode: expected a string/],
    ['{ not yaml', /failed to load/],
  ])('rejects a bad file %#', (text, msg) => {
    expect(() => parseConfigFile(text, '/c')).toThrow(ConfigFileError);
    expect(() => parseConfigFile(text, '/c')).toThrow(msg);
  });

  it('fails when the file cannot be read', async () => {
    await expect(loadConfig(['--config', '/missing'], noFile)).rejects.toThrow(/failed to read kube-proxy config file \/missing/);
  });
});

describe('the IPVS settings', () => {
  it('flags: upstream defaults, then --ipvs-… values; the ipvs sync periods apply in ipvs mode', async () => {
    const d = await loadConfig(['--proxy-mode=ipvs'], noFile);
    expect(d.ipvs).toEqual({ scheduler: '', excludeCIDRs: [], strictARP: false, timeouts: { tcp: 0, tcpFin: 0, udp: 0 } });
    expect(d.minSyncPeriodMs).toBe(0);
    expect(d.syncPeriodMs).toBe(30_000);
    const c = await loadConfig(
      ['--proxy-mode=ipvs', '--ipvs-scheduler=wlc', '--ipvs-exclude-cidrs=198.51.100.0/24,2001:db8::/64', '--ipvs-strict-arp', '--ipvs-tcp-timeout=15m', '--ipvs-tcpfin-timeout=30s', '--ipvs-udp-timeout=5s', '--ipvs-sync-period=10s', '--ipvs-min-sync-period=2s', '--iptables-sync-period=1m'],
      noFile,
    );
    expect(c.ipvs.scheduler).toBe('wlc');
    expect(c.ipvs.excludeCIDRs.map(String)).toEqual(['198.51.100.0/24', '2001:db8::/64']);
    expect(c.ipvs.strictARP).toBe(true);
    expect(c.ipvs.timeouts).toEqual({ tcp: 900, tcpFin: 30, udp: 5 });
    expect([c.minSyncPeriodMs, c.syncPeriodMs]).toEqual([2000, 10_000]);
    // In iptables mode the --ipvs-* periods do not count.
    expect((await loadConfig(['--ipvs-sync-period=10s'], noFile)).syncPeriodMs).toBe(30_000);
  });

  it('the file\'s ipvs: section', async () => {
    const yaml = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: ipvs
ipvs:
  scheduler: sh
  syncPeriod: 20s
  minSyncPeriod: 1s
  excludeCIDRs: [203.0.113.0/24]
  strictARP: true
  tcpTimeout: 0s
  tcpFinTimeout: 0s
  udpTimeout: 10s
`;
    const c = await loadConfig(['--config', '/c.yaml'], files({ '/c.yaml': yaml }));
    expect(c.mode).toBe('ipvs');
    expect(c.ipvs).toEqual({ scheduler: 'sh', excludeCIDRs: [expect.anything()], strictARP: true, timeouts: { tcp: 0, tcpFin: 0, udp: 10 } });
    expect(String(c.ipvs.excludeCIDRs[0])).toBe('203.0.113.0/24');
    expect([c.minSyncPeriodMs, c.syncPeriodMs]).toEqual([1000, 20_000]);
    expect(c.warnings.some((w) => w.includes('"ipvs"'))).toBe(false);
  });

  it('rejects a bad exclude CIDR or scheduler name', async () => {
    await expect(loadConfig(['--proxy-mode=ipvs', '--ipvs-exclude-cidrs=nope'], noFile)).rejects.toThrow(/excludeCIDRs: invalid CIDR "nope"/);
    await expect(loadConfig(['--proxy-mode=ipvs', '--ipvs-scheduler=Round Robin'], noFile)).rejects.toThrow(/not a scheduler name/);
  });
});
