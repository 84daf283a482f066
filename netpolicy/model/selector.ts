// metav1.LabelSelector: validation as the API server does it
// (ValidateLabelSelector, ValidateLabelName, ValidateLabelValue) and matching
// as labels.Selector does it. The result is canonical, so that two policies
// with the same selector share one peer set.
import type { V1LabelSelector } from '@kubernetes/client-node';
import type { Operator, Requirement, Selector } from './types.ts';

/** A reported problem: the field path and what is wrong with it. */
export type Report = (field: string, reason: string) => void;

const NAME_RE = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS1123_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const OPERATORS: ReadonlySet<string> = new Set<Operator>(['In', 'NotIn', 'Exists', 'DoesNotExist']);

/** Why `key` is not a qualified label key ("prefix/name" or "name"), or undefined. */
export function labelKeyProblem(key: unknown): string | undefined {
  if (typeof key !== 'string') return 'must be a string';
  const parts = key.split('/');
  if (parts.length > 2) return 'a qualified name must have at most one "/"';
  const name = parts[parts.length - 1]!;
  if (parts.length === 2) {
    const prefix = parts[0]!;
    if (prefix.length === 0) return 'prefix part must be non-empty';
    if (prefix.length > 253 || !DNS1123_SUBDOMAIN_RE.test(prefix)) return 'prefix part must be a DNS-1123 subdomain';
  }
  if (name.length === 0) return 'name part must be non-empty';
  if (name.length > 63) return 'name part must be no more than 63 characters';
  if (!NAME_RE.test(name)) return 'name part must consist of alphanumeric characters, "-", "_" or ".", and must start and end with an alphanumeric character';
  return undefined;
}

/** Why `value` is not a label value, or undefined (the empty value is valid). */
export function labelValueProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (value === '') return undefined;
  if (value.length > 63) return 'must be no more than 63 characters';
  if (!NAME_RE.test(value)) return 'a label value must consist of alphanumeric characters, "-", "_" or ".", and must start and end with an alphanumeric character';
  return undefined;
}

/** The selector that matches everything: `{}`, and what a missing selector means where the API says so. */
export const MATCH_ALL: Selector = Object.freeze({ labels: [], requirements: [], key: '{}' });

/**
 * Compiles a selector, reporting every problem under `field`. Returns
 * undefined if any was found: a half-understood selector is never used.
 * A missing selector (undefined) compiles to MATCH_ALL.
 */
export function compileSelector(sel: V1LabelSelector | undefined, field: string, report: Report): Selector | undefined {
  if (sel === undefined || sel === null) return MATCH_ALL;
  if (typeof sel !== 'object' || Array.isArray(sel)) {
    report(field, 'must be an object');
    return undefined;
  }
  let ok = true;
  const fail: Report = (f, r) => {
    ok = false;
    report(f, r);
  };
  const labels = compileMatchLabels(sel.matchLabels, `${field}.matchLabels`, fail);
  const requirements = compileExpressions(sel.matchExpressions, `${field}.matchExpressions`, fail);
  if (!ok) return undefined;
  return { labels, requirements, key: selectorKey(labels, requirements) };
}

function compileMatchLabels(ml: unknown, field: string, report: Report): [string, string][] {
  if (ml === undefined || ml === null) return [];
  if (typeof ml !== 'object' || Array.isArray(ml)) {
    report(field, 'must be a map of label keys to values');
    return [];
  }
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(ml as Record<string, unknown>)) {
    const kp = labelKeyProblem(k);
    if (kp) report(field, `key ${JSON.stringify(k)}: ${kp}`);
    const vp = labelValueProblem(v);
    if (vp) report(`${field}[${k}]`, `value ${JSON.stringify(v)}: ${vp}`);
    if (!kp && !vp) out.push([k, v as string]);
  }
  return out.sort((a, b) => cmp(a[0], b[0]));
}

