import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAtomicTempName, writeFileAtomic } from './fs.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lib-fs-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const mode = async (p: string): Promise<number> => (await stat(p)).mode & 0o7777;

describe('writeFileAtomic', () => {
  it('creates missing directories and the file with the defaults (0755, 0644), leaving no temp file', async () => {
    const path = join(dir, 'a', 'b', 'f.env');
    await writeFileAtomic(path, 'K=V\n');
    expect(await readFile(path, 'utf8')).toBe('K=V\n');
    expect(await mode(path)).toBe(0o644);
    expect(await mode(join(dir, 'a', 'b'))).toBe(0o755);
    expect(await readdir(join(dir, 'a', 'b'))).toEqual(['f.env']);
  });

  it('sets the mode exactly, whatever the umask, and takes bytes', async () => {
    const old = process.umask(0o077);
    try {
      const path = join(dir, 'd', 'x');
      await writeFileAtomic(path, Buffer.from([0, 1, 2]), { mode: 0o640, dirMode: 0o700 });
      expect(await mode(path)).toBe(0o640);
      expect(await mode(join(dir, 'd'))).toBe(0o700);
      expect([...(await readFile(path))]).toEqual([0, 1, 2]);
    } finally {
      process.umask(old);
    }
  });

  it('replaces an existing file; keepMode keeps its permissions, otherwise mode applies', async () => {
    const path = join(dir, 'f');
    await writeFile(path, 'old');
    await chmod(path, 0o600);
    await writeFileAtomic(path, 'new', { keepMode: true });
    expect([await readFile(path, 'utf8'), await mode(path)]).toEqual(['new', 0o600]);
    await writeFileAtomic(path, 'newer', { mode: 0o644 });
    expect([await readFile(path, 'utf8'), await mode(path)]).toEqual(['newer', 0o644]);
    // keepMode for a new file falls back to mode
    await writeFileAtomic(join(dir, 'g'), 'x', { keepMode: true, mode: 0o604 });
    expect(await mode(join(dir, 'g'))).toBe(0o604);
  });

  it('a failed rename leaves the target as it was and removes the temp file', async () => {
    // a non-empty directory cannot be replaced by a file
    const path = join(dir, 'target');
    await mkdir(path);
    await writeFile(join(path, 'inside'), 'keep');
    await expect(writeFileAtomic(path, 'x')).rejects.toMatchObject({ code: 'EISDIR' });
    expect(await readdir(dir)).toEqual(['target']);
    expect(await readFile(join(path, 'inside'), 'utf8')).toBe('keep');
  });

  it('temp names are recognisable and never a target name', async () => {
    expect(isAtomicTempName('.subnet.env.a1b2c3d4e5f6.tmp')).toBe(true);
    expect(isAtomicTempName('subnet.env')).toBe(false);
    expect(isAtomicTempName('.hidden')).toBe(false);
  });
});
