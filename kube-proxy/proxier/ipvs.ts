// The IPVS-mode apply layer of one IP family (upstream's Proxier in
// pkg/proxy/ipvs). The watch handlers only record changes; sync() folds them
// into the plan (render/ipvs.ts) and writes what changed:
//
// - kube-ipvs0, a dummy device holding every ClusterIP, externalIP and LB IP
//   (addresses added and removed by diff over rtnetlink);
// - the IPVS table over generic netlink (IpvsHandle). A partial sync touches
//   only the virtual servers of the service ports that changed, against the
//   record of what it applied: one endpoint change is one destination
//   message. Upstream lists and rewrites every virtual server on every sync.
//   A full sync (the first, after a failure, once per fullSyncPeriod, and
//   when a periodic sync's one listing shows virtual servers gone or added
//   behind our back) dumps the kernel's table instead and repairs any drift;
//   virtual servers of this family that are not ours are deleted there,
//   except inside --ipvs-exclude-cidrs. Requests of different virtual
//   servers go out concurrently;
// - the ipsets through one `ipset restore` per sync, kept by diff (entries
//   added and deleted, sets never flushed);
// - the fixed iptables ruleset through one iptables-restore per sync when it
//   changed, and on full and periodic syncs (with the base-chain jumps
//   that iptables-save shows missing, so a firewall reload heals within
//   syncPeriod).
//
// Graceful termination (upstream graceful_termination.go): a removed TCP
// real server gets weight 0 and is deleted once its active and inactive
// connections are gone, checked on the periodic syncs (every syncPeriod);
// UDP and SCTP real servers are deleted at once (the kernel's
// expire_nodest_conn ends their flows). A real server that comes back while
// draining gets its weight back. After a restart the full sync finds the
// weight-0 real servers in the kernel and keeps draining them (k/k#92019).
import { constants, release } from 'node:os';
import type { V1Node } from '@kubernetes/client-node';
import { errnoOf, isAddrNotAvail, isExists, isNotFound, NetError } from '../../lib/errors.ts';
import { ExecError } from '../../lib/exec.ts';
import { IPAddr, IPPrefix, type Family } from '../../lib/ip/index.ts';
import { IpsetRestore, type Ipset } from '../../lib/netfilter/ipset.ts';
import { parseIptablesSave, type IptablesRestore } from '../../lib/netfilter/iptables.ts';
import type { NetlinkHandle } from '../../lib/netlink/handle.ts';
import type { IpvsDestination, IpvsDestinationState, IpvsHandle, IpvsService, IpvsServiceKey, IpvsTimeouts } from '../../lib/netlink/ipvs-types.ts';
import type { ProxyConfig } from '../config/index.ts';
import {
  destKey,
  excluded,
  ipsetName,
  ipsetSpec,
  IPVSPlan,
  KUBE_IPVS_DEVICE,
  missingIPVSJumps,
  sameServiceAttrs,
  SET_INFO,
  vsKey,
  withJumps,
  type IPVSOptions,
  type PlanDelta,
  type SetBase,
  type VirtualServer,
} from '../render/ipvs.ts';
import { formatIssue } from '../tracker/index.ts';
import { FamilyProxierBase, type FamilyDeps, type FamilyProxier, type SyncReason } from './family.ts';
import { failingLine } from './rules.ts';
import { renderOptionsFor } from './options.ts';

/** Upstream's proxyutil.FullSyncPeriod, as in the other modes. */
export const FULL_SYNC_PERIOD_MS = 3_600_000;

export class IPVSSyncError extends NetError {
  constructor(
    readonly family: Family,
    readonly step: 'ipvs' | 'ipset' | 'iptables' | 'device',
    message: string,
    cause: unknown,
  ) {
    super('IPVS_SYNC_FAILED', `IPv${family} ${step}: ${message}`, { cause });
  }
}

