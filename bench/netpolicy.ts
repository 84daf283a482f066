// netpolicy at the reference scale, applied to a real kernel inside
// a throwaway netns (bench/netpolicy.sh makes it): 1,000 pods and 500
// policies (netpolicy/testing/scale-world.ts, ten nodes, node n0 planned),
// per backend: a full render + apply, one pod label change → enforced rules
// (rebuild + plan + renderUpdate + apply), and the rule/element counts as
// the cluster doubles. Prints markdown.
import { performance } from 'node:perf_hooks';
import { RealIpset } from '../lib/netfilter/ipset.ts';
import { RealIptables } from '../lib/netfilter/iptables.ts';
import { RealNft } from '../lib/netfilter/nft.ts';
import { IptablesBackend, NftBackend, type Backend } from '../netpolicy/backend.ts';
import { buildCluster, localPlan, type LocalPlan } from '../netpolicy/model/index.ts';
import { scaleWorld } from '../netpolicy/testing/scale-world.ts';

const netns = process.argv[2];
if (!netns) throw new Error('usage: netpolicy.ts NETNS_PATH [rounds]');
const ROUNDS = Number(process.argv[3] ?? 5);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

const world = scaleWorld(1000);
const plan = (pods = world.pods): LocalPlan => localPlan(buildCluster({ ...world, pods }), 'n0');
const moved = world.pods.findIndex((p) => p.spec?.nodeName === 'n0');
const relabel = (app: string): typeof world.pods => world.pods.map((p, i) => (i === moved ? { ...p, metadata: { ...p.metadata, labels: { app } } } : p));

const backends: Backend[] = [
  new NftBackend(new RealNft({ netns })),
  new IptablesBackend(new RealIptables({ netns, waitSeconds: 5 }), new RealIpset({ netns })),
];

const rows: string[] = [];
for (const b of backends) {
  await b.cleanup();
  const base = plan();
  const full: number[] = [];
  for (let i = 0; i < ROUNDS; i++) full.push(await time(() => b.applyFull(plan())));
  // One label change, enforced: rebuild the cluster, plan, render the difference, apply it.
  const label: number[] = [];
  let prev = base;
  for (let i = 0; i < ROUNDS * 2; i++) {
    label.push(
      await time(async () => {
        const next = plan(i % 2 === 0 ? relabel('app9') : world.pods);
        await b.applyUpdate(prev, next);
        prev = next;
      }),
    );
  }
  const c = b.counts(base);
  rows.push(`| ${b.name} | ${median(full).toFixed(0)} ms | ${median(label).toFixed(1)} ms | ${c.rules} | ${c.elements} |`);
  await b.cleanup();
}

const growth: string[] = [];
for (const pods of [250, 500, 1000, 2000]) {
  const w = scaleWorld(pods);
  const p = localPlan(buildCluster(w), 'n0');
  const [n, i] = backends.map((b) => b.counts(p));
  growth.push(`| ${pods} | ${w.policies.length} | ${p.pods.length} | ${n!.rules} | ${n!.elements} | ${i!.rules} | ${i!.elements} |`);
}

const cluster = buildCluster(world);
console.log(`## netpolicy: ${world.pods.length} pods, ${cluster.policies.length} policies, node n0 (${plan().pods.length} local pods)\n`);
console.log(`node ${process.version}; median of ${ROUNDS} full applies and ${ROUNDS * 2} label changes; real nft / iptables-restore / ipset in a netns.\n`);
console.log('| backend | full render + apply (goal < 2 s) | one label change → rules (goal < 100 ms) | rules | elements |');
console.log('|---|---|---|---|---|');
for (const r of rows) console.log(r);
console.log('\n### Rules and elements as the cluster grows (node n0; 50 pods and 25 policies per namespace)\n');
console.log('| pods | policies | local pods | nft rules | nft elements | iptables rules | ipset elements |');
console.log('|---|---|---|---|---|---|---|');
for (const g of growth) console.log(g);
