// FakeIpvs: the shared cases (the same ones run against the real kernel in
// the test VM), then what only the fake has: counters, the call record,
// injected failures.
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ADDRS, errnoFrom, ipvsHandleCases } from './ipvs-fake-cases.ts';
import { FakeIpvs, ipvsDestination, ipvsService } from './ipvs-fake.ts';
import { IPVS_SVC_F_HASHED, IPVS_SVC_F_PERSISTENT } from './ipvs-types.ts';

const E = constants.errno;

ipvsHandleCases(
  async () => new FakeIpvs(),
  async (h) => h.close(),
);

describe('FakeIpvs controls', () => {
  const s = ipvsService(4, ADDRS[4].vip, 'tcp', 80);
  const d = ipvsDestination(ADDRS[4].rs[0]!, 8080);

  it('connection counters set by the test show in the destination list', async () => {
    const h = new FakeIpvs();
    await h.addService(s);
    await h.addDestination(s, d);
    h.setConnections(s, d, { activeConns: 3, inactiveConns: 7 });
    expect(await h.destinations(s)).toEqual([{ ...d, activeConns: 3, inactiveConns: 7, persistentConns: 0 }]);
    // Changing the weight keeps the connections (what graceful termination relies on).
    await h.updateDestination(s, { ...d, weight: 0 });
    expect((await h.destinations(s))[0]).toMatchObject({ weight: 0, activeConns: 3, inactiveConns: 7 });
    expect(() => h.setConnections(s, { ...d, port: 1 }, { activeConns: 1 })).toThrow(/no such destination/);
  });

  it('records mutating requests in order, failed ones too, and counts every request', async () => {
    const h = new FakeIpvs();
    await h.addService(s);
    await h.services();
    await errnoFrom(h.addService(s));
    await h.addDestination(s, d);
    await h.setTimeouts({ tcp: 1, tcpFin: 0, udp: 0 });
    expect(h.calls.map((c) => [c.method, c.service])).toEqual([
      ['addService', 'TCP 198.51.100.10:80'],
      ['addService', 'TCP 198.51.100.10:80'],
      ['addDestination', 'TCP 198.51.100.10:80'],
      ['setTimeouts', undefined],
    ]);
    expect(h.requests).toBe(5);
    expect(h.take().length).toBe(4);
    expect(h.calls).toEqual([]);
  });

  it('failOn fails the nth call of a method with the errno, once', async () => {
    const h = new FakeIpvs();
    h.failOn('addService', E.ENOMEM, 2);
    await h.addService(s);
    expect(await errnoFrom(h.addService({ ...s, port: 81 }))).toBe(E.ENOMEM);
    await h.addService({ ...s, port: 81 });
    expect((await h.services()).length).toBe(2);
  });

  it('keeps its own copies and never reports HASHED', async () => {
    const h = new FakeIpvs();
    const mine = { ...s, flags: IPVS_SVC_F_PERSISTENT | IPVS_SVC_F_HASHED, timeout: 60 };
    await h.addService(mine);
    mine.timeout = 1;
    expect(await h.getService(s)).toEqual({ ...s, flags: IPVS_SVC_F_PERSISTENT, timeout: 60 });
  });

  it('schedulers are configurable; a closed handle fails with EBADF', async () => {
    const h = new FakeIpvs({ schedulers: ['rr'] });
    expect(await errnoFrom(h.addService({ ...s, scheduler: 'wrr' }))).toBe(E.ENOENT);
    await h.addService({ ...s, scheduler: 'none' });
    h.close();
    expect(await errnoFrom(h.services())).toBe(E.EBADF);
  });

  it('snapshot() shows the table synchronously', async () => {
    const h = new FakeIpvs();
    await h.addService(s);
    await h.addDestination(s, d);
    expect(h.snapshot()).toEqual([{ service: s, destinations: [{ ...d, activeConns: 0, inactiveConns: 0, persistentConns: 0 }] }]);
  });
});