function compileExpressions(exprs: unknown, field: string, report: Report): Requirement[] {
  if (exprs === undefined || exprs === null) return [];
  if (!Array.isArray(exprs)) {
    report(field, 'must be a list');
    return [];
  }
  const out: Requirement[] = [];
  exprs.forEach((e: unknown, i) => {
    const r = compileRequirement(e, `${field}[${i}]`, report);
    if (r) out.push(r);
  });
  return out.sort((a, b) => cmp(a.key, b.key) || cmp(a.operator, b.operator) || cmp(a.values.join(','), b.values.join(',')));
}

function compileRequirement(e: unknown, field: string, report: Report): Requirement | undefined {
  if (typeof e !== 'object' || e === null) {
    report(field, 'must be an object');
    return undefined;
  }
  const { key, operator, values } = e as { key?: unknown; operator?: unknown; values?: unknown };
  let ok = true;
  const kp = labelKeyProblem(key);
  if (kp) {
    ok = false;
    report(`${field}.key`, kp);
  }
  if (typeof operator !== 'string' || !OPERATORS.has(operator)) {
    report(`${field}.operator`, `unsupported operator ${JSON.stringify(operator)}: must be In, NotIn, Exists or DoesNotExist`);
    return undefined;
  }
  const op = operator as Operator;
  if (values !== undefined && values !== null && !Array.isArray(values)) {
    report(`${field}.values`, 'must be a list');
    return undefined;
  }
  const vals = (values ?? []) as unknown[];
  if ((op === 'In' || op === 'NotIn') && vals.length === 0) {
    ok = false;
    report(`${field}.values`, `must be specified when operator is ${op}`);
  }
  if ((op === 'Exists' || op === 'DoesNotExist') && vals.length > 0) {
    ok = false;
    report(`${field}.values`, `may not be specified when operator is ${op}`);
  }
  vals.forEach((v, j) => {
    const vp = labelValueProblem(v);
    if (vp) {
      ok = false;
      report(`${field}.values[${j}]`, vp);
    }
  });
  if (!ok) return undefined;
  return { key: key as string, operator: op, values: [...new Set(vals as string[])].sort(cmp) };
}

function selectorKey(labels: readonly (readonly [string, string])[], reqs: readonly Requirement[]): string {
  if (labels.length === 0 && reqs.length === 0) return '{}';
  // JSON keeps keys and values with any characters apart unambiguously.
  return JSON.stringify({ l: labels, e: reqs.map((r) => [r.key, r.operator, r.values]) });
}

/** labels.Selector.Matches: every matchLabels pair and every requirement must hold. */
export function matches(sel: Selector, labels: ReadonlyMap<string, string>): boolean {
  for (const [k, v] of sel.labels) if (labels.get(k) !== v) return false;
  for (const r of sel.requirements) if (!requirementHolds(r, labels)) return false;
  return true;
}

function requirementHolds(r: Requirement, labels: ReadonlyMap<string, string>): boolean {
  const v = labels.get(r.key);
  switch (r.operator) {
    case 'In':
      return v !== undefined && r.values.includes(v);
    case 'NotIn':
      // A pod that lacks the key is "not in" any set of values.
      return v === undefined || !r.values.includes(v);
    case 'Exists':
      return v !== undefined;
    case 'DoesNotExist':
      return v === undefined;
  }
}

/** Human text of a selector, for explanations: "app=web,tier in (a,b)" or "{}" (everything). */
export function describeSelector(sel: Selector): string {
  if (sel.key === '{}') return '{}';
  const parts = sel.labels.map(([k, v]) => `${k}=${v}`);
  for (const r of sel.requirements) {
    if (r.operator === 'Exists') parts.push(r.key);
    else if (r.operator === 'DoesNotExist') parts.push(`!${r.key}`);
    else parts.push(`${r.key} ${r.operator === 'In' ? 'in' : 'notin'} (${r.values.join(',')})`);
  }
  return parts.join(',');
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
