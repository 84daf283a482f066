// The agent on fake sources and fake kernel tools: first sync in full,
// partial updates, a failed apply that keeps the rules and is retried, a
// rejected policy that fails closed, conntrack cuts, and cleanup.
import type { V1Namespace, V1NetworkPolicy, V1Node, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { ExecError } from '../lib/exec.ts';
import { IPAddr, IPPrefix } from '../lib/ip/index.ts';
import { FakeSource } from '../lib/kube/index.ts';
import { createLogger } from '../lib/log.ts';
import { newRegistry, type Registry } from '../lib/metrics.ts';
import { FakeConntrack } from '../lib/netfilter/conntrack.ts';
import { FakeIpset } from '../lib/netfilter/ipset.ts';
import { FakeIptables } from '../lib/netfilter/iptables.ts';
import { FakeNft } from '../lib/netfilter/nft.ts';
import { until } from '../test/harness/until.ts';
import { Agent, cutFilters } from './agent.ts';
import { IptablesBackend, NftBackend, renderFlatFull, withJumps, type Backend } from './backend.ts';
import { buildCluster, localPlan } from './model/index.ts';
import { renderUpdate } from './render/nftables.ts';
import { namespace, pod, policy } from './testing/fixtures.ts';

const NODE = 'n1';
const node: V1Node = { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE }, spec: { podCIDR: '10.0.1.0/24', podCIDRs: ['10.0.1.0/24'] } };
const ns = [namespace('x', { ns: 'x' }), namespace('y', { ns: 'y' })];
const xa = pod('x', 'a', { labels: { app: 'a' }, ips: ['10.0.1.1'], node: NODE });
const xb = pod('x', 'b', { labels: { app: 'b' }, ips: ['10.0.1.2'], node: NODE });
const ya = pod('y', 'a', { labels: { app: 'a' }, ips: ['10.0.2.1'], node: 'n2' });
const onlyB = policy('x', 'only-b', { podSelector: { matchLabels: { app: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'b' } } }] }] });

interface World {
  pods: FakeSource<V1Pod>;
  namespaces: FakeSource<V1Namespace>;
  policies: FakeSource<V1NetworkPolicy>;
  nodes: FakeSource<V1Node>;
  agent: Agent;
  registry: Registry;
  logs: Record<string, unknown>[];
  conntrack: FakeConntrack;
}

function world(backend: Backend, policies: V1NetworkPolicy[] = [onlyB], opts: { retryInitialMs?: number } = {}): World {
  const w = {
    pods: new FakeSource<V1Pod>('Pod', [xa, xb, ya]),
    namespaces: new FakeSource<V1Namespace>('Namespace', ns),
    policies: new FakeSource<V1NetworkPolicy>('NetworkPolicy', policies),
    nodes: new FakeSource<V1Node>('Node', [node]),
    registry: newRegistry(),
    logs: [] as Record<string, unknown>[],
    conntrack: new FakeConntrack(),
  };
  const log = createLogger({ format: 'json', destination: { write: (s: string) => void w.logs.push(JSON.parse(s) as Record<string, unknown>) } });
  const agent = new Agent({
    nodeName: NODE,
    sources: w,
    backend,
    conntrack: w.conntrack,
    log,
    registry: w.registry,
    retryInitialMs: opts.retryInitialMs ?? 1000,
    retryMaxMs: 1000,
  });
  return { ...w, agent };
}

function planOf(w: World): ReturnType<typeof localPlan> {
  const c = buildCluster({ pods: w.pods.list(), namespaces: w.namespaces.list(), policies: w.policies.list() });
  return localPlan(c, NODE, { podCIDRs: [IPPrefix.mustParse('10.0.1.0/24')] });
}

async function metric(reg: Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const m = (await reg.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
  return v?.value;
}

/** A FakeNft whose next run fails as nft does on a rejected line. */
class FailingNft extends FakeNft {
  failNext = 0;
  override async run(tx: Parameters<FakeNft['run']>[0]): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--;
      const text = String(tx);
      const line = text.split('\n')[1] ?? '';
      throw new ExecError('EXEC_FAILED', { command: 'nft -f -', exitCode: 1, stderr: `/dev/stdin:2:1-${line.length}: Error: Could not process rule: No such file or directory\n${line}\n`, shortMessage: 'Command failed with exit code 1: nft -f -' });
    }
    return super.run(tx);
  }
}

