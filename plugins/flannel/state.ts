// The delegate configs saved between ADD and DEL, one file per attachment in
// dataDir (default /var/lib/cni/flannel).
//
// Upstream flannel keys the file by container ID only: ADD writes
// <dataDir>/<containerID>, DEL reads exactly that path (ioutil.ReadFile),
// runs the delegate's DEL with its bytes and removes it. To stay compatible
// in both directions (a rollback to upstream must still find and release the
// attachment; an upgrade must still read upstream's files):
//   - the default attachment, CNI_IFNAME "eth0", is saved at <containerID>,
//     byte for byte what upstream would have written there;
//   - any other interface of the container is saved at <containerID>@<ifName>
//     ('@' cannot occur in a container ID, so the split is unambiguous), where
//     upstream, which cannot tell two interfaces apart, never looks.
// Why "eth0" and not "the first attachment saved for a container": the rule
// must be decidable at DEL from the arguments alone. Nothing in an upstream
// format file says which interface it belongs to, so with "first saved" a
// repeated DEL of net1 (allowed by the spec) would find eth0's <containerID>
// file, tear down with it and remove it, leaking eth0. Every runtime names the
// pod's primary interface eth0 (kubelet/CRI, Multus' cluster network), which
// is the attachment upstream flannel serves, so that one stays where upstream
// reads it. Consequence: an upstream-written <containerID> is read for eth0
// only.
//
// The previous version of ours saved eth0 at <containerID>@eth0; DEL and CHECK
// of eth0 still read it (after <containerID>) and DEL removes it.
//
// Writes are atomic and durable (lib/fs writeFileAtomic): a crash leaves
// either no file or a whole one, never the 0-byte file of
// flannel-io/cni-plugin#43. Temp files start with '.', which a container ID
// never does.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isNotFound } from '../../lib/errors.ts';
import { isAtomicTempName, writeFileAtomic } from '../../lib/fs.ts';

export interface SavedAttachment {
  readonly containerId: string;
  /** undefined for a <containerID> file: eth0's, or upstream's for an interface it did not record. */
  readonly ifName: string | undefined;
  readonly file: string;
}

const SEP = '@';
/** The interface whose delegate is saved where upstream flannel reads it. */
export const DEFAULT_IFNAME = 'eth0';

/** `<containerID>` for the default interface, `<containerID>@<ifName>` for the others. */
export function attachmentFileName(containerId: string, ifName: string): string {
  return ifName === DEFAULT_IFNAME ? containerId : `${containerId}${SEP}${ifName}`;
}

/** Which attachment a dataDir entry belongs to; undefined for temp files and foreign names. */
export function parseAttachmentFileName(name: string): { containerId: string; ifName: string | undefined } | undefined {
  if (name.startsWith('.') || name === '') return undefined;
  const at = name.indexOf(SEP);
  if (at === -1) return { containerId: name, ifName: undefined };
  if (at === 0 || at === name.length - 1) return undefined;
  return { containerId: name.slice(0, at), ifName: name.slice(at + 1) };
}

/** Writes `data` to the attachment's file (0600, dataDir 0700) atomically and durably; returns the path. */
export async function saveDelegate(dataDir: string, containerId: string, ifName: string, data: Buffer): Promise<string> {
  const path = join(dataDir, attachmentFileName(containerId, ifName));
  await writeFileAtomic(path, data, { mode: 0o600, dirMode: 0o700 });
  return path;
}

export interface LoadedDelegate {
  readonly path: string;
  readonly bytes: Buffer;
}

function readIfExists(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Where an attachment's delegate may be saved, current name first. */
export function savedPaths(dataDir: string, containerId: string, ifName: string): string[] {
  const current = join(dataDir, attachmentFileName(containerId, ifName));
  if (ifName !== DEFAULT_IFNAME) return [current];
  // The previous version's name for the default interface.
  return [current, join(dataDir, `${containerId}${SEP}${ifName}`)];
}

/** Every saved delegate file of an attachment, current name first; empty if none exists. */
export function loadDelegates(dataDir: string, containerId: string, ifName: string): LoadedDelegate[] {
  const out: LoadedDelegate[] = [];
  for (const path of savedPaths(dataDir, containerId, ifName)) {
    const bytes = readIfExists(path);
    if (bytes !== undefined) out.push({ path, bytes });
  }
  return out;
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
      .filter(isAtomicTempName)
      .map((n) => join(dataDir, n));
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
}
