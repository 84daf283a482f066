// kube-proxy's nftables renderer against the real nft 1.0.6, in namespaces
// this suite creates: the upstream golden passes `nft -c`, and full then
// incremental plans applied for real leave exactly the table the renderer
// recorded (chains, rule counts, set and map elements), for IPv4 and IPv6.
// Differential: the same plans applied once with `nft -f` and once with the
// nf_tables netlink writer, into two fresh namespaces, list identically
// (`nft list table`, `nft -j list table`, and the kernel's expressions as
// `nft --debug=netlink list table` prints them).
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, runOptions } from '../../lib/exec.ts';
import { RealNft, type NftTableInfo } from '../../lib/netfilter/nft.ts';
import { NftBatchError, NftNetlinkWriter } from '../../lib/netfilter/nft-netlink.ts';
import { createNamedNetns, deleteNamedNetns } from '../../lib/netns/index.ts';
import { extraNFTablesWorlds, upstreamNFTablesFakeProxier } from '../../kube-proxy/render/nftables.fixtures.ts';
import { isAffinitySetName, KUBE_PROXY_TABLE, NFTablesRenderer, type NFTablesOptions, type NFTablesState } from '../../kube-proxy/render/nftables.ts';
import { makeService, makeSlice, tcp, World } from '../../kube-proxy/testing/fixtures.ts';
import { overallWorld } from '../../kube-proxy/testing/upstream.ts';

const prefix = `kn-kp2-${randomBytes(3).toString('hex')}`;
const name = prefix;
const created: string[] = [];
let nft: RealNft;

beforeAll(async () => {
  await run('nft', ['--version']);
  nft = new RealNft({ netns: createNamedNetns(name) });
  created.push(name);
});
afterAll(() => {
  for (const n of created) deleteNamedNetns(n);
});

let nsCounter = 0;
function freshNetns(): string {
  const n = `${prefix}-${nsCounter++}`;
  const path = createNamedNetns(n);
  created.push(n);
  return path;
}

/** Everything `nft` can tell about a table: text, JSON without handles, and the kernel's expressions. */
async function listings(netns: string, family: 'ip' | 'ip6'): Promise<{ text: string; json: string; exprs: string }> {
  const o = runOptions({ netns });
  const text = (await run('nft', ['list', 'table', family, KUBE_PROXY_TABLE], o)).stdout;
  const json = (await run('nft', ['-j', 'list', 'table', family, KUBE_PROXY_TABLE], o)).stdout.replace(/"handle": \d+/g, '"handle": 0');
  // Anonymous sets are named by whoever created them (nft: the kernel's __set%d; we: __set<n>);
  // a set's elements are dumped in the kernel's hash order, which depends on insertion order (nft
  // itself reorders runs of `add element`): sorted within each set.
  const raw = (await run('nft', ['--debug=netlink', 'list', 'table', family, KUBE_PROXY_TABLE], o)).stdout.replace(/__(set|map)\d+/g, '__$1N');
  const exprs = raw.replace(/(?:^\telement .*\n)+/gm, (run) => `${run.split('\n').filter((l) => l !== '').sort().join('\n')}\n`);
  return { text, json, exprs };
}

