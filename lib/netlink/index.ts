export * from './handle.ts';
export * from './link.ts';
export * from './addr.ts';
export * from './route.ts';
export * from './neigh.ts';
export * from './mac.ts';
export { NetlinkConn, DumpInterruptedError } from './conn.ts';
export * as rt from './constants.ts';
