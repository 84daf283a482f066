import { describe, expect, it } from 'vitest';
import { planProbes } from './expect.ts';
import { formatReport, LEGEND, shortNames } from './report.ts';
import { sampleWorld } from './testing.ts';
import { matches, type Observed, type Probe, type Row } from './types.ts';

/** What a healthy cluster sees for each expectation. */
const healthy = (p: Probe): Observed => (p.expect.outcome === 'blocked' ? 'timeout' : p.expect.outcome === 'either' ? 'open' : p.expect.outcome);

function rows(probes: readonly Probe[], seen: (p: Probe) => Observed = healthy): Row[] {
  return probes.map((probe) => {
    const observed = seen(probe);
    return { probe, result: { observed, ms: 3 }, match: matches(probe.expect.outcome, observed) };
  });
}

describe('formatReport', () => {
  const { objs, topo } = sampleWorld({ dualStack: true });
  const { probes } = planProbes(objs, topo, [4, 6]);

  it('prints one matrix per family and section, destinations down and sources across', () => {
    const text = formatReport(rows(probes), { title: 'netstack check: test', elapsedMs: 2345 });
    const lines = text.split('\n');
    expect(lines[0]).toBe('netstack check: test');
    expect(text).toContain(LEGEND);
    const titles = lines.filter((l) => /^IPv[46]: /.test(l));
    expect(titles.map((t) => t.replace(/ \(\d+\/\d+ as expected\)$/, ''))).toEqual([
      'IPv4: ICMP echo, pod to pod on another node',
      'IPv4: pod to pod port (the policy matrix)',
      'IPv4: pod to ClusterIP',
      'IPv4: external host to NodePort on each node',
      'IPv6: ICMP echo, pod to pod on another node',
      'IPv6: pod to pod port (the policy matrix)',
      'IPv6: pod to ClusterIP',
      'IPv6: external host to NodePort on each node',
    ]);
    // The header of the policy matrix: the pods by their short names.
    const at = lines.indexOf(titles[1]!);
    expect(lines[at + 1]!.trim().split(/\s+/)).toEqual(['api-0', 'api-1', 'pg-0', 'web-0', 'web-1', 'web-2']);
    // A row: the destination, then one cell per source; a pod does not probe itself.
    const row = lines.find((l) => l.trimStart().startsWith('db/pg-0 5432/TCP (postgres)'))!;
    expect(row.trim().split(/\s{2,}/)).toEqual(['db/pg-0 5432/TCP (postgres)', 'open', 'open', '.', 'dropped', 'dropped', 'dropped']);
    expect(lines.at(-2)).toBe(`OK: all ${probes.length} probes as expected (IPv4 ${probes.length / 2}, IPv6 ${probes.length / 2}) in 2.3 s`);
    expect(text).not.toContain('Mismatches');
  });

  it('keeps the columns aligned', () => {
    const lines = formatReport(rows(probes.filter((p) => p.family === 4 && p.section === 'pod'))).split('\n');
    const at = lines.findIndex((l) => l.includes('api-0'));
    const header = lines[at]!;
    const col = header.indexOf('web-0');
    const body = lines.slice(at + 1, lines.indexOf('', at));
    expect(body).toHaveLength(9);
    for (const l of body) expect(l[col - 1]).toBe(' ');
    for (const l of body) expect(l.slice(col, col + 1)).toMatch(/[a-z.x]/);
  });

  it('marks Services whose endpoints disagree', () => {
    const text = formatReport(rows(probes.filter((p) => p.family === 4 && p.section === 'service')));
    const row = text.split('\n').find((l) => l.includes('backend/api 10.96.0.20:9090/TCP'))!;
    // api-0 and api-1 reach either themselves or the other one.
    expect(row).toMatch(/open\*\s+open\*/);
    expect(text).toContain('refused');
  });

  it('marks and lists every mismatch with the model’s reason, and fails', () => {
    const wrong = probes.find((p) => p.family === 4 && p.section === 'pod' && p.column === 'frontend/web-0' && p.row.startsWith('db/pg-0 5432/TCP'))!;
    const lost = probes.find((p) => p.family === 6 && p.section === 'nodeport')!;
    const text = formatReport(
      rows(probes, (p) => (p === wrong ? 'open' : p === lost ? 'timeout' : healthy(p))),
      { problems: ['pod x/y runs on node-9 but has no Pod object in the manifests'], elapsedMs: 100 },
    );
    const row = text.split('\n').find((l) => l.trimStart().startsWith('db/pg-0 5432/TCP (postgres)'))!;
    expect(row).toContain('x open');
    expect(text).toContain('Mismatches (2):');
    expect(text).toContain(`x IPv4 pod: frontend/web-0 (${wrong.from.ip}) -> db/pg-0 5432/TCP (postgres) via ${wrong.to.ip}:5432/TCP: expected blocked, saw open (3 ms)`);
    expect(text).toContain(wrong.expect.reason);
    expect(text).toContain(`expected open, saw dropped`);
    expect(text).toContain('Problems (1):\n  pod x/y runs on node-9');
    expect(text.trimEnd().split('\n').at(-1)).toBe(`FAILED: 2 of ${probes.length} probes differ from the model (IPv4 ${probes.length / 2}, IPv6 ${probes.length / 2}), 1 problem in 0.1 s`);
  });

  it('fails on problems alone', () => {
    const text = formatReport([], { problems: ['netstack up did not finish'] });
    expect(text.trimEnd().split('\n').at(-1)).toBe('FAILED: 0 of 0 probes differ from the model (none), 1 problem');
  });

  it('says a retry and the errno in the mismatch line', () => {
    const p = probes.find((x) => x.section === 'service' && x.expect.outcome === 'refused')!;
    const text = formatReport([{ probe: p, result: { observed: 'timeout', ms: 3000.4, retried: true, detail: 'x' }, match: false }]);
    expect(text).toContain('expected refused, saw dropped (3000 ms, x, retried)');
    // The Service row names its address already.
    expect(text).toContain(`-> ${p.row}: expected`);
  });
});

describe('shortNames', () => {
  it('uses the name where it is unique, namespace/name where not', () => {
    expect(shortNames(['a/web', 'b/web', 'a/db', 'node-1'])).toEqual(['a/web', 'b/web', 'db', 'node-1']);
  });
});

describe('matches', () => {
  it('counts a drop or an admin reject as blocked, and nothing but the outcome as open or refused', () => {
    expect(matches('blocked', 'timeout')).toBe(true);
    expect(matches('blocked', 'unreachable')).toBe(true);
    expect(matches('blocked', 'refused')).toBe(false);
    expect(matches('blocked', 'open')).toBe(false);
    expect(matches('open', 'timeout')).toBe(false);
    expect(matches('refused', 'timeout')).toBe(false);
    expect(matches('either', 'open')).toBe(true);
    expect(matches('either', 'timeout')).toBe(true);
    expect(matches('either', 'refused')).toBe(false);
    expect(matches('open', 'error')).toBe(false);
    expect(matches('blocked', 'error')).toBe(false);
  });
});