/** IpvsHandle that counts the requests it sends (one per call; a dump is one): the messages a sync costs. */
export class CountingIpvs implements IpvsHandle {
  count = 0;
  constructor(private readonly h: IpvsHandle) {}
  private n<T>(p: Promise<T>): Promise<T> {
    this.count++;
    return p;
  }
  info() { return this.n(this.h.info()); }
  services() { return this.n(this.h.services()); }
  getService(k: IpvsServiceKey) { return this.n(this.h.getService(k)); }
  addService(s: IpvsService) { return this.n(this.h.addService(s)); }
  updateService(s: IpvsService) { return this.n(this.h.updateService(s)); }
  deleteService(k: IpvsServiceKey) { return this.n(this.h.deleteService(k)); }
  destinations(k: IpvsServiceKey) { return this.n(this.h.destinations(k)); }
  addDestination(k: IpvsServiceKey, d: IpvsDestination) { return this.n(this.h.addDestination(k, d)); }
  updateDestination(k: IpvsServiceKey, d: IpvsDestination) { return this.n(this.h.updateDestination(k, d)); }
  deleteDestination(k: IpvsServiceKey, d: { address: IPAddr; port: number }) { return this.n(this.h.deleteDestination(k, d)); }
  timeouts() { return this.n(this.h.timeouts()); }
  setTimeouts(t: IpvsTimeouts) { return this.n(this.h.setTimeouts(t)); }
  flush() { return this.n(this.h.flush()); }
  close(): void {
    this.h.close();
  }
}

export interface IPVSProxierDeps extends FamilyDeps {
  readonly ipvs: IpvsHandle;
  /** rtnetlink in the node's namespace: kube-ipvs0 and the node's addresses. */
  readonly netlink: NetlinkHandle;
  readonly ipset: Ipset;
  readonly iptables: IptablesRestore;
}

export interface IPVSProxierOptions {
  readonly family: Family;
  readonly nodeName: string;
  /**
   * The renderer's options from the node's addresses (kube-ipvs0's left
   * out), read at every sync; nodePortIPs and nodeLocalAddresses are filled
   * in here.
   */
  readonly renderOptions: (nodeAddresses: readonly IPAddr[]) => IPVSOptions;
  /** --ipvs-exclude-cidrs: virtual servers there are never deleted. */
  readonly excludeCIDRs?: readonly IPPrefix[];
  readonly fullSyncPeriodMs?: number;
}

interface AppliedVS {
  service: IpvsService;
  /** The real servers we want there (weight 1), by destKey. */
  dests: Map<string, IpvsDestination>;
}

/** What one sync did, for tests and the bench. */
export interface IPVSSyncOutcome {
  readonly full: boolean;
  /** IPVS netlink requests the sync sent (dumps included). */
  readonly ipvsMessages: number;
  readonly virtualServersTouched: number;
  readonly ipsetLines: number;
  readonly iptablesRestored: boolean;
  readonly addressesChanged: number;
  readonly drained: number;
  readonly conntrackDeleted: number;
}

const LINK_LOCAL6 = IPPrefix.mustParse('fe80::/10');
const keyOf = (s: IpvsServiceKey): IpvsServiceKey => ({ family: s.family, address: s.address, protocol: s.protocol, port: s.port });
/** Upstream IsRsGracefulTerminationNeeded: everything but UDP and SCTP drains. */
const drains = (s: IpvsServiceKey): boolean => s.protocol === 'tcp';

export class IPVSFamilyProxier extends FamilyProxierBase implements FamilyProxier {
  readonly plan = new IPVSPlan();
  readonly ipvs: CountingIpvs;
  private readonly fullSyncPeriodMs: number;
  private lastFullSync = Number.NEGATIVE_INFINITY;
  private readonly applied = new Map<string, AppliedVS>();
  /** Real servers at weight 0 waiting for their connections to end, per vsKey. */
  readonly draining = new Map<string, Map<string, IpvsDestination>>();
  private readonly bound = new Set<string>();
  private readonly setEntries = new Map<string, Set<string>>();
  private lastIptables: string | undefined;
  private deviceIndex: number | undefined;
  private nodeAddresses: IPAddr[] | undefined;
  private lastOutcome: IPVSSyncOutcome | undefined;

  constructor(
    private readonly opts: IPVSProxierOptions,
    private readonly deps: IPVSProxierDeps,
  ) {
    super(opts.family, opts.nodeName, deps);
    this.ipvs = new CountingIpvs(deps.ipvs);
    this.fullSyncPeriodMs = opts.fullSyncPeriodMs ?? FULL_SYNC_PERIOD_MS;
  }

  get outcome(): IPVSSyncOutcome | undefined {
    return this.lastOutcome;
  }

