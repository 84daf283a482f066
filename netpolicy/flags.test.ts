import { CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { parseArgs, parseHostPort } from './flags.ts';

const quiet = { write: (): void => {}, hostname: 'node-1' };

describe('netpolicy flags (pflag syntax)', () => {
  it('defaults as documented', () => {
    expect(parseArgs([], quiet)).toEqual({
      kind: 'agent',
      flags: {
        kubeconfig: undefined,
        manifests: undefined,
        hostnameOverride: 'node-1',
        backend: 'nftables',
        healthzBindAddress: { host: '0.0.0.0', port: 10299 },
        metricsBindAddress: { host: '0.0.0.0', port: 9080 },
        logDenied: false,
        newPods: 'hold',
        cleanup: false,
        verbosity: 0,
      },
    });
  });

  it('takes --flag=value, --flag value, -v N and booleans', () => {
    const p = parseArgs(['--manifests=/m', '--hostname-override', 'n2', '--backend=iptables', '--healthz-bind-address=127.0.0.1:1', '--metrics-bind-address', '', '--log-denied', '--new-pods=open', '-v', '4', '--kubeconfig=/k'], quiet);
    expect(p).toEqual({
      kind: 'agent',
      flags: {
        kubeconfig: '/k',
        manifests: '/m',
        hostnameOverride: 'n2',
        backend: 'iptables',
        healthzBindAddress: { host: '127.0.0.1', port: 1 },
        metricsBindAddress: undefined,
        logDenied: true,
        newPods: 'open',
        cleanup: false,
        verbosity: 4,
      },
    });
    expect(parseArgs(['--v=2', '--cleanup'], quiet)).toMatchObject({ flags: { verbosity: 2, cleanup: true } });
  });

  it('rejects a bad backend, address or verbosity with exit code 2', () => {
    for (const argv of [['--backend', 'ipvs'], ['--healthz-bind-address', 'nope'], ['-v', 'x'], ['--no-such-flag'], ['extra']]) {
      let err: unknown;
      const out: string[] = [];
      try {
        parseArgs(argv, { write: (s) => void out.push(s), hostname: 'n' });
      } catch (e) {
        err = e;
      }
      expect(err, argv.join(' ')).toBeInstanceOf(CommanderError);
      expect((err as CommanderError).exitCode).toBe(2);
      expect(out.join('')).toMatch(/error/);
    }
  });

  it('parses host:port forms', () => {
    expect(parseHostPort(':9080')).toEqual({ host: '0.0.0.0', port: 9080 });
    expect(parseHostPort('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseHostPort('')).toBeUndefined();
    expect(() => parseHostPort('1.2.3.4:99999')).toThrow(/host:port/);
  });

  it('parses explain: source, destination, port, protocol (TCP by default), and one state source', () => {
    expect(parseArgs(['explain', '--manifests', '/m', 'x/a', 'y/b', '80'], quiet)).toEqual({
      kind: 'explain',
      flags: { manifests: '/m', agent: undefined, source: 'x/a', destination: 'y/b', port: 80, protocol: 'TCP', family: undefined, json: false },
    });
    expect(parseArgs(['explain', '--agent=http://127.0.0.1:9080', '192.0.2.9', 'y/b', '53', 'udp', '--family', '6', '--json'], quiet)).toMatchObject({
      flags: { agent: 'http://127.0.0.1:9080', source: '192.0.2.9', port: 53, protocol: 'UDP', family: 6, json: true },
    });
    for (const argv of [['explain', 'x/a', 'y/b', '80'], ['explain', '--manifests', '/m', '--agent', 'http://a', 'x/a', 'y/b', '80'], ['explain', '--manifests', '/m', 'x/a', 'y/b', '0'], ['explain', '--manifests', '/m', 'x/a', 'y/b', '80', 'ICMP']]) {
      expect(() => parseArgs(argv, quiet), argv.join(' ')).toThrow(CommanderError);
    }
  });
});
