// The VM's kernel has what the suites here rely on and this machine's may
// lack: checked once, so that a missing feature fails here by name rather
// than as a confusing error in another suite.
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';

describe('test VM kernel', () => {
  test('runs inside the VM', () => {
    expect(process.env['KN_IN_VM']).toBe('1');
  });

  test.each(['ip_vs', 'ip_vs_rr', 'sctp', 'dummy', 'bridge', 'veth', 'ip_set', 'nf_tables'])('module %s is loaded', (m) => {
    const mods = readFileSync('/proc/modules', 'utf8').split('\n').map((l) => l.split(' ')[0]);
    expect(mods).toContain(m);
  });
});
