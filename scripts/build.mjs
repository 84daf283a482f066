// Bundles every executable into one file dist/bin/<name> that needs only
// `node` on PATH: the code (CommonJS, minified) plus the native addons it
// uses as embedded blobs (see lib/sys/native.ts). Plugins carry a marker
// line so that a bridge running our host-local can do so in-process.
import { build, transformSync } from 'esbuild';
import { createHash } from 'node:crypto';
import { brotliCompressSync } from 'node:zlib';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const { platform, arch } = process;

const natives = {
  koffi: require.resolve(`@koromix/koffi-${platform}-${arch}/${platform}_${arch}/koffi.node`),
  netlink: require.resolve(`netlink/prebuilds/${platform}-${arch}/node.napi.node`),
};
// The addons travel in a comment block at the end of each executable (a
// string literal of that size costs V8 ~20 ms to allocate at every start; a
// comment is only skipped; brotli keeps it at ~300 KiB). The code knows just name → hash; a run whose
// cached copy exists only stats it, a first run reads the block back.
const hashes = {};
const blobLines = ['/*KN-NATIVE'];
for (const [k, p] of Object.entries(natives)) {
  const bytes = readFileSync(p);
  hashes[k] = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  blobLines.push(`${k}:${hashes[k]}:${brotliCompressSync(bytes).toString('base64')}`);
}
blobLines.push('KN-NATIVE*/');
const blobBlock = '\n' + blobLines.join('\n') + '\n';

const targets = [
  { name: 'bridge', entry: 'plugins/bridge/main.ts', plugin: true },
  { name: 'host-local', entry: 'plugins/host-local/main.ts', plugin: true },
  { name: 'loopback', entry: 'plugins/loopback/main.ts', plugin: true },
  { name: 'flannel', entry: 'plugins/flannel/main.ts', plugin: true },
  { name: 'flanneld', entry: 'flanneld/main.ts', plugin: false },
  { name: 'kube-proxy', entry: 'kube-proxy/main.ts', plugin: false },
  { name: 'netpolicy', entry: 'netpolicy/main.ts', plugin: false },
];

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

// The start-up stub (see scripts/loader.cjs), minified.
const loader = transformSync(readFileSync(join(root, 'scripts/loader.cjs'), 'utf8'), { minify: true, loader: 'js' }).code.trim();

const only = process.argv.slice(2);
mkdirSync(join(root, 'dist/bin'), { recursive: true });
// The repository is an ES module package; the executables are CommonJS (as
// they are once copied to /opt/cni/bin, outside any package scope).
writeFileSync(join(root, 'dist/package.json'), '{"type": "commonjs"}\n');
const built = [];
for (const t of targets) {
  if (only.length && !only.includes(t.name)) continue;
  if (!existsSync(join(root, t.entry))) {
    console.error(`build: skipping ${t.name} (${t.entry} does not exist yet)`);
    continue;
  }
  const out = join(root, 'dist/bin', t.name);
  const head = [
    '#!/usr/bin/env node',
    ...(t.plugin ? [`// kube-netstack-plugin: ${t.name}`] : [`// kube-netstack: ${t.name}`]),
    loader,
  ].join('\n');
  const res = await build({
    entryPoints: [join(root, t.entry)],
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
      __KN_NATIVE__: JSON.stringify(hashes),
    },
    // Only the addons we embed are native; everything else is plain JS.
    external: [],
    plugins: [etcdProtoPlugin],
  });
  const program = res.outputFiles[0].text;
  const commented = program.split('\n').map((l) => '//' + l).join('\n');
  writeFileSync(out, `${head}\n//KN-MAIN-BEGIN\n${commented}\n//KN-MAIN-END\n${blobBlock}`);
  chmodSync(out, 0o755);
  built.push(`${t.name} (${(statSync(out).size / 1024).toFixed(0)} KiB)`);
}
console.error(`build: ${built.join(', ')}`);
