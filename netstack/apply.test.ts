import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ManifestObject } from '../lib/kube/manifest.ts';
import type { V1Namespace, V1Service } from '../lib/kube/types.ts';
import { applyObjects } from './apply.ts';
import { StateStore } from './state.ts';
import { initialState } from './up.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'netstack-apply-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const mo = (kind: ManifestObject['kind'], obj: object): ManifestObject => ({ kind, obj: obj as ManifestObject['obj'], index: '0' });
const read = <T>(name: string): T => parse(readFileSync(join(dir, 'manifests', name), 'utf8')) as T;

describe('applyObjects (no pods: no root needed)', () => {
  it('fills Services like the API server and keeps a Service\'s ClusterIP when it is changed', async () => {
    const store = new StateStore(initialState(dir, { nodes: 1, backend: 'vxlan', proxyMode: 'iptables', policyBackend: 'nftables', dualStack: false }, 'nsabc123'));
    const lines: string[] = [];
    await applyObjects(store, [mo('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'a', namespace: 'x' }, spec: { type: 'NodePort', selector: { app: 'a' }, ports: [{ port: 80 }] } })], (l) => lines.push(l), { waitSync: false });
    const first = read<V1Service>('service-x-a.yaml');
    expect(first.spec?.clusterIP).toBe('10.96.0.10');
    expect(first.spec?.ports?.[0]?.nodePort).toBe(30000);
    // Another Service does not get the same address.
    await applyObjects(store, [mo('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'b', namespace: 'x' }, spec: { ports: [{ port: 80 }] } })], () => {}, { waitSync: false });
    expect(read<V1Service>('service-x-b.yaml').spec?.clusterIP).toBe('10.96.0.11');
    // An update of `a` (new port, no clusterIP given) keeps 10.96.0.10.
    await applyObjects(store, [mo('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'a', namespace: 'x' }, spec: { selector: { app: 'a' }, ports: [{ port: 81 }] } })], () => {}, { waitSync: false });
    const updated = read<V1Service>('service-x-a.yaml');
    expect(updated.spec?.clusterIP).toBe('10.96.0.10');
    expect(updated.spec?.ports?.map((p) => p.port)).toEqual([81]);
    expect(lines.join('\n')).toContain('Service x/a: 10.96.0.10 80/TCP nodePort 30000');
  });

  it('labels Namespaces with their name, as the API server does', async () => {
    const store = new StateStore(initialState(dir, { nodes: 1, backend: 'vxlan', proxyMode: 'iptables', policyBackend: 'nftables', dualStack: false }, 'nsabc123'));
    await applyObjects(store, [mo('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'db', labels: { tier: 'db' } } })], () => {}, { waitSync: false });
    expect(read<V1Namespace>('namespace-db.yaml').metadata?.labels).toEqual({ tier: 'db', 'kubernetes.io/metadata.name': 'db' });
  });
});
