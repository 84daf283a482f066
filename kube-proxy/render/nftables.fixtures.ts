// The options of upstream's nftables NewFakeProxier
// (pkg/proxy/nftables/proxier_test.go), with which its goldens were made.
import { IPAddr, IPPrefix, type Family } from '../../lib/ip/index.ts';
import type { NFTablesOptions } from './nftables.ts';
import { makeService, makeSlice, tcp, World } from '../testing/fixtures.ts';
import { overallWorld } from '../testing/upstream.ts';
import { detectLocalByCIDR, detectLocalByInterfaceNamePrefix, resolveNodePortAddresses } from './options.ts';

/** lo and eth0 of upstream's fake network interfacer. */
const FAKE_LOCAL_ADDRESSES = ['127.0.0.1', '::1', '192.168.0.2', '192.168.1.2', '192.168.99.11', '2001:db8::1', '2001:db8:1::2'].map((a) => IPAddr.mustParse(a));

export function upstreamNFTablesFakeProxier(family: Family = 4): NFTablesOptions {
  const nodeIP = IPAddr.mustParse(family === 4 ? '192.168.0.2' : '2001:db8::1');
  return {
    family,
    nodeName: 'test-node',
    nodeIP,
    localDetector: detectLocalByCIDR(IPPrefix.mustParse(family === 4 ? '10.0.0.0/8' : 'fd00:10::/64')),
    masqueradeMark: '0x4000',
    nodePortAddresses: resolveNodePortAddresses(family, ['192.168.0.2/32', '2001:db8::1/128'], { primaryIP: nodeIP, localAddresses: FAKE_LOCAL_ADDRESSES }),
    serviceCIDRs: [family === 4 ? '172.30.0.0/16' : 'fd00:10:96::/112'],
  };
}

/**
 * Worlds beyond upstream's golden that together use every rule form the
 * renderer writes (IPv6, UDP/SCTP, several source ranges, a node IP inside
 * them, externalIPs with Local policy, session affinity, no endpoints, an
 * interface-based local detector): the inputs of the netlink writer's
 * differential tests.
 */
export function extraNFTablesWorlds(): { name: string; world: World; options: NFTablesOptions }[] {
  const v6 = new World(6, 'test-node').add(
    makeService('ns1', 'svc1', { clusterIP: 'fd00:10:96::41', clusterIPs: ['fd00:10:96::41'], ipFamilies: ['IPv6'], ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 3001 }], type: 'NodePort' }),
    makeSlice('ns1', 'svc1', 1, [{ addresses: ['fd00:10::1'] }, { addresses: ['fd00:10::2'], nodeName: 'test-node' }], [tcp('p80', 80)], 'IPv6'),
    makeService(
      'ns2',
      'svc2',
      {
        type: 'LoadBalancer',
        externalTrafficPolicy: 'Local',
        clusterIP: 'fd00:10:96::42',
        clusterIPs: ['fd00:10:96::42'],
        ipFamilies: ['IPv6'],
        ports: [{ name: 'dns', port: 53, protocol: 'UDP', nodePort: 3053 }],
        externalIPs: ['2001:db8:99::22'],
        loadBalancerSourceRanges: ['2001:db8::/64', '2001:db8:5::/48'],
        sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 300 } },
      },
      { loadBalancer: { ingress: [{ ip: '2001:db8:77::1' }] } },
    ),
    makeSlice('ns2', 'svc2', 1, [{ addresses: ['fd00:10::3'], nodeName: 'test-node' }, { addresses: ['fd00:10::4'] }], [{ name: 'dns', port: 5353, protocol: 'UDP' }], 'IPv6'),
    makeService('ns3', 'svc3', { clusterIP: 'fd00:10:96::43', clusterIPs: ['fd00:10:96::43'], ipFamilies: ['IPv6'], ports: [{ name: 'x', port: 9, protocol: 'SCTP' }] }),
  );
  const v4 = new World(4, 'test-node').add(
    makeService(
      'ns7',
      'svc7',
      {
        type: 'LoadBalancer',
        clusterIP: '172.30.0.47',
        ports: [{ name: 'p', port: 8080, protocol: 'UDP', nodePort: 30080 }],
        externalIPs: ['192.168.99.77', '192.168.99.78'],
        // The node IP (192.168.0.2) is inside: the LB IPs join the allowed sources.
        loadBalancerSourceRanges: ['203.0.113.0/25', '192.168.0.0/16', '198.51.100.7/32'],
      },
      { loadBalancer: { ingress: [{ ip: '5.6.7.9' }] } },
    ),
    makeSlice('ns7', 'svc7', 1, [1, 2, 3].map((i) => ({ addresses: [`10.180.1.${i}`], nodeName: i === 1 ? 'test-node' : 'other' })), [{ name: 'p', port: 80, protocol: 'UDP' }]),
    makeService('ns8', 'svc8', { type: 'NodePort', clusterIP: '172.30.0.48', ports: [{ name: 's', port: 7777, protocol: 'SCTP', nodePort: 30777 }], externalTrafficPolicy: 'Local', internalTrafficPolicy: 'Local' }),
    makeSlice('ns8', 'svc8', 1, [{ addresses: ['10.180.2.1'], nodeName: 'other' }], [{ name: 's', port: 7777, protocol: 'SCTP' }]),
    makeService('ns9', 'svc9', { clusterIP: '172.30.0.49', ports: [{ name: 'p', port: 443, protocol: 'TCP' }], externalIPs: ['192.168.99.99'] }),
  );
  return [
    { name: 'IPv6', world: v6, options: upstreamNFTablesFakeProxier(6) },
    { name: 'IPv4 extras', world: v4, options: upstreamNFTablesFakeProxier(4) },
    {
      name: 'IPv4 interface detector, masquerade-all, all node ports',
      world: overallWorld(),
      options: { ...upstreamNFTablesFakeProxier(4), localDetector: detectLocalByInterfaceNamePrefix('veth'), masqueradeAll: true, nodePortAddresses: resolveNodePortAddresses(4, [], { primaryIP: IPAddr.mustParse('192.168.0.2'), localAddresses: FAKE_LOCAL_ADDRESSES }) },
    },
  ];
}
