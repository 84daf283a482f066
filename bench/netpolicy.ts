// netpolicy at the reference scale, applied to a real kernel inside
// a throwaway netns (bench/netpolicy.sh makes it): 1,000 pods and 500
// policies (netpolicy/testing/scale-world.ts, ten nodes, node n0 planned),
// per backend: a full render + apply, one pod label change → enforced rules
// (rebuild + plan + renderUpdate + apply; for nft also the way it went
// before NftBackend kept the applied state, interleaved), the nft process
// alone on the same transactions, and the rule/element counts as the
// cluster doubles. Prints markdown.
import { performance } from 'node:perf_hooks';
import { RealIpset } from '../lib/netfilter/ipset.ts';
import { RealIptables } from '../lib/netfilter/iptables.ts';
import { RealNft } from '../lib/netfilter/nft.ts';
import { IptablesBackend, NftBackend, type Backend } from '../netpolicy/backend.ts';
import { buildCluster, localPlan, type LocalPlan } from '../netpolicy/model/index.ts';
import { renderFull, renderUpdate } from '../netpolicy/render/nftables.ts';
import { scaleWorld } from '../netpolicy/testing/scale-world.ts';

const netns = process.argv[2];
if (!netns) throw new Error('usage: netpolicy.ts NETNS_PATH [rounds]');
const nsPath: string = netns;
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
let nftAlone = '';
let beforeRow = '';

/**
 * The nft process alone, on the same transactions the label change writes
 * (rendered beforehand): the two updates alternately, an element-only
 * transaction of the same size, and the floor of one `nft -f -` that
 * changes nothing. Median of ROUNDS * 4 runs each.
 */
async function nftTimings(base: LocalPlan): Promise<string> {
  const nft = new RealNft({ netns: nsPath });
  const next = plan(relabel('app9'));
  const [there, back] = [renderUpdate(base, next), renderUpdate(next, base)];
  const elemOnly = (script: string): string => script.split('\n').filter((l) => / element /.test(l)).join('\n') + '\n';
  const probe = '198.51.100.250';
  const elems = `add element inet netpolicy ingress_v4 { ${probe} : accept }\ndelete element inet netpolicy ingress_v4 { ${probe} }\n`;
  await nft.run(renderFull(base));
  const runs: Record<string, number[]> = { update: [], elements: [], noop: [] };
  for (let i = 0; i < ROUNDS * 4; i++) {
    runs.update!.push(await time(() => nft.run(i % 2 === 0 ? there : back)));
    runs.elements!.push(await time(() => nft.run(elems)));
    runs.noop!.push(await time(() => nft.run('add table inet netpolicy\n')));
  }
  await nft.run('delete table inet netpolicy\n');
  const lines = (s: string): number => s.split('\n').filter((l) => l !== '').length;
  return [
    '| `nft -f -` of | lines | median |',
    '|---|---|---|',
    `| the label change's update (alternately there and back) | ${lines(there)} / ${lines(back)} | ${median(runs.update!).toFixed(1)} ms |`,
    `| of which element commands | ${lines(elemOnly(there))} / ${lines(elemOnly(back))} | |`,
    `| two element commands on one vmap | 2 | ${median(runs.elements!).toFixed(1)} ms |`,
    `| \`add table\` (exists: nothing changes) | 1 | ${median(runs.noop!).toFixed(1)} ms |`,
  ].join('\n');
}
for (const b of backends) {
  await b.cleanup();
  const base = plan();
  const full: number[] = [];
  for (let i = 0; i < ROUNDS; i++) full.push(await time(() => b.applyFull(plan())));
  // One label change, enforced: rebuild the cluster, plan, render the difference, apply it.
  const label: number[] = [];
  const pure: number[] = [];
  const write: number[] = [];
  let prev = plan();
  await b.applyFull(prev);
  // For nft, every other change goes the way it went before the backend kept
  // the applied state (prev rendered again: renderUpdate + nft), interleaved
  // so that both see the same machine load.
  const before: number[] = [];
  const raw = new RealNft({ netns: nsPath });
  // (The first change after an old-way one is not counted: the backend did
  // not apply its prev, so it renders it again, as before.)
  const changes = b instanceof NftBackend ? ROUNDS * 8 : ROUNDS * 2;
  for (let i = 0; i < changes; i++) {
    const t0 = performance.now();
    const next = plan(i % 2 === 0 ? relabel('app9') : world.pods);
    const t1 = performance.now();
    const old = b instanceof NftBackend && i % 4 >= 2;
    if (old) await raw.run(renderUpdate(prev, next));
    else await b.applyUpdate(prev, next);
    const t2 = performance.now();
    prev = next;
    if (old) {
      before.push(t2 - t0);
      continue;
    }
    if (b instanceof NftBackend && i % 4 === 0 && i > 0) continue;
    label.push(t2 - t0);
    pure.push(t1 - t0);
    write.push(t2 - t1);
  }
  if (before.length > 0) beforeRow = `| ${b.name}, prev rendered again (before) | ${median(before).toFixed(1)} ms, interleaved with the ${median(label).toFixed(1)} ms above |`;
  const c = b.counts(base);
  rows.push(`| ${b.name} | ${median(full).toFixed(0)} ms | ${median(label).toFixed(1)} ms | ${median(pure).toFixed(1)} ms | ${median(write).toFixed(1)} ms | ${c.rules} | ${c.elements} |`);
  if (b instanceof NftBackend) nftAlone = await nftTimings(base);
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
console.log(`node ${process.version}; median of ${ROUNDS} full applies and ${ROUNDS * 2} label changes (nft: ${ROUNDS * 2} of each way); real nft / iptables-restore / ipset in a netns.\n`);
console.log('| backend | full render + apply (goal < 2 s) | one label change → rules (goal < 100 ms) | of which rebuild + plan | of which render + apply | rules | elements |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
console.log('\n| label change, same run | median |\n|---|---|');
console.log(beforeRow);
console.log(`\n### The nft process alone (via nsenter into the netns, as RealNft runs it)\n`);
console.log(nftAlone);
console.log('\n### Rules and elements as the cluster grows (node n0; 50 pods and 25 policies per namespace)\n');
console.log('| pods | policies | local pods | nft rules | nft elements | iptables rules | ipset elements |');
console.log('|---|---|---|---|---|---|---|');
for (const g of growth) console.log(g);
