import { describe, expect, it } from 'vitest';
import { NetError } from './errors.ts';
import { createLogger, jsonLineToText, serializeError } from './log.ts';

function capture(format: 'text' | 'json', verbosity = 0) {
  const lines: string[] = [];
  const log = createLogger({ format, verbosity, name: 'flanneld', destination: { write: (s: string) => void lines.push(s) } });
  return { log, lines };
}

describe('log', () => {
  it('text reads like klog: level letter, date, time, pid, component, quoted message, key=value', () => {
    const { log, lines } = capture('text');
    log.info({ subnet: '10.244.1.0/24', via: '192.0.2.12' }, 'Subnet added');
    log.warn({ n: 3 }, 'slow');
    expect(lines.join('')).toMatch(/^I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ flanneld\] "Subnet added" subnet="10.244.1.0\/24" via="192.0.2.12"\n/);
    expect(lines.join('')).toMatch(/\nW\d{4} [^\]]+\] "slow" n=3\n$/);
  });

  it('json keeps one JSON object per line', () => {
    const { log, lines } = capture('json');
    log.error({ err: new Error('boom') }, 'failed');
    const o = JSON.parse(lines.join('')) as Record<string, unknown>;
    expect(o).toMatchObject({ level: 'error', name: 'flanneld', msg: 'failed', err: { message: 'boom' } });
  });

  it('errors have one shape: message, code, cause; a string is a message; stacks only from -v 4', () => {
    const e = new NetError('ETIMEDOUT', 'lease renewal', { cause: new NetError('ECONNREFUSED', 'etcd 192.0.2.1:2379') });
    expect(serializeError(e)).toEqual({ message: 'lease renewal', code: 'ETIMEDOUT', cause: { message: 'etcd 192.0.2.1:2379', code: 'ECONNREFUSED' } });
    expect(serializeError('plain')).toEqual({ message: 'plain' });
    const quiet = capture('json');
    quiet.log.error({ err: 'a string' }, 'x');
    quiet.log.warn({ err: e }, 'y');
    const [a, b] = quiet.lines.map((l) => JSON.parse(l) as { err: Record<string, unknown> });
    expect(a!.err).toEqual({ message: 'a string' });
    expect(b!.err['stack']).toBeUndefined();
    const loud = capture('json', 4);
    loud.log.warn({ err: e }, 'y');
    expect(String((JSON.parse(loud.lines[0]!) as { err: { stack: string } }).err.stack)).toContain('lease renewal');
  });

  it('passes through what is not JSON', () => {
    expect(jsonLineToText('not json')).toBe('not json');
  });
});
