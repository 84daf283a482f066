import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { describe, expect, it, vi } from 'vitest';
import { IPAddr } from '../../lib/ip/index.ts';
import { silentLogger } from '../../lib/log.ts';
import { newRegistry } from '../../lib/metrics.ts';
import { FakeConntrack } from '../../lib/netfilter/conntrack.ts';
import { FakeNft, type NftTransaction } from '../../lib/netfilter/nft.ts';
import { ProxyHealth } from '../health/proxy.ts';
import { ProxyMetrics } from '../metrics.ts';
import { makeService, makeSlice } from '../testing/fixtures.ts';
import { NFTablesFamilyProxier, NftTransactionError } from './nftables.ts';

class FlakyNft extends FakeNft {
  failNext = 0;
  readonly texts: string[] = [];
  override async run(tx: NftTransaction | string): Promise<void> {
    const text = typeof tx === 'string' ? tx : tx.render();
    this.texts.push(text);
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('Error: Could not process rule: No such file or directory');
    }
    return super.run(text);
  }
}

const svc = (name: string, ip: string, protocol: 'TCP' | 'UDP' = 'TCP'): V1Service =>
  makeService('ns', name, { clusterIP: ip, clusterIPs: [ip], ports: [{ name: 'p', port: 80, targetPort: 8080, protocol }] });
const slice = (name: string, ips: string[], protocol: 'TCP' | 'UDP' = 'TCP'): V1EndpointSlice =>
  makeSlice('ns', name, 1, ips.map((ip) => ({ addresses: [ip], conditions: { ready: true, serving: true } })), [{ name: 'p', port: 8080, protocol }]);

function setup(nft = new FlakyNft()) {
  const metrics = new ProxyMetrics(newRegistry());
  const conntrack = new FakeConntrack();
  const p = new NFTablesFamilyProxier(
    { family: 4, nodeName: 'n', renderOptions: () => ({ family: 4, nodeName: 'n' }) },
    { nft, conntrack, log: silentLogger(), metrics, health: new ProxyHealth([4], 60_000), requestSync: vi.fn() },
  );
  return { p, nft, metrics, conntrack };
}
const tableText = async (nft: FakeNft): Promise<string> => JSON.stringify(await nft.list('ip', 'kube-proxy'));

describe('NFTablesFamilyProxier', () => {
  it('programs the kube-proxy table, then applies only what changed', async () => {
    const { p, nft } = setup();
    p.onServiceUpdate(undefined, svc('a', '172.30.0.1'));
    p.onServiceUpdate(undefined, svc('b', '172.30.0.2'));
    p.onEndpointSliceUpdate(slice('a', ['10.244.1.2']), false);
    p.onEndpointSliceUpdate(slice('b', ['10.244.1.3']), false);
    p.setInitialized();
    const first = await p.sync('requested');
    expect(first?.full).toBe(true);
    expect(await nft.list('ip', 'kube-proxy')).toBeDefined();
    expect(await tableText(nft)).toContain('10.244.1.3');

    const n = nft.texts.length;
    p.onEndpointSliceUpdate(slice('b', ['10.244.1.4']), false);
    const second = await p.sync('requested');
    expect(second?.full).toBe(false);
    expect(second?.plan.servicePortsChanged).toBe(1);
    const sent = nft.texts.slice(n).join('\n');
    expect(sent).toContain('10.244.1.4');
    expect(sent).not.toContain('10.244.1.2');
    expect(await tableText(nft)).not.toContain('10.244.1.3');

    // Nothing changed: no transaction at all.
    const m = nft.texts.length;
    await p.sync('periodic');
    expect(nft.texts.length).toBe(m);
  });

  it('rebuilds a table a previous run left behind', async () => {
    const nft = new FlakyNft();
    await nft.run('add table ip kube-proxy\nadd chain ip kube-proxy stale-chain\n');
    const { p } = setup(nft);
    p.onServiceUpdate(undefined, svc('a', '172.30.0.1'));
    p.setInitialized();
    const n = nft.texts.length;
    const out = await p.sync('requested');
    expect(out?.full).toBe(true);
    expect(await tableText(nft)).not.toContain('stale-chain');
    expect(await tableText(nft)).toContain('172.30.0.1');
    // Rebuilding a table that is there is one transaction, however the plan is chunked.
    expect(out!.plan.transactions.length).toBeGreaterThan(1);
    expect(nft.texts.length - n).toBe(1);
  });

  it('a failed transaction is counted and retried; the table stays as it was', async () => {
    const { p, nft, metrics } = setup();
    p.onServiceUpdate(undefined, svc('a', '172.30.0.1'));
    p.onEndpointSliceUpdate(slice('a', ['10.244.1.2']), false);
    p.setInitialized();
    await p.sync('requested');
    const before = await tableText(nft);
    p.onEndpointSliceUpdate(slice('a', ['10.244.1.9']), false);
    nft.failNext = 1;
    await expect(p.sync('requested')).rejects.toThrow(NftTransactionError);
    expect(await tableText(nft)).toBe(before);
    const failures = (await metrics.registry.getSingleMetric('kubeproxy_sync_proxy_rules_nftables_sync_failures_total')!.get()).values[0]!.value;
    expect(failures).toBe(1);
    await p.sync('retry');
    expect(await tableText(nft)).toContain('10.244.1.9');
    expect(await tableText(nft)).not.toContain('10.244.1.2');
  });

  it('deletes stale UDP conntrack entries when the endpoints go away', async () => {
    const { p, conntrack } = setup();
    p.onServiceUpdate(undefined, svc('dns', '172.30.0.53', 'UDP'));
    p.onEndpointSliceUpdate(slice('dns', ['10.244.1.2'], 'UDP'), false);
    p.setInitialized();
    await p.sync('requested');
    await conntrack.insert({ proto: 'udp', timeout: 30, orig: { src: IPAddr.mustParse('10.244.2.2'), dst: IPAddr.mustParse('172.30.0.53'), sport: 4000, dport: 80 }, reply: { src: IPAddr.mustParse('10.244.1.2'), dst: IPAddr.mustParse('10.244.2.2'), sport: 8080, dport: 4000 } });
    p.onEndpointSliceUpdate(slice('dns', [], 'UDP'), false);
    expect((await p.sync('requested'))?.conntrackDeleted).toBe(1);
  });
});
