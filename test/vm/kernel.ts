// The kernel of the test VM: Debian's standard kernel, the package that
// linux-image-amd64 depends on (linux-image-6.1.0-NN-amd64 on bookworm),
// fetched with `apt-get download`, unpacked with `dpkg -x` and indexed with
// `depmod -b` in a cache directory. Never installed. Also the initramfs
// (busybox-static, init.sh and the virtio/9p modules), cached beside it.
//
// Both are built in a private temp directory and renamed into place, so
// concurrent test runs never see a half-made cache; the loser of a race
// throws its copy away.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpioNewc, type CpioEntry } from './cpio.ts';
import { VmError } from './errors.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = join(HERE, '..', '..');

/** The metapackage whose dependency names the kernel package. */
export const KERNEL_METAPACKAGE = 'linux-image-amd64';
/** The busybox the initramfs carries; must be statically linked (Debian's busybox-static). */
export const BUSYBOX = '/bin/busybox';
/** Modules PID 1 needs before it can mount the root: virtio PCI transport, 9p, overlay. */
const STAGE1_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay'];

export interface Kernel {
  /** Debian package name, e.g. linux-image-6.1.0-57-amd64. */
  readonly package: string;
  /** Kernel release (uname -r), e.g. 6.1.0-57-amd64. */
  readonly release: string;
  /** Root of the unpacked package: boot/, lib/modules/<release>/ (modprobe -d takes this). */
  readonly root: string;
  readonly vmlinuz: string;
  /**
   * The uncompressed ELF kernel when the package's config has CONFIG_PVH:
   * qemu boots it directly (PVH entry), skipping the BIOS and the XZ
   * decompression, which under emulation cost ~13 s per boot. Else vmlinuz.
   */
  readonly bootImage: string;
}

export function defaultCacheDir(): string {
  return process.env['KN_VM_CACHE'] ?? join(REPO_ROOT, 'node_modules', '.cache', 'vm');
}

interface ExecResult {
  stdout: string;
  stderr: string;
}

function exec(file: string, args: readonly string[], opts: { cwd?: string; what: string; code?: 'VM_KERNEL' | 'VM_TOOL_MISSING' }): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: opts.cwd, maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve({ stdout, stderr });
      const e = err as NodeJS.ErrnoException & { code?: unknown };
      if (e.code === 'ENOENT') {
        return reject(new VmError('VM_TOOL_MISSING', `${opts.what}: ${file} is not installed`, { cause: err }));
      }
      const cmd = [file, ...args].join(' ');
      reject(new VmError(opts.code ?? 'VM_KERNEL', `${opts.what}: \`${cmd}\` failed: ${(stderr || err.message).trim()}`, { cause: err }));
    });
  });
}

/** The kernel package linux-image-amd64 depends on (KN_VM_KERNEL_PACKAGE overrides). */
export async function resolveKernelPackage(): Promise<string> {
  const forced = process.env['KN_VM_KERNEL_PACKAGE'];
  if (forced) return forced;
  const { stdout } = await exec('apt-cache', ['depends', KERNEL_METAPACKAGE], { what: `resolving the package ${KERNEL_METAPACKAGE} depends on` });
  const m = /^\s*Depends:\s*(linux-image-\S+)\s*$/m.exec(stdout);
  if (!m?.[1]) {
    throw new VmError('VM_KERNEL', `apt-cache depends ${KERNEL_METAPACKAGE} names no linux-image-* package (is the Debian archive in the apt sources? run apt-get update):\n${stdout.trim()}`);
  }
  return m[1];
}

function cacheComplete(root: string, release: string): boolean {
  return existsSync(join(root, 'boot', `vmlinuz-${release}`)) && existsSync(join(root, 'lib', 'modules', release, 'modules.dep'));
}

/**
 * The unpacked kernel, fetched on first use: `apt-get download <package>`,
 * `dpkg -x`, `depmod -b`, all in a temp directory renamed into
 * `<cacheDir>/<release>` when complete. Idempotent and safe to race.
 */
