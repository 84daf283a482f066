// flanneld's Kubernetes subnet manager against the API fixture, inside a
// namespace this file creates (listener and clients both live there).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { World } from '../harness/world.ts';
import { startKubeApiInNetns } from '../fixtures/kube-api/netns.ts';
import type { KObject, KubeApiFixture } from '../fixtures/kube-api/server.ts';
import { KubeSubnetManager, annotationNames } from '../../flanneld/subnet/kube.ts';
import type { KubeSubnetManagerOptions } from '../../flanneld/subnet/kube.ts';
import type { Lease, LeaseWatchResult } from '../../flanneld/subnet/types.ts';
import { until } from '../harness/until.ts';

const ann = annotationNames();
const world = new World('fkube');
const ac = new AbortController();
let fx: KubeApiFixture;
let url: string;
let dir: string;
let opts: KubeSubnetManagerOptions;
let m: KubeSubnetManager;

const OLD_MAC = '0a:58:0a:f4:01:01';

const peer = (name: string, cidr: string, ip: string, mac: string): KObject => ({
  metadata: {
    name,
    annotations: {
      [ann.kubeSubnetManager]: 'true',
      [ann.backendType]: 'vxlan',
      [ann.backendData]: JSON.stringify({ VNI: 1, VtepMAC: mac }),
      [ann.publicIP]: ip,
    },
  },
  spec: { podCIDR: cidr, podCIDRs: [cidr] },
});

beforeAll(async () => {
  ({ fixture: fx, url } = await startKubeApiInNetns(world));
  dir = mkdtempSync(join(tmpdir(), 'flannel-kube-'));
  world.onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  world.onCleanup(() => ac.abort());
  writeFileSync(join(dir, 'net-conf.json'), JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } }));
  // This node ran flannel before: its VTEP MAC is in backend-data; the admin pinned a public IP.
  fx.create('nodes', {
    metadata: {
      name: 'n1',
      annotations: { [ann.backendData]: JSON.stringify({ VNI: 1, VtepMAC: OLD_MAC }), [ann.nodePublicIP]: '192.0.2.1', unrelated: 'keep' },
    },
    spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] },
    status: { conditions: [{ type: 'NetworkUnavailable', status: 'True', reason: 'NoRouteCreated' }, { type: 'Ready', status: 'True' }] },
  });
  opts = { apiUrl: url, netConfigPath: join(dir, 'net-conf.json'), env: { NODE_NAME: 'n1' }, retryMs: 50, acquireTimeoutMs: 5000 };
  m = await KubeSubnetManager.create(opts, ac.signal);
});
afterAll(() => world.cleanup());

