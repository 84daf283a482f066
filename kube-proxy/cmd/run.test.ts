import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import { describe, expect, it, vi } from 'vitest';
import { FakeSource } from '../../lib/kube/fake-source.ts';
import { silentLogger } from '../../lib/log.ts';
import { newRegistry } from '../../lib/metrics.ts';
import { FakeConntrack } from '../../lib/netfilter/conntrack.ts';
import { FakeIptables, parseIptablesSave } from '../../lib/netfilter/iptables.ts';
import { FakeNft } from '../../lib/netfilter/nft.ts';
import { FakeIpset } from '../../lib/netfilter/ipset.ts';
import { FakeHandle } from '../../lib/netlink/fake.ts';
import { FakeIpvs } from '../../lib/netlink/ipvs-fake.ts';
import { loadConfig } from '../config/index.ts';
import { ProxyMetrics } from '../metrics.ts';
import { makeService, makeSlice } from '../testing/fixtures.ts';
import { cleanupAll, runProxy, UnsupportedModeError } from './run.ts';

const noFile = async (): Promise<string> => {
  throw new Error('no file');
};
const config = (extra: string[] = []) =>
  loadConfig(['--hostname-override=node-a', '--healthz-bind-address=', '--metrics-bind-address=', '--iptables-min-sync-period=0', ...extra], noFile);

function sources() {
  return {
    services: new FakeSource<V1Service>('Service', [makeService('ns', 'a', { clusterIP: '172.30.0.1', clusterIPs: ['172.30.0.1'], ports: [{ name: 'p', port: 80, protocol: 'TCP' }] })]),
    endpointSlices: new FakeSource<V1EndpointSlice>('EndpointSlice', [makeSlice('ns', 'a', 1, [{ addresses: ['10.244.1.2'], conditions: { ready: true } }], [{ name: 'p', port: 8080, protocol: 'TCP' }])]),
    nodes: new FakeSource<V1Node>('Node'),
  };
}

describe('runProxy', () => {
  it('cleans up the nftables mode, syncs both families from the sources, and stops on abort', async () => {
    const iptables = new FakeIptables();
    const nft = new FakeNft();
    await nft.run('add table ip kube-proxy\n');
    const s = sources();
    const ready = vi.fn();
    const ac = new AbortController();
    const done = runProxy(await config(), ac.signal, ready, { iptables, conntrack: new FakeConntrack(), nft, log: silentLogger(), metrics: new ProxyMetrics(newRegistry()), sources: s });
    s.services.sync();
    s.endpointSlices.sync();
    s.nodes.sync();
    await vi.waitFor(async () => {
      expect(parseIptablesSave(await iptables.save('ip')).rules('nat').some((r) => r.line.includes('10.244.1.2:8080'))).toBe(true);
      expect(parseIptablesSave(await iptables.save('ip6')).hasChain('nat', 'KUBE-SERVICES')).toBe(true);
    });
    expect(await nft.list('ip', 'kube-proxy')).toBeUndefined();
    expect(ready).toHaveBeenCalledOnce();
    ac.abort();
    await done;
  });

  it('runs the nftables mode and removes iptables-mode leftovers', async () => {
    const iptables = new FakeIptables();
    await iptables.restore('ip', '*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\nCOMMIT\n', { noflush: true });
    const nft = new FakeNft();
    const s = sources();
    const ac = new AbortController();
    const done = runProxy(await config(['--proxy-mode=nftables']), ac.signal, () => {}, { iptables, conntrack: new FakeConntrack(), nft, log: silentLogger(), metrics: new ProxyMetrics(newRegistry()), sources: s });
    s.services.sync();
    s.endpointSlices.sync();
    s.nodes.sync();
    await vi.waitFor(async () => expect(JSON.stringify(await nft.list('ip', 'kube-proxy'))).toContain('10.244.1.2'));
    expect(parseIptablesSave(await iptables.save('ip')).hasChain('nat', 'KUBE-SERVICES')).toBe(false);
    ac.abort();
    await done;
  });

  it('runs the ipvs mode: kube-ipvs0, virtual servers, sets; the iptables mode\'s own chains go, the shared ones stay', async () => {
    const iptables = new FakeIptables();
    await iptables.restore('ip', '*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n-A KUBE-SERVICES -j KUBE-NODEPORTS\nCOMMIT\n', { noflush: true });
    const ipvs = new FakeIpvs();
    const netlink = new FakeHandle();
    const ipset = new FakeIpset();
    const s = sources();
    const ac = new AbortController();
    const done = runProxy(await config(['--proxy-mode=ipvs', '--ipvs-scheduler=lc', '--ipvs-udp-timeout=10s']), ac.signal, () => {}, {
      iptables, conntrack: new FakeConntrack(), ipset, log: silentLogger(), metrics: new ProxyMetrics(newRegistry()), sources: s,
      openIpvs: async () => ipvs, openNetlink: () => netlink,
    });
    s.services.sync();
    s.endpointSlices.sync();
    s.nodes.sync();
    await vi.waitFor(() => expect(ipvs.snapshot().map((x) => `${x.service.address}:${x.service.port} ${x.service.scheduler} ${x.destinations.map((d) => `${d.address}:${d.port}`)}`)).toEqual(['172.30.0.1:80 lc 10.244.1.2:8080']));
    expect((await ipvs.timeouts()).udp).toBe(10);
    expect(netlink.readSysctl('net/ipv4/vs/conntrack')).toBe('1');
    expect((await ipset.list('KUBE-CLUSTER-IP'))[0]!.entries.map((e) => e.entry)).toEqual(['172.30.0.1,tcp:80']);
    const save = parseIptablesSave(await iptables.save('ip'));
    expect(save.hasChain('nat', 'KUBE-NODEPORTS')).toBe(false);
    expect(save.hasRule('nat', 'PREROUTING', ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'])).toBe(true);
    ac.abort();
    await done;
  });

  it('the ipvs mode without IPVS handles is refused with a typed error', async () => {
    await expect(runProxy(await config(['--proxy-mode=ipvs']), new AbortController().signal, () => {}, { iptables: new FakeIptables(), conntrack: new FakeConntrack(), log: silentLogger(), sources: sources() })).rejects.toThrow(UnsupportedModeError);
  });

  it('--cleanup removes every mode of both families', async () => {
    const iptables = new FakeIptables();
    await iptables.restore('ip6', '*filter\n:INPUT ACCEPT [0:0]\n:KUBE-PROXY-FIREWALL - [0:0]\n-A INPUT -j KUBE-PROXY-FIREWALL\nCOMMIT\n', { noflush: true });
    const nft = new FakeNft();
    await nft.run('add table ip6 kube-proxy\n');
    expect(await cleanupAll({ iptables, conntrack: new FakeConntrack(), nft, log: silentLogger() })).toBe(true);
    expect(await iptables.save('ip6')).not.toContain('KUBE-');
    expect(await nft.list('ip6', 'kube-proxy')).toBeUndefined();
  });
});
