// The nftables tracer itself: over upstream's golden text as written (the
// way upstream traces its fake's dump), goto/jump/return semantics, nested
// probabilities, and refusing what it cannot read.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatTrace, TraceError } from './iptables.ts';
import { NFTablesTracer, parseNftAddLines } from './nftables.ts';

const golden = readFileSync(new URL('../render/testdata/nft-overall.golden', import.meta.url), 'utf8');
const nodeIPs = ['192.168.0.2', '192.168.1.2', '192.168.99.11'];
const pkt = (source: string, destination: string, port: number, protocol = 'tcp') => ({ source, destination, port, protocol });

const table = (...lines: string[]): string =>
  [
    'add table ip kube-proxy { comment "rules for kube-proxy" ; }',
    'add chain ip kube-proxy filter-prerouting-pre-dnat { type filter hook prerouting priority -110 ; }',
    'add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }',
    'add chain ip kube-proxy filter-forward { type filter hook forward priority 0 ; }',
    'add chain ip kube-proxy filter-input { type filter hook input priority 0 ; }',
    'add chain ip kube-proxy mark-for-masquerade',
    'add rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000',
    ...lines,
  ].join('\n');

describe('NFTablesTracer', () => {
  it('traces upstream’s golden as written', () => {
    const t = new NFTablesTracer(golden, nodeIPs);
    expect(t.trace(pkt('10.0.0.2', '172.30.0.44', 80)).output).toBe('10.180.0.4:80, 10.180.0.5:80');
    expect(t.trace(pkt('10.0.0.2', '172.30.0.46', 80)).output).toBe('REJECT');
    expect(t.trace(pkt('203.0.113.2', '192.168.0.2', 3001)).output).toBe('DROP');
    const viaNodePort = t.trace(pkt('203.0.113.2', '192.168.0.2', 3003));
    expect([viaNodePort.output, viaNodePort.masquerade]).toEqual(['10.180.0.3:80', true]);
    expect(formatTrace(pkt('203.0.113.2', '192.168.0.2', 3003), viaNodePort)).toContain('10.180.0.3:80');
  });

  it('multiplies probabilities through nested numgen maps, and keeps the mark per branch', () => {
    const t = new NFTablesTracer(
      table(
        'add chain ip kube-proxy a',
        'add chain ip kube-proxy b',
        'add chain ip kube-proxy c',
        'add chain ip kube-proxy d',
        'add rule ip kube-proxy nat-prerouting numgen random mod 2 vmap { 0 : goto a , 1 : goto b }',
        'add rule ip kube-proxy a numgen random mod 2 vmap { 0 : goto c , 1 : goto d }',
        'add rule ip kube-proxy b meta l4proto tcp dnat to 10.0.0.2:80',
        'add rule ip kube-proxy c jump mark-for-masquerade',
        'add rule ip kube-proxy c meta l4proto tcp dnat to 10.0.0.3:80',
        'add rule ip kube-proxy d meta l4proto tcp dnat to 10.0.0.4:80',
      ),
      [],
    );
    const r = t.trace(pkt('10.1.0.1', '10.2.0.1', 80));
    expect(r.verdicts.map((v) => [v.destination, v.probability, v.masquerade])).toEqual([
      ['10.0.0.3:80', 0.25, true],
      ['10.0.0.4:80', 0.25, false],
      ['10.0.0.2:80', 0.5, false],
    ]);
  });

  it('goto does not come back; jump does; return ends the chain', () => {
    const t = new NFTablesTracer(
      table(
        'add chain ip kube-proxy j',
        'add chain ip kube-proxy g',
        'add rule ip kube-proxy j return',
        'add rule ip kube-proxy j drop',
        'add rule ip kube-proxy g ip saddr 10.9.9.9 drop',
        'add rule ip kube-proxy nat-prerouting tcp dport 80 jump j',
        'add rule ip kube-proxy nat-prerouting tcp dport 81 goto g',
        'add rule ip kube-proxy nat-prerouting meta l4proto tcp dnat to 10.0.0.1:1',
      ),
      [],
    );
    expect(t.trace(pkt('10.1.0.1', '10.2.0.1', 80)).output).toBe('10.0.0.1:1');
    expect(t.trace(pkt('10.1.0.1', '10.2.0.1', 81)).output).toBe('');
    expect(t.trace(pkt('10.9.9.9', '10.2.0.1', 81)).output).toBe('DROP');
  });

  it('refuses rules and lines it cannot read, rather than guessing', () => {
    expect(() => parseNftAddLines('list ruleset')).toThrow(TraceError);
    const t = new NFTablesTracer(table('add rule ip kube-proxy nat-prerouting ct mark 0x1 accept'), []);
    expect(() => t.trace(pkt('10.1.0.1', '10.2.0.1', 80))).toThrow(/cannot trace rule/);
  });
});
