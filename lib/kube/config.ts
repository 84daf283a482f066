// Where the Kubernetes API is and how to authenticate, resolved the way
// client-go's BuildConfigFromFlags does for flanneld/kube-proxy flags:
// an explicit kubeconfig file (optionally with the server URL overridden),
// else a bare API URL, else the in-cluster service account.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { NetError } from '../errors.ts';

export class KubeConfigError extends NetError {
  constructor(message: string, cause?: unknown) {
    super('KUBE_CONFIG', message, { cause });
  }
}

export interface KubeConfigOptions {
  /** Path of a kubeconfig file (`--kubeconfig-file`, `--kubeconfig`). */
  kubeconfig?: string | undefined;
  /** API server URL (`--kube-api-url`, `--master`); overrides the kubeconfig's server. */
  apiUrl?: string | undefined;
  /** Environment for the in-cluster fallback (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Prefix for the service-account files, for tests (default ""). */
  serviceAccountRoot?: string;
}

const SA_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** Async: client-node is loaded here, only when the API is used. */
export async function loadKubeConfig(opts: KubeConfigOptions = {}): Promise<KubeConfig> {
  const { KubeConfig } = await import('./client-node.ts');
  const kc = new KubeConfig();
  const apiUrl = opts.apiUrl?.trim() || undefined;
  if (apiUrl !== undefined) {
    try {
      new URL(apiUrl);
    } catch (err) {
      throw new KubeConfigError(`invalid API server URL "${apiUrl}"`, err);
    }
  }
  if (opts.kubeconfig) {
    try {
      kc.loadFromFile(opts.kubeconfig);
    } catch (err) {
      throw new KubeConfigError(`failed to load kubeconfig "${opts.kubeconfig}": ${(err as Error).message}`, err);
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new KubeConfigError(`kubeconfig "${opts.kubeconfig}" has no current context/cluster`);
    if (apiUrl !== undefined) {
      kc.clusters = kc.clusters.map((c) => (c.name === cluster.name ? { ...c, server: apiUrl } : c));
    }
    applyTokenFiles(kc, opts.kubeconfig);
    allowPlainHttp(kc);
    return kc;
  }
  if (apiUrl !== undefined) {
    kc.loadFromClusterAndUser({ name: 'flags', server: apiUrl, skipTLSVerify: false }, { name: 'flags' });
    allowPlainHttp(kc);
    return kc;
  }
  const env = opts.env ?? process.env;
  const root = opts.serviceAccountRoot ?? '';
  if (!env['KUBERNETES_SERVICE_HOST'] || !env['KUBERNETES_SERVICE_PORT']) {
    throw new KubeConfigError('no kubeconfig or API URL given, and not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset)');
  }
  if (!existsSync(root + SA_TOKEN)) {
    throw new KubeConfigError(`not running in a cluster: service account token ${root + SA_TOKEN} missing`);
  }
  // client-node reads the host/port from process.env itself.
  const saved = { h: process.env['KUBERNETES_SERVICE_HOST'], p: process.env['KUBERNETES_SERVICE_PORT'] };
  process.env['KUBERNETES_SERVICE_HOST'] = env['KUBERNETES_SERVICE_HOST'];
  process.env['KUBERNETES_SERVICE_PORT'] = env['KUBERNETES_SERVICE_PORT'];
  try {
    kc.loadFromCluster(root);
  } finally {
    restore('KUBERNETES_SERVICE_HOST', saved.h);
    restore('KUBERNETES_SERVICE_PORT', saved.p);
  }
  return kc;
}

/**
 * client-node refuses an http:// server unless skipTLSVerify is set; client-go
 * simply talks plain HTTP. There is no TLS to verify on such a cluster, so the
 * flag changes nothing else.
 */
function allowPlainHttp(kc: KubeConfig): void {
  kc.clusters = kc.clusters.map((c) => (c.server.startsWith('http://') ? { ...c, skipTLSVerify: true } : c));
}

function restore(key: string, v: string | undefined): void {
  if (v === undefined) delete process.env[key];
  else process.env[key] = v;
}

/**
 * A kubeconfig user's `tokenFile` (kubeadm writes one for kube-proxy: the
 * service account token, which the kubelet rotates) is not read by
 * client-node's kubeconfig loader. client-go reads it, re-reading it as it
 * changes; client-node's tokenFile auth provider (what its in-cluster config
 * uses) does the same, every 60 s. So such a user gets that provider. A
 * `token` beside it wins, as in client-go; a relative path is relative to the
 * kubeconfig's directory.
 */
function applyTokenFiles(kc: KubeConfig, path: string): void {
  let raw: { users?: { name?: string; user?: { token?: string; tokenFile?: string } }[] } | null;
  try {
    raw = parseYaml(readFileSync(path, 'utf8')) as typeof raw;
  } catch {
    return; // loadFromFile read it; nothing more to learn here
  }
  const files = new Map<string, string>();
  for (const u of raw?.users ?? []) {
    if (u.name !== undefined && u.user?.tokenFile && !u.user.token) files.set(u.name, resolve(dirname(path), u.user.tokenFile));
  }
  if (files.size === 0) return;
  for (const f of files.values()) if (!existsSync(f)) throw new KubeConfigError(`kubeconfig "${path}": tokenFile ${f} does not exist`);
  kc.users = kc.users.map((u) => {
    const f = files.get(u.name);
    return f === undefined || u.authProvider ? u : { ...u, authProvider: { name: 'tokenFile', config: { tokenFile: f } } };
  });
}
