// Renders bench/cni-phases.sh's collected phase lines as tables: for each
// case, each phase's median over the runs (in first-seen order), and how
// often it occurred. Input lines: "<case>\tkn-phase <name> <ms> ms"; child
// processes traced by lib/exec.ts (KN_TRACE_EXEC) appear as "exec <ms> ms: …".
//   node bench/cni-phases-report.mjs <ours-phases> [ref-phases]
import { readFileSync } from 'node:fs';

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// A phase name seen again within one run (bridge's in-process host-local
// goes through the skeleton too) gets " #2", " #3": a run starts at its
// first line ("process start → first line" for ours, a process for the
// reference) after the previous run's TOTAL.
function collect(file) {
  const cases = new Map();
  let seen = new Map();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const tab = line.indexOf('\t');
    if (tab < 0) continue;
    const key = line.slice(0, tab);
    const rest = line.slice(tab + 1);
    let m = /^kn-phase (.*) (-?[\d.e-]+) ms$/.exec(rest);
    let name, ms;
    if (m) [name, ms] = [m[1], Number(m[2])];
    else if ((m = /^exec ([\d.]+) ms: (\S+)/.exec(rest))) [name, ms] = [`child process: ${m[2]} (KN_TRACE_EXEC, wall)`, Number(m[1])];
    else continue;
    if (name === 'process start → first line') seen = new Map();
    const n = (seen.get(name) ?? 0) + 1;
    seen.set(name, n);
    if (name.startsWith('TOTAL')) seen = new Map();
    else if (n > 1) name = `${name} #${n}`;
    if (!cases.has(key)) cases.set(key, new Map());
    const phases = cases.get(key);
    if (!phases.has(name)) phases.set(name, []);
    phases.get(name).push(ms);
  }
  return cases;
}

const [oursFile, refFile] = process.argv.slice(2);
const ours = collect(oursFile);
const ref = refFile ? collect(refFile) : undefined;
const out = [];
for (const [key, phases] of ours) {
  out.push(`## ${key}`, '');
  out.push('| ours: phase | median (ms) | n |', '|---|---:|---:|');
  let sum = 0;
  for (const [name, xs] of phases) {
    const m = median(xs);
    if (!name.startsWith('TOTAL') && !name.includes('(concurrent)') && !name.startsWith('child process')) sum += m;
    out.push(`| ${name} | ${m.toFixed(2)} | ${xs.length} |`);
  }
  out.push(`| sum of the sequential phase medians (process start → exit path) | ${sum.toFixed(2)} | |`);
  const r = ref?.get(key);
  if (r) {
    out.push('', '| reference: process (strace) | median (ms) | occurrences |', '|---|---:|---:|');
    const runs = r.get([...r.keys()].find((k) => k.startsWith('TOTAL')))?.length ?? 1;
    for (const [name, xs] of r) out.push(`| ${name} | ${median(xs).toFixed(2)} | ${xs.length} (${(xs.length / runs).toFixed(0)} per run) |`);
  }
  out.push('');
}
out.push(
  'Reading: ours are sequential marks (each phase from the previous mark; the first from the process start as Bun ' +
    'counts it, i.e. after exec and the runtime\'s own initialisation), spans marked "(concurrent)" overlap the ' +
    'marks around them; "child process" rows are the iptables-restore/-save runs lib/exec.ts started, wall time ' +
    'seen from our process. TOTAL is the invocation as the wrapper sees it (ip netns exec + env + the plugin). ' +
    'The reference\'s rows are each process\'s execve → exit under strace (strace slows every process: compare ' +
    'the shares, not the absolute figures, with bench/cni.sh).',
);
console.log(out.join('\n'));
