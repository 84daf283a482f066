// The udp backend: a TUN device flannel0 with the lease's network address
// as /32 and a route for the whole cluster Network to it; a userspace
// datapath (udp-datapath.ts) carries each inner IPv4 packet as one UDP
// datagram (port 8285) to the peer owning the destination subnet. As
// upstream: IPv4 only, meant for debugging and for environments where VXLAN
// is unavailable, and forwarding stops while flanneld is not running (the
// TUN device goes away with the process).
import { closeSync } from 'node:fs';
import { isExists } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { rt, type NetlinkHandle } from '../../lib/netlink/index.ts';
import type { Lease, LeaseAttrs, LeaseWatchResult, NetworkConfig } from '../subnet/types.ts';
import { cfgInt, ensureLeaseAddress, publicIPOf, subnetOf, subscribeDeviceEvents } from './common.ts';
import { runReconciler, type SyncFailure } from './reconciler.ts';
import { BackendConfigError, type Backend, type BackendContext, type ExternalInterface, type Network } from './types.ts';
import { UdpDatapath, type UdpPeer } from './udp-datapath.ts';
import { eventFd, openTunIn, udpSocketIn, type UdpSocket } from './udp-sys.ts';
import type { IPPrefix } from '../../lib/ip/index.ts';

export const UDP_DEVICE = 'flannel0';
export const UDP_DEFAULT_PORT = 8285;
/** IPv4 header 20 + UDP header 8. */
export const UDP_OVERHEAD = 28;

/** The peers a lease set yields for the datapath (IPv4 subnets with a public IP). */
export function udpPeers(leases: readonly Lease[], port: number): UdpPeer[] {
  const out: UdpPeer[] = [];
  for (const l of leases) {
    const sub = subnetOf(l, 4);
    const pub = publicIPOf(l, 4);
    if (sub && pub) out.push({ subnet: sub, publicIP: pub, port });
  }
  return out;
}

class UdpNetwork implements Network {
  #lease: Lease | undefined;
  #tunIndex = 0;

  constructor(
    private readonly network: IPPrefix,
    private readonly port: number,
    private readonly ext: ExternalInterface,
    private readonly h: NetlinkHandle,
    private readonly log: Logger,
    private readonly ctx: BackendContext,
    private readonly fds: { tun: number; udp: number; event: number; vnetHdr: boolean; gro: boolean },
  ) {}

  leaseAttrs(): LeaseAttrs {
    const pub = this.ext.extAddr ?? this.ext.ifaceAddr;
    return pub ? { publicIP: pub.toString() } : {};
  }

  mtu(): number {
    return this.ext.mtu - UDP_OVERHEAD;
  }

  async setLease(lease: Lease): Promise<void> {
    this.#lease = lease;
    await this.ensureDevice();
  }

  async ensureDevice(): Promise<void> {
    const link = await this.h.linkByName(UDP_DEVICE);
    this.#tunIndex = link.index;
    if (link.mtu !== this.mtu()) await this.h.linkSetMtu(link.index, this.mtu());
    if (!this.#lease) return;
    await ensureLeaseAddress(this.h, link.index, this.#lease, 4, this.network);
    // ICMP errors we generate carry our own TUN address as source.
    this.h.writeSysctl(`net/ipv4/conf/${UDP_DEVICE}/accept_local`, '1');
    if (!link.up) await this.h.linkSetUp(link.index);
    try {
      await this.h.routeAdd({ family: 4, dst: this.network, oif: link.index, scope: rt.RT_SCOPE_LINK });
    } catch (err) {
      if (!isExists(err)) throw err;
    }
  }

  run(watch: AsyncIterable<LeaseWatchResult>, signal: AbortSignal): Promise<void> {
    const lease = this.#lease;
    const sub = lease ? subnetOf(lease, 4) : undefined;
    if (!sub) return Promise.reject(new BackendConfigError('udp: run() before setLease()'));
    const dp = new UdpDatapath({
      tunFd: this.fds.tun,
      udpFd: this.fds.udp,
      eventFd: this.fds.event,
      vnetHdr: this.fds.vnetHdr,
      gro: this.fds.gro,
      tunIP: sub.network(),
      onFailure: (m) => this.log.error({ reason: m }, 'udp datapath thread stopped'),
    });
    const done = runReconciler(
      {
        name: 'udp',
        log: this.log,
        ownLease: lease,
        hooks: this.ctx.hooks,
        resyncInterval: this.ctx.resyncInterval,
        programmer: {
          checkLease: (l) => {
            if (l.attrs.backendType !== undefined && l.attrs.backendType !== 'udp') return `backend type ${JSON.stringify(l.attrs.backendType)} is not udp`;
            if (!publicIPOf(l, 4)) return 'no public IPv4 address';
            return null;
          },
          sync: async (peers) => {
            const failures: SyncFailure[] = [];
            try {
              await this.ensureDevice();
            } catch (error) {
              failures.push({ kind: 'device', what: UDP_DEVICE, error });
            }
            if (peers) dp.setPeers(udpPeers(peers, this.port));
            return failures;
          },
          subscribe: (onChange) => subscribeDeviceEvents(this.h, [UDP_DEVICE], () => [this.#tunIndex], onChange),
        },
      },
      watch,
      signal,
    );
    return done.finally(async () => {
      await dp.stop();
      this.log.info(dp.stats(), 'udp datapath stopped');
      for (const fd of [this.fds.tun, this.fds.udp, this.fds.event]) {
        try {
          closeSync(fd);
        } catch {
          // already closed
        }
      }
    });
  }
}

/** Datapath offloads; both default to on (each falls back by itself where the kernel lacks it). */
export interface UdpOptions {
  /** IFF_VNET_HDR on the TUN: TSO super-packets read and cut here, TCP segments coalesced into GSO writes. */
  vnetHdr?: boolean;
  /** UDP_GRO on the socket: one recv for a run of datagrams from one sender. */
  gro?: boolean;
}

export const udp = (opts: UdpOptions = {}): Backend => ({
  async registerNetwork(cfg: NetworkConfig, ext, ctx) {
    if (!cfg.enableIPv4 || !cfg.ipv4) throw new BackendConfigError('udp backend supports IPv4 only');
    if (cfg.enableIPv6) ctx.log.warn({}, 'udp backend carries IPv4 only; IPv6 is not programmed');
    if (!ext.ifaceAddr) throw new BackendConfigError(`udp: external interface ${ext.name} has no IPv4 address`);
    const port = cfgInt(cfg.backend.raw, 'Port', UDP_DEFAULT_PORT, 1, 65535);
    const tun = openTunIn(ctx.handle.nsFd, UDP_DEVICE, { offload: opts.vnetHdr ?? true });
    let sock: UdpSocket | undefined;
    let ev = -1;
    try {
      sock = udpSocketIn(ctx.handle.nsFd, ext.ifaceAddr, port, { gro: opts.gro ?? true });
      ev = eventFd();
      const fds = { tun: tun.fd, udp: sock.fd, event: ev, vnetHdr: tun.vnetHdr, gro: sock.gro };
      const nw = new UdpNetwork(cfg.ipv4.network, port, ext, ctx.handle, ctx.log.child({ backend: 'udp' }), ctx, fds);
      await nw.ensureDevice();
      return nw;
    } catch (err) {
      for (const fd of [tun.fd, sock?.fd ?? -1, ev]) if (fd >= 0) closeSync(fd);
      throw err;
    }
  },
});
