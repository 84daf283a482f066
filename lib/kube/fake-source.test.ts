import { describe, expect, it } from 'vitest';
import type { V1Service } from '@kubernetes/client-node';
import { FakeSource } from './fake-source.ts';
import type { Source, SyncReason } from './source.ts';

const svc = (name: string, v = '1'): V1Service => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop', labels: { v } } });

/** What a consumer of any Source sees. */
function watch(src: Source<V1Service>): string[] {
  const log: string[] = [];
  src.subscribe({
    add: (o) => log.push(`add ${o.metadata?.name}`),
    update: (a, b) => log.push(`update ${b.metadata?.name} ${a.metadata?.labels?.['v']}->${b.metadata?.labels?.['v']}`),
    delete: (o) => log.push(`delete ${o.metadata?.name}`),
    sync: (all, why: SyncReason) => log.push(`sync ${why} ${all.length}`),
    error: (err) => log.push(`error ${(err as Error).message}`),
  });
  return log;
}

describe('FakeSource', () => {
  it('pushes add / update / delete / sync by hand with the cache semantics of the real sources', () => {
    const src = new FakeSource<V1Service>('Service', [svc('a')]);
    const log = watch(src);
    expect(src.synced).toBe(false);
    src.sync();
    expect(src.synced).toBe(true);
    src.add(svc('b'));
    src.update(svc('a', '2'));
    src.delete(svc('b'));
    src.sync();
    src.fail(new Error('watch lost'));
    expect(log).toEqual(['sync initial 1', 'add b', 'update a 1->2', 'delete b', 'sync resync 1', 'error watch lost']);
    expect(src.get('a', 'shop')?.metadata?.labels).toEqual({ v: '2' });
    expect(() => src.add(svc('a'))).toThrow(/already exists/);
    expect(() => src.update(svc('zz'))).toThrow(/does not exist/);
    expect(() => src.delete(svc('zz'))).toThrow(/does not exist/);
  });

  it('replace() acts as a re-list: only real differences, then sync', () => {
    const src = new FakeSource<V1Service>('Service');
    const log = watch(src);
    src.replace([svc('a'), svc('b')]);
    src.replace([svc('a'), svc('b', '2'), svc('c')]);
    src.replace([svc('c')]);
    expect(log).toEqual(['add a', 'add b', 'sync initial 2', 'update b 1->2', 'add c', 'sync relist 3', 'delete a', 'delete b', 'sync relist 1']);
  });

  it('run() settles when the signal aborts; waitForSync resolves on the first sync and rejects on abort', async () => {
    const src = new FakeSource<V1Service>('Service');
    const ac = new AbortController();
    const running = src.run(ac.signal);
    expect(src.running).toBe(1);
    const synced = src.waitForSync(ac.signal);
    src.sync();
    await synced;
    const other = new AbortController();
    const never = new FakeSource<V1Service>('Service').waitForSync(other.signal);
    other.abort(new Error('stopped'));
    await expect(never).rejects.toThrow('stopped');
    ac.abort();
    await running;
    expect(src.running).toBe(0);
  });

  it('waitForSync times out with KUBE_SYNC_TIMEOUT', async () => {
    const src = new FakeSource<V1Service>('Service');
    await expect(src.waitForSync(new AbortController().signal, 1)).rejects.toMatchObject({ code: 'KUBE_SYNC_TIMEOUT' });
  });

  it('unsubscribing stops the events', () => {
    const src = new FakeSource<V1Service>('Service');
    const seen: string[] = [];
    const off = src.subscribe({ add: (o) => seen.push(o.metadata?.name ?? '') });
    src.add(svc('a'));
    off();
    src.add(svc('b'));
    expect(seen).toEqual(['a']);
  });
});
