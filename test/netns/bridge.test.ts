// Our bridge plugin (dist/bin/bridge, delegating to our host-local) for real:
// a node namespace per test, pod namespaces, the plugin run inside the node
// via `ip netns exec`. Kernel state is re-read over netlink / iptables-save /
// nft after each step. Expected behaviour: research cni.md §1.4, §2.1–2.2, §3.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Handle } from '../../lib/netlink/index.ts';
import { deleteNamedNetns } from '../../lib/netns/index.ts';
import { masqChainName, masqComment, nftMasqComment } from '../../plugins/common/ipmasq.ts';
import { spoofChkNames } from '../../plugins/common/spoofchk.ts';
import {
  CniBed,
  OUR_BIN,
  SPEC_VERSIONS,
  cni,
  cniEnv,
  inNs,
  nodeState,
  ping,
  podState,
  probeVlanFiltering,
  snapshot,
  storeIps,
  storeListing,
  type CniOutcome,
  type Snapshot,
} from '../harness/cni.ts';
import { basename } from 'node:path';
import { IPPrefix } from '../../lib/ip/index.ts';

const BRIDGE = join(OUR_BIN, 'bridge');
const vlan = await probeVlanFiltering();
const bed = new CniBed('br');

beforeAll(() => {
  if (!existsSync(BRIDGE) || !existsSync(join(OUR_BIN, 'host-local'))) throw new Error('run `npm run build` first: dist/bin/bridge and dist/bin/host-local are needed');
});
afterAll(() => bed.cleanup());

type Conf = Record<string, unknown>;

interface Net {
  node: string;
  dataDir: string;
  conf: Conf;
}

/** A node namespace and a bridge config with its own store dir. */
function net(extra: Conf = {}, ipam: Conf | null = { subnet: '10.60.0.0/24' }): Net {
  const node = bed.netns('node');
  const dataDir = bed.dir('store');
  const conf: Conf = {
    cniVersion: '1.0.0',
    name: 'brnet',
    type: 'bridge',
    bridge: 'kbr0',
    isGateway: true,
    ipMasq: true,
    hairpinMode: true,
    ...extra,
  };
  if (ipam) conf.ipam = { type: 'host-local', routes: [{ dst: '0.0.0.0/0' }], dataDir, ...ipam };
  return { node, dataDir, conf };
}

function run(n: Net, cmd: string, cid: string, pod: string, ifName = 'eth0', opts: { conf?: Conf; env?: Record<string, string | undefined> } = {}): Promise<CniOutcome> {
  return cni({ node: n.node, plugin: BRIDGE, env: cniEnv(cmd, cid, pod, ifName, OUR_BIN, opts.env), stdin: opts.conf ?? n.conf });
}

async function ok(p: Promise<CniOutcome>): Promise<CniOutcome> {
  const r = await p;
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  return r;
}

const withPrev = (n: Net, prev: unknown, extra: Conf = {}): Conf => ({ ...n.conf, ...extra, prevResult: prev });
const snap = (n: Net, pods: string[] = []): Promise<Snapshot> => snapshot({ node: n.node, pods, stores: [n.dataDir] });

function link<T extends { name: string }>(s: { links: T[] }, name: string): T {
  const l = s.links.find((x) => x.name === name);
  expect(l, `link ${name} in ${s.links.map((x) => x.name).join(',')}`).toBeDefined();
  return l!;
}

const vethsOf = (s: Snapshot): string[] => s.node.links.filter((l) => l.kind === 'veth').map((l) => l.name);

/** What must be gone after DEL: pod iface, host veth, IP files, masquerade rules. */
async function expectClean(n: Net, pods: string[]): Promise<void> {
  const s = await snap(n, pods);
  expect(vethsOf(s)).toEqual([]);
  for (const p of pods) if (s.pods[p]) expect(s.pods[p]!.links.map((l) => l.name)).toEqual(['lo']);
  expect(storeIps(s)).toEqual([]);
  expect(s.node.nat.ip).toEqual([]);
  expect(s.node.nat.ip6).toEqual([]);
  expect(s.node.nat.chains).toEqual([]);
  expect(s.node.nft.filter((l) => l.includes(':'))).toEqual([]);
}

