// The Kubernetes API test fixture, checked against the wire protocol and
// against client-node's ListWatch, plus lib/kube's client and ObjectSource.
// Everything listens and connects inside a namespace this file creates.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { V1Node } from '@kubernetes/client-node';
import { World } from '../harness/world.ts';
import { startKubeApiInNetns } from '../fixtures/kube-api/netns.ts';
import type { KObject, KubeApiFixture } from '../fixtures/kube-api/server.ts';
import { KubeApiError, KubeClient, NODES, loadKubeConfig, nodeSource } from '../../lib/kube/index.ts';
import type { SyncReason } from '../../lib/kube/index.ts';
import { until } from '../harness/until.ts';

const world = new World('kapi');
let fx: KubeApiFixture;
let url: string;
let client: KubeClient;

beforeAll(async () => {
  ({ fixture: fx, url } = await startKubeApiInNetns(world));
  client = new KubeClient(await loadKubeConfig({ apiUrl: url }));
});
afterAll(() => world.cleanup());

const node = (name: string, extra: Partial<KObject> = {}): KObject => ({ metadata: { name }, spec: { podCIDR: '10.244.1.0/24' }, ...extra });

/** Reads a watch stream until it ends or `stopAfter` events arrived. */
function rawWatch(path: string, stopAfter = Infinity): Promise<{ status: number; events: { type: string; object: KObject }[]; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const events: { type: string; object: KObject }[] = [];
    const req = request(url + path, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          events.push(JSON.parse(buf.slice(0, i)) as { type: string; object: KObject });
          buf = buf.slice(i + 1);
          if (events.length >= stopAfter) {
            resolve({ status: res.statusCode ?? 0, events, ended: false });
            req.destroy();
            return;
          }
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, events, ended: true }));
    });
    req.on('error', (err) => (events.length >= stopAfter ? undefined : reject(err)));
    req.end();
  });
}

describe('REST', () => {
  it('lists nodes as a NodeList with the current resourceVersion', async () => {
    fx.create('nodes', node('list-a'));
    fx.create('nodes', node('list-b'));
    const list = await client.list<V1Node>(NODES);
    expect(list.kind).toBe('NodeList');
    expect(list.apiVersion).toBe('v1');
    expect(list.metadata?.resourceVersion).toBe(fx.resourceVersion);
    expect(list.items.map((n) => n.metadata?.name)).toEqual(expect.arrayContaining(['list-a', 'list-b']));
  });

  it('GETs one node and reports a missing one as KUBE_NOT_FOUND with the Status reason', async () => {
    const n = await client.get<V1Node>(NODES, 'list-a');
    expect(n.kind).toBe('Node');
    expect(n.metadata?.resourceVersion).toMatch(/^\d+$/);
    const err = await client.get(NODES, 'nope').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).code).toBe('KUBE_NOT_FOUND');
    expect((err as KubeApiError).reason).toBe('NotFound');
  });

  it('refuses a duplicate create with 409 AlreadyExists and a stale update with 409 Conflict', async () => {
    const created = await client.create<V1Node>(NODES, { metadata: { name: 'dup' } });
    const dup = await client.create(NODES, { metadata: { name: 'dup' } }).catch((e: unknown) => e);
    expect((dup as KubeApiError).code).toBe('KUBE_ALREADY_EXISTS');
    await client.patchNode('dup', { metadata: { labels: { a: 'b' } } });
    const stale = await client.replace(NODES, created).catch((e: unknown) => e);
    expect((stale as KubeApiError).code).toBe('KUBE_CONFLICT');
  });

  it('strategic-merge-patches annotations and merges status.conditions by type on /status, keeping spec', async () => {
    fx.create('nodes', {
      metadata: { name: 'smp', annotations: { keep: '1', drop: 'x' } },
      spec: { podCIDR: '10.244.7.0/24' },
      status: { conditions: [{ type: 'Ready', status: 'True' }, { type: 'NetworkUnavailable', status: 'True', reason: 'NoRouteCreated' }] },
    });
    const out = await client.patchNodeStatus<V1Node>('smp', {
      metadata: { annotations: { new: '2', drop: null } },
      spec: { podCIDR: '10.9.9.0/24' },
      status: { conditions: [{ type: 'NetworkUnavailable', status: 'False', reason: 'FlannelIsUp' }] },
    });
    expect(out.metadata?.annotations).toEqual({ keep: '1', new: '2' });
    expect(out.spec?.podCIDR).toBe('10.244.7.0/24');
    expect(out.status?.conditions).toEqual([
      { type: 'Ready', status: 'True' },
      { type: 'NetworkUnavailable', status: 'False', reason: 'FlannelIsUp' },
    ]);
    const last = fx.requests.at(-1)!;
    expect(last.path).toBe('/api/v1/nodes/smp/status');
    expect(last.contentType).toBe('application/strategic-merge-patch+json');
  });

  it('replaces lists under a JSON merge patch and ignores status on the main resource', async () => {
    fx.create('nodes', { metadata: { name: 'mp' }, status: { conditions: [{ type: 'Ready', status: 'True' }] }, spec: { taints: [{ key: 'a', effect: 'NoSchedule' }] } });
    const out = await client.patch<V1Node>(NODES, 'mp', { spec: { taints: [{ key: 'b', effect: 'NoSchedule' }] }, status: { conditions: [] } }, { type: 'merge' });
    expect(out.spec?.taints).toEqual([{ key: 'b', effect: 'NoSchedule' }]);
    expect(out.status?.conditions).toEqual([{ type: 'Ready', status: 'True' }]);
  });

  it('rejects an unsupported patch content type with 415 (KUBE_INVALID)', async () => {
    const err = await client.patch(NODES, 'mp', [{ op: 'add', path: '/x', value: 1 }], { type: 'json' }).catch((e: unknown) => e);
    expect((err as KubeApiError).status).toBe(415);
    expect((err as KubeApiError).code).toBe('KUBE_INVALID');
  });
});

