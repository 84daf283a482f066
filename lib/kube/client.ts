// A small REST client for the Kubernetes API, generic over the resource path.
// Authentication, TLS and proxies come from client-node's KubeConfig (the same
// applySecurityAuthentication path its Watch uses: headers and an undici
// dispatcher, over the same undici fetch); requests and typed errors are ours,
// so patches carry exactly the content type we ask for.
// client-node is loaded on the first request: a daemon reading a manifest
// directory never pays its ~80 MB and its start-up.
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { NODES, resourcePath, type ResourceRef } from './resources.ts';
import { fetch } from 'undici';
import { NetError } from '../errors.ts';

export { ENDPOINTSLICES, NAMESPACES, NETWORKPOLICIES, NODES, PODS, SERVICES, resourcePath } from './resources.ts';
export type { ObjectRef, ResourceRef } from './resources.ts';

export type KubeErrorCode =
  | 'KUBE_NOT_FOUND'
  | 'KUBE_ALREADY_EXISTS'
  | 'KUBE_CONFLICT'
  | 'KUBE_GONE'
  | 'KUBE_UNAUTHORIZED'
  | 'KUBE_FORBIDDEN'
  | 'KUBE_INVALID'
  | 'KUBE_UNAVAILABLE'
  | 'KUBE_API_ERROR';

/** A failed API request. `status` is the HTTP status (0 when the server could not be reached). */
export class KubeApiError extends NetError {
  declare readonly code: KubeErrorCode;
  readonly status: number;
  /** The Status object's reason ("NotFound", "Expired", ...), when the server sent one. */
  readonly reason: string | undefined;
  constructor(code: KubeErrorCode, status: number, reason: string | undefined, message: string, cause?: unknown) {
    super(code, message, { cause });
    this.status = status;
    this.reason = reason;
  }
}

export function kubeErrorCode(status: number, reason?: string): KubeErrorCode {
  if (status === 0 || status === 429 || status >= 500) return 'KUBE_UNAVAILABLE';
  if (status === 404) return 'KUBE_NOT_FOUND';
  if (status === 409) return reason === 'AlreadyExists' ? 'KUBE_ALREADY_EXISTS' : 'KUBE_CONFLICT';
  if (status === 410) return 'KUBE_GONE';
  if (status === 401) return 'KUBE_UNAUTHORIZED';
  if (status === 403) return 'KUBE_FORBIDDEN';
  if (status === 400 || status === 415 || status === 422) return 'KUBE_INVALID';
  return 'KUBE_API_ERROR';
}

export const isKubeNotFound = (err: unknown): boolean => err instanceof KubeApiError && err.code === 'KUBE_NOT_FOUND';
export const isKubeConflict = (err: unknown): boolean => err instanceof KubeApiError && err.code === 'KUBE_CONFLICT';
/** Worth retrying: the server was unreachable, overloaded, or failed internally. */
export const isKubeTransient = (err: unknown): boolean => err instanceof KubeApiError && err.code === 'KUBE_UNAVAILABLE';

export type PatchType = 'strategic' | 'merge' | 'json';

const PATCH_CONTENT_TYPE: Record<PatchType, string> = {
  strategic: 'application/strategic-merge-patch+json',
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
};

export interface KubeList<T> {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  /** Page size; pages are fetched and concatenated. */
  limit?: number;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
}

export class KubeClient {
  readonly config: KubeConfig;

  constructor(config: KubeConfig) {
    this.config = config;
  }

  get server(): string {
    const c = this.config.getCurrentCluster();
    if (!c) throw new NetError('KUBE_CONFIG', 'kubeconfig has no current cluster');
    return c.server.replace(/\/+$/, '');
  }

