// The etcd v3 subnet manager. Wire-compatible with upstream flanneld:
//   <prefix>/config                         network config JSON
//   <prefix>/subnets/10.5.52.0-24           lease (value: LeaseAttrs JSON)
//   <prefix>/subnets/10.5.52.0-24&fc00::-64 dual-stack lease
// A lease key is attached to an etcd lease (TTL 24 h); a key without one is
// an operator's reservation and stays one.
//
// Where we differ from upstream on purpose (research flannel.md §6.3):
// - a lost allocation race is retried, not fatal;
// - the etcd lease is kept alive with KeepAlive, not re-granted daily;
// - if our key vanishes (lease revoked or expired while etcd was away) we put
//   the same subnet back instead of exiting; only if another node now holds
//   it do we give up (LeaseLostError);
// - reservations are never turned into leases;
// - after a compaction the watch re-lists and yields a snapshot.
import { readFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import type { IKeyValue, IOptions, IWatchResponse } from 'etcd3';
import { NetError } from '../../lib/errors.ts';
import { parseNetworkConfig } from '../config.ts';
import { planAllocation } from './allocate.ts';
import { leaseAttrsFromJSON, leaseAttrsToJSON } from './types.ts';
import type { Lease, LeaseAttrs, LeaseEvent, LeaseWatchResult, NetworkConfig, SubnetManager } from './types.ts';
import { sleep } from '../../lib/abort.ts';
import { AsyncQueue, Wakeup } from '../../lib/async.ts';
import { Backoff, retry } from '../../lib/daemon/retry.ts';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';

export const DEFAULT_ETCD_PREFIX = '/coreos.com/network';
export const DEFAULT_ETCD_ENDPOINTS = ['http://127.0.0.1:4001', 'http://127.0.0.1:2379'];
export const SUBNET_TTL_SECONDS = 24 * 60 * 60;
export const CONFIG_NOT_FOUND_MESSAGE = 'flannel config not found in etcd store. Did you create your config using etcdv3 API?';

export class EtcdOptionsError extends NetError {
  constructor(message: string, cause?: unknown) {
    super('ETCD_OPTIONS', message, { cause });
  }
}

/** Our subnet is now held by another node: the daemon cannot continue with it. */
export class LeaseLostError extends NetError {
  constructor(key: string) {
    super('LEASE_LOST', `subnet ${key} was taken by another node after our lease ended`);
  }
}

export class AcquireLeaseError extends NetError {
  constructor(message: string, cause?: unknown) {
    super('ACQUIRE_LEASE', message, { cause });
  }
}

export interface Log {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}
const noLog: Log = { debug() {}, info() {}, warn() {}, error() {} };

export interface EtcdManagerOptions {
  endpoints?: string[];
  prefix?: string;
  keyFile?: string;
  certFile?: string;
  caFile?: string;
  username?: string;
  password?: string;
  /** FLANNEL_SUBNET / FLANNEL_IPV6_SUBNET from the previous subnet.env, for stickiness. */
  previousSubnet?: IPPrefix | undefined;
  previousIPv6Subnet?: IPPrefix | undefined;
  ttlSeconds?: number;
  /** Keep-alive period; default ttl/3 (like clientv3), capped at 5 minutes so a dead lease is noticed. */
  keepAliveMs?: number;
  random?: (n: number) => number;
  log?: Log;
}

// ---------------------------------------------------------------------------
// Keys

/** `10.5.52.0-24`, `10.5.52.0-24&fc00::-64`, or `0.0.0.0-0&fc00::-64` for IPv6-only (as upstream). */
export function makeSubnetKey(subnet: IPPrefix | undefined, ipv6Subnet: IPPrefix | undefined): string {
  const v4 = subnet ? `${subnet.network().toString()}-${subnet.length}` : '0.0.0.0-0';
  return ipv6Subnet ? `${v4}&${ipv6Subnet.network().toString()}-${ipv6Subnet.length}` : v4;
}

const KEY_RE = /(\d+\.\d+\.\d+\.\d+)-(\d+)(?:&([a-fA-F\d:]+)-(\d+))?$/;

export function parseSubnetKey(key: string): { subnet?: IPPrefix; ipv6Subnet?: IPPrefix } | undefined {
  const m = KEY_RE.exec(key);
  if (!m) return undefined;
  try {
    const out: { subnet?: IPPrefix; ipv6Subnet?: IPPrefix } = {};
    const v4 = new IPPrefix(IPAddr.mustParse(m[1]!), Number(m[2]));
    if (!(v4.addr.isUnspecified() && v4.length === 0)) out.subnet = v4;
    if (m[3] !== undefined) out.ipv6Subnet = new IPPrefix(IPAddr.mustParse(m[3]), Number(m[4]));
    if (v4.family !== 4 || (out.ipv6Subnet && out.ipv6Subnet.family !== 6)) return undefined;
    return out;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------

interface Stored {
  key: string;
  lease: Lease;
  /** etcd lease id, '0' for a reservation. */
  leaseId: string;
  modRevision: string;
  createRevision: string;
}

interface Held {
  key: string;
  subnet?: IPPrefix;
  ipv6Subnet?: IPPrefix;
  attrs: LeaseAttrs;
  leaseId: string;
  reservation: boolean;
}

/** Reconnects, re-watches and lease retries: 100 ms doubling to 5 s, back to 100 ms after a success. */
const ETCD_BACKOFF = { min: 100, max: 5000 };
/** `<prefix>/config` is polled every second while missing or unreadable. */
const CONFIG_POLL = { min: 1000, max: 1000 };

/** `<prefix>/config` does not exist (yet): retried, like an unreachable etcd. */
class ConfigNotFoundError extends NetError {
  constructor() {
    super('ETCD_CONFIG_NOT_FOUND', CONFIG_NOT_FOUND_MESSAGE);
  }
}

/** Another node created an overlapping key first: retried with jitter. */
class LostRaceError extends NetError {
  constructor() {
    super('ETCD_LOST_RACE', 'lost a race for a subnet');
  }
}

export class EtcdSubnetManager implements SubnetManager {
  readonly client: Etcd3;
  readonly prefix: string;
  readonly #opts: EtcdManagerOptions;
  readonly #ttl: number;
  readonly #log: Log;
  #held: Held | undefined;

  constructor(opts: EtcdManagerOptions = {}, client?: Etcd3) {
    this.#opts = opts;
    this.prefix = (opts.prefix ?? DEFAULT_ETCD_PREFIX).replace(/\/+$/, '');
    this.#ttl = opts.ttlSeconds ?? SUBNET_TTL_SECONDS;
    this.#log = opts.log ?? noLog;
    this.client = client ?? new Etcd3(etcdClientOptions(opts));
  }

  name(): string {
    return `Etcd Local Manager with Previous Subnet: ${this.#opts.previousSubnet?.masked().toString() ?? 'None'}`;
  }

  close(): void {
    this.client.close();
  }

  get subnetsPrefix(): string {
    return `${this.prefix}/subnets/`;
  }

  // --- config ---------------------------------------------------------------

  /** Reads `<prefix>/config`; polls every second while it is missing or etcd is unreachable. */
  async getNetworkConfig(signal: AbortSignal): Promise<NetworkConfig> {
    const key = `${this.prefix}/config`;
    const text = await retry(
      async () => {
        const t = await this.client.get(key).string();
        if (t === null) throw new ConfigNotFoundError();
        return t;
      },
      {
        ...CONFIG_POLL,
        signal,
        onRetry: (err) => {
          if (err instanceof ConfigNotFoundError) this.#log.error({ key }, CONFIG_NOT_FOUND_MESSAGE);
          else this.#log.warn({ err }, 'failed to read network config from etcd, retrying');
        },
      },
    );
    return parseNetworkConfig(text, { validate: true });
  }

  // --- listing ----------------------------------------------------------------

  /**
   * Every lease under subnets/. `unusable` holds the subnets of keys whose
   * value cannot be decoded: nobody's lease, but their keys still block
   * allocation (taking one would only lose the create-if-absent race forever).
   */
  async #list(): Promise<{ items: Stored[]; unusable: Lease[]; revision: string }> {
    const res = await this.client.kv.range({ key: Buffer.from(this.subnetsPrefix), range_end: prefixEnd(this.subnetsPrefix) });
    const items: Stored[] = [];
    const unusable: Lease[] = [];
    for (const kv of res.kvs) {
      const s = this.#decode(kv);
      if (s) {
        items.push(s);
        continue;
      }
      const sn = parseSubnetKey(kv.key.toString().slice(this.subnetsPrefix.length));
      // Like a reservation: no TTL, no public IP, so never reused or deleted as ours.
      if (sn) unusable.push({ enableIPv4: sn.subnet !== undefined, enableIPv6: sn.ipv6Subnet !== undefined, ...sn, attrs: {} });
    }
    return { items, unusable, revision: res.header.revision };
  }

  #decode(kv: IKeyValue): Stored | undefined {
    const key = kv.key.toString();
    const sn = parseSubnetKey(key.slice(this.subnetsPrefix.length));
    if (!sn) return undefined;
    let attrs: LeaseAttrs;
    try {
      attrs = leaseAttrsFromJSON(kv.value.toString());
    } catch (err) {
      this.#log.warn({ err, key }, 'ignoring lease with undecodable value');
      return undefined;
    }
    const reservation = kv.lease === '0' || kv.lease === '';
    const lease: Lease = {
      enableIPv4: sn.subnet !== undefined,
      enableIPv6: sn.ipv6Subnet !== undefined,
      ...sn,
      attrs,
      // The exact remaining TTL needs one TimeToLive call per key; nothing
      // downstream uses more than "has a TTL", so the nominal one is given.
      ...(reservation ? {} : { expiration: new Date(Date.now() + this.#ttl * 1000) }),
    };
    return { key, lease, leaseId: reservation ? '0' : kv.lease, modRevision: kv.mod_revision, createRevision: kv.create_revision };
  }

  // --- acquire ----------------------------------------------------------------

  async acquireLease(attrs: LeaseAttrs, signal: AbortSignal): Promise<Lease> {
    const cfg = await this.getNetworkConfig(signal);
    return retry(
      async () => {
        const got = await this.#tryAcquire(cfg, attrs);
        if (!got) throw new LostRaceError();
        return got;
      },
      {
        ...ETCD_BACKOFF,
        // Jitter keeps two racing nodes from colliding again and again.
        jitter: 0.5,
        signal,
        retryIf: (err) => !(err instanceof NetError && (err.code === 'OUT_OF_SUBNETS' || err.code === 'INVALID_NET_CONFIG')),
        onRetry: (err, attempt) => {
          if (err instanceof LostRaceError) this.#log.info({ attempt }, 'lost a race for a subnet, retrying');
          else this.#log.warn({ err, attempt }, 'failed to acquire lease, retrying');
        },
      },
    );
  }

  /** Plans an allocation without writing: throws OUT_OF_SUBNETS (or the config error) as acquireLease would. */
  async checkLease(publicIP: { v4?: string; v6?: string }, signal: AbortSignal): Promise<void> {
    const cfg = await this.getNetworkConfig(signal);
    this.#plan(cfg, await this.#list(), publicIP.v4, publicIP.v6);
  }

  #plan(cfg: NetworkConfig, list: { items: Stored[]; unusable: Lease[] }, publicIP: string | undefined, publicIPv6: string | undefined) {
    return planAllocation({
      config: cfg,
      existing: [...list.items.map((s) => s.lease), ...list.unusable],
      publicIP,
      publicIPv6,
      previous: { subnet: this.#opts.previousSubnet, ipv6Subnet: this.#opts.previousIPv6Subnet },
      random: this.#opts.random,
    });
  }

  /** One allocation round; undefined when a race was lost (retry). */
  async #tryAcquire(cfg: NetworkConfig, attrs: LeaseAttrs): Promise<Lease | undefined> {
    const list = await this.#list();
    const { items } = list;
    const plan = this.#plan(cfg, list, attrs.publicIP, attrs.publicIPv6);
    const value = Buffer.from(leaseAttrsToJSON(attrs));

    if (plan.kind === 'reuse') {
      const s = items.find((i) => i.lease === plan.lease)!;
      const reservation = s.leaseId === '0';
      const leaseId = reservation ? '0' : await this.#grant();
      const res = await this.client.kv.txn({
        compare: [{ key: Buffer.from(s.key), target: 'Mod', result: 'Equal', mod_revision: s.modRevision }],
        success: [{ request_put: { key: Buffer.from(s.key), value, lease: leaseId } }],
      });
      if (!res.succeeded) {
        if (!reservation) await this.#revoke(leaseId);
        return undefined;
      }
      // The old etcd lease (from our previous run) now holds no key.
      if (!reservation && s.leaseId !== leaseId) await this.#revoke(s.leaseId);
      this.#log.info({ key: s.key, reservation }, 'reusing existing lease');
      return this.#hold(s.key, s.lease.subnet, s.lease.ipv6Subnet, attrs, leaseId, reservation);
    }

    for (const stale of plan.stale) {
      const s = items.find((i) => i.lease === stale)!;
      this.#log.info({ key: s.key }, 'deleting our lease that no longer fits the config');
      await this.client.kv.txn({
        compare: [{ key: Buffer.from(s.key), target: 'Mod', result: 'Equal', mod_revision: s.modRevision }],
        success: [{ request_delete_range: { key: Buffer.from(s.key) } }],
      });
    }
    const key = this.subnetsPrefix + makeSubnetKey(plan.subnet, plan.ipv6Subnet);
    const leaseId = await this.#grant();
    const created = await this.#createIfAbsent(key, value, leaseId);
    if (created === undefined) {
      await this.#revoke(leaseId);
      return undefined;
    }
    // A key with a different name can still overlap ours (another lease
    // length, or the same IPv4 subnet with another IPv6 one). The older key wins.
    const after = await this.#list();
    const mine = [plan.subnet, plan.ipv6Subnet].filter((p): p is IPPrefix => p !== undefined);
    const older = after.items.find(
      (i) =>
        i.key !== key &&
        BigInt(i.createRevision) < BigInt(created) &&
        [i.lease.subnet, i.lease.ipv6Subnet].some((p) => p !== undefined && mine.some((m) => m.overlaps(p))),
    );
    if (older) {
      this.#log.info({ key, conflict: older.key }, 'allocated subnet overlaps an older lease, retrying');
      await this.client.kv.txn({
        compare: [{ key: Buffer.from(key), target: 'Create', result: 'Equal', create_revision: created }],
        success: [{ request_delete_range: { key: Buffer.from(key) } }],
      });
      await this.#revoke(leaseId);
      return undefined;
    }
    this.#log.info({ key }, 'allocated lease');
    return this.#hold(key, plan.subnet, plan.ipv6Subnet, attrs, leaseId, false);
  }

  /** Put-if-absent; returns the create revision, or undefined if the key exists. */
  async #createIfAbsent(key: string, value: Buffer, leaseId: string): Promise<string | undefined> {
    const res = await this.client.kv.txn({
      compare: [{ key: Buffer.from(key), target: 'Version', result: 'Equal', version: 0 }],
      success: [{ request_put: { key: Buffer.from(key), value, lease: leaseId } }],
    });
    return res.succeeded ? res.header.revision : undefined;
  }

  async #grant(): Promise<string> {
    const res = await this.client.leaseClient.leaseGrant({ TTL: this.#ttl });
    return res.ID;
  }

  async #revoke(id: string): Promise<void> {
    if (id === '0') return;
    try {
      await this.client.leaseClient.leaseRevoke({ ID: id });
    } catch (err) {
      this.#log.debug({ err, id }, 'lease revoke failed (it expires on its own)');
    }
  }

  #hold(key: string, subnet: IPPrefix | undefined, ipv6Subnet: IPPrefix | undefined, attrs: LeaseAttrs, leaseId: string, reservation: boolean): Lease {
    this.#held = { key, ...(subnet ? { subnet } : {}), ...(ipv6Subnet ? { ipv6Subnet } : {}), attrs, leaseId, reservation };
    return {
      enableIPv4: subnet !== undefined,
      enableIPv6: ipv6Subnet !== undefined,
      ...(subnet ? { subnet } : {}),
      ...(ipv6Subnet ? { ipv6Subnet } : {}),
      attrs,
      ...(reservation ? {} : { expiration: new Date(Date.now() + this.#ttl * 1000) }),
    };
  }

  /** The etcd lease id currently backing our key ('0' for a reservation). For tests and metrics. */
  heldLeaseId(): string | undefined {
    return this.#held?.leaseId;
  }

  // --- keep the lease --------------------------------------------------------

  /**
   * Keeps our key alive until `signal` aborts: KeepAlive on the etcd lease,
   * a watch on our own key, and a periodic check. A vanished key is put back
   * with the same subnet (on a fresh etcd lease); a key now held by another
   * node rejects with LeaseLostError.
   */
  async completeLease(lease: Lease, signal: AbortSignal): Promise<void> {
    const held = this.#held;
    if (!held || held.subnet?.toString() !== lease.subnet?.toString() || held.ipv6Subnet?.toString() !== lease.ipv6Subnet?.toString()) {
      throw new AcquireLeaseError('completeLease: lease was not acquired by this manager');
    }
    const inner = new AbortController();
    const stopInner = (): void => inner.abort();
    signal.addEventListener('abort', stopInner, { once: true });
    let failure: unknown;
    const wake = new Wakeup();
    const fail = (err: unknown): void => {
      failure = err;
      inner.abort();
      wake.fire();
    };
    const tasks = [
      this.#keepAliveLoop(inner.signal, wake).catch(fail),
      this.#ownKeyWatchLoop(inner.signal, wake).catch(fail),
    ];
    try {
      const backoff = new Backoff(ETCD_BACKOFF);
      while (!inner.signal.aborted) {
        try {
          await this.#ensureHeld();
          backoff.reset();
          await wake.wait(60_000, inner.signal);
        } catch (err) {
          if (err instanceof LeaseLostError) {
            fail(err);
            break;
          }
          this.#log.warn({ err }, 'lease check failed, retrying');
          await backoff.sleep(inner.signal);
        }
      }
    } finally {
      inner.abort();
      signal.removeEventListener('abort', stopInner);
      await Promise.all(tasks);
    }
    if (failure !== undefined) throw failure;
  }

  /** Makes sure our key exists with our attrs; re-creates it if it vanished. */
  async #ensureHeld(): Promise<void> {
    const held = this.#held!;
    const res = await this.client.kv.range({ key: Buffer.from(held.key) });
    const kv = res.kvs[0];
    const value = Buffer.from(leaseAttrsToJSON(held.attrs));
    if (kv) {
      const cur = this.#decode(kv);
      if (cur && leaseAttrsToJSON(cur.lease.attrs) === value.toString()) {
        // Still ours. An operator may have turned it into a reservation
        // (put without a lease) or back; follow what the store says.
        held.leaseId = cur.leaseId;
        held.reservation = cur.leaseId === '0';
        return;
      }
      // Another node's valid lease on our subnet: we lost it.
      if (cur && !sameOwner(cur.lease.attrs, held.attrs)) throw new LeaseLostError(held.key);
      // Our key with an undecodable value or edited attributes (same public
      // IP): put ours back, only if nobody changed it again meanwhile.
      const leaseId = held.reservation ? '0' : await this.#grant();
      const put = await this.client.kv.txn({
        compare: [{ key: Buffer.from(held.key), target: 'Mod', result: 'Equal', mod_revision: kv.mod_revision }],
        success: [{ request_put: { key: Buffer.from(held.key), value, lease: leaseId } }],
      });
      if (!put.succeeded) {
        await this.#revoke(leaseId);
        return this.#ensureHeld();
      }
      const old = held.leaseId;
      held.leaseId = leaseId;
      if (old !== leaseId) await this.#revoke(old);
      this.#log.warn({ key: held.key }, 'our lease had been overwritten with a foreign or undecodable value; restored it');
      return;
    }
    // Gone: revoked, expired while etcd was unreachable, or deleted by hand.
    // Put the same subnet back; create-if-absent so we never steal it.
    const leaseId = await this.#grant();
    const created = await this.#createIfAbsent(held.key, value, leaseId);
    if (created === undefined) {
      await this.#revoke(leaseId);
      return this.#ensureHeld();
    }
    const old = held.leaseId;
    held.leaseId = leaseId;
    held.reservation = false;
    if (old !== '0') await this.#revoke(old);
    this.#log.warn({ key: held.key }, 'our lease was gone from etcd; re-created it with the same subnet');
  }

  async #keepAliveLoop(signal: AbortSignal, wake: Wakeup): Promise<void> {
    const period = this.#opts.keepAliveMs ?? Math.min((this.#ttl * 1000) / 3, 5 * 60_000);
    const backoff = new Backoff(ETCD_BACKOFF);
    while (!signal.aborted) {
      const id = this.#held!.leaseId;
      if (id === '0') {
        // A reservation has nothing to keep alive; wait for a change.
        await sleep(period, signal);
        continue;
      }
      try {
        const stream = await this.client.leaseClient.leaseKeepAlive();
        try {
          await new Promise<void>((resolve, reject) => {
            let timer: NodeJS.Timeout | undefined;
            const done = (err?: unknown): void => {
              if (timer) clearTimeout(timer);
              signal.removeEventListener('abort', onAbort);
              if (err) reject(err);
              else resolve();
            };
            const onAbort = (): void => done();
            signal.addEventListener('abort', onAbort, { once: true });
            stream.on('error', (err: unknown) => done(err));
            stream.on('end', () => done(new NetError('ETCD_STREAM_ENDED', 'keep-alive stream ended')));
            stream.on('data', (res: { ID: string; TTL: string }) => {
              backoff.reset();
              if (res.TTL === '0' || Number(res.TTL) <= 0) {
                // The lease is gone (revoked or expired): have the main loop put the key back.
                this.#log.warn({ id: res.ID }, 'etcd lease no longer exists');
                wake.fire();
                done();
                return;
              }
              timer = setTimeout(send, period);
            });
            const send = (): void => {
              if (this.#held!.leaseId !== id) return done();
              stream.write({ ID: id });
            };
            send();
          });
        } finally {
          stream.end();
        }
        // Lease gone or replaced: give the main loop a moment to re-create, then keep the new one.
        if (!signal.aborted && this.#held!.leaseId === id) await backoff.sleep(signal);
      } catch (err) {
        if (signal.aborted) return;
        this.#log.warn({ err }, 'keep-alive failed, retrying');
        wake.fire();
        await backoff.sleep(signal);
      }
    }
  }

  async #ownKeyWatchLoop(signal: AbortSignal, wake: Wakeup): Promise<void> {
    const key = this.#held!.key;
    const backoff = new Backoff(ETCD_BACKOFF);
    while (!signal.aborted) {
      try {
        await watchStream(this.client, { key: Buffer.from(key) }, signal, (res) => {
          backoff.reset();
          if (res.events.length > 0) wake.fire();
        });
      } catch (err) {
        if (signal.aborted) return;
        this.#log.debug({ err }, 'own-lease watch failed, retrying');
        wake.fire();
      }
      await backoff.sleep(signal);
    }
  }

  // --- watch all leases -----------------------------------------------------------

  /**
   * Streams lease changes under `<prefix>/subnets/`. Starts with a snapshot,
   * unless `sinceRevision` (a cursor from a previous run) is given: then it
   * resumes after that revision, and yields a snapshot only if the revision
   * was compacted away.
   */
  async *watchLeases(outer: AbortSignal, opts: { sinceRevision?: string } = {}): AsyncGenerator<LeaseWatchResult> {
    // Ends when the caller aborts or stops iterating.
    const ctl = new AbortController();
    const signal = ctl.signal;
    const onOuterAbort = (): void => ctl.abort();
    outer.addEventListener('abort', onOuterAbort, { once: true });
    if (outer.aborted) ctl.abort();
    const queue = new AsyncQueue<LeaseWatchResult>();
    const backoff = new Backoff(ETCD_BACKOFF);
    let revision: string | undefined = opts.sinceRevision;
    const relist = async (): Promise<void> => {
      const { items, revision: rev } = await this.#list();
      revision = rev;
      queue.push({ snapshot: items.map((i) => i.lease) });
    };
    const run = async (): Promise<void> => {
      while (!signal.aborted) {
        try {
          if (revision === undefined) await relist();
          let compacted = false;
          await watchStream(
            this.client,
            { key: Buffer.from(this.subnetsPrefix), range_end: prefixEnd(this.subnetsPrefix), start_revision: (BigInt(revision!) + 1n).toString() },
            signal,
            (res) => {
              backoff.reset();
              if (res.compact_revision !== '0' && res.compact_revision !== '') {
                compacted = true;
                return 'stop';
              }
              const events: LeaseEvent[] = [];
              for (const e of res.events) {
                const key = e.kv.key.toString();
                if (e.type === 'Put') {
                  const s = this.#decode(e.kv);
                  if (s) events.push({ type: 'added', lease: s.lease });
                } else {
                  const sn = parseSubnetKey(key.slice(this.subnetsPrefix.length));
                  if (sn) events.push({ type: 'removed', lease: { enableIPv4: sn.subnet !== undefined, enableIPv6: sn.ipv6Subnet !== undefined, ...sn, attrs: {} } });
                }
              }
              if (BigInt(res.header.revision) > BigInt(revision!)) revision = res.header.revision;
              if (events.length) queue.push({ events });
              return undefined;
            },
          );
          if (compacted) {
            this.#log.info({ revision }, 'watch revision compacted, re-listing leases');
            revision = undefined;
            continue;
          }
        } catch (err) {
          if (signal.aborted) break;
          const delay = backoff.next();
          this.#log.warn({ err, backoff: delay }, 'lease watch failed, retrying');
          await sleep(delay, signal);
          continue;
        }
        await backoff.sleep(signal);
      }
    };
    const done = run().then(
      () => queue.close(),
      (err: unknown) => queue.fail(err),
    );
    const onAbort = (): void => queue.close();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        const next = await queue.next();
        if (next === undefined) break;
        yield next;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      outer.removeEventListener('abort', onOuterAbort);
      ctl.abort();
      await done;
    }
  }
}

// ---------------------------------------------------------------------------
// helpers

export function etcdClientOptions(opts: EtcdManagerOptions): IOptions {
  const endpoints = (opts.endpoints ?? DEFAULT_ETCD_ENDPOINTS).map((e) => e.trim()).filter((e) => e !== '');
  if (endpoints.length === 0) throw new EtcdOptionsError('no etcd endpoints given');
  for (const e of endpoints) {
    if (!/^(https?:\/\/)?[^/\s]+(:\d+)?\/?$/.test(e)) throw new EtcdOptionsError(`invalid etcd endpoint "${e}"`);
  }
  const out: IOptions = { hosts: endpoints.map((e) => e.replace(/\/$/, '')), dialTimeout: 5000 };
  if ((opts.keyFile === undefined) !== (opts.certFile === undefined)) {
    throw new EtcdOptionsError('--etcd-keyfile and --etcd-certfile must be given together');
  }
  const read = (what: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new EtcdOptionsError(`failed to read ${what} ${path}: ${(err as Error).message}`, err);
    }
  };
  if (opts.caFile !== undefined || opts.keyFile !== undefined) {
    const creds: NonNullable<IOptions['credentials']> = {
      rootCertificate: opts.caFile !== undefined ? read('etcd CA file', opts.caFile) : (undefined as unknown as Buffer),
    };
    if (opts.keyFile !== undefined && opts.certFile !== undefined) {
      creds.privateKey = read('etcd key file', opts.keyFile);
      creds.certChain = read('etcd cert file', opts.certFile);
    }
    out.credentials = creds;
  }
  if ((opts.username === undefined) !== (opts.password === undefined)) {
    throw new EtcdOptionsError('--etcd-username and --etcd-password must be given together');
  }
  if (opts.username !== undefined && opts.password !== undefined) out.auth = { username: opts.username, password: opts.password };
  return out;
}

/** Whether two lease attribute sets were published by the same node (same public IP per family). */
export function sameOwner(a: LeaseAttrs, b: LeaseAttrs): boolean {
  if (b.publicIP !== undefined) return a.publicIP === b.publicIP;
  return b.publicIPv6 !== undefined && a.publicIPv6 === b.publicIPv6;
}

/** The range_end that selects every key starting with `prefix`. */
function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const out = Buffer.from(b.subarray(0, i + 1));
      out[i] = b[i]! + 1;
      return out;
    }
  }
  return Buffer.from([0]);
}

