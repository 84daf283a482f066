// The image's file tree, built as a directory by scripts/image-tree.sh (what
// deploy/Dockerfile runs), for amd64 and arm64: upstream's paths, modes and
// links; every executable prints its --version on that architecture (the
// build host's natively, the other under qemu-user with Debian's cross
// libc as its sysroot); the native addons each daemon embeds are that
// architecture's and load on that architecture's Node; upstream's install
// entry points (`cp -f /flannel …`, `install-conf SRC DEST`) and ours
// (`netstack install-cni`) work from the tree.
import { spawnSync } from 'node:child_process';
import type { SpawnSyncReturns } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ROOT, UPSTREAM, containersOf, loadYaml } from './manifests.ts';

const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string }> };
/** The pinned Node of an architecture (package-lock.json). */
const pinnedNode = (nodeArch: string): string => lock.packages[`node_modules/node-linux-${nodeArch}`]!.version;
const HOST = process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : undefined;
if (HOST === undefined) throw new Error(`image-tree test: unsupported build host architecture ${process.arch}`);

/** Per Docker architecture: ELF e_machine, Node's name, and how the other architecture's programs are run. */
const ARCH = {
  amd64: { machine: 0x3e, node: 'x64', qemu: '/usr/bin/qemu-x86_64-static', sysroot: '/usr/x86_64-linux-gnu', debs: 'qemu-user-static libc6-amd64-cross libstdc++6-amd64-cross libgcc-s1-amd64-cross' },
  arm64: { machine: 0xb7, node: 'arm64', qemu: '/usr/bin/qemu-aarch64-static', sysroot: '/usr/aarch64-linux-gnu', debs: 'qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross' },
} as const;
type Arch = keyof typeof ARCH;

const DAEMONS = ['flanneld', 'kube-proxy', 'netpolicy', 'netstack'] as const;
const BIN = 'opt/kube-netstack/bin';

let work: string;
const trees = new Map<Arch, string>();

function sh(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; timeout?: number } = {}): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: opts.timeout ?? 120_000, env: opts.env ?? process.env });
  if (r.error) throw r.error;
  return r;
}

