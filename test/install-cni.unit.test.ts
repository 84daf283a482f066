// netstack install-cni without root: the DaemonSet's install step run
// against temp directories standing in for the host's /opt/cni/bin and
// /etc/cni/net.d. The "executable" is a small shell script that prints the
// name it was started as, so a test also sees that every name dispatches.
import { spawnSync } from 'node:child_process';
import { linkSync, mkdirSync, renameSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BACKUP_DIR, CNI_EXECUTABLE as EXE, CNI_PLUGINS, DEFAULT_CONFLIST, installCni, installCniCommand, restoreCni } from '../netstack/install-cni.ts';
import type { InstallCniOptions } from '../netstack/install-cni.ts';

const NAMES = [...CNI_PLUGINS];

let dir: string;
let src: string;
let bin: string;
let confDir: string;
let lines: string[];

const program = (version: string): string => `#!/bin/sh\necho "${version} $(basename "$0")"\n`;
const writeSource = (version: string): void => writeFileSync(join(src, EXE), program(version), { mode: 0o755 });
const install = (o: Partial<InstallCniOptions> = {}) => installCni({ binDir: bin, confDir, srcDir: src, log: (l) => lines.push(l), ...o });
const inode = (p: string): string => {
  const st = statSync(p);
  return `${st.dev}:${st.ino}`;
};
const run = (p: string): string => spawnSync(p, [], { encoding: 'utf8' }).stdout.trim();
/** What a directory holds, apart from the backup directory. */
const visible = (d: string): string[] => readdirSync(d).filter((n) => n !== BACKUP_DIR).sort();

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'install-cni-'));
  src = join(dir, 'src');
  bin = join(dir, 'host/opt/cni/bin');
  confDir = join(dir, 'host/etc/cni/net.d');
  lines = [];
  mkdirSync(src);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('install-cni: plugins', () => {
  it('installs the executable once and every plugin name as a hard link to it, nothing else', async () => {
    writeSource('v1');
    await install({ skipConf: true });
    expect(visible(bin)).toEqual([EXE, ...NAMES].sort());
    const exe = join(bin, EXE);
    expect(statSync(exe).nlink).toBe(1 + NAMES.length);
    expect(statSync(exe).mode & 0o777).toBe(0o755);
    expect(readFileSync(exe, 'utf8')).toBe(program('v1'));
    for (const n of NAMES) {
      expect(inode(join(bin, n))).toBe(inode(exe));
      expect(run(join(bin, n))).toBe(`v1 ${n}`);
    }
    expect(readdirSync(dir + '/host')).toEqual(['opt']);
  });

  it('leaves an identical installation alone', async () => {
    writeSource('v1');
    await install({ skipConf: true });
    const before = inode(join(bin, EXE));
    lines = [];
    const r = await install({ skipConf: true });
    expect(r.changed).toEqual([]);
    expect(lines).toEqual([...NAMES.map((n) => `unchanged: ${join(bin, n)}`), `unchanged: ${join(bin, EXE)}`]);
    for (const n of [EXE, ...NAMES]) expect(inode(join(bin, n))).toBe(before);
  });

  it('an upgrade switches every name to a new inode and never writes into the old one', async () => {
    writeSource('v1');
    await install({ skipConf: true });
    // Stands in for a plugin that is running from the old file.
    const held = join(dir, 'held');
    linkSync(join(bin, 'bridge'), held);
    writeSource('v2');
    await install({ skipConf: true });
    expect(readFileSync(held, 'utf8')).toBe(program('v1'));
    const exe = join(bin, EXE);
    expect(inode(exe)).not.toBe(inode(held));
    for (const n of NAMES) {
      expect(inode(join(bin, n))).toBe(inode(exe));
      expect(run(join(bin, n))).toBe(`v2 ${n}`);
    }
    expect(statSync(held).nlink).toBe(1);
    expect(visible(bin)).toEqual([EXE, ...NAMES].sort());
  });

  it('relinks a name that went missing', async () => {
    writeSource('v1');
    await install({ skipConf: true });
    rmSync(join(bin, 'loopback'));
    lines = [];
    await install({ skipConf: true });
    expect(lines).toContain(`installed: ${join(bin, 'loopback')} -> ${EXE}`);
    for (const n of NAMES) expect(run(join(bin, n))).toBe(`v1 ${n}`);
  });

  it('a failure before the switch leaves the old plugins in place and no temp file behind', async () => {
    writeSource('v1');
    await install({ skipConf: true });
    // The new "executable" cannot be read (a directory): the copy fails before any name moves.
    rmSync(join(src, EXE));
    mkdirSync(join(src, EXE));
    await expect(install({ skipConf: true })).rejects.toMatchObject({ code: 'IO_FAILURE' });
    expect(visible(bin)).toEqual([EXE, ...NAMES].sort());
    for (const n of NAMES) expect(run(join(bin, n))).toBe(`v1 ${n}`);
  });

  it('removes temp files that a killed earlier run left behind, and only old ones', async () => {
    mkdirSync(bin, { recursive: true });
    const stale = join(bin, `.${EXE}.install.4242.abcd`);
    const fresh = join(bin, '.bridge.install.4343.beef');
    writeFileSync(stale, 'half');
    writeFileSync(fresh, 'in progress elsewhere');
    const hourAgo = new Date(Date.now() - 3600_000);
    utimesSync(stale, hourAgo, hourAgo);
    writeSource('v1');
    await install({ skipConf: true });
    expect(visible(bin)).toEqual(['.bridge.install.4343.beef', EXE, ...NAMES].sort());
  });

  it('plugins selects the names; an unknown name or a missing executable is an error naming it', async () => {
    writeSource('v1');
    await install({ skipConf: true, plugins: ['bridge', 'host-local'] });
    expect(visible(bin)).toEqual([EXE, 'bridge', 'host-local'].sort());
    await expect(install({ skipConf: true, plugins: ['portmap'] })).rejects.toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringContaining('"portmap"') });
    rmSync(join(src, EXE));
    await expect(install({ skipConf: true, binDir: join(dir, 'empty') })).rejects.toMatchObject({
      code: 'INSTALL_SOURCE_NOT_FOUND',
      message: `install-cni: ${join(src, EXE)} does not exist`,
    });
  });
});

