// The IPVS apply layer over the fakes of every boundary (FakeIpvs,
// FakeHandle for rtnetlink, FakeIpset, FakeIptables): what a first sync
// writes, that a partial sync sends only the messages of what changed,
// graceful termination, --ipvs-exclude-cidrs, the no-endpoint sets, restart
// and failure recovery.
import type { V1Endpoint, V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { constants } from 'node:os';
import { describe, expect, it, vi } from 'vitest';
import { IPAddr, IPPrefix, type Family } from '../../lib/ip/index.ts';
import { silentLogger } from '../../lib/log.ts';
import { newRegistry } from '../../lib/metrics.ts';
import { FakeConntrack } from '../../lib/netfilter/conntrack.ts';
import { FakeIpset } from '../../lib/netfilter/ipset.ts';
import { FakeIptables, parseIptablesSave } from '../../lib/netfilter/iptables.ts';
import { FakeHandle } from '../../lib/netlink/fake.ts';
import { FakeIpvs, ipvsDestination, ipvsService } from '../../lib/netlink/ipvs-fake.ts';
import { ProxyHealth } from '../health/proxy.ts';
import { ProxyMetrics } from '../metrics.ts';
import { detectLocalByCIDR } from '../render/options.ts';
import { KUBE_IPVS_DEVICE } from '../render/ipvs.ts';
import { makeService, makeSlice, tcp } from '../testing/fixtures.ts';
import { IPVSFamilyProxier, IPVSSyncError, prepareIPVSNode } from './ipvs.ts';

const NODE_IP = '192.0.2.10';

async function node(): Promise<FakeHandle> {
  const nl = new FakeHandle();
  await nl.linkAdd({ name: 'eth0', kind: 'dummy', up: true });
  const eth0 = await nl.linkByName('eth0');
  await nl.addrAdd(eth0.index, { address: IPPrefix.mustParse(`${NODE_IP}/24`) });
  return nl;
}

interface Kernel {
  ipvs: FakeIpvs;
  netlink: FakeHandle;
  ipset: FakeIpset;
  iptables: FakeIptables;
}

async function kernel(): Promise<Kernel> {
  return { ipvs: new FakeIpvs(), netlink: await node(), ipset: new FakeIpset(), iptables: new FakeIptables() };
}

function proxier(k: Kernel, opts: { family?: Family; excludeCIDRs?: IPPrefix[]; scheduler?: string } = {}) {
  const family = opts.family ?? 4;
  const metrics = new ProxyMetrics(newRegistry());
  let now = 1_000_000;
  const health = new ProxyHealth([family], 60_000, { now: () => ({ wallMs: now, monoSeconds: now / 1000 }) });
  const p = new IPVSFamilyProxier(
    {
      family,
      nodeName: 'node-a',
      renderOptions: () => ({ family, nodeName: 'node-a', localDetector: detectLocalByCIDR(IPPrefix.mustParse('10.244.0.0/16')), ...(opts.scheduler ? { scheduler: opts.scheduler } : {}) }),
      ...(opts.excludeCIDRs ? { excludeCIDRs: opts.excludeCIDRs } : {}),
    },
    { ...k, conntrack: new FakeConntrack(), log: silentLogger(), metrics, health, requestSync: vi.fn(), now: () => now },
  );
  p.setInitialized();
  return { p, metrics, tick: (ms: number) => (now += ms) };
}

type P = { name: string; port: number; protocol: 'TCP' | 'UDP'; nodePort?: number };
const svc = (name: string, ip: string, ports: P[], extra: Partial<V1Service['spec']> = {}): V1Service =>
  makeService('ns', name, { clusterIP: ip, ports: ports.map((p) => ({ ...p, targetPort: p.port })), ...extra });
const ep = (ip: string, nodeName = 'node-a'): V1Endpoint => ({ addresses: [ip], conditions: { ready: true, serving: true, terminating: false }, nodeName });
const slice = (name: string, eps: V1Endpoint[], ports: P[]): V1EndpointSlice => makeSlice('ns', name, 1, eps, ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })));
const http: P[] = [{ name: 'http', port: 80, protocol: 'TCP' }];
const dns: P[] = [{ name: 'dns', port: 53, protocol: 'UDP' }];

