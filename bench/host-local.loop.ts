// In-process timing of our host-local ADD and DEL (no node startup in the
// figure), used by bench/host-local.sh to measure the store's marginal cost.
//   node loop.mjs <workDir> <iterations>
// Prints a markdown table: per-op mean and median for an empty store, a store
// with 5,000 reservations, and the same after a foreign change (a file
// created and removed behind our back before every ADD: full re-scan).
import { mkdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { runPlugin } from '../plugins/skel/index.ts';
import { hostLocalFuncs } from '../plugins/host-local/host-local.ts';

const [work = '/tmp/hl-loop', itersArg = '200'] = process.argv.slice(2);
const iters = Number(itersArg);

async function call(cmd: string, config: object): Promise<void> {
  let out = '';
  const rc = await runPlugin(hostLocalFuncs, '', {
    env: { CNI_COMMAND: cmd, CNI_CONTAINERID: 'bench', CNI_IFNAME: 'eth0', CNI_NETNS: '/run/netns/hl-bench-none', CNI_PATH: '/x' },
    readStdin: () => Buffer.from(JSON.stringify(config)),
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: () => undefined },
  });
  if (rc !== 0) throw new Error(`${cmd} failed: ${out}`);
}

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return `${mean.toFixed(3)} | ${s[Math.floor(s.length / 2)]!.toFixed(3)}`;
}

async function scenario(name: string, size: number, foreign: boolean): Promise<string> {
  const dataDir = join(work, `loop-${size}-${foreign ? 'f' : 'p'}`);
  const dir = join(dataDir, 'net');
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < size; i++) writeFileSync(join(dir, `10.128.${100 + (i >> 8)}.${i & 255}`), `pre${i}\r\neth0`, { mode: 0o600 });
  const config = { cniVersion: '1.0.0', name: 'net', ipam: { subnet: '10.128.0.0/16', dataDir } };
  const add: number[] = [];
  const del: number[] = [];
  for (let i = 0; i < iters + 5; i++) {
    if (foreign) {
      writeFileSync(join(dir, '10.128.99.1'), 'other\r\neth0');
      unlinkSync(join(dir, '10.128.99.1'));
    }
    const t0 = performance.now();
    await call('ADD', config);
    const t1 = performance.now();
    await call('DEL', config);
    const t2 = performance.now();
    if (i >= 5) {
      add.push(t1 - t0);
      del.push(t2 - t1);
    }
  }
  rmSync(dataDir, { recursive: true, force: true });
  return `| ${name} | ${stats(add)} | ${stats(del)} |`;
}

const rows = [
  await scenario('empty store', 0, false),
  await scenario('5,000 reservations', 5000, false),
  await scenario('5,000 reservations, foreign change before each ADD', 5000, true),
];
console.log(`In-process, ${iters} iterations each (ms):\n`);
console.log('| store | ADD mean | ADD median | DEL mean | DEL median |\n|:---|---:|---:|---:|---:|');
console.log(rows.join('\n'));
