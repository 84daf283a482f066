// setupVeth on FakeHandles: a node namespace and a pod namespace of one FakeNetworks.
import { constants } from 'node:os';
import { describe, expect, it, vi } from 'vitest';
import { codeOf, errnoOf, isExists } from '../../lib/errors.ts';
import { FakeNetworks } from '../../lib/netlink/fake.ts';
import { randomVethName, setupVeth } from './veth.ts';

const E = constants.errno;

function bed() {
  const nets = new FakeNetworks();
  return { host: nets.namespace(), pod: nets.namespace() };
}

const rejection = (p: Promise<unknown>): Promise<Error> => p.then(() => expect.unreachable('expected a failure'), (err: unknown) => err as Error);

const names = async (h: { linkList(): Promise<{ name: string }[]> }): Promise<string[]> => (await h.linkList()).map((l) => l.name);

describe('setupVeth', () => {
  it('creates the host end in the node namespace and the container end in the pod, peered, with MTU and MAC', async () => {
    const { host, pod } = bed();
    const { hostVeth, contVeth } = await setupVeth(host, pod, { ifName: 'eth0', mtu: 1400, mac: '0a:58:0a:01:00:05' });
    expect(hostVeth.name).toMatch(/^veth[0-9a-f]{8}$/);
    expect(await names(host)).toEqual(['lo', hostVeth.name]);
    expect(await names(pod)).toEqual(['lo', 'eth0']);
    expect([hostVeth.kind, contVeth.kind]).toEqual(['veth', 'veth']);
    expect([hostVeth.parentIndex, contVeth.parentIndex]).toEqual([contVeth.index, hostVeth.index]);
    expect([hostVeth.mtu, contVeth.mtu]).toEqual([1400, 1400]);
    expect(contVeth.mac).toBe('0a:58:0a:01:00:05');
    // Bringing the ends up is the caller's.
    expect([hostVeth.up, contVeth.up]).toEqual([false, false]);
  });

  it('without MTU and MAC the kernel defaults stay', async () => {
    const { host, pod } = bed();
    const { hostVeth, contVeth } = await setupVeth(host, pod, { ifName: 'net1' });
    expect([hostVeth.mtu, contVeth.mtu]).toEqual([1500, 1500]);
    expect(contVeth.mac).not.toBe(hostVeth.mac);
  });

  it('runs prepareHost on the host end and returns the host end as it left it', async () => {
    const { host, pod } = bed();
    const seen: string[] = [];
    const { hostVeth } = await setupVeth(host, pod, { ifName: 'eth0' }, async (veth) => {
      seen.push(veth.name);
      await host.linkSetUp(veth.index);
    });
    expect(seen).toEqual([hostVeth.name]);
    expect(hostVeth.up).toBe(true);
  });

  it('fails with EEXIST when the container name is taken, and creates nothing', async () => {
    const { host, pod } = bed();
    await pod.linkAdd({ name: 'eth0', kind: 'dummy' });
    const err = await rejection(setupVeth(host, pod, { ifName: 'eth0' }));
    expect(err.message).toBe('container veth name provided (eth0) already exists');
    expect([errnoOf(err), isExists(err)]).toEqual([E.EEXIST, true]);
    expect(await names(host)).toEqual(['lo']);
    expect(await names(pod)).toEqual(['lo', 'eth0']);
  });

  it('a container name taken between the check and the creation is EEXIST too', async () => {
    const { host, pod } = bed();
    await pod.linkAdd({ name: 'eth0', kind: 'dummy' });
    // The first look misses it, as when a concurrent ADD creates it right after.
    vi.spyOn(pod, 'linkFind').mockResolvedValueOnce(undefined);
    const err = await rejection(setupVeth(host, pod, { ifName: 'eth0' }));
    expect([err.message, errnoOf(err)]).toEqual(['container veth name provided (eth0) already exists', E.EEXIST]);
    expect(await names(host)).toEqual(['lo']);
  });

  it('retries a clash of the random host name, five times', async () => {
    const { host, pod } = bed();
    for (let i = 0; i < 5; i++) host.failOn('linkAdd', E.EEXIST);
    const { hostVeth } = await setupVeth(host, pod, { ifName: 'eth0' });
    expect(host.calls.filter((c) => c.method === 'linkAdd')).toHaveLength(6);
    expect(await names(host)).toEqual(['lo', hostVeth.name]);

    const again = bed();
    for (let i = 0; i < 6; i++) again.host.failOn('linkAdd', E.EEXIST);
    const err = await rejection(setupVeth(again.host, again.pod, { ifName: 'eth0' }));
    expect(err.message).toMatch(/^failed to create veth pair: link add veth[0-9a-f]{8}: injected: file exists$/);
  });

  it('a kernel refusal is INTERNAL with the errno as cause', async () => {
    const { host, pod } = bed();
    host.failOn('linkAdd', E.EPERM);
    const err = await rejection(setupVeth(host, pod, { ifName: 'eth0' }));
    expect(err.message).toMatch(/^failed to create veth pair: .*operation not permitted$/);
    expect([codeOf(err), errnoOf(err.cause)]).toEqual(['INTERNAL', E.EPERM]);
    expect([await names(host), await names(pod)]).toEqual([['lo'], ['lo']]);
  });

  it('leaves nothing behind when prepareHost fails, and rethrows its error', async () => {
    const { host, pod } = bed();
    const boom = new Error('attach failed');
    const err = await rejection(setupVeth(host, pod, { ifName: 'eth0' }, () => Promise.reject(boom)));
    expect(err).toBe(boom);
    expect([await names(host), await names(pod)]).toEqual([['lo'], ['lo']]);
  });

  it('leaves nothing behind when a lookup after the creation fails', async () => {
    const { host, pod } = bed();
    pod.failOn('linkByName', E.EINTR);
    const err = await rejection(setupVeth(host, pod, { ifName: 'eth0' }));
    expect(errnoOf(err)).toBe(E.EINTR);
    expect([await names(host), await names(pod)]).toEqual([['lo'], ['lo']]);
  });
});

describe('randomVethName', () => {
  it('is veth and 8 hex digits, different each time', () => {
    const a = randomVethName();
    expect(a).toMatch(/^veth[0-9a-f]{8}$/);
    expect(new Set(Array.from({ length: 20 }, randomVethName)).size).toBe(20);
  });
});
