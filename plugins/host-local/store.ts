// The IPAM store seam: reservations keyed by address, owned by an attachment
// (containerID, ifname). All operations run inside a session that holds the
// store's lock, as the reference holds it per Get and per Release.
import type { IPAddr } from '../../lib/ip/index.ts';

/** What a reservation file holds: `<containerID>\r\n<ifname>` (legacy: `<containerID>`). */
export function ownerKey(containerId: string, ifName: string): string {
  return `${containerId.trim()}\r\n${ifName}`;
}

const ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export type ParsedOwner =
  | { kind: 'attachment'; containerId: string; ifName: string }
  | { kind: 'legacy'; containerId: string }
  | { kind: 'unknown' };

/** Interprets a reservation's trimmed content. */
export function parseOwner(content: string): ParsedOwner {
  const parts = content.split('\r\n');
  if (parts.length === 2 && ID_RE.test(parts[0]!) && parts[1] !== '' && !/\s/.test(parts[1]!)) {
    return { kind: 'attachment', containerId: parts[0]!, ifName: parts[1]! };
  }
  if (parts.length === 1 && ID_RE.test(content)) return { kind: 'legacy', containerId: content };
  return { kind: 'unknown' };
}

export interface StoreSession {
  /** Every reservation file: name → trimmed content. */
  readonly entries: ReadonlyMap<string, string>;
  isTaken(ip: IPAddr): boolean;
  /** Creates the reservation atomically; false when the address is already reserved. */
  reserve(ip: IPAddr, containerId: string, ifName: string, rangeSetIndex: number): boolean;
  lastReservedIP(rangeSetIndex: number): IPAddr | undefined;
  /** Addresses held by the attachment (exact or legacy id-only match). */
  getByID(containerId: string, ifName: string): IPAddr[];
  findByID(containerId: string, ifName: string): boolean;
  /**
   * Releases every reservation of the attachment (exact matches; the legacy
   * id-only ones when there is no exact match). Returns the released names.
   */
  releaseByID(containerId: string, ifName: string): string[];
  /** Releases `name` only if it still holds `content`; true when removed. */
  releaseIfOwned(name: string, content: string): boolean;
}

export interface SessionOptions {
  /** Re-read every reservation file instead of trusting the index (GC does). */
  fullScan?: boolean;
}

export interface IpamStore {
  /** Runs `fn` holding the store's lock; the lock is released afterwards, also on error. */
  withLock<T>(fn: (s: StoreSession) => T, opts?: SessionOptions): Promise<T>;
  close(): void;
}
