// runInVm: one command in a throwaway VM with Debian's standard kernel (so
// ip_vs, SCTP, bridge VLAN filtering, dummy, …), this machine's / as its
// read-only root over 9p, and no network device. The command's stdout,
// stderr and exit code come back through a second, writable 9p share.
//
//   const r = await runInVm({ command: ['ipvsadm', '-Ln'] });
//   r.code, r.stdout, r.stderr, r.timings
//
// Inside: root, KN_IN_VM=1, the same paths as here (the repo, node, the
// machine's tools), tmpfs on /tmp, /run (netns ok), /var/tmp and /dev/shm,
// the modules of modules.txt loaded, `lo` up. Nothing else is writable but
// $KN_VM_OUT, whose files come back in the result's `files`.
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmError } from './errors.ts';
import { checkModules, defaultCacheDir, ensureInitramfs, ensureKernel, vmModules, type Kernel } from './kernel.ts';

export { VmError } from './errors.ts';

export const QEMU = 'qemu-system-x86_64';

export interface VmRunOptions {
  /** argv of the command (resolved through PATH inside the VM). */
  readonly command: readonly string[];
  /** Working directory inside the VM (default: this process's cwd; the same path exists there). */
  readonly cwd?: string;
  /** Added to the guest's environment (PATH, HOME=/tmp/home, LANG, KN_IN_VM=1). */
  readonly env?: Readonly<Record<string, string>>;
  /** Whole VM, boot included (default 15 min, KN_VM_TIMEOUT_MS). qemu is killed by PID after it. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /** Live output of the command, as it is written in the guest (polled from the share). */
  readonly onStdout?: (chunk: string) => void;
  readonly onStderr?: (chunk: string) => void;
  /** Extra modules to load on top of modules.txt. */
  readonly modules?: readonly string[];
  readonly memoryMb?: number;
  readonly cpus?: number;
}

export interface VmTimings {
  /** Guest uptime when the root was mounted and the chroot set up (s). */
  readonly mountedS: number | undefined;
  /** Guest uptime when the modules of modules.txt were loaded: boot + module load (s). */
  readonly modulesS: number | undefined;
  /** Guest uptime when the command ended (s). */
  readonly commandEndS: number | undefined;
  /** Host wall time of the command alone, from the guest's uptimes (s). */
  readonly commandS: number | undefined;
  /** Host wall time from qemu's start to its exit (ms). */
  readonly totalMs: number;
}

export interface VmRunResult {
  /** Exit code of the command (128+n when killed by signal n). */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly timings: VmTimings;
  readonly kernel: string;
  /** Where qemu's console log was kept (only when the command failed). */
  readonly consoleLog: string | undefined;
  /** Files the command wrote under $KN_VM_OUT, by path relative to it (utf8). */
  readonly files: Readonly<Record<string, string>>;
}

/** Absolute path of an executable found on PATH, or undefined. */
function onPath(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = join(dir || '.', name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

const GUEST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Where the guest sees the run's file share ($KN_VM_OUT); the host returns what is written there. */
export const GUEST_OUT_DIR = '/run/kn-vm/files';

function commandScript(command: readonly string[], cwd: string, env: Readonly<Record<string, string>>): string {
  const vars = Object.entries({ PATH: GUEST_PATH, HOME: '/tmp/home', LANG: 'C.UTF-8', KN_IN_VM: '1', KN_VM_OUT: GUEST_OUT_DIR, ...env }).map(([k, v]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new VmError('VM_BOOT_FAILED', `runInVm: bad environment variable name ${JSON.stringify(k)}`);
    return shellQuote(`${k}=${v}`);
  });
  return [`cd ${shellQuote(cwd)} || exit 127`, `exec env -i ${vars.join(' ')} ${command.map(shellQuote).join(' ')}`, ''].join('\n');
}

function parseTimes(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v && Number.isFinite(Number(v))) m.set(k, Number(v));
  }
  return m;
}

/** Every file under `dir`, by relative path. */
async function readTree(dir: string, prefix = ''): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return files;
  }
  for (const e of entries) {
    const rel = prefix + e.name;
    if (e.isDirectory()) Object.assign(files, await readTree(join(dir, e.name), `${rel}/`));
    else if (e.isFile()) files[rel] = await readFile(join(dir, e.name), 'utf8');
  }
  return files;
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Follows a file the guest appends to, from `offset`; returns the new offset. */
async function drain(path: string, offset: number, sink: ((s: string) => void) | undefined): Promise<number> {
  if (!sink) return offset;
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return offset;
  }
  try {
    const { size } = await fh.stat();
    if (size <= offset) return offset;
    const buf = Buffer.alloc(size - offset);
    const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
    if (bytesRead > 0) sink(buf.subarray(0, bytesRead).toString('utf8'));
    return offset + bytesRead;
  } finally {
    await fh.close();
  }
}