function masqLines(network: string, cid: string, ifName: string, ip: string, subnet: string, fam: 4 | 6 = 4): string[] {
  const chain = masqChainName(network, cid, ifName);
  const c = JSON.stringify(masqComment(network, cid, ifName));
  return [
    `-A POSTROUTING -s ${ip}/${fam === 4 ? 32 : 128} -m comment --comment ${c} -j ${chain}`,
    `-A ${chain} -d ${subnet} -m comment --comment ${c} -j ACCEPT`,
    `-A ${chain} ! -d ${fam === 4 ? '224.0.0.0/4' : 'ff00::/8'} -m comment --comment ${c} -j MASQUERADE`,
  ];
}

// ---- ADD / CHECK / DEL for every spec version ------------------------------------------

describe.each(SPEC_VERSIONS.map((v, i) => [v, i] as const))('spec %s', (version, i) => {
  const subnet = `10.${61 + i}.0.0/24`;
  const gw = `10.${61 + i}.0.1`;
  const ipOf = (n: number): string => `10.${61 + i}.0.${n}`;
  const hasInterfaces = version >= '0.3.0';
  const hasVersionKey = hasInterfaces && version < '1.0.0';
  const hasCheck = version >= '0.4.0';

  test('ADD result shape, kernel state, ping, CHECK, DEL', async () => {
    const n = net({ cniVersion: version }, { subnet });
    const pod1 = bed.netns('pod');
    const pod2 = bed.netns('pod');
    const r1 = await ok(run(n, 'ADD', 'ctr1', pod1));
    const r2 = await ok(run(n, 'ADD', 'ctr2', pod2));

    // Reference formatting: 4-space indented, no trailing newline.
    expect(r1.stdout.endsWith('}')).toBe(true);
    expect(r1.stdout).toContain('\n    "cniVersion"');
    const res = r1.json;
    if (!hasInterfaces) {
      expect(res).toEqual({ cniVersion: version, ip4: { ip: `${ipOf(2)}/24`, gateway: gw, routes: [{ dst: '0.0.0.0/0' }] }, dns: {} });
    } else {
      expect(Object.keys(res)).toEqual(hasVersionKey ? ['cniVersion', 'interfaces', 'ips', 'routes', 'dns'] : ['cniVersion', 'interfaces', 'ips', 'routes']);
      expect(res.cniVersion).toBe(version);
      expect(res.interfaces).toHaveLength(3);
      expect(res.interfaces[0]).toEqual({ name: 'kbr0', mac: expect.stringMatching(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/) });
      expect(res.interfaces[1]).toEqual({ name: expect.stringMatching(/^veth[0-9a-f]{8}$/), mac: expect.stringMatching(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/) });
      expect(res.interfaces[2]).toEqual({ name: 'eth0', mac: expect.stringMatching(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/), sandbox: pod1 });
      const ip = hasVersionKey ? { version: '4', interface: 2, address: `${ipOf(2)}/24`, gateway: gw } : { interface: 2, address: `${ipOf(2)}/24`, gateway: gw };
      expect(res.ips).toEqual([ip]);
      if (hasVersionKey) expect(Object.keys(res.ips[0])).toEqual(['version', 'interface', 'address', 'gateway']);
      expect(res.routes).toEqual([{ dst: '0.0.0.0/0' }]);
      if (hasVersionKey) expect(res.dns).toEqual({});
    }

    // Kernel state.
    const s = await snap(n, [pod1, pod2]);
    const br = link(s.node, 'kbr0');
    expect(br).toMatchObject({ kind: 'bridge', up: true });
    expect(s.node.addrs).toContain(`kbr0 ${gw}/24`);
    expect(s.node.forwarding.v4).toBe('1');
    const veths = s.node.links.filter((l) => l.kind === 'veth');
    expect(veths).toHaveLength(2);
    for (const v of veths) expect(v).toMatchObject({ master: 'kbr0', up: true, hairpin: true });
    if (hasInterfaces) {
      expect(veths.map((v) => v.name)).toContain(res.interfaces[1].name);
      expect(link(s.node, res.interfaces[1].name).mac).toBe(res.interfaces[1].mac);
      expect(br.mac).toBe(res.interfaces[0].mac);
    }
    for (const [pod, ip] of [[pod1, ipOf(2)], [pod2, ipOf(3)]] as const) {
      const p = s.pods[pod]!;
      const eth0 = link(p, 'eth0');
      expect(eth0).toMatchObject({ kind: 'veth', up: true });
      // The pod end's peer is one of the host veths.
      expect(veths.map((v) => v.index)).toContain(eth0.vethPeerIndex);
      expect(p.addrs.filter((a) => !a.startsWith('lo '))).toEqual([`eth0 ${ip}/24`]);
      expect(p.routes).toEqual([`0.0.0.0/0 via ${gw} dev eth0`, `${subnet} dev eth0`]);
    }
    if (hasInterfaces) expect(link(s.pods[pod1]!, 'eth0').mac).toBe(res.interfaces[2].mac);
    expect(s.node.nat.ip).toEqual([...masqLines('brnet', 'ctr1', 'eth0', ipOf(2), subnet), ...masqLines('brnet', 'ctr2', 'eth0', ipOf(3), subnet)].sort(postroutingFirst));
    expect(storeIps(s)).toEqual([`brnet/${ipOf(2)}=ctr1\\r\\neth0`, `brnet/${ipOf(3)}=ctr2\\r\\neth0`]);

    // Pods reach each other through the bridge, and the gateway.
    expect(await ping(pod1, ipOf(3))).toBe(true);
    expect(await ping(pod2, ipOf(2))).toBe(true);
    expect(await ping(pod1, gw)).toBe(true);

    if (hasCheck) {
      await ok(run(n, 'CHECK', 'ctr1', pod1, 'eth0', { conf: withPrev(n, r1.json) }));
      await ok(run(n, 'CHECK', 'ctr2', pod2, 'eth0', { conf: withPrev(n, r2.json) }));
      const noPrev = await run(n, 'CHECK', 'ctr1', pod1);
      expect(noPrev.code).toBe(1);
      expect(noPrev.json.msg).toBe('Required prevResult missing');

      // Masquerade jump removed → CHECK names the problem.
      const chain = masqChainName('brnet', 'ctr1', 'eth0');
      await inNs(n.node, 'iptables', '-t', 'nat', '-D', 'POSTROUTING', '-s', `${ipOf(2)}/32`, '-m', 'comment', '--comment', masqComment('brnet', 'ctr1', 'eth0'), '-j', chain);
      const noJump = await run(n, 'CHECK', 'ctr1', pod1, 'eth0', { conf: withPrev(n, r1.json) });
      expect(noJump.code).toBe(1);
      expect(noJump.json.msg).toMatch(/^ipMasq: /);
      expect(noJump.json.msg).toContain(ipOf(2));

      // Default route removed.
      await inNs(pod2, 'ip', 'route', 'del', 'default');
      const noRoute = await run(n, 'CHECK', 'ctr2', pod2, 'eth0', { conf: withPrev(n, r2.json) });
      expect(noRoute.code).toBe(1);
      expect(noRoute.json.msg).toBe('Expected Route {Dst:0.0.0.0/0 GW:<nil>} not found in routing table');

      // Pod IP removed.
      await inNs(pod1, 'ip', 'addr', 'del', `${ipOf(2)}/24`, 'dev', 'eth0');
      const noIp = await run(n, 'CHECK', 'ctr1', pod1, 'eth0', { conf: withPrev(n, r1.json) });
      expect(noIp.code).toBe(1);
      expect(noIp.json.msg).toBe(`Failed to match addr ${ipOf(2)}/24 on interface eth0`);
    } else {
      const c = await run(n, 'CHECK', 'ctr1', pod1);
      expect(c.code).toBe(1);
      expect(c.json).toMatchObject({ code: 1, msg: 'config version does not allow CHECK' });
    }

    // DEL (with prevResult where the runtime would send one), twice.
    for (const [cid, pod, r] of [['ctr1', pod1, r1], ['ctr2', pod2, r2]] as const) {
      const conf = hasCheck ? withPrev(n, r.json) : n.conf;
      const d = await ok(run(n, 'DEL', cid, pod, 'eth0', { conf }));
      expect(d.stdout).toBe('');
      await ok(run(n, 'DEL', cid, pod, 'eth0', { conf }));
    }
    await expectClean(n, [pod1, pod2]);
    // The bridge and its gateway stay (as the reference).
    const after = await nodeState(n.node);
    expect(after.addrs).toContain(`kbr0 ${gw}/24`);
  });
});

