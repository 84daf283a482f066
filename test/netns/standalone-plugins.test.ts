// The compiled CNI plugins as a container runtime runs them: a copy of the
// one multi-call executable (dist/bin/kube-netstack-cni) in a temp directory
// outside the repository, the plugin names hard links to it, started with
// `env -i` and a PATH that has no `node` (and so no NODE_* variables).
// loopback, host-local, bridge + host-local and flannel inside namespaces
// created here, with the results the per-plugin suites expect. strace shows
// which processes each call started: our IPAM (and flannel's delegates) run
// inside the calling process, a foreign IPAM binary is executed.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, linkSync, mkdirSync, openSync, readFileSync, readSync, closeSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CniBed, OUR_BIN, ROOT, REF_BIN, cni, cniEnv, podState, snapshot, storeIps, type CniOutcome } from '../harness/cni.ts';

const EXE = 'kube-netstack-cni';
const NAMES = ['bridge', 'host-local', 'loopback', 'flannel'];
/** What a runtime's PATH holds for the tools the plugins call (iptables-restore & co.), without /usr/bin (node). */
const NO_NODE_PATH = '/usr/sbin:/sbin';

const bed = new CniBed('sa');
let bin: string;
let node: string;

beforeAll(() => {
  const built = join(OUR_BIN, EXE);
  if (!existsSync(built)) throw new Error(`${built} is missing: run npm run build first`);
  bin = bed.dir('bin');
  copyFileSync(built, join(bin, EXE));
  for (const n of NAMES) linkSync(join(bin, EXE), join(bin, n));
  node = bed.netns('node');
});
afterAll(() => bed.cleanup());

const run = (plugin: string, env: Record<string, string | undefined>, stdin: object): Promise<CniOutcome> =>
  cni({ node, plugin: join(bin, plugin), env: { PATH: NO_NODE_PATH, ...env }, stdin });

async function ok(p: Promise<CniOutcome>): Promise<CniOutcome> {
  const r = await p;
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  return r;
}

/** Runs one call under `strace -f -e execve` and returns the programs it executed after itself. */
function traced(plugin: string, env: Record<string, string>, stdin: object): Promise<{ outcome: CniOutcome; execs: string[] }> {
  const trace = join(bed.dir('trace'), 'execve');
  const vars = Object.entries({ PATH: NO_NODE_PATH, ...env }).map(([k, v]) => `${k}=${v}`);
  const argv = ['netns', 'exec', basename(node), 'strace', '-f', '-qq', '-e', 'trace=execve', '-o', trace, 'env', '-i', ...vars, join(bin, plugin)];
  return new Promise((resolve, reject) => {
    const child = spawn('ip', argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const execs = readFileSync(trace, 'utf8')
        .split('\n')
        .map((l) => /execve\("([^"]+)"/.exec(l)?.[1])
        .filter((p): p is string => p !== undefined)
        // strace's own exec of env, and env's exec of the plugin.
        .slice(2);
      resolve({ outcome: { code: code ?? -1, stdout, stderr, json: stdout.trim() === '' ? undefined : JSON.parse(stdout) }, execs });
    });
    child.stdin.end(JSON.stringify(stdin));
  });
}

describe('the executable', () => {
  test('is an ELF file, not a script, and the PATH given to it has no node', () => {
    const fd = openSync(join(bin, EXE), 'r');
    const head = Buffer.alloc(4);
    readSync(fd, head, 0, 4, 0);
    closeSync(fd);
    expect(head).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
    expect(bin.startsWith(ROOT)).toBe(false);
    for (const dir of NO_NODE_PATH.split(':')) expect(existsSync(join(dir, 'node')), `${dir}/node`).toBe(false);
    expect(statSync(join(bin, 'bridge')).ino).toBe(statSync(join(bin, EXE)).ino);
  });

  test('started under its own name it says which names it answers to', async () => {
    const r = await run(EXE, { CNI_COMMAND: 'VERSION' }, {});
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `kube-netstack CNI plugins: started as "${EXE}", which is not a plugin this executable provides. ` +
        'Run it through a hard link or symlink named one of: bridge, host-local, loopback, flannel.\n',
    );
  });

  test('a symlink works as well as a hard link (VERSION)', async () => {
    const dir = bed.dir('sym');
    symlinkSync(join(bin, EXE), join(dir, 'loopback'));
    const r = await ok(cni({ node, plugin: join(dir, 'loopback'), env: { PATH: NO_NODE_PATH, CNI_COMMAND: 'VERSION' }, stdin: '' }));
    expect(r.json).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });
});

