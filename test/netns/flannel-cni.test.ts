// The flannel CNI plugin for real: a node namespace with a subnet.env, two
// pod namespaces, the plugin delegating to bridge + host-local. The plugin
// and its delegates always run inside the node namespace:
//   - process path: `ip netns exec <node> dist/bin/flannel` (a copy) with CNI_PATH at the delegates,
//   - in-process path: runPlugin in this process, CNI_PATH at wrapper scripts that
//     `exec ip netns exec <node> <delegate>` (this process stays in its own namespace
//     and only reads files).
// Delegates: the reference bridge/host-local from Debian's containernetworking-plugins
// (/usr/lib/cni), and ours from dist/bin (built before the suite runs).
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { World } from '../harness/world.ts';
import { runPlugin } from '../../plugins/skel/index.ts';
import { captureIO } from '../../plugins/skel/invoke.ts';
import { createFlannelFuncs } from '../../plugins/flannel/flannel.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const REFERENCE = '/usr/lib/cni';
const OURS = join(ROOT, 'dist/bin');
// The suite tests the built executables (npm run build first, as CI does).
for (const exe of ['flannel', 'bridge', 'host-local']) {
  if (!existsSync(join(OURS, exe))) throw new Error(`${join(OURS, exe)} is missing: run npm run build before this suite`);
}

const SUBNET_ENV = 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=true\n';

interface Outcome {
  code: number;
  json: Record<string, unknown> | undefined;
}

let bundleDir: string;
let bundle: string;

beforeAll(() => {
  // The process path runs the built executable (npm run build, as CI does
  // before the tests), copied so a concurrent rebuild cannot change it.
  bundleDir = mkdtempSync(join(tmpdir(), 'flannel-bundle-'));
  bundle = join(bundleDir, 'flannel');
  copyFileSync(join(OURS, 'flannel'), bundle);
});
afterAll(() => rmSync(bundleDir, { recursive: true, force: true }));

/** A private copy of a delegate, so a concurrent `npm run build` cannot swap it mid-suite. */
function snapshot(from: string, type: string, dir: string): string {
  const to = join(dir, 'delegates', type);
  mkdirSync(join(dir, 'delegates'), { recursive: true });
  copyFileSync(join(from, type), to);
  chmodSync(to, 0o755);
  return to;
}

const ipJson = (ns: string, ...args: string[]): Record<string, unknown>[] =>
  JSON.parse(execFileSync('ip', ['-j', '-netns', ns, ...args], { encoding: 'utf8' }) || '[]') as Record<string, unknown>[];

interface Mode {
  name: string;
  delegates: string;
  inProcess: boolean;
}

const modes: Mode[] = [
  { name: 'process path, reference delegates', delegates: REFERENCE, inProcess: false },
  { name: 'in-process, reference delegates', delegates: REFERENCE, inProcess: true },
  { name: 'process path, our delegates', delegates: OURS, inProcess: false },
];

