// The reference host-local on-disk store, byte for byte:
//   <dataDir>/<network>/            directory, mode 0755
//   <dataDir>/<network>/<ip>        one per reservation, 0600, `<id>\r\n<ifname>`, created
//                                   whole by link(2) from a temp file (see createReservation)
//   <dataDir>/<network>/last_reserved_ip.<set>   last reserved address, 0600
//   <dataDir>/<network>/lock        empty, O_CREAT|O_RDONLY 0750, flock(LOCK_EX) per session
// plus one file the reference ignores, INDEX_NAME, caching name → content so
// that lookups do not read every reservation file (see README.md, "Index"),
// and, only while a reservation is being created (or after a kill -9 in that
// window), one temp file TEMP_PREFIX<pid>.
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
import { sleep } from '../../lib/abort.ts';
import {
  closeSync,
  constants as fsc,
  ftruncateSync,
  linkSync,
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
import { ErrorCode, NetError, errnoOf, isExists, isNotFound } from '../../lib/errors.ts';
import { IPAddr } from '../../lib/ip/index.ts';
import { LOCK_EX, LOCK_NB, LOCK_UN, flockSync } from '../../lib/sys/index.ts';
import { ownerKey } from './store.ts';
import type { IpamStore, SessionOptions, StoreSession } from './store.ts';

export const LOCK_NAME = 'lock';
export const LAST_RESERVED_PREFIX = 'last_reserved_ip.';
/** Our index. Its content starts with '#', which no container ID can: the reference never matches it. */
export const INDEX_NAME = '.host-local-index';
const INDEX_HEADER = '#host-local index v1\n';
const INDEX_TRAILER = '\n#end\n';
/**
 * Temp files of createReservation. The reference reads every file of the
 * directory but takes a name as an address only if it parses as an IP, which
 * this one never does; its content is the owner, so a reference DEL of that
 * attachment would remove a leftover, which is harmless. Ours skip them as
 * non-reservations and remove them (see scan()).
 */
export const TEMP_PREFIX = '.host-local-tmp.';

export const DEFAULT_LOCK_TIMEOUT_MS = 30_000;

/** Files of the store directory that are not reservations. */
export function isReservedName(name: string): boolean {
  return name === LOCK_NAME || name === INDEX_NAME || name.startsWith(LAST_RESERVED_PREFIX) || isTempName(name);
}

export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX);
}

/** Steps of persist(), for tests that emulate a kill -9 after each one. */
export type PersistStep = 'opened' | 'truncated' | 'stamped' | 'written';

export interface DiskStoreOptions {
  /** Create the directory when missing (ADD). Otherwise open() returns undefined for a missing store. */
  create: boolean;
  lockTimeoutMs?: number;
  /** Counts reservation-file reads (for tests that check the index is used). */
  onFileRead?: (name: string) => void;
  /**
   * Called after each step of persist(); a test throws from it to stop the
   * write there, as a kill -9 would (persist has no cleanup to skip).
   */
  onPersistStep?: (step: PersistStep) => void;
}

interface Snapshot {
  /** `<mtimeNs>:<ctimeNs>` of the directory when the entries were known to be exact. */
  stamp: string;
  entries: Map<string, string>;
}

export class DiskStore implements IpamStore {
  readonly dir: string;
  private lockFd: number;
  private readonly lockTimeoutMs: number;
  private readonly onFileRead: ((name: string) => void) | undefined;
  private readonly onPersistStep: ((step: PersistStep) => void) | undefined;
  private cache: Snapshot | undefined;
  private readBuf = Buffer.allocUnsafe(4096);

