// Loads the two native addons of the Node runtime (koffi for libc calls, the
// `netlink` package's socket binding). Its users are everything that runs on
// Node: lib/runtime/node.ts, and so the daemons (flanneld, kube-proxy,
// netpolicy) and the tests, plus the worker threads of flanneld's udp
// backend, which dlopen the file that nativeAddonPath names. The CNI plugins
// never load it: Bun compiles them against lib/runtime/bun.ts (bun:ffi), and
// scripts/build.mjs fails their build if this file reaches them.
//
// From node_modules in development; from blobs embedded by scripts/build.mjs
// in a daemon's bundle, which is then a single file needing only `node`. An
// embedded addon is written once, content-addressed, to a directory owned by
// the user and writable by nobody else, and dlopen'ed from there:
// KN_NATIVE_DIR if set, else /run/kube-netstack for root (under Kubernetes,
// in the daemon's own container) and $TMPDIR/kube-netstack-<uid> otherwise.
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zlib } from '../lazy.ts';

export type NativeName = 'koffi' | 'netlink' | 'raw-socket';

declare const __KN_NATIVE__: Partial<Record<NativeName, string>> | undefined;

const cache = new Map<NativeName, unknown>();

function devPath(name: NativeName): string {
  const require = createRequire(import.meta.url);
  const { platform, arch } = process;
  if (name === 'koffi') return require.resolve(`@koromix/koffi-${platform}-${arch}/${platform}_${arch}/koffi.node`);
  // Built at install (node-gyp, against the project's Node 24 headers): loads only on that Node's ABI.
  if (name === 'raw-socket') return require.resolve('raw-socket/build/Release/raw.node');
  return require.resolve(`netlink/prebuilds/${platform}-${arch}/node.napi.node`);
}

let dirChecked: string | undefined;
function cacheDir(): string {
  if (dirChecked) return dirChecked;
  const uid = process.getuid?.() ?? 0;
  const preferred = process.env['KN_NATIVE_DIR'] ?? (uid === 0 ? '/run/kube-netstack' : join(tmpdir(), `kube-netstack-${uid}`));
  mkdirSync(preferred, { recursive: true, mode: 0o700 });
  const st = statSync(preferred);
  if (st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw new Error(`native addon cache ${preferred} must be owned by uid ${uid} and not group/world writable`);
  }
  dirChecked = preferred;
  return preferred;
}

/** Reads `<name>:<hash>:<base64 of brotli>` from the comment block at the end of this executable. */
function readEmbedded(name: NativeName, hash: string): Buffer {
  const self = readFileSync(process.argv[1] ?? '', 'latin1');
  const start = self.lastIndexOf('/*KN-NATIVE\n');
  const key = `\n${name}:${hash}:`;
  const at = start < 0 ? -1 : self.indexOf(key, start);
  if (at < 0) throw new Error(`embedded ${name} addon not found in ${process.argv[1]}`);
  const end = self.indexOf('\n', at + key.length);
  return zlib().brotliDecompressSync(Buffer.from(self.slice(at + key.length, end), 'base64'));
}

/** `hash` is the sha256 prefix of the addon, as recorded by the build. */
function materialise(name: NativeName, hash: string): string {
  const dir = cacheDir();
  const path = join(dir, `${name}-${hash}.node`);
  try {
    const st = statSync(path);
    if (st.uid === (process.getuid?.() ?? 0) && (st.mode & 0o022) === 0) return path;
  } catch {
    // not there yet
  }
  const bytes = readEmbedded(name, hash);
  if (createHash('sha256').update(bytes).digest('hex').slice(0, 16) !== hash) {
    throw new Error(`embedded ${name} addon is corrupt`);
  }
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes, { mode: 0o500 });
  chmodSync(tmp, 0o500);
  renameSync(tmp, path);
  return path;
}

const paths = new Map<NativeName, string>();

/**
 * The on-disk file of a native addon: the materialised copy of the embedded
 * one in a bundled executable, else the one in node_modules. Worker threads
 * `process.dlopen` this same file (they cannot import this module's bundle).
 */
export function nativeAddonPath(name: NativeName): string {
  const known = paths.get(name);
  if (known) return known;
  const embedded = typeof __KN_NATIVE__ !== 'undefined' ? __KN_NATIVE__[name] : undefined;
  const path = embedded ? materialise(name, embedded) : devPath(name);
  paths.set(name, path);
  return path;
}

export function loadNative<T>(name: NativeName): T {
  const hit = cache.get(name);
  if (hit) return hit as T;
  const path = nativeAddonPath(name);
  const mod = { exports: {} as T };
  process.dlopen(mod, path);
  cache.set(name, mod.exports);
  return mod.exports;
}
