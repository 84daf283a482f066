// Golden tests: upstream's TestOverallIPTablesRules (research §1.18) and the
// worked example of research §1.17, from API objects through the trackers
// to the restore text, byte for byte.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { IPPrefix } from '../../lib/ip/index.ts';
import { makeService, makeSlice, tcp, World } from '../testing/fixtures.ts';
import { overallWorld, upstreamFakeProxier } from '../testing/upstream.ts';
import { sortRestore } from '../trace/parse.ts';
import { checkRuleJumps } from './check.ts';
import { renderIPTables, type IPTablesOptions } from './iptables.ts';
import { detectLocalByCIDR } from './options.ts';

const testdata = (f: string): string => readFileSync(new URL(`./testdata/${f}`, import.meta.url), 'utf8');

describe('TestOverallIPTablesRules (upstream golden, research §1.18)', () => {
  it('renders exactly the expected rules after upstream sortIPTablesRules', () => {
    const w = overallWorld();
    w.sync();
    const r = renderIPTables({ services: w.services.map, endpoints: w.endpoints.map }, upstreamFakeProxier);
    // upstream: assertIPTablesRulesEqual(t, line, true, expected, sortIPTablesRules(result))
    expect(sortRestore(r.text)).toBe(testdata('overall-iptables-rules.golden'));
    expect(checkRuleJumps(testdata('overall-iptables-rules.golden'))).toEqual([]);
    expect(checkRuleJumps(r.text)).toEqual([]);
    expect(w.issues).toEqual([]);
    // countRulesFromMetric == countRules: every "-A" line of the nat table.
    const natLines = r.text.split('*nat')[1]?.split('\n').filter((l) => l.startsWith('-A')).length;
    expect(r.natRulesTotal).toBe(natLines);
    expect(r.noLocalEndpointsExternal).toBe(1);
  });
});

describe('worked example (research §1.17 a)', () => {
  const options: IPTablesOptions = {
    family: 4,
    nodeName: 'node-a',
    localDetector: detectLocalByCIDR(IPPrefix.mustParse('10.244.0.0/16')),
    masqueradeBit: 14,
    localhostNodePorts: true,
    nfacct: true,
    randomFully: true,
  };
  const world = (): World =>
    new World(4, 'node-a').add(
      makeService('default', 'web', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }] }),
      // The research gives `edge` a healthCheckNodePort although it is a NodePort service (the API
      // allocates one only for LoadBalancers, and the proxy reads it only there). A LoadBalancer
      // without ingress IPs renders the same rules plus that health-check rule.
      makeService('default', 'edge', {
        type: 'LoadBalancer',
        clusterIP: '10.96.0.20',
        externalTrafficPolicy: 'Local',
        healthCheckNodePort: 32000,
        ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, nodePort: 30080 }],
      }),
      makeSlice('default', 'web', 1, [{ addresses: ['10.244.1.5'] }, { addresses: ['10.244.2.7'] }, { addresses: ['10.244.3.9'] }], [tcp('http', 8080)]),
      makeSlice('default', 'edge', 1, [{ addresses: ['10.244.1.6'], nodeName: 'node-a' }, { addresses: ['10.244.2.8'], nodeName: 'node-b' }], [tcp('http', 8080)]),
    );

  it('renders the restore input byte for byte, in the same order', () => {
    const w = world();
    w.sync();
    const r = renderIPTables({ services: w.services.map, endpoints: w.endpoints.map }, options);
    // Services are rendered in the order they were added (web, then edge), as in the example.
    expect(r.text).toBe(testdata('worked-example.restore'));
    expect(checkRuleJumps(r.text)).toEqual([]);
  });

  it('matches after upstream sorting too', () => {
    const w = world();
    w.sync();
    const r = renderIPTables({ services: w.services.map, endpoints: w.endpoints.map }, options);
    expect(sortRestore(r.text)).toBe(sortRestore(testdata('worked-example.restore')));
  });
});