describe('WATCH', () => {
  it('replays the events after the given resourceVersion, in order', async () => {
    const from = fx.resourceVersion;
    fx.create('nodes', node('w1'));
    fx.patch('nodes', 'w1', { metadata: { labels: { x: 'y' } } });
    fx.remove('nodes', 'w1');
    const got = await rawWatch(`/api/v1/nodes?watch=1&resourceVersion=${from}`, 3);
    expect(got.status).toBe(200);
    expect(got.events.map((e) => [e.type, e.object.metadata.name])).toEqual([
      ['ADDED', 'w1'],
      ['MODIFIED', 'w1'],
      ['DELETED', 'w1'],
    ]);
    const rvs = got.events.map((e) => Number(e.object.metadata.resourceVersion));
    expect(rvs[0]).toBeGreaterThan(Number(from));
    expect(rvs[1]).toBeGreaterThan(rvs[0]!);
    expect(rvs[2]).toBeGreaterThan(rvs[1]!);
  });

  it('answers a resourceVersion older than the history with an ERROR 410 Expired Status and ends the stream', async () => {
    const old = fx.resourceVersion;
    fx.create('nodes', node('w2'));
    fx.compact();
    const got = await rawWatch(`/api/v1/nodes?watch=true&resourceVersion=${old}`);
    expect(got.ended).toBe(true);
    expect(got.events).toHaveLength(1);
    expect(got.events[0]!.type).toBe('ERROR');
    expect(got.events[0]!.object).toMatchObject({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410 });
  });

  it('sends BOOKMARKs only to watchers that allowed them, and ends the stream after timeoutSeconds', async () => {
    const rv = fx.resourceVersion;
    const withBm = rawWatch(`/api/v1/nodes?watch=1&resourceVersion=${rv}&allowWatchBookmarks=true&timeoutSeconds=1`);
    const without = rawWatch(`/api/v1/nodes?watch=1&resourceVersion=${rv}&timeoutSeconds=1`);
    await until(() => fx.watcherCount >= 2);
    fx.bookmark();
    const [a, b] = await Promise.all([withBm, without]);
    expect(a.ended && b.ended).toBe(true);
    expect(a.events).toEqual([{ type: 'BOOKMARK', object: { kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: rv } } }]);
    expect(b.events).toEqual([]);
  });

  it('filters by labelSelector, turning objects that leave the selector into DELETED', async () => {
    const from = fx.resourceVersion;
    fx.create('nodes', { metadata: { name: 'sel', labels: { role: 'a' } } });
    fx.patch('nodes', 'sel', { metadata: { labels: { role: 'b' } } });
    const got = await rawWatch(`/api/v1/nodes?watch=1&resourceVersion=${from}&labelSelector=role%3Da`, 2);
    expect(got.events.map((e) => e.type)).toEqual(['ADDED', 'DELETED']);
  });
});

describe('client-node ListWatch through ObjectSource', () => {
  it('sees add/update/delete, and after a 410 re-lists without losing state', async () => {
    for (const n of fx.list('nodes')) fx.remove('nodes', n.metadata.name);
    fx.create('nodes', node('keep'));
    fx.create('nodes', node('gone-while-away'));
    const src = nodeSource(client, { resyncMs: 0, retryMinMs: 50 });
    const log: string[] = [];
    const syncs: SyncReason[] = [];
    src.subscribe({
      add: (n) => log.push(`add ${n.metadata?.name}`),
      update: (o, n) => log.push(`update ${n.metadata?.name} ${o.metadata?.labels?.['v'] ?? '-'}->${n.metadata?.labels?.['v'] ?? '-'}`),
      delete: (n) => log.push(`delete ${n.metadata?.name}`),
      sync: (_all, why) => syncs.push(why),
    });
    const ac = new AbortController();
    try {
      await src.start(ac.signal);
      expect(syncs).toEqual(['initial']);
      expect(log.sort()).toEqual(['add gone-while-away', 'add keep']);
      log.length = 0;

      await until(() => fx.watcherCount === 1);
      fx.patch('nodes', 'keep', { metadata: { labels: { v: '1' } } });
      fx.create('nodes', node('new'));
      await until(() => log.length === 2);
      expect(log).toEqual(['update keep -->1', 'add new']);
      log.length = 0;

      // While the watch is down: a delete, an update and an add, then the
      // history is compacted so the resume gets 410 and the source re-lists.
      fx.closeWatches();
      fx.remove('nodes', 'gone-while-away');
      fx.patch('nodes', 'keep', { metadata: { labels: { v: '2' } } });
      fx.create('nodes', node('added-while-away'));
      fx.compact();
      await until(() => syncs.length === 2);
      expect(syncs).toEqual(['initial', 'relist']);
      expect(log.sort()).toEqual(['add added-while-away', 'delete gone-while-away', 'update keep 1->2']);
      expect(src.list().map((n) => n.metadata?.name).sort()).toEqual(['added-while-away', 'keep', 'new']);
      expect(src.get('keep')?.metadata?.labels?.['v']).toBe('2');
    } finally {
      ac.abort();
    }
  });
});
