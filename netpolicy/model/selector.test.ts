import { describe, expect, test } from 'vitest';
import type { V1LabelSelector } from '@kubernetes/client-node';
import { compileSelector, describeSelector, matches } from './selector.ts';
import type { Selector } from './types.ts';

function compile(sel: unknown): { selector: Selector | undefined; problems: string[] } {
  const problems: string[] = [];
  const selector = compileSelector(sel as V1LabelSelector, 'sel', (f, r) => problems.push(`${f}: ${r}`));
  return { selector, problems };
}

const labels = (o: Record<string, string>): Map<string, string> => new Map(Object.entries(o));

describe('matching', () => {
  test.each([
    { name: 'empty selector matches everything', sel: {}, pod: {}, match: true },
    { name: 'missing selector matches everything', sel: undefined, pod: { a: '1' }, match: true },
    { name: 'matchLabels equal', sel: { matchLabels: { app: 'web' } }, pod: { app: 'web', x: 'y' }, match: true },
    { name: 'matchLabels other value', sel: { matchLabels: { app: 'web' } }, pod: { app: 'db' }, match: false },
    { name: 'matchLabels missing key', sel: { matchLabels: { app: 'web' } }, pod: {}, match: false },
    { name: 'matchLabels all pairs must hold', sel: { matchLabels: { app: 'web', tier: 'fe' } }, pod: { app: 'web' }, match: false },
    { name: 'matchLabels empty value', sel: { matchLabels: { flag: '' } }, pod: { flag: '' }, match: true },
    { name: 'In: value in set', sel: { matchExpressions: [{ key: 'env', operator: 'In', values: ['a', 'b'] }] }, pod: { env: 'b' }, match: true },
    { name: 'In: value not in set', sel: { matchExpressions: [{ key: 'env', operator: 'In', values: ['a'] }] }, pod: { env: 'c' }, match: false },
    { name: 'In: key missing', sel: { matchExpressions: [{ key: 'env', operator: 'In', values: ['a'] }] }, pod: {}, match: false },
    { name: 'NotIn: value not in set', sel: { matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['a'] }] }, pod: { env: 'c' }, match: true },
    { name: 'NotIn: value in set', sel: { matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['a'] }] }, pod: { env: 'a' }, match: false },
    { name: 'NotIn matches a pod lacking the key', sel: { matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['a'] }] }, pod: { other: 'a' }, match: true },
    { name: 'Exists: present (empty value)', sel: { matchExpressions: [{ key: 'env', operator: 'Exists' }] }, pod: { env: '' }, match: true },
    { name: 'Exists: absent', sel: { matchExpressions: [{ key: 'env', operator: 'Exists' }] }, pod: {}, match: false },
    { name: 'DoesNotExist: absent', sel: { matchExpressions: [{ key: 'env', operator: 'DoesNotExist' }] }, pod: { x: '1' }, match: true },
    { name: 'DoesNotExist: present', sel: { matchExpressions: [{ key: 'env', operator: 'DoesNotExist' }] }, pod: { env: 'a' }, match: false },
    {
      name: 'labels and expressions are ANDed',
      sel: { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['prod'] }] },
      pod: { app: 'web', env: 'prod' },
      match: false,
    },
  ])('$name', ({ sel, pod, match }) => {
    const { selector, problems } = compile(sel);
    expect(problems).toEqual([]);
    expect(matches(selector!, labels(pod))).toBe(match);
  });
});