describe('install-cni: conflist', () => {
  it('writes the conflist atomically with mode 0644 and leaves an identical one alone', async () => {
    const conf = join(dir, 'cni-conf.json');
    writeFileSync(conf, '{"name":"cbr0"}\n', { mode: 0o600 });
    await install({ skipPlugins: true, confSource: conf });
    const dst = join(confDir, '10-flannel.conflist');
    expect(readFileSync(dst, 'utf8')).toBe('{"name":"cbr0"}\n');
    expect(statSync(dst).mode & 0o777).toBe(0o644);
    const before = inode(dst);
    lines = [];
    await install({ skipPlugins: true, confSource: conf });
    expect(lines).toEqual([`unchanged: ${dst}`]);
    expect(inode(dst)).toBe(before);
    expect(visible(confDir)).toEqual(['10-flannel.conflist']);
  });

  it('removes stale temp files of the conflist that a killed run left, and only old ones of that file', async () => {
    mkdirSync(confDir, { recursive: true });
    const names = ['.10-flannel.conflist.0a1b2c3d4e5f.tmp', '.10-flannel.conflist.ffffffffffff.tmp', '.99-other.conf.0a1b2c3d4e5f.tmp'];
    for (const n of names) writeFileSync(join(confDir, n), '{');
    const hourAgo = new Date(Date.now() - 3600_000);
    for (const n of [names[0]!, names[2]!]) utimesSync(join(confDir, n), hourAgo, hourAgo);
    await install({ skipPlugins: true });
    expect(visible(confDir)).toEqual([names[1]!, names[2]!, '10-flannel.conflist'].sort());
  });

  it("without a source it writes upstream's cbr0 conflist, under --conf-name", async () => {
    await install({ skipPlugins: true, confName: '20-ours.conflist' });
    expect(JSON.parse(readFileSync(join(confDir, '20-ours.conflist'), 'utf8'))).toEqual(JSON.parse(DEFAULT_CONFLIST));
  });

  it('refuses a source that is not JSON and keeps the installed conflist', async () => {
    const conf = join(dir, 'cni-conf.json');
    writeFileSync(conf, '{"name":"cbr0"}\n');
    await install({ skipPlugins: true, confSource: conf });
    writeFileSync(conf, '{"name": "cbr0", ');
    await expect(install({ skipPlugins: true, confSource: conf })).rejects.toMatchObject({ code: 'DECODING_FAILURE' });
    expect(readFileSync(join(confDir, '10-flannel.conflist'), 'utf8')).toBe('{"name":"cbr0"}\n');
    expect(visible(confDir)).toEqual(['10-flannel.conflist']);
  });

  it('installs the plugins before the conflist (the runtime calls a network ready once it sees its config)', async () => {
    writeSource('v1');
    await install();
    const order = lines.filter((l) => l.startsWith('installed: ')).map((l) => l.split(' ')[1]);
    expect(order.at(-1)).toBe(join(confDir, '10-flannel.conflist'));
    expect(order.slice(0, -1).every((p) => p!.startsWith(bin))).toBe(true);
  });
});

