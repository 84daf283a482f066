// The restore-text parser, upstream's canonical sort, and the in-memory
// --noflush model.
import { describe, expect, it } from 'vitest';
import { RestoreError, RulesetModel } from './kernel.ts';
import { parseRestore, RestoreParseError, sortRestore, tokenize } from './parse.ts';

describe('parseRestore', () => {
  it('splits tables, chains and rules, keeping quoted words together', () => {
    expect(tokenize('-A X -m comment --comment "a b" -j Y')).toEqual(['-A', 'X', '-m', 'comment', '--comment', 'a b', '-j', 'Y']);
    const [t] = parseRestore('*nat\n:X - [0:0]\n-A X -m comment --comment "a b" -j RETURN\n-X X\nCOMMIT\n');
    expect(t?.name).toBe('nat');
    expect(t?.chains[0]?.rules[0]?.comment).toBe('a b');
    expect(t?.chains[0]?.deleted).toBe(true);
  });

  it.each([
    ['*nat\n-A X -j Y\nCOMMIT\n', 'rule for undeclared chain X'],
    ['*nat\n:X - [0:0]\n', 'table nat not committed'],
    [':X - [0:0]\n', 'outside a table'],
    ['*nat\n:X - [0:0]\n-I X -j Y\nCOMMIT\n', 'unsupported operation -I'],
    ['*nat\n:X - [0:0]\n-A X --comment "open\nCOMMIT\n', 'unterminated quote'],
  ])('rejects %j', (text, reason) => {
    expect(() => parseRestore(text)).toThrow(RestoreParseError);
    expect(() => parseRestore(text)).toThrow(reason);
  });
});

describe('sortRestore (upstream sortIPTablesRules)', () => {
  it('orders tables, chains and the KUBE-SERVICES / KUBE-NODEPORTS rules, and nothing else', () => {
    const text = [
      '*nat',
      ':KUBE-SVC-B - [0:0]',
      ':KUBE-SERVICES - [0:0]',
      ':KUBE-NODEPORTS - [0:0]',
      ':OTHER - [0:0]',
      ':KUBE-SVC-A - [0:0]',
      '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -j KUBE-NODEPORTS',
      '-A KUBE-SERVICES -m comment --comment "b cluster IP" -j KUBE-SVC-B',
      '-A KUBE-SERVICES -m comment --comment "a cluster IP" -j KUBE-SVC-A',
      '-A KUBE-SVC-B -m comment --comment z -j RETURN',
      '-A KUBE-SVC-B -m comment --comment y -j RETURN',
      '-X KUBE-SVC-A',
      'COMMIT',
      '*filter',
      ':KUBE-SERVICES - [0:0]',
      'COMMIT',
      '',
    ].join('\n');
    expect(sortRestore(text)).toBe(
      [
        '*filter',
        ':KUBE-SERVICES - [0:0]',
        'COMMIT',
        '*nat',
        ':KUBE-NODEPORTS - [0:0]',
        ':KUBE-SERVICES - [0:0]',
        ':KUBE-SVC-A - [0:0]',
        ':KUBE-SVC-B - [0:0]',
        ':OTHER - [0:0]',
        '-A KUBE-SERVICES -m comment --comment "a cluster IP" -j KUBE-SVC-A',
        '-A KUBE-SERVICES -m comment --comment "b cluster IP" -j KUBE-SVC-B',
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -j KUBE-NODEPORTS',
        '-A KUBE-SVC-B -m comment --comment z -j RETURN',
        '-A KUBE-SVC-B -m comment --comment y -j RETURN',
        '-X KUBE-SVC-A',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });
});

describe('RulesetModel (--noflush semantics)', () => {
  it('flushes declared chains, keeps undeclared ones, and deletes unreferenced chains', () => {
    const k = new RulesetModel();
    k.apply('*nat\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j RETURN\nCOMMIT\n');
    k.apply('*nat\n:A - [0:0]\n-A A -j RETURN\nCOMMIT\n');
    expect(k.save()).toContain('-A A -j RETURN\n-A B -j RETURN\n');
    k.apply('*nat\n:B - [0:0]\n-X B\nCOMMIT\n');
    expect(k.chains('nat')).toEqual(['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING', 'A']);
  });

  it('fails a table whole: a referenced chain cannot be deleted, a jump needs its chain', () => {
    const k = new RulesetModel();
    k.apply('*nat\n:KUBE-A - [0:0]\n:KUBE-B - [0:0]\n-A KUBE-A -j KUBE-B\n-A KUBE-B -j RETURN\nCOMMIT\n');
    const before = k.save();
    expect(() => k.apply('*nat\n:KUBE-B - [0:0]\n-X KUBE-B\nCOMMIT\n')).toThrow(RestoreError);
    expect(() => k.apply('*nat\n:KUBE-C - [0:0]\n-A KUBE-C -j KUBE-MISSING\nCOMMIT\n')).toThrow('jumps to missing chain KUBE-MISSING');
    expect(k.save()).toBe(before);
  });
});