describe('loopback', () => {
  test('ADD brings lo up with its addresses, DEL brings it down', async () => {
    const pod = bed.netns('pod');
    const conf = { cniVersion: '1.0.0', name: 'lonet', type: 'loopback' };
    const r = await ok(run('loopback', cniEnv('ADD', 'lo1', pod, 'lo', bin), conf));
    expect(r.json).toEqual({
      cniVersion: '1.0.0',
      interfaces: [{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: pod }],
      ips: [
        { interface: 0, address: '127.0.0.1/8' },
        { interface: 0, address: '::1/128' },
      ],
    });
    const lo = async () => (await podState(pod)).links.find((l) => l.name === 'lo')!.up;
    expect(await lo()).toBe(true);
    await ok(run('loopback', cniEnv('CHECK', 'lo1', pod, 'lo', bin), conf));
    const d = await ok(run('loopback', cniEnv('DEL', 'lo1', pod, 'lo', bin), conf));
    expect(d.stdout).toBe('');
    expect(await lo()).toBe(false);
  });
});

describe('host-local', () => {
  test('ADD reserves in the store as the reference does, DEL releases', async () => {
    const pod = bed.netns('pod');
    const store = bed.dir('store');
    const refStore = bed.dir('store');
    const conf = (dataDir: string) => ({
      cniVersion: '1.0.0',
      name: 'hlnet',
      type: 'host-local',
      ipam: { type: 'host-local', subnet: '192.0.2.0/24', routes: [{ dst: '0.0.0.0/0' }], dataDir },
    });
    const env = (cmd: string) => cniEnv(cmd, 'hl1', pod, 'eth0', bin);
    const r = await ok(run('host-local', env('ADD'), conf(store)));
    const ref = await ok(cni({ node, plugin: join(REF_BIN, 'host-local'), env: { ...env('ADD'), CNI_PATH: REF_BIN }, stdin: conf(refStore) }));
    // The reference prints an empty `dns` in 1.0.0 results, which ours omits (as the host-local and loopback suites note).
    const { dns, ...refResult } = ref.json as Record<string, unknown>;
    expect(dns).toEqual({});
    expect(r.json).toEqual(refResult);
    expect(r.json).toEqual({ cniVersion: '1.0.0', ips: [{ address: '192.0.2.2/24', gateway: '192.0.2.1' }], routes: [{ dst: '0.0.0.0/0' }] });
    expect(readFileSync(join(store, 'hlnet', '192.0.2.2'), 'utf8')).toBe('hl1\r\neth0');
    await ok(run('host-local', env('DEL'), conf(store)));
    expect(existsSync(join(store, 'hlnet', '192.0.2.2'))).toBe(false);
    expect(storeIps(await snapshot({ node, stores: [store] }))).toEqual([]);
  });
});

