// Kubernetes API access shared by flanneld, kube-proxy and netpolicy.
export { loadKubeConfig, KubeConfigError } from './config.ts';
export type { KubeConfigOptions } from './config.ts';
export {
  KubeClient,
  KubeApiError,
  NODES,
  PODS,
  isKubeConflict,
  isKubeNotFound,
  isKubeTransient,
  kubeErrorCode,
  resourcePath,
} from './client.ts';
export type { KubeErrorCode, KubeList, ListOptions, ObjectRef, PatchType, ResourceRef } from './client.ts';
export { ObjectSource, nodeSource } from './source.ts';
export type { NodeSource, SourceHandlers, SourceOptions, SyncReason } from './source.ts';
export type { KubernetesObject, V1Node, V1NodeCondition, V1Pod } from '@kubernetes/client-node';
