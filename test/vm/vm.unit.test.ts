// The test VM's host-side pieces that need no VM: the initramfs archive
// format (read back with busybox's cpio, an independent reader) and the
// command script the guest runs.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { cpioNewc } from './cpio.ts';
import { checkModules, ensureKernel, type Kernel } from './kernel.ts';
import { _internal, shellQuote } from './vm.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'kn-vm-unit-'));
  dirs.push(d);
  return d;
}

describe('cpio newc writer', () => {
  test('busybox cpio (busybox-static, which the VM needs anyway) extracts dirs, files with modes and contents, and symlinks', () => {
    const d = tmp();
    const odd = Buffer.from([0, 1, 2, 255, 10]); // length 5: exercises the 4-byte padding
    const image = cpioNewc([
      { kind: 'dir', path: 'bin' },
      { kind: 'file', path: 'bin/tool', data: '#!/bin/sh\necho hi\n', mode: 0o755 },
      { kind: 'symlink', path: 'bin/sh', target: 'tool' },
      { kind: 'dir', path: 'lib' },
      { kind: 'file', path: 'lib/a.bin', data: odd },
      { kind: 'file', path: 'init', data: 'x' },
    ]);
    writeFileSync(join(d, 'img.cpio'), image);
    const out = join(d, 'out');
    execFileSync('sh', ['-c', `mkdir -p "${out}" && cd "${out}" && /bin/busybox cpio -i -d < ../img.cpio`], { stdio: 'pipe' });
    expect(readFileSync(join(out, 'bin/tool'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
    expect(statSync(join(out, 'bin/tool')).mode & 0o777).toBe(0o755);
    expect(readlinkSync(join(out, 'bin/sh'))).toBe('tool');
    expect(readFileSync(join(out, 'lib/a.bin'))).toEqual(odd);
    expect(readFileSync(join(out, 'init'), 'utf8')).toBe('x');
    const listing = execFileSync('/bin/busybox', ['cpio', '-t'], { input: image, stdio: 'pipe' }).toString().trim().split('\n');
    expect(listing).toEqual(['bin', 'bin/tool', 'bin/sh', 'lib', 'lib/a.bin', 'init']);
  });

  test('same entries, same bytes (the initramfs cache is keyed by its hash)', () => {
    const entries = [{ kind: 'file' as const, path: 'init', data: 'abc' }];
    expect(cpioNewc(entries).equals(cpioNewc(entries))).toBe(true);
    expect(cpioNewc(entries).length % 4).toBe(0);
  });

  test('refuses paths that escape the archive root', () => {
    expect(() => cpioNewc([{ kind: 'file', path: '../etc/passwd', data: '' }])).toThrow(/bad path/);
  });
});

describe('guest command script', () => {
  test('runs argv verbatim in cwd with a clean env plus KN_IN_VM and the caller env', () => {
    const d = tmp();
    const script = _internal.commandScript(['sh', '-c', 'printf "%s|" "$1" "$PWD" "$KN_IN_VM" "$FOO" "$HOSTONLY"', 'x', "it's \"quoted\" $HOME"], d, { FOO: 'a b' });
    writeFileSync(join(d, 'cmd.sh'), script);
    const out = execFileSync('sh', [join(d, 'cmd.sh')], { env: { ...process.env, HOSTONLY: 'leaked' } }).toString();
    expect(out).toBe(`it's "quoted" $HOME|${d}|1|a b||`);
  });

  test('rejects environment names the shell cannot carry', () => {
    expect(() => _internal.commandScript(['true'], '/', { 'A-B': '1' })).toThrow(/bad environment variable name/);
  });

  test('shellQuote round-trips through sh', () => {
    for (const s of ['plain', 'with space', "a'b", '$(x)', '']) {
      expect(execFileSync('sh', ['-c', `printf %s ${shellQuote(s)}`]).toString()).toBe(s);
    }
  });

  test('guest timing markers parse into uptimes', () => {
    expect([..._internal.parseTimes('mounts 3.5\nmodules 12.25\nbad\ncommand x\n')]).toEqual([
      ['mounts', 3.5],
      ['modules', 12.25],
    ]);
  });
});

describe('kernel cache', () => {
  test('a kernel package apt cannot get fails with VM_KERNEL naming the package, and leaves no cache behind', async () => {
    const cache = tmp();
    const saved = process.env['KN_VM_KERNEL_PACKAGE'];
    process.env['KN_VM_KERNEL_PACKAGE'] = 'linux-image-0.0.0-kn-none-amd64';
    try {
      await expect(ensureKernel(cache)).rejects.toMatchObject({ code: 'VM_KERNEL', message: expect.stringContaining('apt-get download linux-image-0.0.0-kn-none-amd64') });
    } finally {
      if (saved === undefined) delete process.env['KN_VM_KERNEL_PACKAGE'];
      else process.env['KN_VM_KERNEL_PACKAGE'] = saved;
    }
    expect(execFileSync('ls', ['-A', cache]).toString()).toBe('');
  });

  test('checkModules names every listed module the package has neither as a module nor built in', async () => {
    const root = tmp();
    const dir = join(root, 'lib/modules/9.9.9-test');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'modules.dep'), 'kernel/net/ipv4/ipvs/ip_vs.ko: kernel/lib/libcrc32c.ko\nkernel/lib/libcrc32c.ko:\nkernel/drivers/net/dummy.ko:\n');
    writeFileSync(join(dir, 'modules.builtin'), 'kernel/net/bridge/bridge.ko\n');
    const kernel: Kernel = { package: 'linux-image-9.9.9-test', release: '9.9.9-test', root, vmlinuz: '', bootImage: '' };
    await expect(checkModules(kernel, ['ip_vs', 'dummy', 'bridge', 'libcrc32c'])).resolves.toBeUndefined();
    await expect(checkModules(kernel, ['ip_vs', 'sctp', 'ip-vs-nope'])).rejects.toMatchObject({
      code: 'VM_MODULE_MISSING',
      message: 'kernel package linux-image-9.9.9-test has no module sctp, ip-vs-nope (test/vm/modules.txt)',
    });
  });
});
