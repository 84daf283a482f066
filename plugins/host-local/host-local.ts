// host-local IPAM: the CNI commands over config, allocator and disk store.
import { accessSync, constants as fsc, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ErrnoError, ErrorCode, NetError, errorMessage, isNotFound, isTemporary, wrapError } from '../../lib/errors.ts';
import { IPAddr } from '../../lib/ip/index.ts';
import { CniError } from '../skel/types.ts';
import type { CmdArgs, IPConfig, PluginFuncs, Result } from '../skel/types.ts';
import { HostLocalErrCode, freeCount, pickAddress } from './allocator.ts';
import { loadConfig, parseResolvConf, rangeFor, rangeSetString, storeLocation } from './config.ts';
import type { HostLocalConfig } from './config.ts';
import { DiskStore } from './disk-store.ts';
import type { DiskStoreOptions } from './disk-store.ts';
import { parseOwner } from './store.ts';
import { attachmentKey, validAttachments } from '../skel/attachments.ts';
import type { IpamStore } from './store.ts';
import { traceMark } from '../../lib/trace.ts';

/**
 * What host-local did not classify itself (a failed read, write or flock on
 * the store) is an I/O failure; its own errors and transient ones (EINTR,
 * EAGAIN, a lock timeout) keep their codes. The skeleton picks the numbers.
 */
function classify(err: unknown): unknown {
  if (isTemporary(err)) return err;
  if (err instanceof NetError && !(err instanceof ErrnoError)) return err;
  return new NetError(ErrorCode.IoFailure, errorMessage(err), { cause: err });
}

async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw classify(err);
  }
}

export interface HostLocalOptions {
  /** Lock wait limit in ms before failing with code 11. */
  lockTimeoutMs?: number;
}

function storeOpts(create: boolean, o: HostLocalOptions): DiskStoreOptions {
  return o.lockTimeoutMs === undefined ? { create } : { create, lockTimeoutMs: o.lockTimeoutMs };
}

function readDns(cfg: HostLocalConfig): Result['dns'] {
  if (!cfg.resolvConf) return undefined;
  let text: string;
  try {
    text = readFileSync(cfg.resolvConf, 'utf8');
  } catch (err) {
    throw new NetError(ErrorCode.InvalidConfig, `open ${cfg.resolvConf}: ${isNotFound(err) ? 'no such file or directory' : (err as Error).message}`);
  }
  return parseResolvConf(text);
}

async function add(args: CmdArgs, o: HostLocalOptions): Promise<Result> {
  const cfg = loadConfig(args.config, args.args, args.cniVersion);
  const dns = readDns(cfg);
  traceMark('host-local ADD: config, resolvConf');
  const store = DiskStore.open(cfg.dataDir, cfg.name, storeOpts(true, o))!;
  traceMark('host-local ADD: store open');
  try {
    const pending = new Map(cfg.requestedIPs.map((ip) => [ip.toString(), ip]));
    const done: { ip: IPAddr }[] = [];
    const ips: IPConfig[] = [];
    const rollback = async (): Promise<void> => {
      if (done.length === 0) return;
      const content = `${args.containerId.trim()}\r\n${args.ifName}`;
      // Release only what this ADD reserved, never an older reservation.
      await store.withLock((s) => {
        for (const d of done) s.releaseIfOwned(d.ip.toString(), content);
      });
    };
    for (let idx = 0; idx < cfg.ranges.length; idx++) {
      const set = cfg.ranges[idx]!;
      let requested: IPAddr | undefined;
      for (const [k, ip] of pending) {
        if (rangeFor(set, ip)) {
          requested = ip;
          pending.delete(k);
          break;
        }
      }
      try {
        const alloc = await store.withLock((s) => {
          const extra = new Set<string>();
          const view = {
            isTaken: (ip: IPAddr) => s.isTaken(ip) || extra.has(ip.toString()),
            get takenCount() {
              return s.entries.size + extra.size;
            },
            lastReserved: s.lastReservedIP(idx),
            owned: s.getByID(args.containerId, args.ifName),
          };
          for (;;) {
            const a = pickAddress(set, view, args.containerId, requested);
            if (s.reserve(a.ip, args.containerId, args.ifName, idx)) return a;
            if (requested) {
              throw new CniError(HostLocalErrCode.RequestedIPUnavailable, `requested IP address ${requested} is not available in range set ${rangeSetString(set)}`);
            }
            extra.add(a.ip.toString());
          }
        });
        done.push(alloc);
        ips.push({ address: `${alloc.ip}/${alloc.range.subnet.length}`, gateway: alloc.range.gateway.toString() });
      } catch (err) {
        await rollback().catch(() => undefined);
        throw wrapError(`failed to allocate for range ${idx}: `, classify(err));
      }
    }
    if (pending.size > 0) {
      await rollback().catch(() => undefined);
      throw new CniError(HostLocalErrCode.RequestedIPUnavailable, `failed to allocate all requested IPs: ${[...pending.keys()].join(' ')}`);
    }
    traceMark('host-local ADD: lock, index, allocate, reserve');
    const result: Result = { ips, routes: cfg.routes.map((r) => ({ ...r })) };
    if (dns) result.dns = dns;
    return result;
  } finally {
    store.close();
    traceMark('host-local ADD: store close');
  }
}