/** iptables-save prints POSTROUTING first, then user chains in creation order. */
function postroutingFirst(a: string, b: string): number {
  const pa = a.startsWith('-A POSTROUTING') ? 0 : 1;
  const pb = b.startsWith('-A POSTROUTING') ? 0 : 1;
  return pa - pb;
}

// ---- options --------------------------------------------------------------------------

describe('options', () => {
  test('isDefaultGateway + dual stack + mtu + promiscMode', async () => {
    const n = net({ isDefaultGateway: true, mtu: 1400, promiscMode: true, hairpinMode: false }, { ranges: [[{ subnet: '10.70.0.0/24' }], [{ subnet: 'fd00:70::/64' }]], routes: [] });
    const pod = bed.netns('pod');
    const r = await ok(run(n, 'ADD', 'c1', pod));
    expect(r.json.ips).toEqual([
      { interface: 2, address: '10.70.0.2/24', gateway: '10.70.0.1' },
      { interface: 2, address: 'fd00:70::2/64', gateway: 'fd00:70::1' },
    ]);
    expect(r.json.routes).toEqual([
      { dst: '0.0.0.0/0', gw: '10.70.0.1' },
      { dst: '::/0', gw: 'fd00:70::1' },
    ]);
    const s = await snap(n, [pod]);
    expect(link(s.node, 'kbr0')).toMatchObject({ mtu: 1400, promisc: true });
    expect(s.node.addrs).toEqual(expect.arrayContaining(['kbr0 10.70.0.1/24', 'kbr0 fd00:70::1/64']));
    expect(s.node.forwarding).toEqual({ v4: '1', v6: '1' });
    const hostVeth = link(s.node, r.json.interfaces[1].name);
    expect(hostVeth).toMatchObject({ mtu: 1400, hairpin: false });
    const p = s.pods[pod]!;
    expect(link(p, 'eth0').mtu).toBe(1400);
    expect(p.addrs).toEqual(['eth0 10.70.0.2/24', 'eth0 fd00:70::2/64']);
    expect(p.routes).toEqual(expect.arrayContaining(['0.0.0.0/0 via 10.70.0.1 dev eth0', '::/0 via fd00:70::1 dev eth0']));
    expect(s.node.nat.ip).toEqual(masqLines('brnet', 'c1', 'eth0', '10.70.0.2', '10.70.0.0/24').sort(postroutingFirst));
    expect(s.node.nat.ip6).toEqual(masqLines('brnet', 'c1', 'eth0', 'fd00:70::2', 'fd00:70::/64', 6).sort(postroutingFirst));
    expect(await ping(pod, '10.70.0.1')).toBe(true);
    expect(await ping(pod, 'fd00:70::1')).toBe(true);
    await ok(run(n, 'CHECK', 'c1', pod, 'eth0', { conf: withPrev(n, r.json) }));
    await ok(run(n, 'DEL', 'c1', pod, 'eth0', { conf: withPrev(n, r.json) }));
    await expectClean(n, [pod]);
  });

  test('hairpinMode with promiscMode is refused before anything is created', async () => {
    const n = net({ promiscMode: true, hairpinMode: true });
    const pod = bed.netns('pod');
    const before = await snap(n, [pod]);
    const r = await run(n, 'ADD', 'c1', pod);
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ code: 7, msg: 'cannot set hairpin mode and promiscuous mode at the same time.' });
    expect(await snap(n, [pod])).toEqual(before);
  });

  test('forceAddress: a conflicting gateway fails cleanly without it, is replaced with it', async () => {
    const n = net({}, { subnet: '10.71.0.0/24' });
    const h = Handle.open({ netns: n.node });
    try {
      await h.linkAdd({ name: 'kbr0', kind: 'bridge' });
      const br = await h.linkByName('kbr0');
      await h.addrAdd(br.index, { address: IPPrefix.mustParse('10.71.0.9/24') });
    } finally {
      h.close();
    }
    const pod = bed.netns('pod');
    const before = await snap(n, [pod]);
    const r = await run(n, 'ADD', 'f1', pod);
    expect(r.code).toBe(1);
    expect(r.json.msg).toBe('failed to set bridge addr: "kbr0" already has an IP address different from 10.71.0.1/24');
    const after = await snap(n, [pod]);
    // Nothing left behind: no pod iface, no host veth, IP released, no rules.
    expect(after.pods).toEqual(before.pods);
    expect(after.node.links.map((l) => l.name)).toEqual(before.node.links.map((l) => l.name));
    expect(after.node.addrs).toEqual(['kbr0 10.71.0.9/24']);
    expect(storeIps(after)).toEqual([]);
    expect(after.node.nat).toEqual(before.node.nat);
    await ok(run(n, 'DEL', 'f1', pod));

    const forced = { ...n.conf, forceAddress: true };
    const r2 = await ok(run(n, 'ADD', 'f1', pod, 'eth0', { conf: forced }));
    expect(r2.json.ips[0].gateway).toBe('10.71.0.1');
    const s = await nodeState(n.node);
    expect(s.addrs.filter((a) => a.startsWith('kbr0 '))).toEqual(['kbr0 10.71.0.1/24']);
    expect(await ping(pod, '10.71.0.1')).toBe(true);
    await ok(run(n, 'DEL', 'f1', pod, 'eth0', { conf: forced }));
    await expectClean(n, [pod]);
  });

  test('macspoofchk installs the bridge nat table layout and DEL removes it', async () => {
    const n = net({ macspoofchk: true }, { subnet: '10.72.0.0/24' });
    const pod = bed.netns('pod');
    const r = await ok(run(n, 'ADD', 'm1', pod));
    const hostVeth = r.json.interfaces[1].name as string;
    const mac = r.json.interfaces[2].mac as string;
    const { ifaceChain, macChain, comment } = spoofChkNames({ containerId: 'm1', ifName: 'eth0' });
    const lines = (await nodeState(n.node)).nft.filter((l) => l.startsWith('bridge nat'));
    expect(lines).toEqual([
      'bridge nat',
      'bridge nat chain PREROUTING hook prerouting',
      `bridge nat chain ${ifaceChain}`,
      `bridge nat chain ${macChain}`,
      `bridge nat PREROUTING: iifname "${hostVeth}" jump ${ifaceChain} # ${comment}`,
      `bridge nat ${ifaceChain}: jump ${macChain} # ${comment}`,
      `bridge nat ${macChain}: ether saddr ${mac} return # ${comment}`,
      `bridge nat ${macChain}: drop # ${comment}`,
    ]);
    expect(await ping(pod, '10.72.0.1')).toBe(true);
    // A spoofed source MAC is dropped on the bridge.
    await inNs(pod, 'ip', 'link', 'set', 'eth0', 'address', '02:00:00:00:00:99');
    await inNs(pod, 'ip', 'neigh', 'flush', 'all');
    await inNs(n.node, 'ip', 'neigh', 'flush', 'all');
    expect(await ping(pod, '10.72.0.1')).toBe(false);
    await ok(run(n, 'DEL', 'm1', pod, 'eth0', { conf: withPrev(n, r.json) }));
    const after = (await nodeState(n.node)).nft.filter((l) => l.startsWith('bridge nat'));
    expect(after).toEqual(['bridge nat', 'bridge nat chain PREROUTING hook prerouting']);
  });

  test('enabledad sets accept_dad/enhanced_dad; the default disables DAD', async () => {
    for (const enabledad of [true, false]) {
      const n = net({ enabledad }, { subnet: '10.73.0.0/24' });
      const pod = bed.netns('pod');
      await ok(run(n, 'ADD', 'd1', pod));
      const h = Handle.open({ netns: pod });
      try {
        expect(h.readSysctl('net/ipv6/conf/eth0/accept_dad')).toBe(enabledad ? '1' : '0');
        if (enabledad) expect(h.readSysctl('net/ipv6/conf/eth0/enhanced_dad')).toBe('1');
        expect(h.readSysctl('net/ipv4/conf/eth0/arp_notify')).toBe('1');
      } finally {
        h.close();
      }
      await ok(run(n, 'DEL', 'd1', pod));
    }
  });

  test('disableContainerInterface leaves the pod interface down (L2, no IPAM)', async () => {
    const n = net({ disableContainerInterface: true, isGateway: false, ipMasq: false }, null);
    n.conf.ipam = {};
    const pod = bed.netns('pod');
    const r = await ok(run(n, 'ADD', 'x1', pod));
    expect(r.json.ips).toBeUndefined();
    const p = await podState(pod);
    expect(link(p, 'eth0').up).toBe(false);
    const withIpam = await run(n, 'ADD', 'x2', bed.netns('pod'), 'eth0', { conf: { ...n.conf, ipam: { type: 'host-local', subnet: '10.74.0.0/24', dataDir: n.dataDir } } });
    expect(withIpam.json).toMatchObject({ code: 7, msg: 'cannot use IPAM when DisableContainerInterface flag is set' });
    await ok(run(n, 'DEL', 'x1', pod));
    expect(vethsOf(await snap(n))).toEqual([]);
  });

  test('portIsolation isolates the host port', async () => {
    const n = net({ portIsolation: true, hairpinMode: false }, { subnet: '10.75.0.0/24' });
    const pod = bed.netns('pod');
    const r = await ok(run(n, 'ADD', 'i1', pod));
    expect(link(await nodeState(n.node), r.json.interfaces[1].name)).toMatchObject({ isolated: true, hairpin: false });
    await ok(run(n, 'DEL', 'i1', pod));
  });

  test('L2 mode (ipam {}): interfaces only, pod iface up without addresses', async () => {
    const n = net({ isGateway: false, ipMasq: false }, null);
    n.conf.ipam = {};
    const pod = bed.netns('pod');
    const r = await ok(run(n, 'ADD', 'l1', pod));
    expect(Object.keys(r.json)).toEqual(['cniVersion', 'interfaces']);
    const s = await snap(n, [pod]);
    expect(link(s.pods[pod]!, 'eth0').up).toBe(true);
    expect(s.pods[pod]!.addrs).toEqual([]);
    expect(s.node.addrs.filter((a) => a.startsWith('kbr0'))).toEqual([]);
    await ok(run(n, 'DEL', 'l1', pod));
    await expectClean(n, [pod]);
  });

  test('container MAC: runtimeConfig.mac > args.cni.mac > CNI_ARGS MAC', async () => {
    const n = net({}, { subnet: '10.76.0.0/24' });
    const cases: [Conf, string][] = [
      [{}, 'c2:11:22:33:44:55'],
      [{ args: { cni: { mac: 'c2:11:22:33:44:66' } } }, 'c2:11:22:33:44:66'],
      [{ args: { cni: { mac: 'c2:11:22:33:44:66' } }, runtimeConfig: { mac: 'c2:11:22:33:44:77' } }, 'c2:11:22:33:44:77'],
    ];
    let k = 0;
    for (const [extra, want] of cases) {
      const pod = bed.netns('pod');
      const cid = `mac${k++}`;
      const r = await ok(run(n, 'ADD', cid, pod, 'eth0', { conf: { ...n.conf, ...extra }, env: { CNI_ARGS: 'IgnoreUnknown=1;MAC=c2:11:22:33:44:55' } }));
      expect(r.json.interfaces[2].mac).toBe(want);
      expect(link(await podState(pod), 'eth0').mac).toBe(want);
      await ok(run(n, 'DEL', cid, pod));
    }
    const bad = await run(n, 'ADD', 'mac9', bed.netns('pod'), 'eth0', { env: { CNI_ARGS: 'FOO=bar' } });
    expect(bad.code).toBe(1);
    expect(bad.json.msg).toContain('FOO=bar');
  });

  test('DNS: the config’s dns wins, else IPAM’s (resolvConf)', async () => {
    const resolv = join(bed.dir('resolv'), 'resolv.conf');
    writeFileSync(resolv, 'nameserver 10.0.0.53\nsearch a.example\noptions ndots:5\n');
    const n = net({}, { subnet: '10.77.0.0/24', resolvConf: resolv });
    const pod = bed.netns('pod');
    const fromIpam = await ok(run(n, 'ADD', 'n1', pod));
    expect(fromIpam.json.dns).toEqual({ nameservers: ['10.0.0.53'], search: ['a.example'], options: ['ndots:5'] });
    await ok(run(n, 'DEL', 'n1', pod));
    const confDns = { ...n.conf, dns: { nameservers: ['192.0.2.53'], domain: 'cluster.local' } };
    const fromConf = await ok(run(n, 'ADD', 'n1', pod, 'eth0', { conf: confDns }));
    expect(fromConf.json.dns).toEqual({ nameservers: ['192.0.2.53'], domain: 'cluster.local' });
    await ok(run(n, 'DEL', 'n1', pod, 'eth0', { conf: confDns }));
  });

  test('ipMasqBackend nftables: one rule per IP in inet cni_plugins_masquerade', async () => {
    const n = net({ ipMasqBackend: 'nftables' }, { subnet: '10.78.0.0/24' });
    const pod = bed.netns('pod');
    const r = await ok(run(n, 'ADD', 'q1', pod));
    const s = await nodeState(n.node);
    expect(s.nat.ip).toEqual([]);
    const table = s.nft.filter((l) => l.startsWith('inet cni_plugins_masquerade'));
    expect(table).toEqual(
      expect.arrayContaining([
        'inet cni_plugins_masquerade chain postrouting hook postrouting',
        'inet cni_plugins_masquerade chain masq_checks',
        `inet cni_plugins_masquerade masq_checks: ip saddr 10.78.0.2 ip daddr != 10.78.0.0/24 masquerade # ${nftMasqComment('brnet', 'eth0', 'q1')}`,
      ]),
    );
    await ok(run(n, 'CHECK', 'q1', pod, 'eth0', { conf: withPrev(n, r.json) }));
    await ok(run(n, 'DEL', 'q1', pod, 'eth0', { conf: withPrev(n, r.json) }));
    const after = (await nodeState(n.node)).nft.filter((l) => l.startsWith('inet cni_plugins_masquerade masq_checks:'));
    expect(after).toEqual([]);
  });

  // vlan, vlanTrunk and preserveDefaultVlan on a kernel with VLAN filtering:
  // test/vm/suites/bridge-vlan.test.ts (the test VM). Here, where the kernel
  // has none, only the failure is checked.
  test.runIf(!vlan.supported)('vlan on a kernel without VLAN filtering: ADD fails and leaves nothing', async () => {
    const n = net({ vlan: 100 }, { subnet: '10.79.0.0/24' });
    const pod = bed.netns('pod');
    const before = await snap(n, [pod]);
    const r = await run(n, 'ADD', 'v1', pod);
    expect(r.code).toBe(1);
    expect(r.json.msg).toMatch(/^failed to create bridge "kbr0": .*not supported/);
    expect(await snap(n, [pod])).toEqual(before);
    await ok(run(n, 'DEL', 'v1', pod));
  });
});