describe.each(modes)('flannel CNI ($name)', (mode) => {
  const w = new World('fcni');
  let dir: string;
  let node: string;
  let subnetFile: string;
  let dataDir: string;
  let ipamDir: string;
  let cniPath: string;
  const pods: Record<string, { path: string; ip?: string }> = {};

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'flannel-cni-netns-'));
    w.onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    w.netns('node');
    node = `${w.prefix}-node`;
    for (const p of ['pod1', 'pod2', 'pod3']) pods[p] = { path: w.netns(p) };
    subnetFile = join(dir, 'subnet.env');
    writeFileSync(subnetFile, SUBNET_ENV);
    dataDir = join(dir, 'flannel');
    ipamDir = join(dir, 'ipam');
    cniPath = join(dir, 'bin');
    mkdirSync(cniPath);
    for (const t of ['bridge', 'host-local']) {
      const real = snapshot(mode.delegates, t, dir);
      if (mode.inProcess) {
        // This process is in the machine's namespace: the delegate must enter the node's.
        writeFileSync(join(cniPath, t), `#!/bin/sh\nexec ip netns exec ${node} ${real} "$@"\n`);
        chmodSync(join(cniPath, t), 0o755);
      } else {
        symlinkSync(real, join(cniPath, t));
      }
    }
  });
  afterAll(() => w.cleanup());

  function config(): Record<string, unknown> {
    return {
      cniVersion: '0.3.1',
      name: 'cbr0',
      type: 'flannel',
      subnetFile,
      dataDir,
      delegate: { hairpinMode: true, isDefaultGateway: true },
      ipam: { dataDir: ipamDir },
    };
  }

  async function cni(command: string, id: string, pod: string): Promise<Outcome> {
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: id,
      CNI_NETNS: pods[pod]!.path,
      CNI_IFNAME: 'eth0',
      CNI_PATH: cniPath,
    };
    const stdin = JSON.stringify(config());
    let code: number;
    let out: string;
    if (mode.inProcess) {
      const io = captureIO(env, stdin);
      code = await runPlugin(createFlannelFuncs({ stderr: { write: () => true } }), 'CNI flannel plugin', io);
      out = io.out();
    } else {
      const r = spawnSync('ip', ['netns', 'exec', node, bundle], { env, input: stdin, encoding: 'utf8' });
      if (r.error) throw r.error;
      code = r.status ?? -1;
      out = r.stdout;
    }
    return { code, json: out === '' ? undefined : (JSON.parse(out) as Record<string, unknown>) };
  }

  test('ADD gives pods addresses from FLANNEL_SUBNET behind cni0 with the gateway, FLANNEL_MTU and routes to FLANNEL_NETWORK', async () => {
    for (const [i, pod] of ['pod1', 'pod2'].entries()) {
      const r = await cni('ADD', `ctr-${pod}`, pod);
      expect(r.json).toMatchObject({ cniVersion: '0.3.1' });
      expect(r.code).toBe(0);
      const ips = r.json?.ips as { address: string; gateway: string; version: string }[];
      expect(ips).toHaveLength(1);
      expect(ips[0]!.address).toMatch(/^10\.244\.7\.\d+\/24$/);
      expect(ips[0]!.gateway).toBe('10.244.7.1');
      pods[pod]!.ip = ips[0]!.address.split('/')[0]!;
      expect(existsSync(join(dataDir, `ctr-${pod}`))).toBe(true);
      expect(existsSync(join(ipamDir, 'cbr0', pods[pod]!.ip!))).toBe(true);
      expect(i === 0 || pods.pod1!.ip !== pods.pod2!.ip).toBe(true);
    }
    const cni0 = ipJson(node, 'addr', 'show', 'dev', 'cni0')[0] as { mtu: number; addr_info: { family: string; local: string; prefixlen: number }[] };
    expect(cni0.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`)).toEqual(['10.244.7.1/24']);
    for (const pod of ['pod1', 'pod2']) {
      const ns = `${w.prefix}-${pod}`;
      const eth0 = ipJson(ns, 'addr', 'show', 'dev', 'eth0')[0] as { mtu: number; addr_info: { family: string; local: string }[] };
      expect(eth0.mtu).toBe(1400);
      expect(eth0.addr_info.filter((a) => a.family === 'inet').map((a) => a.local)).toEqual([pods[pod]!.ip]);
      const routes = ipJson(ns, '-4', 'route', 'show').map((r) => `${String(r.dst)} via ${String(r.gateway ?? '-')}`);
      expect(routes).toContain('10.244.0.0/16 via 10.244.7.1');
      expect(routes).toContain('default via 10.244.7.1');
    }
    // the host side of each pod is a cni0 port with hairpin on and the flannel MTU
    const ports = ipJson(node, '-d', 'link', 'show', 'master', 'cni0') as { mtu: number; linkinfo?: { info_slave_data?: { hairpin?: boolean } } }[];
    expect(ports).toHaveLength(2);
    for (const p of ports) {
      expect(p.mtu).toBe(1400);
      expect(p.linkinfo?.info_slave_data?.hairpin).toBe(true);
    }
  });

  test('the two pods reach each other', () => {
    const out = execFileSync('ip', ['netns', 'exec', `${w.prefix}-pod1`, 'ping', '-c', '2', '-W', '2', pods.pod2!.ip!], { encoding: 'utf8' });
    expect(out).toMatch(/2 received/);
    const back = execFileSync('ip', ['netns', 'exec', `${w.prefix}-pod2`, 'ping', '-c', '1', '-W', '2', pods.pod1!.ip!], { encoding: 'utf8' });
    expect(back).toMatch(/1 received/);
  });

  test('DEL removes the saved file, the interface and the IP; a second DEL succeeds', async () => {
    const r = await cni('DEL', 'ctr-pod1', 'pod1');
    expect(r).toEqual({ code: 0, json: undefined });
    expect(existsSync(join(dataDir, 'ctr-pod1'))).toBe(false);
    expect(existsSync(join(ipamDir, 'cbr0', pods.pod1!.ip!))).toBe(false);
    expect(ipJson(`${w.prefix}-pod1`, 'link', 'show').map((l) => l.ifname)).toEqual(['lo']);
    expect(ipJson(node, 'link', 'show', 'master', 'cni0')).toHaveLength(1);
    expect(await cni('DEL', 'ctr-pod1', 'pod1')).toEqual({ code: 0, json: undefined });
    // pod2 is untouched
    expect(existsSync(join(dataDir, 'ctr-pod2'))).toBe(true);
    expect(existsSync(join(ipamDir, 'cbr0', pods.pod2!.ip!))).toBe(true);
  });

  test('without subnet.env ADD fails with the clear error (code 11) and leaves nothing behind', async () => {
    rmSync(subnetFile);
    const linksBefore = ipJson(node, 'link', 'show').map((l) => l.ifname);
    const ipamBefore = readdirSync(join(ipamDir, 'cbr0')).sort();
    const r = await cni('ADD', 'ctr-pod3', 'pod3');
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({
      code: 11,
      msg: `failed to load flannel 'subnet.env' file: open ${subnetFile}: no such file or directory. Check the flannel pod log for this node.`,
    });
    expect(String(r.json?.details)).toContain('flanneld has not written');
    expect(readdirSync(dataDir).sort()).toEqual(['ctr-pod2']);
    expect(readdirSync(join(ipamDir, 'cbr0')).sort()).toEqual(ipamBefore);
    expect(ipJson(node, 'link', 'show').map((l) => l.ifname)).toEqual(linksBefore);
    expect(ipJson(`${w.prefix}-pod3`, 'link', 'show').map((l) => l.ifname)).toEqual(['lo']);
    // DEL still works without subnet.env (flanneld down)
    expect(await cni('DEL', 'ctr-pod2', 'pod2')).toEqual({ code: 0, json: undefined });
    expect(readdirSync(dataDir)).toEqual([]);
    expect(existsSync(join(ipamDir, 'cbr0', pods.pod2!.ip!))).toBe(false);
    writeFileSync(subnetFile, SUBNET_ENV);
  });
});

const DUAL_ENV =
  'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.8.1/24\nFLANNEL_IPV6_NETWORK=2001:db8:244::/56\nFLANNEL_IPV6_SUBNET=2001:db8:244:8::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n';

describe.each([
  { name: 'reference delegates', delegates: REFERENCE },
  { name: 'our delegates', delegates: OURS },
])('flannel CNI dual stack, process path ($name)', (mode) => {
  const w = new World('fcnd');
  let dir: string;
  let node: string;
  const ips: Record<string, string[]> = {};

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'flannel-cni-dual-'));
    w.onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    w.netns('node');
    node = `${w.prefix}-node`;
    w.netns('pod1');
    w.netns('pod2');
    writeFileSync(join(dir, 'subnet.env'), DUAL_ENV);
    mkdirSync(join(dir, 'bin'));
    for (const t of ['bridge', 'host-local']) symlinkSync(snapshot(mode.delegates, t, dir), join(dir, 'bin', t));
  });
  afterAll(() => w.cleanup());

  function cni(command: string, pod: string): Outcome {
    const config = {
      cniVersion: '1.0.0',
      name: 'cbr0',
      type: 'flannel',
      subnetFile: join(dir, 'subnet.env'),
      dataDir: join(dir, 'flannel'),
      delegate: { hairpinMode: true, isDefaultGateway: true },
      ipam: { dataDir: join(dir, 'ipam') },
    };
    const env = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: `ctr-${pod}`,
      CNI_NETNS: w.nsPath(pod),
      CNI_IFNAME: 'eth0',
      CNI_PATH: join(dir, 'bin'),
    };
    const r = spawnSync('ip', ['netns', 'exec', node, bundle], { env, input: JSON.stringify(config), encoding: 'utf8' });
    if (r.error) throw r.error;
    return { code: r.status ?? -1, json: r.stdout === '' ? undefined : (JSON.parse(r.stdout) as Record<string, unknown>) };
  }

  test('pods get one address per family, cni0 both gateways, routes to both networks, and reach each other over IPv6', () => {
    for (const pod of ['pod1', 'pod2']) {
      const r = cni('ADD', pod);
      expect(r.json).toMatchObject({ cniVersion: '1.0.0' });
      expect(r.code).toBe(0);
      ips[pod] = (r.json?.ips as { address: string }[]).map((i) => i.address);
      expect(ips[pod]).toHaveLength(2);
      expect(ips[pod]![0]).toMatch(/^10\.244\.8\.\d+\/24$/);
      expect(ips[pod]![1]).toMatch(/^2001:db8:244:8::[0-9a-f]+\/64$/);
      const routes6 = ipJson(`${w.prefix}-${pod}`, '-6', 'route', 'show').map((r) => `${String(r.dst)} via ${String(r.gateway ?? '-')}`);
      expect(routes6).toContain('2001:db8:244::/56 via 2001:db8:244:8::1');
    }
    const cni0 = ipJson(node, 'addr', 'show', 'dev', 'cni0')[0] as { addr_info: { scope: string; local: string; prefixlen: number }[] };
    expect(cni0.addr_info.filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`).sort()).toEqual(['10.244.8.1/24', '2001:db8:244:8::1/64']);
    const target = ips.pod2![1]!.split('/')[0]!;
    const out = execFileSync('ip', ['netns', 'exec', `${w.prefix}-pod1`, 'ping', '-6', '-c', '2', '-W', '2', target], { encoding: 'utf8' });
    expect(out).toMatch(/2 received/);
  });

  test('DEL releases both addresses', () => {
    for (const pod of ['pod1', 'pod2']) {
      expect(cni('DEL', pod)).toEqual({ code: 0, json: undefined });
      for (const a of ips[pod]!) expect(existsSync(join(dir, 'ipam', 'cbr0', a.split('/')[0]!))).toBe(false);
    }
    expect(readdirSync(join(dir, 'flannel'))).toEqual([]);
  });
});
