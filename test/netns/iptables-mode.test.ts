// iptables flavour detection against the real iptables-legacy and iptables-nft
// of Debian's iptables package: a namespace whose rules are legacy gets our
// rules in legacy, one with nft rules (or none) gets them in nft.
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.ts';
import { RealIptables } from '../../lib/netfilter/iptables.ts';
import { createNamedNetns, deleteNamedNetns } from '../../lib/netns/index.ts';

const prefix = `iptm${randomBytes(3).toString('hex')}`;
const created: string[] = [];
let seq = 0;
function newNs(): string {
  const name = `${prefix}-${seq++}`;
  const path = createNamedNetns(name);
  created.push(name);
  return path;
}
afterAll(() => {
  for (const n of created) deleteNamedNetns(n);
});

const sh = (netns: string, cmd: string, args: string[]) => run(cmd, args, { netns });
const ours = '*filter\n:KN-MODE-TEST - [0:0]\n-A KN-MODE-TEST -s 192.0.2.1/32 -j ACCEPT\nCOMMIT\n';
async function where(netns: string): Promise<{ legacy: boolean; nft: boolean }> {
  const legacy = (await sh(netns, 'iptables-legacy-save', [])).stdout;
  const nft = (await sh(netns, 'iptables-nft-save', [])).stdout;
  return { legacy: legacy.includes(':KN-MODE-TEST'), nft: nft.includes(':KN-MODE-TEST') };
}

describe('iptables flavour detection (RealIptables mode auto)', () => {
  it('a namespace with legacy rules gets our rules in legacy', async () => {
    const ns = newNs();
    for (const port of ['22', '80', '443']) await sh(ns, 'iptables-legacy', ['-A', 'INPUT', '-p', 'tcp', '--dport', port, '-j', 'ACCEPT']);
    const ipt = new RealIptables({ netns: ns, mode: 'auto' });
    expect((await ipt.flavour()).mode).toBe('legacy');
    await ipt.restore('ip', ours, { noflush: true });
    expect(await where(ns)).toEqual({ legacy: true, nft: false });
    expect(await ipt.save('ip', 'filter')).toContain(':KN-MODE-TEST');
  });

  it('a namespace with nft rules, and legacy tables holding fewer, gets them in nft', async () => {
    const ns = newNs();
    await sh(ns, 'iptables-legacy', ['-A', 'INPUT', '-s', '192.0.2.9', '-j', 'ACCEPT']);
    for (const port of ['22', '80', '443']) await sh(ns, 'iptables-nft', ['-A', 'INPUT', '-p', 'tcp', '--dport', port, '-j', 'ACCEPT']);
    const ipt = new RealIptables({ netns: ns });
    const d = await ipt.flavour();
    expect(d.mode).toBe('nft');
    expect(d.reason).toMatch(/3 nft rules against 1 legacy/);
    await ipt.restore('ip', ours, { noflush: true });
    expect(await where(ns)).toEqual({ legacy: false, nft: true });
  });

  it("kubelet's hint chain decides before rule counts", async () => {
    const ns = newNs();
    await sh(ns, 'iptables-legacy', ['-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);
    for (const port of ['22', '80', '443']) await sh(ns, 'iptables-nft', ['-A', 'INPUT', '-p', 'tcp', '--dport', port, '-j', 'ACCEPT']);
    const d = await new RealIptables({ netns: ns }).flavour();
    expect(d).toEqual({ mode: 'legacy', reason: "kubelet's hint chain found by iptables-legacy-save" });
  });

  it('a fresh namespace needs no process to decide: nft', async () => {
    const ns = newNs();
    expect(await new RealIptables({ netns: ns }).flavour()).toEqual({ mode: 'nft', reason: 'no legacy iptables table exists' });
  });
});
