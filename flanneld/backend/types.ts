// The contract between flanneld's main loop and its datapath backends
// (mirrors upstream pkg/backend: Backend.RegisterNetwork, Network.Lease/MTU/Run),
// split so the daemon can publish lease attributes before acquiring the lease.
import { NetError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import type { IPAddr } from '../../lib/ip/index.ts';
import type { NetlinkHandle } from '../../lib/netlink/index.ts';
import type { Lease, LeaseAttrs, LeaseWatchResult, NetworkConfig } from '../subnet/types.ts';

/** The chosen external (underlay) interface, as the daemon resolved it (upstream ExternalInterface). */
export interface ExternalInterface {
  index: number;
  name: string;
  mtu: number;
  /** Address on the interface (IfaceAddr / IfaceV6Addr). */
  ifaceAddr?: IPAddr;
  ifaceV6Addr?: IPAddr;
  /** Public address published in the lease (ExtAddr, `--public-ip`); defaults to ifaceAddr. */
  extAddr?: IPAddr;
  extV6Addr?: IPAddr;
}

/** Hooks for the daemon's metrics; all optional. */
export interface BackendHooks {
  /** One reconcile pass took `seconds`; `ok` false when some entry failed. */
  onSyncDuration?(seconds: number, ok: boolean): void;
  /** One kernel programming operation failed (kind: route|neigh|fdb|device|peers). */
  onProgrammingError?(kind: string): void;
  /** Number of remote peers currently programmed. */
  onPeers?(count: number): void;
  /** Number of remote leases currently ignored because the backend rejects their data. */
  onIgnoredLeases?(count: number): void;
}

export interface BackendContext {
  /** rtnetlink handle in the node's namespace (where the devices live). */
  handle: NetlinkHandle;
  log: Logger;
  /** VTEP MACs previously published for this node (SubnetManager.getStoredMacAddresses). */
  storedMacs?: { v4?: string; v6?: string };
  hooks?: BackendHooks;
  /** Periodic full resync (ms); default 10 000. */
  resyncInterval?: number;
}

export interface Network {
  /** What to publish on this node's lease, before acquiring it. */
  leaseAttrs(): LeaseAttrs;
  /** Configures what depends on the lease (device addresses, the udp route); call once the lease is known. */
  setLease(lease: Lease): Promise<void>;
  /** MTU for pods (FLANNEL_MTU in subnet.env). */
  mtu(): number;
  /** Programs the datapath from the lease stream until `signal` aborts; resolves then. */
  run(watch: AsyncIterable<LeaseWatchResult>, signal: AbortSignal): Promise<void>;
}

export interface Backend {
  /** Creates the devices (not lease-dependent parts) and returns the Network. */
  registerNetwork(cfg: NetworkConfig, ext: ExternalInterface, ctx: BackendContext): Promise<Network>;
}

export type BackendFactory = () => Backend;

export class BackendConfigError extends NetError {
  constructor(message: string, cause?: unknown) {
    super('INVALID_BACKEND_CONFIG', message, { cause });
  }
}
