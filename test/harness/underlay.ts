// A small flannel test topology built over netlink: an underlay bridge in its
// own namespace, node namespaces on it (eth0 = 192.0.2.(10+i)/24, IP
// forwarding on), and per node a pod namespace behind cni0 (10.244.i.0/24),
// the way the bridge CNI plugin would attach it. Used by the backend suite
// and the udp benchmark.
import type { Handle, Link } from '../../lib/netlink/index.ts';
import type { World } from './world.ts';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';

export interface UnderlayNode {
  i: number;
  /** Path of the node's namespace. */
  ns: string;
  nsName: string;
  h: Handle;
  eth: Link;
  ip: string;
}

export async function underlayNodes(w: World, count: number): Promise<UnderlayNode[]> {
  const hu = w.handle(w.netns('u'));
  await hu.linkAdd({ name: 'br0', kind: 'bridge', up: true });
  const br = await hu.linkByName('br0');
  const nodes: UnderlayNode[] = [];
  for (let i = 1; i <= count; i++) {
    const ns = w.netns(`n${i}`);
    const h = w.handle(ns);
    await h.linkAdd({ name: 'eth0', kind: 'veth', veth: { peerName: `u${i}`, peerNetnsFd: hu.nsFd! } });
    const up = await hu.linkByName(`u${i}`);
    await hu.linkSetMaster(up.index, br.index);
    await hu.linkSetUp(up.index);
    const eth = await h.linkByName('eth0');
    const ip = `192.0.2.${10 + i}`;
    await h.addrAdd(eth.index, { address: IPPrefix.mustParse(`${ip}/24`) });
    await h.linkSetUp(eth.index);
    await h.linkSetUp((await h.linkByName('lo')).index);
    h.writeSysctl('net/ipv4/ip_forward', '1');
    nodes.push({ i, ns, nsName: `${w.prefix}-n${i}`, h, eth: await h.linkByIndex(eth.index), ip });
  }
  return nodes;
}

/**
 * A pod namespace `<prefix>-p<i>` behind cni0 on the node: cni0 has
 * 10.244.i.1/24, the pod's eth0 10.244.i.2/24 with a default route via it.
 * `mtu` sets the pod side as the CNI plugin would from subnet.env.
 */
export async function attachPod(w: World, node: UnderlayNode, opts: { mtu?: number } = {}): Promise<{ pod: string; podIP: string }> {
  const { h, i } = node;
  const hp = w.handle(w.netns(`p${i}`));
  await h.linkAdd({ name: 'cni0', kind: 'bridge', up: true, ...(opts.mtu ? { mtu: opts.mtu } : {}) });
  const cni = await h.linkByName('cni0');
  await h.addrAdd(cni.index, { address: IPPrefix.mustParse(`10.244.${i}.1/24`) });
  await h.linkAdd({ name: 'veth0', kind: 'veth', master: cni.index, ...(opts.mtu ? { mtu: opts.mtu } : {}), veth: { peerName: 'eth0', peerNetnsFd: hp.nsFd! } });
  await h.linkSetUp((await h.linkByName('veth0')).index);
  const peth = await hp.linkByName('eth0');
  await hp.addrAdd(peth.index, { address: IPPrefix.mustParse(`10.244.${i}.2/24`) });
  await hp.linkSetUp(peth.index);
  await hp.linkSetUp((await hp.linkByName('lo')).index);
  await hp.routeAdd({ family: 4, dst: IPPrefix.any(4), gw: IPAddr.mustParse(`10.244.${i}.1`) });
  return { pod: `${w.prefix}-p${i}`, podIP: `10.244.${i}.2` };
}
