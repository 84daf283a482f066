import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { silentLogger } from '../lib/log.ts';
import { RTN_BLACKHOLE } from '../lib/netlink/constants.ts';
import { FakeHandle } from '../lib/netlink/fake.ts';
import { parseNetworkConfig } from './config.ts';
import { DaemonError, run } from './daemon.ts';
import type { DaemonDeps, TrafficRules } from './daemon.ts';
import { parseFlags } from './flags.ts';
import type { FlanneldOptions } from './flags.ts';
import type { Backend, Network } from './backend/types.ts';
import type { SubnetEnv } from './subnet/subnet-env.ts';
import type { Lease, LeaseAttrs, LeaseWatchResult, NetworkConfig, SubnetManager } from './subnet/types.ts';
import { IPAddr, IPPrefix } from '../lib/ip/index.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'flanneld-daemon-'));
  mkdirSync(join(dir, 'proc/net/bridge'), { recursive: true });
  writeFileSync(join(dir, 'proc/net/bridge/bridge-nf-call-iptables'), '1\n');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const CONFIG = '{"Network":"10.244.0.0/16","Backend":{"Type":"fake"}}';

/** The node namespace: eth0 on 192.0.2.10/24 with the default route via 192.0.2.1. */
let nodeHandle: FakeHandle;
beforeEach(async () => {
  nodeHandle = new FakeHandle();
  await nodeHandle.linkAdd({ name: 'eth0', kind: 'dummy', up: true });
  const eth = await nodeHandle.linkByName('eth0');
  await nodeHandle.addrAdd(eth.index, { address: IPPrefix.mustParse('192.0.2.10/24') });
  await nodeHandle.routeAdd({ family: 4, dst: IPPrefix.any(4), gw: IPAddr.mustParse('192.0.2.1') });
});

interface Recorder {
  calls: string[];
}

class FakeManager implements SubnetManager {
  configFailures = 0;
  completeError: Error | undefined;
  acquiredWith: LeaseAttrs | undefined;
  constructor(private rec: Recorder, private cfgText = CONFIG) {}
  name(): string {
    return 'fake';
  }
  async getNetworkConfig(): Promise<NetworkConfig> {
    this.rec.calls.push('getNetworkConfig');
    if (this.configFailures-- > 0) throw new Error('etcd unreachable');
    return parseNetworkConfig(this.cfgText);
  }
  async acquireLease(attrs: LeaseAttrs): Promise<Lease> {
    this.rec.calls.push('acquireLease');
    this.acquiredWith = attrs;
    return { enableIPv4: true, enableIPv6: false, subnet: IPPrefix.mustParse('10.244.7.0/24'), attrs, expiration: new Date(Date.now() + 86_400_000) };
  }
  async *watchLeases(signal: AbortSignal): AsyncIterable<LeaseWatchResult> {
    yield { snapshot: [] };
    await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
  }
  async completeLease(_l: Lease, signal: AbortSignal): Promise<void> {
    this.rec.calls.push('completeLease');
    if (this.completeError) throw this.completeError;
    await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
  }
}

function fakeBackend(rec: Recorder): Backend {
  return {
    async registerNetwork(_cfg, ext): Promise<Network> {
      rec.calls.push(`registerNetwork:${ext.name}:${ext.extAddr}`);
      return {
        leaseAttrs: () => ({ publicIP: ext.extAddr!.toString(), backendType: 'fake' }),
        setLease: async () => void rec.calls.push('setLease'),
        mtu: () => 1450,
        run: async (watch, signal) => {
          rec.calls.push('backend.run');
          for await (const _ of watch) if (signal.aborted) break;
        },
      };
    },
  };
}

function fakeTraffic(rec: Recorder, failMasq = 0): (mode: 'iptables' | 'nftables') => TrafficRules {
  let fails = failMasq;
  return (mode) => ({
    cleanUp: async () => void rec.calls.push(`cleanUp:${mode}`),
    ensureMasq: async (p) => {
      rec.calls.push(`ensureMasq:${mode}:${p.prev?.subnet?.toString() ?? '-'}:${p.fullyRandom}`);
      if (fails-- > 0) throw new Error('iptables-restore failed');
    },
    ensureForward: async () => void rec.calls.push(`ensureForward:${mode}`),
  });
}

