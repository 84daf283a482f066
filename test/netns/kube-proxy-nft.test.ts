// kube-proxy's nftables renderer against the real nft 1.0.6, in a namespace
// this suite creates: the upstream golden passes `nft -c`, and full then
// incremental plans applied for real leave exactly the table the renderer
// recorded (chains, rule counts, set and map elements), for IPv4 and IPv6.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.ts';
import { RealNft, type NftTableInfo } from '../../lib/netfilter/nft.ts';
import { createNamedNetns, deleteNamedNetns } from '../../lib/netns/index.ts';
import { upstreamNFTablesFakeProxier } from '../../kube-proxy/render/nftables.fixtures.ts';
import { isAffinitySetName, KUBE_PROXY_TABLE, NFTablesRenderer, type NFTablesState } from '../../kube-proxy/render/nftables.ts';
import { makeService, makeSlice, tcp, World } from '../../kube-proxy/testing/fixtures.ts';
import { overallWorld } from '../../kube-proxy/testing/upstream.ts';

const name = `kn-kp2-${randomBytes(3).toString('hex')}`;
let nft: RealNft;

beforeAll(async () => {
  await run('nft', ['--version']);
  nft = new RealNft({ netns: createNamedNetns(name) });
});
afterAll(() => deleteNamedNetns(name));

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
