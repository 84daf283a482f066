// bridge ADD/DEL/CHECK on FakeHandles (node and pod namespaces), a recording
// IPAM delegate and lib/netfilter's fakes: what the plugin asks of the kernel,
// without root. The same behaviour against the kernel: test/netns/bridge.test.ts.
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ErrorCode, codeOf, errnoOf } from '../../lib/errors.ts';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import { FakeHandle, FakeNetworks } from '../../lib/netlink/fake.ts';
import * as C from '../../lib/netlink/constants.ts';
import { FakeIptables, parseIptablesSave } from '../../lib/netfilter/iptables.ts';
import { FakeNft } from '../../lib/netfilter/nft.ts';
import { NetnsNotFoundError } from '../../lib/netns/index.ts';
import { cniCodeOf } from '../skel/errors.ts';
import { PluginNotFoundError } from '../skel/invoke.ts';
import type { CmdArgs, Result } from '../skel/types.ts';
import type { IpamDelegate } from '../common/ipam.ts';
import { makeBridgeFuncs, type BridgeDeps } from './bridge.ts';

const POD_NS = '/var/run/netns/pod1';

class RecordingIpam implements IpamDelegate {
  calls: string[] = [];
  result: Result = { ips: [{ address: '10.1.0.5/24', gateway: '10.1.0.1' }], routes: [] };
  async add(type: string): Promise<Result> {
    this.calls.push(`add ${type}`);
    return structuredClone(this.result);
  }
  async del(type: string): Promise<void> {
    this.calls.push(`del ${type}`);
  }
  async check(type: string): Promise<void> {
    this.calls.push(`check ${type}`);
  }
  async gc(type: string): Promise<void> {
    this.calls.push(`gc ${type}`);
  }
  statusError: unknown = undefined;
  async status(type: string): Promise<void> {
    this.calls.push(`status ${type}`);
    if (this.statusError !== undefined) throw this.statusError;
  }
}

/** A node with one pod namespace (pod gone: `podGone`), the fakes and the plugin wired to them. */
class Bed {
  readonly nets = new FakeNetworks();
  readonly host = this.nets.namespace();
  readonly pod = this.nets.namespace();
  readonly ipam = new RecordingIpam();
  readonly iptables = new FakeIptables();
  readonly nft = new FakeNft();
  podGone = false;
  readonly deps: BridgeDeps = {
    masq: () => ({ iptables: this.iptables, nft: this.nft }),
    sleep: async () => undefined,
    ipam: this.ipam,
    openHandle: (netns) => {
      if (netns === undefined) return this.host.reopen();
      if (netns !== POD_NS || this.podGone) throw new NetnsNotFoundError(netns);
      return this.pod.reopen();
    },
  };
  readonly plugin = makeBridgeFuncs(this.deps);

  args(conf: Record<string, unknown> = {}, over: Partial<CmdArgs> = {}): CmdArgs {
    const config = { cniVersion: '1.0.0', name: 'brnet', type: 'bridge', bridge: 'cni0', isGateway: true, ipam: { type: 'host-local' }, ...conf };
    return {
      command: 'ADD',
      containerId: 'ctr1',
      netns: POD_NS,
      ifName: 'eth0',
      args: '',
      path: ['/opt/cni/bin'],
      stdinData: Buffer.from(JSON.stringify(config)),
      config,
      cniVersion: '1.0.0',
      env: {},
      ...over,
    };
  }

  /** The args of a DEL/CHECK carrying `prev` as prevResult. */
  withPrev(conf: Record<string, unknown>, prev: Result, command: CmdArgs['command']): CmdArgs {
    return this.args({ ...conf, prevResult: JSON.parse(JSON.stringify({ cniVersion: '1.0.0', ...prev })) }, { command });
  }

  async natRules(): Promise<string[]> {
    return parseIptablesSave(await this.iptables.save('ip', 'nat'))
      .rules('nat')
      .map((r) => r.line);
  }
}

const link = (h: FakeHandle, name: string) => h.linkFind(name);
const addrsOf = async (h: FakeHandle, name: string): Promise<string[]> => {
  const l = await h.linkByName(name);
  return (await h.addrList({ index: l.index })).map((a) => String(a.address)).sort();
};
const routesOf = async (h: FakeHandle, family: 4 | 6 = 4): Promise<string[]> =>
  (await h.routeList({ family })).map((r) => `${r.dst}${r.gw ? ` via ${r.gw}` : ''} dev #${r.oif}`).sort();

async function errorOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

