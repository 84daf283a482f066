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
import { commandsText, type NftCommand, type NftTableRef } from '../../lib/netfilter/nft-netlink-commands.ts';
import { NftBatchError, type NftBatchWriter } from '../../lib/netfilter/nft-netlink.ts';
import { NETLINK_MAX_TRANSACTION_LINES, NFTablesFamilyProxier, NftTransactionError } from './nftables.ts';

/** A batch writer over FakeNft (the same commands as text), recording each batch; can fail the next one. */
class FakeWriter implements NftBatchWriter {
  readonly batches: NftCommand[][] = [];
  readonly known: string[] = [];
  failNext = 0;
  constructor(readonly nft: FakeNft) {}
  async apply(table: NftTableRef, commands: readonly NftCommand[]): Promise<void> {
    this.batches.push([...commands]);
    if (this.failNext > 0) {
      this.failNext--;
      throw new NftBatchError(table, commandsText(table, [commands[commands.length - 1]!]).trim(), 2, [{ seq: 1, errno: 2 }]);
    }
    await this.nft.run(commandsText(table, commands));
  }
  reset(): void {}
  knownSet(_t: NftTableRef, name: string, kind: 'set' | 'map', type: string): void {
    this.known.push(`${kind} ${name}: ${type}`);
  }
  close(): void {}
}

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