  /** The options of the next render, from the node addresses last read. */
  options(): IPVSOptions {
    const addrs = this.nodeAddresses ?? [];
    const o = this.opts.renderOptions(addrs);
    const npa = o.nodePortAddresses;
    const usable = addrs.filter((a) => a.family === this.family && !a.isLoopback() && !LINK_LOCAL6.contains(a));
    const nodePortIPs = !npa || npa.matchAll ? usable : usable.filter((a) => npa.ips.some((ip) => ip.equals(a)));
    return { ...o, nodePortIPs: [...nodePortIPs].sort((a, b) => a.compare(b)), nodeLocalAddresses: addrs.filter((a) => a.family === this.family) };
  }

  async sync(reason: SyncReason): Promise<IPVSSyncOutcome | undefined> {
    if (!this.initialized) return undefined;
    const start = process.hrtime.bigint();
    const messagesBefore = this.ipvs.count;
    let full = this.needFullSync || reason === 'retry' || this.now() - this.lastFullSync >= this.fullSyncPeriodMs;
    // A periodic sync lists the virtual servers (one request): any gone or added behind our back makes it a full one.
    if (!full && reason === 'periodic' && (await this.kernelDrifted())) {
      this.deps.log.info({ ipFamily: this.label.ip_family }, 'the IPVS table differs from what was applied (ipvsadm -C?), doing a full sync');
      full = true;
    }
    // Until this sync succeeds, the next one compares with the kernel.
    this.needFullSync = true;
    const changes = this.checkout();
    if (full || reason === 'periodic' || this.nodeAddresses === undefined) await this.readNodeAddresses(full);
    const options = this.options();
    const changed = new Set([...changes.services.changedPorts, ...changes.endpoints.changedPorts]);
    const delta = this.plan.update(this.services.map, this.endpoints.map, options, full ? undefined : changed);
    for (const i of delta.issues) this.deps.log.warn({ kind: i.kind, namespace: i.namespace, name: i.name, reason: i.reason, ipFamily: this.label.ip_family }, formatIssue(i));

    if (full) await this.readKernel();
    const vsKeys = full ? new Set([...this.applied.keys(), ...this.plan.virtualServers().map((v) => v.key)]) : delta.virtualServers;
    // 1. Virtual and real servers that are (still) wanted, and their addresses.
    // Requests of different virtual servers go out together (the genl client windows them).
    await eachLimit(vsKeys, PARALLEL, async (key) => {
      const want = this.plan.virtualServer(key);
      if (want) await this.reconcile(want);
    });
    const bindKeys = full ? new Set([...this.bound, ...this.plan.binds()]) : delta.binds;
    let addressesChanged = 0;
    await eachLimit([...bindKeys].filter((a) => this.plan.hasBind(a) && !this.bound.has(a)), PARALLEL, async (a) => {
      const n = await this.bind(a);
      addressesChanged += n;
    });
    // 2. Set entries, 3. the iptables rules that match them.
    const ipsetLines = await this.syncSets(full, delta);
    // The periodic syncs also rewrite the rules and re-check the jumps (a firewall reload may have flushed them).
    const iptablesRestored = await this.syncIptables(full || reason === 'periodic', options);
    // 4. What is no longer wanted.
    await eachLimit([...vsKeys].filter((key) => !this.plan.virtualServer(key)), PARALLEL, (key) => this.remove(key));
    await eachLimit([...bindKeys].filter((a) => !this.plan.hasBind(a) && this.bound.has(a)), PARALLEL, async (a) => {
      const n = await this.unbind(a);
      addressesChanged += n;
    });
    // 5. Graceful termination, polled on the periodic syncs.
    const drained = full || reason === 'periodic' ? await this.checkDraining() : 0;

    this.needFullSync = false;
    if (full) this.lastFullSync = this.now();
    const nle = this.plan.noLocalEndpoints();
    this.deps.metrics.noLocalEndpointsTotal.set({ ...this.label, traffic_policy: 'internal' }, nle.internal);
    this.deps.metrics.noLocalEndpointsTotal.set({ ...this.label, traffic_policy: 'external' }, nle.external);
    this.succeeded(full, start, changes);
    const conntrackDeleted = await this.cleanConntrack(full);
    this.lastOutcome = {
      full,
      ipvsMessages: this.ipvs.count - messagesBefore,
      virtualServersTouched: vsKeys.size,
      ipsetLines,
      iptablesRestored,
      addressesChanged,
      drained,
      conntrackDeleted,
    };
    this.deps.log.debug({ ipFamily: this.label.ip_family, reason, ...this.lastOutcome }, 'synced ipvs rules');
    return this.lastOutcome;
  }