describe('bridge ADD', () => {
  it('creates the bridge, the veth pair, the addresses, the routes and the gateway', async () => {
    const b = new Bed();
    b.ipam.result = { ips: [{ address: '10.1.0.5/24', gateway: '10.1.0.1' }], routes: [{ dst: '10.96.0.0/12' }] };
    const r = await b.plugin.add(b.args({ isDefaultGateway: true }));
    expect(b.ipam.calls).toEqual(['add host-local']);

    const br = (await link(b.host, 'cni0'))!;
    expect([br.kind, br.up]).toEqual(['bridge', true]);
    expect(await addrsOf(b.host, 'cni0')).toEqual(['10.1.0.1/24']);
    expect(b.host.readSysctl('net/ipv4/ip_forward')).toBe('1');
    const hostVeth = (await b.host.linkList()).find((l) => l.kind === 'veth')!;
    expect(hostVeth.name).toMatch(/^veth[0-9a-f]{8}$/);
    expect([hostVeth.master, hostVeth.up, hostVeth.operState]).toEqual([br.index, true, 'up']);

    const eth0 = (await link(b.pod, 'eth0'))!;
    expect([eth0.kind, eth0.up, eth0.parentIndex]).toEqual(['veth', true, hostVeth.index]);
    expect(await addrsOf(b.pod, 'eth0')).toEqual(['10.1.0.5/24']);
    expect(await routesOf(b.pod)).toEqual([`0.0.0.0/0 via 10.1.0.1 dev #${eth0.index}`, `10.1.0.0/24 dev #${eth0.index}`, `10.96.0.0/12 via 10.1.0.1 dev #${eth0.index}`]);

    expect(r).toEqual({
      interfaces: [
        { name: 'cni0', mac: br.mac },
        { name: hostVeth.name, mac: hostVeth.mac },
        { name: 'eth0', mac: eth0.mac, sandbox: POD_NS },
      ],
      ips: [{ address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 2 }],
      routes: [{ dst: '10.96.0.0/12' }, { dst: '0.0.0.0/0', gw: '10.1.0.1' }],
    });
  });

  it('isGateway: the gateway defaults to the first address of the subnet; without it the bridge has no address', async () => {
    const b = new Bed();
    b.ipam.result = { ips: [{ address: '10.2.0.9/24' }, { address: 'fd00:2::9/64' }] };
    const r = await b.plugin.add(b.args({ isGateway: true }));
    expect(r.ips).toEqual([
      { address: '10.2.0.9/24', gateway: '10.2.0.1', interface: 2 },
      { address: 'fd00:2::9/64', gateway: 'fd00:2::1', interface: 2 },
    ]);
    expect(await addrsOf(b.host, 'cni0')).toEqual(['10.2.0.1/24', 'fd00:2::1/64']);
    expect(b.host.readSysctl('net/ipv6/conf/all/forwarding')).toBe('1');
    expect(r.routes).toBeUndefined();

    const plain = new Bed();
    plain.ipam.result = { ips: [{ address: '10.2.0.9/24' }] };
    await plain.plugin.add(plain.args({ isGateway: false }));
    expect(await addrsOf(plain.host, 'cni0')).toEqual([]);
    expect(plain.host.readSysctl('net/ipv4/ip_forward')).toBe('0');
  });

  it('hairpin and MTU; promiscuous mode (the two exclude each other)', async () => {
    const b = new Bed();
    await b.plugin.add(b.args({ hairpinMode: true, mtu: 1400 }));
    const br = (await link(b.host, 'cni0'))!;
    const hostVeth = (await b.host.linkList()).find((l) => l.kind === 'veth')!;
    expect(hostVeth.bridgePort?.hairpin).toBe(true);
    expect([br.mtu, hostVeth.mtu, (await link(b.pod, 'eth0'))!.mtu]).toEqual([1400, 1400, 1400]);
    expect(br.flags & C.IFF_PROMISC).toBeFalsy();

    const p = new Bed();
    await p.plugin.add(p.args({ promiscMode: true }));
    expect((await link(p.host, 'cni0'))!.flags & C.IFF_PROMISC).toBeTruthy();
    expect((await p.host.linkList()).find((l) => l.kind === 'veth')!.bridgePort?.hairpin).toBe(false);
  });

  it('masquerade for the pod address (ipMasq, iptables backend)', async () => {
    const b = new Bed();
    await b.plugin.add(b.args({ ipMasq: true, ipMasqBackend: 'iptables' }));
    const nat = await b.natRules();
    expect(nat.some((l) => l.startsWith('-A POSTROUTING -s 10.1.0.5/32'))).toBe(true);
    expect(nat.some((l) => l.includes('-j MASQUERADE'))).toBe(true);
  });

  it('a container interface that already exists is refused', async () => {
    const b = new Bed();
    await b.pod.linkAdd({ name: 'eth0', kind: 'bridge' });
    expect((await errorOf(b.plugin.add(b.args()))).message).toBe('container veth name provided (eth0) already exists');
  });

  it.each([
    ['the pod route', (b: Bed) => b.pod.failOn('routeAdd', constants.errno.EPERM), /failed to add route '0\.0\.0\.0\/0 via 10\.1\.0\.1 dev eth0'/],
    ['the gateway address', (b: Bed) => b.host.failOn('addrAdd', constants.errno.EPERM), /failed to add IP addr 10\.1\.0\.1\/24 to "cni0"/],
    ['the port attachment', (b: Bed) => b.host.failOn('linkSetMaster', constants.errno.EBUSY), /link set master/],
  ])('a failure at %s rolls back veth, bridge, IPAM and masquerade', async (_what, inject, message) => {
    const b = new Bed();
    inject(b);
    const err = await errorOf(b.plugin.add(b.args({ isDefaultGateway: true, ipMasq: true, ipMasqBackend: 'iptables' })));
    expect(err.message).toMatch(message);
    expect(errnoOf(err) ?? errnoOf((err as { cause?: unknown }).cause)).toBeDefined();
    expect((await b.host.linkList()).map((l) => l.name)).toEqual(['lo']);
    expect((await b.pod.linkList()).map((l) => l.name)).toEqual(['lo']);
    expect(b.ipam.calls.filter((c) => c.startsWith('del'))).toEqual(b.ipam.calls.includes('add host-local') ? ['del host-local'] : []);
    expect(await b.natRules()).toEqual([]);
  });

  it('a bridge that another ADD attached a port to survives this ADD failing', async () => {
    const b = new Bed();
    const other = b.nets.namespace();
    await b.plugin.add(b.args());
    const first = (await b.host.linkList()).find((l) => l.kind === 'veth')!;
    const b2: BridgeDeps = { ...b.deps, openHandle: (ns) => (ns === undefined ? b.host.reopen() : other.reopen()) };
    b.pod.failOn('addrAdd', constants.errno.EPERM);
    other.failOn('addrAdd', constants.errno.EPERM);
    await errorOf(makeBridgeFuncs(b2).add(b.args({}, { containerId: 'ctr2' })));
    expect((await link(b.host, 'cni0'))?.kind).toBe('bridge');
    expect((await b.host.linkList()).filter((l) => l.kind === 'veth').map((l) => l.index)).toEqual([first.index]);
  });
});