function setup(nft = new FlakyNft(), writer?: NftBatchWriter) {
  const metrics = new ProxyMetrics(newRegistry());
  const conntrack = new FakeConntrack();
  const p = new NFTablesFamilyProxier(
    { family: 4, nodeName: 'n', renderOptions: () => ({ family: 4, nodeName: 'n' }) },
    { nft, conntrack, log: silentLogger(), metrics, health: new ProxyHealth([4], 60_000), requestSync: vi.fn(), ...(writer ? { writer: () => writer } : {}) },
  );
  return { p, nft, metrics, conntrack };
}
const tableText = async (nft: FakeNft): Promise<string> => JSON.stringify(await nft.list('ip', 'kube-proxy'));
/** The table without handles: chains, each chain's rules in order, each set's elements. */
const content = async (nft: FakeNft): Promise<unknown> => {
  const t = (await nft.list('ip', 'kube-proxy'))!;
  return {
    chains: t.chains.map((c) => c.name).sort(),
    rules: Object.fromEntries(t.chains.map((c) => [c.name, t.rules.filter((r) => r.chain === c.name).map((r) => `${r.text}${r.comment ? ` # ${r.comment}` : ''}`)])),
    sets: Object.fromEntries(t.sets.map((s) => [s.name, (s.elements ?? []).map((e) => `${e.key}:${e.value ?? ''}`).sort()])),
  };
};

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

  describe('with a batch writer (the netlink writer’s place)', () => {
    const world = (p: NFTablesFamilyProxier, names: string[]): void => {
      names.forEach((n, i) => {
        p.onServiceUpdate(undefined, svc(n, `172.30.0.${i + 1}`));
        p.onEndpointSliceUpdate(slice(n, [`10.244.1.${i + 1}`, `10.244.2.${i + 1}`]), false);
      });
      p.setInitialized();
    };

    it('sends the commands as batches, chunked at NETLINK_MAX_TRANSACTION_LINES, no nft -f', async () => {
      const nft = new FlakyNft();
      const writer = new FakeWriter(nft);
      const { p } = setup(nft, writer);
      world(p, ['a', 'b']);
      await p.sync('requested');
      expect(nft.texts.length).toBe(writer.batches.length);
      expect(writer.batches.every((b) => b.length <= NETLINK_MAX_TRANSACTION_LINES)).toBe(true);
      expect(await tableText(nft)).toContain('10.244.2.2');
      // An endpoint added (a new endpoint chain) is one batch: the chain, its rules, the service's new vmap.
      const n = writer.batches.length;
      p.onEndpointSliceUpdate(slice('a', ['10.244.1.1', '10.244.2.1', '10.244.3.1']), false);
      await p.sync('requested');
      expect(writer.batches.length - n).toBe(1);
      const batch = writer.batches[n]!;
      expect(batch[0]).toMatchObject({ op: 'add-chain' });
      expect(JSON.stringify(batch)).toContain('10.244.3.1');
    });

    it('a refused batch is counted, logged with the failing command, and retried', async () => {
      const nft = new FlakyNft();
      const writer = new FakeWriter(nft);
      const { p, metrics } = setup(nft, writer);
      world(p, ['a']);
      await p.sync('requested');
      const before = await tableText(nft);
      p.onEndpointSliceUpdate(slice('a', ['10.244.1.9']), false);
      writer.failNext = 1;
      const err = await p.sync('requested').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NftTransactionError);
      expect((err as Error).message).toMatch(/failed \(ENOENT\): (add|delete|flush) \w+ ip kube-proxy /);
      expect(await tableText(nft)).toBe(before);
      const failures = (await metrics.registry.getSingleMetric('kubeproxy_sync_proxy_rules_nftables_sync_failures_total')!.get()).values[0]!.value;
      expect(failures).toBe(1);
      await p.sync('retry');
      expect(await tableText(nft)).toContain('10.244.1.9');
    });

    it('a restart takes the table over: no table delete, stale objects go, the result is a cold start’s', async () => {
      const nft = new FlakyNft();
      const first = setup(nft, new FakeWriter(nft));
      world(first.p, ['a', 'b', 'c']);
      await first.p.sync('requested');
      // The next process: b is gone, c has other endpoints.
      const writer = new FakeWriter(nft);
      const second = setup(nft, writer);
      second.p.onServiceUpdate(undefined, svc('a', '172.30.0.1'));
      second.p.onEndpointSliceUpdate(slice('a', ['10.244.1.1', '10.244.2.1']), false);
      second.p.onServiceUpdate(undefined, svc('c', '172.30.0.3'));
      second.p.onEndpointSliceUpdate(slice('c', ['10.244.3.3']), false);
      second.p.setInitialized();
      const out = await second.p.sync('requested');
      expect(out?.full).toBe(true);
      const sent = writer.batches.flat();
      expect(sent.some((c) => c.op === 'delete-table')).toBe(false);
      expect(sent.some((c) => c.op === 'delete-set' && c.name === 'service-ips')).toBe(false);
      expect(writer.known).toContain('map service-ips: ipv4_addr . inet_proto . inet_service : verdict');
      // The same table as a cold start of the new world.
      const fresh = new FlakyNft();
      const cold = setup(fresh, new FakeWriter(fresh));
      cold.p.onServiceUpdate(undefined, svc('a', '172.30.0.1'));
      cold.p.onEndpointSliceUpdate(slice('a', ['10.244.1.1', '10.244.2.1']), false);
      cold.p.onServiceUpdate(undefined, svc('c', '172.30.0.3'));
      cold.p.onEndpointSliceUpdate(slice('c', ['10.244.3.3']), false);
      cold.p.setInitialized();
      await cold.p.sync('requested');
      const norm = async (n: FakeNft): Promise<unknown> => {
        const t = (await n.list('ip', 'kube-proxy'))!;
        return { chains: t.chains.map((c) => c.name).sort(), rules: t.rules.map((r) => `${r.chain} ${r.text}`).sort(), sets: t.sets.map((s) => `${s.name} ${(s.elements ?? []).map((e) => `${e.key}:${e.value ?? ''}`).sort().join(',')}`).sort() };
      };
      expect(await norm(nft)).toEqual(await norm(fresh));
      // And the next sync has nothing to do.
      const n = writer.batches.length;
      await second.p.sync('periodic');
      expect(writer.batches.length).toBe(n);
    });

    it('a periodic full resync takes the table over and leaves it as it was', async () => {
      const nft = new FlakyNft();
      const writer = new FakeWriter(nft);
      const { p } = setup(nft, writer);
      world(p, ['a', 'b']);
      await p.sync('requested');
      const before = await content(nft);
      p.forceFullSync();
      const out = await p.sync('periodic');
      expect(out?.full).toBe(true);
      expect(await content(nft)).toEqual(before);
      // A change after the takeover is still a partial sync of just that.
      p.onEndpointSliceUpdate(slice('a', ['10.244.1.7']), false);
      p.forceFullSync();
      await p.sync('periodic');
      p.onEndpointSliceUpdate(slice('b', []), false);
      await p.sync('requested');
      const t = JSON.stringify(await content(nft));
      expect(t).toContain('10.244.1.7');
      expect(t).not.toContain('10.244.1.1');
      expect(t).toContain('172.30.0.1 . tcp . 80:goto service-');
      expect(t).toContain('172.30.0.2 . tcp . 80:goto reject-chain');
    });
  });
});
