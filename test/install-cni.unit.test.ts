// deploy/install-cni.sh without root: the DaemonSet's install step run
// against temp directories standing in for the host's /opt/cni/bin and
// /etc/cni/net.d. The "executable" is a small shell script that prints the
// name it was started as, so a test also sees that every name dispatches.
import { spawnSync } from 'node:child_process';
import { chmodSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const SCRIPT = resolve(import.meta.dirname, '../deploy/install-cni.sh');
const EXE = 'kube-netstack-cni';
const NAMES = ['flannel', 'bridge', 'host-local', 'loopback'];

let dir: string;
let src: string;
let bin: string;

const program = (version: string): string => `#!/bin/sh\necho "${version} $(basename "$0")"\n`;

function writeSource(version: string): void {
  writeFileSync(join(src, EXE), program(version), { mode: 0o755 });
}

function install(extraEnv: Record<string, string> = {}, what = 'plugins'): { code: number; out: string; err: string } {
  const r = spawnSync('sh', [SCRIPT, what], {
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', SRC_DIR: src, CNI_BIN_DIR: bin, ...extraEnv },
    encoding: 'utf8',
  });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

const inode = (p: string): string => {
  const st = statSync(p);
  return `${st.dev}:${st.ino}`;
};

const run = (p: string): string => spawnSync(p, [], { encoding: 'utf8' }).stdout.trim();

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'install-cni-'));
  src = join(dir, 'src');
  bin = join(dir, 'host/opt/cni/bin');
  mkdirSync(src);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('install-cni.sh plugins', () => {
  it('installs the executable once and every plugin name as a hard link to it, nothing else', () => {
    writeSource('v1');
    const r = install();
    expect(r.code).toBe(0);
    expect(readdirSync(bin).sort()).toEqual([EXE, ...NAMES].sort());
    const exe = join(bin, EXE);
    expect(statSync(exe).nlink).toBe(1 + NAMES.length);
    expect(statSync(exe).mode & 0o777).toBe(0o755);
    expect(readFileSync(exe, 'utf8')).toBe(program('v1'));
    for (const n of NAMES) {
      expect(inode(join(bin, n))).toBe(inode(exe));
      expect(run(join(bin, n))).toBe(`v1 ${n}`);
    }
  });

  it('leaves an identical installation alone', () => {
    writeSource('v1');
    install();
    const before = inode(join(bin, EXE));
    const r = install();
    expect(r.code).toBe(0);
    expect(r.out.trim().split('\n')).toEqual([...NAMES.map((n) => `unchanged: ${join(bin, n)}`), `unchanged: ${join(bin, EXE)}`]);
    for (const n of [EXE, ...NAMES]) expect(inode(join(bin, n))).toBe(before);
  });

  it('an upgrade switches every name to a new inode and never writes into the old one', () => {
    writeSource('v1');
    install();
    // Stands in for a plugin that is running from the old file.
    const held = join(dir, 'held');
    linkSync(join(bin, 'bridge'), held);
    writeSource('v2');
    expect(install().code).toBe(0);
    expect(readFileSync(held, 'utf8')).toBe(program('v1'));
    const exe = join(bin, EXE);
    expect(inode(exe)).not.toBe(inode(held));
    for (const n of NAMES) {
      expect(inode(join(bin, n))).toBe(inode(exe));
      expect(run(join(bin, n))).toBe(`v2 ${n}`);
    }
    expect(statSync(held).nlink).toBe(1);
    expect(readdirSync(bin).sort()).toEqual([EXE, ...NAMES].sort());
  });

  it('replaces plugin files of an older install (regular files) and relinks a name that drifted', () => {
    mkdirSync(bin, { recursive: true });
    for (const n of NAMES) writeFileSync(join(bin, n), '#!/opt/kube-netstack/node\n// old bundle\n', { mode: 0o755 });
    writeSource('v1');
    install();
    rmSync(join(bin, 'loopback'));
    const r = install();
    expect(r.out).toContain(`installed: ${join(bin, 'loopback')} -> ${EXE}`);
    for (const n of NAMES) expect(run(join(bin, n))).toBe(`v1 ${n}`);
  });

  it('a failure before the switch leaves the old plugins in place and no temp file behind', () => {
    writeSource('v1');
    install();
    writeSource('v2');
    // `sync` (the fsync of the new executable) fails: the script must stop
    // before any name points at the new file.
    const fakeBin = join(dir, 'fakebin');
    mkdirSync(fakeBin);
    writeFileSync(join(fakeBin, 'sync'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
    const r = install({ PATH: `${fakeBin}:${process.env['PATH'] ?? '/usr/bin:/bin'}` });
    expect(r.code).not.toBe(0);
    expect(readdirSync(bin).sort()).toEqual([EXE, ...NAMES].sort());
    for (const n of NAMES) expect(run(join(bin, n))).toBe(`v1 ${n}`);
  });

  it('removes temp files that a killed earlier run left behind, and only old ones', () => {
    mkdirSync(bin, { recursive: true });
    const stale = join(bin, `.${EXE}.install.4242`);
    const fresh = join(bin, '.bridge.install.4343');
    writeFileSync(stale, 'half');
    writeFileSync(fresh, 'in progress elsewhere');
    const hourAgo = new Date(Date.now() - 3600_000);
    utimesSync(stale, hourAgo, hourAgo);
    writeSource('v1');
    expect(install().code).toBe(0);
    expect(readdirSync(bin).sort()).toEqual(['.bridge.install.4343', EXE, ...NAMES].sort());
  });

  it('PLUGINS selects the names; a missing executable is an error', () => {
    writeSource('v1');
    expect(install({ PLUGINS: 'bridge host-local' }).code).toBe(0);
    expect(readdirSync(bin).sort()).toEqual([EXE, 'bridge', 'host-local'].sort());
    rmSync(join(src, EXE));
    const r = install({ CNI_BIN_DIR: join(dir, 'empty') });
    expect(r.code).toBe(1);
    expect(r.err).toBe(`install-cni: ${join(src, EXE)} does not exist\n`);
  });
});

describe('install-cni.sh conf', () => {
  it('writes the conflist atomically and leaves an identical one alone', () => {
    const conf = join(dir, 'cni-conf.json');
    const confDir = join(dir, 'host/etc/cni/net.d');
    writeFileSync(conf, '{"name":"cbr0"}\n');
    chmodSync(conf, 0o600);
    const env = { CNI_CONF_SRC: conf, CNI_CONF_DIR: confDir };
    expect(install(env, 'conf').out).toBe(`installed: ${join(confDir, '10-flannel.conflist')}\n`);
    const target = join(confDir, '10-flannel.conflist');
    expect(readFileSync(target, 'utf8')).toBe('{"name":"cbr0"}\n');
    expect(statSync(target).mode & 0o777).toBe(0o644);
    expect(install(env, 'conf').out).toBe(`unchanged: ${target}\n`);
    // A changed ConfigMap replaces it.
    writeFileSync(conf, '{"name":"cbr1"}\n');
    expect(install(env, 'conf').out).toBe(`installed: ${target}\n`);
    expect(readFileSync(target, 'utf8')).toBe('{"name":"cbr1"}\n');
    expect(readdirSync(confDir)).toEqual(['10-flannel.conflist']);
  });

  it('rejects an unknown command', () => {
    const r = install({}, 'nodes');
    expect(r.code).toBe(2);
    expect(r.err).toBe('usage: install-cni.sh plugins|conf\n');
  });
});
