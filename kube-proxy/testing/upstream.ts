// The fixtures of upstream's pkg/proxy/iptables/proxier_test.go: the options
// of NewFakeProxier and the inputs of TestOverallIPTablesRules, verbatim.
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import type { IPTablesOptions } from '../render/iptables.ts';
import { detectLocalByCIDR } from '../render/options.ts';
import { makeService, makeSlice, tcp, World } from './fixtures.ts';

/** upstream's NewFakeProxier (proxier_test.go): the options its golden outputs were made with. */
export const upstreamFakeProxier: IPTablesOptions = {
  family: 4,
  nodeName: 'test-node',
  nodeIP: IPAddr.mustParse('192.168.0.2'),
  localDetector: detectLocalByCIDR(IPPrefix.mustParse('10.0.0.0/8')),
  masqueradeMark: '0x4000',
  localhostNodePorts: true,
  nfacct: true,
  randomFully: false,
};

/** The inputs of TestOverallIPTablesRules, verbatim. */
export function overallWorld(): World {
  return new World(4, 'test-node').add(
    makeService('ns1', 'svc1', { clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] }),
    makeService(
      'ns2',
      'svc2',
      {
        type: 'LoadBalancer',
        externalTrafficPolicy: 'Local',
        clusterIP: '172.30.0.42',
        ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }],
        externalIPs: ['192.168.99.22'],
        healthCheckNodePort: 30000,
      },
      { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } },
    ),
    makeService('ns3', 'svc3', { type: 'NodePort', clusterIP: '172.30.0.43', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3003 }] }),
    makeService('ns4', 'svc4', {
      type: 'NodePort',
      clusterIP: '172.30.0.44',
      externalIPs: ['192.168.99.33'],
      ports: [{ name: 'p80', port: 80, protocol: 'TCP', targetPort: 80 }],
    }),
    makeService(
      'ns5',
      'svc5',
      {
        type: 'LoadBalancer',
        externalTrafficPolicy: 'Cluster',
        clusterIP: '172.30.0.45',
        ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3002 }],
        healthCheckNodePort: 30000,
        // Extra whitespace, as upstream's test has, must not break anything.
        loadBalancerSourceRanges: [' 203.0.113.0/25'],
        sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 10800 } },
      },
      { loadBalancer: { ingress: [{ ip: '5.6.7.8' }] } },
    ),
    makeService('ns6', 'svc6', { type: 'ClusterIP', clusterIP: '172.30.0.46', ports: [{ name: 'p80', port: 80, protocol: 'TCP', targetPort: 80 }] }),
    makeSlice('ns1', 'svc1', 1, [{ addresses: ['10.180.0.1'] }], [tcp('p80', 80)]),
    // No nodeName: non-local, so svc2 (eTP=Local) has endpoints but none local.
    makeSlice('ns2', 'svc2', 1, [{ addresses: ['10.180.0.2'] }], [tcp('p80', 80)]),
    makeSlice('ns3', 'svc3', 1, [{ addresses: ['10.180.0.3'] }], [tcp('p80', 80)]),
    makeSlice('ns4', 'svc4', 1, [{ addresses: ['10.180.0.4'] }, { addresses: ['10.180.0.5'], nodeName: 'test-node' }], [tcp('p80', 80)]),
    makeSlice('ns5', 'svc5', 1, [{ addresses: ['10.180.0.3'] }], [tcp('p80', 80)]),
  );
}

