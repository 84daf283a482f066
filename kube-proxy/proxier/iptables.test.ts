import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { describe, expect, it, vi } from 'vitest';
import { IPAddr, type Family } from '../../lib/ip/index.ts';
import { FakeSource } from '../../lib/kube/fake-source.ts';
import { silentLogger } from '../../lib/log.ts';
import { newRegistry } from '../../lib/metrics.ts';
import { FakeConntrack } from '../../lib/netfilter/conntrack.ts';
import { FakeIptables, parseIptablesSave, type IpFamily, type RestoreOptions } from '../../lib/netfilter/iptables.ts';
import { ExecError } from '../../lib/exec.ts';
import { ProxyHealth } from '../health/proxy.ts';
import { ProxyMetrics } from '../metrics.ts';
import { makeService, makeSlice } from '../testing/fixtures.ts';
import { IPTablesFamilyProxier, iptablesBackend, RestoreFailedError } from './iptables.ts';
import { ServiceProxy } from './proxy.ts';
import { detectLocalByCIDR } from '../render/options.ts';
import { IPPrefix } from '../../lib/ip/index.ts';

/** FakeIptables whose next restores of a family fail as iptables-restore does on a bad line. */
class FlakyIptables extends FakeIptables {
  failNext: Partial<Record<IpFamily, number>> = {};
  override async restore(family: IpFamily, text: string, opts: RestoreOptions): Promise<void> {
    const n = this.failNext[family] ?? 0;
    if (n > 0) {
      this.failNext[family] = n - 1;
      this.restores.push({ family, text, noflush: opts.noflush, counters: false });
      throw new ExecError('EXEC_FAILED', { command: 'iptables-restore', exitCode: 2, stderr: 'iptables-restore v1.8.9 (nf_tables): Bad argument\nError occurred at line: 3\n', shortMessage: 'failed' });
    }
    return super.restore(family, text, opts);
  }
}

const udp = (name: string, port: number) => ({ name, port, protocol: 'UDP' as const });
const tcpP = (name: string, port: number) => ({ name, port, protocol: 'TCP' as const });

function svc(name: string, ip: string, ports: { name: string; port: number; protocol: 'TCP' | 'UDP' }[], extra: Partial<V1Service['spec']> = {}): V1Service {
  return makeService('ns', name, { clusterIP: ip, clusterIPs: [ip], ports: ports.map((p) => ({ ...p, targetPort: p.port })), ...extra });
}
function slice(name: string, ips: string[], ports: { name: string; port: number; protocol: 'TCP' | 'UDP' }[], family: Family = 4): V1EndpointSlice {
  return makeSlice('ns', name, 1, ips.map((ip) => ({ addresses: [ip], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'node-a' })), ports, family === 4 ? 'IPv4' : 'IPv6');
}

function setup(family: Family = 4, ipt = new FlakyIptables()) {
  const metrics = new ProxyMetrics(newRegistry());
  let now = 1_000_000;
  const health = new ProxyHealth([family], 60_000, { now: () => ({ wallMs: now, monoSeconds: now / 1000 }) });
  const conntrack = new FakeConntrack();
  const requestSync = vi.fn();
  const p = new IPTablesFamilyProxier(
    { family, nodeName: 'node-a', renderOptions: () => ({ family, nodeName: 'node-a', localDetector: detectLocalByCIDR(IPPrefix.mustParse(family === 4 ? '10.244.0.0/16' : 'fd00:10::/64')) }) },
    { iptables: ipt, conntrack, log: silentLogger(), metrics, health, requestSync, now: () => now },
  );
  return { p, ipt, metrics, health, conntrack, requestSync, tick: (ms: number) => (now += ms) };
}

