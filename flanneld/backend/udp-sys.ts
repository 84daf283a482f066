// The fds the udp backend's datapath works on, made on the main thread with
// lib/sys (the project's one FFI seam): a UDP socket created inside the
// node's namespace, an eventfd to wake the datapath threads, and the TUN
// device. The datapath threads get them by number.
import { closeSync, constants as fsc, openSync } from 'node:fs';
import {
  AF_INET,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  IFF_NO_PI,
  IFF_TUN,
  IFF_VNET_HDR,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOL_SOCKET,
  SOL_UDP,
  SO_RCVBUFFORCE,
  SO_SNDBUFFORCE,
  TUNSETIFF,
  TUNSETOFFLOAD,
  TUN_F_CSUM,
  TUN_F_TSO4,
  UDP_GRO,
  bind,
  eventfd,
  ioctl,
  ioctlInt,
  setsockoptInt,
  sockaddrIn,
  socket,
} from '../../lib/sys/index.ts';
import { withNetnsSync } from '../../lib/netns/index.ts';
import type { IPAddr } from '../../lib/ip/index.ts';

export interface UdpSocket {
  fd: number;
  /** UDP_GRO is on: one recv may return several datagrams of one flow (with their size in a cmsg). */
  gro: boolean;
}

/** A blocking UDP socket bound to ip:port, created in the namespace `nsFd` (null: current). */
export function udpSocketIn(nsFd: number | null, ip: IPAddr, port: number, opts: { bufBytes?: number; gro?: boolean } = {}): UdpSocket {
  const fd = withNetnsSync(nsFd, () => socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  try {
    bind(fd, sockaddrIn(Number(ip.value), port), `${ip}:${port}`);
    const bufBytes = opts.bufBytes ?? 4 << 20;
    // Best effort: larger buffers absorb bursts; failure only costs throughput.
    for (const name of [SO_RCVBUFFORCE, SO_SNDBUFFORCE]) {
      try {
        setsockoptInt(fd, SOL_SOCKET, name, bufBytes);
      } catch {
        // not permitted / not supported
      }
    }
    let gro = false;
    if (opts.gro ?? true) {
      try {
        setsockoptInt(fd, SOL_UDP, UDP_GRO, 1);
        gro = true;
      } catch {
        // kernel before 5.0: one datagram per recv
      }
    }
    return { fd, gro };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

export function eventFd(): number {
  return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

export interface Tun {
  fd: number;
  /**
   * Every read and write carries a 10-byte struct virtio_net_hdr in front of
   * the packet, and reads may return TCP super-packets (TSO) or packets with
   * a partial checksum for the datapath to finish.
   */
  vnetHdr: boolean;
}

/**
 * Creates (or attaches to) the TUN device `name` in the namespace `nsFd`:
 * /dev/net/tun is opened and TUNSETIFF issued while the thread is in the
 * namespace, so the device is born there. Returns the non-blocking fd; the
 * device lives as long as the fd is open. With `offload` (default) the device
 * gets IFF_VNET_HDR and checksum/TSO4 offload, when the kernel allows it.
 */
export function openTunIn(nsFd: number | null, name: string, opts: { offload?: boolean } = {}): Tun {
  return withNetnsSync(nsFd, () => {
    const open = (vnet: boolean): number => {
      const fd = openSync('/dev/net/tun', fsc.O_RDWR | fsc.O_NONBLOCK);
      try {
        const ifr = Buffer.alloc(40);
        ifr.write(name, 0, 15, 'latin1');
        ifr.writeUInt16LE(IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0), 16);
        ioctl(fd, TUNSETIFF, ifr);
        if (vnet) ioctlInt(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4);
        return fd;
      } catch (err) {
        closeSync(fd);
        throw err;
      }
    };
    if (opts.offload ?? true) {
      try {
        return { fd: open(true), vnetHdr: true };
      } catch {
        // fall back to plain packets
      }
    }
    return { fd: open(false), vnetHdr: false };
  });
}