/**
 * One raw gRPC watch: creates the watcher, feeds responses to `onResponse`
 * until it returns 'stop', the stream fails (rejects), the server cancels it
 * (resolves after handing over the cancel response) or `signal` aborts.
 */
function watchStream(
  client: Etcd3,
  req: { key: Buffer; range_end?: Buffer; start_revision?: string },
  signal: AbortSignal,
  onResponse: (res: IWatchResponse) => 'stop' | undefined,
): Promise<void> {
  return client.watchClient.watch().then(
    (stream) =>
      new Promise<void>((resolve, reject) => {
        let finished = false;
        const finish = (err?: unknown): void => {
          if (finished) return;
          finished = true;
          signal.removeEventListener('abort', onAbort);
          stream.on('error', () => {}); // cancelling surfaces as an error on the stream
          stream.cancel();
          if (err) reject(err);
          else resolve();
        };
        const onAbort = (): void => finish();
        if (signal.aborted) return finish();
        signal.addEventListener('abort', onAbort, { once: true });
        stream.on('error', (err: unknown) => finish(err));
        stream.on('end', () => finish(new NetError('ETCD_STREAM_ENDED', 'watch stream ended')));
        stream.on('data', (res: IWatchResponse) => {
          if (finished) return;
          let r: 'stop' | undefined;
          try {
            r = onResponse(res);
          } catch (err) {
            return finish(err);
          }
          if (r === 'stop' || res.canceled) finish();
        });
        stream.write({ create_request: { ...req, progress_notify: true } });
      }),
  );
}