describe('agent, nftables backend', () => {
  it('applies the first sync in full, then only the difference', async () => {
    const nft = new FakeNft();
    const w = world(new NftBackend(nft));
    expect(w.agent.ready).toBe(false);
    await w.agent.sync({ reason: 'requested' });
    expect(w.agent.ready).toBe(true);
    const first = planOf(w);
    expect(nft.runs).toEqual([renderFlatFull(first)]);
    expect(await nft.list('inet', 'netpolicy')).toBeDefined();
    expect(await metric(w.registry, 'netpolicy_policies')).toBe(1);
    expect(await metric(w.registry, 'netpolicy_local_pods_isolated', { direction: 'ingress' })).toBe(1);
    expect(await metric(w.registry, 'netpolicy_local_pods_isolated', { direction: 'egress' })).toBe(0);
    expect(await metric(w.registry, 'netpolicy_rules')).toBeGreaterThan(0);
    expect(await metric(w.registry, 'netpolicy_set_elements')).toBeGreaterThan(0);

    // x/b loses the label the policy admits: only set elements change.
    w.pods.update(pod('x', 'b', { labels: { app: 'c' }, ips: ['10.0.1.2'], node: NODE }));
    await w.agent.sync({ reason: 'requested' });
    const second = planOf(w);
    expect(nft.runs).toHaveLength(2);
    expect(nft.runs[1]).toBe(renderUpdate(first, second));
    expect(nft.runs[1]).not.toContain('delete table');
    expect(nft.runs[1]).toContain('delete element inet netpolicy peer_');

    // Nothing changed: nothing is written.
    await w.agent.sync({ reason: 'requested' });
    expect(nft.runs).toHaveLength(2);

    // The periodic resync writes everything again.
    await w.agent.sync({ reason: 'periodic' });
    expect(nft.runs[2]).toBe(renderFlatFull(second));
  });

  it('keeps the previous rules when an apply fails, logs the failing line, counts it and retries in full', async () => {
    const nft = new FailingNft();
    const w = world(new NftBackend(nft), [onlyB], { retryInitialMs: 20 });
    const ac = new AbortController();
    w.pods.sync();
    w.namespaces.sync();
    w.policies.sync();
    w.nodes.sync();
    const running = w.agent.run(ac.signal);
    try {
      await until(() => w.agent.ready);
      const applied = structuredClone(nft.tables);
      const before = nft.runs.length;
      nft.failNext = 1;
      w.policies.delete(onlyB);
      await until(() => w.logs.some((l) => l['msg'] === 'sync failed: previous rules stay, retrying'));
      expect(nft.tables).toEqual(applied);
      const err = w.logs.find((l) => l['msg'] === 'sync failed: previous rules stay, retrying')!;
      expect(err).toMatchObject({ stage: 'apply', tool: 'nft -f -', failures: 1 });
      expect(String(err['line'])).toMatch(/^(delete|add|flush)/);
      expect(await metric(w.registry, 'netpolicy_sync_errors_total', { stage: 'apply' })).toBe(1);
      // The retry renders in full and succeeds: the policy's chain is gone.
      await until(() => nft.runs.length > before);
      expect(nft.runs.at(-1)).toContain('delete table inet netpolicy');
      expect(nft.runs.at(-1)).not.toContain('pol_in_x_only-b');
    } finally {
      ac.abort();
      await running;
    }
  });

  it('rejects an invalid policy, logs it by name, field and reason, and isolates what it selects (fails closed)', async () => {
    const nft = new FakeNft();
    const bad = policy('x', 'bad', { podSelector: { matchLabels: { app: 'b' } }, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] });
    const w = world(new NftBackend(nft), [onlyB, bad]);
    await w.agent.sync({ reason: 'requested' });
    const line = w.logs.find((l) => l['policy'] === 'x/bad');
    expect(line).toMatchObject({ field: 'spec.ingress[0].from[0].ipBlock.cidr', level: 'warn' });
    expect(String(line!['reason'])).not.toBe('');
    expect(await metric(w.registry, 'netpolicy_rejected_policies')).toBe(1);
    // x/b is isolated now, by a policy that allows nothing; x/a keeps its policy.
    expect(await metric(w.registry, 'netpolicy_local_pods_isolated', { direction: 'ingress' })).toBe(2);
    const plan = planOf(w);
    expect(plan.pods.find((p) => p.key === 'x/b')!.ingress).toBeDefined();
    expect(plan.policies.find((p) => p.key === 'x/bad')).toMatchObject({ rejected: true, ingress: [] });
    expect(nft.runs[0]).toContain('pol_in_x_only-b');
    // Logged once while it lasts, not on every sync.
    await w.agent.sync({ reason: 'periodic' });
    expect(w.logs.filter((l) => l['policy'] === 'x/bad')).toHaveLength(1);
  });

  it('cuts the tracked connections a change now denies, and only those', async () => {
    const nft = new FakeNft();
    const w = world(new NftBackend(nft), []);
    const entry = (src: string, sport: number, dst: string, dport: number): Parameters<FakeConntrack['insert']>[0] => ({
      proto: 'tcp',
      timeout: 100,
      state: 'ESTABLISHED',
      orig: { src: IPAddr.mustParse(src), dst: IPAddr.mustParse(dst), sport, dport },
      reply: { src: IPAddr.mustParse(dst), dst: IPAddr.mustParse(src), sport: dport, dport: sport },
    });
    await w.conntrack.insert(entry('10.0.2.1', 40000, '10.0.1.1', 80)); // y/a → x/a: denied by only-b
    await w.conntrack.insert(entry('10.0.1.2', 40001, '10.0.1.1', 80)); // x/b → x/a: allowed
    await w.conntrack.insert(entry('10.0.2.1', 40002, '10.0.1.2', 80)); // y/a → x/b: not isolated
    for (const e of w.conntrack.entries) e.flags = ['ASSURED'];
    // Denied, but never answered: its next packet is `new` and meets the rules anyway.
    await w.conntrack.insert(entry('10.0.2.1', 40003, '10.0.1.1', 80));
    await w.agent.sync({ reason: 'requested' });
    expect(w.conntrack.entries).toHaveLength(4);
    w.policies.add(onlyB);
    await w.agent.sync({ reason: 'requested' });
    expect(w.conntrack.entries.map((e) => e.orig.sport)).toEqual([40001, 40002, 40003]);
    expect(w.conntrack.deletes).toEqual([{ proto: 'tcp', origDst: IPAddr.mustParse('10.0.1.1'), origDstPort: 80, origSrc: IPAddr.mustParse('10.0.2.1'), origSrcPort: 40000 }]);
    expect(await metric(w.registry, 'netpolicy_conntrack_flows_cut_total')).toBe(1);
  });

  it('cuts with the fewest conntrack deletions that spare every allowed flow', () => {
    const flow = (src: string, sport: number, dst: string, port: number, proto = 'tcp') => {
      const [s, d] = [IPAddr.mustParse(src), IPAddr.mustParse(dst)];
      return { src: s, dst: d, port, protocol: proto.toUpperCase() as 'TCP', entry: { family: 4 as const, proto, timeout: 9, flags: ['ASSURED'], orig: { src: s, dst: d, sport, dport: port }, reply: { src: d, dst: s, sport: port, dport: sport } } };
    };
    const a = flow('10.0.2.1', 1, '10.0.1.1', 80);
    const b = flow('10.0.2.2', 2, '10.0.1.1', 81);
    const c = flow('10.0.2.1', 3, '10.0.1.2', 80);
    const d = flow('10.0.2.3', 4, '10.0.1.2', 80); // stays allowed: same destination and port as c
    const e = flow('10.0.2.1', 5, '10.0.1.3', 80);
    const f = flow('10.0.2.1', 6, '10.0.1.3', 81); // stays allowed: same destination as e, other port
    const u = flow('10.0.2.1', 7, '10.0.1.3', 80, 'udp'); // stays: other protocol
    expect(cutFilters([a, b, c, d, e, f, u], new Set([a, b, c, e]))).toEqual([
      { proto: 'tcp', origDst: a.dst },
      { proto: 'tcp', origDst: c.dst, origDstPort: 80, origSrc: c.src, origSrcPort: 3 },
      { proto: 'tcp', origDst: e.dst, origDstPort: 80 },
    ]);
  });

  it('holds the pod CIDR of its node until evaluated, unless new pods are open', async () => {
    const held = new FakeNft();
    await world(new NftBackend(held)).agent.sync({ reason: 'requested' });
    expect(held.runs[0]).toContain('add element inet netpolicy hold_v4 { 10.0.1.0/24 }');
    const open = new FakeNft();
    const w = world(new NftBackend(open));
    const agent = new Agent({ nodeName: NODE, sources: w, backend: new NftBackend(open), conntrack: w.conntrack, log: createLogger({ format: 'json', destination: { write: () => {} } }), registry: newRegistry(), newPods: 'open' });
    await agent.sync({ reason: 'requested' });
    expect(open.runs[0]).not.toContain('add element inet netpolicy hold_v4');
  });

  it('cleans up its table, and only its table', async () => {
    const nft = new FakeNft();
    await nft.run('add table inet other\nadd chain inet other c\n');
    const backend = new NftBackend(nft);
    const w = world(backend);
    await w.agent.sync({ reason: 'requested' });
    await backend.cleanup();
    expect((await nft.list('inet', 'netpolicy'))).toBeUndefined();
    expect((await nft.list('inet', 'other'))).toBeDefined();
    await backend.cleanup(); // idempotent
  });

  it('reports denied packets from the group chains\u2019 drop counters', async () => {
    const nft = new FakeNft();
    const backend = new NftBackend(nft);
    const w = world(backend);
    expect(await metric(w.registry, 'netpolicy_denied_packets', { direction: 'ingress' })).toBe(0);
    await w.agent.sync({ reason: 'requested' });
    expect(await metric(w.registry, 'netpolicy_denied_packets', { direction: 'ingress' })).toBe(0);
    // As `nft -j list` reports a chain that has dropped packets.
    const listed = await nft.list('inet', 'netpolicy');
    const grp = listed!.rules.find((r) => r.chain.startsWith('grp_in_') && r.text.includes('drop'))!;
    nft.list = async () => ({ ...listed!, rules: [{ ...grp, text: 'counter packets 7 bytes 420 drop' }] });
    expect(await backend.denied()).toEqual({ ingress: 7, egress: 0 });
  });
});