describe('KubeSubnetManager', () => {
  let watch: AsyncIterator<LeaseWatchResult>;
  const next = async (): Promise<LeaseWatchResult> => (await watch.next()).value as LeaseWatchResult;
  const summary = (r: LeaseWatchResult): string[] =>
    'snapshot' in r ? r.snapshot.map((l) => `snap ${l.subnet?.toString()} ${l.attrs.publicIP}`).sort() : r.events.map((e) => `${e.type} ${e.lease.subnet?.toString()} ${e.lease.attrs.publicIP}`);

  it('reads the persisted VTEP MAC and the pinned public IP before acquiring', () => {
    expect(m.name()).toBe('Kubernetes Subnet Manager - n1');
    expect(m.getStoredMacAddresses()).toEqual({ v4: OLD_MAC });
    expect(m.getStoredPublicIP()).toEqual({ v4: '192.0.2.1' });
  });

  it('acquires the lease from podCIDR and publishes the annotations with one status patch', async () => {
    const attrs = { publicIP: '192.0.2.1', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: OLD_MAC } };
    const lease = await m.acquireLease(attrs, ac.signal);
    expect(lease.subnet?.toString()).toBe('10.244.1.0/24');
    expect(lease.expiration).toBeUndefined();
    const n = fx.get('nodes', 'n1')!;
    expect(n.metadata.annotations).toMatchObject({
      [ann.kubeSubnetManager]: 'true',
      [ann.backendType]: 'vxlan',
      [ann.backendData]: `{"VNI":1,"VtepMAC":"${OLD_MAC}"}`,
      [ann.publicIP]: '192.0.2.1',
      unrelated: 'keep',
    });
    const patches = fx.requests.filter((r) => r.method === 'PATCH');
    expect(patches).toHaveLength(1);
    expect(patches[0]!.path).toBe('/api/v1/nodes/n1/status');
    expect(patches[0]!.contentType).toBe('application/strategic-merge-patch+json');

    // Once the cache has it, acquiring again with the same attributes patches nothing.
    // (n1 shows up among the managed leases once the informer saw the patch.)
    for (;;) {
      const peek = m.watchLeases(ac.signal)[Symbol.asyncIterator]();
      const first = (await peek.next()).value as LeaseWatchResult;
      await peek.return?.();
      if ('snapshot' in first && first.snapshot.length === 1) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    await m.acquireLease(attrs, ac.signal);
    expect(fx.requests.filter((r) => r.method === 'PATCH')).toHaveLength(1);
  });

  it('starts the lease watch with a snapshot of managed nodes, then follows add/update/podCIDR change/delete', async () => {
    fx.create('nodes', { metadata: { name: 'unmanaged' }, spec: { podCIDR: '10.244.50.0/24' } });
    watch = m.watchLeases(ac.signal)[Symbol.asyncIterator]();
    expect(summary(await next())).toEqual(['snap 10.244.1.0/24 192.0.2.1']);

    fx.create('nodes', peer('n2', '10.244.2.0/24', '192.0.2.2', '0a:00:00:00:00:02'));
    const added = await next();
    expect(summary(added)).toEqual(['added 10.244.2.0/24 192.0.2.2']);
    expect('events' in added && added.events[0]!.lease.attrs.backendData).toEqual({ VNI: 1, VtepMAC: '0a:00:00:00:00:02' });

    fx.patch('nodes', 'n2', { metadata: { annotations: { [ann.publicIP]: '192.0.2.22' } } }, { subresource: 'status' });
    expect(summary(await next())).toEqual(['added 10.244.2.0/24 192.0.2.22']);

    // Upstream ignores this one; the old subnet's routes must go.
    fx.patch('nodes', 'n2', { spec: { podCIDR: '10.244.3.0/24', podCIDRs: ['10.244.3.0/24'] } });
    expect(summary(await next())).toEqual(['removed 10.244.2.0/24 192.0.2.22', 'added 10.244.3.0/24 192.0.2.22']);

    // Changes that do not touch the lease produce nothing; the delete carries the stored lease.
    fx.patch('nodes', 'n2', { metadata: { labels: { zone: 'a' } } });
    fx.remove('nodes', 'n2');
    const removed = await next();
    expect(summary(removed)).toEqual(['removed 10.244.3.0/24 192.0.2.22']);
    expect('events' in removed && removed.events[0]!.lease.attrs.backendData).toEqual({ VNI: 1, VtepMAC: '0a:00:00:00:00:02' });
  });

  it('after 410 Gone on the watch, re-lists and reports the missed changes and a fresh snapshot', async () => {
    fx.create('nodes', peer('n3', '10.244.3.0/24', '192.0.2.3', '0a:00:00:00:00:03'));
    expect(summary(await next())).toEqual(['added 10.244.3.0/24 192.0.2.3']);
    await until(() => fx.watcherCount > 0);

    fx.closeWatches();
    fx.remove('nodes', 'n3');
    fx.create('nodes', peer('n4', '10.244.4.0/24', '192.0.2.4', '0a:00:00:00:00:04'));
    fx.compact();

    const seen: string[] = [];
    let snap: Lease[] | undefined;
    while (!snap) {
      const r = await next();
      if ('snapshot' in r) snap = r.snapshot;
      else seen.push(...summary(r));
    }
    expect(seen.sort()).toEqual(['added 10.244.4.0/24 192.0.2.4', 'removed 10.244.3.0/24 192.0.2.3']);
    expect(snap.map((l) => l.subnet?.toString()).sort()).toEqual(['10.244.1.0/24', '10.244.4.0/24']);
  });

  it('sets NetworkUnavailable=False (FlannelIsUp) and returns when aborted', async () => {
    const stop = new AbortController();
    const done = m.completeLease({ enableIPv4: true, enableIPv6: false, attrs: {} }, stop.signal);
    await until(() => (fx.get('nodes', 'n1')!['status'] as { conditions: { type: string; status: string }[] }).conditions.some((c) => c.type === 'NetworkUnavailable' && c.status === 'False'));
    const conds = (fx.get('nodes', 'n1')!['status'] as { conditions: Record<string, string>[] }).conditions;
    expect(conds).toHaveLength(2);
    expect(conds.find((c) => c['type'] === 'NetworkUnavailable')).toMatchObject({ status: 'False', reason: 'FlannelIsUp', message: 'Flannel is running on this node' });
    expect(conds.find((c) => c['type'] === 'Ready')).toMatchObject({ status: 'True' });
    stop.abort();
    await expect(done).resolves.toBeUndefined();
  });
});

describe('KubeSubnetManager errors and node name', () => {
  it('finds the node name through POD_NAME/POD_NAMESPACE', async () => {
    fx.create('pods', { metadata: { name: 'kube-flannel-ds-x', namespace: 'kube-flannel' }, spec: { nodeName: 'n1' } });
    const m2 = await KubeSubnetManager.create({ ...opts, env: { POD_NAME: 'kube-flannel-ds-x', POD_NAMESPACE: 'kube-flannel' } }, ac.signal);
    expect(m2.nodeName).toBe('n1');
  });

  it('refuses a node without a pod CIDR and one outside Network', async () => {
    fx.create('nodes', { metadata: { name: 'bare' }, spec: {} });
    fx.create('nodes', { metadata: { name: 'outside' }, spec: { podCIDR: '10.99.0.0/24' } });
    const attrs = { publicIP: '192.0.2.9', backendType: 'host-gw' };
    const bare = await KubeSubnetManager.create({ ...opts, env: { NODE_NAME: 'bare' } }, ac.signal);
    await expect(bare.acquireLease(attrs, ac.signal)).rejects.toMatchObject({ code: 'KUBE_POD_CIDR' });
    const outside = await KubeSubnetManager.create({ ...opts, env: { NODE_NAME: 'outside' } }, ac.signal);
    await expect(outside.acquireLease(attrs, ac.signal)).rejects.toMatchObject({ code: 'KUBE_POD_CIDR' });
    expect(fx.get('nodes', 'outside')!.metadata.annotations).toBeUndefined();
  });
});
