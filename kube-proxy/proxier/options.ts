// From the configuration and what the node looks like (its Node object, its
// interface addresses) to the renderer's options of one family: the node
// IP, NodePort addresses, the local-traffic detector, the masquerade mark.
import { networkInterfaces } from 'node:os';
import type { V1Node } from '@kubernetes/client-node';
import { IPAddr, IPPrefix, type Family } from '../../lib/ip/index.ts';
import type { ProxyConfig } from '../config/index.ts';
import type { IPTablesOptions } from '../render/iptables.ts';
import type { NFTablesOptions } from '../render/nftables.ts';
import {
  allNodePortAddresses,
  detectLocalByBridgeInterface,
  detectLocalByCIDR,
  detectLocalByInterfaceNamePrefix,
  noLocalDetector,
  resolveNodePortAddresses,
  type LocalDetector,
} from '../render/options.ts';

export const LABEL_ZONE = 'topology.kubernetes.io/zone';

/** The addresses of this network namespace's interfaces. */
export function localAddresses(): IPAddr[] {
  const out: IPAddr[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      const ip = IPAddr.parse(a.address);
      if (ip) out.push(ip);
    }
  }
  return out;
}

/** The node's primary IP of a family: its Node's InternalIP (then ExternalIP), else its first global interface address. */
export function primaryNodeIP(family: Family, node: V1Node | undefined, local: readonly IPAddr[]): IPAddr | undefined {
  for (const type of ['InternalIP', 'ExternalIP']) {
    for (const a of node?.status?.addresses ?? []) {
      const ip = a.type === type ? IPAddr.parse(a.address) : undefined;
      if (ip?.family === family) return ip;
    }
  }
  // Link-local IPv6 (fe80::/10) is never a node IP.
  const fe80 = IPPrefix.mustParse('fe80::/10');
  return local.find((ip) => ip.family === family && !ip.isLoopback() && !fe80.contains(ip));
}

function detector(cfg: ProxyConfig, family: Family, node: V1Node | undefined): LocalDetector {
  switch (cfg.detectLocalMode) {
    case 'ClusterCIDR': {
      const cidr = cfg.clusterCIDRs.find((p) => p.family === family);
      return cidr ? detectLocalByCIDR(cidr) : noLocalDetector;
    }
    case 'NodeCIDR': {
      const cidrs = [...(node?.spec?.podCIDRs ?? []), ...(node?.spec?.podCIDR ? [node.spec.podCIDR] : [])];
      const cidr = cidrs.map((c) => IPPrefix.parse(c)).find((p) => p?.family === family);
      return cidr ? detectLocalByCIDR(cidr.masked()) : noLocalDetector;
    }
    case 'BridgeInterface':
      return detectLocalByBridgeInterface(cfg.bridgeInterface);
    case 'InterfaceNamePrefix':
      return detectLocalByInterfaceNamePrefix(cfg.interfaceNamePrefix);
  }
}

export function renderOptionsFor(cfg: ProxyConfig, family: Family, node: V1Node | undefined, local: readonly IPAddr[] = localAddresses()): IPTablesOptions {
  const nodeIP = primaryNodeIP(family, node, local);
  return {
    family,
    nodeName: cfg.nodeName,
    zone: node?.metadata?.labels?.[LABEL_ZONE] ?? '',
    nodeIP,
    nodePortAddresses: cfg.nodePortAddresses.length === 0 ? allNodePortAddresses(family) : resolveNodePortAddresses(family, cfg.nodePortAddresses, { primaryIP: nodeIP, localAddresses: local }),
    localDetector: detector(cfg, family, node),
    masqueradeAll: cfg.masqueradeAll,
    masqueradeBit: cfg.masqueradeBit,
    localhostNodePorts: cfg.localhostNodePorts,
  };
}

/**
 * The nftables renderer's options: as the iptables ones, except that
 * NodePorts answer on the node's primary IP by default (upstream's nftables
 * default for --nodeport-addresses) and there are no localhost NodePorts.
 */
export function nftRenderOptionsFor(cfg: ProxyConfig, family: Family, node: V1Node | undefined, local: readonly IPAddr[] = localAddresses()): NFTablesOptions {
  const nodeIP = primaryNodeIP(family, node, local);
  const specs = cfg.nodePortAddresses.length === 0 ? ['primary'] : cfg.nodePortAddresses;
  return {
    family,
    nodeName: cfg.nodeName,
    zone: node?.metadata?.labels?.[LABEL_ZONE] ?? '',
    nodeIP,
    nodePortAddresses: resolveNodePortAddresses(family, specs, { primaryIP: nodeIP, localAddresses: local }),
    localDetector: detector(cfg, family, node),
    masqueradeAll: cfg.masqueradeAll,
    masqueradeBit: cfg.masqueradeBit,
  };
}