export async function ensureKernel(cacheDir = defaultCacheDir()): Promise<Kernel> {
  const pkg = await resolveKernelPackage();
  const release = pkg.replace(/^linux-image-/, '');
  const root = join(cacheDir, release);
  const vmlinuz = join(root, 'boot', `vmlinuz-${release}`);
  if (!cacheComplete(root, release)) await fetchKernel(cacheDir, pkg, release, root);
  return { package: pkg, release, root, vmlinuz, bootImage: await ensurePvhImage(root, release, vmlinuz) };
}

async function fetchKernel(cacheDir: string, pkg: string, release: string, root: string): Promise<void> {

  await mkdir(cacheDir, { recursive: true });
  const tmp = await mkdtemp(join(cacheDir, `.tmp-${release}-`));
  try {
    await exec('apt-get', ['download', pkg], { cwd: tmp, what: `downloading the kernel package ${pkg}` });
    const deb = (await readdir(tmp)).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
    if (!deb) throw new VmError('VM_KERNEL', `apt-get download ${pkg} left no ${pkg}_*.deb in ${tmp}`);
    const unpacked = join(tmp, 'root');
    await exec('dpkg', ['-x', join(tmp, deb), unpacked], { what: `unpacking ${deb}` });
    await exec('depmod', ['-b', unpacked, release], { what: `indexing the modules of ${pkg}` });
    await writeFile(join(unpacked, 'PACKAGE'), `${deb}\n`);
    if (!cacheComplete(unpacked, release)) throw new VmError('VM_KERNEL', `${deb} holds no boot/vmlinuz-${release} with modules`);
    try {
      await rename(unpacked, root);
    } catch (err) {
      // Another run got there first (ENOTEMPTY/EEXIST): use its copy.
      if (!cacheComplete(root, release)) throw err;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);

/** boot/vmlinux-<release> unpacked from the bzImage's XZ payload, when the kernel can boot by PVH. */
async function ensurePvhImage(root: string, release: string, vmlinuz: string): Promise<string> {
  const out = join(root, 'boot', `vmlinux-${release}`);
  if (existsSync(out)) return out;
  const config = await readFile(join(root, 'boot', `config-${release}`), 'utf8').catch(() => '');
  if (!/^CONFIG_PVH=y$/m.test(config)) return vmlinuz;
  const image = await readFile(vmlinuz);
  const at = image.indexOf(XZ_MAGIC);
  if (at < 0) return vmlinuz;
  const tmp = `${out}.${process.pid}.${Date.now()}.tmp`;
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn('xz', ['-dc', '--single-stream'], { stdio: ['pipe', 'pipe', 'ignore'] });
      const sink = createWriteStream(tmp);
      child.stdout.pipe(sink);
      child.once('error', reject);
      child.stdin.on('error', () => {}); // xz stops reading at the stream's end
      let code: number | null = null;
      let closed = false;
      const done = (): void => (code === 0 ? resolve() : reject(new Error(`xz exited ${code}`)));
      child.once('close', (c) => {
        code = c;
        if (closed) done();
      });
      sink.once('close', () => {
        closed = true;
        if (code !== null) done();
      });
      child.stdin.end(image.subarray(at));
    });
    const fh = await open(tmp, 'r');
    const head = Buffer.alloc(4);
    try {
      await fh.read(head, 0, 4, 0);
    } finally {
      await fh.close();
    }
    if (!head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) throw new Error('not an ELF image');
    await rename(tmp, out);
    return out;
  } catch {
    // No xz (xz-utils) or an unexpected image: boot the bzImage, only slower.
    await rm(tmp, { force: true });
    return vmlinuz;
  }
}

/** Module name as the kernel spells it: dashes become underscores. */
function modName(s: string): string {
  return s.replace(/-/g, '_');
}

/** Module name → path relative to lib/modules/<release>, with dependencies first (from modules.dep). */
async function moduleIndex(kernel: Kernel): Promise<{ deps: Map<string, string[]>; path: Map<string, string>; builtin: Set<string> }> {
  const dir = join(kernel.root, 'lib', 'modules', kernel.release);
  const deps = new Map<string, string[]>();
  const path = new Map<string, string>();
  for (const line of (await readFile(join(dir, 'modules.dep'), 'utf8')).split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const file = line.slice(0, colon);
    const name = modName(basename(file).replace(/\.ko(\.\w+)?$/, ''));
    path.set(name, file);
    deps.set(name, line.slice(colon + 1).trim().split(/\s+/).filter(Boolean).map((f) => modName(basename(f).replace(/\.ko(\.\w+)?$/, ''))));
  }
  const builtin = new Set<string>();
  const builtinFile = join(dir, 'modules.builtin');
  if (existsSync(builtinFile)) {
    for (const line of (await readFile(builtinFile, 'utf8')).split('\n')) if (line) builtin.add(modName(basename(line).replace(/\.ko$/, '')));
  }
  return { deps, path, builtin };
}