describe('install-cni: swap with upstream flannel and roll back', () => {
  /** A node as upstream flannel left it: its flannel, the reference plugins, its conflist. */
  function upstreamNode(): Record<string, string> {
    mkdirSync(bin, { recursive: true });
    mkdirSync(confDir, { recursive: true });
    const files: Record<string, string> = {};
    for (const n of [...NAMES, 'portmap']) {
      files[n] = `#!/bin/sh\necho "upstream $(basename "$0")"\n`;
      writeFileSync(join(bin, n), files[n]!, { mode: 0o755 });
    }
    writeFileSync(join(confDir, '10-flannel.conflist'), '{"name":"cbr0","upstream":true}\n');
    writeFileSync(join(confDir, '99-loopback.conf'), '{"name":"lo"}\n');
    return files;
  }

  it('install keeps what it replaced; restore puts every file back and removes only ours', async () => {
    upstreamNode();
    const before = Object.fromEntries([...NAMES, 'portmap'].map((n) => [n, inode(join(bin, n))]));
    writeSource('v1');
    const conf = join(dir, 'cni-conf.json');
    writeFileSync(conf, '{"name":"cbr0","ours":true}\n');
    const r = await install({ confSource: conf });
    expect([...r.backedUp].sort()).toEqual([...NAMES.map((n) => join(bin, n)), join(confDir, '10-flannel.conflist')].sort());
    for (const n of NAMES) expect(run(join(bin, n))).toBe(`v1 ${n}`);
    expect(run(join(bin, 'portmap'))).toBe('upstream portmap');
    expect(readFileSync(join(confDir, '10-flannel.conflist'), 'utf8')).toBe('{"name":"cbr0","ours":true}\n');

    // An upgrade of ours in between does not overwrite the saved upstream files.
    writeSource('v2');
    expect((await install({ confSource: conf })).backedUp).toEqual([]);

    lines = [];
    const back = await restoreCni({ binDir: bin, confDir, log: (l) => lines.push(l) });
    expect(back.removed).toEqual([join(bin, EXE)]);
    expect(readdirSync(bin).sort()).toEqual([...NAMES, 'portmap'].sort());
    expect(readdirSync(confDir).sort()).toEqual(['10-flannel.conflist', '99-loopback.conf']);
    // the very files (inodes) upstream had
    for (const n of [...NAMES, 'portmap']) {
      expect(inode(join(bin, n)), n).toBe(before[n]);
      expect(run(join(bin, n))).toBe(`upstream ${n}`);
    }
    expect(readFileSync(join(confDir, '10-flannel.conflist'), 'utf8')).toBe('{"name":"cbr0","upstream":true}\n');
    // the conflist goes back first: no new pod is started with our plugins while they are being removed
    expect(lines[0]).toBe(`restored: ${join(confDir, '10-flannel.conflist')}`);
    // and a second restore has nothing left to do
    expect(await restoreCni({ binDir: bin, confDir })).toEqual({ restored: [], removed: [], kept: [] });
  });

  it('on a node that had nothing, restore removes everything install added', async () => {
    writeSource('v1');
    await install();
    await restoreCni({ binDir: bin, confDir });
    expect(readdirSync(bin)).toEqual([]);
    expect(readdirSync(confDir)).toEqual([]);
  });

  it('restore keeps a plugin name that someone else replaced after the install', async () => {
    writeSource('v1');
    await install({ skipConf: true });
    const other = join(dir, 'other-bridge');
    writeFileSync(other, '#!/bin/sh\necho "someone else"\n', { mode: 0o755 });
    // e.g. the containernetworking-plugins package upgraded after our install
    renameSync(other, join(bin, 'bridge'));
    const r = await restoreCni({ binDir: bin, confDir, skipConf: true });
    expect(r.kept).toEqual([join(bin, 'bridge')]);
    expect(readdirSync(bin)).toEqual(['bridge']);
    expect(run(join(bin, 'bridge'))).toBe('someone else');
  });
});