describe('bridge + host-local', () => {
  const conf = (dataDir: string) => ({
    cniVersion: '1.0.0',
    name: 'brnet',
    type: 'bridge',
    bridge: 'sabr0',
    isGateway: true,
    ipMasq: true,
    hairpinMode: true,
    ipam: { type: 'host-local', subnet: '198.51.100.0/24', routes: [{ dst: '0.0.0.0/0' }], dataDir },
  });

  test('ADD, CHECK, DEL with our host-local inside the bridge process', async () => {
    const pod = bed.netns('pod');
    const store = bed.dir('store');
    const env = (cmd: string) => cniEnv(cmd, 'br1', pod, 'eth0', bin);
    const add = await traced('bridge', env('ADD') as Record<string, string>, conf(store));
    expect(add.outcome.code, add.outcome.stdout + add.outcome.stderr).toBe(0);
    const res = add.outcome.json;
    expect(Object.keys(res)).toEqual(['cniVersion', 'interfaces', 'ips', 'routes']);
    expect(res.interfaces).toEqual([
      { name: 'sabr0', mac: expect.stringMatching(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/) },
      { name: expect.stringMatching(/^veth[0-9a-f]{8}$/), mac: expect.stringMatching(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/) },
      { name: 'eth0', mac: expect.stringMatching(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/), sandbox: pod },
    ]);
    expect(res.ips).toEqual([{ interface: 2, address: '198.51.100.2/24', gateway: '198.51.100.1' }]);
    expect(res.routes).toEqual([{ dst: '0.0.0.0/0' }]);
    // Only the masquerade tooling ran; host-local was not executed.
    expect(add.execs.filter((p) => !/\/ip6?tables(-legacy|-nft)?-(save|restore)$/.test(p))).toEqual([]);
    expect(readFileSync(join(store, 'brnet', '198.51.100.2'), 'utf8')).toBe('br1\r\neth0');
    const s = await snapshot({ node, pods: [pod], stores: [store] });
    expect(s.node.links.find((l) => l.name === 'sabr0')).toMatchObject({ kind: 'bridge', up: true });
    expect(s.node.addrs).toContain('sabr0 198.51.100.1/24');
    expect(s.pods[pod]!.addrs).toContain('eth0 198.51.100.2/24');
    expect(s.node.nat.chains).toHaveLength(1);

    await ok(run('bridge', env('CHECK'), { ...conf(store), prevResult: res }));
    await ok(run('bridge', env('DEL'), conf(store)));
    const after = await snapshot({ node, pods: [pod], stores: [store] });
    expect(after.node.links.filter((l) => l.kind === 'veth')).toEqual([]);
    expect(after.pods[pod]!.links.map((l) => l.name)).toEqual(['lo']);
    expect(storeIps(after)).toEqual([]);
    expect(after.node.nat.ip).toEqual([]);
    expect(after.node.nat.chains).toEqual([]);
  });

  test('a foreign host-local in CNI_PATH is executed', async () => {
    const pod = bed.netns('pod');
    const store = bed.dir('store');
    const cniPath = bed.dir('refbin');
    symlinkSync(join(REF_BIN, 'host-local'), join(cniPath, 'host-local'));
    const env = (cmd: string) => cniEnv(cmd, 'br2', pod, 'eth0', cniPath) as Record<string, string>;
    const add = await traced('bridge', env('ADD'), { ...conf(store), bridge: 'sabr1', ipam: { ...conf(store).ipam, subnet: '203.0.113.0/24' } });
    expect(add.outcome.code, add.outcome.stdout + add.outcome.stderr).toBe(0);
    expect(add.outcome.json.ips).toEqual([{ interface: 2, address: '203.0.113.2/24', gateway: '203.0.113.1' }]);
    expect(add.execs).toContain(join(cniPath, 'host-local'));
    const del = await traced('bridge', env('DEL'), { ...conf(store), bridge: 'sabr1', ipam: { ...conf(store).ipam, subnet: '203.0.113.0/24' } });
    expect(del.outcome.code).toBe(0);
    expect(del.execs).toContain(join(cniPath, 'host-local'));
    expect(readdirSync(join(store, 'brnet')).filter((f) => f.startsWith('203.'))).toEqual([]);
  });
});

describe('flannel', () => {
  test('ADD delegates to our bridge and host-local in one process; DEL releases everything', async () => {
    const pod = bed.netns('pod');
    const dir = bed.dir('flannel');
    const subnetFile = join(dir, 'subnet.env');
    writeFileSync(subnetFile, 'FLANNEL_NETWORK=198.51.100.0/24\nFLANNEL_SUBNET=198.51.100.65/26\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=true\n');
    const dataDir = join(dir, 'state');
    const ipamDir = join(dir, 'ipam');
    mkdirSync(dataDir);
    const conf = { cniVersion: '0.3.1', name: 'cbr0', type: 'flannel', subnetFile, dataDir, ipam: { dataDir: ipamDir }, delegate: { bridge: 'saflannel0', hairpinMode: true, isDefaultGateway: true } };
    const env = (cmd: string) => cniEnv(cmd, 'fl1', pod, 'eth0', bin) as Record<string, string>;
    const add = await traced('flannel', env('ADD'), conf);
    expect(add.outcome.code, add.outcome.stdout + add.outcome.stderr).toBe(0);
    expect(add.outcome.json).toMatchObject({ cniVersion: '0.3.1', ips: [{ version: '4', address: '198.51.100.66/26', gateway: '198.51.100.65' }] });
    expect(add.execs).toEqual([]);
    expect(existsSync(join(dataDir, 'fl1'))).toBe(true);
    expect(readFileSync(join(ipamDir, 'cbr0', '198.51.100.66'), 'utf8')).toBe('fl1\r\neth0');
    const s = await podState(pod);
    expect(s.addrs).toContain('eth0 198.51.100.66/26');
    expect(s.routes).toContain('198.51.100.0/24 via 198.51.100.65 dev eth0');
    expect(s.links.find((l) => l.name === 'eth0')!.mtu).toBe(1400);

    const del = await traced('flannel', env('DEL'), conf);
    expect(del.outcome).toMatchObject({ code: 0, stdout: '' });
    expect(del.execs).toEqual([]);
    expect(readdirSync(dataDir)).toEqual([]);
    expect(existsSync(join(ipamDir, 'cbr0', '198.51.100.66'))).toBe(false);
    expect((await podState(pod)).links.map((l) => l.name)).toEqual(['lo']);
  });
});