  // ---- node addresses and kube-ipvs0 ---------------------------------------------

  /** The node's addresses (all families) except kube-ipvs0's; on a full sync also what kube-ipvs0 holds. */
  private async readNodeAddresses(full: boolean): Promise<void> {
    const nl = this.deps.netlink;
    try {
      let dev = await nl.linkFind(KUBE_IPVS_DEVICE);
      if (!dev && full) {
        try {
          await nl.linkAdd({ name: KUBE_IPVS_DEVICE, kind: 'dummy' });
        } catch (err) {
          if (!isExists(err)) throw err;
        }
        dev = await nl.linkFind(KUBE_IPVS_DEVICE);
      }
      this.deviceIndex = dev?.index;
      const addrs = await nl.addrList({});
      this.nodeAddresses = addrs.filter((a) => a.index !== this.deviceIndex).map((a) => a.address.addr);
      if (full) {
        this.bound.clear();
        for (const a of addrs) if (a.index === this.deviceIndex && a.family === this.family) this.bound.add(a.address.addr.toString());
      }
    } catch (err) {
      throw new IPVSSyncError(this.family, 'device', `cannot read or create ${KUBE_IPVS_DEVICE}: ${(err as Error).message}`, err);
    }
  }

  private async bind(addr: string): Promise<number> {
    if (this.deviceIndex === undefined) throw new IPVSSyncError(this.family, 'device', `${KUBE_IPVS_DEVICE} is missing`, undefined);
    const ip = IPAddr.mustParse(addr);
    try {
      await this.deps.netlink.addrAdd(this.deviceIndex, { address: IPPrefix.host(ip), ...(ip.family === 6 ? { noDad: true } : {}) });
    } catch (err) {
      if (!isExists(err)) throw new IPVSSyncError(this.family, 'device', `cannot bind ${addr} to ${KUBE_IPVS_DEVICE}: ${(err as Error).message}`, err);
    }
    this.bound.add(addr);
    return 1;
  }

  private async unbind(addr: string): Promise<number> {
    if (this.deviceIndex === undefined) return 0;
    try {
      await this.deps.netlink.addrDel(this.deviceIndex, IPPrefix.host(IPAddr.mustParse(addr)));
    } catch (err) {
      if (!isAddrNotAvail(err) && !isNotFound(err)) throw new IPVSSyncError(this.family, 'device', `cannot unbind ${addr}: ${(err as Error).message}`, err);
    }
    this.bound.delete(addr);
    return 1;
  }

  // ---- IPVS ------------------------------------------------------------------

  /** Whether the kernel's virtual servers of this family (outside the excluded ranges) are other than the ones applied. */
  private async kernelDrifted(): Promise<boolean> {
    const excludes = this.opts.excludeCIDRs ?? [];
    let n = 0;
    for (const s of await this.ipvs.services()) {
      if (s.family !== this.family) continue;
      const key = vsKey(s);
      if (this.applied.has(key)) n++;
      else if (!excluded(s.address, excludes)) return true;
    }
    return n !== this.applied.size;
  }

  /** Replaces the record with the kernel's table of this family (what a full sync compares with). */
  private async readKernel(): Promise<void> {
    this.applied.clear();
    const excludes = this.opts.excludeCIDRs ?? [];
    let services: IpvsService[];
    try {
      services = await this.ipvs.services();
    } catch (err) {
      throw new IPVSSyncError(this.family, 'ipvs', `cannot list virtual servers: ${(err as Error).message}`, err);
    }
    const ours = services.filter((s) => s.family === this.family && (!excluded(s.address, excludes) || this.plan.virtualServer(vsKey(s)) !== undefined));
    await eachLimit(ours, PARALLEL, async (s) => {
      const key = vsKey(s);
      const dests = await this.ipvs.destinations(keyOf(s));
      const want = new Map((this.plan.virtualServer(key)?.destinations ?? []).map((d) => [destKey(d), d]));
      const rec: AppliedVS = { service: s, dests: new Map() };
      const drain = this.draining.get(key) ?? new Map<string, IpvsDestination>();
      for (const d of dests) {
        const k = destKey(d);
        if (d.weight === 0 && !want.has(k) && drains(s)) drain.set(k, stripState(d));
        else rec.dests.set(k, stripState(d));
      }
      if (drain.size > 0) this.draining.set(key, drain);
      this.applied.set(key, rec);
    });
    for (const key of [...this.draining.keys()]) if (!this.applied.has(key)) this.draining.delete(key);
  }

