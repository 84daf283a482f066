// The initramfs of the test VM is a "newc" cpio archive (the format the
// kernel unpacks, Documentation/driver-api/early-userspace). Written here
// rather than with cpio(1): it is a few dozen lines, needs no extra
// package, and the archive is the same bytes for the same inputs (fixed
// mtimes, inode numbers by position), so a cached image can be keyed by hash.

export type CpioEntry =
  | { readonly kind: 'dir'; readonly path: string; readonly mode?: number }
  | { readonly kind: 'file'; readonly path: string; readonly data: Uint8Array | string; readonly mode?: number }
  | { readonly kind: 'symlink'; readonly path: string; readonly target: string };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function pad4(len: number): number {
  return (4 - (len % 4)) % 4;
}

function header(ino: number, mode: number, nlink: number, size: number, nameLen: number): string {
  // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
  // rdevmajor, rdevminor, namesize (with its NUL), check.
  return '070701' + [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, nameLen, 0].map(hex8).join('');
}

/**
 * One newc archive of the entries, in order, ending with the TRAILER!!!
 * record. Paths are relative ("init", "lib/x.ko"); parents must come first.
 */
export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const push = (ino: number, mode: number, nlink: number, name: string, data: Buffer): void => {
    const nameBuf = Buffer.from(name + '\0', 'utf8');
    const head = Buffer.from(header(ino, mode, nlink, data.length, nameBuf.length), 'ascii');
    parts.push(head, nameBuf, Buffer.alloc(pad4(head.length + nameBuf.length)));
    parts.push(data, Buffer.alloc(pad4(data.length)));
  };
  let ino = 1;
  for (const e of entries) {
    const path = e.path.replace(/^\/+/, '');
    if (path === '' || path.split('/').includes('..')) throw new Error(`cpio: bad path ${JSON.stringify(e.path)}`);
    if (e.kind === 'dir') push(ino++, S_IFDIR | (e.mode ?? 0o755), 2, path, Buffer.alloc(0));
    else if (e.kind === 'symlink') push(ino++, S_IFLNK | 0o777, 1, path, Buffer.from(e.target, 'utf8'));
    else push(ino++, S_IFREG | (e.mode ?? 0o644), 1, path, typeof e.data === 'string' ? Buffer.from(e.data, 'utf8') : Buffer.from(e.data));
  }
  push(0, 0, 1, 'TRAILER!!!', Buffer.alloc(0));
  return Buffer.concat(parts);
}
