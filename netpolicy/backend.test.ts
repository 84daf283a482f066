// NftBackend's memory of the last applied state: an update from the plan
// applied last diffs against the state kept from that apply, any other
// `prev` is rendered afresh, and a failed apply forgets the state (the
// kernel may not hold it).
import { describe, expect, it } from 'vitest';
import { ExecError } from '../lib/exec.ts';
import { FakeNft } from '../lib/netfilter/nft.ts';
import { NftBackend, renderFlatFull } from './backend.ts';
import { buildCluster, localPlan, type LocalPlan } from './model/index.ts';
import { renderUpdate } from './render/nftables.ts';
import { namespace, pod, policy } from './testing/fixtures.ts';

const NODE = 'n1';
const ns = [namespace('x', { ns: 'x' })];
const onlyB = policy('x', 'only-b', { podSelector: { matchLabels: { app: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'b' } } }] }] });
const planWith = (labelOfB: string): LocalPlan =>
  localPlan(
    buildCluster({
      namespaces: ns,
      policies: [onlyB],
      pods: [pod('x', 'a', { labels: { app: 'a' }, ips: ['10.0.1.1'], node: NODE }), pod('x', 'b', { labels: { app: labelOfB }, ips: ['10.0.1.2'], node: NODE })],
    }),
    NODE,
  );

class FailOnce extends FakeNft {
  fail = false;
  override async run(tx: Parameters<FakeNft['run']>[0]): Promise<void> {
    if (this.fail) {
      this.fail = false;
      throw new ExecError('EXEC_FAILED', { command: 'nft -f -', exitCode: 1, stderr: 'Error: injected\n', shortMessage: 'Command failed with exit code 1: nft -f -' });
    }
    return super.run(tx);
  }
}

describe('NftBackend updates', () => {
  // b is admitted to a, then not (c), then again: each step changes the peer set.
  const [p1, p2, p3] = [planWith('b'), planWith('c'), planWith('b')];

  it('writes exactly renderUpdate(prev, next), from the kept state and from a prev it did not apply', async () => {
    const nft = new FakeNft();
    const b = new NftBackend(nft);
    await b.applyFull(p1);
    expect(nft.runs).toEqual([renderFlatFull(p1)]);
    expect(await b.applyUpdate(p1, p2)).toBe(true);
    expect(nft.runs[1]).toBe(renderUpdate(p1, p2));
    // A structurally equal plan that is not the object applied last: rendered afresh, same text.
    expect(await b.applyUpdate(planWith('c'), p3)).toBe(true);
    expect(nft.runs[2]).toBe(renderUpdate(p2, p3));
    expect(await b.applyUpdate(p3, p3)).toBe(false);
    expect(nft.runs).toHaveLength(3);
    // The table equals p3 applied from scratch.
    const fresh = new FakeNft();
    await new NftBackend(fresh).applyFull(p3);
    expect(nft.tables).toEqual(fresh.tables);
  });

  it('after a failed update, the next one renders its prev afresh and still reaches next', async () => {
    const nft = new FailOnce();
    const b = new NftBackend(nft);
    await b.applyFull(p1);
    nft.fail = true;
    await expect(b.applyUpdate(p1, p2)).rejects.toThrow(/nft -f - failed/);
    expect(nft.runs).toHaveLength(1);
    expect(await b.applyUpdate(p1, p2)).toBe(true);
    expect(nft.runs.at(-1)).toBe(renderUpdate(p1, p2));
    const fresh = new FakeNft();
    await new NftBackend(fresh).applyFull(p2);
    expect(nft.tables).toEqual(fresh.tables);
  });
});
