// Kubernetes objects for flanneld, kube-proxy and netpolicy: the API client,
// and Source<T> from the API, a manifest directory, or a fake. README.md
// beside this file says which to use when.
export { loadKubeConfig, KubeConfigError } from './config.ts';
export type { KubeConfigOptions } from './config.ts';
export {
  KubeClient,
  KubeApiError,
  ENDPOINTSLICES,
  NAMESPACES,
  NETWORKPOLICIES,
  NODES,
  PODS,
  SERVICES,
  isKubeConflict,
  isKubeNotFound,
  isKubeTransient,
  kubeErrorCode,
  resourcePath,
} from './client.ts';
export type { KubeErrorCode, KubeList, ListOptions, ObjectRef, PatchType, ResourceRef } from './client.ts';
export { SourceCache } from './source.ts';
export type { Source, SourceHandlers, SyncReason } from './source.ts';
export { ObjectSource, apiSource, nodeSource } from './api-source.ts';
export type { NodeSource, SourceOptions } from './api-source.ts';
export { ManifestDir } from './manifest-dir.ts';
export type { ManifestDirOptions, ManifestLog } from './manifest-dir.ts';
export { ManifestSyntaxError, isManifestName, parseManifest } from './manifest.ts';
export type { ManifestObject, ManifestProblem, ParsedManifest } from './manifest.ts';
export { DERIVED_MANAGED_BY, deriveEndpointSlices, endpointSlicesFor } from './endpoints.ts';
export { FakeSource } from './fake-source.ts';
export { KINDS, KIND_NAMES, LABEL_MANAGED_BY, LABEL_SERVICE_NAME, isKind, objectKey } from './types.ts';
export type * from './types.ts';