const LOGS_KEPT = 20;

/** Copies a console log under <cache>/logs (gitignored), keeping the newest LOGS_KEPT. */
async function keepConsole(src: string): Promise<string | undefined> {
  if (!existsSync(src)) return undefined;
  const dir = join(defaultCacheDir(), 'logs');
  await mkdir(dir, { recursive: true });
  const dst = join(dir, `console-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}.log`);
  await copyFile(src, dst);
  const logs = (await readdir(dir)).filter((f) => f.startsWith('console-')).sort();
  for (const old of logs.slice(0, Math.max(0, logs.length - LOGS_KEPT))) await rm(join(dir, old), { force: true });
  return dst;
}

function tail(text: string, lines: number): string {
  return text.split('\n').slice(-lines).join('\n');
}

export interface PreparedVm {
  readonly kernel: Kernel;
  readonly initrd: string;
  readonly modules: readonly string[];
}

/** Kernel cache, initramfs and module list (checked against the package); cached after the first call. */
export async function prepareVm(extraModules: readonly string[] = []): Promise<PreparedVm> {
  const kernel = await ensureKernel();
  const modules = [...(await vmModules()), ...extraModules];
  await checkModules(kernel, modules);
  const initrd = await ensureInitramfs(kernel);
  return { kernel, initrd, modules };
}