function mustSucceed(r: SpawnSyncReturns<string>, what: string): string {
  if (r.status !== 0) throw new Error(`${what} exited with ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'image-tree-'));
  for (const arch of ['amd64', 'arm64'] as const) {
    const args = ['scripts/image-tree.sh', '--arch', arch, '--out', join(work, arch)];
    if (arch !== HOST) {
      // The other architecture's build, made here from the same sources (as the Dockerfile's build stage does).
      const bin = join(work, `build-${arch}/bin`);
      mustSucceed(sh(join(ROOT, 'node_modules/.bin/node'), [join(ROOT, 'scripts/build.mjs'), '--arch', ARCH[arch].node, '--out', bin]), `build --arch ${ARCH[arch].node}`);
      args.push('--bin', bin);
    }
    mustSucceed(sh('bash', args.map((a, i) => (i === 0 ? join(ROOT, a) : a))), `image-tree.sh --arch ${arch}`);
    trees.set(arch, join(work, arch));
  }
}, 300_000);

afterAll(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

/** Every entry of a tree: path → "file 0755", "dir 0755" or "link -> target". */
function listing(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = lstatSync(p);
      const rel = `/${relative(root, p)}`;
      if (st.isSymbolicLink()) out[rel] = `link -> ${readlinkSync(p)}`;
      else if (st.isDirectory()) {
        out[rel] = `dir ${(st.mode & 0o7777).toString(8).padStart(4, '0')}`;
        walk(p);
      } else out[rel] = `file ${(st.mode & 0o7777).toString(8).padStart(4, '0')}`;
    }
  };
  walk(root);
  return out;
}

const elfMachine = (bytes: Buffer): number | undefined => (bytes.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])) ? bytes.readUInt16LE(18) : undefined);

/** The native addons a daemon carries (scripts/build.mjs's `/*KN-NATIVE` block: name:hash:base64(brotli)). */
function embeddedAddons(daemon: string): Map<string, Buffer> {
  const text = readFileSync(daemon, 'latin1');
  const start = text.lastIndexOf('\n/*KN-NATIVE\n');
  const end = text.lastIndexOf('\nKN-NATIVE*/');
  if (start < 0 || end < start) throw new Error(`${daemon}: no embedded native addons`);
  const addons = new Map<string, Buffer>();
  for (const line of text.slice(start + '\n/*KN-NATIVE\n'.length, end).split('\n')) {
    const [name, , data] = line.split(':');
    addons.set(name!, brotliDecompressSync(Buffer.from(data!, 'base64')));
  }
  return addons;
}

/** Runs a program of `arch` from the tree: natively on the build host's, else under qemu-user with the cross sysroot. */
function runOn(arch: Arch, program: string, args: readonly string[], env?: NodeJS.ProcessEnv): SpawnSyncReturns<string> {
  if (arch === HOST) return sh(program, args, env === undefined ? {} : { env });
  const q = ARCH[arch];
  if (!existsSync(q.qemu) || !existsSync(q.sysroot)) {
    throw new Error(`running ${arch} programs needs ${q.qemu} and ${q.sysroot}: apt-get install ${q.debs} (scripts/setup.sh installs them)`);
  }
  return sh(q.qemu, ['-L', q.sysroot, program, ...args], { timeout: 180_000, ...(env === undefined ? {} : { env }) });
}

for (const arch of ['amd64', 'arm64'] as const) {
  describe(`${arch} image tree${arch === HOST ? '' : ' (under qemu-user)'}`, () => {
    const tree = (): string => trees.get(arch)!;

    test("upstream's paths, our executables, modes and links, and nothing else", () => {
      expect(listing(tree())).toEqual({
        '/flannel': `link -> ${BIN}/kube-netstack-cni`,
        '/opt': 'dir 0755',
        '/opt/bin': 'dir 0755',
        '/opt/bin/flanneld': 'link -> ../kube-netstack/bin/flanneld',
        '/opt/bin/install-conf': 'file 0755',
        '/opt/bin/node': 'link -> ../kube-netstack/bin/node',
        '/opt/kube-netstack': 'dir 0755',
        [`/${BIN}`]: 'dir 0755',
        [`/${BIN}/flanneld`]: 'file 0755',
        [`/${BIN}/kube-netstack-cni`]: 'file 0755',
        [`/${BIN}/kube-proxy`]: 'file 0755',
        [`/${BIN}/netpolicy`]: 'file 0755',
        [`/${BIN}/netstack`]: 'file 0755',
        [`/${BIN}/node`]: 'file 0755',
        '/usr': 'dir 0755',
        '/usr/local': 'dir 0755',
        '/usr/local/bin': 'dir 0755',
        '/usr/local/bin/kube-proxy': `link -> ../../../${BIN}/kube-proxy`,
        '/usr/local/bin/node': `link -> ../../../${BIN}/node`,
      });
    });

    test(`the CNI executable and node are ${arch} ELF files; the daemons are launchers for the node beside them`, () => {
      for (const e of ['kube-netstack-cni', 'node']) expect(elfMachine(readFileSync(join(tree(), BIN, e))), e).toBe(ARCH[arch].machine);
      for (const d of DAEMONS) expect(readFileSync(join(tree(), BIN, d), 'utf8').split('\n')[0], d).toBe('#!/bin/sh');
      expect(mustSucceed(runOn(arch, join(tree(), BIN, 'node'), ['-p', 'process.arch + " " + process.version']), 'node').trim()).toBe(`${ARCH[arch].node} v${pinnedNode(ARCH[arch].node)}`);
    }, 120_000);

    test('every executable prints its --version, the daemons at upstream paths too', () => {
      const t = tree();
      const cases: [string, string[]][] =
        arch === HOST
          ? // natively, through the launchers, with no node on PATH: the image's own node runs them
            [
              ['/opt/bin/flanneld', []],
              ['/usr/local/bin/kube-proxy', []],
              ...DAEMONS.map((d): [string, string[]] => [`/${BIN}/${d}`, []]),
              ['/flannel', []],
            ]
          : // under qemu the launcher's exec of a foreign node needs binfmt_misc: run the tree's node on each daemon
            [...DAEMONS.map((d): [string, string[]] => [`/${BIN}/node`, [join(t, BIN, d)]]), ['/flannel', []]];
      for (const [path, pre] of cases) {
        const r = runOn(arch, join(t, path), [...pre, '--version'], arch === HOST ? { PATH: '/nonexistent' } : undefined);
        const what = [path, ...pre.map((p) => relative(t, p))].join(' ');
        expect(r.status, `${what} --version: ${r.stderr}`).toBe(0);
        // (flanneld prints it on stderr, as upstream's does)
        expect(`${r.stdout}${r.stderr}`, what).toContain(`v${version}`);
      }
      const cni = runOn(arch, join(t, 'flannel'), ['--version']);
      // the reference plugins' about text: on stderr
      expect(`${cni.stdout}${cni.stderr}`.split('\n')[0]).toBe(`CNI flannel plugin v${version}`);
    }, 300_000);

    test(`each daemon embeds ${arch} native addons that load on the tree's node`, () => {
      const t = tree();
      const dir = mkdtempSync(join(work, `addons-${arch}-`));
      for (const d of DAEMONS) {
        const addons = embeddedAddons(join(t, BIN, d));
        expect([...addons.keys()], d).toEqual(expect.arrayContaining(['koffi', 'netlink']));
        for (const [name, bytes] of addons) {
          expect(elfMachine(bytes), `${d}: ${name}`).toBe(ARCH[arch].machine);
          const file = join(dir, `${d}-${name}.node`);
          writeFileSync(file, bytes);
        }
      }
      // one node process loads them all (dlopen, as the daemons do from their cache)
      const files = readdirSync(dir).map((f) => join(dir, f));
      const r = runOn(arch, join(t, BIN, 'node'), ['-e', 'for (const f of process.argv.slice(1)) { const m = { exports: {} }; process.dlopen(m, f); if (Object.keys(m.exports).length === 0) throw new Error(f + ": no exports"); } console.log("loaded", process.argv.length - 1)', ...files]);
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe(`loaded ${files.length}`);
    }, 300_000);
  });
}

describe("upstream's manifests run the image with only the image changed", () => {
  test("every program upstream's kube-flannel.yml and kubeadm's kube-proxy DaemonSet start is in the tree (or Debian's)", () => {
    const upstream = [...loadYaml(join(UPSTREAM, 'kube-flannel-v0.28.x.yml')), ...loadYaml(join(UPSTREAM, 'kubeadm-kube-proxy.yml'))];
    const programs: string[] = [];
    for (const o of upstream) {
      for (const c of containersOf(o)) {
        const argv = [...((c.command as string[] | undefined) ?? []), ...((c.args as string[] | undefined) ?? [])];
        // `cp -f /flannel /opt/cni/bin/flannel`: Debian's cp, copying our /flannel
        if (argv[0] === 'cp') programs.push(argv.at(-2)!);
        else programs.push(argv[0]!);
      }
    }
    expect(programs.sort()).toEqual(['/flannel', '/opt/bin/flanneld', '/opt/bin/install-conf', '/usr/local/bin/kube-proxy']);
    for (const arch of ['amd64', 'arm64'] as const) {
      for (const p of programs) {
        const st = statSync(join(trees.get(arch)!, p));
        expect(st.isFile() && (st.mode & 0o111) === 0o111, `${arch}: ${p}`).toBe(true);
      }
    }
  });
});

describe(`${HOST} image tree: the install entry points`, () => {
  let dir: string;
  const tree = (): string => trees.get(HOST)!;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'image-tree-host-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("upstream's init container, `cp -f /flannel /opt/cni/bin/flannel`, installs a working flannel plugin", () => {
    const bin = join(dir, 'upstream/opt/cni/bin');
    mkdirSync(bin, { recursive: true });
    mustSucceed(sh('cp', ['-f', join(tree(), 'flannel'), join(bin, 'flannel')]), 'cp');
    expect(lstatSync(join(bin, 'flannel')).isFile()).toBe(true);
    const r = sh(join(bin, 'flannel'), [], { env: { CNI_COMMAND: 'VERSION', PATH: '/nonexistent' } });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ supportedVersions: expect.arrayContaining(['0.3.1', '1.0.0']) });
  }, 60_000);

  test("upstream's `/opt/bin/install-conf SRC DEST` writes the conflist atomically, through netstack install-cni", () => {
    const src = join(dir, 'cni-conf.json');
    writeFileSync(src, '{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel"}]}\n');
    const dest = join(dir, 'upstream/etc/cni/net.d/10-flannel.conflist');
    const r = sh(join(tree(), 'opt/bin/install-conf'), [src, dest], { env: { PATH: '/usr/bin:/bin' } });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(readFileSync(dest, 'utf8')).toBe(readFileSync(src, 'utf8'));
    expect(statSync(dest).mode & 0o777).toBe(0o644);
    const usage = sh(join(tree(), 'opt/bin/install-conf'), [src]);
    expect(usage.status).toBe(1);
    expect(usage.stderr).toContain('usage:');
  }, 60_000);

  test('`netstack install-cni` from the image installs the CNI executable beside it and links the plugin names', () => {
    const bin = join(dir, 'ours/opt/cni/bin');
    const r = sh(join(tree(), BIN, 'netstack'), ['install-cni', `--bin-dir=${bin}`, '--skip-conf'], { env: { PATH: '/nonexistent' } });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const exe = statSync(join(bin, 'kube-netstack-cni'));
    expect(exe.size).toBe(statSync(join(tree(), BIN, 'kube-netstack-cni')).size);
    for (const n of ['flannel', 'bridge', 'host-local', 'loopback']) {
      expect(statSync(join(bin, n)).ino, n).toBe(exe.ino);
      const v = sh(join(bin, n), [], { env: { CNI_COMMAND: 'VERSION', PATH: '/nonexistent' } });
      expect(v.status, `${n}: ${v.stderr}`).toBe(0);
      expect(JSON.parse(v.stdout).cniVersion, n).toBeDefined();
    }
  }, 120_000);
});

