// Issue 7's host-local goal, from bench/host-local.sh's two measurements:
// "host-local ADD and DEL with 5,000 allocations (absolute, not marginal)
// ≤ 0.5× reference". Absolute = the whole invocation (process start
// included), medians; the hyperfine table and the interleaved series each
// give one verdict.
//   node bench/host-local.goal.mjs <hyperfine.json> <interleave-medians.json>
import { readFileSync } from 'node:fs';

const MAX = 0.5;
const hf = new Map(JSON.parse(readFileSync(process.argv[2], 'utf8')).results.map((r) => [r.command, r.median * 1000]));
const il = JSON.parse(readFileSync(process.argv[3], 'utf8'));
const verdict = (ratio) => (ratio <= MAX ? '**met**' : `**missed** by ${((ratio / MAX - 1) * 100).toFixed(0)} %`);

console.log(`Goal (issue 7): host-local ADD and DEL with 5,000 allocations, absolute medians, ours ≤ ${MAX}× reference:\n`);
console.log('| operation | measured by | reference (ms) | ours (ms) | ours / ref | goal ≤ 0.5× |\n|:---|:---|---:|---:|---:|:---|');
for (const cmd of ['ADD', 'DEL']) {
  const rows = [
    ['hyperfine', hf.get(`ref ${cmd}, 5000 allocations`), hf.get(`ours ${cmd}, 5000 allocations`)],
    ['interleaved spawnSync', il[`ref ${cmd} 5000`], il[`ours ${cmd} 5000`]],
  ];
  for (const [how, ref, ours] of rows) {
    if (ref === undefined || ours === undefined) continue;
    console.log(`| ${cmd}, 5,000 allocations | ${how} | ${ref.toFixed(1)} | ${ours.toFixed(1)} | ${(ours / ref).toFixed(2)}× | ${verdict(ours / ref)} |`);
  }
}