/** The table as content: chains (with their rules in order), sets and maps, each sorted by name, no handles. */
async function canonical(netns: string): Promise<Record<string, unknown>> {
  const raw = JSON.parse((await run('nft', ['-j', 'list', 'table', 'ip', KUBE_PROXY_TABLE], runOptions({ netns }))).stdout) as { nftables: Record<string, Record<string, unknown>>[] };
  const out: Record<string, unknown> = {};
  for (const item of raw.nftables) {
    const [kind, body] = Object.entries(item)[0]!;
    if (kind === 'metainfo') continue;
    const { handle: _h, ...rest } = body;
    if (kind === 'rule') ((out[`chain ${String(rest.chain)} rules`] ??= []) as unknown[]).push(rest.expr);
    else out[`${kind} ${String(rest.name)}`] = rest;
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * Applies the same sequence of syncs to two fresh namespaces, one with
 * `nft -f`, one with the netlink writer, comparing the listings after each.
 */
async function differential(options: NFTablesOptions, w: World, steps: ((w: World) => void)[]): Promise<void> {
  const viaNft = new RealNft({ netns: freshNetns() });
  const nlPath = freshNetns();
  const writer = NftNetlinkWriter.open({ netns: nlPath });
  try {
    const rNft = new NFTablesRenderer(options);
    const rNl = new NFTablesRenderer(options);
    const family = options.family === 6 ? 'ip6' : 'ip';
    for (const step of [() => undefined, ...steps]) {
      step(w);
      w.sync();
      const input = { services: w.services.map, endpoints: w.endpoints.map };
      const a = rNft.plan(input);
      const b = rNl.plan(input);
      expect(b.transactions.map((t) => t.text)).toEqual(a.transactions.map((t) => t.text));
      for (const t of a.transactions) {
        await viaNft.run(t.text);
        rNft.commit(t);
      }
      for (const t of b.transactions) {
        await writer.apply(t.table, t.commands);
        rNl.commit(t);
      }
      const [la, lb] = await Promise.all([listings(viaNft.netns!, family), listings(nlPath, family)]);
      expect(lb.text).toBe(la.text);
      expect(lb.json).toBe(la.json);
      expect(lb.exprs).toBe(la.exprs);
      expect(la.text).toContain(`table ${family} kube-proxy`);
    }
  } finally {
    writer.close();
  }
}

/** The kernel's table in the renderer's terms: chain → rule count, set → sorted "key : value" lines. */
function kernelView(t: NftTableInfo | undefined): { chains: Record<string, number>; sets: Record<string, string[]> } {
  const chains: Record<string, number> = {};
  for (const c of t?.chains ?? []) chains[c.name] = 0;
  for (const r of t?.rules ?? []) chains[r.chain] = (chains[r.chain] ?? 0) + 1;
  const sets: Record<string, string[]> = {};
  for (const s of t?.sets ?? []) {
    // Affinity sets fill themselves from traffic; only their existence is ours.
    sets[s.name] = isAffinitySetName(s.name) ? [] : (s.elements ?? []).map((e) => (e.value !== undefined ? `${e.key} : ${e.value}` : e.key)).sort();
  }
  return { chains, sets };
}

function recordedView(s: NFTablesState): { chains: Record<string, number>; sets: Record<string, string[]> } {
  const chains: Record<string, number> = {};
  for (const [n, c] of s.chains) chains[n] = c.obj.rules.length;
  const sets: Record<string, string[]> = {};
  for (const n of s.sets.keys()) sets[n] = [];
  for (const { obj: e } of s.elements.values()) sets[e.set]!.push(e.value !== undefined ? `${e.key.join(' . ')} : ${e.value}` : e.key.join(' . '));
  for (const v of Object.values(sets)) v.sort();
  return { chains, sets };
}

async function applyAndCompare(r: NFTablesRenderer, w: World): Promise<number> {
  w.sync();
  const plan = r.plan({ services: w.services.map, endpoints: w.endpoints.map });
  for (const t of plan.transactions) {
    await nft.run(t.text);
    r.commit(t);
  }
  const listed = await nft.list(r.family === 6 ? 'ip6' : 'ip', KUBE_PROXY_TABLE);
  expect(kernelView(listed)).toEqual(recordedView(r.state));
  return plan.transactions.length;
}

describe('kube-proxy nftables against nft 1.0.6', () => {
  it('accepts upstream’s golden (nft -c)', async () => {
    const golden = readFileSync(new URL('../../kube-proxy/render/testdata/nft-overall.golden', import.meta.url), 'utf8');
    // Upstream's text lists objects as its fake dumps them; nft wants sets and chains before their users.
    const order = ['table', 'set', 'map', 'chain', 'rule', 'element'];
    const lines = golden.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    const kind = (l: string): number => order.indexOf(l.split(' ')[1]!);
    await nft.check(lines.sort((a, b) => kind(a) - kind(b)).join('\n') + '\n');
  });

  it('IPv4: full then incremental plans leave exactly the recorded table', async () => {
    const w = overallWorld();
    const r = new NFTablesRenderer({ ...upstreamNFTablesFakeProxier(4), maxTransactionLines: 15, maxChainLines: 7 });
    expect(await applyAndCompare(r, w)).toBeGreaterThan(3);
    // Endpoint added to svc4, svc1 deleted, svc6 gets endpoints, svc5 affinity timeout changed.
    w.add(makeSlice('ns4', 'svc4', 1, [{ addresses: ['10.180.0.4'] }, { addresses: ['10.180.0.5'], nodeName: 'test-node' }, { addresses: ['10.180.0.6'] }], [tcp('p80', 80)]));
    await applyAndCompare(r, w);
    w.serviceChanges.update(makeService('ns1', 'svc1', { clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] }), undefined);
    w.add(makeSlice('ns6', 'svc6', 1, [{ addresses: ['10.180.0.9'] }], [tcp('p80', 80)]));
    await applyAndCompare(r, w);
    const svc5 = (timeoutSeconds: number): V1Service =>
      makeService(
        'ns5',
        'svc5',
        {
          type: 'LoadBalancer',
          clusterIP: '172.30.0.45',
          ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3002 }],
          loadBalancerSourceRanges: ['203.0.113.0/25'],
          sessionAffinity: 'ClientIP',
          sessionAffinityConfig: { clientIP: { timeoutSeconds } },
        },
        { loadBalancer: { ingress: [{ ip: '5.6.7.8' }] } },
      );
    w.serviceChanges.update(svc5(10800), svc5(60));
    await applyAndCompare(r, w);
    // svc3 deleted (with the object the tracker saw): its chains go, its elements first.
    w.serviceChanges.update(makeService('ns3', 'svc3', { type: 'NodePort', clusterIP: '172.30.0.43', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3003 }] }), undefined);
    await applyAndCompare(r, w);
    expect([...r.state.chains.keys()].filter((c) => c.includes('ns3/svc3'))).toEqual([]);
    expect(w.issues).toEqual([]);
  });

  it('IPv6: the same layout in ip6 kube-proxy', async () => {
    const w = new World(6, 'test-node').add(
      makeService('ns1', 'svc1', { clusterIP: 'fd00:10:96::41', clusterIPs: ['fd00:10:96::41'], ipFamilies: ['IPv6'], ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }], type: 'NodePort' }),
      makeSlice('ns1', 'svc1', 1, [{ addresses: ['fd00:10::1'] }, { addresses: ['fd00:10::2'], nodeName: 'test-node' }], [tcp('p80', 80)], 'IPv6'),
    );
    const r = new NFTablesRenderer(upstreamNFTablesFakeProxier(6));
    await applyAndCompare(r, w);
    expect([...r.state.chains.keys()].some((c) => c.endsWith('__fd00.10..1/80'))).toBe(true);
    expect(w.issues).toEqual([]);
  });
});

