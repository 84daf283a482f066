// configureIface on a FakeHandle pod namespace; releaseIpam with a stub delegate.
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { codeOf, errnoOf } from '../../lib/errors.ts';
import { InvalidPrefixError } from '../../lib/ip/index.ts';
import { FakeHandle } from '../../lib/netlink/fake.ts';
import * as C from '../../lib/netlink/constants.ts';
import { PluginNotFoundError } from '../skel/invoke.ts';
import type { CmdArgs, Result } from '../skel/types.ts';
import { configureIface, releaseIpam, resultPrefix, type IpamDelegate } from './ipam.ts';

const E = constants.errno;

async function pod(): Promise<{ h: FakeHandle; eth0: Awaited<ReturnType<FakeHandle['linkByName']>> }> {
  const h = new FakeHandle();
  await h.linkAdd({ name: 'eth0', kind: 'dummy' });
  return { h, eth0: await h.linkByName('eth0') };
}

const routes = async (h: FakeHandle, family: 4 | 6): Promise<string[]> =>
  (await h.routeList({ family })).filter((r) => r.protocol !== C.RTPROT_KERNEL).map((r) => `${r.dst}${r.gw ? ` via ${r.gw}` : ''}${r.priority ? ` metric ${r.priority}` : ''}`);

describe('configureIface', () => {
  it('brings the interface up, adds the addresses and the routes; a route without gw takes its family gateway', async () => {
    const { h, eth0 } = await pod();
    const result: Result = {
      ips: [
        { address: '10.1.0.5/24', gateway: '10.1.0.1' },
        { address: 'fd00:1::5/64', gateway: 'fd00:1::1' },
      ],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '10.96.0.0/12', gw: '10.1.0.254', priority: 5 }, { dst: '::/0' }],
    };
    await configureIface(h, eth0, result, { enableDad: false });
    expect((await h.linkByIndex(eth0.index)).up).toBe(true);
    const addrs = await h.addrList({ index: eth0.index });
    expect(addrs.map((a) => String(a.address))).toEqual(['10.1.0.5/24', 'fd00:1::5/64']);
    expect(addrs.every((a) => (a.flags & C.IFA_F_NODAD) !== 0)).toBe(true);
    expect(await routes(h, 4)).toEqual(['0.0.0.0/0 via 10.1.0.1', '10.96.0.0/12 via 10.1.0.254 metric 5']);
    expect(await routes(h, 6)).toEqual(['::/0 via fd00:1::1 metric 1024']);
    // IPv6 is switched on where it is needed.
    expect([h.readSysctl('net/ipv6/conf/lo/disable_ipv6'), h.readSysctl('net/ipv6/conf/eth0/disable_ipv6')]).toEqual(['0', '0']);
  });

  it('keeps DAD with enableDad, and leaves IPv6 sysctls alone for IPv4 only', async () => {
    const { h, eth0 } = await pod();
    await configureIface(h, eth0, { ips: [{ address: '10.1.0.5/24' }] }, { enableDad: true });
    expect((await h.addrList({ index: eth0.index }))[0]!.flags & C.IFA_F_NODAD).toBe(0);
    expect(h.calls.some((c) => c.method === 'writeSysctl')).toBe(false);
  });

  it('a route that exists already is fine; another route failure is INTERNAL with the errno as cause', async () => {
    const { h, eth0 } = await pod();
    const result: Result = { ips: [{ address: '10.1.0.5/24', gateway: '10.1.0.1' }], routes: [{ dst: '0.0.0.0/0' }, { dst: '0.0.0.0/0' }] };
    await configureIface(h, eth0, result, { enableDad: false });
    expect(await routes(h, 4)).toEqual(['0.0.0.0/0 via 10.1.0.1']);

    const other = await pod();
    const err = await configureIface(other.h, other.eth0, { ips: [{ address: '10.1.0.5/24' }], routes: [{ dst: '10.96.0.0/12', gw: '192.0.2.1' }] }, { enableDad: false }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe("failed to add route '10.96.0.0/12 via 192.0.2.1 dev eth0': route add 10.96.0.0/12: network is unreachable");
    expect([codeOf(err), errnoOf((err as Error).cause)]).toEqual(['INTERNAL', E.ENETUNREACH]);
  });
});

describe('resultPrefix', () => {
  it('reads "ip/len" with host bits, a bare address as a host prefix, and refuses anything else', () => {
    expect(String(resultPrefix('10.1.0.5/24'))).toBe('10.1.0.5/24');
    expect(String(resultPrefix('fd00::5'))).toBe('fd00::5/128');
    expect(() => resultPrefix('nope')).toThrow(InvalidPrefixError);
  });
});

describe('releaseIpam', () => {
  const args = { containerId: 'ctr1', ifName: 'eth0', stdinData: Buffer.from('{}') } as CmdArgs;
  const delegate = (del: IpamDelegate['del']): IpamDelegate => ({
    add: () => Promise.reject(new Error('unused')),
    del,
    check: () => Promise.reject(new Error('unused')),
    gc: () => Promise.reject(new Error('unused')),
    status: () => Promise.reject(new Error('unused')),
  });

  it('runs the delegate DEL', async () => {
    const seen: string[] = [];
    await releaseIpam(delegate(async (type) => void seen.push(type)), 'host-local', args, () => undefined);
    expect(seen).toEqual(['host-local']);
  });

  it('a missing IPAM binary is a warning, not a failure', async () => {
    const warnings: string[] = [];
    const missing = new PluginNotFoundError('host-local', 'failed to find plugin "host-local" in path [/opt/cni/bin]');
    await releaseIpam(delegate(() => Promise.reject(missing)), 'host-local', args, (m) => warnings.push(m));
    expect(warnings).toEqual(['failed to find plugin "host-local" in path [/opt/cni/bin]; IP addresses of ctr1/eth0 not released']);
  });

  it('any other failure is rethrown', async () => {
    const boom = new Error('store locked');
    await expect(releaseIpam(delegate(() => Promise.reject(boom)), 'host-local', args, () => undefined)).rejects.toBe(boom);
  });
});