/** Opens the store of the request without validating ranges; undefined when it does not exist. */
function openExisting(args: CmdArgs, o: HostLocalOptions): IpamStore | undefined {
  const loc = storeLocation(args.config);
  return DiskStore.open(loc.dataDir, loc.name, storeOpts(false, o));
}

async function del(args: CmdArgs, o: HostLocalOptions): Promise<void> {
  // Needs only (name, dataDir): releases even when ranges no longer validate
  // or were removed from the config, and never creates the store.
  const store = openExisting(args, o);
  traceMark('host-local DEL: config, store open');
  if (!store) return;
  try {
    await store.withLock((s) => s.releaseByID(args.containerId, args.ifName));
    traceMark('host-local DEL: lock, index, release');
  } finally {
    store.close();
    traceMark('host-local DEL: store close');
  }
}

async function check(args: CmdArgs, o: HostLocalOptions): Promise<void> {
  loadConfig(args.config, args.args, args.cniVersion);
  const store = openExisting(args, o);
  let found = false;
  if (store) {
    try {
      found = await store.withLock((s) => s.findByID(args.containerId, args.ifName));
    } finally {
      store.close();
    }
  }
  if (!found) throw new NetError('ADDRESS_NOT_FOUND', `host-local: Failed to find address added by container ${args.containerId}`);
}

async function gc(args: CmdArgs, o: HostLocalOptions): Promise<void> {
  const valid = validAttachments(args.config);
  if (!valid) return;
  const keep = new Set(valid.map(attachmentKey));
  const keepIds = new Set(valid.map((a) => a.containerId));
  const store = openExisting(args, o);
  if (!store) return;
  try {
    await store.withLock(
      (s) => {
        for (const [name, content] of [...s.entries]) {
          if (!IPAddr.parse(name) || IPAddr.parse(name)!.toString() !== name) continue;
          const owner = parseOwner(content);
          const stale =
            owner.kind === 'attachment'
              ? !keep.has(attachmentKey(owner))
              : owner.kind === 'legacy'
                ? !keepIds.has(owner.containerId)
                : false;
          if (stale) s.releaseIfOwned(name, content);
        }
      },
      { fullScan: true },
    );
  } finally {
    store.close();
  }
}

function writableDir(dir: string): boolean {
  let d = dir;
  for (;;) {
    try {
      if (statSync(d).isDirectory()) {
        accessSync(d, fsc.W_OK | fsc.X_OK);
        return true;
      }
      return false;
    } catch (err) {
      if (!isNotFound(err)) return false;
    }
    const up = dirname(d);
    if (up === d) return false;
    d = up;
  }
}

async function status(args: CmdArgs, o: HostLocalOptions): Promise<void> {
  const cfg = loadConfig(args.config, args.args, args.cniVersion);
  const dir = join(cfg.dataDir, cfg.name);
  if (!writableDir(dir)) {
    throw new NetError(ErrorCode.Unavailable, `host-local: store directory ${dir} is not writable`);
  }
  const store = DiskStore.open(cfg.dataDir, cfg.name, storeOpts(false, o));
  if (!store) return;
  try {
    const exhausted = await store.withLock((s) => {
      const taken: IPAddr[] = [];
      for (const name of s.entries.keys()) {
        const ip = IPAddr.parse(name);
        if (ip) taken.push(ip);
      }
      return cfg.ranges.filter((set) => freeCount(set, taken) <= 0n);
    });
    // An ADD needs one address from every range set: one exhausted set is enough to fail it.
    if (exhausted.length > 0) {
      throw new NetError(
        ErrorCode.Unavailable,
        `host-local: no IP addresses available in range set: ${exhausted.map(rangeSetString).join('; ')}`,
      );
    }
  } finally {
    store.close();
  }
}

/** The plugin's functions, parameterised (tests shorten the lock timeout). */
export function makeHostLocalFuncs(o: HostLocalOptions = {}): PluginFuncs {
  return {
    add: (a) => guarded(() => add(a, o)),
    del: (a) => guarded(() => del(a, o)),
    check: (a) => guarded(() => check(a, o)),
    gc: (a) => guarded(() => gc(a, o)),
    status: (a) => guarded(() => status(a, o)),
  };
}

export const hostLocalFuncs: PluginFuncs = makeHostLocalFuncs();