  private async reconcile(want: VirtualServer): Promise<void> {
    const key = want.key;
    const k = keyOf(want.service);
    try {
      let cur = this.applied.get(key);
      if (!cur) {
        try {
          await this.ipvs.addService(want.service);
          cur = { service: want.service, dests: new Map() };
        } catch (err) {
          if (!isExists(err)) throw err;
          // Made behind our back: take it as it is.
          await this.ipvs.updateService(want.service);
          cur = { service: want.service, dests: new Map((await this.ipvs.destinations(k)).map((d) => [destKey(d), stripState(d)])) };
        }
        this.applied.set(key, cur);
      } else if (!sameServiceAttrs(cur.service, want.service)) {
        await this.ipvs.updateService(want.service);
        cur.service = want.service;
      }
      const wanted = new Map(want.destinations.map((d) => [destKey(d), d]));
      const drain = this.draining.get(key);
      const ops: (() => Promise<void>)[] = [];
      for (const [dk, d] of wanted) {
        const have = cur.dests.get(dk);
        if (have && have.weight === d.weight && have.forward === d.forward) continue;
        if (have || drain?.has(dk)) {
          ops.push(() => this.ipvs.updateDestination(k, d));
          drain?.delete(dk);
        } else {
          ops.push(() => this.ipvs.addDestination(k, d));
        }
        cur.dests.set(dk, d);
      }
      for (const [dk, d] of cur.dests) {
        if (wanted.has(dk)) continue;
        cur.dests.delete(dk);
        if (drains(k)) {
          const zero = { ...d, weight: 0 };
          ops.push(() => this.ipvs.updateDestination(k, zero));
          let m = this.draining.get(key);
          if (!m) this.draining.set(key, (m = new Map()));
          m.set(dk, zero);
        } else {
          ops.push(() => this.ipvs.deleteDestination(k, d));
        }
      }
      if (drain?.size === 0) this.draining.delete(key);
      await eachLimit(ops, PARALLEL, (op) => op());
    } catch (err) {
      throw new IPVSSyncError(this.family, 'ipvs', `virtual server ${key} (${want.portKey}): ${(err as Error).message}`, err);
    }
  }

  private async remove(key: string): Promise<void> {
    const cur = this.applied.get(key);
    if (!cur) return;
    if (excluded(cur.service.address, this.opts.excludeCIDRs ?? [])) {
      this.applied.delete(key);
      this.draining.delete(key);
      return;
    }
    try {
      await this.ipvs.deleteService(keyOf(cur.service));
    } catch (err) {
      if (errnoOf(err) !== ESRCH) throw new IPVSSyncError(this.family, 'ipvs', `cannot delete virtual server ${key}: ${(err as Error).message}`, err);
    }
    this.applied.delete(key);
    this.draining.delete(key);
  }

  /** Deletes draining real servers without connections; returns how many went. */
  private async checkDraining(): Promise<number> {
    let n = 0;
    for (const [key, drain] of [...this.draining]) {
      const cur = this.applied.get(key);
      if (!cur) {
        this.draining.delete(key);
        continue;
      }
      const k = keyOf(cur.service);
      let state: IpvsDestinationState[];
      try {
        state = await this.ipvs.destinations(k);
      } catch (err) {
        throw new IPVSSyncError(this.family, 'ipvs', `cannot list real servers of ${key}: ${(err as Error).message}`, err);
      }
      const byKey = new Map(state.map((d) => [destKey(d), d]));
      for (const [dk, d] of [...drain]) {
        const s = byKey.get(dk);
        if (s && s.activeConns + s.inactiveConns > 0) continue;
        if (s) {
          try {
            await this.ipvs.deleteDestination(k, d);
          } catch (err) {
            if (!isNotFound(err)) throw new IPVSSyncError(this.family, 'ipvs', `cannot delete real server ${dk} of ${key}: ${(err as Error).message}`, err);
          }
          n++;
        }
        drain.delete(dk);
      }
      if (drain.size === 0) this.draining.delete(key);
    }
    return n;
  }

