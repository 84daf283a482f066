export * from './handle.ts';
export * from './addr.ts';
export { NetlinkConn, DumpInterruptedError } from './conn.ts';
export * as rt from './constants.ts';
