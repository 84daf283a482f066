// The packet tracer: upstream's TestTracePacket flows (over upstream's own
// golden ruleset and over ours), the research §1.17 walk-throughs, and the
// tracer's own reporting (probabilities, masquerade per path, notes).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { IPPrefix } from '../../lib/ip/index.ts';
import { renderIPTables } from '../render/iptables.ts';
import { detectLocalByCIDR } from '../render/options.ts';
import { makeService, makeSlice, tcp, World } from '../testing/fixtures.ts';
import { overallWorld, upstreamFakeProxier } from '../testing/upstream.ts';
import { formatTrace, IPTablesTracer, TraceError } from './iptables.ts';
import { runPacketFlows, testNodeIPs, type Flow } from '../testing/flows.ts';

const golden = readFileSync(new URL('../render/testdata/overall-iptables-rules.golden', import.meta.url), 'utf8');

// TestTracePacket (upstream), run over the TestOverallIPTablesRules ruleset.
const tracePacketFlows: Flow[] = [
  { name: 'no match', sourceIP: '10.0.0.2', destIP: '10.0.0.3', destPort: 80, output: '' },
  { name: 'single endpoint', sourceIP: '10.0.0.2', destIP: '172.30.0.41', destPort: 80, output: '10.180.0.1:80' },
  { name: 'multiple endpoints', sourceIP: '10.0.0.2', destIP: '172.30.0.44', destPort: 80, output: '10.180.0.4:80, 10.180.0.5:80' },
  { name: 'LOCAL, KUBE-MARK-MASQ', sourceIP: '192.168.0.2', destIP: '192.168.99.22', destPort: 80, output: '10.180.0.2:80', masq: true },
  { name: 'DROP', sourceIP: '203.0.113.2', destIP: '192.168.99.22', destPort: 80, output: 'DROP' },
  { name: 'ACCEPT (NodePortHealthCheck)', sourceIP: '192.168.0.2', destIP: '192.168.0.2', destPort: 30000, output: 'ACCEPT' },
  { name: 'REJECT', sourceIP: '10.0.0.2', destIP: '172.30.0.46', destPort: 80, output: 'REJECT' },
];

describe('TestTracePacket (upstream flows)', () => {
  it('over upstream’s golden ruleset', () => runPacketFlows(golden, testNodeIPs, tracePacketFlows));

  it('over our rendering of the same services', () => {
    const w = overallWorld();
    w.sync();
    runPacketFlows(renderIPTables({ services: w.services.map, endpoints: w.endpoints.map }, upstreamFakeProxier).text, testNodeIPs, tracePacketFlows);
  });

  it('reads hand-written rules with base chains and unquoted comments', () => {
    const rules = [
      '*nat',
      ':PREROUTING - [0:0]',
      ':KUBE-SERVICES - [0:0]',
      ':KUBE-SEP-X - [0:0]',
      '-A PREROUTING -m comment --comment kubernetes service portals -j KUBE-SERVICES',
      '-A KUBE-SERVICES -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SEP-X',
      '-A KUBE-SEP-X -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80',
      'COMMIT',
      '',
    ].join('\n');
    runPacketFlows(rules, [], [{ name: 'via PREROUTING', sourceIP: '10.0.0.2', destIP: '172.30.0.41', destPort: 80, output: '10.180.0.1:80' }]);
  });

  it('rejects an option it does not understand', () => {
    expect(() => new IPTablesTracer('*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES --frobnicate 1 -j DROP\nCOMMIT\n', [])).toThrow(TraceError);
  });
});

describe('RETURN, goto and MARK', () => {
  it('returns to the calling chain, and a goto does not come back', () => {
    const rules = [
      '*nat',
      ':KUBE-SERVICES - [0:0]',
      ':A - [0:0]',
      ':B - [0:0]',
      '-A KUBE-SERVICES -j A',
      '-A KUBE-SERVICES -p tcp --dport 81 -g B',
      '-A KUBE-SERVICES -j DNAT --to-destination 10.0.0.9:9',
      '-A A -p tcp --dport 80 -j RETURN',
      '-A A -j MARK --or-mark 0x1',
      '-A A -j DNAT --to-destination 10.0.0.1:1',
      '-A B -j RETURN',
      'COMMIT',
      '',
    ].join('\n');
    runPacketFlows(rules, [], [
      { name: 'RETURN from A, then the rest of KUBE-SERVICES', sourceIP: '10.0.0.2', destIP: '10.0.0.3', destPort: 80, output: '10.0.0.9:9' },
      { name: 'through A', sourceIP: '10.0.0.2', destIP: '10.0.0.3', destPort: 82, output: '10.0.0.1:1' },
    ]);
    const t = new IPTablesTracer(rules.replace('-A KUBE-SERVICES -j A\n', ''), []);
    expect(t.trace({ source: '10.0.0.2', destination: '10.0.0.3', port: 81, protocol: 'tcp' }).output).toBe('');
  });
});

