// The reference host-local on-disk store, byte for byte:
//   <dataDir>/<network>/            directory, mode 0755
//   <dataDir>/<network>/<ip>        one per reservation, O_EXCL, 0600, `<id>\r\n<ifname>`
//   <dataDir>/<network>/last_reserved_ip.<set>   last reserved address, 0600
//   <dataDir>/<network>/lock        empty, O_CREAT|O_RDONLY 0750, flock(LOCK_EX) per session
// plus one file the reference ignores, INDEX_NAME, caching name → content so
// that lookups do not read every reservation file (see README.md, "Index").
//
// Index validity: after every session that changed something, we set the
// directory's mtime to a stamp in the past (now − 2 s, random sub-second
// part) and record the resulting (mtime, ctime) in the index. Any later
// create/unlink in the directory, by anyone (the reference binary, an admin),
// sets both to the current time, which cannot equal the stamp. So "directory
// (mtime, ctime) == recorded stamp" proves the set of names, and
// (reservation files being immutable once written) their contents, are what
// the index says.
// Otherwise we re-read the whole directory once and re-stamp.
import {
  closeSync,
  constants as fsc,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { constants as osc } from 'node:os';
import { join } from 'node:path';
import { errnoOf, isExists, isNotFound } from '../../lib/errors.ts';
import { IPAddr } from '../../lib/ip/index.ts';
import { LOCK_EX, LOCK_NB, LOCK_UN, flockSync } from '../../lib/sys/index.ts';
import { CniError, ErrCode } from '../skel/types.ts';
import { ownerKey } from './store.ts';
import type { IpamStore, SessionOptions, StoreSession } from './store.ts';

export const LOCK_NAME = 'lock';
export const LAST_RESERVED_PREFIX = 'last_reserved_ip.';
/** Our index. Its content starts with '#', which no container ID can: the reference never matches it. */
export const INDEX_NAME = '.host-local-index';
const INDEX_HEADER = '#host-local index v1\n';
const INDEX_TRAILER = '\n#end\n';

export const DEFAULT_LOCK_TIMEOUT_MS = 30_000;

/** Files of the store directory that are not reservations. */
export function isReservedName(name: string): boolean {
  return name === LOCK_NAME || name === INDEX_NAME || name.startsWith(LAST_RESERVED_PREFIX);
}

export interface DiskStoreOptions {
  /** Create the directory when missing (ADD). Otherwise open() returns undefined for a missing store. */
  create: boolean;
  lockTimeoutMs?: number;
  /** Counts reservation-file reads (for tests that check the index is used). */
  onFileRead?: (name: string) => void;
}

interface Snapshot {
  /** `<mtimeNs>:<ctimeNs>` of the directory when the entries were known to be exact. */
  stamp: string;
  entries: Map<string, string>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class DiskStore implements IpamStore {
  readonly dir: string;
  private lockFd: number;
  private readonly lockTimeoutMs: number;
  private readonly onFileRead: ((name: string) => void) | undefined;
  private cache: Snapshot | undefined;
  private readBuf = Buffer.allocUnsafe(4096);

  private constructor(dir: string, lockFd: number, opts: DiskStoreOptions) {
    this.dir = dir;
    this.lockFd = lockFd;
    this.lockTimeoutMs = opts.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
    this.onFileRead = opts.onFileRead;
  }

  /** Opens `<dataDir>/<network>`; undefined when it does not exist and `create` is false. */
  static open(dataDir: string, network: string, opts: DiskStoreOptions): DiskStore | undefined {
    const dir = join(dataDir, network);
    if (opts.create) {
      mkdirSync(dir, { recursive: true, mode: 0o755 });
    } else {
      try {
        if (!statSync(dir).isDirectory()) return undefined;
      } catch (err) {
        if (isNotFound(err) || errnoOf(err) === osc.errno.ENOTDIR) return undefined;
        throw err;
      }
    }
    const fd = openSync(join(dir, LOCK_NAME), fsc.O_CREAT | fsc.O_RDONLY, 0o750);
    return new DiskStore(dir, fd, opts);
  }

  close(): void {
    if (this.lockFd >= 0) closeSync(this.lockFd);
    this.lockFd = -1;
  }

  private async lock(): Promise<void> {
    const deadline = Date.now() + this.lockTimeoutMs;
    let delay = 1;
    for (;;) {
      try {
        flockSync(this.lockFd, LOCK_EX | LOCK_NB);
        return;
      } catch (err) {
        if (errnoOf(err) !== osc.errno.EWOULDBLOCK && errnoOf(err) !== osc.errno.EAGAIN) throw err;
      }
      if (Date.now() >= deadline) {
        throw new CniError(
          ErrCode.TryAgainLater,
          `timed out after ${this.lockTimeoutMs} ms waiting for the lock on ${join(this.dir, LOCK_NAME)}`,
        );
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 20);
    }
  }

  async withLock<T>(fn: (s: StoreSession) => T, opts: SessionOptions = {}): Promise<T> {
    await this.lock();
    try {
      const { snap, dirty } = this.load(opts.fullScan === true);
      const session = new DiskSession(this, snap.entries);
      const out = fn(session);
      if (session.modified || dirty) {
        // The index is an optimisation: failing to refresh it (read-only
        // store, not the directory's owner, disk full) leaves an index that
        // no longer validates, and the operation itself stands.
        try {
          this.persist(snap.entries);
        } catch {
          this.cache = undefined;
        }
      }
      return out;
    } finally {
      flockSync(this.lockFd, LOCK_UN);
    }
  }

  private dirStamp(): string {
    const st = statSync(this.dir, { bigint: true });
    return `${st.mtimeNs}:${st.ctimeNs}`;
  }

  /** The current entries, from memory, the index file, or a full scan (dirty: must be re-stamped). */
  private load(fullScan: boolean): { snap: Snapshot; dirty: boolean } {
    const stamp = this.dirStamp();
    if (!fullScan) {
      if (this.cache && this.cache.stamp === stamp) return { snap: this.cache, dirty: false };
      const idx = this.readIndex();
      if (idx && idx.stamp === stamp) {
        this.cache = idx;
        return { snap: idx, dirty: false };
      }
    }
    const snap = { stamp: '', entries: this.scan() };
    this.cache = snap;
    return { snap, dirty: true };
  }

  private readIndex(): Snapshot | undefined {
    let text: string;
    try {
      text = readFileSync(join(this.dir, INDEX_NAME), 'utf8');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    if (!text.startsWith(INDEX_HEADER) || !text.endsWith(INDEX_TRAILER)) return undefined;
    try {
      const body = JSON.parse(text.slice(INDEX_HEADER.length, text.length - INDEX_TRAILER.length)) as unknown;
      if (typeof body !== 'object' || body === null) return undefined;
      const { stamp, names, contents } = body as { stamp?: unknown; names?: unknown; contents?: unknown };
      if (typeof stamp !== 'string' || !Array.isArray(names) || !Array.isArray(contents)) return undefined;
      if (names.length !== contents.length) return undefined;
      const entries = new Map<string, string>();
      for (let i = 0; i < names.length; i++) entries.set(String(names[i]), String(contents[i]));
      return { stamp, entries };
    } catch {
      return undefined;
    }
  }

  /** Reads every reservation file: name → trimmed content. */
  private scan(): Map<string, string> {
    const entries = new Map<string, string>();
    for (const d of readdirSync(this.dir, { withFileTypes: true })) {
      if (!d.isFile() || isReservedName(d.name)) continue;
      const content = this.readEntry(d.name);
      if (content !== undefined) entries.set(d.name, content);
    }
    return entries;
  }

  /** Trimmed content of one file; undefined when it vanished or is unreadable. */
  readEntry(name: string): string | undefined {
    this.onFileRead?.(name);
    let fd: number;
    try {
      fd = openSync(join(this.dir, name), fsc.O_RDONLY);
    } catch {
      return undefined;
    }
    try {
      let len = 0;
      for (;;) {
        if (len === this.readBuf.length) {
          const bigger = Buffer.allocUnsafe(this.readBuf.length * 2);
          this.readBuf.copy(bigger);
          this.readBuf = bigger;
        }
        const want = this.readBuf.length - len;
        const n = readSync(fd, this.readBuf, len, want, null);
        len += n;
        // A short read of a regular file is its end: saves one syscall per file.
        if (n < want) break;
      }
      return this.readBuf.toString('utf8', 0, len).trim();
    } catch {
      return undefined;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Stamps the directory and writes the index in place. The index file is
   * created (a directory change) before the stamp; rewriting its content
   * afterwards does not touch the directory's mtime.
   */
  private persist(entries: Map<string, string>): void {
    const fd = openSync(join(this.dir, INDEX_NAME), fsc.O_WRONLY | fsc.O_CREAT, 0o600);
    try {
      // Invalidate first: a crash between here and the final write leaves a
      // file without the trailer, which readIndex() rejects.
      ftruncateSync(fd, 0);
      const now = Date.now() / 1000;
      // Two seconds in the past with a random sub-second part: a later
      // create/unlink (mtime = now) cannot produce it; the ctime (set to now
      // by utimes) tells apart two of our own stamps that happen to collide.
      const stampSec = Math.floor(now) - 2 + 0.001 + Math.random() * 0.998;
      let stamp = 'unstamped';
      try {
        utimesSync(this.dir, now, stampSec);
        stamp = this.dirStamp();
      } catch {
        // Not allowed to set times (not the owner): an index that never
        // validates, so every session re-reads the store, as the reference does.
      }
      const names = [...entries.keys()];
      const body = JSON.stringify({ stamp, names, contents: names.map((n) => entries.get(n)) });
      const data = Buffer.from(INDEX_HEADER + body + INDEX_TRAILER);
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off, data.length - off, off);
      this.cache = { stamp, entries };
    } finally {
      closeSync(fd);
    }
  }

  /** Creates `<dir>/<name>` exclusively with the owner content; false when it exists. */
  createReservation(name: string, content: string): boolean {
    let fd: number;
    try {
      fd = openSync(join(this.dir, name), fsc.O_RDWR | fsc.O_EXCL | fsc.O_CREAT, 0o600);
    } catch (err) {
      if (isExists(err)) return false;
      throw err;
    }
    try {
      writeSync(fd, content);
    } catch (err) {
      closeSync(fd);
      unlinkSync(join(this.dir, name));
      throw err;
    }
    closeSync(fd);
    return true;
  }

  writeLastReserved(rangeSetIndex: number, ip: string): void {
    writeFileSync(join(this.dir, LAST_RESERVED_PREFIX + rangeSetIndex), ip, { mode: 0o600 });
  }

  readLastReserved(rangeSetIndex: number): IPAddr | undefined {
    try {
      return IPAddr.parse(readFileSync(join(this.dir, LAST_RESERVED_PREFIX + rangeSetIndex), 'utf8').trim());
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  unlink(name: string): boolean {
    try {
      unlinkSync(join(this.dir, name));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }
}

class DiskSession implements StoreSession {
  modified = false;
  private readonly store: DiskStore;
  private readonly map: Map<string, string>;

  constructor(store: DiskStore, entries: Map<string, string>) {
    this.store = store;
    this.map = entries;
  }

  get entries(): ReadonlyMap<string, string> {
    return this.map;
  }

  isTaken(ip: IPAddr): boolean {
    return this.map.has(ip.toString());
  }

  reserve(ip: IPAddr, containerId: string, ifName: string, rangeSetIndex: number): boolean {
    const name = ip.toString();
    const content = ownerKey(containerId, ifName);
    if (!this.store.createReservation(name, content)) {
      // Created behind the index's back by a writer that ignores the lock.
      const existing = this.store.readEntry(name);
      if (existing !== undefined) this.map.set(name, existing);
      this.modified = true;
      return false;
    }
    this.map.set(name, content);
    this.modified = true;
    this.store.writeLastReserved(rangeSetIndex, name);
    return true;
  }

  lastReservedIP(rangeSetIndex: number): IPAddr | undefined {
    return this.store.readLastReserved(rangeSetIndex);
  }

  private matching(containerId: string, ifName: string): { exact: string[]; legacy: string[] } {
    const exact: string[] = [];
    const legacy: string[] = [];
    // Keys computed once: this loop runs cold in a fresh process over every entry.
    const exactKey = ownerKey(containerId, ifName);
    const legacyKey = containerId.trim();
    for (const [name, content] of this.map) {
      if (content === exactKey) exact.push(name);
      else if (content === legacyKey) legacy.push(name);
    }
    return { exact, legacy };
  }

  getByID(containerId: string, ifName: string): IPAddr[] {
    const { exact, legacy } = this.matching(containerId, ifName);
    const out: IPAddr[] = [];
    for (const name of [...exact, ...legacy]) {
      const ip = IPAddr.parse(name);
      if (ip) out.push(ip);
    }
    return out;
  }

  findByID(containerId: string, ifName: string): boolean {
    const { exact, legacy } = this.matching(containerId, ifName);
    return exact.length > 0 || legacy.length > 0;
  }

  releaseByID(containerId: string, ifName: string): string[] {
    const { exact, legacy } = this.matching(containerId, ifName);
    const released: string[] = [];
    for (const name of exact) if (this.releaseIfOwned(name, this.map.get(name)!)) released.push(name);
    if (released.length === 0) {
      for (const name of legacy) if (this.releaseIfOwned(name, this.map.get(name)!)) released.push(name);
    }
    return released;
  }

  releaseIfOwned(name: string, content: string): boolean {
    // Re-read before deleting: never free an address that changed owner.
    const actual = this.store.readEntry(name);
    this.modified = true;
    if (actual === undefined) {
      this.map.delete(name);
      return false;
    }
    if (actual !== content) {
      this.map.set(name, actual);
      return false;
    }
    this.store.unlink(name);
    this.map.delete(name);
    return true;
  }
}
