// The behaviour of an IpvsHandle that callers rely on, as one set of cases
// run twice: against FakeIpvs (lib/netlink/ipvs-fake.test.ts, no root) and
// against the real kernel through openIpvs (test/vm/suites/ipvs-netlink.test.ts,
// in the test VM). The fake is only as good as this agreement.
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { errnoOf } from '../errors.ts';
import { IPAddr, type Family } from '../ip/index.ts';
import { ipvsDestination, ipvsService } from './ipvs-fake.ts';
import { IPVS_DEFAULT_TIMEOUTS, IPVS_SVC_F_PERSISTENT, IPVS_SVC_F_SCHED1, IPVS_SVC_F_SCHED2, type IpvsHandle, type IpvsProtocol, type IpvsService } from './ipvs-types.ts';

const E = constants.errno;
const ip = (s: string): IPAddr => IPAddr.mustParse(s);

export async function errnoFrom(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
  } catch (err) {
    return errnoOf(err);
  }
  return undefined;
}

/** Documentation addresses of both families: a VIP and three real servers. */
export const ADDRS: Record<Family, { vip: IPAddr; vip2: IPAddr; rs: IPAddr[] }> = {
  4: { vip: ip('198.51.100.10'), vip2: ip('198.51.100.11'), rs: [ip('203.0.113.1'), ip('203.0.113.2'), ip('203.0.113.3')] },
  6: { vip: ip('2001:db8::10'), vip2: ip('2001:db8::11'), rs: [ip('2001:db8:1::1'), ip('2001:db8:1::2'), ip('2001:db8:1::3')] },
};

const sortByAddr = <T extends { address: IPAddr; port: number }>(l: T[]): T[] => [...l].sort((a, b) => a.address.compare(b.address) || a.port - b.port);

/**
 * Registers the cases. `open` gives a handle on an empty IPVS table (a fresh
 * namespace) and `close` disposes of it.
 */
