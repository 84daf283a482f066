import { describe, expect, it } from 'vitest';
import type { V1Node } from '@kubernetes/client-node';
import {
  annotationNames,
  annotationPatch,
  desiredAnnotations,
  kubeNetworkConfig,
  leaseTransition,
  nodePodCIDRs,
  nodeToLease,
  vtepMacOf,
} from './kube.ts';
import type { Lease } from './types.ts';

const ann = annotationNames();
const v4 = { enableIPv4: true, enableIPv6: false };
const dual = { enableIPv4: true, enableIPv6: true };

const node = (annotations: Record<string, string>, spec: V1Node['spec'] = { podCIDR: '10.244.1.0/24' }): V1Node => ({
  metadata: { name: 'n1', annotations },
  spec,
});

describe('annotationNames', () => {
  it('uses upstream names under the default prefix', () => {
    expect(ann.backendData).toBe('flannel.alpha.coreos.com/backend-data');
    expect(ann.kubeSubnetManager).toBe('flannel.alpha.coreos.com/kube-subnet-manager');
    expect(ann.publicIPv6Overwrite).toBe('flannel.alpha.coreos.com/public-ipv6-overwrite');
    expect(ann.nodePublicIP).toBe('flannel.alpha.coreos.com/node-public-ip');
  });
  it('appends "-" after a name part and rejects two slashes or a non-FQDN', () => {
    expect(annotationNames('example.com/net').publicIP).toBe('example.com/net-public-ip');
    expect(() => annotationNames('a.b/c/d')).toThrow(expect.objectContaining({ code: 'INVALID_ANNOTATION_PREFIX' }));
    expect(() => annotationNames('Nodots')).toThrow(expect.objectContaining({ code: 'INVALID_ANNOTATION_PREFIX' }));
  });
});

describe('desiredAnnotations / annotationPatch', () => {
  const attrs = { publicIP: '192.0.2.1', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '12:c6:65:89:b4:e3' } };
  it('publishes upstream JSON and nothing when already published', () => {
    const want = desiredAnnotations(ann, {}, attrs, v4);
    expect(want).toEqual({
      [ann.backendType]: 'vxlan',
      [ann.kubeSubnetManager]: 'true',
      [ann.backendData]: '{"VNI":1,"VtepMAC":"12:c6:65:89:b4:e3"}',
      [ann.publicIP]: '192.0.2.1',
    });
    expect(annotationPatch({ ...want, other: 'x' }, want)).toBeUndefined();
  });
  it('patches only the keys that differ', () => {
    const cur = desiredAnnotations(ann, {}, attrs, v4);
    const want = desiredAnnotations(ann, cur, { ...attrs, publicIP: '192.0.2.9' }, v4);
    expect(annotationPatch(cur, want)).toEqual({ [ann.publicIP]: '192.0.2.9' });
  });
  it('copies public-ip-overwrite into public-ip', () => {
    const want = desiredAnnotations(ann, { [ann.publicIPOverwrite]: '203.0.113.5' }, attrs, v4);
    expect(want[ann.publicIP]).toBe('203.0.113.5');
  });
  it('skips a vxlan family without backend data, but host-gw publishes "null"', () => {
    const vx = desiredAnnotations(ann, {}, { publicIP: '192.0.2.1', publicIPv6: '2001:db8::1', backendType: 'vxlan', backendData: { VNI: 1 } }, dual);
    expect(vx[ann.backendV6Data]).toBeUndefined();
    expect(vx[ann.publicIPv6]).toBeUndefined();
    const hg = desiredAnnotations(ann, {}, { publicIP: '192.0.2.1', publicIPv6: '2001:db8::1', backendType: 'host-gw' }, dual);
    expect(hg[ann.backendData]).toBe('null');
    expect(hg[ann.backendV6Data]).toBe('null');
    expect(hg[ann.publicIPv6]).toBe('2001:db8::1');
  });
});

describe('nodePodCIDRs / nodeToLease', () => {
  const published = { [ann.kubeSubnetManager]: 'true', [ann.backendType]: 'vxlan', [ann.publicIP]: '192.0.2.2', [ann.backendData]: '{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}' };
  it('prefers spec.podCIDRs, one per family', () => {
    const c = nodePodCIDRs(node({}, { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] }));
    expect(c[4]?.toString()).toBe('10.244.1.0/24');
    expect(c[6]?.toString()).toBe('fd00:10:244:1::/64');
    expect(() => nodePodCIDRs(node({}, { podCIDRs: ['10.0.0.0/24', '10.0.1.0/24'] }))).toThrow(expect.objectContaining({ code: 'KUBE_POD_CIDR' }));
  });
  it('turns a published node into a lease without expiration', () => {
    const l = nodeToLease(ann, v4, node(published));
    expect(l.subnet?.toString()).toBe('10.244.1.0/24');
    expect(l.attrs).toEqual({ backendType: 'vxlan', publicIP: '192.0.2.2', backendData: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:ff' } });
    expect(l.expiration).toBeUndefined();
  });
  it('refuses a node missing the public IP or the pod CIDR of an enabled family', () => {
    expect(() => nodeToLease(ann, v4, node({ ...published, [ann.publicIP]: '' }))).toThrow(expect.objectContaining({ code: 'KUBE_LEASE_ATTRS' }));
    expect(() => nodeToLease(ann, dual, node({ ...published, [ann.publicIPv6]: '2001:db8::2' }))).toThrow(expect.objectContaining({ code: 'KUBE_POD_CIDR' }));
  });
});

describe('leaseTransition', () => {
  const mk = (cidr: string, ip: string): Lease => nodeToLease(ann, v4, node({ [ann.kubeSubnetManager]: 'true', [ann.publicIP]: ip, [ann.backendType]: 'host-gw' }, { podCIDR: cidr }));
  const a = mk('10.244.1.0/24', '192.0.2.1');
  it('adds, removes, and ignores identical leases', () => {
    expect(leaseTransition(undefined, a)).toEqual([{ type: 'added', lease: a }]);
    expect(leaseTransition(a, undefined)).toEqual([{ type: 'removed', lease: a }]);
    expect(leaseTransition(a, mk('10.244.1.0/24', '192.0.2.1'))).toEqual([]);
  });
  it('re-adds on an attribute change and removes the old subnet on a podCIDR change', () => {
    const moved = mk('10.244.1.0/24', '192.0.2.7');
    expect(leaseTransition(a, moved)).toEqual([{ type: 'added', lease: moved }]);
    const renum = mk('10.244.9.0/24', '192.0.2.1');
    expect(leaseTransition(a, renum)).toEqual([{ type: 'removed', lease: a }, { type: 'added', lease: renum }]);
  });
});

describe('vtepMacOf / kubeNetworkConfig', () => {
  it('reads the VTEP MAC from backend data JSON', () => {
    expect(vtepMacOf('{"VNI":1,"VtepMAC":"12:c6:65:89:b4:e3"}')).toBe('12:c6:65:89:b4:e3');
    expect(vtepMacOf('null')).toBeUndefined();
    expect(vtepMacOf('not json')).toBeUndefined();
  });
  it('needs a Network for each enabled family but no SubnetLen rules', () => {
    expect(kubeNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}').ipv4?.network.toString()).toBe('10.244.0.0/16');
    expect(() => kubeNetworkConfig('{"EnableIPv6":true,"Network":"10.244.0.0/16"}')).toThrow(expect.objectContaining({ code: 'INVALID_NET_CONFIG' }));
  });
});
