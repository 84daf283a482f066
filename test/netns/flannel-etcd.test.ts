// The etcd subnet manager against a real etcd running inside a test network
// namespace. The test worker's main thread enters that namespace for the
// whole file (see test/harness/etcd.ts), so every etcd connection is there.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Etcd3 } from 'etcd3';
import { World } from '../harness/world.ts';
import { enterNetns, startEtcd } from '../harness/etcd.ts';
import type { EtcdServer } from '../harness/etcd.ts';
import { CONFIG_NOT_FOUND_MESSAGE, EtcdSubnetManager, LeaseLostError } from '../../flanneld/subnet/etcd.ts';
import type { EtcdManagerOptions, Log } from '../../flanneld/subnet/etcd.ts';
import type { Lease, LeaseAttrs, LeaseWatchResult } from '../../flanneld/subnet/types.ts';
import { IPPrefix } from '../../lib/ip/index.ts';

const w = new World('fe');
let leave: () => void = () => {};
let etcd: EtcdServer | undefined;
let admin: Etcd3;
const managers: EtcdSubnetManager[] = [];

beforeAll(async () => {
  const ns = w.netns('etcd');
  leave = enterNetns(ns);
  etcd = await startEtcd({ nsPath: ns });
  admin = new Etcd3({ hosts: etcd.endpoint });
});

afterAll(async () => {
  try {
    for (const m of managers) m.close();
    admin?.close();
    await etcd?.stop();
  } finally {
    leave();
    await w.cleanup();
  }
});

/** A fresh key prefix per test, so tests don't see each other's leases. */
function newPrefix(): string {
  return `/kn-test/${randomBytes(4).toString('hex')}/network`;
}

function manager(prefix: string, opts: Partial<EtcdManagerOptions> = {}): EtcdSubnetManager {
  const m = new EtcdSubnetManager({ endpoints: [etcd!.endpoint], prefix, ...opts });
  managers.push(m);
  return m;
}

async function putConfig(prefix: string, cfg: object): Promise<void> {
  await admin.put(`${prefix}/config`).value(JSON.stringify(cfg));
}

const attrs = (publicIP: string, mac = '0a:00:00:00:00:01'): LeaseAttrs => ({ publicIP, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: mac } });
const keyOf = (prefix: string, subnet: IPPrefix): string => `${prefix}/subnets/${subnet.network().toString()}-${subnet.length}`;

async function kvOf(key: string): Promise<{ value: string; lease: string } | undefined> {
  const r = await admin.kv.range({ key: Buffer.from(key) });
  const kv = r.kvs[0];
  return kv ? { value: kv.value.toString(), lease: kv.lease } : undefined;
}

/** Polls until `fn` returns a value; the test timeout bounds it. */
async function eventually<T>(fn: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    await sleep(50);
  }
}

