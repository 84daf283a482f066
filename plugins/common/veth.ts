// A veth pair from the node into a pod: the reference plugins' pkg/ip
// SetupVeth, for every plugin that connects a container with a veth (bridge
// today; ptp would too). The host end gets a random `veth<8 hex>` name, the
// container end is created directly in the pod namespace under CNI_IFNAME.
import { randomBytes } from 'node:crypto';
import { NetError, errorMessage, isExists } from '../../lib/errors.ts';
import type { Link, NetlinkHandle } from '../../lib/netlink/index.ts';
import { internal } from './errors.ts';

export interface VethSpec {
  /** The container end's name (CNI_IFNAME). */
  readonly ifName: string;
  /** MTU of both ends; the kernel's default when undefined. */
  readonly mtu?: number | undefined;
  /** MAC of the container end; the kernel's random one when undefined. */
  readonly mac?: string | undefined;
}

export interface VethPair {
  readonly hostVeth: Link;
  readonly contVeth: Link;
}

/** How many times a clash of the random host name is retried with another one. */
const HOST_NAME_RETRIES = 5;

/** A host-side veth name as the reference picks it: `veth` and 8 random hex digits. */
export function randomVethName(): string {
  return `veth${randomBytes(4).toString('hex')}`;
}

const containerNameTaken = (ifName: string): NetError =>
  // EEXIST (errnoOf, isExists); still CNI 999 at the boundary, as the reference reports it.
  new NetError('EEXIST', `container veth name provided (${ifName}) already exists`);

/**
 * Creates the pair with the container end in `pod` (both ends down), then
 * runs `prepareHost` on the host end (attach it, set it up, ...). When a step
 * after the creation fails, prepareHost included, the pair is deleted again
 * before the error is rethrown: the caller's undo stack only learns of the
 * pair once this returns. Errors: EEXIST when `spec.ifName` exists in the
 * pod; INTERNAL "failed to create veth pair: ..." when the kernel refuses.
 * Returns both ends as they are after prepareHost.
 */
export async function setupVeth(
  host: NetlinkHandle,
  pod: NetlinkHandle,
  spec: VethSpec,
  prepareHost: (hostVeth: Link) => Promise<void> = async () => undefined,
): Promise<VethPair> {
  if (await pod.linkFind(spec.ifName)) throw containerNameTaken(spec.ifName);
  const hostName = await createPair(host, pod, spec);
  let hostIndex: number | undefined;
  try {
    const hostVeth = await host.linkByName(hostName);
    hostIndex = hostVeth.index;
    await prepareHost(hostVeth);
    const contVeth = await pod.linkByName(spec.ifName);
    return { hostVeth: await host.linkByIndex(hostIndex), contVeth };
  } catch (err) {
    // Deleting one end deletes both, wherever the peer is.
    const index = hostIndex ?? (await host.linkFind(hostName).catch(() => undefined))?.index;
    if (index !== undefined) await host.linkDel(index).catch(() => undefined);
    throw err;
  }
}

/** Adds the pair, retrying a clash of the random host name; returns the host end's name. */
async function createPair(host: NetlinkHandle, pod: NetlinkHandle, spec: VethSpec): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const hostName = randomVethName();
    try {
      await host.linkAdd({
        name: hostName,
        kind: 'veth',
        ...(spec.mtu !== undefined ? { mtu: spec.mtu } : {}),
        veth: { peerName: spec.ifName, peerNetnsFd: pod.nsFd!, ...(spec.mac ? { peerMac: spec.mac } : {}) },
      });
      return hostName;
    } catch (err) {
      if (isExists(err) && attempt < HOST_NAME_RETRIES) {
        // EEXIST names neither end: a concurrent ADD may have taken ifName meanwhile.
        if (await pod.linkFind(spec.ifName)) throw containerNameTaken(spec.ifName);
        continue; // host name collision; pick another
      }
      throw internal(`failed to create veth pair: ${errorMessage(err)}`, err);
    }
  }
}
