// The system tools the cluster needs, each with the Debian package that has
// it: a missing one is reported by name before anything is created.
import { accessSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { NetError } from '../lib/errors.ts';
import type { PolicyBackend, ProxyMode } from './state.ts';

export interface Tool {
  readonly name: string;
  readonly pkg: string;
}

export const TOOLS: Readonly<Record<string, Tool>> = {
  etcd: { name: 'etcd', pkg: 'etcd-server' },
  nsenter: { name: 'nsenter', pkg: 'util-linux' },
  iptables: { name: 'iptables', pkg: 'iptables' },
  'iptables-restore': { name: 'iptables-restore', pkg: 'iptables' },
  nft: { name: 'nft', pkg: 'nftables' },
  ipset: { name: 'ipset', pkg: 'ipset' },
  conntrack: { name: 'conntrack', pkg: 'conntrack' },
};

export class MissingToolError extends NetError {
  readonly tools: readonly Tool[];
  constructor(tools: readonly Tool[]) {
    super(
      'TOOL_NOT_FOUND',
      tools.map((t) => `${t.name} not found in PATH: install the Debian package ${t.pkg} (apt-get install ${t.pkg})`).join('\n'),
    );
    this.tools = tools;
  }
}

/** Where `name` is in PATH (or the sbin dirs root has), or undefined. */
export function which(name: string, path = process.env['PATH'] ?? ''): string | undefined {
  const dirs = [...path.split(':').filter(Boolean), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const d of dirs) {
    const p = join(d, name);
    try {
      accessSync(p, fsc.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

/** The tools a cluster with these options runs. */
export function requiredTools(o: { proxyMode: ProxyMode; policyBackend: PolicyBackend }): Tool[] {
  const names = ['etcd', 'nsenter', 'iptables', 'iptables-restore', 'conntrack'];
  if (o.proxyMode === 'nftables' || o.policyBackend === 'nftables') names.push('nft');
  if (o.policyBackend === 'iptables' || o.proxyMode === 'ipvs') names.push('ipset');
  return names.map((n) => TOOLS[n]!);
}

/** Throws MissingToolError naming every missing tool and its package. */
export function ensureTools(tools: readonly Tool[], lookup: (name: string) => string | undefined = which): void {
  const missing = tools.filter((t) => lookup(t.name) === undefined);
  if (missing.length > 0) throw new MissingToolError(missing);
}
