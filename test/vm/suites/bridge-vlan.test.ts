// The bridge plugin's VLAN options on a kernel with bridge VLAN filtering
// (the test VM; this machine's kernel has none): `vlan`, `vlanTrunk`,
// `preserveDefaultVlan` (research cni.md §2.1). Our dist/bin/bridge runs in
// a node namespace as in test/netns/bridge.test.ts; the port VLAN table is
// read with iproute2's `bridge -j vlan show`, and the VLANs are proven with
// traffic: same VLAN reaches, another VLAN on the same bridge does not, a
// trunk pod's 802.1Q subinterface reaches an access pod of its VLAN.
// Where the reference plugin (/usr/lib/cni, 1.1.1) has the option (`vlan`
// with a gateway), it runs side by side.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CniBed, OUR_BIN, REF_BIN, cni, cniEnv, inNs, ping, type CniOutcome } from '../../harness/cni.ts';

const bed = new CniBed('vmvlan');
beforeAll(() => {
  for (const p of [join(OUR_BIN, 'bridge'), join(OUR_BIN, 'host-local'), join(REF_BIN, 'bridge')]) {
    if (!existsSync(p)) throw new Error(`${p} is missing (npm run build; apt install containernetworking-plugins)`);
  }
});
afterAll(() => bed.cleanup());

type Conf = Record<string, unknown>;

function conf(dataDir: string, subnet: string | null, extra: Conf): Conf {
  return {
    cniVersion: '1.0.0',
    name: 'vlannet',
    type: 'bridge',
    bridge: 'vbr0',
    ...extra,
    ipam: subnet === null ? {} : { type: 'host-local', subnet, dataDir },
  };
}

function add(bin: string, node: string, pod: string, cid: string, c: Conf, cmd = 'ADD'): Promise<CniOutcome> {
  return cni({ node, plugin: join(bin, 'bridge'), env: cniEnv(cmd, cid, pod, 'eth0', bin), stdin: c });
}

async function ok(p: Promise<CniOutcome>): Promise<CniOutcome> {
  const r = await p;
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  return r;
}

/** The host end (result interface 1) of an attachment. */
const hostPort = (r: CniOutcome): string => r.json.interfaces[1].name as string;

interface VlanEntry {
  vlan: number;
  vlanEnd?: number;
  flags?: string[];
}

/** A port's VLANs, one string per VID: "100 pvid untagged", "101 tagged". */
async function portVlans(node: string, port: string): Promise<string[]> {
  const all = JSON.parse(await inNs(node, 'bridge', '-j', 'vlan', 'show')) as { ifname: string; vlans: VlanEntry[] }[];
  const out: string[] = [];
  for (const v of all.find((p) => p.ifname === port)?.vlans ?? []) {
    const flags = v.flags ?? [];
    const kind = `${flags.includes('PVID') ? ' pvid' : ''}${flags.includes('Egress Untagged') ? ' untagged' : ' tagged'}`;
    for (let vid = v.vlan; vid <= (v.vlanEnd ?? v.vlan); vid++) out.push(`${vid}${kind}`);
  }
  return out;
}

async function vlanFiltering(node: string, bridge: string): Promise<number> {
  const [link] = JSON.parse(await inNs(node, 'ip', '-d', '-j', 'link', 'show', 'dev', bridge)) as { linkinfo?: { info_data?: { vlan_filtering?: number } } }[];
  return link?.linkinfo?.info_data?.vlan_filtering ?? -1;
}

