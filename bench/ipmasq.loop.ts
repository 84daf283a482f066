// Helper for bench/ipmasq.sh (bundled with esbuild, run as root inside the bench netns).
//   texts <netnsPath> <outDir>  write the exact restore/nft inputs our code sends for one setup+teardown
//   loop  <netnsPath> <n> <iptables|nftables>  time n in-process setupIPMasq+teardownIPMasq cycles
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RealIptables, type IpFamily, type IptablesRestore } from '../lib/netfilter/iptables.ts';
import { RealNft, type Nft, type NftTransaction } from '../lib/netfilter/nft.ts';
import { setupIPMasq, teardownIPMasq } from '../plugins/common/ipmasq.ts';

const [mode, netns, arg, backendArg] = process.argv.slice(2) as [string, string, string, string | undefined];
const att = { network: 'rcninet', containerId: 'ctr1', ifName: 'eth0', ips: [{ address: '10.99.0.2/24' }] };
const ipt = new RealIptables({ netns });
const nft = new RealNft({ netns });

if (mode === 'texts') {
  const restores: string[] = [];
  const nfts: string[] = [];
  const recIpt: IptablesRestore = {
    restore: async (f: IpFamily, t: string, o: { noflush: boolean }) => {
      restores.push(t);
      await ipt.restore(f, t, o);
    },
    save: (f: IpFamily, t?: string) => ipt.save(f, t),
  };
  const recNft: Nft = {
    run: async (tx: NftTransaction | string) => {
      nfts.push(typeof tx === 'string' ? tx : tx.render());
      await nft.run(tx);
    },
    list: (f, t) => nft.list(f, t),
  };
  const r = { iptables: recIpt, nft: recNft };
  await setupIPMasq({ ...att, backend: 'iptables' }, r);
  await teardownIPMasq(att, r);
  await setupIPMasq({ ...att, backend: 'nftables' }, r);
  await teardownIPMasq(att, r);
  writeFileSync(join(arg, 'ipt-setup.txt'), restores[0]!);
  writeFileSync(join(arg, 'ipt-teardown.txt'), restores[1]!);
  writeFileSync(join(arg, 'nft-setup.txt'), nfts[0]!);
  writeFileSync(join(arg, 'nft-teardown.txt'), nfts[1]!);
} else if (mode === 'loop') {
  const n = Number(arg);
  const backend = backendArg === 'nftables' ? 'nftables' : 'iptables';
  const r = { iptables: ipt, nft };
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await setupIPMasq({ ...att, backend }, r);
    const t1 = process.hrtime.bigint();
    await teardownIPMasq(att, r);
    const t2 = process.hrtime.bigint();
    times.push(Number(t1 - t0) / 1e6, Number(t2 - t1) / 1e6);
  }
  const stat = (xs: number[]) => {
    const m = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length);
    return `${m.toFixed(2)} ± ${sd.toFixed(2)} ms`;
  };
  const setup = times.filter((_, i) => i % 2 === 0);
  const down = times.filter((_, i) => i % 2 === 1);
  console.log(`in-process ${backend} (${n} cycles, nsenter per child): setup ${stat(setup)}, teardown ${stat(down)}`);
}
