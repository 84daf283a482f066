// lib/kube's API source for the kinds kube-proxy and netpolicy read
// (Services, EndpointSlices, NetworkPolicies, Namespaces, Pods), against the
// Kubernetes API test fixture. Everything listens and connects inside a
// namespace this file creates.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { World } from '../harness/world.ts';
import { startKubeApiInNetns } from '../fixtures/kube-api/netns.ts';
import type { KObject, KubeApiFixture } from '../fixtures/kube-api/server.ts';
import { KubeClient, apiSource, loadKubeConfig } from '../../lib/kube/index.ts';
import type { KubernetesObject, Source } from '../../lib/kube/index.ts';
import { until } from '../harness/until.ts';

const world = new World('ksrc');
let fx: KubeApiFixture;
let client: KubeClient;

beforeAll(async () => {
  let url: string;
  ({ fixture: fx, url } = await startKubeApiInNetns(world));
  client = new KubeClient(await loadKubeConfig({ apiUrl: url }));
});
afterAll(() => world.cleanup());

function record<T extends KubernetesObject>(src: Source<T>): string[] {
  const log: string[] = [];
  const key = (o: T): string => `${o.metadata?.namespace ?? '-'}/${o.metadata?.name ?? ''}`;
  src.subscribe({
    add: (o) => log.push(`add ${key(o)}`),
    update: (_a, b) => log.push(`update ${key(b)}`),
    delete: (o) => log.push(`delete ${key(o)}`),
    sync: (all, why) => log.push(`sync ${why} ${all.length}`),
    error: () => log.push('error'),
  });
  return log;
}

const obj = (name: string, namespace?: string, extra: Partial<KObject> = {}): KObject => ({ metadata: { name, ...(namespace ? { namespace } : {}) }, ...extra });

describe('apiSource', () => {
  it('lists and watches Services of one namespace, typed as V1Service', async () => {
    fx.create('services', obj('web', 'shop', { spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } }));
    fx.create('services', obj('elsewhere', 'other'));
    const src = apiSource(client, 'Service', { namespace: 'shop', resyncMs: 0 });
    expect(src.kind).toBe('Service');
    const log = record(src);
    const ac = new AbortController();
    const running = src.run(ac.signal);
    try {
      await src.waitForSync(ac.signal);
      expect(log).toEqual(['add shop/web', 'sync initial 1']);
      expect(src.get('web', 'shop')?.spec?.ports?.[0]?.port).toBe(80);
      await until(() => fx.watcherCount === 1);
      fx.patch('services', 'web', { metadata: { labels: { v: '2' } } }, { namespace: 'shop' });
      fx.create('services', obj('api', 'shop'));
      fx.create('services', obj('ignored', 'other'));
      fx.remove('services', 'web', 'shop');
      await until(() => log.length === 5);
      expect(log.slice(2)).toEqual(['update shop/web', 'add shop/api', 'delete shop/web']);
    } finally {
      ac.abort();
    }
    await running;
    await until(() => fx.watcherCount === 0);
  });

  it('serves EndpointSlices (discovery.k8s.io), NetworkPolicies (networking.k8s.io), Namespaces and Pods', async () => {
    fx.create('endpointslices', obj('web-abc', 'shop', { addressType: 'IPv4', endpoints: [{ addresses: ['192.0.2.10'] }], metadata: { name: 'web-abc', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } } }));
    fx.create('networkpolicies', obj('deny', 'shop', { spec: { podSelector: {} } }));
    fx.create('namespaces', obj('shop'));
    fx.create('pods', obj('p1', 'shop', { spec: { nodeName: 'n1' } }));
    fx.create('pods', obj('p2', 'shop', { spec: { nodeName: 'n2' } }));
    const slices = apiSource(client, 'EndpointSlice', { resyncMs: 0 });
    const policies = apiSource(client, 'NetworkPolicy', { resyncMs: 0 });
    const namespaces = apiSource(client, 'Namespace', { resyncMs: 0 });
    const pods = apiSource(client, 'Pod', { fieldSelector: 'spec.nodeName=n1', resyncMs: 0 });
    const ac = new AbortController();
    const running = Promise.all([slices, policies, namespaces, pods].map((s) => s.run(ac.signal)));
    try {
      await Promise.all([slices, policies, namespaces, pods].map((s) => s.waitForSync(ac.signal)));
      expect(slices.get('web-abc', 'shop')?.endpoints?.[0]?.addresses).toEqual(['192.0.2.10']);
      expect(policies.get('deny', 'shop')?.spec?.podSelector).toEqual({});
      expect(namespaces.get('shop')?.kind).toBe('Namespace');
      expect(pods.list().map((p) => p.metadata?.name)).toEqual(['p1']);
      const log = record(slices);
      await until(() => fx.watcherCount === 4);
      fx.patch('endpointslices', 'web-abc', { endpoints: [{ addresses: ['192.0.2.11'] }] }, { namespace: 'shop', type: 'merge' });
      await until(() => log.length === 1);
      expect(log).toEqual(['update shop/web-abc']);
      expect(slices.get('web-abc', 'shop')?.endpoints?.[0]?.addresses).toEqual(['192.0.2.11']);
    } finally {
      ac.abort();
    }
    await running;
  });

  it('reports a failed list to error handlers and retries until it syncs', async () => {
    fx.failNext({ method: 'GET', path: /\/namespaces\/shop\/networkpolicies$/, code: 503, times: 2 });
    const src = apiSource(client, 'NetworkPolicy', { namespace: 'shop', resyncMs: 0, retryMinMs: 20 });
    const log = record(src);
    const ac = new AbortController();
    const running = src.run(ac.signal);
    try {
      await src.waitForSync(ac.signal);
      expect(log).toEqual(['error', 'error', 'add shop/deny', 'sync initial 1']);
      await expect(src.run(ac.signal)).rejects.toMatchObject({ code: 'KUBE_SOURCE_STARTED' });
    } finally {
      ac.abort();
    }
    await running;
  });

  it('resumes a watch that failed, with backoff, without losing events', async () => {
    fx.create('services', obj('resume', 'watchfail'));
    const src = apiSource(client, 'Service', { namespace: 'watchfail', resyncMs: 0, retryMinMs: 20 });
    const log = record(src);
    const ac = new AbortController();
    const running = src.run(ac.signal);
    try {
      await src.waitForSync(ac.signal);
      await until(() => fx.watcherCount === 1);
      // The stream ends; ListWatch reconnects at once, that watch fails with
      // 500 and ListWatch gives up: the source starts it again.
      fx.failNext({ method: 'GET', path: /\/namespaces\/watchfail\/services$/, code: 500 });
      fx.closeWatches();
      fx.create('services', obj('while-down', 'watchfail'));
      await until(() => log.includes('add watchfail/while-down'));
      expect(log).toEqual(['add watchfail/resume', 'sync initial 1', 'error', 'add watchfail/while-down']);
      const watches = fx.requests.filter((r) => r.path.endsWith('/namespaces/watchfail/services') && r.query['watch'] === 'true');
      expect(watches.length).toBe(3);
      expect(watches[2]?.query['resourceVersion']).toBe(watches[1]?.query['resourceVersion']);
    } finally {
      ac.abort();
    }
    await running;
  });

  it('run() resolves at once for an aborted signal', async () => {
    const src = apiSource(client, 'Service');
    await src.run(AbortSignal.abort());
    expect(src.synced).toBe(false);
  });
});
