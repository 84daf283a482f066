import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../lib/log.ts';
import { FakeIptables, parseIptablesSave } from '../../lib/netfilter/iptables.ts';
import { FakeIpset } from '../../lib/netfilter/ipset.ts';
import { FakeNft } from '../../lib/netfilter/nft.ts';
import { ProxyHealth } from '../health/proxy.ts';
import { ProxyMetrics } from '../metrics.ts';
import { newRegistry } from '../../lib/metrics.ts';
import { FakeConntrack } from '../../lib/netfilter/conntrack.ts';
import { makeService, makeSlice } from '../testing/fixtures.ts';
import { IPTablesFamilyProxier } from './iptables.ts';
import { FakeHandle } from '../../lib/netlink/fake.ts';
import { FakeIpvs } from '../../lib/netlink/ipvs-fake.ts';
import { IPTABLES_MODE, IPTABLES_ONLY, IPVS_MODE, NFTABLES_MODE, runCleanups } from './cleanup.ts';
import { IPVSFamilyProxier } from './ipvs.ts';
import { failingLine } from './rules.ts';

const KUBELET = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:OTHER - [0:0]
-A INPUT -j KUBE-FIREWALL
-A INPUT -j OTHER
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
COMMIT
`;

async function synced(ipt: FakeIptables): Promise<void> {
  const p = new IPTablesFamilyProxier(
    { family: 4, nodeName: 'n', renderOptions: () => ({ family: 4, nodeName: 'n' }) },
    { iptables: ipt, conntrack: new FakeConntrack(), log: silentLogger(), metrics: new ProxyMetrics(newRegistry()), health: new ProxyHealth([4], 1), requestSync: () => {} },
  );
  p.onServiceUpdate(undefined, makeService('ns', 's', { clusterIP: '172.30.0.1', clusterIPs: ['172.30.0.1'], type: 'NodePort', ports: [{ name: 'p', port: 80, protocol: 'TCP', nodePort: 30080 }] }));
  p.onEndpointSliceUpdate(makeSlice('ns', 's', 1, [{ addresses: ['10.244.1.2'], conditions: { ready: true } }], [{ name: 'p', port: 8080, protocol: 'TCP' }]), false);
  p.setInitialized();
  await p.sync('requested');
}

describe('cleanup', () => {
  it('--cleanup removes every iptables-mode chain and jump and leaves kubelet and other rules', async () => {
    const ipt = new FakeIptables();
    await ipt.restore('ip', KUBELET, { noflush: true });
    await synced(ipt);
    expect((await ipt.save('ip')).split('\n').filter((l) => l.includes('KUBE-SVC-')).length).toBeGreaterThan(0);
    const ok = await runCleanups({ iptables: ipt, log: silentLogger() }, ['ip'], [IPTABLES_MODE]);
    expect(ok).toBe(true);
    const s = parseIptablesSave(await ipt.save('ip'));
    const left = [...s.tables.values()].flatMap((t) => [...t.chains.keys()].filter((c) => c.startsWith('KUBE-')));
    expect(left).toEqual(['KUBE-FIREWALL']);
    expect(s.rules('filter', 'INPUT').map((r) => r.line)).toEqual(['-A INPUT -j KUBE-FIREWALL', '-A INPUT -j OTHER']);
    expect(s.rules('nat').filter((r) => r.line.includes('KUBE'))).toEqual([]);
    // Idempotent: nothing left to do.
    const before = ipt.restores.length;
    await runCleanups({ iptables: ipt, log: silentLogger() }, ['ip'], [IPTABLES_MODE]);
    expect(ipt.restores.length).toBe(before);
  });

  it('removes IPVS-mode chains and KUBE-* ipsets only when present', async () => {
    const ipt = new FakeIptables();
    const ipset = new FakeIpset();
    await ipt.restore('ip', `*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-NODE-PORT - [0:0]\n:KUBE-LOAD-BALANCER - [0:0]\n-A PREROUTING -j KUBE-SERVICES\n-A KUBE-SERVICES -j KUBE-NODE-PORT\nCOMMIT\n`, { noflush: true });
    await ipset.restore('create KUBE-CLUSTER-IP hash:ip,port family inet\ncreate mine hash:ip family inet\n');
    expect(await runCleanups({ iptables: ipt, ipset, log: silentLogger() }, ['ip'], [IPVS_MODE])).toBe(true);
    const s = parseIptablesSave(await ipt.save('ip'));
    expect(s.hasChain('nat', 'KUBE-NODE-PORT')).toBe(false);
    expect(s.hasChain('nat', 'KUBE-LOAD-BALANCER')).toBe(false);
    expect(s.rules('nat', 'KUBE-SERVICES')).toEqual([]);
    expect((await ipset.list()).map((x) => x.name)).toEqual(['mine']);
  });

  it('--cleanup after the IPVS mode: no KUBE chain, no IPVS set, no kube-ipvs0, an empty IPVS table; other sets and rules stay', async () => {
    const ipt = new FakeIptables();
    await ipt.restore('ip', KUBELET, { noflush: true });
    const ipset = new FakeIpset();
    await ipset.restore('create mine hash:ip family inet\n');
    const netlink = new FakeHandle();
    const ipvs = new FakeIpvs();
    const p = new IPVSFamilyProxier(
      { family: 4, nodeName: 'n', renderOptions: () => ({ family: 4, nodeName: 'n' }) },
      { iptables: ipt, ipset, netlink, ipvs, conntrack: new FakeConntrack(), log: silentLogger(), metrics: new ProxyMetrics(newRegistry()), health: new ProxyHealth([4], 1), requestSync: () => {} },
    );
    p.onServiceUpdate(undefined, makeService('ns', 's', { clusterIP: '172.30.0.1', type: 'LoadBalancer', loadBalancerSourceRanges: ['203.0.113.0/24'], ports: [{ name: 'p', port: 80, protocol: 'TCP', nodePort: 30080 }] }, { loadBalancer: { ingress: [{ ip: '198.51.100.9' }] } }));
    p.onEndpointSliceUpdate(makeSlice('ns', 's', 1, [{ addresses: ['10.244.1.2'], conditions: { ready: true }, nodeName: 'n' }], [{ name: 'p', port: 8080, protocol: 'TCP' }]), false);
    p.setInitialized();
    await p.sync('requested');
    expect(ipvs.snapshot()).not.toEqual([]);
    const d = { iptables: ipt, ipset, netlink, ipvs, log: silentLogger() };
    expect(await runCleanups(d, ['ip'], [IPTABLES_MODE, IPVS_MODE, NFTABLES_MODE])).toBe(true);
    const s = parseIptablesSave(await ipt.save('ip'));
    expect([...s.tables.values()].flatMap((t) => [...t.chains.keys()].filter((c) => c.startsWith('KUBE-')))).toEqual(['KUBE-FIREWALL']);
    expect(s.rules('filter', 'INPUT').map((r) => r.line)).toEqual(['-A INPUT -j KUBE-FIREWALL', '-A INPUT -j OTHER']);
    expect((await ipset.list()).map((x) => x.name)).toEqual(['mine']);
    expect(await netlink.linkFind('kube-ipvs0')).toBeUndefined();
    expect(ipvs.snapshot()).toEqual([]);
  });

  it('the IPVS mode at startup removes the iptables mode\'s own chains and keeps the ones it shares', async () => {
    const ipt = new FakeIptables();
    await synced(ipt);
    expect(await runCleanups({ iptables: ipt, log: silentLogger() }, ['ip'], [IPTABLES_ONLY])).toBe(true);
    const s = parseIptablesSave(await ipt.save('ip'));
    const left = [...s.tables].flatMap(([t, x]) => [...x.chains.keys()].filter((c) => c.startsWith('KUBE-')).map((c) => `${t}/${c}`)).sort();
    // KUBE-FIREWALL is kubelet's as well and stays.
    expect(left).toEqual(['filter/KUBE-FIREWALL', 'filter/KUBE-FORWARD', 'filter/KUBE-PROXY-FIREWALL', 'nat/KUBE-MARK-MASQ', 'nat/KUBE-POSTROUTING', 'nat/KUBE-SERVICES']);
    expect(s.rules('nat', 'KUBE-SERVICES').filter((r) => r.line.includes('KUBE-SVC-'))).toEqual([]);
  });

  it('deletes the nftables-mode table of each family if it exists', async () => {
    const nft = new FakeNft();
    await nft.run('add table ip kube-proxy\nadd chain ip kube-proxy services\nadd table ip6 other\n');
    expect(await runCleanups({ iptables: new FakeIptables(), nft, log: silentLogger() }, ['ip', 'ip6'], [NFTABLES_MODE])).toBe(true);
    expect(await nft.list('ip', 'kube-proxy')).toBeUndefined();
    expect(await nft.list('ip6', 'other')).toBeDefined();
  });

  it('reports a failing step and still runs the others', async () => {
    const ipt = new FakeIptables();
    ipt.save = async () => {
      throw new Error('iptables-save: not found');
    };
    const nft = new FakeNft();
    await nft.run('add table ip kube-proxy\n');
    expect(await runCleanups({ iptables: ipt, nft, log: silentLogger() }, ['ip'], [IPTABLES_MODE, NFTABLES_MODE])).toBe(false);
    expect(await nft.list('ip', 'kube-proxy')).toBeUndefined();
  });
});

describe('failingLine', () => {
  it.each([
    ['iptables-restore v1.8.9 (nf_tables): Bad argument\nError occurred at line: 17\n', 17],
    ['iptables-restore: line 5 failed\n', 5],
    ['iptables-restore v1.8.9 (nf_tables): \nline 9: CHAIN_DEL failed (Device or resource busy): chain X\n', 9],
    ['something else', undefined],
  ])('%j → %s', (stderr, n) => expect(failingLine(stderr)).toBe(n));
});