// ---- lifecycle edge cases ------------------------------------------------------------------

describe('lifecycle', () => {
  test('two attachments in one pod: DEL eth1 leaves eth0 masquerade intact', async () => {
    const n = net({}, { subnet: '10.80.0.0/24' });
    const pod = bed.netns('pod');
    const r0 = await ok(run(n, 'ADD', 'ctr1', pod, 'eth0'));
    const before = (await nodeState(n.node)).nat.ip;
    const r1 = await ok(run(n, 'ADD', 'ctr1', pod, 'eth1'));
    expect(r1.json.ips[0].address).toBe('10.80.0.3/24');
    await ok(run(n, 'DEL', 'ctr1', pod, 'eth1', { conf: withPrev(n, r1.json) }));
    expect((await nodeState(n.node)).nat.ip).toEqual(before);
    await ok(run(n, 'CHECK', 'ctr1', pod, 'eth0', { conf: withPrev(n, r0.json) }));
    expect(storeIps(storeListing([n.dataDir]))).toEqual(['brnet/10.80.0.2=ctr1\\r\\neth0']);
    await ok(run(n, 'DEL', 'ctr1', pod, 'eth0', { conf: withPrev(n, r0.json) }));
    await expectClean(n, [pod]);
  });

  test('netns deleted before DEL: DEL succeeds, IP released, masquerade removed', async () => {
    const n = net({}, { subnet: '10.81.0.0/24' });
    const pod = bed.netns('pod');
    const r = await ok(run(n, 'ADD', 'g1', pod));
    deleteNamedNetns(basename(pod));
    await ok(run(n, 'DEL', 'g1', pod, 'eth0', { conf: withPrev(n, r.json) }));
    await expectClean(n, []);
    await ok(run(n, 'DEL', 'g1', pod, 'eth0', { conf: withPrev(n, r.json) }));
  });

  test('missing IPAM binary: ADD fails leaving no interface, DEL succeeds', async () => {
    const n = net({}, { subnet: '10.82.0.0/24' });
    n.conf.ipam = { type: 'nonexistent' };
    const pod = bed.netns('pod');
    const before = await snap(n, [pod]);
    const r = await run(n, 'ADD', 'i1', pod, 'eth1');
    expect(r.code).toBe(1);
    expect(r.json.msg).toBe(`failed to find plugin "nonexistent" in path [${OUR_BIN}]`);
    const after = await snap(n, [pod]);
    expect(after.pods).toEqual(before.pods);
    // No veth, and not the bridge this failed ADD created either.
    expect(after.node.links.map((l) => l.name)).toEqual(before.node.links.map((l) => l.name));
    await ok(run(n, 'DEL', 'i1', pod, 'eth1'));
  });

  test('ADD of an existing (container, ifname) fails and keeps the first attachment', async () => {
    const n = net({}, { subnet: '10.83.0.0/24' });
    const pod = bed.netns('pod');
    const r = await ok(run(n, 'ADD', 'a1', pod));
    const before = await snap(n, [pod]);
    const again = await run(n, 'ADD', 'a1', pod);
    expect(again.json.msg).toBe('container veth name provided (eth0) already exists');
    expect(await snap(n, [pod])).toEqual(before);
    await ok(run(n, 'DEL', 'a1', pod, 'eth0', { conf: withPrev(n, r.json) }));
  });

  test('GC (1.1.0) removes masquerade state and IPs of attachments not listed', async () => {
    const n = net({ cniVersion: '1.1.0' }, { subnet: '10.84.0.0/24' });
    const pod1 = bed.netns('pod');
    const pod2 = bed.netns('pod');
    await ok(run(n, 'ADD', 'keep', pod1));
    await ok(run(n, 'ADD', 'gone', pod2));
    const gc = await cni({
      node: n.node,
      plugin: BRIDGE,
      env: { CNI_COMMAND: 'GC', CNI_PATH: OUR_BIN },
      stdin: { ...n.conf, 'cni.dev/valid-attachments': [{ containerID: 'keep', ifname: 'eth0' }] },
    });
    expect(gc.code, gc.stdout).toBe(0);
    expect(gc.stdout).toBe('');
    const s = await snap(n);
    expect(s.node.nat.ip).toEqual(masqLines('brnet', 'keep', 'eth0', '10.84.0.2', '10.84.0.0/24').sort(postroutingFirst));
    expect(storeIps(s)).toEqual(['brnet/10.84.0.2=keep\\r\\neth0']);
    await ok(run(n, 'DEL', 'keep', pod1));
    await ok(run(n, 'DEL', 'gone', pod2));
    await expectClean(n, [pod1, pod2]);
  });

  test('STATUS (1.1.0) forwards to IPAM', async () => {
    const n = net({ cniVersion: '1.1.0' }, { subnet: '10.85.0.0/30' });
    const status = (conf: Conf) => cni({ node: n.node, plugin: BRIDGE, env: { CNI_COMMAND: 'STATUS', CNI_PATH: OUR_BIN }, stdin: conf });
    const fresh = await status(n.conf);
    expect(fresh.code, fresh.stdout).toBe(0);
    // A /30 holds one pod address besides the gateway: exhausted after one ADD.
    const pod = bed.netns('pod');
    await ok(run(n, 'ADD', 's1', pod));
    const full = await status(n.conf);
    expect(full.code).toBe(1);
    expect(full.json.code).toBe(50);
    const missing = await status({ ...n.conf, ipam: { type: 'nonexistent' } });
    expect(missing.json).toMatchObject({ code: 50 });
    expect((await status({ ...n.conf, cniVersion: '1.0.0' })).json).toMatchObject({ code: 1, msg: 'config version does not allow STATUS' });
    await ok(run(n, 'DEL', 's1', pod));
  });
});