describe('the nf_tables netlink writer against nft -f (differential, real kernel)', () => {
  it('upstream’s golden world, then the partial syncs of the incremental test', async () => {
    const svc5 = (timeoutSeconds: number): V1Service =>
      makeService(
        'ns5',
        'svc5',
        {
          type: 'LoadBalancer',
          clusterIP: '172.30.0.45',
          ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3002 }],
          loadBalancerSourceRanges: ['203.0.113.0/25'],
          sessionAffinity: 'ClientIP',
          sessionAffinityConfig: { clientIP: { timeoutSeconds } },
        },
        { loadBalancer: { ingress: [{ ip: '5.6.7.8' }] } },
      );
    await differential({ ...upstreamNFTablesFakeProxier(4), maxTransactionLines: 15, maxChainLines: 7 }, overallWorld(), [
      (w) => w.add(makeSlice('ns4', 'svc4', 1, [{ addresses: ['10.180.0.4'] }, { addresses: ['10.180.0.5'], nodeName: 'test-node' }, { addresses: ['10.180.0.6'] }], [tcp('p80', 80)])),
      (w) => {
        w.serviceChanges.update(makeService('ns1', 'svc1', { clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] }), undefined);
        w.add(makeSlice('ns6', 'svc6', 1, [{ addresses: ['10.180.0.9'] }], [tcp('p80', 80)]));
      },
      (w) => w.serviceChanges.update(svc5(10800), svc5(60)),
      (w) => w.serviceChanges.update(makeService('ns3', 'svc3', { type: 'NodePort', clusterIP: '172.30.0.43', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3003 }] }), undefined),
      // Everything gone: only the base objects stay.
      (w) => {
        for (const [, sp] of w.services.map) w.serviceChanges.update(makeService(sp.name.namespace, sp.name.name, { clusterIP: sp.clusterIP.toString(), ports: [] }), undefined);
      },
    ]);
  });

  it('the same, with new chains created in their service’s own batch (the proxier’s netlink setting)', async () => {
    await differential({ ...upstreamNFTablesFakeProxier(4), maxTransactionLines: 15, precreateChains: false }, overallWorld(), [
      (w) => w.add(makeSlice('ns4', 'svc4', 1, [{ addresses: ['10.180.0.4'] }, { addresses: ['10.180.0.5'], nodeName: 'test-node' }, { addresses: ['10.180.0.6'] }], [tcp('p80', 80)])),
      (w) => w.serviceChanges.update(makeService('ns3', 'svc3', { type: 'NodePort', clusterIP: '172.30.0.43', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3003 }] }), undefined),
    ]);
  });

  for (const c of extraNFTablesWorlds()) {
    it(`${c.name}: cold start, an endpoint change, a service removed`, async () => {
      await differential(c.options, c.world, [
        (w) => {
          // The first service gets one more endpoint, in a second slice.
          const [sp] = [...w.services.map.values()];
          const v6 = c.options.family === 6;
          w.add(makeSlice(sp!.name.namespace, sp!.name.name, 2, [{ addresses: [v6 ? 'fd00:10::99' : '10.180.0.99'] }], [{ name: sp!.name.port, port: 8081, protocol: sp!.protocol }], v6 ? 'IPv6' : 'IPv4'));
        },
        (w) => {
          const [key] = [...w.services.map.keys()];
          const sp = w.services.map.get(key!)!;
          w.serviceChanges.update(makeService(sp.name.namespace, sp.name.name, { clusterIP: sp.clusterIP.toString(), ports: [] }), undefined);
        },
      ]);
    });
  }

  it('a batch the kernel refuses changes nothing and names the failing command', async () => {
    const path = freshNetns();
    const writer = NftNetlinkWriter.open({ netns: path });
    try {
      const w = overallWorld();
      w.sync();
      const r = new NFTablesRenderer(upstreamNFTablesFakeProxier(4));
      for (const t of r.plan({ services: w.services.map, endpoints: w.endpoints.map }).transactions) {
        await writer.apply(t.table, t.commands);
        r.commit(t);
      }
      const before = await listings(path, 'ip');
      const table = { family: 'ip', name: KUBE_PROXY_TABLE } as const;
      const err = await writer
        .apply(table, [
          { op: 'flush-chain', name: 'services' },
          { op: 'add-element', set: 'cluster-ips', key: ['172.30.9.9'] },
          { op: 'add-rule', chain: 'services', rule: 'jump no-such-chain' },
        ])
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NftBatchError);
      expect((err as NftBatchError).code).toBe('NFT_BATCH_FAILED');
      expect((err as NftBatchError).command).toBe('add rule ip kube-proxy services jump no-such-chain');
      expect((err as NftBatchError).errno).toBe(2);
      // The flush and the element of the same batch did not happen either.
      expect(await listings(path, 'ip')).toEqual(before);
      // The writer goes on: the next batch applies.
      await writer.apply(table, [{ op: 'add-element', set: 'cluster-ips', key: ['172.30.9.9'] }]);
      expect((await listings(path, 'ip')).text).toContain('172.30.9.9');
    } finally {
      writer.close();
    }
  });

  it('a restart takes over the table: chunked rewrite, nothing flushed wholesale, the same table as a cold start', async () => {
    const path = freshNetns();
    const reference = new RealNft({ netns: freshNetns() });
    const listedBy = new RealNft({ netns: path });
    let writer = NftNetlinkWriter.open({ netns: path });
    try {
      const w = overallWorld();
      w.sync();
      const first = new NFTablesRenderer(upstreamNFTablesFakeProxier(4));
      for (const t of first.plan({ services: w.services.map, endpoints: w.endpoints.map }).transactions) {
        await writer.apply(t.table, t.commands);
        first.commit(t);
      }
      writer.close();
      // While "down": svc1 goes, svc4 gets an endpoint, svc5's affinity timeout changes.
      w.serviceChanges.update(makeService('ns1', 'svc1', { clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] }), undefined);
      w.add(makeSlice('ns4', 'svc4', 1, [{ addresses: ['10.180.0.4'] }, { addresses: ['10.180.0.5'], nodeName: 'test-node' }, { addresses: ['10.180.0.6'] }], [tcp('p80', 80)]));
      w.sync();
      // A new process: a new writer, a renderer that adopts what it lists.
      writer = NftNetlinkWriter.open({ netns: path });
      const r = new NFTablesRenderer({ ...upstreamNFTablesFakeProxier(4), maxTransactionLines: 12 });
      const listed = await listedBy.list('ip', KUBE_PROXY_TABLE);
      r.adopt(listed!);
      for (const s of listed!.sets) writer.knownSet({ family: 'ip', name: KUBE_PROXY_TABLE }, s.name, s.kind ?? 'set', `${s.keyType}${s.valueType ? ` : ${s.valueType}` : ''}`);
      const plan = r.plan({ services: w.services.map, endpoints: w.endpoints.map });
      const all = plan.transactions.flatMap((t) => t.commands);
      expect(all.some((c) => c.op === 'delete-table')).toBe(false);
      expect(all.filter((c) => c.op === 'delete-set').map((c) => (c as { name: string }).name)).toEqual([]);
      expect(plan.transactions.length).toBeGreaterThan(3);
      for (const t of plan.transactions) {
        await writer.apply(t.table, t.commands);
        r.commit(t);
      }
      // The same as a cold start of the new world with nft -f.
      const fresh = new NFTablesRenderer(upstreamNFTablesFakeProxier(4));
      for (const t of fresh.plan({ services: w.services.map, endpoints: w.endpoints.map }).transactions) await reference.run(t.text);
      // Chains appear in the order they were created, which differs from a cold start's;
      // everything else is the same: each chain's rules in order, each set's elements.
      const [got, want] = await Promise.all([canonical(path), canonical(reference.netns!)]);
      expect(got).toEqual(want);
      // And the next sync has nothing to do.
      expect(r.plan({ services: w.services.map, endpoints: w.endpoints.map }).transactions).toEqual([]);
    } finally {
      writer.close();
    }
  });
});
