// Durable file replacement, for state other processes read (subnet.env, the
// flannel plugin's saved delegate configs): a reader sees the old file or the
// whole new one, never a partial or empty file, even across a crash
// (flannel-io/cni-plugin#43 is the 0-byte file that a plain write leaves).
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { isNotFound } from './errors.ts';

export interface AtomicWriteOptions {
  /** Permissions of the file (default 0o644), set exactly: the umask does not apply. */
  readonly mode?: number;
  /** An existing file keeps its permissions instead of getting `mode` (default false). */
  readonly keepMode?: boolean;
  /** Permissions of parent directories this call creates (default 0o755, subject to the umask). */
  readonly dirMode?: number;
}

/** Temp files of writeFileAtomic start with '.' and end with '.tmp', beside their target. */
export function isAtomicTempName(name: string): boolean {
  return name.startsWith('.') && name.endsWith('.tmp');
}

async function currentMode(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mode & 0o7777;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/**
 * Replaces `path` with `data`: parent directories created, a temp file in the
 * same directory (rename is atomic only within one file system) written and
 * fsynced, renamed over the target, then the directory fsynced so that the
 * rename itself survives a crash. On failure the temp file is removed and
 * the target is untouched.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: opts.dirMode ?? 0o755 });
  const mode = (opts.keepMode ? await currentMode(path) : undefined) ?? opts.mode ?? 0o644;
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    // 'wx': never follow or reuse a file someone else put at the temp name.
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.chmod(mode);
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dir);
}
