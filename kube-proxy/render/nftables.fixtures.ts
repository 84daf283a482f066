// The options of upstream's nftables NewFakeProxier
// (pkg/proxy/nftables/proxier_test.go), with which its goldens were made.
import { IPAddr, IPPrefix, type Family } from '../../lib/ip/index.ts';
import type { NFTablesOptions } from './nftables.ts';
import { detectLocalByCIDR, resolveNodePortAddresses } from './options.ts';

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
