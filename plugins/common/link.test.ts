// waitOperUp on a FakeHandle veth pair: the host end's oper state follows its peer.
import { describe, expect, it } from 'vitest';
import { codeOf } from '../../lib/errors.ts';
import { FakeNetworks } from '../../lib/netlink/fake.ts';
import { waitOperUp } from './link.ts';

async function pair() {
  const nets = new FakeNetworks();
  const host = nets.namespace();
  const pod = nets.namespace();
  await host.linkAdd({ name: 'veth1', kind: 'veth', up: true, veth: { peerName: 'eth0', peerNetnsFd: pod.nsFd } });
  return { host, pod, hostVeth: await host.linkByName('veth1'), contVeth: await pod.linkByName('eth0') };
}

describe('waitOperUp', () => {
  it('returns at once when the link is up', async () => {
    const { host, pod, hostVeth, contVeth } = await pair();
    await pod.linkSetUp(contVeth.index);
    const slept: number[] = [];
    const link = await waitOperUp(host, hostVeth.index, async (ms) => void slept.push(ms));
    expect([link.operState, slept]).toEqual(['up', []]);
  });

  it('looks again after each pause until the carrier comes', async () => {
    const { host, pod, hostVeth, contVeth } = await pair();
    const slept: number[] = [];
    const link = await waitOperUp(host, hostVeth.index, async (ms) => {
      slept.push(ms);
      if (slept.length === 2) await pod.linkSetUp(contVeth.index);
    });
    expect([link.operState, slept]).toEqual(['up', [5, 20]]);
  });

  it('fails with the state after the last pause (about 3 s in all), naming what it waited for', async () => {
    const { host, hostVeth } = await pair();
    const slept: number[] = [];
    const wait = waitOperUp(host, hostVeth.index, async (ms) => void slept.push(ms), 'bridge port');
    await expect(wait).rejects.toThrow('bridge port in error state: lowerlayerdown');
    await wait.catch((err: unknown) => expect(codeOf(err)).toBe('INTERNAL'));
    expect(slept).toEqual([5, 20, 50, 200, 500, 1000, 1000]);
    await expect(waitOperUp(host, hostVeth.index, async () => undefined)).rejects.toThrow(`link #${hostVeth.index} in error state: lowerlayerdown`);
  });
});
