// The IPVS model as consumers see it: virtual services, their real servers
// (destinations) and the global timeouts. ipvs.ts implements IpvsHandle over
// generic netlink (the kernel's "IPVS" family, as ipvsadm/libipvs speak it);
// ipvs-fake.ts holds it in memory for unit tests, with the kernel's errnos.
import type { Family, IPAddr } from '../ip/index.ts';

export type IpvsProtocol = 'tcp' | 'udp' | 'sctp';

/** IP_VS_SVC_F_* (include/uapi/linux/ip_vs.h). */
export const IPVS_SVC_F_PERSISTENT = 0x0001;
export const IPVS_SVC_F_HASHED = 0x0002;
export const IPVS_SVC_F_ONEPACKET = 0x0004;
/** Scheduler flags (sh: fallback, port; mh: fallback, port). */
export const IPVS_SVC_F_SCHED1 = 0x0008;
export const IPVS_SVC_F_SCHED2 = 0x0010;
export const IPVS_SVC_F_SCHED3 = 0x0020;

/** What identifies a virtual service: (family, address, protocol, port), or a firewall mark. */
export interface IpvsServiceKey {
  readonly family: Family;
  readonly address: IPAddr;
  readonly protocol: IpvsProtocol;
  readonly port: number;
}

export interface IpvsService extends IpvsServiceKey {
  /** rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf, twos. */
  readonly scheduler: string;
  /** IPVS_SVC_F_* bits; PERSISTENT for session affinity. */
  readonly flags: number;
  /** Persistence timeout in seconds (with IPVS_SVC_F_PERSISTENT). */
  readonly timeout: number;
  /** Persistence netmask: prefix length (32 / 128 unless set). */
  readonly netmaskBits: number;
}

/** IP_VS_CONN_F_FWD_MASK values. */
export type IpvsForward = 'masq' | 'local' | 'tunnel' | 'route' | 'bypass';

export interface IpvsDestinationKey {
  readonly address: IPAddr;
  readonly port: number;
}

export interface IpvsDestination extends IpvsDestinationKey {
  readonly weight: number;
  /** Default masq (NAT), what kube-proxy uses. */
  readonly forward: IpvsForward;
  readonly upperThreshold: number;
  readonly lowerThreshold: number;
  /** Address family of the destination (may differ from the service's with tunnel forwarding). */
  readonly family: Family;
}

/** A destination as a dump reports it: with its connection counters. */
export interface IpvsDestinationState extends IpvsDestination {
  readonly activeConns: number;
  readonly inactiveConns: number;
  readonly persistentConns: number;
}

/** Global connection timeouts in seconds (ipvsadm --set tcp tcpfin udp); 0 in a SET leaves one unchanged. */
export interface IpvsTimeouts {
  readonly tcp: number;
  readonly tcpFin: number;
  readonly udp: number;
}

export interface IpvsInfo {
  /** e.g. "1.2.1". */
  readonly version: string;
  readonly connTableSize: number;
}

/**
 * One generic netlink socket in one network namespace, speaking the IPVS
 * family. Errors are ErrnoErrors with the kernel's errno: EEXIST for a
 * service or destination that exists, ESRCH for a missing service, ENOENT for
 * a missing destination. Opening it where the kernel has no ip_vs fails with
 * the typed code 'ENOIPVS'.
 */
export interface IpvsHandle {
  info(): Promise<IpvsInfo>;
  services(): Promise<IpvsService[]>;
  /** The service as the kernel holds it, or undefined. */
  getService(key: IpvsServiceKey): Promise<IpvsService | undefined>;
  addService(s: IpvsService): Promise<void>;
  updateService(s: IpvsService): Promise<void>;
  deleteService(key: IpvsServiceKey): Promise<void>;
  destinations(key: IpvsServiceKey): Promise<IpvsDestinationState[]>;
  addDestination(key: IpvsServiceKey, d: IpvsDestination): Promise<void>;
  updateDestination(key: IpvsServiceKey, d: IpvsDestination): Promise<void>;
  deleteDestination(key: IpvsServiceKey, d: IpvsDestinationKey): Promise<void>;
  timeouts(): Promise<IpvsTimeouts>;
  setTimeouts(t: IpvsTimeouts): Promise<void>;
  /** Removes every service (ipvsadm -C). */
  flush(): Promise<void>;
  /** Requests sent so far, one per call (a dump is one request): the messages a sync costs. */
  readonly requests?: number;
  close(): void;
}

/** How ipvsadm -Ln names a service: "TCP  10.96.0.1:80", "UDP  [2001:db8::a]:53" (one space here). */
export function ipvsServiceString(key: IpvsServiceKey): string {
  return `${key.protocol.toUpperCase()} ${ipvsHostPort(key.address, key.port)}`;
}

/** "10.0.0.5:8080" or "[2001:db8::5]:8080", as ipvsadm -Ln prints addresses. */
export function ipvsHostPort(address: IPAddr, port: number): string {
  return address.family === 6 ? `[${address.toString()}]:${port}` : `${address.toString()}:${port}`;
}

/** The kernel's defaults (ip_vs_proto_tcp.c / _udp.c): ipvsadm -Ln --timeout on a fresh namespace. */
export const IPVS_DEFAULT_TIMEOUTS: IpvsTimeouts = { tcp: 900, tcpFin: 120, udp: 300 };

/** The schedulers of Debian's 6.1 kernel (ip_vs_<name>.ko), what an unknown name is checked against in the fake. */
export const IPVS_SCHEDULERS: readonly string[] = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'];
