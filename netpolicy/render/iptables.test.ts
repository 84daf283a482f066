// Golden files of the iptables + ipset renderer (testdata/*.ipt, one file
// per sync with a section per tool; check-syntax.sh runs them for real), and
// the ordering guarantees of its updates.
import { describe, expect, test } from 'vitest';
import type { LocalPlan } from '../model/plan.ts';
import { fullCases, updateCases } from './cases.ts';
import { iptablesCounts, iptablesState, renderIptablesFull, renderIptablesUpdate, scriptsText } from './iptables.ts';

describe('full render (golden)', () => {
  test.each(fullCases())('$name', async ({ name, plan, logDenied }) => {
    await expect(scriptsText(renderIptablesFull(plan, { logDenied }))).toMatchFileSnapshot(`testdata/${name}.full.ipt`);
  });
});

describe('incremental update (golden)', () => {
  test.each(updateCases())('$name', async ({ name, prev, next }) => {
    await expect(scriptsText(renderIptablesFull(prev))).toMatchFileSnapshot(`testdata/${name}.prev.ipt`);
    await expect(scriptsText(renderIptablesFull(next))).toMatchFileSnapshot(`testdata/${name}.next.ipt`);
    await expect(scriptsText(renderIptablesUpdate(prev, next))).toMatchFileSnapshot(`testdata/${name}.update.ipt`);
  });
});

describe('properties', () => {
  const [added, deleted, relabelled] = updateCases();

  test('no change, nothing to run', () => {
    expect(renderIptablesUpdate(added!.prev, added!.prev)).toEqual({ ipsetPre: '', iptables: '', ip6tables: '', ipsetPost: '' });
  });

  test('a new pod of an existing group touches only ipset elements and its self rule, and joins LOCAL last', () => {
    const s = renderIptablesUpdate(added!.prev, added!.next);
    expect([s.ip6tables, s.ipsetPost]).toEqual(['', '']);
    // The only chain rewritten: NETPOL-SELF, which now holds the new pod (IPv4 only).
    expect(s.iptables.split('\n').filter((l) => l.startsWith(':') || l.startsWith('-A')).every((l) => /^(:NETPOL-SELF |-A NETPOL-SELF )/.test(l))).toBe(true);
    expect(s.iptables).toContain('-A NETPOL-SELF -s 10.244.1.12/32 -d 10.244.1.12/32 -j MARK');
    const lines = s.ipsetPre.trim().split('\n');
    expect(lines.every((l) => l.startsWith('add '))).toBe(true);
    expect(lines.at(-1)).toBe('add NP4-LOCAL 10.244.1.12');
  });

  test('a deleted pod leaves LOCAL first: it is held, never unpoliced', () => {
    const lines = renderIptablesUpdate(deleted!.prev, deleted!.next).ipsetPre.trim().split('\n');
    expect(lines.every((l) => l.startsWith('del '))).toBe(true);
    expect(lines[0]).toMatch(/^del NP[46]-LOCAL /);
  });

  const ingressGroup = (plan: LocalPlan, pod: string): string => plan.pods.find((p) => p.key === pod)!.ingress!;

  test('a pod changing groups joins the new group before it leaves the old one', () => {
    // cache-0 becomes a web pod; its old group had only it, so it goes away
    // whole: its set is destroyed after the rules stopped using it.
    const { prev, next } = relabelled!;
    const oldGroup = ingressGroup(prev, 'shop/cache-0');
    const newGroup = ingressGroup(next, 'shop/cache-0');
    expect(newGroup).toBe(ingressGroup(prev, 'shop/web-0'));
    const s = renderIptablesUpdate(prev, next);
    expect(s.ipsetPre).toContain(`add NP4-GI-${newGroup} 10.244.1.30\n`);
    expect(s.ipsetPre).not.toMatch(/^del NP4-G/m);
    expect(s.iptables).toContain(`-X NETPOL-GI-${oldGroup}\n`);
    expect(s.ipsetPost).toContain(`destroy NP4-GI-${oldGroup}\n`);
  });

  test('a pod moving between two groups that stay is added to one before it is deleted from the other', () => {
    // A plan edited by hand: web-1 goes over to cache-0's ingress group,
    // while web-0 keeps the web group alive.
    const prev = fullCases().find((f) => f.name === 'shop')!.plan;
    const from = ingressGroup(prev, 'shop/web-1');
    const to = ingressGroup(prev, 'shop/cache-0');
    const next = { ...prev, pods: prev.pods.map((p) => (p.key === 'shop/web-1' ? { ...p, ingress: to } : p)) };
    const lines = renderIptablesUpdate(prev, next).ipsetPre.split('\n');
    const add = lines.indexOf(`add NP4-GI-${to} 10.244.1.11`);
    const del = lines.indexOf(`del NP4-GI-${from} 10.244.1.11`);
    expect(add).toBeGreaterThanOrEqual(0);
    expect(del).toBeGreaterThan(add);
  });

  test('nothing ever ACCEPTs; the verdict mark is cleared before leaving', () => {
    const s = iptablesState(fullCases().find((c) => c.name === 'shop')!.plan);
    for (const f of [4, 6] as const) {
      for (const rules of s.chains[f].values()) for (const r of rules) expect(r).not.toMatch(/-j ACCEPT/);
      expect(s.chains[f].get('NETPOL-ALLOW')).toEqual(['-j MARK --set-xmark 0x0/0x10000']);
    }
  });

  test('stale chains and sets of an earlier run are removed by a full render', () => {
    const plan = fullCases()[0]!.plan;
    const s = renderIptablesFull(plan, {}, { chains: { 4: ['NETPOL-GI-000000000000'] }, sets: ['NP4-P-000000000000'] });
    expect(s.iptables).toMatch(/^:NETPOL-GI-000000000000 - \[0:0\]$/m);
    expect(s.iptables).toMatch(/^-X NETPOL-GI-000000000000$/m);
    expect(s.ipsetPost).toBe('destroy NP4-P-000000000000\n');
  });

  test('names fit the kernel limits (ipset 31, chain 28 characters)', () => {
    const s = iptablesState(fullCases().find((c) => c.name === 'shop')!.plan);
    for (const n of s.sets.keys()) expect(`${n}-T`.length).toBeLessThanOrEqual(31);
    for (const n of s.chains[4].keys()) expect(n.length).toBeLessThanOrEqual(28);
    expect(iptablesCounts(s).rules).toBeGreaterThan(0);
  });
});
