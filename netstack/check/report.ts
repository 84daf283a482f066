// The text `netstack check` prints, pure: one matrix per family and section
// (destinations down, sources across, each cell what the probe saw), then
// every mismatch with the model's reason, then one summary line.
import type { Family } from '../../lib/ip/index.ts';
import { hostPort } from './expect.ts';
import { SECTIONS, type Observed, type Row, type Section } from './types.ts';

const TITLES: Readonly<Record<Section, string>> = {
  icmp: 'ICMP echo, pod to pod on another node',
  pod: 'pod to pod port (the policy matrix)',
  service: 'pod to ClusterIP',
  nodeport: 'external host to NodePort on each node',
};

const WORDS: Readonly<Record<Observed, string>> = {
  open: 'open',
  refused: 'refused',
  timeout: 'dropped',
  unreachable: 'unreach',
  error: 'error',
};

export const LEGEND =
  'cells: what the probe saw: open, refused, dropped (no answer), unreach (ICMP unreachable), error;\n' +
  '       x = differs from the model (listed below), * = the Service\'s endpoints disagree (either answer is right), . = not probed';

export interface ReportOptions {
  /** Disagreements between the running cluster and its manifests: each one fails the check. */
  readonly problems?: readonly string[];
  readonly elapsedMs?: number;
  /** First line, e.g. "netstack check: 3 nodes, 6 pods". */
  readonly title?: string;
}

export function formatReport(rows: readonly Row[], opts: ReportOptions = {}): string {
  const out: string[] = [];
  if (opts.title) out.push(opts.title, '');
  out.push(LEGEND, '');
  const families = [...new Set(rows.map((r) => r.probe.family))].sort();
  for (const family of families) {
    for (const section of SECTIONS) {
      const part = rows.filter((r) => r.probe.family === family && r.probe.section === section);
      if (part.length > 0) out.push(...matrix(family, section, part), '');
    }
  }
  const bad = rows.filter((r) => !r.match);
  if (bad.length > 0) {
    out.push(`Mismatches (${bad.length}):`);
    for (const r of bad) out.push(...mismatch(r));
    out.push('');
  }
  const problems = opts.problems ?? [];
  if (problems.length > 0) {
    out.push(`Problems (${problems.length}):`);
    for (const p of problems) out.push(`  ${p}`);
    out.push('');
  }
  out.push(summary(rows, problems.length, opts.elapsedMs));
  return out.join('\n') + '\n';
}

function matrix(family: Family, section: Section, rows: readonly Row[]): string[] {
  const columns = unique(rows.map((r) => r.probe.column)).sort(natural);
  const headers = shortNames(columns);
  const rowKeys = unique(rows.map((r) => r.probe.row)).sort(natural);
  const cells = new Map<string, string>();
  for (const r of rows) cells.set(`${r.probe.row}\0${r.probe.column}`, cell(r));
  const table: string[][] = [['', ...headers]];
  for (const rk of rowKeys) table.push([rk, ...columns.map((c) => cells.get(`${rk}\0${c}`) ?? '.')]);
  const widths = table[0]!.map((_, i) => Math.max(...table.map((line) => line[i]!.length)));
  const lines = table.map((line) => line.map((text, i) => (i === line.length - 1 ? text : text.padEnd(widths[i]!))).join('  ').trimEnd());
  const seen = rows.filter((r) => r.match).length;
  return [`IPv${family}: ${TITLES[section]} (${seen}/${rows.length} as expected)`, ...lines.map((l) => `  ${l}`)];
}

function cell(r: Row): string {
  const word = WORDS[r.result.observed];
  if (!r.match) return `x ${word}`;
  return r.probe.expect.outcome === 'either' ? `${word}*` : word;
}

function mismatch(r: Row): string[] {
  const p = r.probe;
  const dst = p.to.protocol === 'ICMP' ? p.to.ip : `${hostPort(p.to.ip, p.to.port)}/${p.to.protocol}`;
  // A Service row already names its address.
  const via = p.row.includes(dst) ? '' : ` via ${dst}`;
  const how = [`${Math.round(r.result.ms)} ms`, ...(r.result.detail ? [r.result.detail] : []), ...(r.result.retried ? ['retried'] : [])].join(', ');
  return [
    `  x IPv${p.family} ${p.section}: ${p.from.label} (${p.from.ip}) -> ${p.row}${via}: expected ${p.expect.outcome}, saw ${WORDS[r.result.observed]} (${how})`,
    `      ${p.expect.reason}`,
  ];
}

function summary(rows: readonly Row[], problems: number, elapsedMs: number | undefined): string {
  const took = elapsedMs === undefined ? '' : ` in ${(elapsedMs / 1000).toFixed(1)} s`;
  const perFamily = [...new Set(rows.map((r) => r.probe.family))]
    .sort()
    .map((f) => `IPv${f} ${rows.filter((r) => r.probe.family === f).length}`)
    .join(', ');
  const bad = rows.filter((r) => !r.match).length;
  const probs = problems > 0 ? `, ${problems} problem${problems === 1 ? '' : 's'}` : '';
  if (bad === 0 && problems === 0) return `OK: all ${rows.length} probes as expected (${perFamily || 'none'})${took}`;
  return `FAILED: ${bad} of ${rows.length} probes differ from the model (${perFamily || 'none'})${probs}${took}`;
}

/** Column headers: the pod's name where it is unique among the columns, else namespace/name. */
export function shortNames(columns: readonly string[]): string[] {
  const last = (c: string): string => c.slice(c.lastIndexOf('/') + 1);
  const count = new Map<string, number>();
  for (const c of columns) count.set(last(c), (count.get(last(c)) ?? 0) + 1);
  return columns.map((c) => (count.get(last(c)) === 1 ? last(c) : c));
}

const natural = (a: string, b: string): number => a.localeCompare(b, 'en', { numeric: true });

function unique(xs: readonly string[]): string[] {
  return [...new Set(xs)];
}