describe('deploy/Dockerfile is the tree on Debian with the tools upstream runs', () => {
  const dockerfile = readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8');
  const lines = dockerfile.split('\n').filter((l) => !l.startsWith('#'));
  test('it builds for TARGETARCH on the build platform and lays the tree out with scripts/image-tree.sh', () => {
    expect(lines).toContain('FROM --platform=$BUILDPLATFORM debian:bookworm-slim AS build');
    expect(lines).toContain('ARG TARGETARCH');
    expect(dockerfile).toMatch(/bash scripts\/image-tree\.sh --arch "\$TARGETARCH" --out \/tree/);
    // set-up without the test tools, then the target's build from the project's own Node
    expect(lines).toContain('RUN bash scripts/setup.sh --build-only \\');
    expect(dockerfile).toMatch(/node_modules\/\.bin\/node scripts\/build\.mjs --arch "\$arch"/);
    expect(lines).toContain('COPY --from=build /tree/ /');
    // no base image with its own (end-of-life) Node: the image's node is the tree's
    expect(lines.filter((l) => l.startsWith('FROM ')).every((l) => /debian:bookworm-slim/.test(l))).toBe(true);
  });
  test("its final stage installs what the daemons run, and its entrypoint is upstream's", () => {
    const apt = lines.find((l) => l.includes('apt-get install'))!;
    for (const p of ['iptables', 'nftables', 'ipset', 'conntrack', 'ca-certificates']) expect(apt.split(/\s+/), p).toContain(p);
    expect(lines).toContain('ENTRYPOINT ["/opt/bin/flanneld"]');
    expect(existsSync(join(trees.get(HOST)!, 'opt/bin/flanneld'))).toBe(true);
    // the image's PATH finds its node first
    expect(lines.find((l) => l.startsWith('ENV PATH='))).toMatch(/^ENV PATH=\/usr\/local\/bin:/);
  });
});
