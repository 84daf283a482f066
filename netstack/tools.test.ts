import { describe, expect, it } from 'vitest';
import { MissingToolError, ensureTools, requiredTools } from './tools.ts';

describe('system tools', () => {
  it('names every missing tool with its Debian package', () => {
    const have = new Set(['nsenter', 'iptables', 'iptables-restore']);
    const err = (() => {
      try {
        ensureTools(requiredTools({ proxyMode: 'nftables', policyBackend: 'iptables' }), (n) => (have.has(n) ? `/usr/sbin/${n}` : undefined));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(MissingToolError);
    const e = err as MissingToolError;
    expect(e.code).toBe('TOOL_NOT_FOUND');
    expect(e.tools.map((t) => `${t.name}:${t.pkg}`).sort()).toEqual(['conntrack:conntrack', 'etcd:etcd-server', 'ipset:ipset', 'nft:nftables']);
    expect(e.message).toContain('etcd not found in PATH: install the Debian package etcd-server');
  });

  it('asks only for what the chosen modes use', () => {
    const names = (o: Parameters<typeof requiredTools>[0]): string[] => requiredTools(o).map((t) => t.name);
    expect(names({ proxyMode: 'iptables', policyBackend: 'nftables' })).toContain('nft');
    expect(names({ proxyMode: 'iptables', policyBackend: 'nftables' })).not.toContain('ipset');
    expect(names({ proxyMode: 'ipvs', policyBackend: 'nftables' })).toContain('ipset');
    expect(() => ensureTools(requiredTools({ proxyMode: 'iptables', policyBackend: 'nftables' }), (n) => `/bin/${n}`)).not.toThrow();
  });
});
