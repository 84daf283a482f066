// `netstack install-cni`: puts the CNI plugins and the network config where a
// container runtime finds them (the host's /opt/cni/bin and /etc/cni/net.d),
// as flannel's install-cni-plugin and install-conf init containers do, and
// takes them back out again (`--restore`).
//
// The four plugins are one self-contained executable (kube-netstack-cni,
// compiled by Bun) that runs the plugin it is started as. It is copied once
// into the bin directory and every plugin name becomes a hard link to it.
// Every step is atomic, because a runtime may execute a plugin or read the
// config at any moment: the new executable is written under a temp name and
// fsynced before any name points at it; each name is switched by renaming a
// temp link over it; the conflist by renaming a fsynced temp file over it.
// A plugin that is running keeps its old inode. Nothing is rewritten when
// the installed copy is identical.
//
// What was there before us (upstream's flannel, the reference bridge,
// host-local and loopback, an older conflist) is moved into a hidden
// `.kube-netstack-backup` directory beside it the first time, so that
// `--restore` can put it back: that is the rollback to upstream flannel.
// libcni reads only the files of the config directory itself, and a runtime
// looks plugins up by name, so neither sees what is in the backup directory.
import { createReadStream, realpathSync, type Stats } from 'node:fs';
import { link, lstat, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { Command } from 'commander';
import { NetError, errorMessage, isNotFound } from '../lib/errors.ts';
import { isAtomicTempName, writeFileAtomic } from '../lib/fs.ts';

/** The multi-call executable the plugin names link to (scripts/build.mjs). */
export const CNI_EXECUTABLE = 'kube-netstack-cni';
/** The plugin names it answers to (plugins/multicall/dispatch.ts). */
export const CNI_PLUGINS: readonly string[] = ['flannel', 'bridge', 'host-local', 'loopback'];
/** Upstream's conflist name (kube-flannel.yml's install-cni). */
export const DEFAULT_CONF_NAME = '10-flannel.conflist';
/** The directory, inside the bin and config directories, that keeps what we replaced. */
export const BACKUP_DIR = '.kube-netstack-backup';
const BACKUP_STATE = 'installed.json';
/** Temp files left by a killed run are removed once older than this (another install may be running). */
const STALE_TEMP_MS = 10 * 60_000;

/** Upstream kube-flannel.yml's cni-conf.json: what a node gets without a ConfigMap. */
export const DEFAULT_CONFLIST = `${JSON.stringify(
  {
    name: 'cbr0',
    cniVersion: '0.3.1',
    plugins: [
      { type: 'flannel', delegate: { hairpinMode: true, isDefaultGateway: true } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  },
  null,
  2,
)}\n`;

export class InstallCniError extends NetError {}

export interface InstallCniOptions {
  /** The runtime's plugin directory (the host's /opt/cni/bin). */
  readonly binDir: string;
  /** The runtime's config directory (the host's /etc/cni/net.d). */
  readonly confDir: string;
  /** Where kube-netstack-cni is (default: the directory of the running executable). */
  readonly srcDir?: string;
  /** Plugin names to link (default all four). */
  readonly plugins?: readonly string[];
  /** The conflist to install (default: upstream's cbr0 conflist, DEFAULT_CONFLIST). */
  readonly confSource?: string;
  /** Its file name in confDir (default 10-flannel.conflist). */
  readonly confName?: string;
  /** Skip the plugins or the config (flannel's two init containers do one each). */
  readonly skipPlugins?: boolean;
  readonly skipConf?: boolean;
  /** One line per file: `installed: PATH`, `unchanged: PATH`, `backed up: …`, `restored: …`, `removed: …`. */
  readonly log?: (line: string) => void;
}

export interface InstallCniReport {
  /** Files written or switched. */
  readonly changed: readonly string[];
  /** Files already as wanted. */
  readonly unchanged: readonly string[];
  /** Previous files moved into the backup directory. */
  readonly backedUp: readonly string[];
}

export interface RestoreCniReport {
  /** Files put back from the backup directory. */
  readonly restored: readonly string[];
  /** Files of ours removed (nothing was there before them). */
  readonly removed: readonly string[];
  /** Names we had created that now hold someone else's file: left alone. */
  readonly kept: readonly string[];
}

/** Per directory: which names we installed, and whether each replaced a file (kept in the backup dir). */
interface BackupState {
  files: Record<string, 'backed-up' | 'created'>;
}

class Recorder {
  readonly changed: string[] = [];
  readonly unchanged: string[] = [];
  readonly backedUp: string[] = [];
  readonly restored: string[] = [];
  readonly removed: string[] = [];
  constructor(private readonly out: (line: string) => void) {}
  readonly kept: string[] = [];
  note(kind: 'installed' | 'unchanged' | 'backed up' | 'restored' | 'removed' | 'kept', path: string, extra = ''): void {
    const list = { installed: this.changed, unchanged: this.unchanged, 'backed up': this.backedUp, restored: this.restored, removed: this.removed, kept: this.kept }[kind];
    list.push(path);
    this.out(`${kind}: ${path}${extra}`);
  }
}

const tempName = (target: string): string => join(dirname(target), `.${basename(target)}.install.${process.pid}.${randomBytes(4).toString('hex')}`);

async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Byte equality without reading two 100 MB files into memory. */
async function sameContent(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([stat(a), stat(b)]);
  if (sa.size !== sb.size) return false;
  if (sa.dev === sb.dev && sa.ino === sb.ino) return true;
  const ra = createReadStream(a, { highWaterMark: 1 << 20 })[Symbol.asyncIterator]();
  const fb = await open(b, 'r');
  try {
    let pos = 0;
    for (;;) {
      const next = await ra.next();
      if (next.done === true) return true;
      const chunk = next.value as Buffer;
      const other = Buffer.alloc(chunk.length);
      const { bytesRead } = await fb.read(other, 0, chunk.length, pos);
      if (bytesRead !== chunk.length || !chunk.equals(other)) return false;
      pos += chunk.length;
    }
  } finally {
    await ra.return?.();
    await fb.close();
  }
}

/** Copies `src` to a new temp file beside `target` with `mode`, fsynced; returns the temp path. */
async function writeTempCopy(src: string, target: string, mode: number): Promise<string> {
  const tmp = tempName(target);
  try {
    const data = await readFile(src);
    // 'wx': never follow or reuse a file someone else put at the temp name.
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(data);
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return tmp;
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Removes temp files of an earlier run that was killed (SIGKILL skips every
 * cleanup), by age: an install in another container has another pid namespace.
 */
async function removeStaleTemps(dir: string, isTemp: (name: string) => boolean, now = Date.now()): Promise<void> {
  for (const name of await readdir(dir)) {
    if (!isTemp(name)) continue;
    const st = await statOrUndefined(join(dir, name));
    if (st !== undefined && st.isFile() && now - st.mtimeMs > STALE_TEMP_MS) await rm(join(dir, name), { force: true });
  }
}

/** Our temp names in the bin directory (tempName). */
const isInstallTemp = (name: string): boolean => name.startsWith('.') && name.includes('.install.');

async function loadBackupState(dir: string): Promise<BackupState> {
  try {
    const v = JSON.parse(await readFile(join(dir, BACKUP_DIR, BACKUP_STATE), 'utf8')) as BackupState;
    if (typeof v !== 'object' || v === null || typeof v.files !== 'object' || v.files === null) throw new Error('no "files" object');
    return v;
  } catch (err) {
    if (isNotFound(err)) return { files: {} };
    throw new InstallCniError('INVALID_CONFIG', `install-cni: ${join(dir, BACKUP_DIR, BACKUP_STATE)} is unreadable: ${errorMessage(err)}`, { cause: err });
  }
}

async function saveBackupState(dir: string, state: BackupState): Promise<void> {
  await writeFileAtomic(join(dir, BACKUP_DIR, BACKUP_STATE), `${JSON.stringify(state, null, 2)}\n`, { dirMode: 0o700 });
}

/**
 * Before `name` in `dir` is first replaced by ours: records it, and moves a
 * file that is there (not ours) into the backup directory by a hard link,
 * so the name itself never goes missing: it is switched by rename later.
 */
async function rememberPrevious(dir: string, name: string, state: BackupState, isOurs: (st: Stats) => Promise<boolean>, rec: Recorder): Promise<boolean> {
  if (state.files[name] !== undefined) return false;
  const path = join(dir, name);
  const st = await statOrUndefined(path);
  if (st === undefined) {
    state.files[name] = 'created';
    return true;
  }
  if (await isOurs(st)) {
    // An install of ours from before backups were kept: nothing of upstream's to save.
    state.files[name] = 'created';
    return true;
  }
  const backupDir = join(dir, BACKUP_DIR);
  await mkdir(backupDir, { recursive: true, mode: 0o700 });
  const backup = join(backupDir, name);
  await rm(backup, { force: true });
  if (st.isSymbolicLink() || st.isFile()) await link(path, backup);
  else throw new InstallCniError('INVALID_CONFIG', `install-cni: ${path} is not a file`);
  state.files[name] = 'backed-up';
  rec.note('backed up', path, ` -> ${backup}`);
  return true;
}

const sameInode = (a: Stats, b: Stats | undefined): boolean => b !== undefined && a.dev === b.dev && a.ino === b.ino;

async function installPlugins(opts: InstallCniOptions, srcDir: string, rec: Recorder): Promise<void> {
  const src = join(srcDir, CNI_EXECUTABLE);
  const srcStat = await statOrUndefined(src);
  if (srcStat === undefined) throw new InstallCniError('INSTALL_SOURCE_NOT_FOUND', `install-cni: ${src} does not exist`);
  const names = opts.plugins ?? CNI_PLUGINS;
  for (const n of names) {
    if (!CNI_PLUGINS.includes(n)) throw new InstallCniError('INVALID_CONFIG', `install-cni: ${JSON.stringify(n)} is not one of the plugins: ${CNI_PLUGINS.join(', ')}`);
  }
  const binDir = opts.binDir;
  await mkdir(binDir, { recursive: true, mode: 0o755 });
  await removeStaleTemps(binDir, isInstallTemp);
  const dst = join(binDir, CNI_EXECUTABLE);
  const dstStat = await statOrUndefined(dst);
  const state = await loadBackupState(binDir);
  let stateChanged = false;
  // A name is ours if it is the installed executable (a hard link to it) or the same bytes as the new one.
  const ours = async (name: string, st: Stats): Promise<boolean> => sameInode(st, dstStat) || (st.isFile() && st.size === srcStat.size && (await sameContent(src, join(binDir, name))));

  let exe = dst;
  let tmpExe: string | undefined;
  try {
    if (dstStat === undefined || !(await sameContent(src, dst))) {
      // The new executable is complete and on disk under its temp name before any plugin name points at it.
      tmpExe = await writeTempCopy(src, dst, 0o755);
      exe = tmpExe;
    }
    const exeStat = await stat(exe);
    for (const name of [CNI_EXECUTABLE, ...names]) {
      stateChanged = (await rememberPrevious(binDir, name, state, (st) => ours(name, st), rec)) || stateChanged;
    }
    // The record of what we replaced is on disk before anything is replaced.
    if (stateChanged) await saveBackupState(binDir, state);
    for (const name of names) {
      const path = join(binDir, name);
      if (sameInode(exeStat, await statOrUndefined(path))) {
        rec.note('unchanged', path);
        continue;
      }
      const tmp = tempName(path);
      try {
        await link(exe, tmp);
        await rename(tmp, path);
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
      rec.note('installed', path, ` -> ${CNI_EXECUTABLE}`);
    }
    if (tmpExe !== undefined) {
      await rename(tmpExe, dst);
      tmpExe = undefined;
      rec.note('installed', dst);
    } else {
      rec.note('unchanged', dst);
    }
  } finally {
    if (tmpExe !== undefined) await rm(tmpExe, { force: true });
  }
  await fsyncPath(binDir);
}

async function installConf(opts: InstallCniOptions, rec: Recorder): Promise<void> {
  const name = opts.confName ?? DEFAULT_CONF_NAME;
  if (name.includes('/') || name === '' || name.startsWith('.')) throw new InstallCniError('INVALID_CONFIG', `install-cni: ${JSON.stringify(name)} is not a config file name`);
  let text: string;
  if (opts.confSource === undefined) {
    text = DEFAULT_CONFLIST;
  } else {
    try {
      text = await readFile(opts.confSource, 'utf8');
    } catch (err) {
      throw new InstallCniError(isNotFound(err) ? 'INSTALL_SOURCE_NOT_FOUND' : 'IO_FAILURE', `install-cni: reading ${opts.confSource}: ${errorMessage(err)}`, { cause: err });
    }
  }
  // A conflist the runtime cannot parse would take the node's pod network down: keep the old one.
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
  } catch (err) {
    throw new InstallCniError('DECODING_FAILURE', `install-cni: ${opts.confSource ?? 'the default conflist'} is not a CNI network config: ${errorMessage(err)}`, { cause: err });
  }
  const confDir = opts.confDir;
  await mkdir(confDir, { recursive: true, mode: 0o755 });
  // writeFileAtomic's temp names for this file
  await removeStaleTemps(confDir, (n) => isAtomicTempName(n) && n.startsWith(`.${name}.`));
  const dst = join(confDir, name);
  const st = await statOrUndefined(dst);
  if (st !== undefined && st.isFile() && (await readFile(dst, 'utf8')) === text) {
    rec.note('unchanged', dst);
    return;
  }
  const state = await loadBackupState(confDir);
  if (await rememberPrevious(confDir, name, state, async () => false, rec)) await saveBackupState(confDir, state);
  await writeFileAtomic(dst, text, { mode: 0o644 });
  rec.note('installed', dst);
}

/** The directory the running executable is in (dist/bin, or the image's /opt/kube-netstack/bin), through any symlink to it. */
export function defaultSourceDir(): string {
  const self = process.argv[1] ?? process.execPath;
  try {
    return dirname(realpathSync(self));
  } catch {
    return dirname(self);
  }
}

/** Installs the plugins, then the conflist (the runtime considers the network ready once it sees a config). */
export async function installCni(opts: InstallCniOptions): Promise<InstallCniReport> {
  const rec = new Recorder(opts.log ?? (() => {}));
  try {
    if (opts.skipPlugins !== true) await installPlugins(opts, opts.srcDir ?? defaultSourceDir(), rec);
    if (opts.skipConf !== true) await installConf(opts, rec);
  } catch (err) {
    if (err instanceof NetError) throw err;
    throw new InstallCniError('IO_FAILURE', `install-cni: ${errorMessage(err)}`, { cause: err });
  }
  return { changed: rec.changed, unchanged: rec.unchanged, backedUp: rec.backedUp };
}

/**
 * Undoes installCni in one directory: every name we replaced gets its
 * previous file back (by rename, so it is never missing), every name we
 * created is removed, then the backup directory.
 */
async function restoreDir(dir: string, rec: Recorder): Promise<void> {
  const state = await loadBackupState(dir);
  const backupDir = join(dir, BACKUP_DIR);
  // Plugin names before the executable they link to, so no name points at a removed file.
  const names = Object.keys(state.files).sort((a, b) => Number(a === CNI_EXECUTABLE) - Number(b === CNI_EXECUTABLE));
  const isPluginDir = names.includes(CNI_EXECUTABLE);
  const exeStat = isPluginDir ? await statOrUndefined(join(dir, CNI_EXECUTABLE)) : undefined;
  for (const name of names) {
    const path = join(dir, name);
    if (state.files[name] === 'backed-up') {
      const backup = join(backupDir, name);
      if ((await statOrUndefined(backup)) === undefined) throw new InstallCniError('INSTALL_SOURCE_NOT_FOUND', `install-cni: the backup of ${path} (${backup}) is missing`);
      await rename(backup, path);
      rec.note('restored', path);
    } else {
      const st = await statOrUndefined(path);
      // A plugin name that is no longer a link to our executable was put there by someone else since: keep it.
      if (st !== undefined && (name === CNI_EXECUTABLE || exeStat === undefined || sameInode(st, exeStat) || !isPluginDir)) {
        await rm(path, { force: true });
        rec.note('removed', path);
      } else if (st !== undefined) {
        rec.note('kept', path, ` (not ${CNI_EXECUTABLE}: replaced by someone else since the install)`);
      }
    }
    delete state.files[name];
    await saveBackupState(dir, state);
  }
  await rm(backupDir, { recursive: true, force: true });
  await fsyncPath(dir);
}

/** `install-cni --restore`: the rollback. Puts back what installCni replaced and removes what it added. */
export async function restoreCni(opts: Pick<InstallCniOptions, 'binDir' | 'confDir' | 'log' | 'skipPlugins' | 'skipConf'>): Promise<RestoreCniReport> {
  const rec = new Recorder(opts.log ?? (() => {}));
  try {
    // The config first: from then on the runtime starts no new pod with our plugins.
    if (opts.skipConf !== true && (await statOrUndefined(opts.confDir)) !== undefined) await restoreDir(opts.confDir, rec);
    if (opts.skipPlugins !== true && (await statOrUndefined(opts.binDir)) !== undefined) await restoreDir(opts.binDir, rec);
  } catch (err) {
    if (err instanceof NetError) throw err;
    throw new InstallCniError('IO_FAILURE', `install-cni: ${errorMessage(err)}`, { cause: err });
  }
  return { restored: rec.restored, removed: rec.removed, kept: rec.kept };
}

export interface InstallCniCommandIO {
  readonly out?: (s: string) => void;
  readonly err?: (s: string) => void;
}

/**
 * The `install-cni` subcommand for netstack/main.ts (`program.addCommand(installCniCommand())`).
 * Its action installs (or restores) and sets process.exitCode on failure.
 */
export function installCniCommand(io: InstallCniCommandIO = {}): Command {
  const out = io.out ?? ((s: string) => void process.stdout.write(s));
  const err = io.err ?? ((s: string) => void process.stderr.write(s));
  return new Command('install-cni')
    .description('install the CNI plugins and the conflist atomically (flannel\'s install-cni), or --restore what was there before')
    .option('--bin-dir <dir>', 'CNI plugin directory (the host\'s /opt/cni/bin); required unless --skip-plugins')
    .option('--conf-dir <dir>', 'CNI config directory (the host\'s /etc/cni/net.d); required unless --skip-conf')
    .option('--src-dir <dir>', `directory holding ${CNI_EXECUTABLE} (default: this executable's directory)`)
    .option('--plugins <names>', 'comma-separated plugin names to link', CNI_PLUGINS.join(','))
    .option('--conf-source <file>', 'the conflist to install (default: upstream\'s cbr0 conflist: flannel + portmap)')
    .option('--conf-name <name>', 'file name of the conflist in --conf-dir', DEFAULT_CONF_NAME)
    .option('--skip-plugins', 'do not install the plugins (only the conflist)', false)
    .option('--skip-conf', 'do not install the conflist (only the plugins)', false)
    .option('--restore', 'put back the files the install replaced and remove the ones it added (rollback)', false)
    .configureOutput({ writeOut: out, writeErr: err })
    .action(async (o: Record<string, unknown>) => {
      const log = (line: string): void => out(`${line}\n`);
      const skipPlugins = o['skipPlugins'] === true;
      const skipConf = o['skipConf'] === true;
      const missing = [!skipPlugins && o['binDir'] === undefined ? '--bin-dir' : '', !skipConf && o['confDir'] === undefined ? '--conf-dir' : ''].filter((f) => f !== '');
      if (missing.length > 0) {
        err(`install-cni: ${missing.join(' and ')} required (or --skip-plugins / --skip-conf)\n`);
        process.exitCode = 2;
        return;
      }
      const common = { binDir: (o['binDir'] as string | undefined) ?? '', confDir: (o['confDir'] as string | undefined) ?? '', log, skipPlugins, skipConf };
      try {
        if (o['restore'] === true) {
          await restoreCni(common);
          return;
        }
        const plugins = typeof o['plugins'] === 'string' ? o['plugins'].split(',').map((s) => s.trim()).filter((s) => s !== '') : undefined;
        await installCni({
          ...common,
          ...(o['srcDir'] !== undefined ? { srcDir: o['srcDir'] as string } : {}),
          ...(plugins !== undefined ? { plugins } : {}),
          ...(o['confSource'] !== undefined ? { confSource: o['confSource'] as string } : {}),
          confName: o['confName'] as string,
        });
      } catch (e) {
        err(`${errorMessage(e)}\n`);
        process.exitCode = 1;
      }
    });
}