describe('research §1.17 walk-throughs', () => {
  const w = new World(4, 'node-a').add(
    makeService('default', 'web', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] }),
    makeService('default', 'edge', {
      type: 'NodePort',
      clusterIP: '10.96.0.20',
      externalTrafficPolicy: 'Local',
      ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }],
    }),
    makeSlice('default', 'web', 1, [{ addresses: ['10.244.1.5'] }, { addresses: ['10.244.2.7'] }, { addresses: ['10.244.3.9'] }], [tcp('http', 8080)]),
    makeSlice('default', 'edge', 1, [{ addresses: ['10.244.1.6'], nodeName: 'node-a' }, { addresses: ['10.244.2.8'], nodeName: 'node-b' }], [tcp('http', 8080)]),
  );
  w.sync();
  const opts = { family: 4 as const, nodeName: 'node-a', localDetector: detectLocalByCIDR(IPPrefix.mustParse('10.244.0.0/16')), nfacct: true, randomFully: true };
  const text = renderIPTables({ services: w.services.map, endpoints: w.endpoints.map }, opts).text;
  const nodeIPs = ['192.168.1.10'];
  const web = '10.244.1.5:8080, 10.244.2.7:8080, 10.244.3.9:8080';

  it('matches the table', () =>
    runPacketFlows(text, nodeIPs, [
      { name: 'pod → ClusterIP', sourceIP: '10.244.5.5', destIP: '10.96.0.10', destPort: 80, output: web },
      { name: 'node → ClusterIP (masquerade)', sourceIP: '192.168.1.10', destIP: '10.96.0.10', destPort: 80, output: web, masq: true },
      { name: 'pod → its own service (hairpin)', sourceIP: '10.244.1.5', destIP: '10.96.0.10', destPort: 80, output: web, masq: true },
      { name: 'external → NodePort, eTP=Local', sourceIP: '203.0.113.2', destIP: '192.168.1.10', destPort: 30080, output: '10.244.1.6:8080' },
      { name: 'pod → NodePort', sourceIP: '10.244.5.5', destIP: '192.168.1.10', destPort: 30080, output: '10.244.1.6:8080, 10.244.2.8:8080' },
      { name: 'node → localhost NodePort', sourceIP: '127.0.0.1', destIP: '127.0.0.1', destPort: 30080, output: '10.244.1.6:8080, 10.244.2.8:8080', masq: true },
    ]));

  it('gives the same answers over the iptables-save form of those rules (base chains, normalised syntax)', () => {
    const save = readFileSync(new URL('./testdata/worked-example.save', import.meta.url), 'utf8');
    runPacketFlows(save, nodeIPs, [
      { name: 'pod → ClusterIP', sourceIP: '10.244.5.5', destIP: '10.96.0.10', destPort: 80, output: web },
      { name: 'node → ClusterIP (masquerade)', sourceIP: '192.168.1.10', destIP: '10.96.0.10', destPort: 80, output: web, masq: true },
      { name: 'external → NodePort, eTP=Local', sourceIP: '203.0.113.2', destIP: '192.168.1.10', destPort: 30080, output: '10.244.1.6:8080' },
      { name: 'health check node port', sourceIP: '203.0.113.2', destIP: '192.168.1.10', destPort: 32000, output: 'ACCEPT' },
    ]);
    // iptables-save prints the kernel's quantised probability; the share per endpoint stays ~1/3.
    const r = new IPTablesTracer(save, nodeIPs).trace({ source: '10.244.5.5', destination: '10.96.0.10', port: 80, protocol: 'tcp' });
    expect(r.verdicts.map((v) => v.probability.toFixed(6))).toEqual(['0.333333', '0.333333', '0.333333']);
  });

  it('reports each endpoint’s probability and masquerades only the hairpin path', () => {
    const tracer = new IPTablesTracer(text, nodeIPs);
    const r = tracer.trace({ source: '10.244.1.5', destination: '10.96.0.10', port: 80, protocol: 'tcp' });
    expect(r.verdicts.map((v) => [v.destination, v.probability.toFixed(4), v.masquerade])).toEqual([
      ['10.244.1.5:8080', '0.3333', true],
      ['10.244.2.7:8080', '0.3333', false],
      ['10.244.3.9:8080', '0.3333', false],
    ]);
    expect(r.verdicts[0]?.chains).toEqual(['KUBE-SERVICES', 'KUBE-SVC-CDGGSHYLG3RE2FKL', 'KUBE-SEP-AFGSLHOD2HFNCBX4']);
    const out = formatTrace({ source: '10.244.1.5', destination: '10.96.0.10', port: 80, protocol: 'tcp' }, r);
    expect(out).toContain('verdict: DNAT to 10.244.1.5:8080 with probability 0.3333, masqueraded');
  });

  it('notes session affinity instead of guessing', () => {
    const a = new World(4, 'n').add(
      makeService('ns', 'aff', { clusterIP: '10.96.0.30', sessionAffinity: 'ClientIP', ports: [{ name: '', port: 53, protocol: 'UDP' }] }),
      makeSlice('ns', 'aff', 1, [{ addresses: ['10.244.1.1'] }, { addresses: ['10.244.1.2'] }], [{ name: '', port: 5353, protocol: 'UDP' }]),
    );
    a.sync();
    const t = new IPTablesTracer(renderIPTables({ services: a.services.map, endpoints: a.endpoints.map }, { family: 4 }).text, []);
    const r = t.trace({ source: '10.244.9.9', destination: '10.96.0.30', port: 53, protocol: 'UDP' });
    expect(r.output).toBe('10.244.1.1:5353, 10.244.1.2:5353');
    expect(r.notes.some((n) => n.includes('within 10800s'))).toBe(true);
    expect(t.trace({ source: '10.244.9.9', destination: '10.96.0.30', port: 53, protocol: 'tcp' }).output).toBe('');
  });
});
