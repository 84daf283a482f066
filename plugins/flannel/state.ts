// The delegate configs saved between ADD and DEL, one file per attachment in
// dataDir (default /var/lib/cni/flannel).
//
// Upstream names the file <containerID>, so two flannel attachments of one
// container (different CNI_IFNAME) overwrite each other's file. We name it
// <containerID>@<ifName>: '@' cannot occur in a container ID, so the split is
// unambiguous. Files written by upstream (<containerID>) are still read on DEL
// and CHECK when ours is absent, so an upgrade in place keeps working.
//
// Writes are atomic and durable (temp file, fsync, rename, fsync of the
// directory): a crash leaves either no file or a whole one, never the 0-byte
// file of flannel-io/cni-plugin#43. Temp files start with '.', which a
// container ID never does.
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { isNotFound } from '../../lib/errors.ts';

export interface SavedAttachment {
  readonly containerId: string;
  /** undefined for an upstream-style file keyed by container ID only. */
  readonly ifName: string | undefined;
  readonly file: string;
}

const SEP = '@';

export function attachmentFileName(containerId: string, ifName: string): string {
  return `${containerId}${SEP}${ifName}`;
}

/** Which attachment a dataDir entry belongs to; undefined for temp files and foreign names. */
export function parseAttachmentFileName(name: string): { containerId: string; ifName: string | undefined } | undefined {
  if (name.startsWith('.') || name === '') return undefined;
  const at = name.indexOf(SEP);
  if (at === -1) return { containerId: name, ifName: undefined };
  if (at === 0 || at === name.length - 1) return undefined;
  return { containerId: name.slice(0, at), ifName: name.slice(at + 1) };
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes `data` to `<dataDir>/<containerID>@<ifName>` (0600) atomically and durably; returns the path. */
export function saveDelegate(dataDir: string, containerId: string, ifName: string, data: Buffer): string {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const name = attachmentFileName(containerId, ifName);
  const path = join(dataDir, name);
  const tmp = join(dataDir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off, data.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dataDir);
  return path;
}

export interface LoadedDelegate {
  readonly path: string;
  readonly bytes: Buffer;
  /** True when the file is upstream's <containerID> file. */
  readonly legacy: boolean;
}

function readIfExists(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** The saved delegate of an attachment: ours first, then upstream's <containerID> file; undefined if neither exists. */
export function loadDelegate(dataDir: string, containerId: string, ifName: string): LoadedDelegate | undefined {
  const path = join(dataDir, attachmentFileName(containerId, ifName));
  const bytes = readIfExists(path);
  if (bytes !== undefined) return { path, bytes, legacy: false };
  const legacyPath = join(dataDir, containerId);
  const legacyBytes = readIfExists(legacyPath);
  if (legacyBytes !== undefined) return { path: legacyPath, bytes: legacyBytes, legacy: true };
  return undefined;
}

/** Removes a saved file; a missing file is fine. */
export function removeSaved(path: string): void {
  rmSync(path, { force: true });
}

/** Every saved attachment file in dataDir (none when dataDir does not exist). */
export function listSaved(dataDir: string): SavedAttachment[] {
  let names: string[];
  try {
    names = readdirSync(dataDir);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
  const out: SavedAttachment[] = [];
  for (const name of names.sort()) {
    const a = parseAttachmentFileName(name);
    if (a) out.push({ ...a, file: join(dataDir, name) });
  }
  return out;
}

/** Leftover temp files of interrupted writes. */
export function listTempFiles(dataDir: string): string[] {
  try {
    return readdirSync(dataDir)
      .filter((n) => n.startsWith('.') && n.endsWith('.tmp'))
      .map((n) => join(dataDir, n));
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
}
