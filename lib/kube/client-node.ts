// The parts of @kubernetes/client-node the API path uses, in one module that
// config.ts, client.ts and api-source.ts import dynamically: a daemon
// reading a manifest directory never evaluates client-node, and the bundle
// keeps only these names of it (a dynamic import of the package itself
// would keep all of it).
export { HttpMethod, KubeConfig, ListWatch, RequestContext, Watch } from '@kubernetes/client-node';
