// The host-gw programmer against a fake handle holding only routes.
import { describe, expect, it } from 'vitest';
import { ErrnoError } from '../../lib/errors.ts';
import { silentLogger } from '../../lib/log.ts';
import type { Handle, Route } from '../../lib/netlink/index.ts';
import { networkConfigFromObject } from '../config.ts';
import { Prefix } from '../subnet/prefix.ts';
import type { Lease } from '../subnet/types.ts';
import { hostGw } from './host-gw.ts';
import type { Programmer } from './reconciler.ts';
import type { Network } from './types.ts';

const EXT = 2;

function fakeRoutes(): { h: Handle; routes: Map<string, Route>; calls: string[]; failDst: Set<string> } {
  const routes = new Map<string, Route>();
  const calls: string[] = [];
  const failDst = new Set<string>();
  const h = {
    async routeList() {
      calls.push('routeList');
      return [...routes.values()];
    },
    async routeReplace(r: Route) {
      calls.push(`routeReplace ${r.dst}`);
      if (failDst.delete(r.dst)) throw new ErrnoError('routeReplace', 101, r.dst);
      routes.set(r.dst, { ...r });
    },
    async routeDel(r: Route) {
      calls.push(`routeDel ${r.dst}`);
      if (!routes.delete(r.dst)) throw new ErrnoError('routeDel', 3, r.dst);
    },
  };
  return { h: h as unknown as Handle, routes, calls, failDst };
}

function lease(n: number): Lease {
  return { enableIPv4: true, enableIPv6: false, subnet: Prefix.parse(`10.244.${n}.0/24`), attrs: { publicIP: `192.0.2.${10 + n}`, backendType: 'host-gw' } };
}
const peers = (...ns: number[]) => ns.map(lease);

async function setup(h: Handle): Promise<Programmer> {
  const cfg = networkConfigFromObject({ Network: '10.244.0.0/16', Backend: { Type: 'host-gw' } });
  const nw = await hostGw().registerNetwork(cfg, { index: EXT, name: 'eth0', mtu: 1500, ifaceAddr: '192.0.2.1' }, { handle: h, log: silentLogger() });
  return (nw as Network & { programmer(): Programmer }).programmer();
}

describe('host-gw programmer: full and partial syncs', () => {
  it('partial syncs read no routes and write only the change; a failure or a full sync reads them again and heals', async () => {
    const k = fakeRoutes();
    const p = await setup(k.h);
    expect(await p.sync(peers(2, 3), { full: true })).toEqual([]);
    expect(k.calls.splice(0)).toEqual(['routeList', 'routeReplace 10.244.2.0/24', 'routeReplace 10.244.3.0/24']);

    expect(await p.sync(peers(2, 3, 4), { full: false })).toEqual([]);
    expect(k.calls.splice(0)).toEqual(['routeReplace 10.244.4.0/24']);
    expect(await p.sync(peers(3, 4), { full: false })).toEqual([]);
    expect(k.calls.splice(0)).toEqual(['routeDel 10.244.2.0/24']);

    // A failed route: the next sync reads the kernel although a partial one was asked for.
    k.failDst.add('10.244.5.0/24');
    expect((await p.sync(peers(3, 4, 5), { full: false })).map((f) => f.kind)).toEqual(['route']);
    k.calls.splice(0);
    expect(await p.sync(peers(3, 4, 5), { full: false })).toEqual([]);
    expect(k.calls.splice(0)).toEqual(['routeList', 'routeReplace 10.244.5.0/24']);

    // Removed behind our back: a partial sync does not notice, the full one restores it.
    k.routes.delete('10.244.3.0/24');
    await p.sync(peers(3, 4, 5), { full: false });
    expect(k.calls.splice(0)).toEqual([]);
    await p.sync(peers(3, 4, 5), { full: true });
    expect(k.calls.splice(0)).toEqual(['routeList', 'routeReplace 10.244.3.0/24']);
    expect([...k.routes.keys()].sort()).toEqual(['10.244.3.0/24', '10.244.4.0/24', '10.244.5.0/24']);
  });
});