describe('the install-cni command', () => {
  async function cli(args: string[]): Promise<{ out: string; err: string; exitCode: number }> {
    let out = '';
    let err = '';
    const saved = process.exitCode;
    process.exitCode = 0;
    try {
      await installCniCommand({ out: (s) => (out += s), err: (s) => (err += s) })
        .exitOverride()
        .parseAsync(args, { from: 'user' });
      return { out, err, exitCode: Number(process.exitCode ?? 0) };
    } finally {
      process.exitCode = saved;
    }
  }

  it('--bin-dir and --conf-dir install both; --restore takes them back out', async () => {
    writeSource('v1');
    const r = await cli(['--bin-dir', bin, '--conf-dir', confDir, '--src-dir', src]);
    expect(r).toMatchObject({ err: '', exitCode: 0 });
    expect(r.out).toContain(`installed: ${join(confDir, '10-flannel.conflist')}\n`);
    expect(visible(bin)).toEqual([EXE, ...NAMES].sort());
    expect((await cli(['--bin-dir', bin, '--conf-dir', confDir, '--restore'])).exitCode).toBe(0);
    expect(readdirSync(bin)).toEqual([]);
  });

  it('a failure is one line on stderr and exit code 1', async () => {
    const r = await cli(['--bin-dir', bin, '--conf-dir', confDir, '--src-dir', src, '--skip-conf']);
    expect(r.err).toBe(`install-cni: ${join(src, EXE)} does not exist\n`);
    expect(r.exitCode).toBe(1);
  });

  it('--bin-dir and --conf-dir are required unless their part is skipped', async () => {
    expect(await cli(['--bin-dir', bin])).toEqual({ out: '', err: 'install-cni: --conf-dir required (or --skip-plugins / --skip-conf)\n', exitCode: 2 });
    expect(await cli(['--skip-conf'])).toMatchObject({ err: 'install-cni: --bin-dir required (or --skip-plugins / --skip-conf)\n', exitCode: 2 });
    // each of flannel's two init containers mounts only its own directory
    writeSource('v1');
    expect(await cli(['--bin-dir', bin, '--skip-conf', '--src-dir', src])).toMatchObject({ err: '', exitCode: 0 });
    expect(await cli(['--conf-dir', confDir, '--skip-plugins'])).toMatchObject({ err: '', exitCode: 0 });
    expect(visible(bin)).toEqual([EXE, ...NAMES].sort());
    expect(visible(confDir)).toEqual(['10-flannel.conflist']);
  });
});