function setup(argv: string[], over: Partial<DaemonDeps> & { sm?: FakeManager; rec?: Recorder; failMasq?: number; config?: string } = {}) {
  const rec: Recorder = over.rec ?? { calls: [] };
  const sm = over.sm ?? new FakeManager(rec, over.config);
  const r = parseFlags([`--subnet-file=${join(dir, 'run/subnet.env')}`, ...argv]);
  if (r.kind !== 'run') throw new Error('flags');
  let seenPrev: SubnetEnv | undefined;
  const deps: DaemonDeps = {
    log: silentLogger(),
    registry: new Registry(),
    handle: nodeHandle,
    subnetManager: async (_o: FlanneldOptions, prev) => {
      seenPrev = prev;
      return sm;
    },
    backends: { fake: () => fakeBackend(rec) },
    traffic: fakeTraffic(rec, over.failMasq ?? 0),
    procSys: join(dir, 'proc'),
    retryDelay: 1,
    onReady: () => {
      rec.calls.push(`ready:${existsSync(join(dir, 'run/subnet.env'))}`);
    },
    ...over,
  };
  return { rec, sm, opts: r.options, deps, prev: () => seenPrev };
}

async function untilCalled(rec: Recorder, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !rec.calls.some((c) => c.startsWith(what)); i++) await new Promise((r) => setTimeout(r, 1));
  expect(rec.calls.some((c) => c.startsWith(what))).toBe(true);
}