export async function runInVm(opts: VmRunOptions): Promise<VmRunResult> {
  if (opts.command.length === 0) throw new VmError('VM_BOOT_FAILED', 'runInVm: empty command');
  const { kernel, initrd, modules } = await prepareVm(opts.modules);
  const timeoutMs = opts.timeoutMs ?? Number(process.env['KN_VM_TIMEOUT_MS'] ?? 15 * 60_000);
  const dir = await mkdtemp(join(tmpdir(), 'kn-vm-'));
  const out = join(dir, 'out');
  const consolePath = join(dir, 'console.log');
  try {
    await mkdir(join(out, 'files'), { recursive: true });
    await copyFile(new URL('./guest.sh', import.meta.url), join(out, 'guest.sh'));
    const moddir = shellQuote(kernel.root);
    const rel = shellQuote(kernel.release);
    await writeFile(join(out, 'vm.env'), `KN_VM_MODDIR=${moddir}\nKN_VM_KVER=${rel}\nKN_VM_MODULES=${shellQuote(modules.join(' '))}\nKN_VM_TIMEOUT_S=${Math.ceil(timeoutMs / 1000)}\n`);
    await writeFile(join(out, 'modprobe'), `#!/bin/sh\nexec /usr/sbin/modprobe -d ${moddir} -S ${rel} "$@"\n`, { mode: 0o755 });
    await writeFile(join(out, 'cmd.sh'), commandScript(opts.command, opts.cwd ?? process.cwd(), opts.env ?? {}));

    const append = ['console=ttyS0', 'panic=-1', 'oops=panic'];
    if (process.env['KN_VM_KERNEL_VERBOSE'] !== '1') append.push('quiet', 'loglevel=3');
    const args = [
      '-accel', 'tcg', '-cpu', 'max', '-smp', String(opts.cpus ?? 2), '-m', String(opts.memoryMb ?? 2048),
      '-nodefaults', '-no-user-config', '-nic', 'none', '-display', 'none', '-serial', 'stdio', '-no-reboot',
      '-kernel', kernel.bootImage, '-initrd', initrd, '-append', append.join(' '),
      '-virtfs', 'local,path=/,mount_tag=root,readonly=on,multidevs=remap,security_model=none',
      '-virtfs', `local,path=${out},mount_tag=out,security_model=none`,
    ];
    const qemu = onPath(QEMU);
    if (!qemu) throw new VmError('VM_TOOL_MISSING', `${QEMU} is not installed (Debian package qemu-system-x86)`);
    // setpriv --pdeathsig: qemu dies with this process, even when it is
    // killed without running its exit handlers (a Ctrl-C'd test worker).
    const setpriv = onPath('setpriv');
    const [file, argv] = setpriv ? [setpriv, ['--pdeathsig', 'KILL', '--', qemu, ...args]] : [qemu, args];
    const consoleFh = await open(consolePath, 'w');
    const t0 = performance.now();
    let child;
    try {
      child = spawn(file, argv, { stdio: ['ignore', consoleFh.fd, consoleFh.fd] });
    } finally {
      await consoleFh.close();
    }
    const pid = child.pid;
    let why: 'timeout' | 'abort' | undefined;
    const kill = (): void => {
      if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    };
    const onExit = (): void => kill();
    process.once('exit', onExit);
    const timer = setTimeout(() => {
      why = 'timeout';
      kill();
    }, timeoutMs);
    const onAbort = (): void => {
      why = 'abort';
      kill();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();

    let spawnErr: NodeJS.ErrnoException | undefined;
    const exited = new Promise<void>((resolve) => {
      child.once('error', (err: NodeJS.ErrnoException) => {
        spawnErr = err;
        resolve();
      });
      child.once('close', () => resolve());
    });
    let outOff = 0;
    let errOff = 0;
    const follow = async (): Promise<void> => {
      outOff = await drain(join(out, 'stdout'), outOff, opts.onStdout);
      errOff = await drain(join(out, 'stderr'), errOff, opts.onStderr);
    };
    let done = false;
    void exited.then(() => (done = true));
    while (!done) {
      await Promise.race([exited, new Promise((r) => setTimeout(r, 500))]);
      await follow();
    }
    clearTimeout(timer);
    process.removeListener('exit', onExit);
    opts.signal?.removeEventListener('abort', onAbort);
    const totalMs = performance.now() - t0;

    if (spawnErr) {
      if (spawnErr.code === 'ENOENT') throw new VmError('VM_TOOL_MISSING', `${QEMU} is not installed (Debian package qemu-system-x86)`, { cause: spawnErr });
      throw new VmError('VM_BOOT_FAILED', `${QEMU} failed to start: ${spawnErr.message}`, { cause: spawnErr });
    }
    const rcText = await readIfExists(join(out, 'rc'));
    const consoleText = (await readIfExists(consolePath)) ?? '';
    if (why !== undefined || rcText === undefined || !/^\d+\s*$/.test(rcText)) {
      const kept = await keepConsole(consolePath);
      const stderr = (await readIfExists(join(out, 'stderr'))) ?? '';
      const what =
        why === 'timeout' ? `timed out after ${timeoutMs} ms` : why === 'abort' ? 'was aborted' : `ended (qemu exit ${child.exitCode ?? child.signalCode}) without the command's exit code`;
      const msg = `test VM running \`${opts.command.join(' ')}\` ${what}; console log: ${kept ?? '(none)'}\n--- console (tail) ---\n${tail(consoleText, 30)}${stderr ? `\n--- command stderr (tail) ---\n${tail(stderr, 30)}` : ''}`;
      throw new VmError(why === 'timeout' ? 'VM_TIMEOUT' : why === 'abort' ? 'VM_ABORTED' : 'VM_BOOT_FAILED', msg, { consoleLog: kept });
    }
    const code = Number(rcText.trim());
    const times = parseTimes((await readIfExists(join(out, 'times'))) ?? '');
    const modulesS = times.get('modules');
    const commandEndS = times.get('command');
    const timings: VmTimings = {
      mountedS: times.get('mounts'),
      modulesS,
      commandEndS,
      commandS: modulesS !== undefined && commandEndS !== undefined ? commandEndS - modulesS : undefined,
      totalMs,
    };
    const modErr = ((await readIfExists(join(out, 'modprobe.err'))) ?? '').trim();
    const stderr = ((await readIfExists(join(out, 'stderr'))) ?? '') + (modErr ? `\n[kn-vm] modprobe: ${modErr}\n` : '');
    return {
      code,
      stdout: (await readIfExists(join(out, 'stdout'))) ?? '',
      stderr,
      timings,
      kernel: kernel.release,
      consoleLog: code === 0 ? undefined : await keepConsole(consolePath),
      files: await readTree(join(out, 'files')),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** True inside the test VM (runInVm sets KN_IN_VM=1). */
export function inVm(): boolean {
  return process.env['KN_IN_VM'] === '1';
}

/** For the runner's summary line. */
export function describeTimings(t: VmTimings): string {
  const s = (v: number | undefined): string => (v === undefined ? '?' : v.toFixed(1));
  return `boot+modules ${s(t.modulesS)} s, command ${s(t.commandS)} s, whole VM ${(t.totalMs / 1000).toFixed(1)} s`;
}

// Exported for the unit test.
export const _internal = { commandScript, parseTimes };
