// Validation of single policies, and what a rejected policy still does.
import { describe, expect, test } from 'vitest';
import { policy } from '../testing/fixtures.ts';
import { compilePolicy } from './policy.ts';

const withIngressPorts = (ports: unknown): unknown => ({ podSelector: {}, ingress: [{ ports }] });
const withFrom = (from: unknown): unknown => ({ podSelector: {}, ingress: [{ from }] });
const withBlock = (ipBlock: unknown): unknown => withFrom([{ ipBlock }]);

describe('bad input is rejected with namespace/name, field path and reason', () => {
  test.each([
    // Peers
    { name: 'empty peer entry', spec: withFrom([{}]), field: 'spec.ingress[0].from[0]', reason: /empty peer is invalid/ },
    { name: 'empty peer entry in egress', spec: { podSelector: {}, egress: [{ to: [{ podSelector: {} }, {}] }] }, field: 'spec.egress[0].to[1]', reason: /empty peer is invalid/ },
    { name: 'ipBlock with podSelector', spec: withFrom([{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }]), field: 'spec.ingress[0].from[0]', reason: /may not specify ipBlock together/ },
    { name: 'ipBlock with namespaceSelector', spec: withFrom([{ ipBlock: { cidr: '10.0.0.0/8' }, namespaceSelector: {} }]), field: 'spec.ingress[0].from[0]', reason: /may not specify ipBlock together/ },
    { name: 'peer not an object', spec: withFrom(['10.0.0.0/8']), field: 'spec.ingress[0].from[0]', reason: /must be an object/ },
    { name: 'from not a list', spec: withFrom({ podSelector: {} }), field: 'spec.ingress[0].from', reason: /must be a list/ },
    // Selectors inside peers and the policy's own
    { name: 'bad podSelector in a peer', spec: withFrom([{ podSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }]), field: 'spec.ingress[0].from[0].podSelector.matchExpressions[0].values', reason: /must be specified/ },
    { name: 'bad namespaceSelector in a peer', spec: withFrom([{ namespaceSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] } }]), field: 'spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values', reason: /may not be specified/ },
    { name: 'bad policy podSelector', spec: { podSelector: { matchLabels: { 'a b': 'x' } } }, field: 'spec.podSelector.matchLabels', reason: /name part must consist/ },
    // CIDRs
    { name: 'cidr not a CIDR', spec: withBlock({ cidr: '10.0.0.0' }), field: 'spec.ingress[0].from[0].ipBlock.cidr', reason: /invalid CIDR "10.0.0.0"/ },
    { name: 'cidr with a bad address', spec: withBlock({ cidr: '10.0.0.256/24' }), field: 'spec.ingress[0].from[0].ipBlock.cidr', reason: /invalid CIDR/ },
    { name: 'cidr with a bad length', spec: withBlock({ cidr: '10.0.0.0/33' }), field: 'spec.ingress[0].from[0].ipBlock.cidr', reason: /invalid CIDR/ },
    { name: 'cidr v6 length', spec: withBlock({ cidr: 'fd00::/129' }), field: 'spec.ingress[0].from[0].ipBlock.cidr', reason: /invalid CIDR/ },
    { name: 'cidr missing', spec: withBlock({ except: ['10.0.0.0/8'] }), field: 'spec.ingress[0].from[0].ipBlock.cidr', reason: /CIDR is required/ },
    { name: 'except not a CIDR', spec: withBlock({ cidr: '10.0.0.0/8', except: ['nope'] }), field: 'spec.ingress[0].from[0].ipBlock.except[0]', reason: /invalid CIDR "nope"/ },
    { name: 'except outside cidr', spec: withBlock({ cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] }), field: 'spec.ingress[0].from[0].ipBlock.except[0]', reason: /strict subset of cidr 10.0.0.0\/16/ },
    { name: 'except equal to cidr', spec: withBlock({ cidr: '10.0.0.0/16', except: ['10.0.0.0/16'] }), field: 'spec.ingress[0].from[0].ipBlock.except[0]', reason: /strict subset/ },
    { name: 'except wider than cidr', spec: withBlock({ cidr: '10.0.0.0/16', except: ['10.0.0.0/8'] }), field: 'spec.ingress[0].from[0].ipBlock.except[0]', reason: /strict subset/ },
    { name: 'except of the other family', spec: withBlock({ cidr: '10.0.0.0/8', except: ['fd00::/64'] }), field: 'spec.ingress[0].from[0].ipBlock.except[0]', reason: /same IP family/ },
    { name: 'except not a list', spec: withBlock({ cidr: '10.0.0.0/8', except: '10.1.0.0/16' }), field: 'spec.ingress[0].from[0].ipBlock.except', reason: /must be a list/ },
    // Ports
    { name: 'port 0', spec: withIngressPorts([{ port: 0 }]), field: 'spec.ingress[0].ports[0].port', reason: /1-65535/ },
    { name: 'port 65536', spec: withIngressPorts([{ port: 65536 }]), field: 'spec.ingress[0].ports[0].port', reason: /1-65535/ },
    { name: 'port not an integer', spec: withIngressPorts([{ port: 80.5 }]), field: 'spec.ingress[0].ports[0].port', reason: /1-65535/ },
    { name: 'port of digits as a string', spec: withIngressPorts([{ port: '80' }]), field: 'spec.ingress[0].ports[0].port', reason: /at least one letter/ },
    { name: 'named port upper case', spec: withIngressPorts([{ port: 'HTTP' }]), field: 'spec.ingress[0].ports[0].port', reason: /lowercase/ },
    { name: 'named port too long', spec: withIngressPorts([{ port: 'a'.repeat(16) }]), field: 'spec.ingress[0].ports[0].port', reason: /1-15 characters/ },
    { name: 'named port leading hyphen', spec: withIngressPorts([{ port: '-http' }]), field: 'spec.ingress[0].ports[0].port', reason: /begin or end/ },
    { name: 'named port double hyphen', spec: withIngressPorts([{ port: 'a--b' }]), field: 'spec.ingress[0].ports[0].port', reason: /consecutive/ },
    { name: 'named port empty', spec: withIngressPorts([{ port: '' }]), field: 'spec.ingress[0].ports[0].port', reason: /1-15 characters/ },
    { name: 'endPort with a named port', spec: withIngressPorts([{ port: 'http', endPort: 90 }]), field: 'spec.ingress[0].ports[0].endPort', reason: /named port/ },
    { name: 'endPort without port', spec: withIngressPorts([{ endPort: 90 }]), field: 'spec.ingress[0].ports[0].endPort', reason: /port is not specified/ },
    { name: 'endPort below port', spec: withIngressPorts([{ port: 90, endPort: 80 }]), field: 'spec.ingress[0].ports[0].endPort', reason: /greater than or equal to port 90/ },
    { name: 'endPort above 65535', spec: withIngressPorts([{ port: 90, endPort: 70000 }]), field: 'spec.ingress[0].ports[0].endPort', reason: /1-65535/ },
    { name: 'protocol unknown', spec: withIngressPorts([{ port: 80, protocol: 'ICMP' }]), field: 'spec.ingress[0].ports[0].protocol', reason: /must be TCP, UDP or SCTP/ },
    { name: 'protocol lower case', spec: withIngressPorts([{ protocol: 'tcp' }]), field: 'spec.ingress[0].ports[0].protocol', reason: /unsupported value "tcp"/ },
    { name: 'port entry not an object', spec: withIngressPorts([80]), field: 'spec.ingress[0].ports[0]', reason: /must be an object/ },
    { name: 'egress port', spec: { podSelector: {}, egress: [{ ports: [{ port: 'x_y' }] }] }, field: 'spec.egress[0].ports[0].port', reason: /lowercase/ },
    // policyTypes
    { name: 'policyTypes unknown value', spec: { podSelector: {}, policyTypes: ['Ingress', 'Inbound'] }, field: 'spec.policyTypes[1]', reason: /must be Ingress or Egress/ },
    { name: 'policyTypes too many', spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress', 'Ingress'] }, field: 'spec.policyTypes', reason: /at most 2/ },
    { name: 'policyTypes not a list', spec: { podSelector: {}, policyTypes: 'Ingress' }, field: 'spec.policyTypes', reason: /must be a list/ },
    // Shapes
    { name: 'ingress not a list', spec: { podSelector: {}, ingress: {} }, field: 'spec.ingress', reason: /must be a list/ },
    { name: 'rule not an object', spec: { podSelector: {}, ingress: [null] }, field: 'spec.ingress[0]', reason: /must be an object/ },
  ])('$name → $field', ({ spec, field, reason }) => {
    const p = compilePolicy(policy('ns1', 'bad', spec));
    expect(p.problems.length).toBeGreaterThan(0);
    const hit = p.problems.find((x) => x.field === field);
    expect(hit, JSON.stringify(p.problems)).toBeDefined();
    expect(hit!.kind).toBe('NetworkPolicy');
    expect(hit!.object).toBe('ns1/bad');
    expect(hit!.reason).toMatch(reason);
    // Rejected: nothing allowed, whatever else the policy held.
    expect(p.ingress).toEqual([]);
    expect(p.egress).toEqual([]);
  });
});

