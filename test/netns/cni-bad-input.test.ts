// Bad input for our bridge, host-local and loopback executables: each case
// must give exactly one CNI error JSON document on stdout with the skel's
// code (plugins/skel/index.ts: 1 version, 4 env, 6 decode, 7 config,
// 8 netns), exit 1, and leave nothing behind (no link, address, route, store
// file, iptables or nft rule), compared by snapshots before and after.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CniBed, OUR_BIN, ROOT, cni, cniEnv, snapshot, type CniOutcome } from '../harness/cni.ts';

const bed = new CniBed('bad');
let node: string;
let pod: string;
let dataDir: string;
let regularFile: string;

beforeAll(() => {
  for (const p of ['bridge', 'host-local', 'loopback']) if (!existsSync(join(OUR_BIN, p))) throw new Error('run `npm run build` first');
  node = bed.netns('node');
  pod = bed.netns('pod');
  dataDir = bed.dir('store');
  regularFile = join(bed.dir('f'), 'not-a-netns');
  writeFileSync(regularFile, 'plain file\n');
});
afterAll(() => bed.cleanup());

type Plugin = 'bridge' | 'host-local' | 'loopback';
type Conf = Record<string, unknown>;

function goodConf(p: Plugin): Conf {
  const ipam = { type: 'host-local', subnet: '10.50.0.0/24', routes: [{ dst: '0.0.0.0/0' }], dataDir };
  switch (p) {
    case 'bridge':
      return { cniVersion: '1.0.0', name: 'badnet', type: 'bridge', bridge: 'bbr0', isGateway: true, ipMasq: true, ipam };
    case 'host-local':
      return { cniVersion: '1.0.0', name: 'badnet', type: 'host-local', ipam };
    case 'loopback':
      return { cniVersion: '1.0.0', name: 'badnet', type: 'loopback' };
  }
}

interface Case {
  name: string;
  plugins: readonly Plugin[];
  stdin?: (p: Plugin) => string | Conf;
  env?: () => Record<string, string | undefined>;
  code: number;
  msg: string | RegExp;
  details?: string | RegExp;
}

const ALL: readonly Plugin[] = ['bridge', 'host-local', 'loopback'];
const WITH_IPAM: readonly Plugin[] = ['bridge', 'host-local'];
// host-local never opens CNI_NETNS (an IPAM plugin configures nothing in the pod), as the reference.
const WITH_NETNS: readonly Plugin[] = ['bridge', 'loopback'];
const withIpam = (p: Plugin, ipam: Conf): Conf => ({ ...goodConf(p), ipam: { ...(goodConf(p).ipam as Conf), ...ipam } });