/** Throws VM_MODULE_MISSING naming every listed module the package has neither as a module nor built in. */
export async function checkModules(kernel: Kernel, names: readonly string[]): Promise<void> {
  const idx = await moduleIndex(kernel);
  const missing = names.filter((n) => !idx.path.has(modName(n)) && !idx.builtin.has(modName(n)));
  if (missing.length > 0) {
    throw new VmError('VM_MODULE_MISSING', `kernel package ${kernel.package} has no module ${missing.join(', ')} (test/vm/modules.txt)`);
  }
}

/** The module names of test/vm/modules.txt. */
export async function vmModules(): Promise<string[]> {
  const text = await readFile(join(HERE, 'modules.txt'), 'utf8');
  return text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean)
    .flatMap((l) => l.split(/\s+/));
}

async function assertStaticBusybox(): Promise<Buffer> {
  let bin: Buffer;
  try {
    bin = await readFile(BUSYBOX);
  } catch (err) {
    throw new VmError('VM_TOOL_MISSING', `the test VM's initramfs needs ${BUSYBOX} from Debian's busybox-static (apt-get install busybox-static)`, { cause: err });
  }
  // A dynamically linked ELF names its loader (PT_INTERP); the initramfs has no libc.
  if (bin.includes('/lib64/ld-linux-x86-64.so') || bin.includes('/lib/ld-linux')) {
    throw new VmError('VM_TOOL_MISSING', `${BUSYBOX} is dynamically linked; the test VM needs busybox-static (apt-get install busybox-static)`);
  }
  return bin;
}

/**
 * The initramfs for `kernel`: busybox, init.sh as /init and the stage-1
 * modules with a load order. Cached as <kernel.root>/initrd-<hash>.cpio,
 * the hash covering everything in it.
 */
export async function ensureInitramfs(kernel: Kernel): Promise<string> {
  const busybox = await assertStaticBusybox();
  const init = await readFile(join(HERE, 'init.sh'));
  const idx = await moduleIndex(kernel);
  const order: string[] = [];
  const visit = (name: string): void => {
    if (order.includes(name) || idx.builtin.has(name)) return;
    const deps = idx.deps.get(name);
    if (!deps) throw new VmError('VM_MODULE_MISSING', `kernel package ${kernel.package} has no module ${name}, which the initramfs needs`);
    // modules.dep lists the full closure, deepest last: load in reverse.
    for (const d of [...deps].reverse()) visit(d);
    order.push(name);
  };
  for (const m of STAGE1_MODULES) visit(m);

  const modDir = join(kernel.root, 'lib', 'modules', kernel.release);
  const mods = await Promise.all(order.map(async (m) => ({ name: basename(idx.path.get(m)!), data: await readFile(join(modDir, idx.path.get(m)!)) })));
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'proc', 'sys', 'run', 'newroot', 'lower', 'rw', 'lib', 'lib/kn-modules'].map((p): CpioEntry => ({ kind: 'dir', path: p })),
    { kind: 'file', path: 'bin/busybox', data: busybox, mode: 0o755 },
    { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
    { kind: 'file', path: 'init', data: init, mode: 0o755 },
    ...mods.map((m): CpioEntry => ({ kind: 'file', path: `lib/kn-modules/${m.name}`, data: m.data })),
    { kind: 'file', path: 'lib/kn-modules/order', data: mods.map((m) => m.name).join('\n') + '\n' },
  ];
  const image = cpioNewc(entries);
  const hash = createHash('sha256').update(image).digest('hex').slice(0, 16);
  const file = join(kernel.root, `initrd-${hash}.cpio`);
  if (existsSync(file)) return file;
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, image);
  await rename(tmp, file);
  return file;
}