// Every plugin run costs seconds under emulation, so each test checks
// several things on the same attachments.
describe('bridge plugin: vlan', () => {
  test('vlan: vlan_filtering on the bridge, the port in the VLAN as PVID untagged, default VLAN 1 removed; DEL removes the port', async () => {
    const node = bed.netns('node');
    const pod = bed.netns('pod');
    const c = conf(bed.dir('store'), '10.79.0.0/24', { vlan: 100 });
    const r = await ok(add(OUR_BIN, node, pod, 'v1', c));
    expect(await vlanFiltering(node, 'vbr0')).toBe(1);
    expect(await portVlans(node, hostPort(r))).toEqual(['100 pvid untagged']);
    await ok(add(OUR_BIN, node, pod, 'v1', c, 'DEL'));
    expect(await portVlans(node, hostPort(r))).toEqual([]);
    const links = JSON.parse(await inNs(node, 'ip', '-j', 'link', 'show')) as { ifname: string }[];
    expect(links.map((l) => l.ifname).sort()).toEqual(['lo', 'vbr0']);
  });

  test('vlan isolates: pods of one VLAN reach each other, a pod of another VLAN on the same bridge and subnet does not; preserveDefaultVlan keeps VLAN 1 on the port or (default since plugins v1.8.0) removes it', async () => {
    const node = bed.netns('node');
    const store = bed.dir('store');
    const [a, b, other] = [bed.netns('pod'), bed.netns('pod'), bed.netns('pod')];
    const ra = await ok(add(OUR_BIN, node, a, 'a', conf(store, '10.84.0.0/24', { vlan: 100, preserveDefaultVlan: true })));
    const rb = await ok(add(OUR_BIN, node, b, 'b', conf(store, '10.84.0.0/24', { vlan: 100 })));
    const ro = await ok(add(OUR_BIN, node, other, 'o', conf(store, '10.84.0.0/24', { vlan: 200, preserveDefaultVlan: false })));
    expect(await portVlans(node, hostPort(ra))).toEqual(['1 untagged', '100 pvid untagged']);
    expect(await portVlans(node, hostPort(rb))).toEqual(['100 pvid untagged']);
    expect(await portVlans(node, hostPort(ro))).toEqual(['200 pvid untagged']);
    const ip = (r: CniOutcome): string => (r.json.ips[0].address as string).split('/')[0]!;
    expect(await ping(a, ip(rb)), 'same VLAN').toBe(true);
    expect(await ping(b, ip(ra)), 'same VLAN').toBe(true);
    expect(await ping(other, ip(ra)), 'VLAN 200 to VLAN 100').toBe(false);
    expect(await ping(a, ip(ro)), 'VLAN 100 to VLAN 200').toBe(false);
  });

  test('vlan with isGateway: the pod reaches its gateway, as with the reference plugin (its <bridge>.<vlan> gateway interface)', async () => {
    const results: Record<string, { reached: boolean; interfaces: string[] }> = {};
    for (const [who, bin] of [['ref', REF_BIN], ['ours', OUR_BIN]] as const) {
      const node = bed.netns(`${who}node`);
      const pod = bed.netns(`${who}pod`);
      const c = { ...conf(bed.dir('store'), '10.85.0.0/24', { vlan: 100, isGateway: true }), cniVersion: '0.4.0' };
      const r = await ok(add(bin, node, pod, 'g1', c));
      results[who] = { reached: await ping(pod, r.json.ips[0].gateway as string), interfaces: (r.json.interfaces as { name: string }[]).map((i) => i.name.replace(/^veth[0-9a-f]{8}$/, 'veth')) };
    }
    expect(results['ref']).toEqual({ reached: true, interfaces: ['vbr0', 'veth', 'eth0', 'vbr0.100'] });
    expect(results['ours']?.reached, 'our pod reaches its gateway').toBe(true);
    expect(results['ours']?.interfaces, 'our result interfaces').toEqual(results['ref']?.interfaces);
  });
});

describe('bridge plugin: vlanTrunk', () => {
  test('vlanTrunk: the port carries the trunk VIDs tagged with vlan as its native VLAN; an 802.1Q subinterface in the trunk pod reaches an access pod of a trunk VLAN, not one outside the trunk', async () => {
    const node = bed.netns('node');
    const store = bed.dir('store');
    const [trunk, access, outside] = [bed.netns('pod'), bed.netns('pod'), bed.netns('pod')];
    const rt = await ok(add(OUR_BIN, node, trunk, 'tr', conf(store, '10.86.0.0/24', { vlan: 100, vlanTrunk: [{ id: 301 }, { minID: 200, maxID: 202 }] })));
    expect(await vlanFiltering(node, 'vbr0')).toBe(1);
    expect(await portVlans(node, hostPort(rt))).toEqual(['100 pvid untagged', '200 tagged', '201 tagged', '202 tagged', '301 tagged']);
    await ok(add(OUR_BIN, node, access, 'ac', { ...conf(store, null, { vlan: 301 }), name: 'vlannet2' }));
    await ok(add(OUR_BIN, node, outside, 'ou', { ...conf(store, null, { vlan: 302 }), name: 'vlannet3' }));
    await inNs(trunk, 'ip', 'link', 'add', 'link', 'eth0', 'name', 'eth0.301', 'type', 'vlan', 'id', '301');
    await inNs(trunk, 'ip', 'addr', 'add', '198.51.100.1/24', 'dev', 'eth0.301');
    await inNs(trunk, 'ip', 'link', 'set', 'eth0.301', 'up');
    await inNs(access, 'ip', 'addr', 'add', '198.51.100.2/24', 'dev', 'eth0');
    await inNs(outside, 'ip', 'addr', 'add', '198.51.100.3/24', 'dev', 'eth0');
    expect(await ping(trunk, '198.51.100.2'), 'trunk VLAN 301 to its access pod').toBe(true);
    expect(await ping(trunk, '198.51.100.3'), 'trunk to VLAN 302, outside the trunk').toBe(false);
  });

  test('vlanTrunk with preserveDefaultVlan and no vlan: VLAN 1 stays the native VLAN', async () => {
    const node = bed.netns('node');
    const r = await ok(add(OUR_BIN, node, bed.netns('pod'), 'p3', conf(bed.dir('store'), '10.89.0.0/24', { vlanTrunk: [{ id: 400 }], preserveDefaultVlan: true })));
    expect(await portVlans(node, hostPort(r))).toEqual(['1 pvid untagged', '400 tagged']);
  });
});