describe('validation', () => {
  test.each([
    { name: 'In without values', sel: { matchExpressions: [{ key: 'a', operator: 'In', values: [] }] }, problem: 'sel.matchExpressions[0].values: must be specified when operator is In' },
    { name: 'NotIn without values', sel: { matchExpressions: [{ key: 'a', operator: 'NotIn' }] }, problem: 'sel.matchExpressions[0].values: must be specified when operator is NotIn' },
    { name: 'Exists with values', sel: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] }, problem: 'sel.matchExpressions[0].values: may not be specified when operator is Exists' },
    { name: 'DoesNotExist with values', sel: { matchExpressions: [{ key: 'a', operator: 'DoesNotExist', values: ['x'] }] }, problem: 'sel.matchExpressions[0].values: may not be specified when operator is DoesNotExist' },
    { name: 'unknown operator', sel: { matchExpressions: [{ key: 'a', operator: 'Gt', values: ['1'] }] }, problem: 'sel.matchExpressions[0].operator: unsupported operator "Gt": must be In, NotIn, Exists or DoesNotExist' },
    { name: 'operator is case-sensitive', sel: { matchExpressions: [{ key: 'a', operator: 'in', values: ['1'] }] }, problem: 'sel.matchExpressions[0].operator: unsupported operator "in": must be In, NotIn, Exists or DoesNotExist' },
    { name: 'bad expression key', sel: { matchExpressions: [{ key: '-a', operator: 'Exists' }] }, problem: /^sel\.matchExpressions\[0\]\.key: name part must consist/ },
    { name: 'bad expression value', sel: { matchExpressions: [{ key: 'a', operator: 'In', values: ['ok', 'not ok'] }] }, problem: /^sel\.matchExpressions\[0\]\.values\[1\]: a label value must consist/ },
    { name: 'bad matchLabels key', sel: { matchLabels: { 'a/b/c': 'x' } }, problem: 'sel.matchLabels: key "a/b/c": a qualified name must have at most one "/"' },
    { name: 'bad key prefix', sel: { matchLabels: { 'Example.com/a': 'x' } }, problem: 'sel.matchLabels: key "Example.com/a": prefix part must be a DNS-1123 subdomain' },
    { name: 'key too long', sel: { matchLabels: { ['k'.repeat(64)]: 'x' } }, problem: /name part must be no more than 63 characters/ },
    { name: 'value too long', sel: { matchLabels: { a: 'v'.repeat(64) } }, problem: /^sel\.matchLabels\[a\]: value "v+": must be no more than 63 characters/ },
    { name: 'value not a string', sel: { matchLabels: { a: 1 } }, problem: 'sel.matchLabels[a]: value 1: must be a string' },
    { name: 'matchExpressions not a list', sel: { matchExpressions: { key: 'a' } }, problem: 'sel.matchExpressions: must be a list' },
    { name: 'selector not an object', sel: 'app=web', problem: 'sel: must be an object' },
  ])('$name', ({ sel, problem }) => {
    const { selector, problems } = compile(sel);
    expect(selector).toBeUndefined();
    expect(problems).toHaveLength(1);
    if (typeof problem === 'string') expect(problems[0]).toBe(problem);
    else expect(problems[0]).toMatch(problem);
  });

  test('a qualified key with a DNS prefix is valid', () => {
    expect(compile({ matchLabels: { 'app.kubernetes.io/name': 'web' } }).problems).toEqual([]);
  });

  test('every problem of a selector is reported, not just the first', () => {
    const { problems } = compile({ matchLabels: { '-x': 'a' }, matchExpressions: [{ key: 'a', operator: 'In' }, { key: 'b', operator: 'Exists', values: ['1'] }] });
    expect(problems).toHaveLength(3);
  });
});

describe('canonical key', () => {
  test('order of labels, expressions and values does not matter', () => {
    const a = compile({ matchLabels: { b: '2', a: '1' }, matchExpressions: [{ key: 'x', operator: 'In', values: ['q', 'p'] }, { key: 'w', operator: 'Exists' }] }).selector!;
    const b = compile({ matchExpressions: [{ key: 'w', operator: 'Exists' }, { key: 'x', operator: 'In', values: ['p', 'q', 'p'] }], matchLabels: { a: '1', b: '2' } }).selector!;
    expect(a.key).toBe(b.key);
    expect(describeSelector(a)).toBe('a=1,b=2,w,x in (p,q)');
  });

  test('different selectors have different keys', () => {
    expect(compile({ matchLabels: { a: '1' } }).selector!.key).not.toBe(compile({ matchLabels: { a: '2' } }).selector!.key);
    expect(compile({}).selector!.key).toBe('{}');
  });
});