describe('bridge DEL', () => {
  it('removes the veth, releases the IPs and the masquerade, and is idempotent', async () => {
    const b = new Bed();
    const conf = { ipMasq: true, ipMasqBackend: 'iptables' };
    const r = await b.plugin.add(b.args(conf));
    expect(await b.natRules()).not.toEqual([]);
    const del = b.withPrev(conf, r, 'DEL');
    await b.plugin.del(del);
    expect(await link(b.pod, 'eth0')).toBeUndefined();
    expect((await b.host.linkList()).filter((l) => l.kind === 'veth')).toEqual([]);
    expect(await b.natRules()).toEqual([]);
    expect(b.ipam.calls).toEqual(['add host-local', 'del host-local']);
    // Again: nothing left to remove, still a success (and IPAM is asked again).
    await b.plugin.del(del);
    expect(b.ipam.calls).toEqual(['add host-local', 'del host-local', 'del host-local']);
    // The bridge stays for the next pod.
    expect((await link(b.host, 'cni0'))?.kind).toBe('bridge');
  });

  it('works from prevResult when the netns is gone', async () => {
    const b = new Bed();
    const conf = { ipMasq: true, ipMasqBackend: 'iptables' };
    const r = await b.plugin.add(b.args(conf));
    b.podGone = true;
    await b.plugin.del(b.withPrev(conf, r, 'DEL'));
    expect(await b.natRules()).toEqual([]);
    expect(b.ipam.calls).toEqual(['add host-local', 'del host-local']);
  });

  it('without a netns (CNI_NETNS empty) only IPAM and masquerade are released', async () => {
    const b = new Bed();
    await b.plugin.del(b.args({}, { command: 'DEL', netns: '' }));
    expect(b.ipam.calls).toEqual(['del host-local']);
  });
});

