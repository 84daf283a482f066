// 50 parallel ADDs (distinct containers, one pod namespace each) on one node
// through our bridge + host-local, then 50 parallel DELs: every invocation
// succeeds, the 50 IPs are distinct, the first ADD's bridge is shared, and
// nothing is left behind (veths, IP files, masquerade rules).
import { afterAll, beforeAll, expect, test } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CniBed, OUR_BIN, cni, cniEnv, ping, snapshot, storeIps } from '../harness/cni.ts';

const N = 50;
const bed = new CniBed('brpar');
beforeAll(() => {
  if (!existsSync(join(OUR_BIN, 'bridge'))) throw new Error('run `npm run build` first');
});
afterAll(() => bed.cleanup());

test(`${N} parallel ADDs then ${N} parallel DELs`, { timeout: 180_000 }, async () => {
  const node = bed.netns('node');
  const dataDir = bed.dir('store');
  const conf = {
    cniVersion: '1.0.0',
    name: 'parnet',
    type: 'bridge',
    bridge: 'pbr0',
    isGateway: true,
    ipMasq: true,
    ipam: { type: 'host-local', subnet: '10.55.0.0/24', routes: [{ dst: '0.0.0.0/0' }], dataDir },
  };
  const pods = Array.from({ length: N }, () => bed.netns('p'));
  const call = (cmd: string, k: number) => cni({ node, plugin: join(OUR_BIN, 'bridge'), env: cniEnv(cmd, `par${k}`, pods[k]!, 'eth0', OUR_BIN), stdin: conf });

  const adds = await Promise.all(pods.map((_, k) => call('ADD', k)));
  for (const r of adds) expect(r.code, r.stdout + r.stderr).toBe(0);
  const ips = adds.map((r) => r.json.ips[0].address as string);
  expect(new Set(ips).size).toBe(N);
  for (const ip of ips) expect(ip).toMatch(/^10\.55\.0\.\d+\/24$/);

  const s = await snapshot({ node, stores: [dataDir] });
  expect(s.node.links.filter((l) => l.kind === 'bridge').map((l) => l.name)).toEqual(['pbr0']);
  expect(s.node.links.filter((l) => l.kind === 'veth' && l.master === 'pbr0')).toHaveLength(N);
  expect(s.node.addrs.filter((a) => a.startsWith('pbr0 '))).toEqual(['pbr0 10.55.0.1/24']);
  expect(storeIps(s)).toHaveLength(N);
  expect(s.node.nat.ip.filter((l) => l.startsWith('-A POSTROUTING'))).toHaveLength(N);
  expect(s.node.nat.ip).toHaveLength(3 * N);
  // First and last pod reach each other over the shared bridge.
  expect(await ping(pods[0]!, ips[N - 1]!.split('/')[0]!)).toBe(true);

  const dels = await Promise.all(pods.map((_, k) => call('DEL', k)));
  for (const r of dels) expect(r.code, r.stdout + r.stderr).toBe(0);
  const after = await snapshot({ node, pods, stores: [dataDir] });
  expect(after.node.links.filter((l) => l.kind === 'veth')).toEqual([]);
  for (const p of pods) expect(after.pods[p]!.links.map((l) => l.name)).toEqual(['lo']);
  expect(storeIps(after)).toEqual([]);
  expect(after.node.nat.ip).toEqual([]);
  expect(after.node.nat.chains).toEqual([]);
});
