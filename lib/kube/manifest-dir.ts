// The manifest directory: Namespaces, Nodes, Pods, Services, EndpointSlices
// and NetworkPolicies from *.yaml / *.yml / *.json files, served through the
// same Source<T> as the API, for when no API server is at hand.
//
//   const dir = new ManifestDir('/etc/netstack/manifests', { log });
//   const services = dir.source('Service');        // Source<V1Service>
//   const slices = dir.source('EndpointSlice');    // includes derived slices
//   await Promise.all([services.run(signal), slices.run(signal)]);
//
// One ManifestDir reads the directory once for all its sources; it runs
// while any of their run() calls does. Files are parsed by ./manifest.ts;
// EndpointSlices for Services with a selector and no slice of their own are
// derived from the Pods by ./endpoints.ts, and change with them.
//
// Watching: fs.watch (inotify) wakes a read after a short debounce, so a
// burst of writes is one pass; a periodic rescan compares each file's
// mtime/ctime/size/inode as a safety net for missed events (and for a
// directory that appears later or is replaced). A pass re-reads only files that changed, then
// rebuilds the merged view and tells each source the difference, so an
// object that moves from one file to another in one pass is an update (or
// nothing), never a delete and an add. The lexically first file wins a
// duplicate object. A malformed file is logged once per change with the
// parser's message and keeps its last good objects. Nothing throws out of
// the loop: it logs and carries on.
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { KubernetesObject, V1EndpointSlice, V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import { deriveEndpointSlices } from './endpoints.ts';
import { isManifestName, parseManifest } from './manifest.ts';
import type { ManifestObject } from './manifest.ts';
import { SourceCache, aborted } from './source.ts';
import type { Source, SyncReason } from './source.ts';
import { KIND_NAMES, objectKey } from './types.ts';
import type { Kind, KindMap } from './types.ts';
import { sleep } from '../abort.ts';
import { Wakeup } from '../async.ts';

/** The logger methods the directory uses (a pino Logger fits). */
export interface ManifestLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const silent: ManifestLog = { debug() {}, info() {}, warn() {}, error() {} };

export interface ManifestDirOptions {
  log?: ManifestLog;
  /** Quiet time after a watch event before the directory is read (default 50 ms). */
  debounceMs?: number;
  /** Period of the stat-only rescan, the safety net for missed events (default 500 ms). */
  rescanMs?: number;
  /** Period of `sync(..., 'resync')` callbacks; 0 disables (default 0). */
  resyncMs?: number;
  /** Derive EndpointSlices for Services with a selector and no slice in the directory (default true). */
  deriveEndpointSlices?: boolean;
  /** Use fs.watch (default true); false leaves only the rescan, for filesystems without inotify (9p, NFS). */
  watch?: boolean;
}

interface FileState {
  /** mtime, ctime, size and inode: a different stamp means re-read. */
  stamp: string;
  /** The last good parse (kept while the file is malformed). */
  objects: ManifestObject[];
}

/** One kind's view of the directory. */
class ManifestSource<T extends KubernetesObject> extends SourceCache<T> implements Source<T> {
  private readonly dir: ManifestDir;

  constructor(dir: ManifestDir, kind: Kind) {
    super(kind);
    this.dir = dir;
  }

  run(signal: AbortSignal): Promise<void> {
    return this.dir.run(signal);
  }

  /** Makes the cache equal to `next`, emitting the differences; the first call also marks it synced. */
  apply(next: ReadonlyMap<string, T>): void {
    for (const old of this.list()) if (!next.has(objectKey(old))) this.remove(old);
    for (const o of next.values()) {
      const old = this.get(o.metadata?.name ?? '', o.metadata?.namespace);
      if (!old || !sameObject(old, o)) this.upsert(o);
    }
  }

  failed(err: unknown): void {
    this.emitError(err);
  }

  /** `initial` is the first pass of a run: a later run's first pass is a re-list. */
  synchronized(reason: SyncReason): void {
    if (reason === 'initial') this.markSynced(this.synced ? 'relist' : 'initial');
    else this.emitSync(reason);
  }
}

// Objects come from JSON/YAML parses or from the deriver, both with a
// deterministic key order, so their JSON text compares their content.
const sameObject = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

export class ManifestDir {
  readonly path: string;
  private readonly log: ManifestLog;
  private readonly debounceMs: number;
  private readonly rescanMs: number;
  private readonly resyncMs: number;
  private readonly derive: boolean;
  private readonly useWatch: boolean;
  private readonly sources: { [K in Kind]: ManifestSource<KindMap[K]> };
  private readonly files = new Map<string, FileState>();
  /** Names fs.watch reported since the last pass ('all' when it did not say). */
  private dirty: Set<string> | 'all' = new Set();
  private duplicates = new Set<string>();
  private missing = false;
  private stale = false;
  private unsynced = false;
  private runners = 0;
  private stopLoop: AbortController | undefined;
  private loopDone: Promise<void> = Promise.resolve();

  constructor(path: string, opts: ManifestDirOptions = {}) {
    this.path = path;
    this.log = opts.log ?? silent;
    this.debounceMs = opts.debounceMs ?? 50;
    this.rescanMs = opts.rescanMs ?? 500;
    this.resyncMs = opts.resyncMs ?? 0;
    this.derive = opts.deriveEndpointSlices ?? true;
    this.useWatch = opts.watch ?? true;
    this.sources = {
      Namespace: new ManifestSource(this, 'Namespace'),
      Node: new ManifestSource(this, 'Node'),
      Pod: new ManifestSource(this, 'Pod'),
      Service: new ManifestSource(this, 'Service'),
      EndpointSlice: new ManifestSource(this, 'EndpointSlice'),
      NetworkPolicy: new ManifestSource(this, 'NetworkPolicy'),
    };
  }

  /** The source of one kind; the same object on every call. */
  source<K extends Kind>(kind: K): Source<KindMap[K]> {
    return this.sources[kind];
  }

  /**
   * Reads and watches the directory until `signal` aborts. Several calls
   * (one per source) share one watcher, which stops when the last ends.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    this.runners += 1;
    if (this.runners === 1) {
      const stop = new AbortController();
      this.stopLoop = stop;
      // A restart waits for the previous loop to have closed its watcher.
      this.loopDone = this.loopDone.then(() => this.loop(stop.signal));
    }
    try {
      await aborted(signal);
    } finally {
      this.runners -= 1;
      if (this.runners === 0) {
        this.stopLoop?.abort();
        await this.loopDone;
      }
    }
  }

  private async loop(signal: AbortSignal): Promise<void> {
    const wake = new Wakeup();
    let watcher: FSWatcher | undefined;
    let watched: number | undefined;
    const arm = async (): Promise<void> => {
      if (!this.useWatch) return;
      // A directory replaced under the same path (rm -r and mkdir, a swapped
      // symlink) leaves the old watch on the old inode: watch the new one.
      const ino = await stat(this.path).then(
        (st) => st.ino,
        () => undefined,
      );
      if (watcher && ino === watched) return;
      watcher?.close();
      watcher = undefined;
      watched = ino;
      if (ino === undefined) return;
      try {
        watcher = watch(this.path, { persistent: false }, (_event, name) => {
          if (name === null) this.dirty = 'all';
          else if (this.dirty !== 'all') this.dirty.add(name);
          wake.fire();
        });
        watcher.on('error', (err) => {
          // The directory went away or was replaced; the rescan re-arms.
          this.log.debug({ dir: this.path, err: String(err) }, 'manifest directory watch ended');
          watcher?.close();
          watcher = undefined;
          watched = undefined;
          wake.fire();
        });
      } catch (err) {
        watcher = undefined;
        watched = undefined;
        if (errCode(err) !== 'ENOENT') this.log.warn({ dir: this.path, err: String(err) }, 'cannot watch manifest directory; rescanning periodically');
      }
    };
    try {
      this.unsynced = true;
      await arm();
      await this.pass();
      let lastResync = Date.now();
      while (!signal.aborted) {
        const kicked = await wake.wait(this.rescanMs, signal);
        if (kicked) await sleep(this.debounceMs, signal);
        if (signal.aborted) break;
        await arm();
        await this.pass();
        if (this.resyncMs > 0 && Date.now() - lastResync >= this.resyncMs) {
          lastResync = Date.now();
          for (const k of KIND_NAMES) this.sources[k].synchronized('resync');
        }
      }
    } finally {
      watcher?.close();
    }
  }

  /** One read of the directory; the first complete one of a run marks every source synced. Logs instead of throwing. */
  private async pass(): Promise<void> {
    try {
      const dirty = this.dirty;
      this.dirty = new Set();
      // `stale` and `unsynced` survive a publish that a throwing handler cut
      // short, so the next pass completes it.
      this.stale = (await this.scan(dirty)) || this.stale;
      if (this.stale || this.unsynced) {
        this.publish();
        this.stale = false;
      }
      if (this.unsynced) {
        this.unsynced = false;
        for (const k of KIND_NAMES) this.sources[k].synchronized('initial');
      }
    } catch (err) {
      this.log.error({ dir: this.path, err: String(err) }, 'manifest directory pass failed');
    }
  }

  /** Updates `files` from the directory; true when some file's objects changed. */
  private async scan(dirty: Set<string> | 'all'): Promise<boolean> {
    const names = await this.manifestNames();
    if (names === undefined) return false;
    let changed = false;
    const present = new Set(names);
    for (const name of [...this.files.keys()]) {
      if (!present.has(name)) changed = this.forget(name) || changed;
    }
    for (const name of names) {
      changed = (await this.readOne(name, dirty === 'all' || dirty.has(name))) || changed;
    }
    return changed;
  }

  /** The manifest file names, sorted; [] when the directory is missing; undefined when unreadable (state kept). */
  private async manifestNames(): Promise<string[] | undefined> {
    let entries: string[];
    try {
      entries = await readdir(this.path);
    } catch (err) {
      const code = errCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        if (!this.missing) this.log.warn({ dir: this.path }, 'manifest directory does not exist; serving no objects until it does');
        this.missing = true;
        return [];
      }
      this.log.error({ dir: this.path, err: String(err) }, 'cannot read manifest directory; keeping the objects read so far');
      for (const k of KIND_NAMES) this.sources[k].failed(err);
      return undefined;
    }
    if (this.missing) this.log.info({ dir: this.path }, 'manifest directory appeared');
    this.missing = false;
    return entries.filter(isManifestName).sort();
  }

  private forget(name: string): boolean {
    const had = this.files.get(name);
    this.files.delete(name);
    if (had) this.log.debug({ file: join(this.path, name) }, 'manifest file removed');
    return had !== undefined && had.objects.length > 0;
  }

  /** Re-reads `name` when its stamp changed or a watch event named it; true when its objects changed. */
  private async readOne(name: string, dirty: boolean): Promise<boolean> {
    const file = join(this.path, name);
    let stamp: string;
    try {
      const st = await stat(file);
      if (!st.isFile()) return this.forget(name);
      stamp = `${st.mtimeMs}:${st.ctimeMs}:${st.size}:${st.ino}`;
    } catch (err) {
      if (errCode(err) === 'ENOENT') return this.forget(name); // gone (or a dangling link) since readdir
      this.log.warn({ file, err: String(err) }, `cannot stat manifest file ${file}; keeping its objects`);
      return false;
    }
    const prev = this.files.get(name);
    if (prev && prev.stamp === stamp && !dirty) return false;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if (errCode(err) === 'ENOENT') return this.forget(name);
      this.log.warn({ file, err: String(err) }, `cannot read manifest file ${file}; keeping its objects`);
      return false;
    }
    let objects: ManifestObject[];
    try {
      const parsed = parseManifest(text, name);
      for (const p of parsed.problems) this.log[p.level]({ file, index: p.index }, `${file} [${p.index}]: ${p.message}`);
      objects = parsed.objects;
    } catch (err) {
      this.log.error({ file, err: (err as Error).message }, `malformed manifest file ${file}: ${(err as Error).message}; keeping its last good objects`);
      this.files.set(name, { stamp, objects: prev?.objects ?? [] });
      return false;
    }
    this.files.set(name, { stamp, objects });
    return !prev || !sameObject(prev.objects, objects);
  }

  /** Merges the files (first file wins), derives EndpointSlices and hands each source its new state. */
  private publish(): void {
    const merged = new Map<Kind, Map<string, KubernetesObject>>(KIND_NAMES.map((k) => [k, new Map()]));
    const owner = new Map<string, string>();
    const duplicates = new Set<string>();
    for (const name of [...this.files.keys()].sort()) {
      for (const m of this.files.get(name)!.objects) {
        const key = `${m.kind} ${objectKey(m.obj)}`;
        const first = owner.get(key);
        if (first !== undefined) {
          duplicates.add(`${key}: ${name} [${m.index}] ignored, ${first} wins`);
          continue;
        }
        owner.set(key, name);
        merged.get(m.kind)!.set(objectKey(m.obj), m.obj);
      }
    }
    for (const d of duplicates) if (!this.duplicates.has(d)) this.log.warn({ dir: this.path }, `duplicate object ${d}`);
    this.duplicates = duplicates;
    if (this.derive) this.addDerivedSlices(merged);
    for (const k of KIND_NAMES) (this.sources[k] as ManifestSource<KubernetesObject>).apply(merged.get(k)!);
  }

  private addDerivedSlices(merged: Map<Kind, Map<string, KubernetesObject>>): void {
    const of = <T>(k: Kind): T[] => [...merged.get(k)!.values()] as T[];
    const slices = merged.get('EndpointSlice')!;
    const derived = deriveEndpointSlices(of<V1Service>('Service'), of<V1Pod>('Pod'), of<V1EndpointSlice>('EndpointSlice'), of<V1Node>('Node'));
    for (const s of derived) {
      const key = objectKey(s);
      if (slices.has(key)) {
        this.log.warn({ dir: this.path }, `derived EndpointSlice ${key} has the name of one in the directory; keeping the directory's`);
        continue;
      }
      slices.set(key, s);
    }
  }
}

const errCode = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | undefined)?.code;
