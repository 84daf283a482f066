import { describe, expect, it } from 'vitest';
import { detectIptablesMode, iptablesBinary, type ModeProbe } from './iptables-mode.ts';

function probe(o: { binaries?: string[]; tables?: string; saves?: Record<string, string> }): ModeProbe & { saved: string[] } {
  const saved: string[] = [];
  return {
    saved,
    hasBinary: (n) => (o.binaries ?? ['iptables-legacy-restore', 'iptables-nft-restore']).includes(n),
    procNet: (n) => (n === 'ip_tables_names' ? o.tables : undefined),
    save: async (cmd, args) => {
      saved.push([cmd, ...args].join(' '));
      return o.saves?.[cmd] ?? '';
    },
  };
}
const rules = (n: number) => `*filter\n${Array.from({ length: n }, (_, i) => `-A INPUT -s 192.0.2.${i}/32 -j ACCEPT`).join('\n')}\nCOMMIT\n`;

describe('detectIptablesMode', () => {
  it('uses the plain binaries when only one flavour is installed', async () => {
    expect((await detectIptablesMode(probe({ binaries: ['iptables-nft-restore'], tables: 'filter\n' }))).mode).toBeUndefined();
  });
  it('decides nft without a process when no legacy table exists', async () => {
    const p = probe({ tables: '' });
    expect((await detectIptablesMode(p)).mode).toBe('nft');
    expect(p.saved).toEqual([]);
  });
  it('prefers the nft hint chains, then the legacy ones, and never asks legacy for -t mangle', async () => {
    const nftHint = probe({ tables: 'filter\n', saves: { 'ip6tables-nft-save': '*mangle\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n', 'iptables-legacy-save': rules(50) } });
    expect((await detectIptablesMode(nftHint)).mode).toBe('nft');
    const legacyHint = probe({ tables: 'filter\n', saves: { 'iptables-legacy-save': '*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n', 'iptables-nft-save': rules(50) } });
    expect((await detectIptablesMode(legacyHint)).mode).toBe('legacy');
    expect(legacyHint.saved.filter((s) => s.startsWith('iptables-legacy-save'))).toEqual(['iptables-legacy-save']);
  });
  it('counts rules without hints; a tie is nft', async () => {
    expect((await detectIptablesMode(probe({ tables: 'nat\n', saves: { 'iptables-legacy-save': rules(5), 'iptables-nft-save': rules(4) } }))).mode).toBe('legacy');
    expect((await detectIptablesMode(probe({ tables: 'nat\n', saves: { 'iptables-legacy-save': rules(4), 'ip6tables-nft-save': rules(4) } }))).mode).toBe('nft');
  });
  it('names the binaries', () => {
    expect(iptablesBinary('ip6', 'restore', 'legacy')).toBe('ip6tables-legacy-restore');
    expect(iptablesBinary('ip', 'save', undefined)).toBe('iptables-save');
  });
});