describe('valid input', () => {
  test('defaults: protocol TCP, a port without endPort is a one-port range', () => {
    const p = compilePolicy(policy('ns1', 'p', withIngressPorts([{ port: 80 }, { port: 'http' }, { protocol: 'UDP' }, { port: 1000, endPort: 2000, protocol: 'SCTP' }])));
    expect(p.problems).toEqual([]);
    expect(p.ingress[0]!.ports).toEqual([
      { kind: 'range', protocol: 'TCP', from: 80, to: 80 },
      { kind: 'named', protocol: 'TCP', name: 'http' },
      { kind: 'all', protocol: 'UDP' },
      { kind: 'range', protocol: 'SCTP', from: 1000, to: 2000 },
    ]);
  });

  test('a CIDR with host bits is masked, as the API server reads it', () => {
    const p = compilePolicy(policy('ns1', 'p', withBlock({ cidr: '10.1.2.3/16', except: ['10.1.2.3/24'] })));
    expect(p.problems).toEqual([]);
    const peers = p.ingress[0]!.peers;
    const peer = peers === 'any' ? undefined : peers[0];
    if (peer?.kind !== 'ipBlock') throw new Error(`ipBlock expected, got ${JSON.stringify(peer)}`);
    expect(peer.cidr.toString()).toBe('10.1.0.0/16');
    expect(peer.except.map(String)).toEqual(['10.1.2.0/24']);
  });

  test('client-node model objects use _from: it is read like from', () => {
    const p = compilePolicy({ metadata: { namespace: 'ns1', name: 'p' }, spec: { podSelector: {}, ingress: [{ _from: [{ podSelector: { matchLabels: { a: 'b' } } }] }] } });
    expect(p.problems).toEqual([]);
    expect(p.ingress[0]!.peers).not.toBe('any');
  });

  test.each([
    { name: 'no policyTypes, no egress: ingress only', spec: { podSelector: {} }, ingress: true, egress: false },
    { name: 'no policyTypes, egress rules: both', spec: { podSelector: {}, egress: [{}] }, ingress: true, egress: true },
    { name: 'no policyTypes, empty egress list: ingress only', spec: { podSelector: {}, egress: [] }, ingress: true, egress: false },
    { name: 'empty policyTypes is defaulted', spec: { podSelector: {}, policyTypes: [], egress: [{}] }, ingress: true, egress: true },
    { name: 'policyTypes Egress only', spec: { podSelector: {}, policyTypes: ['Egress'] }, ingress: false, egress: true },
    { name: 'policyTypes Ingress only, egress rules ignored', spec: { podSelector: {}, policyTypes: ['Ingress'], egress: [{}] }, ingress: true, egress: false },
    { name: 'policyTypes both', spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }, ingress: true, egress: true },
    { name: 'invalid policyTypes isolates both (closed)', spec: { podSelector: {}, policyTypes: ['Sideways'] }, ingress: true, egress: true },
    { name: 'rejected rule keeps the declared directions', spec: { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ port: 0 }] }] }, ingress: false, egress: true },
  ])('directions: $name', ({ spec, ingress, egress }) => {
    const p = compilePolicy(policy('ns1', 'p', spec));
    expect([p.ingressIsolation, p.egressIsolation]).toEqual([ingress, egress]);
  });

  test('an invalid podSelector selects every pod of the namespace (closed), not none (open)', () => {
    const p = compilePolicy(policy('ns1', 'p', { podSelector: { matchExpressions: [{ key: 'a', operator: 'Bogus' }] }, ingress: [{}] }));
    expect(p.problems).toHaveLength(1);
    expect(p.podSelector.key).toBe('{}');
    expect(p.ingress).toEqual([]);
  });

  test('a policy without a namespace is in "default"; without a name it is rejected', () => {
    const p = compilePolicy({ metadata: {}, spec: { podSelector: {} } });
    expect(p.key).toBe('default/');
    expect(p.problems[0]!.field).toBe('metadata.name');
  });

  test('every problem is listed', () => {
    const p = compilePolicy(policy('ns1', 'p', { podSelector: {}, ingress: [{ from: [{}], ports: [{ port: 0 }, { protocol: 'X' }] }] }));
    expect(p.problems.map((x) => x.field)).toEqual(['spec.ingress[0].from[0]', 'spec.ingress[0].ports[0].port', 'spec.ingress[0].ports[1].protocol']);
  });
});
