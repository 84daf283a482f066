// Plan and render time at the reference scale: 1,000 pods and 500
// policies (testing/scale-world.ts), ten nodes. Not a test: it prints the
// figures. Pure computation only (no kernel apply; that is the agent's
// benchmark, in bench/).
//
// Run: npx esbuild netpolicy/model/plan.bench.ts --bundle --platform=node \
//        --format=esm --packages=external --outfile=netpolicy/.plan.bench.mjs \
//      && node netpolicy/.plan.bench.mjs; rm -f netpolicy/.plan.bench.mjs
import { performance } from 'node:perf_hooks';
import { iptablesCounts, iptablesState, renderIptablesFull, renderIptablesUpdate } from '../render/iptables.ts';
import { nftCounts, nftState, renderFull, renderUpdate } from '../render/nftables.ts';
import { scaleWorld, SCALE_NODES } from '../testing/scale-world.ts';
import { buildCluster } from './cluster.ts';
import { localPlan, planSize } from './plan.ts';

const ROUNDS = 7;

function median(fn: () => void): number {
  const times: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

const pods = Number(process.argv[2] ?? 1000);
const world = scaleWorld(pods);
const cluster = buildCluster(world);
const plan = localPlan(cluster, 'n0');
const counts = nftCounts(nftState(plan));

// One pod label change: a pod of n0 moves to another app.
const moved = world.pods.findIndex((p) => p.spec?.nodeName === 'n0');
const relabelled = world.pods.map((p, i) => (i === moved ? { ...p, metadata: { ...p.metadata, labels: { app: 'app9' } } } : p));

const tBuild = median(() => buildCluster(world));
const tPlan = median(() => localPlan(cluster, 'n0'));
const tAllNodes = median(() => {
  for (let n = 0; n < SCALE_NODES; n++) localPlan(cluster, `n${n}`);
});
const tRender = median(() => renderFull(plan));
const tRenderIpt = median(() => renderIptablesFull(plan));
const tLabelIpt = median(() => {
  const next = localPlan(buildCluster({ ...world, pods: relabelled }), 'n0');
  renderIptablesUpdate(plan, next);
});
const tLabel = median(() => {
  const next = localPlan(buildCluster({ ...world, pods: relabelled }), 'n0');
  renderUpdate(plan, next);
});
const update = renderUpdate(plan, localPlan(buildCluster({ ...world, pods: relabelled }), 'n0'));

const fmt = (ms: number): string => `${ms.toFixed(1)} ms`;
console.log(`netpolicy plan + render, ${world.pods.length} pods, ${cluster.policies.length} policies, ${SCALE_NODES} nodes (node n0: ${plan.pods.length} local pods)`);
console.log(`node ${process.version}, median of ${ROUNDS}`);
console.log(`  buildCluster (validate + index)        ${fmt(tBuild)}`);
console.log(`  localPlan, one node                    ${fmt(tPlan)}`);
console.log(`  localPlan, all ${SCALE_NODES} nodes                ${fmt(tAllNodes)}`);
console.log(`  renderFull (nft script)                ${fmt(tRender)}   ${renderFull(plan).length} bytes`);
console.log(`  label change: rebuild + plan + update  ${fmt(tLabel)}   ${update.split('\n').filter(Boolean).length} commands`);
console.log(`  renderIptablesFull (ipset + restore)   ${fmt(tRenderIpt)}`);
console.log(`  label change, iptables backend         ${fmt(tLabelIpt)}`);
console.log(`  plan entries ${JSON.stringify(planSize(plan))}`);
console.log(`  nft ${JSON.stringify(counts)}`);
console.log(`  iptables ${JSON.stringify(iptablesCounts(iptablesState(plan)))}`);