const cases: Case[] = [
  { name: 'empty stdin', plugins: ALL, stdin: () => '', code: 6, msg: 'error unmarshall network config: unexpected end of JSON input' },
  { name: 'truncated JSON', plugins: ALL, stdin: () => '{"cniVersion":"1.0.0","name":', code: 6, msg: 'error unmarshall network config: unexpected end of JSON input' },
  { name: 'JSON that is not an object', plugins: ALL, stdin: () => '[1,2]', code: 6, msg: /^error unmarshall network config: / },
  { name: 'missing network name', plugins: ALL, stdin: (p) => ({ ...goodConf(p), name: undefined }), code: 7, msg: 'missing network name' },
  { name: 'unknown command', plugins: ALL, env: () => ({ CNI_COMMAND: 'FOO' }), code: 4, msg: 'unknown CNI_COMMAND: FOO' },
  {
    name: 'unsupported cniVersion',
    plugins: ALL,
    stdin: (p) => ({ ...goodConf(p), cniVersion: '9.9.9' }),
    code: 1,
    msg: 'incompatible CNI versions',
    details: 'config is "9.9.9", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]',
  },
  ...(['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'] as const).map(
    (v): Case => ({ name: `missing ${v}`, plugins: ALL, env: () => ({ [v]: undefined }), code: 4, msg: `required env variables [${v}] missing` }),
  ),
  { name: 'several env variables missing', plugins: ALL, env: () => ({ CNI_CONTAINERID: undefined, CNI_PATH: undefined }), code: 4, msg: 'required env variables [CNI_CONTAINERID,CNI_PATH] missing' },
  { name: 'ifname longer than 15 chars', plugins: ALL, env: () => ({ CNI_IFNAME: 'eth0123456789abc' }), code: 4, msg: 'interface name is too long', details: 'interface name should be less than 16 characters' },
  { name: "ifname with '/'", plugins: ALL, env: () => ({ CNI_IFNAME: 'eth/0' }), code: 4, msg: 'interface name contains / or : or whitespace characters' },
  { name: "containerID with '/'", plugins: ALL, env: () => ({ CNI_CONTAINERID: 'bad/id' }), code: 4, msg: 'invalid characters in containerID', details: 'bad/id' },
  { name: 'netns path missing', plugins: WITH_NETNS, env: () => ({ CNI_NETNS: '/run/netns/kn-bad-does-not-exist' }), code: 8, msg: /^failed to open netns "\/run\/netns\/kn-bad-does-not-exist": .*no such file or directory/ },
  { name: 'netns path is a regular file', plugins: WITH_NETNS, env: () => ({ CNI_NETNS: regularFile }), code: 8, msg: /^failed to open netns "[^"]*\/not-a-netns": / },
  { name: 'unknown IPAM type', plugins: ['bridge'], stdin: (p) => withIpam(p, { type: 'nope' }), code: 7, msg: `failed to find plugin "nope" in path [${OUR_BIN}]` },
  { name: 'invalid CIDR', plugins: WITH_IPAM, stdin: (p) => withIpam(p, { subnet: '10.50.0.0/33' }), code: 7, msg: /10\.50\.0\.0\/33/ },
  { name: 'subnet with host bits', plugins: WITH_IPAM, stdin: (p) => withIpam(p, { subnet: '10.50.0.5/24' }), code: 7, msg: 'invalid range set 0: Network has host bits set. For a subnet mask of length 24 the network address is 10.50.0.0' },
  { name: 'rangeStart outside the subnet', plugins: WITH_IPAM, stdin: (p) => withIpam(p, { rangeStart: '10.51.0.1' }), code: 7, msg: 'invalid range set 0: RangeStart 10.51.0.1 not in network 10.50.0.0/24' },
  { name: 'subnet too small', plugins: WITH_IPAM, stdin: (p) => withIpam(p, { subnet: '10.50.0.0/31' }), code: 7, msg: 'invalid range set 0: Network 10.50.0.0/31 too small to allocate from' },
];

const matches = (v: unknown, want: string | RegExp): boolean => (typeof want === 'string' ? v === want : typeof v === 'string' && want.test(v));

describe.each(ALL)('%s', (plugin) => {
  test.each(cases.filter((c) => c.plugins.includes(plugin)))('$name → error $code, nothing left behind', async (c) => {
    const before = await snapshot({ node, pods: [pod], stores: [dataDir] });
    const env = cniEnv('ADD', 'bad1', pod, 'eth0', OUR_BIN, c.env?.() ?? {});
    const stdin = c.stdin ? c.stdin(plugin) : goodConf(plugin);
    const r: CniOutcome = await cni({ node, plugin: join(OUR_BIN, plugin), env, stdin });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    // Exactly one JSON document on stdout.
    expect(r.json, r.stdout).toBeDefined();
    expect(r.json.code, r.stdout).toBe(c.code);
    expect(matches(r.json.msg, c.msg), `msg ${JSON.stringify(r.json.msg)} vs ${String(c.msg)}`).toBe(true);
    if (c.details) expect(matches(r.json.details, c.details), `details ${JSON.stringify(r.json.details)}`).toBe(true);
    expect(typeof r.json.cniVersion).toBe('string');
    const after = await snapshot({ node, pods: [pod], stores: [dataDir] });
    expect(after).toEqual(before);
  });
});

test.each(ALL)('%s: no CNI_COMMAND prints the about text on stderr and exits 0', async (plugin) => {
  const r = await cni({ node, plugin: join(OUR_BIN, plugin), env: {}, stdin: '' });
  expect(r.code).toBe(0);
  expect(r.stdout).toBe('');
  expect(r.stderr).toContain('CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0');
  // As the reference plugins' about text: the plugin's name and the release.
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  expect(r.stderr.split('\n')[0]).toBe(`CNI ${plugin} plugin v${version}`);
});

test('host-local ignores CNI_NETNS (as the reference): a missing netns path does not matter', async () => {
  const conf = goodConf('host-local');
  const env = cniEnv('ADD', 'hl1', '/run/netns/kn-bad-does-not-exist', 'eth0', OUR_BIN);
  const r = await cni({ node, plugin: join(OUR_BIN, 'host-local'), env, stdin: conf });
  expect(r.code, r.stdout).toBe(0);
  const d = await cni({ node, plugin: join(OUR_BIN, 'host-local'), env: { ...env, CNI_COMMAND: 'DEL' }, stdin: conf });
  expect(d.code, d.stdout).toBe(0);
});
