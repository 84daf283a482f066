// Link-layer (MAC) address text <-> bytes, and the AF_* number of a family.
// IP addresses are lib/ip values; only MACs stay strings in the netlink model.
import type { Family } from '../ip/index.ts';
import { AF_INET, AF_INET6 } from './constants.ts';

export const afOf = (f: Family): number => (f === 4 ? AF_INET : AF_INET6);
export const familyOfAf = (af: number): Family => (af === AF_INET6 ? 6 : 4);

export function parseMac(s: string): Buffer {
  const parts = s.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new TypeError(`invalid MAC address "${s}"`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export const formatMac = (b: Buffer): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
