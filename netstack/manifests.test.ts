import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { V1Service } from '../lib/kube/types.ts';
import { allocateService, objectFileName, readObjects, takenBy, writeObject } from './manifests.ts';
import { readersOf } from './apply.ts';
import { metricSum } from './cluster.ts';

const svc = (spec: NonNullable<V1Service['spec']>, name = 's'): V1Service => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'n' }, spec });

describe('allocateService (what the API server fills in)', () => {
  it('gives a ClusterIP from the range and NodePorts from 30000, skipping taken ones', () => {
    const taken = takenBy([svc({ clusterIP: '10.96.0.10', ports: [{ port: 1, nodePort: 30000 }] })]);
    const out = allocateService(svc({ type: 'NodePort', ports: [{ port: 80 }, { port: 81, protocol: 'UDP' }] }), ['10.96.0.0/16'], taken);
    expect(out.spec?.clusterIP).toBe('10.96.0.11');
    expect(out.spec?.clusterIPs).toEqual(['10.96.0.11']);
    expect(out.spec?.ipFamilies).toEqual(['IPv4']);
    expect(out.spec?.ports?.map((p) => [p.nodePort, p.protocol])).toEqual([[30001, 'TCP'], [30002, 'UDP']]);
    const next = allocateService(svc({ ports: [{ port: 80 }] }), ['10.96.0.0/16'], taken);
    expect(next.spec?.clusterIP).toBe('10.96.0.12');
    expect(next.spec?.ports?.[0]?.nodePort).toBeUndefined();
  });

  it('keeps given addresses, drops those of a family the cluster does not run, and fills the other family for dual-stack', () => {
    const s = svc({ ipFamilyPolicy: 'PreferDualStack', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10', 'fd00:10:96::10'], ports: [{ port: 80 }] });
    const single = allocateService(s, ['10.96.0.0/16'], takenBy([]));
    expect(single.spec?.clusterIPs).toEqual(['10.96.0.10']);
    expect(single.spec?.ipFamilies).toEqual(['IPv4']);
    const dual = allocateService(s, ['10.96.0.0/16', 'fd00:10:96::/112'], takenBy([]));
    expect(dual.spec?.clusterIPs).toEqual(['10.96.0.10', 'fd00:10:96::10']);
    const filled = allocateService(svc({ ipFamilyPolicy: 'PreferDualStack', ports: [{ port: 80 }] }), ['10.96.0.0/16', 'fd00:10:96::/112'], takenBy([]));
    expect(filled.spec?.clusterIPs).toEqual(['10.96.0.10', 'fd00:10:96::a']);
    expect(filled.spec?.ipFamilies).toEqual(['IPv4', 'IPv6']);
  });

  it('rejects an address outside the service range and leaves headless Services without one', () => {
    expect(() => allocateService(svc({ clusterIP: '192.0.2.5' }), ['10.96.0.0/16'], takenBy([]))).toThrow(/not in the service range/);
    expect(allocateService(svc({ clusterIP: 'None', ports: [{ port: 80 }] }), ['10.96.0.0/16'], takenBy([])).spec?.clusterIP).toBe('None');
  });
});

describe('manifest files', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'netstack-mf-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('one file per object, named by kind, namespace and name, read back as written', async () => {
    await writeObject(dir, 'Service', svc({ clusterIP: '10.96.0.10', ports: [{ port: 80 }] }, 'web'));
    await writeObject(dir, 'Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'n' } });
    expect(readdirSync(dir).sort()).toEqual(['namespace-n.yaml', 'service-n-web.yaml']);
    const objs = await readObjects(dir);
    expect(objs.map((o) => `${o.kind}/${o.obj.metadata?.name}`).sort()).toEqual(['Namespace/n', 'Service/web']);
    expect(objectFileName('Pod', { metadata: { name: 'a/b', namespace: 'x y' } })).toBe('pod-x_y-a_b.yaml');
  });

  it('a manifest the parser rejects is an error naming the file', async () => {
    writeFileSync(join(dir, 'bad.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {}\n');
    await expect(readObjects(dir)).rejects.toThrow(/bad\.yaml/);
    await expect(readObjects(join(dir, 'missing'))).rejects.toMatchObject({ code: 'MANIFEST_NOT_FOUND' });
  });
});

describe('apply helpers', () => {
  it('sums a metric over its label sets and ignores longer names', () => {
    const text = ['# HELP x', 'kubeproxy_sync_count{ip_family="4"} 3', 'kubeproxy_sync_count{ip_family="6"} 2', 'kubeproxy_sync_count_other 100', 'kubeproxy_sync_count 1'].join('\n');
    expect(metricSum(text, 'kubeproxy_sync_count')).toBe(6);
  });
  it('knows which daemon reads which kind', () => {
    expect(readersOf('Service')).toEqual(['kube-proxy']);
    expect(readersOf('NetworkPolicy')).toEqual(['netpolicy']);
    expect(readersOf('Pod').sort()).toEqual(['kube-proxy', 'netpolicy']);
  });
});
