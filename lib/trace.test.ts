// lib/trace.ts in the runtime the plugins use (Bun runs the TypeScript
// source as it is): lines only with KN_TRACE_PHASES=1, in the documented
// format, marks sequential and spans around their own work.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';

const root = join(import.meta.dirname, '..');
const bun = join(root, 'node_modules/.bin/bun');
const script = `
import { traceMark, traceSpan, tracing } from ${JSON.stringify(join(root, 'lib/trace.ts'))};
traceMark('first');
const v = await traceSpan('span', async () => 42);
traceMark('second');
process.stdout.write(JSON.stringify({ v, tracing }));
`;

function runWith(env: Record<string, string>): { out: unknown; lines: string[] } {
  const r = spawnSync(bun, ['-e', script], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env }, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return { out: JSON.parse(r.stdout), lines: r.stderr.split('\n').filter((l) => l !== '') };
}

describe('lib/trace', () => {
  test('off by default: no output, spans return their value', () => {
    expect(runWith({})).toEqual({ out: { v: 42, tracing: false }, lines: [] });
  });

  test('KN_TRACE_PHASES=1: one line per mark and span, in order, with a duration in ms', () => {
    const { out, lines } = runWith({ KN_TRACE_PHASES: '1' });
    expect(out).toEqual({ v: 42, tracing: true });
    expect(lines.map((l) => l.replace(/ \d+\.\d\d ms$/, ' <d> ms'))).toEqual(['kn-phase first <d> ms', 'kn-phase span <d> ms', 'kn-phase second <d> ms']);
  });

  test('any other value of KN_TRACE_PHASES is off', () => {
    expect(runWith({ KN_TRACE_PHASES: 'true' }).lines).toEqual([]);
  });
});