  // ---- ipsets and iptables ----------------------------------------------------------

  private async syncSets(full: boolean, delta: PlanDelta): Promise<number> {
    const r = new IpsetRestore();
    if (full) {
      const names = new Set(SET_INFO.map((s) => ipsetName(s.base, this.family)));
      let existing;
      try {
        existing = (await this.deps.ipset.list()).filter((s) => names.has(s.name));
      } catch (err) {
        throw new IPVSSyncError(this.family, 'ipset', `ipset list failed: ${(err as Error).message}`, err);
      }
      this.setEntries.clear();
      for (const s of existing) this.setEntries.set(s.name, new Set(s.entries.map((e) => e.entry)));
      for (const info of SET_INFO) if (!this.setEntries.has(ipsetName(info.base, this.family))) r.create(ipsetSpec(info.base, this.family), { exist: true });
    }
    const dels: [string, string][] = [];
    const adds: [string, string][] = [];
    for (const info of SET_INFO) {
      const name = ipsetName(info.base, this.family);
      let have = this.setEntries.get(name);
      if (!have) this.setEntries.set(name, (have = new Set()));
      const touched: Iterable<string> = full ? new Set([...have, ...this.plan.entries(info.base)]) : (delta.entries.get(info.base as SetBase) ?? []);
      for (const e of touched) {
        const want = this.plan.hasEntry(info.base, e);
        if (want && !have.has(e)) adds.push([name, e]);
        else if (!want && have.has(e)) dels.push([name, e]);
      }
    }
    for (const [s, e] of dels) r.del(s, e, { exist: true });
    for (const [s, e] of adds) r.add(s, e, { exist: true });
    if (r.isEmpty) return 0;
    try {
      await this.deps.ipset.restore(r);
    } catch (err) {
      const stderr = err instanceof ExecError ? err.stderr : '';
      this.deps.log.error({ err, ipFamily: this.label.ip_family, stderr }, 'ipset restore failed; the next sync reads the sets again');
      throw new IPVSSyncError(this.family, 'ipset', `ipset restore failed: ${stderr.trim() || (err as Error).message}`, err);
    }
    for (const [s, e] of dels) this.setEntries.get(s)!.delete(e);
    for (const [s, e] of adds) this.setEntries.get(s)!.add(e);
    return r.length;
  }

  private async syncIptables(full: boolean, options: IPVSOptions): Promise<boolean> {
    const ipf = this.family === 4 ? 'ip' : 'ip6';
    let text = this.plan.iptables(options);
    if (!full && text === this.lastIptables) return false;
    const body = text;
    if (full) text = withJumps(text, missingIPVSJumps(parseIptablesSave(await this.deps.iptables.save(ipf))));
    try {
      await this.deps.iptables.restore(ipf, text, { noflush: true });
    } catch (err) {
      this.deps.metrics.iptablesRestoreFailuresTotal.inc(this.label);
      const stderr = err instanceof ExecError ? err.stderr : '';
      const line = failingLine(stderr);
      const lineText = line === undefined ? undefined : text.split('\n')[line - 1];
      this.deps.log.error({ err, ipFamily: this.label.ip_family, line, lineText, stderr }, 'Failed to execute iptables-restore; the previous rules stay in place');
      this.lastIptables = undefined;
      throw new IPVSSyncError(this.family, 'iptables', `iptables-restore failed${line === undefined ? '' : ` at line ${line}: ${lineText ?? ''}`}`, err);
    }
    this.lastIptables = body;
    return true;
  }
}

const { ESRCH } = constants.errno;

/** Requests (or virtual servers) in flight at once: the genl client windows at 64, rtnetlink's socket buffer takes ~150 answers. */
const PARALLEL = 32;

