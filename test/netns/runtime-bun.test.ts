// The Bun side of the runtime seam (lib/runtime/bun.ts: bun:ffi libc and a
// blocking netlink socket), run under Bun for real: our TypeScript sources
// uncompiled (`bun --preload lib/runtime/bun-preload.ts`), inside
// namespaces made here. The same drivers bundled for Node give the
// reference each Bun result must equal: the shared code above the seam
// must behave the same on both runtimes.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { buildSync } from 'esbuild';
import { ExecError, run } from '../../lib/exec.ts';
import { NETNS_RUN_DIR, deleteNamedNetns } from '../../lib/netns/index.ts';
import { CniBed, ROOT, nodeState, normalizeResult, podState, type NsState } from '../harness/cni.ts';

const BUN = join(ROOT, 'node_modules/bun/bin/bun.exe');
const PRELOAD = join(ROOT, 'lib/runtime/bun-preload.ts');
const DRIVERS = join(ROOT, 'test/harness/bun');
const PATH_ENV = 'PATH=/usr/sbin:/usr/bin:/sbin:/bin';

type Runtime = 'bun' | 'node';
const bed = new CniBed('rtbun');
/** The drivers bundled for Node, by name. */
const forNode = new Map<string, string>();
let bundles: string | undefined;
/** Namespaces the driver creates and deletes itself; removed here too should it fail halfway. */
const scratchNetns: string[] = [];

