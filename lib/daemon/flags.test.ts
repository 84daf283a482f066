import { describe, expect, it } from 'vitest';
import { FlagError, GoFlagSet, parseGoBool } from './flags.ts';
import type { GoFlag } from './flags.ts';

type Key = 'listen' | 'verbose' | 'workers' | 'peer' | 'tags';
const FLAGS: GoFlag<Key>[] = [
  { name: 'listen', key: 'listen', kind: 'string', def: ':8080', usage: 'address to listen on' },
  { name: 'verbose', key: 'verbose', kind: 'bool', def: false, usage: 'log more' },
  { name: 'workers', key: 'workers', kind: 'int', def: 4, usage: 'worker count' },
  { name: 'peer', key: 'peer', kind: 'list', envCommaList: true, def: ['a'], usage: 'a peer; repeatable' },
  { name: 'tags', key: 'tags', kind: 'csv', def: ['x', 'y'], usage: 'tags' },
];
const set = new GoFlagSet(FLAGS, { program: 'demo', envPrefix: 'DEMO' });

function parse(argv: string[], env: Record<string, string> = {}) {
  const r = set.parseCommandLine(argv);
  if (r.kind !== 'flags') throw new Error('expected flags');
  set.applyEnv(r, env);
  return r;
}

describe('GoFlagSet', () => {
  it('parses Go flag syntax; a list flag replaces its default, then appends', () => {
    const r = parse(['-verbose', '--workers', '0x10', '-peer=b', '--peer', 'c', '-tags=p,q', 'rest', '-not-a-flag']);
    expect(r.values).toEqual({ listen: ':8080', verbose: true, workers: 16, peer: ['b', 'c'], tags: ['p', 'q'] });
    expect([...r.set].sort()).toEqual(['peer', 'tags', 'verbose', 'workers']);
    expect(r.args).toEqual(['rest', '-not-a-flag']);
    expect(parse(['--', '-verbose']).args).toEqual(['-verbose']);
  });

  it('takes <PREFIX>_<NAME> env values only for flags not on the command line', () => {
    const r = parse(['-listen=:1'], { DEMO_LISTEN: ':2', DEMO_WORKERS: '7', DEMO_PEER: ' p1 , ,p2', DEMO_VERBOSE: '' });
    expect(r.values).toMatchObject({ listen: ':1', workers: 7, peer: ['p1', 'p2'], verbose: false });
    expect(set.envKey('some-flag')).toBe('DEMO_SOME_FLAG');
    expect(() => parse([], { DEMO_WORKERS: 'many' })).toThrow('invalid value "many" for DEMO_WORKERS: parse error');
  });

  it('reports errors with Go flag messages', () => {
    expect(() => set.parseCommandLine(['-nope'])).toThrow(new FlagError('flag provided but not defined: -nope'));
    expect(() => set.parseCommandLine(['-workers'])).toThrow('flag needs an argument: -workers');
    expect(() => set.parseCommandLine(['-verbose=maybe'])).toThrow('invalid boolean value "maybe" for flag -verbose: parse error');
    expect(() => set.parseCommandLine(['-=x'])).toThrow('bad flag syntax: -=x');
    expect(set.parseCommandLine(['-h'])).toEqual({ kind: 'help' });
    expect(parseGoBool('F')).toBe(false);
  });

  it('prints usage like Go PrintDefaults', () => {
    expect(set.usage()).toBe(
      [
        'Usage: demo [OPTION]...',
        '  -listen string',
        '    \taddress to listen on (default ":8080")',
        '  -peer value',
        '    \ta peer; repeatable',
        '  -tags string',
        '    \ttags (default "x,y")',
        '  -verbose',
        '    \tlog more',
        '  -workers int',
        '    \tworker count (default 4)',
        '',
      ].join('\n'),
    );
  });
});