/** Runs `fn` over `items`, at most `limit` at a time; the first failure is thrown once all have settled. */
async function eachLimit<T>(items: Iterable<T>, limit: number, fn: (t: T) => Promise<unknown>): Promise<void> {
  const it = items[Symbol.iterator]();
  const errors: unknown[] = [];
  const worker = async (): Promise<void> => {
    for (let n = it.next(); !n.done && errors.length === 0; n = it.next()) {
      try {
        await fn(n.value);
      } catch (err) {
        errors.push(err);
      }
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  if (errors.length > 0) throw errors[0];
}

function stripState(d: IpvsDestination | IpvsDestinationState): IpvsDestination {
  return { address: d.address, port: d.port, weight: d.weight, forward: d.forward, upperThreshold: d.upperThreshold, lowerThreshold: d.lowerThreshold, family: d.family };
}

// ---- the node: sysctls and timeouts ----------------------------------------------------

/** Kernel versions from which conn_reuse_mode is left alone (k/k#93297: fixed in 5.9). */
const CONN_REUSE_FIXED = [5, 9];
const CONN_REUSE_MIN = [4, 1];

function kernelAtLeast(v: string, want: readonly number[]): boolean {
  const [maj = 0, min = 0] = v.split(/[.-]/).map(Number);
  return maj > want[0]! || (maj === want[0]! && min >= want[1]!);
}

export interface IPVSNodeSettings {
  readonly strictARP: boolean;
  readonly timeouts: IpvsTimeouts;
  /** uname -r; default os.release(). */
  readonly kernelRelease?: string;
}

/**
 * What upstream's NewProxier sets once per node: the IPVS sysctls
 * (conntrack, expire_nodest_conn, expire_quiescent_template, conn_reuse_mode
 * on kernels before 5.9), ip_forward, strict ARP when asked, and the IPVS
 * connection timeouts when any is non-zero (SET_CONFIG). Sysctls are files
 * of the node's namespace (the netlink handle's).
 */
export async function prepareIPVSNode(nl: NetlinkHandle, ipvs: IpvsHandle, s: IPVSNodeSettings, log: { warn(o: object, m: string): void }): Promise<void> {
  const set = (key: string, value: string): void => {
    let current: string | undefined;
    try {
      current = nl.readSysctl(key);
    } catch {
      current = undefined;
    }
    if (current === value) return;
    try {
      nl.writeSysctl(key, value);
    } catch (err) {
      throw new NetError('IPVS_SYSCTL', `cannot set sysctl ${key}=${value}: ${(err as Error).message}`, { cause: err });
    }
  };
  set('net/ipv4/vs/conntrack', '1');
  const rel = s.kernelRelease ?? release();
  if (!kernelAtLeast(rel, CONN_REUSE_MIN)) log.warn({ kernel: rel }, 'kernel too old to set net/ipv4/vs/conn_reuse_mode');
  else if (!kernelAtLeast(rel, CONN_REUSE_FIXED)) set('net/ipv4/vs/conn_reuse_mode', '0');
  set('net/ipv4/vs/expire_nodest_conn', '1');
  set('net/ipv4/vs/expire_quiescent_template', '1');
  set('net/ipv4/ip_forward', '1');
  if (s.strictARP) {
    set('net/ipv4/conf/all/arp_ignore', '1');
    set('net/ipv4/conf/all/arp_announce', '2');
  }
  const t = s.timeouts;
  if (t.tcp > 0 || t.tcpFin > 0 || t.udp > 0) {
    try {
      await ipvs.setTimeouts(t);
    } catch (err) {
      // Upstream logs this and goes on.
      log.warn({ err, timeouts: t }, 'Failed to configure IPVS timeouts');
    }
  }
}

/** The ServiceProxy backend of the IPVS mode: one proxier per family over shared handles. */
export function ipvsBackend(
  cfg: ProxyConfig,
  handles: { ipvs: IpvsHandle; netlink: NetlinkHandle; ipset: Ipset; iptables: IptablesRestore },
  extra: { fullSyncPeriodMs?: number } = {},
): (family: Family, deps: FamilyDeps, node: () => V1Node | undefined) => IPVSFamilyProxier {
  return (family, deps, node) =>
    new IPVSFamilyProxier(
      {
        family,
        nodeName: cfg.nodeName,
        renderOptions: (addrs) => ({ ...renderOptionsFor(cfg, family, node(), addrs), scheduler: cfg.ipvs.scheduler }),
        excludeCIDRs: cfg.ipvs.excludeCIDRs,
        ...(extra.fullSyncPeriodMs === undefined ? {} : { fullSyncPeriodMs: extra.fullSyncPeriodMs }),
      },
      { ...deps, ...handles },
    );
}