describe('flanneld main loop', () => {
  it('--ip-blackhole-route: a blackhole route for the lease subnet', async () => {
    const { rec, opts, deps } = setup(['--ip-blackhole-route']);
    const ac = new AbortController();
    const done = run(opts, ac.signal, deps);
    await untilCalled(rec, 'ready');
    const blackholes = async (): Promise<string[]> =>
      (await nodeHandle.routeList({ family: 4 })).filter((r) => r.type === RTN_BLACKHOLE).map((r) => String(r.dst));
    for (let i = 0; i < 2000 && (await blackholes()).length === 0; i++) await new Promise((r) => setTimeout(r, 1));
    ac.abort();
    await done;
    expect(await blackholes()).toEqual(['10.244.7.0/24']);
  });

  it('runs the upstream order and writes subnet.env before ready', async () => {
    const { rec, opts, deps } = setup(['--ip-masq']);
    const ac = new AbortController();
    const done = run(opts, ac.signal, deps);
    await untilCalled(rec, 'completeLease');
    await untilCalled(rec, 'backend.run');
    ac.abort();
    await done;
    const order = rec.calls.filter((c) => c !== 'backend.run' && c !== 'completeLease');
    expect(order).toEqual([
      'getNetworkConfig',
      'registerNetwork:eth0:192.0.2.10',
      'acquireLease',
      'setLease',
      'cleanUp:nftables',
      'ensureMasq:iptables:-:true',
      'ensureForward:iptables',
      'ready:true',
    ]);
    expect(readFileSync(join(dir, 'run/subnet.env'), 'utf8')).toBe(
      'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n',
    );
  });

  it('keeps retrying while the config is unavailable', async () => {
    const rec: Recorder = { calls: [] };
    const sm = new FakeManager(rec);
    sm.configFailures = 3;
    const s = setup([], { sm, rec });
    const ac = new AbortController();
    const done = run(s.opts, ac.signal, s.deps);
    await untilCalled(rec, 'completeLease');
    ac.abort();
    await done;
    expect(rec.calls.filter((c) => c === 'getNetworkConfig')).toHaveLength(4);
  });

  it('waits out a lease that cannot be had (checkLease failing) before the backend creates anything', async () => {
    const rec: Recorder = { calls: [] };
    let failures = 3;
    const sm = new FakeManager(rec);
    const checked: unknown[] = [];
    Object.assign(sm, {
      checkLease: async (pub: unknown): Promise<void> => {
        rec.calls.push('checkLease');
        checked.push(pub);
        if (failures-- > 0) throw new Error('out of subnets');
      },
    });
    const s = setup([], { sm, rec });
    const ac = new AbortController();
    const done = run(s.opts, ac.signal, s.deps);
    await untilCalled(rec, 'completeLease');
    ac.abort();
    await done;
    const order = rec.calls.filter((c) => c !== 'backend.run' && c !== 'completeLease' && c !== 'getNetworkConfig');
    expect(order.slice(0, 6)).toEqual(['checkLease', 'checkLease', 'checkLease', 'checkLease', 'registerNetwork:eth0:192.0.2.10', 'acquireLease']);
    expect(checked[0]).toEqual({ v4: '192.0.2.10' });
  });

  it('passes the previous subnet.env to the manager and the masq rules, honours --ip-masq-fully-random-disable', async () => {
    mkdirSync(join(dir, 'run'));
    writeFileSync(join(dir, 'run/subnet.env'), 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    const s = setup(['--ip-masq', '--ip-masq-fully-random-disable', '--iptables-forward-rules=false']);
    const ac = new AbortController();
    const done = run(s.opts, ac.signal, s.deps);
    await untilCalled(s.rec, 'completeLease');
    ac.abort();
    await done;
    expect(s.prev()?.subnet?.toString()).toBe('10.244.3.1/24');
    expect(s.rec.calls).toContain('ensureMasq:iptables:10.244.3.1/24:false');
    expect(s.rec.calls.some((c) => c.startsWith('ensureForward'))).toBe(false);
  });

  it('is not ready until the rules are in place: a failing masq sync is retried first', async () => {
    const rec: Recorder = { calls: [] };
    const s = setup(['--ip-masq'], { rec, failMasq: 2 });
    const ac = new AbortController();
    const done = run(s.opts, ac.signal, s.deps);
    await untilCalled(rec, 'ready');
    ac.abort();
    await done;
    const masq = rec.calls.map((c, i) => [c, i] as const).filter(([c]) => c.startsWith('ensureMasq'));
    expect(masq).toHaveLength(3);
    expect(rec.calls.indexOf('ready:true')).toBeGreaterThan(masq[2]![1]);
  });

  it('exits with the br_netfilter error in iptables mode only', async () => {
    rmSync(join(dir, 'proc/net/bridge/bridge-nf-call-iptables'));
    const s = setup([]);
    const err = await run(s.opts, new AbortController().signal, s.deps).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DaemonError);
    expect((err as DaemonError).code).toBe('BR_NETFILTER_MISSING');
    expect(existsSync(join(dir, 'run/subnet.env'))).toBe(false);

    const rec: Recorder = { calls: [] };
    const nft = setup([], { rec, config: '{"Network":"10.244.0.0/16","EnableNFTables":true,"Backend":{"Type":"fake"}}' });
    const ac = new AbortController();
    const done = run(nft.opts, ac.signal, nft.deps);
    await untilCalled(rec, 'completeLease');
    ac.abort();
    await done;
    expect(rec.calls).toContain('cleanUp:iptables');
  });

  it('rejects an unknown backend type', async () => {
    const s = setup([], { backends: {} });
    const err = await run(s.opts, new AbortController().signal, s.deps).catch((e: unknown) => e);
    expect((err as DaemonError).code).toBe('UNKNOWN_BACKEND');
  });

  it('names an upstream backend it does not implement, and the supported ones', async () => {
    const s = setup([], { config: CONFIG.replace(/"Type": *"[a-z-]+"/, '"Type": "wireguard"') });
    const err = (await run(s.opts, new AbortController().signal, s.deps).catch((e: unknown) => e)) as DaemonError;
    expect(err.code).toBe('UNSUPPORTED_BACKEND');
    expect(err.message).toBe('Error fetching backend: backend type "wireguard" is an upstream flannel backend that this flanneld does not implement; supported: fake');
  });

  it('ends with the manager\'s error when the lease is lost', async () => {
    const rec: Recorder = { calls: [] };
    const sm = new FakeManager(rec);
    class LeaseLost extends Error {}
    sm.completeError = new LeaseLost('taken');
    const s = setup([], { sm, rec });
    await expect(run(s.opts, new AbortController().signal, s.deps)).rejects.toBeInstanceOf(LeaseLost);
  });

  it('uses --public-ip as the published address', async () => {
    const s = setup(['--public-ip=203.0.113.5']);
    const ac = new AbortController();
    const done = run(s.opts, ac.signal, s.deps);
    await untilCalled(s.rec, 'completeLease');
    ac.abort();
    await done;
    expect(s.sm.acquiredWith?.publicIP).toBe('203.0.113.5');
  });
});
