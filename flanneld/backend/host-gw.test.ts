// The host-gw programmer against lib/netlink's FakeHandle.
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import { silentLogger } from '../../lib/log.ts';
import { FakeHandle, type FakeCall } from '../../lib/netlink/fake.ts';
import type { Route } from '../../lib/netlink/index.ts';
import { networkConfigFromObject } from '../config.ts';
import type { Lease } from '../subnet/types.ts';
import { hostGw } from './host-gw.ts';
import type { Programmer } from './reconciler.ts';
import type { Network } from './types.ts';

const label = (c: FakeCall): string => (c.method === 'routeList' ? c.method : `${c.method} ${(c.args[0] as Route).dst}`);

function lease(n: number): Lease {
  return { enableIPv4: true, enableIPv6: false, subnet: IPPrefix.mustParse(`10.244.${n}.0/24`), attrs: { publicIP: `192.0.2.${10 + n}`, backendType: 'host-gw' } };
}
const peers = (...ns: number[]) => ns.map(lease);

/** The node namespace: eth0 on 192.0.2.1/24, so every peer's public IP is a reachable gateway. */
async function setup(h: FakeHandle): Promise<Programmer> {
  await h.linkAdd({ name: 'eth0', kind: 'dummy', up: true });
  const eth = await h.linkByName('eth0');
  await h.addrAdd(eth.index, { address: IPPrefix.mustParse('192.0.2.1/24') });
  const cfg = networkConfigFromObject({ Network: '10.244.0.0/16', Backend: { Type: 'host-gw' } });
  const nw = await hostGw().registerNetwork(cfg, { index: eth.index, name: 'eth0', mtu: 1500, ifaceAddr: IPAddr.mustParse('192.0.2.1') }, { handle: h, log: silentLogger() });
  h.take();
  return (nw as Network & { programmer(): Programmer }).programmer();
}

async function flannelRoutes(h: FakeHandle): Promise<string[]> {
  const routes = await h.routeList({ family: 4 });
  h.take();
  return routes.filter((r) => r.protocol === 70).map((r) => `${r.dst} via ${r.gw}`).sort();
}

describe('host-gw programmer: full and partial syncs', () => {
  it('partial syncs read no routes and write only the change; a failure or a full sync reads them again and heals', async () => {
    const h = new FakeHandle();
    const p = await setup(h);
    const calls = (): string[] => h.take().map(label);
    expect(await p.sync(peers(2, 3), { full: true })).toEqual([]);
    expect(calls()).toEqual(['routeList', 'routeReplace 10.244.2.0/24', 'routeReplace 10.244.3.0/24']);

    expect(await p.sync(peers(2, 3, 4), { full: false })).toEqual([]);
    expect(calls()).toEqual(['routeReplace 10.244.4.0/24']);
    expect(await p.sync(peers(3, 4), { full: false })).toEqual([]);
    expect(calls()).toEqual(['routeDel 10.244.2.0/24']);

    // A failed route: the next sync reads the kernel although a partial one was asked for.
    h.failOn('routeReplace', constants.errno.ENETUNREACH);
    expect((await p.sync(peers(3, 4, 5), { full: false })).map((f) => f.kind)).toEqual(['route']);
    calls();
    expect(await p.sync(peers(3, 4, 5), { full: false })).toEqual([]);
    expect(calls()).toEqual(['routeList', 'routeReplace 10.244.5.0/24']);

    // Removed behind our back: a partial sync does not notice, the full one restores it.
    await h.routeDel({ family: 4, dst: IPPrefix.mustParse('10.244.3.0/24') });
    calls();
    await p.sync(peers(3, 4, 5), { full: false });
    expect(calls()).toEqual([]);
    await p.sync(peers(3, 4, 5), { full: true });
    expect(calls()).toEqual(['routeList', 'routeReplace 10.244.3.0/24']);
    expect(await flannelRoutes(h)).toEqual(['10.244.3.0/24 via 192.0.2.13', '10.244.4.0/24 via 192.0.2.14', '10.244.5.0/24 via 192.0.2.15']);
  });
});