  private constructor(dir: string, lockFd: number, opts: DiskStoreOptions) {
    this.dir = dir;
    this.lockFd = lockFd;
    this.lockTimeoutMs = opts.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
    this.onFileRead = opts.onFileRead;
    this.onPersistStep = opts.onPersistStep;
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
        // Transient: the skeleton reports it as "try again later" (CNI 11).
        throw new NetError(
          ErrorCode.LockTimeout,
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

  /**
   * Reads every reservation file: name → trimmed content. Removes the temp
   * files of reservations whose creator was killed: we hold the lock, and
   * only a lock holder creates one (and removes it before unlocking), so every
   * temp file seen here is such a leftover, whatever its age; no grace period
   * is needed. Leftovers are always found here: creating a temp file changes
   * the directory after the last stamp, so the next session cannot trust the
   * index and scans.
   */
  private scan(): Map<string, string> {
    const entries = new Map<string, string>();
    for (const d of readdirSync(this.dir, { withFileTypes: true })) {
      if (isTempName(d.name)) {
        this.removeLeftover(d.name);
        continue;
      }
      if (!d.isFile() || isReservedName(d.name)) continue;
      const content = this.readEntry(d.name);
      if (content !== undefined) entries.set(d.name, content);
    }
    return entries;
  }

  /** Best effort: a read-only session (CHECK, STATUS) may not be allowed to. */
  private removeLeftover(name: string): void {
    try {
      this.unlink(name);
    } catch {
      // Left for a session that may write; it is never taken for a reservation.
    }
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
   * Stamps the directory and writes the index in place. Not through
   * writeFileAtomic: its rename is itself a directory change, and the stamp's
   * ctime is known only after utimes(), so no file renamed into place
   * afterwards could carry it. Instead the order makes a kill -9 after any
   * step leave either the previous state or an index that readIndex() rejects
   * (then the next session re-scans and re-stamps):
   *   1. open (O_CREAT): a created index is a directory change, made before
   *      the stamp. The old content is still there, with the old stamp, which
   *      the directory no longer matches if this session changed a name (the
   *      change set mtime = now). If it changed none, the old index still
   *      describes the names, as before the session.
   *   2. ftruncate(0): from here until step 5 completes, no trailer ⇒ rejected.
   *   3. utimes(dir): the new stamp. Rejected still (empty index).
   *   4. stat: read back (mtime, ctime).
   *   5. write: a prefix of the buffer has no trailer (JSON escapes '\n', so
   *      INDEX_TRAILER occurs only at the very end) ⇒ rejected; the whole
   *      buffer is exact for the stamp it carries.
   * Every step after 1 rewrites the index's content only, never the
   * directory, so the stamp stays valid. (A power loss is not covered: the
   * kernel may persist the stamp and not the content; that still leaves a torn,
   * rejected index, or an older one whose stamp the directory no longer has.)
   */
  private persist(entries: Map<string, string>): void {
    const fd = openSync(join(this.dir, INDEX_NAME), fsc.O_WRONLY | fsc.O_CREAT, 0o600);
    try {
      this.onPersistStep?.('opened');
      ftruncateSync(fd, 0);
      this.onPersistStep?.('truncated');
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
      this.onPersistStep?.('stamped');
      const names = [...entries.keys()];
      const body = JSON.stringify({ stamp, names, contents: names.map((n) => entries.get(n)) });
      const data = Buffer.from(INDEX_HEADER + body + INDEX_TRAILER);
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off, data.length - off, off);
      this.onPersistStep?.('written');
      this.cache = { stamp, entries };
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Creates `<dir>/<name>` with the owner content; false when it exists.
   *
   * The file appears with its whole content or not at all: the content goes
   * to a temp file first, which link(2) puts in place (link fails with EEXIST
   * exactly when O_EXCL would). A plain O_EXCL create followed by a write
   * leaves an empty, ownerless reservation if the process is killed in
   * between, which no DEL or GC can attribute (the reference has that window).
   * A kill -9 here leaves at worst the temp file, beside a complete
   * reservation or none; the next session removes it (see scan()). The
   * caller holds the lock, so the temp name needs to be unique only against
   * a leftover of a killed process with the same pid: that one is replaced.
   */
  createReservation(name: string, content: string): boolean {
    const tmp = join(this.dir, TEMP_PREFIX + process.pid);
    const fd = this.createTemp(tmp);
    try {
      const data = Buffer.from(content);
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    } catch (err) {
      closeSync(fd);
      unlinkSync(tmp);
      throw err;
    }
    closeSync(fd);
    try {
      linkSync(tmp, join(this.dir, name));
      return true;
    } catch (err) {
      if (isExists(err)) return false;
      throw err;
    } finally {
      // After a successful link the reservation stands whatever happens here.
      this.unlink(TEMP_PREFIX + process.pid);
    }
  }

  /** O_EXCL, so that a file planted at the temp name is never written through. */
  private createTemp(path: string): number {
    for (let attempt = 0; ; attempt++) {
      try {
        return openSync(path, fsc.O_WRONLY | fsc.O_EXCL | fsc.O_CREAT, 0o600);
      } catch (err) {
        if (!isExists(err) || attempt > 0) throw err;
        // A leftover of a killed process that had our pid (we hold the lock).
        unlinkSync(path);
      }
    }
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
