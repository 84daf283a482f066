// The one version of every executable: package.json's, embedded by
// scripts/build.mjs as __KN_VERSION__; read from package.json when running
// from source (tests, tsx).
import { readFileSync } from 'node:fs';

declare const __KN_VERSION__: string | undefined;

function sourceVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0-unknown';
  }
}

/** e.g. "v0.1.0", as upstream's executables print theirs. */
export const VERSION: string = `v${typeof __KN_VERSION__ === 'string' ? __KN_VERSION__ : sourceVersion()}`;