beforeAll(() => {
  // Bundled below the project's node_modules: the koffi and netlink addons
  // are then resolved from there, as in development.
  const cache = join(ROOT, 'node_modules/.cache');
  mkdirSync(cache, { recursive: true });
  const out = (bundles = mkdtempSync(join(cache, 'kn-runtime-bun-')));
  for (const name of ['netlink-driver', 'plugin']) {
    const outfile = join(out, `${name}.mjs`);
    buildSync({
      entryPoints: [join(DRIVERS, `${name}.ts`)],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile,
      packages: 'external',
      // lib/lazy.ts requires Node built-ins on first use; an ESM bundle has no `require` of its own.
      banner: { js: "import { createRequire as knCreateRequire } from 'node:module'; const require = knCreateRequire(import.meta.url);" },
      logLevel: 'error',
    });
    forNode.set(name, outfile);
  }
});
afterAll(async () => {
  for (const name of scratchNetns) deleteNamedNetns(name);
  if (bundles) rmSync(bundles, { recursive: true, force: true });
  await bed.cleanup();
});

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a driver under `rt` inside namespace `ns`, with exactly `env` (plus PATH). */
async function runDriver(rt: Runtime, ns: string, driver: string, args: string[], env: Record<string, string> = {}, input?: string): Promise<Outcome> {
  const entry = rt === 'bun' ? ['--preload', PRELOAD, join(DRIVERS, `${driver}.ts`)] : [forNode.get(driver)!];
  const argv = ['netns', 'exec', basename(ns), 'env', '-i', PATH_ENV, ...Object.entries(env).map(([k, v]) => `${k}=${v}`), rt === 'bun' ? BUN : process.execPath, ...entry, ...args];
  try {
    const { stdout, stderr } = await run('ip', argv, input === undefined ? {} : { input });
    return { code: 0, stdout, stderr };
  } catch (err) {
    if (!(err instanceof ExecError) || err.exitCode === undefined) throw err;
    return { code: err.exitCode, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('lib/netlink and lib/sys on Bun', () => {
  test('links, pipelined addresses and routes, multi-datagram dumps, errno ACKs, setns, named netns, flock, sockets', async () => {
    const results: Record<Runtime, unknown> = { bun: undefined, node: undefined };
    for (const rt of ['bun', 'node'] as const) {
      const home = bed.netns(`${rt}home`);
      const other = bed.netns(`${rt}other`);
      const lockFile = join(bed.dir('lock'), 'lock');
      writeFileSync(lockFile, '');
      const scratch = `${basename(home)}-scratch`;
      scratchNetns.push(scratch);
      const r = await runDriver(rt, home, 'netlink-driver', [other, lockFile, scratch]);
      expect(r.code, r.stderr).toBe(0);
      results[rt] = JSON.parse(r.stdout);
      // The driver's link in `other` was made there, through the setns'd socket.
      expect((await podState(other)).links.map((l) => l.name).sort()).toEqual(['kn-other', 'kn-other-p', 'lo']);
    }
    expect(results.bun).toEqual({
      runtime: 'bun',
      netlink: {
        links: ['kn-a', 'kn-b', 'lo'],
        addrCount: 750,
        addrsMatch: true,
        routeCount: 600,
        eexistAddr: '17 EEXIST addr add 192.0.2.1/32: file exists',
        eexistLink: '17 EEXIST link add kn-a: file exists',
        enodev: '19 ENODEV link set up #999999: no such device',
        enodevRoute: '19 ENODEV route add fd00:8::1/128: no such device',
        afterErrors: 'kn-a',
        subscribe: 'UNSUPPORTED: netlink multicast subscriptions need the Node.js runtime',
        oneTick: { setOk: 1600, eexist: 1600, listed: 1600 },
      },
      namespaces: { enteredOther: true, backHome: true, otherLinks: ['kn-other', 'kn-other-p', 'lo'], selfHasIt: false, einval: '22 EINVAL setns: invalid argument' },
      namedNetns: { links: ['lo'], distinct: true },
      locks: { contended: '11 EWOULDBLOCK flock: ewouldblock', heldBySecond: '11 EWOULDBLOCK flock: ewouldblock' },
      sockets: {
        sent: 10,
        pendingBytes: 10,
        received: 'hello seam',
        drained: '11 EWOULDBLOCK recv: ewouldblock',
        unknownIoctl: '25 ENOTTY ioctl: enotty',
        eventfd: true,
        bindTaken: '98 EADDRINUSE bind: @kn-runtime-seam: address already in use',
      },
    });
    expect(existsSync(join(NETNS_RUN_DIR, scratchNetns[0]!))).toBe(false);
    // The same outcomes on Node, where subscriptions work too.
    const node = results.node as { runtime: string; netlink: Record<string, unknown> };
    expect(node.netlink['subscribe']).toBe('ok');
    const bun = results.bun as typeof node;
    expect({ ...node, runtime: 'bun', netlink: { ...node.netlink, subscribe: bun.netlink['subscribe'], oneTick: bun.netlink['oneTick'] } }).toEqual(bun);
  });
});

/** CNI env for one call; the pod path is replaced by a placeholder in results so two pods compare. */
const cniEnv = (command: string, pod: string, ifName: string): Record<string, string> => ({
  CNI_COMMAND: command,
  CNI_CONTAINERID: 'rtbun1',
  CNI_NETNS: pod,
  CNI_IFNAME: ifName,
  CNI_PATH: '/usr/lib/cni',
});
const normalised = (stdout: string, pod: string): unknown => (stdout.trim() ? JSON.parse(stdout.split(pod).join('<pod>')) : '');

/**
 * A store file's content. The index's stamp is the directory's (mtime,
 * ctime) with a random sub-second part, so it is compared with the
 * directory as stat(2) sees it now: an index the runtime wrote is one both
 * runtimes trust.
 */
function storeFile(dir: string, name: string): unknown {
  const text = readFileSync(join(dir, name), 'utf8');
  if (name !== '.host-local-index') return text;
  const [, body] = text.split('\n');
  const { stamp, ...rest } = JSON.parse(body!) as { stamp: string };
  const st = statSync(dir, { bigint: true });
  return { stampIsCurrent: stamp === `${st.mtimeNs}:${st.ctimeNs}`, ...rest };
}

describe('CNI plugins from source on Bun give the results they give on Node', () => {
  test('loopback ADD, CHECK, DEL', async () => {
    const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'lonet', type: 'loopback' });
    const seen: Record<Runtime, unknown[]> = { bun: [], node: [] };
    for (const rt of ['bun', 'node'] as const) {
      const node = bed.netns(`${rt}lonode`);
      const pod = bed.netns(`${rt}lopod`);
      for (const cmd of ['ADD', 'CHECK', 'DEL']) {
        const r = await runDriver(rt, node, 'plugin', ['loopback'], cniEnv(cmd, pod, 'lo'), conf);
        const state = await podState(pod);
        seen[rt].push({ cmd, code: r.code, result: normalised(r.stdout, pod), loUp: state.links.find((l) => l.name === 'lo')?.up, addrs: state.addrs });
      }
    }
    expect(seen.bun[0]).toMatchObject({ code: 0, loUp: true, addrs: ['lo 127.0.0.1/8', 'lo ::1/128'] });
    expect(seen.bun[2]).toMatchObject({ code: 0, result: '', loUp: false });
    expect(seen.bun).toEqual(seen.node);
  });

  test('host-local ADD, a bad config, DEL: results and store files', async () => {
    const seen: Record<Runtime, unknown[]> = { bun: [], node: [] };
    for (const rt of ['bun', 'node'] as const) {
      const node = bed.netns(`${rt}hlnode`);
      const pod = bed.netns(`${rt}hlpod`);
      const dataDir = bed.dir(`${rt}store`);
      const conf = (ranges: unknown): string =>
        JSON.stringify({ cniVersion: '1.0.0', name: 'hl', type: 'host-local', ipam: { type: 'host-local', dataDir, ranges, routes: [{ dst: '0.0.0.0/0' }] } });
      const good = conf([[{ subnet: '198.51.100.0/24' }], [{ subnet: 'fd00:5::/64' }]]);
      const store = (): Record<string, unknown> => Object.fromEntries(readdirSync(join(dataDir, 'hl')).sort().map((f) => [f, storeFile(join(dataDir, 'hl'), f)]));
      const add = await runDriver(rt, node, 'plugin', ['host-local'], cniEnv('ADD', pod, 'eth0'), good);
      seen[rt].push({ add: { code: add.code, result: normalised(add.stdout, pod) }, store: store() });
      const bad = await runDriver(rt, node, 'plugin', ['host-local'], cniEnv('ADD', pod, 'eth1'), conf([[{ subnet: '198.51.100.0/33' }]]));
      seen[rt].push({ bad: { code: bad.code, result: normalised(bad.stdout, pod) } });
      const del = await runDriver(rt, node, 'plugin', ['host-local'], cniEnv('DEL', pod, 'eth0'), good);
      seen[rt].push({ del: { code: del.code, result: normalised(del.stdout, pod) }, store: store() });
    }
    expect(seen.bun[0]).toMatchObject({
      add: { code: 0, result: { ips: [{ address: '198.51.100.2/24' }, { address: 'fd00:5::2/64' }] } },
      store: {
        '.host-local-index': { stampIsCurrent: true, names: ['198.51.100.2', 'fd00:5::2'] },
        '198.51.100.2': 'rtbun1\r\neth0',
        'fd00:5::2': 'rtbun1\r\neth0',
      },
    });
    expect(seen.bun[1]).toMatchObject({ bad: { code: 1, result: { code: expect.any(Number), msg: expect.any(String) } } });
    expect((seen.bun[2] as { store: object }).store).not.toHaveProperty(['198.51.100.2']);
    expect(seen.bun).toEqual(seen.node);
  });

  test('bridge ADD with ipMasq (IPAM by spawning the reference host-local, iptables-restore), DEL: results and kernel state', async () => {
    const seen: Record<Runtime, unknown[]> = { bun: [], node: [] };
    /** Kernel state without what is random per run (MACs, veth names, ifindexes). */
    const stable = (s: NsState & { nat?: unknown }): unknown =>
      normalizeResult({ links: s.links.map(({ name, kind, up, mtu, master, hairpin }) => ({ name, kind, up, mtu, master, hairpin })), addrs: s.addrs, routes: s.routes, nat: s.nat });
    for (const rt of ['bun', 'node'] as const) {
      const node = bed.netns(`${rt}brnode`);
      const pod = bed.netns(`${rt}brpod`);
      const dataDir = bed.dir(`${rt}brstore`);
      const conf = JSON.stringify({
        cniVersion: '1.0.0',
        name: 'brnet',
        type: 'bridge',
        bridge: 'knbr0',
        isGateway: true,
        ipMasq: true,
        ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '203.0.113.0/24' }]] },
      });
      const add = await runDriver(rt, node, 'plugin', ['bridge'], cniEnv('ADD', pod, 'eth0'), conf);
      seen[rt].push({ add: { code: add.code, result: normalizeResult(normalised(add.stdout, pod)) }, node: stable(await nodeState(node)), pod: stable(await podState(pod)) });
      const del = await runDriver(rt, node, 'plugin', ['bridge'], cniEnv('DEL', pod, 'eth0'), conf);
      seen[rt].push({ del: { code: del.code, result: normalised(del.stdout, pod) }, node: stable(await nodeState(node)), pod: stable(await podState(pod)) });
    }
    expect(seen.bun[0]).toMatchObject({ add: { code: 0, result: { ips: [{ address: '203.0.113.2/24', gateway: '203.0.113.1' }] } }, pod: { addrs: ['eth0 203.0.113.2/24'] } });
    expect(JSON.stringify((seen.bun[0] as { node: unknown }).node)).toContain('MASQUERADE');
    expect(JSON.stringify((seen.bun[1] as { node: unknown }).node)).not.toContain('MASQUERADE');
    expect(seen.bun).toEqual(seen.node);
  });
});