export function ipvsHandleCases(open: () => Promise<IpvsHandle>, close: (h: IpvsHandle) => Promise<void>): void {
  async function withHandle(fn: (h: IpvsHandle) => Promise<void>): Promise<void> {
    const h = await open();
    try {
      await fn(h);
    } finally {
      await close(h);
    }
  }

  const matrix: [Family, IpvsProtocol][] = [
    [4, 'tcp'],
    [4, 'udp'],
    [4, 'sctp'],
    [6, 'tcp'],
    [6, 'udp'],
    [6, 'sctp'],
  ];

  describe.each(matrix)('IPv%s %s', (family, protocol) => {
    const { vip, rs } = ADDRS[family];
    const key = { family, address: vip, protocol, port: 80 };

    it('creates, lists, updates and deletes a service with its destinations', async () => {
      await withHandle(async (h) => {
        expect(await h.services()).toEqual([]);
        const svc = ipvsService(family, vip, protocol, 80);
        await h.addService(svc);
        expect(await h.services()).toEqual([svc]);
        expect(await h.getService(key)).toEqual(svc);

        const d0 = ipvsDestination(rs[0]!, 8080);
        const d1 = ipvsDestination(rs[1]!, 8081, { weight: 3, upperThreshold: 100, lowerThreshold: 10 });
        await h.addDestination(key, d0);
        await h.addDestination(key, d1);
        const conns = { activeConns: 0, inactiveConns: 0, persistentConns: 0 };
        // The kernel lists destinations newest first.
        expect((await h.destinations(key)).map((d) => d.port)).toEqual([8081, 8080]);
        expect(sortByAddr(await h.destinations(key))).toEqual([
          { ...d0, ...conns },
          { ...d1, ...conns },
        ]);

        const d0w0 = { ...d0, weight: 0 };
        await h.updateDestination(key, d0w0);
        expect(sortByAddr(await h.destinations(key))[0]).toEqual({ ...d0w0, ...conns });

        const updated: IpvsService = { ...svc, scheduler: 'wrr', flags: IPVS_SVC_F_PERSISTENT, timeout: 10800, netmaskBits: family === 4 ? 24 : 64 };
        await h.updateService(updated);
        expect(await h.getService(key)).toEqual(updated);
        // Destinations survive a change of the service.
        expect((await h.destinations(key)).length).toBe(2);

        await h.deleteDestination(key, d1);
        expect((await h.destinations(key)).map((d) => d.address.toString())).toEqual([rs[0]!.toString()]);
        await h.deleteService(key);
        expect(await h.services()).toEqual([]);
        expect(await h.getService(key)).toBeUndefined();
      });
    });

    it('answers EEXIST, ESRCH and ENOENT as the kernel does', async () => {
      await withHandle(async (h) => {
        const svc = ipvsService(family, vip, protocol, 80);
        const d = ipvsDestination(rs[0]!, 8080);
        expect(await errnoFrom(h.updateService(svc))).toBe(E.ESRCH);
        expect(await errnoFrom(h.deleteService(key))).toBe(E.ESRCH);
        expect(await errnoFrom(h.addDestination(key, d))).toBe(E.ESRCH);
        expect(await errnoFrom(h.deleteDestination(key, d))).toBe(E.ESRCH);
        // The kernel's destination dump of a missing service is empty, not an error.
        expect(await h.destinations(key)).toEqual([]);

        await h.addService(svc);
        expect(await errnoFrom(h.addService(svc))).toBe(E.EEXIST);
        expect(await errnoFrom(h.updateDestination(key, d))).toBe(E.ENOENT);
        expect(await errnoFrom(h.deleteDestination(key, d))).toBe(E.ENOENT);
        await h.addDestination(key, d);
        expect(await errnoFrom(h.addDestination(key, { ...d, weight: 5 }))).toBe(E.EEXIST);
        // Same address, other port: another destination.
        await h.addDestination(key, { ...d, port: 8081 });
        expect((await h.destinations(key)).length).toBe(2);
      });
    });
  });

  describe('services and destinations', () => {
    it('keeps services apart by protocol, port, address and family', async () => {
      await withHandle(async (h) => {
        const all = [
          ipvsService(4, ADDRS[4].vip, 'tcp', 53),
          ipvsService(4, ADDRS[4].vip, 'udp', 53),
          ipvsService(4, ADDRS[4].vip, 'sctp', 53),
          ipvsService(4, ADDRS[4].vip, 'tcp', 54),
          ipvsService(4, ADDRS[4].vip2, 'tcp', 53),
          ipvsService(6, ADDRS[6].vip, 'tcp', 53),
        ];
        for (const s of all) await h.addService(s);
        const got = await h.services();
        expect(sortByAddr(got).map((s) => `${s.protocol} ${s.address.toString()} ${s.port}`).sort()).toEqual(all.map((s) => `${s.protocol} ${s.address.toString()} ${s.port}`).sort());
        await h.addDestination(all[1]!, ipvsDestination(ADDRS[4].rs[0]!, 53));
        expect((await h.destinations(all[0]!)).length).toBe(0);
        expect((await h.destinations(all[1]!)).length).toBe(1);
      });
    });

    it('schedulers with their flags; unknown scheduler ENOENT; bad IPv6 netmask EINVAL', async () => {
      await withHandle(async (h) => {
        const sh = ipvsService(4, ADDRS[4].vip, 'tcp', 80, { scheduler: 'sh', flags: IPVS_SVC_F_SCHED1 | IPVS_SVC_F_SCHED2 });
        await h.addService(sh);
        expect(await h.getService(sh)).toEqual(sh);
        const mh = ipvsService(6, ADDRS[6].vip, 'udp', 53, { scheduler: 'mh', flags: IPVS_SVC_F_SCHED1 });
        await h.addService(mh);
        expect(await h.getService(mh)).toEqual(mh);
        expect(await errnoFrom(h.addService(ipvsService(4, ADDRS[4].vip, 'tcp', 81, { scheduler: 'nosuch' })))).toBe(E.ENOENT);
        expect(await errnoFrom(h.updateService({ ...sh, scheduler: 'nosuch' }))).toBe(E.ENOENT);
        expect(await h.getService(sh)).toEqual(sh);
        expect(await errnoFrom(h.addService(ipvsService(6, ADDRS[6].vip, 'tcp', 81, { netmaskBits: 0 })))).toBe(E.EINVAL);
        expect(await h.getService({ family: 4, address: ADDRS[4].vip, protocol: 'tcp', port: 81 })).toBeUndefined();
      });
    });

    it('persistence with a timeout and a netmask, for both families', async () => {
      await withHandle(async (h) => {
        for (const family of [4, 6] as const) {
          const s = ipvsService(family, ADDRS[family].vip, 'tcp', 443, { flags: IPVS_SVC_F_PERSISTENT, timeout: 10800, netmaskBits: family === 4 ? 16 : 48 });
          await h.addService(s);
          expect(await h.getService(s)).toEqual(s);
        }
      });
    });

    it('weights and thresholds: negative weight or lower above upper is ERANGE', async () => {
      await withHandle(async (h) => {
        const s = ipvsService(4, ADDRS[4].vip, 'tcp', 80);
        await h.addService(s);
        expect(await errnoFrom(h.addDestination(s, ipvsDestination(ADDRS[4].rs[0]!, 80, { upperThreshold: 5, lowerThreshold: 6 })))).toBe(E.ERANGE);
        await h.addDestination(s, ipvsDestination(ADDRS[4].rs[0]!, 80, { weight: 0 }));
        expect(await errnoFrom(h.updateDestination(s, ipvsDestination(ADDRS[4].rs[0]!, 80, { upperThreshold: 1, lowerThreshold: 2 })))).toBe(E.ERANGE);
        const [d] = await h.destinations(s);
        expect(d?.weight).toBe(0);
        expect(d?.forward).toBe('masq');
      });
    });

    it('forwarding methods round-trip: route, tunnel, masq', async () => {
      await withHandle(async (h) => {
        const s = ipvsService(4, ADDRS[4].vip, 'tcp', 80);
        await h.addService(s);
        await h.addDestination(s, ipvsDestination(ADDRS[4].rs[0]!, 80, { forward: 'route' }));
        await h.addDestination(s, ipvsDestination(ADDRS[4].rs[1]!, 80, { forward: 'tunnel' }));
        await h.addDestination(s, ipvsDestination(ADDRS[4].rs[2]!, 80, { forward: 'masq' }));
        expect(sortByAddr(await h.destinations(s)).map((d) => d.forward)).toEqual(['route', 'tunnel', 'masq']);
      });
    });

    it('a destination of the other family needs tunnel forwarding (EINVAL otherwise)', async () => {
      await withHandle(async (h) => {
        const s = ipvsService(4, ADDRS[4].vip, 'tcp', 80);
        await h.addService(s);
        expect(await errnoFrom(h.addDestination(s, ipvsDestination(ADDRS[6].rs[0]!, 80)))).toBe(E.EINVAL);
        await h.addDestination(s, ipvsDestination(ADDRS[6].rs[0]!, 80, { forward: 'tunnel' }));
        const [d] = await h.destinations(s);
        expect(d?.family).toBe(6);
        expect(d?.address.toString()).toBe(ADDRS[6].rs[0]!.toString());
      });
    });

    it('flush removes every service with its destinations', async () => {
      await withHandle(async (h) => {
        for (const family of [4, 6] as const) {
          const s = ipvsService(family, ADDRS[family].vip, 'udp', 53);
          await h.addService(s);
          await h.addDestination(s, ipvsDestination(ADDRS[family].rs[0]!, 53));
        }
        await h.flush();
        expect(await h.services()).toEqual([]);
        expect(await h.destinations(ipvsService(4, ADDRS[4].vip, 'udp', 53))).toEqual([]);
        await h.flush();
      });
    });
  });

  describe('timeouts and info', () => {
    it('defaults 900/120/300; a zero leaves a value alone; out of range is EINVAL', async () => {
      await withHandle(async (h) => {
        expect(await h.timeouts()).toEqual(IPVS_DEFAULT_TIMEOUTS);
        await h.setTimeouts({ tcp: 7200, tcpFin: 0, udp: 30 });
        expect(await h.timeouts()).toEqual({ tcp: 7200, tcpFin: 120, udp: 30 });
        await h.setTimeouts({ tcp: 0, tcpFin: 15, udp: 0 });
        expect(await h.timeouts()).toEqual({ tcp: 7200, tcpFin: 15, udp: 30 });
        expect(await errnoFrom(h.setTimeouts({ tcp: 0x7fffffff, tcpFin: 0, udp: 0 }))).toBe(E.EINVAL);
        expect(await h.timeouts()).toEqual({ tcp: 7200, tcpFin: 15, udp: 30 });
      });
    });

    it('info names the IPVS version and the connection table size', async () => {
      await withHandle(async (h) => {
        const info = await h.info();
        expect(info.version).toMatch(/^\d+\.\d+\.\d+$/);
        expect(info.connTableSize).toBeGreaterThan(0);
      });
    });
  });

  describe('many requests at once', () => {
    it('1,000 destinations added in one tick, then listed and removed', async () => {
      await withHandle(async (h) => {
        const s = ipvsService(4, ADDRS[4].vip, 'tcp', 80);
        await h.addService(s);
        // 203.0.113.1-250, four ports each.
        const dests = Array.from({ length: 1000 }, (_, i) => ipvsDestination(IPAddr.of(4, 0xcb007100n + BigInt((i % 250) + 1)), 8000 + Math.floor(i / 250)));
        await Promise.all(dests.map((d) => h.addDestination(s, d)));
        const got = await h.destinations(s);
        expect(got.length).toBe(1000);
        expect(new Set(got.map((d) => `${d.address.toString()}:${d.port}`)).size).toBe(1000);
        await Promise.all(dests.map((d) => h.deleteDestination(s, d)));
        expect(await h.destinations(s)).toEqual([]);
      });
    });
  });
}
