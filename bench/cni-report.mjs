// Renders bench/cni.sh's hyperfine JSON as the results table: reference and
// ours side by side per operation, plus how much of each figure is start-up
// (the wrapper alone for the reference's Go binaries; `node -e 0` through the
// same wrapper for ours). Usage: node bench/cni-report.mjs hf.json
import { readFileSync } from 'node:fs';

const { results } = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const byName = new Map(results.map((r) => [r.command, r]));
const ms = (s) => s * 1000;
const fmt = (r) => `${ms(r.mean).toFixed(2)} ± ${ms(r.stddev ?? 0).toFixed(2)}`;
const med = (r) => ms(r.median).toFixed(2);
const range = (r) => `${ms(r.min).toFixed(1)}–${ms(r.max).toFixed(1)}`;

const wrapper = byName.get('wrapper only (/bin/true)');
const nodeFloor = byName.get('node -e 0 (Node start-up floor)');
if (!wrapper || !nodeFloor) throw new Error('floor rows missing from the hyperfine JSON');

const ops = [];
for (const r of results) {
  const m = /^(.*) \((ref|ours)\)$/.exec(r.command);
  if (m && m[2] === 'ref') ops.push(m[1]);
}

// Start-up accounting uses medians: other processes on a shared machine
// produce long-tailed outliers that would distort differences of means.
const lines = [];
lines.push('| operation | reference median (ms) | ref mean ± σ | ours median (ms) | ours mean ± σ | ours / ref (medians) | ref beyond wrapper (ms) | ours beyond Node start-up (ms) | start-up share of ours |');
lines.push('|---|---|---|---|---|---|---|---|---|');
for (const op of ops) {
  const ref = byName.get(`${op} (ref)`);
  const ours = byName.get(`${op} (ours)`);
  if (!ref || !ours) continue;
  lines.push(
    `| ${op} | ${med(ref)} | ${fmt(ref)} | ${med(ours)} | ${fmt(ours)} | ${(ours.median / ref.median).toFixed(2)}× | ${ms(ref.median - wrapper.median).toFixed(2)} | ${ms(ours.median - nodeFloor.median).toFixed(2)} | ${((100 * nodeFloor.median) / ours.median).toFixed(0)} % |`,
  );
}
lines.push('');
lines.push('| floor | median (ms) | mean ± σ (ms) | min–max |');
lines.push('|---|---|---|---|');
lines.push(`| wrapper only: \`bash run.sh\` → \`ip netns exec … env -i … /bin/true\` | ${med(wrapper)} | ${fmt(wrapper)} | ${range(wrapper)} |`);
lines.push(`| \`node -e 0\` through the same wrapper (Node start-up) | ${med(nodeFloor)} | ${fmt(nodeFloor)} | ${range(nodeFloor)} |`);
lines.push('');
const nodeOnly = ms(nodeFloor.median - wrapper.median);
lines.push(
  `Reading (medians): every figure includes the wrapper (${ms(wrapper.median).toFixed(1)} ms: bash, ip netns exec, env). ` +
    `Node's own start-up adds ${nodeOnly.toFixed(1)} ms on top for each of our invocations, ` +
    `so "ours beyond Node start-up" is the plugin's real work (module evaluation of the bundle, netlink, ` +
    `iptables-restore/nft, store I/O), and "ref beyond wrapper" is the Go binary's whole run. ` +
    `Our bridge runs our host-local in-process (one Node start per ADD/DEL); the reference forks host-local.`,
);
console.log(lines.join('\n'));