describe('etcd subnet manager (real etcd in a netns)', () => {
  test('waits for a missing config, saying how to create it, then parses it', async () => {
    const prefix = newPrefix();
    const errors: string[] = [];
    const log: Log = { debug() {}, info() {}, warn() {}, error: (_o, msg) => void errors.push(msg) };
    const m = manager(prefix, { log });
    const ac = new AbortController();
    const p = m.getNetworkConfig(ac.signal);
    await eventually(async () => (errors.length > 0 ? true : undefined));
    expect(errors[0]).toBe(CONFIG_NOT_FOUND_MESSAGE);
    await putConfig(prefix, { Network: '10.50.0.0/16', Backend: { Type: 'vxlan' } });
    const cfg = await p;
    expect(cfg.ipv4?.network.toString()).toBe('10.50.0.0/16');
    expect(cfg.backend.type).toBe('vxlan');
  });

  test('allocates a subnet with a 24 h etcd lease and upstream value JSON; reuses it by public IP', async () => {
    const prefix = newPrefix();
    await putConfig(prefix, { Network: '10.51.0.0/16' });
    const m1 = manager(prefix);
    const l1 = await m1.acquireLease(attrs('198.51.100.1'), new AbortController().signal);
    expect(l1.subnet).toBeDefined();
    const sn = l1.subnet!;
    expect(sn.length).toBe(24);
    expect(IPPrefix.mustParse('10.51.0.0/16').contains(sn)).toBe(true);
    expect(sn.toString()).not.toBe('10.51.0.0/24');
    expect(l1.expiration).toBeInstanceOf(Date);

    const stored = await kvOf(keyOf(prefix, sn));
    expect(stored?.value).toBe('{"PublicIP":"198.51.100.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:00:00:00:00:01"}}');
    expect(stored?.lease).not.toBe('0');
    const ttl = await admin.leaseClient.leaseTimeToLive({ ID: stored!.lease });
    expect(ttl.grantedTTL).toBe('86400');

    // A restarted daemon with the same public IP gets the same subnet, with its new attrs.
    const m2 = manager(prefix);
    const l2 = await m2.acquireLease(attrs('198.51.100.1', '0a:00:00:00:00:02'), new AbortController().signal);
    expect(l2.subnet?.toString()).toBe(sn.toString());
    const after = await kvOf(keyOf(prefix, sn));
    expect(after?.value).toContain('"VtepMAC":"0a:00:00:00:00:02"');
    expect(after?.lease).not.toBe(stored?.lease);
    // The old etcd lease was revoked, not left to dangle for a day.
    const old = await admin.leaseClient.leaseTimeToLive({ ID: stored!.lease });
    expect(Number(old.TTL)).toBeLessThanOrEqual(0);

    // Another node gets another subnet.
    const l3 = await manager(prefix).acquireLease(attrs('198.51.100.2'), new AbortController().signal);
    expect(l3.subnet?.toString()).not.toBe(sn.toString());
  });

  test('takes the previous subnet from subnet.env when it is free', async () => {
    const prefix = newPrefix();
    await putConfig(prefix, { Network: '10.52.0.0/16' });
    const m = manager(prefix, { previousSubnet: IPPrefix.mustParse('10.52.42.1/24') });
    const l = await m.acquireLease(attrs('198.51.100.3'), new AbortController().signal);
    expect(l.subnet?.toString()).toBe('10.52.42.0/24');
    expect(await kvOf(`${prefix}/subnets/10.52.42.0-24`)).toBeDefined();
  });

  test('two managers racing for the same subnet both end with distinct leases', async () => {
    const prefix = newPrefix();
    await putConfig(prefix, { Network: '10.53.0.0/16', SubnetMin: '10.53.1.0', SubnetMax: '10.53.2.0' });
    // Both always pick the first free candidate, so they collide on 10.53.1.0.
    const first = (): number => 0;
    const races: string[] = [];
    const log: Log = { debug() {}, warn() {}, error() {}, info: (_o, msg) => void races.push(msg) };
    const a = manager(prefix, { random: first, log });
    const b = manager(prefix, { random: first, log });
    const [la, lb] = await Promise.all([
      a.acquireLease(attrs('198.51.100.10'), new AbortController().signal),
      b.acquireLease(attrs('198.51.100.11'), new AbortController().signal),
    ]);
    expect([la.subnet?.toString(), lb.subnet?.toString()].sort()).toEqual(['10.53.1.0/24', '10.53.2.0/24']);
    expect(races.filter((m) => m === 'allocated lease')).toHaveLength(2);
    const r = await admin.getAll().prefix(`${prefix}/subnets/`).keys();
    expect(r.sort()).toEqual([`${prefix}/subnets/10.53.1.0-24`, `${prefix}/subnets/10.53.2.0-24`]);
  });

  test('reservations are skipped by others and reused without being turned into leases', async () => {
    const prefix = newPrefix();
    await putConfig(prefix, { Network: '10.54.0.0/16', SubnetMin: '10.54.5.0', SubnetMax: '10.54.6.0' });
    const reservedKey = `${prefix}/subnets/10.54.5.0-24`;
    await admin.put(reservedKey).value('{"PublicIP":"198.51.100.50","PublicIPv6":null}');
    const other = await manager(prefix, { random: () => 0 }).acquireLease(attrs('198.51.100.51'), new AbortController().signal);
    expect(other.subnet?.toString()).toBe('10.54.6.0/24');

    const m = manager(prefix);
    const l = await m.acquireLease(attrs('198.51.100.50'), new AbortController().signal);
    expect(l.subnet?.toString()).toBe('10.54.5.0/24');
    expect(l.expiration).toBeUndefined();
    const kv = await kvOf(reservedKey);
    expect(kv?.lease).toBe('0');
    expect(JSON.parse(kv!.value)).toMatchObject({ PublicIP: '198.51.100.50', BackendType: 'vxlan' });

    // Keeping a reservation "alive" does not attach a lease to it either.
    const ac = new AbortController();
    const done = m.completeLease(l, ac.signal);
    await sleep(300);
    ac.abort();
    await done;
    expect((await kvOf(reservedKey))?.lease).toBe('0');
  });

  test('watch: snapshot first, then added/removed events', async () => {
    const prefix = newPrefix();
    await putConfig(prefix, { Network: '10.55.0.0/16' });
    await admin.put(`${prefix}/subnets/10.55.1.0-24`).value('{"PublicIP":"198.51.100.1","PublicIPv6":null}');
    const m = manager(prefix);
    const ac = new AbortController();
    const it = m.watchLeases(ac.signal)[Symbol.asyncIterator]();
    const first = (await it.next()).value as LeaseWatchResult;
    expect('snapshot' in first && first.snapshot.map((l) => l.subnet?.toString())).toEqual(['10.55.1.0/24']);

    await admin.put(`${prefix}/subnets/10.55.2.0-24&fd00:55:0:2::-64`).value('{"PublicIP":"198.51.100.2","PublicIPv6":"2001:db8::2","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:00:00:00:00:02"}}');
    const added = (await it.next()).value as LeaseWatchResult;
    expect(added).toEqual({
      events: [
        {
          type: 'added',
          lease: expect.objectContaining({
            enableIPv4: true,
            enableIPv6: true,
            subnet: IPPrefix.mustParse('10.55.2.0/24'),
            ipv6Subnet: IPPrefix.mustParse('fd00:55:0:2::/64'),
            attrs: { publicIP: '198.51.100.2', publicIPv6: '2001:db8::2', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '0a:00:00:00:00:02' } },
          }),
        },
      ],
    });
    await admin.delete().key(`${prefix}/subnets/10.55.1.0-24`);
    const removed = (await it.next()).value as LeaseWatchResult;
    expect('events' in removed && removed.events.map((e) => [e.type, e.lease.subnet?.toString()])).toEqual([['removed', '10.55.1.0/24']]);
    ac.abort();
    expect((await it.next()).done).toBe(true);
  });

  test('watch resuming from a compacted revision re-lists and yields a snapshot', async () => {
    const prefix = newPrefix();
    await putConfig(prefix, { Network: '10.56.0.0/16' });
    const start = (await admin.kv.range({ key: Buffer.from(`${prefix}/config`) })).header.revision;
    await admin.put(`${prefix}/subnets/10.56.1.0-24`).value('{"PublicIP":"198.51.100.1","PublicIPv6":null}');
    await admin.put(`${prefix}/subnets/10.56.2.0-24`).value('{"PublicIP":"198.51.100.2","PublicIPv6":null}');
    await admin.delete().key(`${prefix}/subnets/10.56.1.0-24`);

    // Without compaction: the missed events are replayed.
    const m = manager(prefix);
    const ac1 = new AbortController();
    const it1 = m.watchLeases(ac1.signal, { sinceRevision: start })[Symbol.asyncIterator]();
    const replay: string[] = [];
    while (replay.length < 3) {
      const r = (await it1.next()).value as LeaseWatchResult;
      expect('events' in r).toBe(true);
      if ('events' in r) for (const e of r.events) replay.push(`${e.type} ${e.lease.subnet?.toString()}`);
    }
    expect(replay).toEqual(['added 10.56.1.0/24', 'added 10.56.2.0/24', 'removed 10.56.1.0/24']);
    ac1.abort();

    // After compaction: a snapshot of what is there now, then live events.
    const now = (await admin.kv.range({ key: Buffer.from(`${prefix}/config`) })).header.revision;
    await admin.kv.compact({ revision: now, physical: true });
    const ac2 = new AbortController();
    const it2 = m.watchLeases(ac2.signal, { sinceRevision: start })[Symbol.asyncIterator]();
    const snap = (await it2.next()).value as LeaseWatchResult;
    expect('snapshot' in snap && snap.snapshot.map((l) => l.subnet?.toString())).toEqual(['10.56.2.0/24']);
    await admin.put(`${prefix}/subnets/10.56.3.0-24`).value('{"PublicIP":"198.51.100.3","PublicIPv6":null}');
    const ev = (await it2.next()).value as LeaseWatchResult;
    expect('events' in ev && ev.events.map((e) => [e.type, e.lease.subnet?.toString()])).toEqual([['added', '10.56.3.0/24']]);
    ac2.abort();
  });

  test('keep-alive holds a short lease past its TTL; a revoked lease is re-created with the same subnet', async () => {
    const prefix = newPrefix();
    await putConfig(prefix, { Network: '10.57.0.0/16' });
    const m = manager(prefix, { ttlSeconds: 2, keepAliveMs: 300 });
    const lease: Lease = await m.acquireLease(attrs('198.51.100.7'), new AbortController().signal);
    const key = keyOf(prefix, lease.subnet!);
    const ac = new AbortController();
    let settled: 'resolved' | 'rejected' | undefined;
    const done = m.completeLease(lease, ac.signal).then(
      () => void (settled = 'resolved'),
      (err: unknown) => {
        settled = 'rejected';
        throw err;
      },
    );
    const before = await kvOf(key);
    // Twice the TTL: without keep-alive etcd would have deleted the key.
    await sleep(4000);
    expect(await kvOf(key)).toEqual(before);

    await admin.leaseClient.leaseRevoke({ ID: before!.lease });
    const back = await eventually(async () => {
      const kv = await kvOf(key);
      return kv && kv.lease !== before!.lease ? kv : undefined;
    });
    expect(back.value).toBe(before!.value);
    expect(back.lease).not.toBe('0');
    expect(settled).toBeUndefined();

    // Someone else takes the subnet: the manager gives up with LeaseLostError.
    await admin.put(key).value('{"PublicIP":"198.51.100.99","PublicIPv6":null}');
    await expect(done).rejects.toBeInstanceOf(LeaseLostError);
    ac.abort();
  });
});
