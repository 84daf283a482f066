// Interleaved process timing for bench/host-local.sh: each round runs ADD and
// DEL of both plugins on an empty store and on a 5,000-reservation store, so
// load drift on a shared machine hits all eight series alike. Prints medians
// and the marginal cost of the 5,000 reservations (median 5000 − median 0).
//   node bench/host-local.interleave.mjs <workDir> <rounds> <reference> <ours> [medians.json]
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';

const [work, roundsArg, ref, ours, mediansOut] = process.argv.slice(2);
const rounds = Number(roundsArg);
const conf = (who, size) =>
  JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'host-local', ipam: { subnet: '10.128.0.0/16', dataDir: `${work}/il-${who}-${size}` } });
for (const who of ['ref', 'ours']) {
  const dir = `${work}/il-${who}-5000/n`;
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < 5000; i++) writeFileSync(`${dir}/10.128.${100 + (i >> 8)}.${i & 255}`, `pre${i}\r\neth0`, { mode: 0o600 });
}
const env = (cmd) => ({ CNI_COMMAND: cmd, CNI_CONTAINERID: 'bench', CNI_IFNAME: 'eth0', CNI_NETNS: '/run/netns/hl-bench-none', CNI_PATH: '/usr/lib/cni' });
function once(who, cmd, size) {
  const [file, args] = who === 'ref' ? [ref, []] : [ours, []];
  const t = process.hrtime.bigint();
  const r = spawnSync(file, args, { input: conf(who, size), env: env(cmd) });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${who} ${cmd} ${size}: ${r.stdout}`);
  return ms;
}
const series = new Map();
for (let i = 0; i < rounds; i++) {
  for (const who of ['ref', 'ours']) {
    for (const size of [0, 5000]) {
      for (const cmd of ['ADD', 'DEL']) {
        const k = `${who} ${cmd} ${size}`;
        const v = once(who, cmd, size);
        if (!series.has(k)) series.set(k, []);
        series.get(k).push(v);
      }
    }
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(`Interleaved, ${rounds} rounds (each round: ADD then DEL, both plugins, both stores), medians in ms:\n`);
console.log('| plugin | ADD, empty | ADD, 5000 | marginal ADD | DEL, empty | DEL, 5000 | marginal DEL |\n|:---|---:|---:|---:|---:|---:|---:|');
for (const who of ['ref', 'ours']) {
  const m = (cmd, size) => median(series.get(`${who} ${cmd} ${size}`));
  const cells = ['ADD', 'DEL'].flatMap((cmd) => [m(cmd, 0), m(cmd, 5000), m(cmd, 5000) - m(cmd, 0)]);
  console.log(`| ${who} | ${cells.map((x) => x.toFixed(1)).join(' | ')} |`);
}
// The medians, for bench/host-local.goal.mjs: { "<who> <cmd> <size>": ms }.
if (mediansOut) writeFileSync(mediansOut, JSON.stringify(Object.fromEntries([...series].map(([k, xs]) => [k, median(xs)]))));