const table = (ipvs: FakeIpvs): string[] =>
  ipvs
    .snapshot()
    .map((s) => `${s.service.protocol} ${s.service.address}:${s.service.port} ${s.service.scheduler} -> ${s.destinations.map((d) => `${d.address}:${d.port}/w${d.weight}`).sort().join(',')}`)
    .sort();
const entries = async (ipset: FakeIpset, name: string): Promise<string[]> => ((await ipset.list(name))[0]?.entries ?? []).map((e) => e.entry).sort();
const deviceAddrs = async (nl: FakeHandle): Promise<string[]> => {
  const dev = await nl.linkByName(KUBE_IPVS_DEVICE);
  return (await nl.addrList({ index: dev.index })).map((a) => a.address.toString()).sort();
};
const key = (ip: string, port: number, protocol: 'tcp' | 'udp' = 'tcp') => ipvsService(4, IPAddr.mustParse(ip), protocol, port);

describe('IPVSFamilyProxier: a first sync', () => {
  it('creates kube-ipvs0 with the ClusterIP, the virtual and real servers, the sets and the rules with their jumps', async () => {
    const k = await kernel();
    const { p } = proxier(k);
    p.onServiceUpdate(undefined, svc('web', '10.96.0.10', [{ ...http[0]!, nodePort: 30080 }], { type: 'NodePort' }));
    p.onEndpointSliceUpdate(slice('web', [ep('10.244.1.5'), ep('10.244.2.5', 'node-b')], http), false);
    const o = await p.sync('requested');
    expect(o?.full).toBe(true);
    expect(table(k.ipvs)).toEqual([
      'tcp 10.96.0.10:80 rr -> 10.244.1.5:80/w1,10.244.2.5:80/w1',
      `tcp ${NODE_IP}:30080 rr -> 10.244.1.5:80/w1,10.244.2.5:80/w1`,
    ]);
    expect(await deviceAddrs(k.netlink)).toEqual(['10.96.0.10/32']);
    expect((await k.ipset.list()).map((s) => s.name)).toHaveLength(20);
    expect(await entries(k.ipset, 'KUBE-CLUSTER-IP')).toEqual(['10.96.0.10,tcp:80']);
    expect(await entries(k.ipset, 'KUBE-NODE-PORT-TCP')).toEqual(['30080']);
    expect(await entries(k.ipset, 'KUBE-IPVS-IPS')).toEqual(['10.96.0.10']);
    expect(await entries(k.ipset, 'KUBE-LOOP-BACK')).toEqual(['10.244.1.5,tcp:80,10.244.1.5']);
    const save = parseIptablesSave(await k.iptables.save('ip'));
    expect(save.hasRule('nat', 'PREROUTING', ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'])).toBe(true);
    expect(save.hasRule('filter', 'INPUT', ['-m', 'comment', '--comment', 'kubernetes ipvs access filter', '-j', 'KUBE-IPVS-FILTER'])).toBe(true);
    expect(save.rules('nat', 'KUBE-SERVICES').length).toBeGreaterThan(3);
  });

  it('prepares the node: IPVS sysctls, ip_forward, strict ARP, and the timeouts as SET_CONFIG', async () => {
    const k = await kernel();
    await prepareIPVSNode(k.netlink, k.ipvs, { strictARP: true, timeouts: { tcp: 900, tcpFin: 30, udp: 0 }, kernelRelease: '6.1.0-57-amd64' }, silentLogger());
    for (const [key, v] of [['net/ipv4/vs/conntrack', '1'], ['net/ipv4/vs/expire_nodest_conn', '1'], ['net/ipv4/vs/expire_quiescent_template', '1'], ['net/ipv4/ip_forward', '1'], ['net/ipv4/conf/all/arp_ignore', '1'], ['net/ipv4/conf/all/arp_announce', '2']]) {
      expect(k.netlink.readSysctl(key!), key).toBe(v);
    }
    expect(() => k.netlink.readSysctl('net/ipv4/vs/conn_reuse_mode')).toThrow(); // left alone on a fixed kernel (≥ 5.9)
    expect(await k.ipvs.timeouts()).toEqual({ tcp: 900, tcpFin: 30, udp: 300 });
    await prepareIPVSNode(k.netlink, k.ipvs, { strictARP: false, timeouts: { tcp: 0, tcpFin: 0, udp: 0 }, kernelRelease: '5.4.0' }, silentLogger());
    expect(k.netlink.readSysctl('net/ipv4/vs/conn_reuse_mode')).toBe('0');
  });
});

describe('IPVSFamilyProxier: partial syncs', () => {
  async function synced(n = 20) {
    const k = await kernel();
    const t = proxier(k);
    for (let i = 1; i <= n; i++) {
      t.p.onServiceUpdate(undefined, svc(`s${i}`, `10.96.1.${i}`, http));
      t.p.onEndpointSliceUpdate(slice(`s${i}`, [ep(`10.244.1.${i}`)], http), false);
    }
    await t.p.sync('requested');
    k.ipvs.take();
    return { k, ...t };
  }

  it('one endpoint added at 20 services: one IPVS message, one set entry at most, no iptables-restore', async () => {
    const { k, p } = await synced();
    const restores = k.iptables.restores.length;
    p.onEndpointSliceUpdate(slice('s7', [ep('10.244.1.7'), ep('10.244.3.7', 'node-b')], http), false);
    const o = (await p.sync('requested'))!;
    expect(o.full).toBe(false);
    expect(k.ipvs.take().map((c) => `${c.method} ${c.service}`)).toEqual(['addDestination TCP 10.96.1.7:80']);
    expect(o.ipvsMessages).toBe(1);
    expect(o.virtualServersTouched).toBe(1);
    expect(o.ipsetLines).toBe(0); // a remote endpoint changes no set
    expect(k.iptables.restores.length).toBe(restores);
  });

  it('the first sync binds every ClusterIP (counted) and sends one message per virtual and real server', async () => {
    const k = await kernel();
    const t = proxier(k);
    for (let i = 1; i <= 40; i++) {
      t.p.onServiceUpdate(undefined, svc(`s${i}`, `10.96.1.${i}`, http));
      t.p.onEndpointSliceUpdate(slice(`s${i}`, [ep(`10.244.1.${i}`), ep(`10.244.2.${i}`, 'node-b')], http), false);
    }
    const o = (await t.p.sync('requested'))!;
    expect(o.addressesChanged).toBe(40);
    expect((await deviceAddrs(k.netlink)).length).toBe(40);
    // services() dump + 40 × (service + 2 destinations)
    expect(o.ipvsMessages).toBe(1 + 40 * 3);
  });

  it('a sync with no change sends nothing', async () => {
    const { k, p } = await synced();
    const o = (await p.sync('requested'))!;
    expect(o.ipvsMessages).toBe(0);
    expect(k.ipvs.take()).toEqual([]);
  });

  it('a service deleted: its virtual server, address and entries go, nothing else is touched', async () => {
    const { k, p } = await synced(3);
    p.onServiceUpdate(svc('s2', '10.96.1.2', http), undefined);
    await p.sync('requested');
    expect(k.ipvs.take().map((c) => c.method)).toEqual(['deleteService']);
    expect(await deviceAddrs(k.netlink)).toEqual(['10.96.1.1/32', '10.96.1.3/32']);
    expect(await entries(k.ipset, 'KUBE-CLUSTER-IP')).toEqual(['10.96.1.1,tcp:80', '10.96.1.3,tcp:80']);
    expect(await entries(k.ipset, 'KUBE-IPVS-IPS')).toEqual(['10.96.1.1', '10.96.1.3']);
  });

  it('a periodic sync puts back rules and jumps a firewall reload flushed, without changing IPVS', async () => {
    const { k, p } = await synced(2);
    await k.iptables.restore('ip', '*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n', { noflush: false });
    const o = (await p.sync('periodic'))!;
    expect(o.full).toBe(false);
    expect(o.iptablesRestored).toBe(true);
    expect(o.ipvsMessages).toBe(1); // the listing that checks for drift, nothing else
    const save = parseIptablesSave(await k.iptables.save('ip'));
    expect(save.hasRule('nat', 'PREROUTING', ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'])).toBe(true);
    expect(save.rules('nat', 'KUBE-SERVICES').length).toBeGreaterThan(2);
  });

  it('a periodic sync notices a flushed IPVS table (one listing) and rebuilds it in full', async () => {
    const { k, p } = await synced(3);
    expect((await p.sync('periodic'))!.ipvsMessages).toBe(1);
    await k.ipvs.flush();
    const o = (await p.sync('periodic'))!;
    expect(o.full).toBe(true);
    expect(table(k.ipvs)).toEqual(['tcp 10.96.1.1:80 rr -> 10.244.1.1:80/w1', 'tcp 10.96.1.2:80 rr -> 10.244.1.2:80/w1', 'tcp 10.96.1.3:80 rr -> 10.244.1.3:80/w1']);
  });

  it('the periodic full sync repairs drift: a deleted real server comes back, a foreign service goes', async () => {
    const { k, p, tick } = await synced(2);
    await k.ipvs.deleteDestination(key('10.96.1.1', 80), ipvsDestination(IPAddr.mustParse('10.244.1.1'), 80));
    await k.ipvs.addService(key('10.96.9.9', 80));
    tick(3_600_001);
    const o = (await p.sync('periodic'))!;
    expect(o.full).toBe(true);
    expect(table(k.ipvs)).toEqual(['tcp 10.96.1.1:80 rr -> 10.244.1.1:80/w1', 'tcp 10.96.1.2:80 rr -> 10.244.1.2:80/w1']);
  });
});

describe('IPVSFamilyProxier: graceful termination', () => {
  async function one(ports: P[]) {
    const k = await kernel();
    const t = proxier(k);
    t.p.onServiceUpdate(undefined, svc('web', '10.96.0.10', ports));
    t.p.onEndpointSliceUpdate(slice('web', [ep('10.244.1.5'), ep('10.244.1.6')], ports), false);
    await t.p.sync('requested');
    k.ipvs.take();
    return { k, ...t };
  }

  it('TCP: a removed real server gets weight 0 and is deleted on the first periodic sync after its connections end', async () => {
    const { k, p } = await one(http);
    const vs = key('10.96.0.10', 80);
    const gone = ipvsDestination(IPAddr.mustParse('10.244.1.6'), 80);
    k.ipvs.setConnections(vs, gone, { activeConns: 2, inactiveConns: 1 });
    p.onEndpointSliceUpdate(slice('web', [ep('10.244.1.5')], http), false);
    await p.sync('requested');
    expect(k.ipvs.take().map((c) => `${c.method} ${(c.args[1] as { weight?: number }).weight}`)).toEqual(['updateDestination 0']);
    expect(table(k.ipvs)).toEqual(['tcp 10.96.0.10:80 rr -> 10.244.1.5:80/w1,10.244.1.6:80/w0']);
    expect((await p.sync('periodic'))!.drained).toBe(0);
    expect(table(k.ipvs)).toContain('tcp 10.96.0.10:80 rr -> 10.244.1.5:80/w1,10.244.1.6:80/w0');
    k.ipvs.setConnections(vs, gone, { activeConns: 0, inactiveConns: 0 });
    // A requested (change-driven) sync does not poll; the periodic one does.
    expect((await p.sync('requested'))!.drained).toBe(0);
    expect((await p.sync('periodic'))!.drained).toBe(1);
    expect(table(k.ipvs)).toEqual(['tcp 10.96.0.10:80 rr -> 10.244.1.5:80/w1']);
  });

  it('TCP: a draining real server that comes back gets weight 1 again, without being re-added', async () => {
    const { k, p } = await one(http);
    k.ipvs.setConnections(key('10.96.0.10', 80), ipvsDestination(IPAddr.mustParse('10.244.1.6'), 80), { activeConns: 1 });
    p.onEndpointSliceUpdate(slice('web', [ep('10.244.1.5')], http), false);
    await p.sync('requested');
    p.onEndpointSliceUpdate(slice('web', [ep('10.244.1.5'), ep('10.244.1.6')], http), false);
    await p.sync('requested');
    expect(k.ipvs.take().map((c) => `${c.method} ${(c.args[1] as { weight?: number }).weight}`)).toEqual(['updateDestination 0', 'updateDestination 1']);
    expect(p.draining.size).toBe(0);
  });

  it('UDP: a removed real server is deleted at once', async () => {
    const { k, p } = await one(dns);
    p.onEndpointSliceUpdate(slice('web', [ep('10.244.1.5')], dns), false);
    await p.sync('requested');
    expect(k.ipvs.take().map((c) => c.method)).toEqual(['deleteDestination']);
    expect(table(k.ipvs)).toEqual(['udp 10.96.0.10:53 rr -> 10.244.1.5:53/w1']);
  });

  it('after a restart, weight-0 real servers found in the kernel keep draining and wanted ones get weight 1 (k/k#92019)', async () => {
    const { k } = await one(http);
    const vs = key('10.96.0.10', 80);
    await k.ipvs.updateDestination(vs, ipvsDestination(IPAddr.mustParse('10.244.1.5'), 80, { weight: 0 }));
    await k.ipvs.addDestination(vs, ipvsDestination(IPAddr.mustParse('10.244.1.9'), 80, { weight: 0 }));
    k.ipvs.setConnections(vs, ipvsDestination(IPAddr.mustParse('10.244.1.9'), 80), { activeConns: 1 });
    const { p } = proxier(k);
    p.onServiceUpdate(undefined, svc('web', '10.96.0.10', http));
    p.onEndpointSliceUpdate(slice('web', [ep('10.244.1.5'), ep('10.244.1.6')], http), false);
    await p.sync('requested');
    expect(table(k.ipvs)).toEqual(['tcp 10.96.0.10:80 rr -> 10.244.1.5:80/w1,10.244.1.6:80/w1,10.244.1.9:80/w0']);
    expect([...p.draining.get('tcp/10.96.0.10/80')!.keys()]).toEqual(['10.244.1.9/80']);
  });
});

describe('IPVSFamilyProxier: policies and sets', () => {
  it('a service without endpoints: the virtual server stays empty and its address:port is in KUBE-NO-ENDPOINTS until endpoints come', async () => {
    const k = await kernel();
    const { p } = proxier(k);
    p.onServiceUpdate(undefined, svc('web', '10.96.0.10', http));
    await p.sync('requested');
    expect(table(k.ipvs)).toEqual(['tcp 10.96.0.10:80 rr -> ']);
    expect(await entries(k.ipset, 'KUBE-NO-ENDPOINTS')).toEqual(['10.96.0.10,tcp:80']);
    expect((await k.iptables.save('ip', 'filter'))).toContain('--match-set KUBE-NO-ENDPOINTS dst,dst -j REJECT');
    p.onEndpointSliceUpdate(slice('web', [ep('10.244.1.5')], http), false);
    const o = (await p.sync('requested'))!;
    expect(await entries(k.ipset, 'KUBE-NO-ENDPOINTS')).toEqual([]);
    // The REJECT rule goes with the last entry.
    expect(o.iptablesRestored).toBe(true);
    expect(await k.iptables.save('ip', 'filter')).not.toContain('KUBE-NO-ENDPOINTS');
  });

  it('externalTrafficPolicy Local: the NodePort virtual server has the local endpoints only, the node port is in the LOCAL set', async () => {
    const k = await kernel();
    const { p } = proxier(k);
    p.onServiceUpdate(undefined, svc('web', '10.96.0.10', [{ ...http[0]!, nodePort: 30080 }], { type: 'NodePort', externalTrafficPolicy: 'Local' }));
    p.onEndpointSliceUpdate(slice('web', [ep('10.244.1.5'), ep('10.244.2.5', 'node-b')], http), false);
    await p.sync('requested');
    expect(table(k.ipvs)).toEqual(['tcp 10.96.0.10:80 rr -> 10.244.1.5:80/w1,10.244.2.5:80/w1', `tcp ${NODE_IP}:30080 rr -> 10.244.1.5:80/w1`]);
    expect(await entries(k.ipset, 'KUBE-NODE-PORT-LOCAL-TCP')).toEqual(['30080']);
  });

  it('--ipvs-exclude-cidrs: foreign virtual servers inside are kept, others of the family are deleted', async () => {
    const k = await kernel();
    await k.ipvs.addService(key('198.51.100.7', 443));
    await k.ipvs.addService(key('203.0.113.7', 443));
    await k.ipvs.addService(ipvsService(6, IPAddr.mustParse('2001:db8::7'), 'tcp', 443));
    const { p } = proxier(k, { excludeCIDRs: [IPPrefix.mustParse('198.51.100.0/24')] });
    p.onServiceUpdate(undefined, svc('web', '10.96.0.10', http));
    await p.sync('requested');
    expect(k.ipvs.snapshot().map((s) => `${s.service.address}:${s.service.port}`).sort()).toEqual(['10.96.0.10:80', '198.51.100.7:443', '2001:db8::7:443']);
  });

  it('the scheduler comes from the options; ClientIP affinity makes a persistent service', async () => {
    const k = await kernel();
    const { p } = proxier(k, { scheduler: 'wlc' });
    p.onServiceUpdate(undefined, svc('web', '10.96.0.10', http, { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }));
    await p.sync('requested');
    expect(k.ipvs.snapshot()[0]!.service).toMatchObject({ scheduler: 'wlc', flags: 1, timeout: 60 });
  });

  it('IPv6: KUBE-6- sets, a /128 on kube-ipvs0', async () => {
    const k = await kernel();
    const eth0 = await k.netlink.linkByName('eth0');
    await k.netlink.addrAdd(eth0.index, { address: IPPrefix.mustParse('2001:db8::10/64') });
    const { p } = proxier(k, { family: 6 });
    p.onServiceUpdate(undefined, makeService('ns', 'web', { clusterIP: 'fd00:96::10', ipFamilies: ['IPv6'], clusterIPs: ['fd00:96::10'], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] }));
    await p.sync('requested');
    expect(await deviceAddrs(k.netlink)).toEqual(['fd00:96::10/128']);
    expect(await entries(k.ipset, 'KUBE-6-CLUSTER-IP')).toEqual(['fd00:96::10,tcp:80']);
    expect((await k.ipset.list('KUBE-6-CLUSTER-IP'))[0]!.options['family']).toBe('inet6');
  });
});

describe('IPVSFamilyProxier: failures', () => {
  it('a failed IPVS request is thrown as IPVSSyncError and the next sync compares with the kernel', async () => {
    const k = await kernel();
    const { p } = proxier(k);
    p.onServiceUpdate(undefined, svc('web', '10.96.0.10', http));
    await p.sync('requested');
    p.onEndpointSliceUpdate(slice('web', [ep('10.244.1.5')], http), false);
    k.ipvs.failOn('addDestination', constants.errno.ENOMEM);
    await expect(p.sync('requested')).rejects.toBeInstanceOf(IPVSSyncError);
    const o = (await p.sync('retry'))!;
    expect(o.full).toBe(true);
    expect(table(k.ipvs)).toEqual(['tcp 10.96.0.10:80 rr -> 10.244.1.5:80/w1']);
  });

  it('a failed iptables-restore keeps the previous rules, counts the failure, and is retried in full', async () => {
    const k = await kernel();
    const { p, metrics } = proxier(k);
    p.onServiceUpdate(undefined, svc('web', '10.96.0.10', http));
    await p.sync('requested');
    const before = await k.iptables.save('ip');
    const orig = k.iptables.restore.bind(k.iptables);
    k.iptables.restore = async () => {
      throw new Error('iptables-restore: line 3 failed');
    };
    p.onServiceUpdate(svc('web', '10.96.0.10', http), undefined);
    await expect(p.sync('requested')).rejects.toThrow(/iptables-restore failed/);
    expect(await k.iptables.save('ip')).toBe(before);
    expect((await metrics.registry.getSingleMetric('kubeproxy_sync_proxy_rules_iptables_restore_failures_total')!.get()).values[0]!.value).toBe(1);
    k.iptables.restore = orig;
    expect((await p.sync('retry'))!.full).toBe(true);
    expect(await k.iptables.save('ip')).not.toContain('KUBE-CLUSTER-IP dst,dst -j ACCEPT');
  });
});
