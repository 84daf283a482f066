// The part of Bun's `bun:ffi` module that lib/runtime/bun.ts uses (the
// project does not depend on bun-types; Node's tsc checks this file).
declare module 'bun:ffi' {
  type FFIType = 'i32' | 'u32' | 'i64_fast' | 'u64' | 'ptr' | 'void';
  interface FFIFunction {
    readonly args: readonly FFIType[];
    readonly returns: FFIType;
  }
  type Pointer = number & { readonly __pointer__: unique symbol };
  interface Library<Fns extends Record<string, FFIFunction>> {
    symbols: { [K in keyof Fns]: (...args: (number | bigint | NodeJS.TypedArray | Pointer | null)[]) => number };
    close(): void;
  }
  export function dlopen<Fns extends Record<string, FFIFunction>>(path: string, symbols: Fns): Library<Fns>;
  export function ptr(view: NodeJS.TypedArray, byteOffset?: number): Pointer;
  export const read: { i32(p: Pointer, byteOffset?: number): number };
}
