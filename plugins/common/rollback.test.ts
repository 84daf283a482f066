import { describe, expect, it } from 'vitest';
import { Rollback } from './rollback.ts';

describe('Rollback', () => {
  it('runs the steps in reverse order, each awaited before the next', async () => {
    const done: string[] = [];
    const undo = new Rollback('ptp');
    undo.push('a', () => void done.push('a'));
    undo.push('b', async () => {
      await Promise.resolve();
      done.push('b');
    });
    undo.push('c', () => void done.push('c'));
    const lines: string[] = [];
    await undo.unwind((s) => lines.push(s));
    expect(done).toEqual(['c', 'b', 'a']);
    expect(lines).toEqual([]);
  });

  it('a failing step is reported with the plugin name and the rest still run; unwind does not reject', async () => {
    const done: string[] = [];
    const undo = new Rollback('bridge');
    undo.push('ipam', () => void done.push('ipam'));
    undo.push('veth', () => {
      throw new Error('link del: no such device');
    });
    undo.push('ipMasq', async () => Promise.reject(new Error('iptables-restore: exit 4')));
    undo.push('macspoofchk', () => void done.push('macspoofchk'));
    const lines: string[] = [];
    await expect(undo.unwind((s) => lines.push(s))).resolves.toBeUndefined();
    expect(done).toEqual(['macspoofchk', 'ipam']);
    expect(lines).toEqual(['bridge: rollback of ipMasq failed: iptables-restore: exit 4\n', 'bridge: rollback of veth failed: link del: no such device\n']);
  });

  it('empties the stack: a second unwind runs only what was pushed since', async () => {
    const done: string[] = [];
    const undo = new Rollback('bridge');
    undo.push('a', () => void done.push('a'));
    undo.push('b', () => void done.push('b'));
    await undo.unwind(() => undefined);
    expect(undo.size).toBe(0);
    undo.push('c', () => void done.push('c'));
    await undo.unwind(() => undefined);
    expect(done).toEqual(['b', 'a', 'c']);
  });
});
