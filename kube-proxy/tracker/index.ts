// The proxy's model and change trackers: API objects in, per-family
// ServicePortMap and EndpointsMap out, with the set of changed services per
// sync for partial syncs.
export * from './types.ts';
export * from './service.ts';
export * from './endpoints.ts';
export * from './categorize.ts';
