import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { kubeErrorCode, loadKubeConfig, resourcePath } from './index.ts';

describe('resourcePath', () => {
  it('builds core, namespaced, group and subresource paths', () => {
    expect(resourcePath({ version: 'v1', resource: 'nodes' })).toBe('/api/v1/nodes');
    expect(resourcePath({ version: 'v1', resource: 'nodes' }, { name: 'n1', subresource: 'status' })).toBe('/api/v1/nodes/n1/status');
    expect(resourcePath({ version: 'v1', resource: 'pods' }, { namespace: 'kube-system', name: 'p' })).toBe('/api/v1/namespaces/kube-system/pods/p');
    expect(resourcePath({ group: 'discovery.k8s.io', version: 'v1', resource: 'endpointslices' })).toBe('/apis/discovery.k8s.io/v1/endpointslices');
  });
});

describe('kubeErrorCode', () => {
  it('maps HTTP status and Status reason to stable codes', () => {
    expect(kubeErrorCode(404)).toBe('KUBE_NOT_FOUND');
    expect(kubeErrorCode(409, 'AlreadyExists')).toBe('KUBE_ALREADY_EXISTS');
    expect(kubeErrorCode(409, 'Conflict')).toBe('KUBE_CONFLICT');
    expect(kubeErrorCode(410, 'Expired')).toBe('KUBE_GONE');
    expect(kubeErrorCode(403)).toBe('KUBE_FORBIDDEN');
    expect(kubeErrorCode(503)).toBe('KUBE_UNAVAILABLE');
    expect(kubeErrorCode(0)).toBe('KUBE_UNAVAILABLE');
  });
});

describe('loadKubeConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubecfg-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'kubeconfig');
  writeFileSync(
    file,
    `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://192.0.2.10:6443"}
users:
- name: u
  user: {token: abc}
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
`,
  );

  it('loads a kubeconfig file and lets --kube-api-url override its server', async () => {
    expect((await loadKubeConfig({ kubeconfig: file })).getCurrentCluster()?.server).toBe('https://192.0.2.10:6443');
    const kc = await loadKubeConfig({ kubeconfig: file, apiUrl: 'https://192.0.2.11:6443' });
    expect(kc.getCurrentCluster()?.server).toBe('https://192.0.2.11:6443');
    expect(kc.getCurrentUser()?.token).toBe('abc');
  });

  it('accepts a bare API URL, allowing plain http', async () => {
    const kc = await loadKubeConfig({ apiUrl: 'http://192.0.2.12:8080' });
    expect(kc.getCurrentCluster()).toMatchObject({ server: 'http://192.0.2.12:8080', skipTLSVerify: true });
  });

  it('fails with KUBE_CONFIG when nothing is given outside a cluster, or the file is missing', async () => {
    await expect(loadKubeConfig({ env: {} })).rejects.toThrow(expect.objectContaining({ code: 'KUBE_CONFIG' }));
    await expect(loadKubeConfig({ kubeconfig: join(dir, 'missing') })).rejects.toThrow(expect.objectContaining({ code: 'KUBE_CONFIG' }));
    await expect(loadKubeConfig({ apiUrl: 'not a url' })).rejects.toThrow(expect.objectContaining({ code: 'KUBE_CONFIG' }));
  });

  it('uses the service account in a cluster', async () => {
    const root = join(dir, 'sa');
    const sa = join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, 'token'), 'tok');
    writeFileSync(join(sa, 'ca.crt'), '');
    const kc = await loadKubeConfig({ env: { KUBERNETES_SERVICE_HOST: '192.0.2.1', KUBERNETES_SERVICE_PORT: '443' }, serviceAccountRoot: root });
    expect(kc.getCurrentCluster()?.server).toBe('https://192.0.2.1:443');
  });
});