  async request<T>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, opts: RequestOptions = {}): Promise<T> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const { RequestContext, HttpMethod } = await import('./client-node.ts');
    const ctx = new RequestContext(url.toString(), HttpMethod[method]);
    await this.config.applySecurityAuthentication(ctx);
    const headers: Record<string, string> = { ...ctx.getHeaders(), Accept: 'application/json' };
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['Content-Type'] = opts.contentType ?? 'application/json';
    }
    let res;
    try {
      const dispatcher = ctx.getDispatcher();
      res = await fetch(url, {
        method,
        headers,
        ...(dispatcher ? { dispatcher } : {}),
        ...(body !== undefined ? { body } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw new KubeApiError('KUBE_UNAVAILABLE', 0, undefined, `${method} ${path}: ${(err as Error).message}`, err);
    }
    const text = await res.text();
    if (res.status >= 200 && res.status < 300) {
      try {
        return (text === '' ? undefined : JSON.parse(text)) as T;
      } catch (err) {
        throw new KubeApiError('KUBE_API_ERROR', res.status, undefined, `${method} ${path}: invalid JSON in response`, err);
      }
    }
    let reason: string | undefined;
    let message = `${res.status} ${res.statusText}`;
    try {
      const st = JSON.parse(text) as { kind?: string; reason?: string; message?: string };
      if (st.kind === 'Status') {
        reason = st.reason;
        if (st.message) message = st.message;
      }
    } catch {
      // not a Status object; keep the HTTP status line
    }
    throw new KubeApiError(kubeErrorCode(res.status, reason), res.status, reason, `${method} ${path}: ${message}`);
  }

  get<T extends KubernetesObject>(res: ResourceRef, name: string, namespace?: string, signal?: AbortSignal): Promise<T> {
    return this.request<T>('GET', resourcePath(res, { namespace, name }), signal ? { signal } : {});
  }

  /** Lists all objects (following `continue` pages) and returns the list's resourceVersion. */
  async list<T extends KubernetesObject>(res: ResourceRef, namespace?: string, opts: ListOptions = {}, signal?: AbortSignal): Promise<KubeList<T>> {
    const path = resourcePath(res, { namespace });
    const items: T[] = [];
    let cont: string | undefined;
    let last: KubeList<T>;
    do {
      last = await this.request<KubeList<T>>('GET', path, {
        query: { labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector, limit: opts.limit, continue: cont },
        ...(signal ? { signal } : {}),
      });
      items.push(...(last.items ?? []));
      cont = last.metadata?.continue || undefined;
    } while (cont);
    return { ...last, items };
  }

  create<T extends KubernetesObject>(res: ResourceRef, obj: T, namespace?: string): Promise<T> {
    return this.request<T>('POST', resourcePath(res, { namespace }), { body: obj });
  }

  replace<T extends KubernetesObject>(res: ResourceRef, obj: T, subresource?: string): Promise<T> {
    const ref = { namespace: obj.metadata?.namespace, name: obj.metadata?.name ?? '', subresource };
    return this.request<T>('PUT', resourcePath(res, ref), { body: obj });
  }

  delete(res: ResourceRef, name: string, namespace?: string): Promise<unknown> {
    return this.request('DELETE', resourcePath(res, { namespace, name }));
  }

  patch<T extends KubernetesObject>(res: ResourceRef, name: string, patch: unknown, opts: { namespace?: string; subresource?: string; type?: PatchType; signal?: AbortSignal } = {}): Promise<T> {
    return this.request<T>('PATCH', resourcePath(res, { namespace: opts.namespace, name, subresource: opts.subresource }), {
      body: patch,
      contentType: PATCH_CONTENT_TYPE[opts.type ?? 'strategic'],
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  }

  /** Strategic-merge PATCH of a Node. */
  patchNode<T extends KubernetesObject>(name: string, patch: unknown, signal?: AbortSignal): Promise<T> {
    return this.patch<T>(NODES, name, patch, signal ? { signal } : {});
  }

  /** Strategic-merge PATCH of a Node's status subresource (RBAC: nodes/status patch). */
  patchNodeStatus<T extends KubernetesObject>(name: string, patch: unknown, signal?: AbortSignal): Promise<T> {
    return this.patch<T>(NODES, name, patch, { subresource: 'status', ...(signal ? { signal } : {}) });
  }
}
