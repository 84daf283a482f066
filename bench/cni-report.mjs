// Renders bench/cni.sh's hyperfine JSON as the results table: reference and
// ours side by side per operation, how much of each figure is start-up (the
// wrapper alone for the reference's Go binaries; a compiled Bun hello-world
// through the same wrapper for ours), issue 7's goal for the row and whether
// it is met; then the peak RSS of one ADD for both.
// Usage: node bench/cni-report.mjs hf.json [rss.txt]
//   rss.txt: lines "<ref|ours> <max RSS in KiB>" (from /usr/bin/time -f %M)
import { readFileSync } from 'node:fs';

const { results } = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const byName = new Map(results.map((r) => [r.command, r]));
const ms = (s) => s * 1000;
const fmt = (r) => `${ms(r.mean).toFixed(2)} ± ${ms(r.stddev ?? 0).toFixed(2)}`;
const med = (r) => ms(r.median).toFixed(2);
const range = (r) => `${ms(r.min).toFixed(1)}–${ms(r.max).toFixed(1)}`;

const wrapper = byName.get('wrapper only (/bin/true)');
const bunFloor = byName.get('compiled Bun hello-world (Bun start-up floor)');
if (!wrapper || !bunFloor) throw new Error('floor rows missing from the hyperfine JSON');

/** Issue 7's goals: ours/ref median ratio at most `max`. */
const GOALS = [
  { op: 'bridge ipMasq=true ADD', max: 0.8 },
  { op: 'bridge ipMasq=false ADD', max: 1.0 },
  { op: 'bridge ipMasq=true DEL', max: 0.8 },
  { op: 'bridge ipMasq=false DEL', max: 0.8 },
  { op: 'host-local (empty store) ADD', max: 1.2 },
  { op: 'host-local (empty store) DEL', max: 1.2 },
  { op: 'loopback ADD', max: 1.2 },
  { op: 'loopback DEL', max: 1.2 },
];
const goalOf = (op) => GOALS.find((g) => g.op === op);
const verdict = (ratio, max) => (ratio <= max ? `≤ ${max.toFixed(1)}×: **met**` : `≤ ${max.toFixed(1)}×: **missed** by ${((ratio / max - 1) * 100).toFixed(0)} %`);

const pairs = [];
for (const r of results) {
  const m = /^(.*) \((ref)\)$/.exec(r.command);
  if (m && byName.has(`${m[1]} (ours)`)) pairs.push({ op: m[1], ref: r, ours: byName.get(`${m[1]} (ours)`) });
}
// Our flannel against the reference bridge + host-local of the same shape
// (flannel's delegate: ipMasq false) and against the plain ipMasq=false bridge.
for (const cmd of ['ADD', 'DEL']) {
  const ours = byName.get(`flannel → bridge + host-local ${cmd} (ours)`);
  if (!ours) continue;
  for (const [label, refName] of [
    ['flannel-shaped bridge', `flannel-shaped bridge ${cmd} (ref)`],
    ['bridge ipMasq=false', `bridge ipMasq=false ${cmd} (ref)`],
  ]) {
    const ref = byName.get(refName);
    if (ref) pairs.push({ op: `flannel ${cmd} (ours) vs ${label} ${cmd} (ref)`, ref, ours, goal: cmd === 'ADD' ? { max: 1.0 } : undefined });
  }
}

// Medians throughout: other processes on a shared machine produce
// long-tailed outliers that would distort differences of means.
const lines = [];
lines.push('| operation | reference median (ms) | ref mean ± σ | ours median (ms) | ours mean ± σ | ours / ref (medians) | goal | ref beyond wrapper (ms) | ours beyond Bun start-up (ms) | Bun start-up share of ours |');
lines.push('|---|---|---|---|---|---|---|---|---|---|');
for (const { op, ref, ours, goal } of pairs) {
  const ratio = ours.median / ref.median;
  const g = goal ?? goalOf(op);
  lines.push(
    `| ${op} | ${med(ref)} | ${fmt(ref)} | ${med(ours)} | ${fmt(ours)} | ${ratio.toFixed(2)}× | ${g ? verdict(ratio, g.max) : '—'} | ${ms(ref.median - wrapper.median).toFixed(2)} | ${ms(ours.median - bunFloor.median).toFixed(2)} | ${((100 * bunFloor.median) / ours.median).toFixed(0)} % |`,
  );
}
lines.push('');
lines.push('| floor | median (ms) | mean ± σ (ms) | min–max |');
lines.push('|---|---|---|---|');
lines.push(`| wrapper only: \`bash run.sh\` → \`ip netns exec … env -i … /bin/true\` | ${med(wrapper)} | ${fmt(wrapper)} | ${range(wrapper)} |`);
lines.push(`| compiled Bun hello-world (same runtime binary and compile options as the plugins) through the same wrapper | ${med(bunFloor)} | ${fmt(bunFloor)} | ${range(bunFloor)} |`);
lines.push('');

const rssFile = process.argv[3];
if (rssFile) {
  const rss = { ref: [], ours: [] };
  for (const line of readFileSync(rssFile, 'utf8').split('\n')) {
    const [who, kib] = line.trim().split(/\s+/);
    if (who in rss && /^\d+$/.test(kib)) rss[who].push(Number(kib));
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const mib = (k) => (k / 1024).toFixed(1);
  lines.push('| peak RSS of one bridge+host-local ADD, ipMasq on (`/usr/bin/time -f %M`: largest of the plugin and its children) | runs | median (MiB) | min–max (MiB) |');
  lines.push('|---|---|---|---|');
  for (const who of ['ref', 'ours']) {
    const xs = rss[who];
    if (xs.length === 0) continue;
    lines.push(`| ${who === 'ref' ? 'reference (bridge; host-local and iptables are children)' : 'ours (one process; iptables-restore is a child)'} | ${xs.length} | ${mib(median(xs))} | ${mib(Math.min(...xs))}–${mib(Math.max(...xs))} |`);
  }
  lines.push('');
  lines.push('Goal: reported for both (no threshold).');
  lines.push('');
}
const bunOnly = ms(bunFloor.median - wrapper.median);
lines.push(
  `Reading (medians): every figure includes the wrapper (${ms(wrapper.median).toFixed(1)} ms: bash, ip netns exec, env). ` +
    `Bun's own start-up (a compiled hello-world) adds ${bunOnly.toFixed(1)} ms on top for each of our invocations, ` +
    `so "ours beyond Bun start-up" is the plugin's real work (loading the plugin's modules from the executable, netlink, ` +
    `iptables-restore, store I/O), and "ref beyond wrapper" is the Go binary's whole run including its own start-up. ` +
    `Our bridge runs our host-local in-process (one process per ADD/DEL); the reference forks host-local.`,
);
console.log(lines.join('\n'));