describe('agent, iptables + ipset backend', () => {
  it('installs the jumps first in FORWARD and INPUT once, applies updates, and cleans up only its own', async () => {
    const ipt = new FakeIptables();
    const ipset = new FakeIpset();
    // Someone else's rules and sets, which must survive everything.
    await ipt.restore('ip', '*filter\n:KUBE-FORWARD - [0:0]\n-A FORWARD -j KUBE-FORWARD\n-A KUBE-FORWARD -j ACCEPT\nCOMMIT\n', { noflush: true });
    await ipset.restore('create KUBE-X hash:ip family inet\n');
    const backend = new IptablesBackend(ipt, ipset);
    const w = world(backend, [onlyB, policy('x', 'block', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.0.2.0/24'] } }] }] })]);
    await w.agent.sync({ reason: 'requested' });
    const fwd = async (chain: string): Promise<string[]> =>
      (await ipt.save('ip', 'filter'))
        .split('\n')
        .filter((l) => l.startsWith(`-A ${chain} `));
    expect((await fwd('FORWARD'))[0]).toBe('-A FORWARD -j NETPOL-FORWARD');
    expect((await fwd('INPUT'))[0]).toBe('-A INPUT -j NETPOL-INPUT');
    expect((await ipt.save('ip6', 'filter')).split('\n').filter((l) => l.startsWith('-A FORWARD '))).toEqual(['-A FORWARD -j NETPOL-FORWARD']);
    expect([...ipset.sets.keys()].filter((n) => n.startsWith('NP4-')).length).toBeGreaterThan(3);
    expect(ipset.save()).toContain('10.0.2.0/24 nomatch');

    // A resync does not add a second jump.
    await w.agent.sync({ reason: 'periodic' });
    expect((await fwd('FORWARD')).filter((l) => l.includes('NETPOL'))).toHaveLength(1);

    // A label change: an update, with no flush of everything.
    const restores = ipt.restores.length;
    w.pods.update(pod('x', 'b', { labels: { app: 'c' }, ips: ['10.0.1.2'], node: NODE }));
    await w.agent.sync({ reason: 'requested' });
    expect(ipset.restores.at(-1)!.text).toMatch(/^del NP4-P-\w+ 10\.0\.1\.2$/m);
    expect(ipt.restores.length).toBe(restores); // only set elements changed

    await backend.cleanup();
    const saved = await ipt.save('ip', 'filter');
    expect(saved).not.toContain('NETPOL');
    expect(saved).toContain('-A FORWARD -j KUBE-FORWARD');
    expect([...ipset.sets.keys()]).toEqual(['KUBE-X']);
    expect(await ipt.save('ip6', 'filter')).not.toContain('NETPOL');
  });

  it('moves a jump that is not first back to the top', () => {
    const saved = '*filter\n:FORWARD ACCEPT [0:0]\n:NETPOL-FORWARD - [0:0]\n-A FORWARD -j KUBE-FORWARD\n-A FORWARD -j NETPOL-FORWARD\n-A INPUT -j NETPOL-INPUT\nCOMMIT\n';
    expect(withJumps('*filter\nCOMMIT\n', saved)).toBe('*filter\n-D FORWARD -j NETPOL-FORWARD\n-I FORWARD 1 -j NETPOL-FORWARD\nCOMMIT\n');
  });
});
