// What a main plugin does with its IPAM plugin: the reference plugins'
// pkg/ipam. Delegation (ADD/DEL/CHECK/GC/STATUS through the IPAM
// executable on CNI_PATH, behind an interface tests replace), a DEL that does
// not get stuck on a missing IPAM binary, and ConfigureIface: putting an IPAM
// result's addresses and routes on the container interface.
import { errorMessage, isExists } from '../../lib/errors.ts';
import { IPAddr, IPPrefix, InvalidPrefixError, type Family } from '../../lib/ip/index.ts';
import type { Link, NetlinkHandle } from '../../lib/netlink/index.ts';
import { delegateAdd, delegateCheck, delegateDel, delegateGc, delegateStatus, PluginNotFoundError } from '../skel/invoke.ts';
import type { CmdArgs, Result } from '../skel/types.ts';
import { internal } from './errors.ts';

/** The delegated IPAM plugin, by type (exec'd from CNI_PATH in production). */
export interface IpamDelegate {
  add(type: string, stdinData: Buffer, args: CmdArgs): Promise<Result>;
  del(type: string, stdinData: Buffer, args: CmdArgs): Promise<void>;
  check(type: string, stdinData: Buffer, args: CmdArgs): Promise<void>;
  gc(type: string, stdinData: Buffer, args: CmdArgs): Promise<void>;
  status(type: string, stdinData: Buffer, args: CmdArgs): Promise<void>;
}

/** The IPAM executables on CNI_PATH (or registered in-process), through the skeleton's invoke. */
export const execIpam: IpamDelegate = { add: delegateAdd, del: delegateDel, check: delegateCheck, gc: delegateGc, status: delegateStatus };

/**
 * IPAM DEL that tolerates a missing IPAM binary: no retry of DEL can ever fix
 * that, and failing would leave the runtime stuck with the container forever.
 * `warn` gets the sentence saying which addresses stay allocated; every other
 * error is rethrown.
 */
export async function releaseIpam(ipam: IpamDelegate, type: string, args: CmdArgs, warn: (msg: string) => void): Promise<void> {
  try {
    await ipam.del(type, args.stdinData, args);
  } catch (err) {
    if (!(err instanceof PluginNotFoundError)) throw err;
    warn(`${err.message}; IP addresses of ${args.containerId}/${args.ifName} not released`);
  }
}

/** A CNI result's "ip/len" text (a bare address is a host prefix, as the reference reads it). */
export function resultPrefix(s: string): IPPrefix {
  const p = IPPrefix.parseOrHost(s);
  if (!p) throw new InvalidPrefixError(s);
  return p;
}

export interface ConfigureIfaceOptions {
  /** Duplicate address detection for the IPv6 addresses (the plugin's `enabledad`). */
  readonly enableDad: boolean;
}

/**
 * ConfigureIface: brings `cont` up and puts every address of `result.ips` on
 * it (the caller passes the result of this interface only), then the routes
 * of `result.routes`; a route without a gateway takes its family's first
 * gateway from the IPs. A route that exists already is fine (EEXIST); any
 * other route failure is INTERNAL "failed to add route '<dst> via <gw> dev
 * <name>'". IPv6 is enabled on lo and `cont` first when there is an IPv6
 * address (a kernel without IPv6 is not an error here).
 */
export async function configureIface(pod: NetlinkHandle, cont: Link, result: Result, opts: ConfigureIfaceOptions): Promise<void> {
  const ips = (result.ips ?? []).map((ip) => ({ address: resultPrefix(ip.address), gateway: ip.gateway ? IPAddr.mustParse(ip.gateway) : undefined }));
  if (ips.some((i) => i.address.family === 6)) enableIPv6(pod, cont.name);
  await pod.linkSetUp(cont.index);
  for (const ip of ips) {
    await pod.addrAdd(cont.index, { address: ip.address, broadcast: 'auto', noDad: !opts.enableDad });
  }
  const gwByFamily = new Map<Family, IPAddr>();
  for (const ip of ips) {
    if (ip.gateway && !gwByFamily.has(ip.address.family)) gwByFamily.set(ip.address.family, ip.gateway);
  }
  for (const r of result.routes ?? []) {
    const dst = resultPrefix(r.dst);
    const gw = r.gw ? IPAddr.mustParse(r.gw) : gwByFamily.get(dst.family);
    try {
      await pod.routeAdd({
        family: dst.family,
        dst,
        oif: cont.index,
        ...(gw ? { gw } : {}),
        ...(r.priority !== undefined ? { priority: r.priority } : {}),
        ...(r.table !== undefined ? { table: r.table } : {}),
        ...(r.scope !== undefined ? { scope: r.scope } : {}),
        ...(r.mtu !== undefined ? { mtu: r.mtu } : {}),
        ...(r.advmss !== undefined ? { advmss: r.advmss } : {}),
      });
    } catch (err) {
      if (!isExists(err)) throw internal(`failed to add route '${r.dst} via ${gw ?? ''} dev ${cont.name}': ${errorMessage(err)}`, err);
    }
  }
}

function enableIPv6(pod: NetlinkHandle, ifName: string): void {
  for (const key of ['net/ipv6/conf/lo/disable_ipv6', `net/ipv6/conf/${ifName}/disable_ipv6`]) {
    try {
      pod.writeSysctl(key, '0');
    } catch {
      // no IPv6 in this kernel
    }
  }
}