describe('bridge CHECK', () => {
  async function added(conf: Record<string, unknown> = {}): Promise<{ b: Bed; check: CmdArgs }> {
    const b = new Bed();
    const r = await b.plugin.add(b.args({ isDefaultGateway: true, ...conf }));
    return { b, check: b.withPrev({ isDefaultGateway: true, ...conf }, r, 'CHECK') };
  }

  it('passes on what ADD made, and asks IPAM', async () => {
    const { b, check } = await added({ hairpinMode: true });
    await b.plugin.check(check);
    expect(b.ipam.calls).toEqual(['add host-local', 'check host-local']);
  });

  it('fails on a missing address, route, hairpin mode, forwarding or interface', async () => {
    {
      const { b, check } = await added();
      const eth0 = (await link(b.pod, 'eth0'))!;
      await b.pod.addrDel(eth0.index, IPPrefix.mustParse('10.1.0.5/24'));
      expect((await errorOf(b.plugin.check(check))).message).toBe('Failed to match addr 10.1.0.5/24 on interface eth0');
    }
    {
      const { b, check } = await added();
      await b.pod.routeDel({ family: 4, dst: IPPrefix.any(4) });
      expect((await errorOf(b.plugin.check(check))).message).toBe('Expected Route {Dst:0.0.0.0/0 GW:10.1.0.1} not found in routing table');
    }
    {
      const { b, check } = await added({ hairpinMode: true });
      const hostVeth = (await b.host.linkList()).find((l) => l.kind === 'veth')!;
      await b.host.linkSetBridgePort(hostVeth.index, { hairpin: false });
      expect((await errorOf(b.plugin.check(check))).message).toBe(`host-side veth ${hostVeth.name} does not have hairpin mode on`);
    }
    {
      const { b, check } = await added();
      b.host.writeSysctl('net/ipv4/ip_forward', '0');
      expect((await errorOf(b.plugin.check(check))).message).toBe('forwarding is disabled on the node (net.ipv4.ip_forward = 0)');
    }
    {
      const { b, check } = await added();
      await b.pod.linkDel((await link(b.pod, 'eth0'))!.index);
      expect((await errorOf(b.plugin.check(check))).message).toBe(`Container interface eth0 not found in netns ${POD_NS}`);
    }
  });

  it('fails without prevResult', async () => {
    const b = new Bed();
    expect((await errorOf(b.plugin.check(b.args({}, { command: 'CHECK' })))).message).toBe('Required prevResult missing');
  });
});

describe('gateway addresses on an existing bridge', () => {
  it('a conflicting IPv4 address fails without forceAddress and is replaced with it', async () => {
    const b = new Bed();
    await b.host.linkAdd({ name: 'cni0', kind: 'bridge', up: true });
    const br = (await link(b.host, 'cni0'))!;
    await b.host.addrAdd(br.index, { address: IPPrefix.mustParse('10.1.0.9/24') });
    const err = await errorOf(b.plugin.add(b.args()));
    expect(err.message).toBe('failed to set bridge addr: "cni0" already has an IP address different from 10.1.0.1/24');
    await b.plugin.add(b.args({ forceAddress: true }));
    expect(await addrsOf(b.host, 'cni0')).toEqual(['10.1.0.1/24']);
    expect(IPAddr.mustParse('10.1.0.1').equals((await b.host.addrList({ index: br.index }))[0]!.address.addr)).toBe(true);
  });
});

describe('bridge STATUS', () => {
  it('asks IPAM; a missing IPAM plugin makes the bridge unavailable (CNI 50) with its message', async () => {
    const b = new Bed();
    await b.plugin.status!(b.args({}, { command: 'STATUS' }));
    expect(b.ipam.calls).toEqual(['status host-local']);

    b.ipam.statusError = new PluginNotFoundError('host-local', 'failed to find plugin "host-local" in path [/opt/cni/bin]');
    const err = await errorOf(b.plugin.status!(b.args({}, { command: 'STATUS' })));
    expect([codeOf(err), cniCodeOf(err), err.message]).toEqual([ErrorCode.Unavailable, 50, 'failed to find plugin "host-local" in path [/opt/cni/bin]']);

    // Any other IPAM failure passes through as it is.
    const boom = new Error('store unreadable');
    b.ipam.statusError = boom;
    expect(await errorOf(b.plugin.status!(b.args({}, { command: 'STATUS' })))).toBe(boom);
  });
});
