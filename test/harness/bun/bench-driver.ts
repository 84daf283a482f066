// Times the netlink transport of the running runtime (not a test): one
// request/ACK round trip (RTM_GETLINK of one link) and one link dump, each
// 1,000 times in a row, after 100 warm-up rounds. Run inside a scratch
// network namespace: it adds `veths` veth pairs so the dump has some size.
// Under Bun: `bun --preload lib/runtime/bun-preload.ts bench-driver.ts [veths]`;
// under Node: bundled. Prints JSON, microseconds per operation.
import { Handle } from '../../../lib/netlink/index.ts';
import { runtimeName } from '../../../lib/runtime/node.ts';

declare const Bun: { nanoseconds(): number } | undefined;
const now = typeof Bun !== 'undefined' ? (): number => Bun.nanoseconds() : (): number => Number(process.hrtime.bigint());

const ROUNDS = 1000;
const veths = Number(process.argv[2] ?? '10');

async function time(op: () => Promise<unknown>): Promise<{ meanUs: number; medianUs: number; p99Us: number }> {
  for (let i = 0; i < 100; i++) await op();
  const samples: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = now();
    await op();
    samples.push((now() - t0) / 1000);
  }
  samples.sort((a, b) => a - b);
  const round = (x: number): number => Math.round(x * 10) / 10;
  return { meanUs: round(samples.reduce((a, b) => a + b, 0) / ROUNDS), medianUs: round(samples[ROUNDS >> 1]!), p99Us: round(samples[Math.floor(ROUNDS * 0.99)]!) };
}

using h = Handle.open();
for (let i = 0; i < veths; i++) await h.linkAdd({ name: `kb${i}a`, kind: 'veth', veth: { peerName: `kb${i}b` } });
const lo = await h.linkByName('lo');
const links = (await h.linkList()).length;
const roundTrip = await time(() => h.linkByIndex(lo.index));
const dump = await time(() => h.linkList());
process.stdout.write(`${JSON.stringify({ runtime: runtimeName, links, roundTrip, dump })}\n`);