const fam = (f: Family): IpFamily => (f === 4 ? 'ip' : 'ip6');
async function saved(ipt: FakeIptables, f: Family = 4) {
  return parseIptablesSave(await ipt.save(fam(f)));
}
const declared = (text: string): string[] => text.split('\n').filter((l) => l.startsWith(':KUBE-S') && !l.startsWith(':KUBE-SERVICES')).map((l) => l.slice(1).split(' ')[0]!);
const metric = async (m: ProxyMetrics, name: string): Promise<number> =>
  (await m.registry.getSingleMetric(name)!.get()).values.reduce((a, v) => a + v.value, 0);

describe('IPTablesFamilyProxier', () => {
  it('does nothing before both sources are synced, but the health clock runs', async () => {
    const { p, ipt, requestSync, health, tick } = setup();
    p.onServiceUpdate(undefined, svc('a', '172.30.0.1', [tcpP('p', 80)]));
    expect(requestSync).not.toHaveBeenCalled();
    tick(60_001);
    expect(health.health().healthy).toBe(false); // never synced: stale
    expect(await p.sync('periodic')).toBeUndefined();
    expect(ipt.restores).toHaveLength(0);
    p.setInitialized();
    expect(requestSync).toHaveBeenCalledTimes(1);
    await p.sync('requested');
    expect(health.health().healthy).toBe(true);
  });

  it('first sync: one restore with the service chains, base-chain jumps and canaries', async () => {
    const { p, ipt, metrics } = setup();
    p.onServiceUpdate(undefined, svc('a', '172.30.0.1', [tcpP('p', 80)]));
    p.onEndpointSliceUpdate(slice('a', ['10.244.1.2', '10.244.2.2'], [tcpP('p', 8080)]), false);
    p.setInitialized();
    const out = await p.sync('requested');
    expect(out?.full).toBe(true);
    expect(ipt.restores).toHaveLength(1);
    expect(ipt.restores[0]!.noflush).toBe(true);
    const s = await saved(ipt);
    for (const t of ['mangle', 'filter', 'nat']) expect(s.hasChain(t, 'KUBE-PROXY-CANARY')).toBe(true);
    expect(s.hasRule('nat', 'PREROUTING', ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'])).toBe(true);
    expect(s.hasRule('nat', 'POSTROUTING', ['-m', 'comment', '--comment', 'kubernetes postrouting rules', '-j', 'KUBE-POSTROUTING'])).toBe(true);
    expect(s.hasRule('filter', 'FORWARD', ['-m', 'comment', '--comment', 'kubernetes forwarding rules', '-j', 'KUBE-FORWARD'])).toBe(true);
    expect(s.rules('filter', 'INPUT').map((r) => r.args.at(-1))).toEqual(['KUBE-FIREWALL', 'KUBE-PROXY-FIREWALL', 'KUBE-NODEPORTS', 'KUBE-EXTERNAL-SERVICES']);
    const svcChains = [...s.table('nat')!.chains.keys()].filter((c) => c.startsWith('KUBE-SVC-') || c.startsWith('KUBE-SEP-'));
    expect(svcChains).toHaveLength(3);
    expect(await metric(metrics, 'kubeproxy_sync_proxy_rules_last_timestamp_seconds')).toBe(1000);
    expect(await metric(metrics, 'kubeproxy_sync_proxy_rules_service_changes_total')).toBe(1);
    expect(await metric(metrics, 'kubeproxy_sync_proxy_rules_endpoint_changes_total')).toBe(1);

    // A second full sync finds the jumps in place and does not insert them twice.
    await p.sync('retry');
    const s2 = await saved(ipt);
    expect(s2.rules('filter', 'INPUT')).toHaveLength(4);
    expect(s2.rules('nat', 'PREROUTING')).toHaveLength(1);
  });

  it('partial sync after one endpoint change rewrites only that service, and deletes its stale chains', async () => {
    const { p, ipt } = setup();
    p.onServiceUpdate(undefined, svc('a', '172.30.0.1', [tcpP('p', 80)]));
    p.onServiceUpdate(undefined, svc('b', '172.30.0.2', [tcpP('p', 80)]));
    p.onEndpointSliceUpdate(slice('a', ['10.244.1.2'], [tcpP('p', 8080)]), false);
    p.onEndpointSliceUpdate(slice('b', ['10.244.1.3', '10.244.1.4'], [tcpP('p', 8080)]), false);
    p.setInitialized();
    await p.sync('requested');
    const before = await saved(ipt);
    const bChains = [...before.table('nat')!.chains.keys()].filter((c) => c.startsWith('KUBE-SEP-') && before.rules('nat', c).some((r) => r.line.includes('10.244.1.')));
    expect(bChains).toHaveLength(3);

    p.onEndpointSliceUpdate(slice('b', ['10.244.1.3'], [tcpP('p', 8080)]), false);
    const out = await p.sync('requested');
    expect(out?.full).toBe(false);
    const text = ipt.restores[1]!.text;
    expect(text).not.toContain('*mangle');
    expect(text).not.toContain('ns/a:p -> ');
    expect(text).toContain('ns/b:p -> 10.244.1.3:8080');
    expect(out!.result.deletedChains).toHaveLength(1);
    expect(text).toContain(`-X ${out!.result.deletedChains[0]}`);
    const after = await saved(ipt);
    // a's chains are untouched and still there; b's dropped endpoint chain is gone.
    expect(after.rules('nat').some((r) => r.line.includes('ns/a:p -> 10.244.1.2:8080'))).toBe(true);
    expect(after.hasChain('nat', out!.result.deletedChains[0]!)).toBe(false);
    // b's SVC and its one SEP are written; the dropped SEP is declared (flushed) to be deleted.
    expect(declared(text).sort()).toEqual([...out!.result.writtenChains, ...out!.result.deletedChains].sort());
    expect(out!.result.writtenChains).toHaveLength(2);
  });

  it('a failed restore keeps the previous rules, is counted, and the retry is a full sync', async () => {
    const { p, ipt, metrics } = setup();
    p.onServiceUpdate(undefined, svc('a', '172.30.0.1', [tcpP('p', 80)]));
    p.onEndpointSliceUpdate(slice('a', ['10.244.1.2'], [tcpP('p', 8080)]), false);
    p.setInitialized();
    await p.sync('requested');
    const good = await ipt.save('ip');

    p.onEndpointSliceUpdate(slice('a', ['10.244.1.9'], [tcpP('p', 8080)]), false);
    ipt.failNext.ip = 1;
    const err = await p.sync('requested').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestoreFailedError);
    const rf = err as RestoreFailedError;
    expect(rf.line).toBe(3);
    expect(rf.lineText).toBe(ipt.restores[1]!.text.split('\n')[2]);
    expect(rf.message).toContain('at line 3');
    expect(await ipt.save('ip')).toBe(good);
    expect(await metric(metrics, 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total')).toBe(1);
    expect(await metric(metrics, 'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total')).toBe(1);

    // The runner retries; even a plain request is a full sync after a failure.
    const out = await p.sync('requested');
    expect(out?.full).toBe(true);
    expect(ipt.restores[2]!.text).toContain('*mangle');
    const s = await saved(ipt);
    expect(s.rules('nat').some((r) => r.line.includes('10.244.1.9:8080'))).toBe(true);
    expect(s.rules('nat').some((r) => r.line.includes('10.244.1.2:8080'))).toBe(false);
  });

  it('the periodic tick checks the canary: present → partial, gone → full resync that restores everything', async () => {
    const { p, ipt } = setup();
    p.onServiceUpdate(undefined, svc('a', '172.30.0.1', [tcpP('p', 80)]));
    p.onEndpointSliceUpdate(slice('a', ['10.244.1.2'], [tcpP('p', 8080)]), false);
    p.setInitialized();
    await p.sync('requested');
    expect((await p.sync('periodic'))?.full).toBe(false);

    // A firewall reload: every table flushed.
    ipt.families.ip = new Map();
    const out = await p.sync('periodic');
    expect(out?.full).toBe(true);
    const s = await saved(ipt);
    expect(s.hasChain('mangle', 'KUBE-PROXY-CANARY')).toBe(true);
    expect(s.rules('nat').some((r) => r.line.includes('ns/a:p -> 10.244.1.2:8080'))).toBe(true);
    expect(s.rules('nat', 'PREROUTING')).toHaveLength(1);
  });

  it('does a full sync once per full-sync period', async () => {
    const { p, tick } = setup();
    p.setInitialized();
    await p.sync('requested');
    expect((await p.sync('requested'))?.full).toBe(false);
    tick(3_600_000);
    expect((await p.sync('requested'))?.full).toBe(true);
  });

  it('reports the sync as healthy only after it succeeded', async () => {
    const { p, health, ipt, tick } = setup();
    p.setInitialized();
    ipt.failNext.ip = 1;
    await expect(p.sync('requested')).rejects.toThrow(RestoreFailedError);
    tick(60_001);
    expect(health.health().healthy).toBe(false);
    await p.sync('retry');
    expect(health.health()).toMatchObject({ healthy: true, lastUpdated: { wallMs: 1_060_001 } });
  });
});

describe('conntrack cleanup', () => {
  const VIP = '172.30.0.10';
  const entry = (ct: FakeConntrack, client: string, sport: number, replySrc: string, replySport: number, dst = VIP, dport = 53) =>
    ct.insert({ proto: 'udp', timeout: 30, orig: { src: IPAddr.mustParse(client), dst: IPAddr.mustParse(dst), sport, dport }, reply: { src: IPAddr.mustParse(replySrc), dst: IPAddr.mustParse(client), sport: replySport, dport: sport } });

  async function dns() {
    const t = setup();
    t.p.onServiceUpdate(undefined, svc('dns', VIP, [udp('dns', 53)], { type: 'NodePort', ports: [{ name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP', nodePort: 30053 }] }));
    t.p.onEndpointSliceUpdate(slice('dns', ['10.244.1.2', '10.244.2.2'], [udp('dns', 5353)]), false);
    t.p.setInitialized();
    await t.p.sync('requested');
    return t;
  }

  it('deletes entries of a removed endpoint, keeps those of the others', async () => {
    const { p, conntrack } = await dns();
    await entry(conntrack, '10.244.3.3', 40000, '10.244.1.2', 5353);
    await entry(conntrack, '10.244.3.3', 40001, '10.244.2.2', 5353);
    await entry(conntrack, '198.51.100.9', 40002, '10.244.1.2', 5353, '198.51.100.1', 30053);
    p.onEndpointSliceUpdate(slice('dns', ['10.244.2.2'], [udp('dns', 5353)]), false);
    const out = await p.sync('requested');
    expect(out?.conntrackDeleted).toBe(2);
    expect(conntrack.entries.map((e) => e.reply.src.toString())).toEqual(['10.244.2.2']);
  });

  it('deletes entries when the service scales to zero endpoints (k/k#139628)', async () => {
    const { p, conntrack } = await dns();
    await entry(conntrack, '10.244.3.3', 40000, '10.244.1.2', 5353);
    await entry(conntrack, '10.244.3.3', 40001, '10.244.2.2', 5353);
    p.onEndpointSliceUpdate(slice('dns', [], [udp('dns', 5353)]), false);
    expect((await p.sync('requested'))?.conntrackDeleted).toBe(2);
    expect(conntrack.entries).toHaveLength(0);
  });

  it('deletes blackholed entries when a service goes from zero to some endpoints', async () => {
    const { p, conntrack } = await dns();
    p.onEndpointSliceUpdate(slice('dns', [], [udp('dns', 5353)]), false);
    await p.sync('requested');
    // Made while there was no endpoint: not DNATed, the reply would come from the VIP itself.
    await entry(conntrack, '10.244.3.3', 40000, VIP, 53);
    p.onEndpointSliceUpdate(slice('dns', ['10.244.1.7'], [udp('dns', 5353)]), false);
    expect((await p.sync('requested'))?.conntrackDeleted).toBe(1);
    expect(conntrack.entries).toHaveLength(0);
  });

  it('deletes entries to the ClusterIP of a deleted UDP service, and leaves unrelated entries alone', async () => {
    const { p, conntrack } = await dns();
    await entry(conntrack, '10.244.3.3', 40000, '10.244.1.2', 5353);
    await entry(conntrack, '10.244.3.3', 40001, '192.0.2.53', 53, '192.0.2.53', 53);
    p.onServiceUpdate(svc('dns', VIP, [udp('dns', 53)], { type: 'NodePort', ports: [{ name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP', nodePort: 30053 }] }), undefined);
    expect((await p.sync('requested'))?.conntrackDeleted).toBe(1);
    expect(conntrack.entries.map((e) => e.orig.dst.toString())).toEqual(['192.0.2.53']);
  });

  it('does not list conntrack on a sync without UDP changes', async () => {
    const { p, conntrack } = await dns();
    const list = vi.spyOn(conntrack, 'list');
    p.onServiceUpdate(undefined, svc('web', '172.30.0.80', [tcpP('http', 80)]));
    await p.sync('requested');
    expect(list).not.toHaveBeenCalled();
  });
});

describe('ServiceProxy (dual-stack, sources, runners)', () => {
  it('syncs both families from the sources; a failing family retries without holding the other back', async () => {
    const ipt = new FlakyIptables();
    ipt.failNext.ip6 = 2;
    const metrics = new ProxyMetrics(newRegistry());
    const health = new ProxyHealth([4, 6], 60_000);
    const services = new FakeSource<V1Service>('Service');
    const slices = new FakeSource<V1EndpointSlice>('EndpointSlice');
    const proxy = new ServiceProxy(
      {
        families: [4, 6],
        nodeName: 'node-a',
        minSyncPeriodMs: 0,
        syncPeriodMs: 30_000,
        retryInitialMs: 10,
        backend: iptablesBackend(ipt, { nodeName: 'node-a', renderOptions: (family) => ({ family, nodeName: 'node-a' }) }),
      },
      { conntrack: new FakeConntrack(), log: silentLogger(), metrics, health },
    );
    const ac = new AbortController();
    const done = proxy.run({ services, endpointSlices: slices }, ac.signal);
    services.add(makeService('ns', 'a', { clusterIP: '172.30.0.1', clusterIPs: ['172.30.0.1', 'fd00:30::1'], ipFamilies: ['IPv4', 'IPv6'], ports: [{ name: 'p', port: 80, protocol: 'TCP' }] }));
    slices.add(slice('a', ['10.244.1.2'], [tcpP('p', 8080)]));
    slices.add({ ...slice('a', ['fd00:10::2'], [tcpP('p', 8080)], 6), metadata: { namespace: 'ns', name: 'a-v6', labels: { 'kubernetes.io/service-name': 'a' } } });
    expect(ipt.restores).toHaveLength(0); // nothing before the sources are synced
    services.sync();
    slices.sync();
    await vi.waitFor(async () => {
      expect((await saved(ipt, 4)).rules('nat').some((r) => r.line.includes('10.244.1.2:8080'))).toBe(true);
      expect((await saved(ipt, 6)).rules('nat').some((r) => r.line.includes('[fd00:10::2]:8080'))).toBe(true);
    });
    expect(ipt.restores.filter((r) => r.family === 'ip')).toHaveLength(1);
    expect(ipt.restores.filter((r) => r.family === 'ip6').length).toBe(3);
    expect(await metric(metrics, 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total')).toBe(2);
    ac.abort();
    await done;
  });
});
