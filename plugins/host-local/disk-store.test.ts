import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IPAddr } from '../../lib/ip/index.ts';
import { DiskStore, INDEX_NAME, TEMP_PREFIX } from './disk-store.ts';
import type { PersistStep } from './disk-store.ts';
import type { StoreSession } from './store.ts';

const ip = (s: string): IPAddr => IPAddr.parse(s)!;

let root: string;
let reads: string[];
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'hl-store-'));
  reads = [];
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** A new store object, as a new plugin process would open it. */
function open(): DiskStore {
  return DiskStore.open(root, 'net1', { create: true, onFileRead: (n) => reads.push(n) })!;
}
const dir = (): string => join(root, 'net1');

async function session<T>(fn: (s: StoreSession) => T): Promise<T> {
  const s = open();
  try {
    return await s.withLock(fn);
  } finally {
    s.close();
  }
}

describe('DiskStore on-disk format', () => {
  it('writes the reference files', async () => {
    expect(await session((s) => s.reserve(ip('fd00:97:0::2'), ' ctr1 ', 'eth0', 1))).toBe(true);
    expect(readFileSync(join(dir(), 'fd00:97::2'), 'utf8')).toBe('ctr1\r\neth0');
    expect(readFileSync(join(dir(), 'last_reserved_ip.1'), 'utf8')).toBe('fd00:97::2');
    expect(statSync(join(dir(), 'fd00:97::2')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir(), 'last_reserved_ip.1')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir(), 'lock')).size).toBe(0);
    expect(statSync(join(dir(), 'lock')).mode & 0o077).toBe(0o050 & ~process.umask() & 0o077);
    // Our index can never equal a reservation owner string.
    expect(readFileSync(join(dir(), INDEX_NAME), 'utf8').trim()[0]).toBe('#');
    expect(await session((s) => s.reserve(ip('fd00:97::2'), 'other', 'eth0', 1))).toBe(false);
    expect(await session((s) => s.lastReservedIP(1)?.toString())).toBe('fd00:97::2');
    expect(await session((s) => s.lastReservedIP(0))).toBeUndefined();
  });

  it('matches legacy id-only and whitespace-padded files, exact matches first', async () => {
    await session(() => undefined);
    writeFileSync(join(dir(), '10.0.0.5'), 'legacy1');
    writeFileSync(join(dir(), '10.0.0.6'), '  ctr2\r\neth1\n\n');
    writeFileSync(join(dir(), '10.0.0.7'), 'ctr2');
    expect(await session((s) => s.getByID('legacy1', 'any').map(String))).toEqual(['10.0.0.5']);
    expect(await session((s) => s.findByID('ctr2', 'eth1'))).toBe(true);
    expect(await session((s) => s.findByID('ctr2', 'eth9'))).toBe(true); // legacy 10.0.0.7
    expect(await session((s) => s.findByID('ctr3', 'eth1'))).toBe(false);
    expect(await session((s) => s.releaseByID('ctr2', 'eth1'))).toEqual(['10.0.0.6']);
    expect(await session((s) => s.releaseByID('ctr2', 'eth1'))).toEqual(['10.0.0.7']);
    expect(await session((s) => s.releaseByID('legacy1', 'eth0'))).toEqual(['10.0.0.5']);
    expect(readdirSync(dir()).sort()).toEqual([INDEX_NAME, 'lock'].sort());
  });
});

describe('DiskStore index', () => {
  async function populate(n: number): Promise<void> {
    await session((s) => {
      for (let i = 0; i < n; i++) s.reserve(IPAddr.of(4, 0x0a000000n + BigInt(i + 2)), `c${i}`, 'eth0', 0);
    });
  }

  it('answers lookups without reading reservation files when nothing changed', async () => {
    await populate(50);
    reads = [];
    expect(await session((s) => s.getByID('c7', 'eth0').map(String))).toEqual(['10.0.0.9']);
    expect(await session((s) => s.findByID('nobody', 'eth0'))).toBe(false);
    expect(reads).toEqual([]);
    // Releasing re-reads only the file it deletes.
    expect(await session((s) => s.releaseByID('c7', 'eth0'))).toEqual(['10.0.0.9']);
    expect(reads).toEqual(['10.0.0.9']);
  });

  it('sees files created and deleted behind its back', async () => {
    await populate(5);
    writeFileSync(join(dir(), '10.0.0.50'), 'ref1\r\neth0');
    unlinkSync(join(dir(), '10.0.0.3'));
    reads = [];
    expect(await session((s) => s.getByID('ref1', 'eth0').map(String))).toEqual(['10.0.0.50']);
    expect(reads.length).toBeGreaterThan(0);
    expect(await session((s) => [s.findByID('c1', 'eth0'), s.isTaken(ip('10.0.0.3'))])).toEqual([false, false]);
  });

  it('sees a name deleted and recreated by another owner right after its own write', async () => {
    await populate(5);
    // Same name, new owner, within the same clock tick as our last write.
    unlinkSync(join(dir(), '10.0.0.4'));
    writeFileSync(join(dir(), '10.0.0.4'), 'ref2\r\neth0');
    expect(await session((s) => s.getByID('ref2', 'eth0').map(String))).toEqual(['10.0.0.4']);
    expect(await session((s) => s.findByID('c2', 'eth0'))).toBe(false);
    expect(await session((s) => s.releaseByID('c2', 'eth0'))).toEqual([]);
    expect(readFileSync(join(dir(), '10.0.0.4'), 'utf8')).toBe('ref2\r\neth0');
  });

  it('keeps one open store object correct across sessions when files change in between', async () => {
    await populate(3);
    const s = open();
    try {
      expect(await s.withLock((x) => x.findByID('c0', 'eth0'))).toBe(true);
      unlinkSync(join(dir(), '10.0.0.2'));
      writeFileSync(join(dir(), '10.0.0.2'), 'ref3\r\neth0');
      expect(await s.withLock((x) => [x.findByID('c0', 'eth0'), x.findByID('ref3', 'eth0')])).toEqual([false, true]);
    } finally {
      s.close();
    }
  });

  it('falls back to a full scan when the index is torn or removed', async () => {
    await populate(5);
    truncateSync(join(dir(), INDEX_NAME), 40);
    expect(await session((s) => s.getByID('c4', 'eth0').map(String))).toEqual(['10.0.0.6']);
    unlinkSync(join(dir(), INDEX_NAME));
    expect(await session((s) => s.getByID('c3', 'eth0').map(String))).toEqual(['10.0.0.5']);
    // ... and rebuilt it, so the next call reads nothing.
    reads = [];
    expect(await session((s) => s.getByID('c2', 'eth0').map(String))).toEqual(['10.0.0.4']);
    expect(reads).toEqual([]);
  });

  it('does not create the store for open(create: false)', () => {
    expect(DiskStore.open(root, 'absent', { create: false })).toBeUndefined();
    expect(readdirSync(root)).toEqual([]);
  });
});

describe('DiskStore and kill -9', () => {
  const temps = (): string[] => readdirSync(dir()).filter((n) => n.startsWith(TEMP_PREFIX));

  it('creates a reservation whole and leaves no temp file', async () => {
    expect(await session((s) => s.reserve(ip('10.0.0.2'), 'ctr1', 'eth0', 0))).toBe(true);
    expect(readFileSync(join(dir(), '10.0.0.2'), 'utf8')).toBe('ctr1\r\neth0');
    expect(statSync(join(dir(), '10.0.0.2')).nlink).toBe(1);
    expect(temps()).toEqual([]);
    // The losing side of a race (link: EEXIST) also cleans up.
    expect(await session((s) => s.reserve(ip('10.0.0.2'), 'ctr2', 'eth0', 0))).toBe(false);
    expect(readFileSync(join(dir(), '10.0.0.2'), 'utf8')).toBe('ctr1\r\neth0');
    expect(temps()).toEqual([]);
  });

  it('never takes a killed run\'s temp files for reservations and removes them', async () => {
    await session((s) => s.reserve(ip('10.0.0.2'), 'ctr1', 'eth0', 0));
    // What kills between open, write, link and unlink leave: empty, partial, complete.
    writeFileSync(join(dir(), `${TEMP_PREFIX}999991`), '');
    writeFileSync(join(dir(), `${TEMP_PREFIX}999992`), 'ctr9\r');
    writeFileSync(join(dir(), `${TEMP_PREFIX}999993`), 'ctr9\r\neth0');
    expect(await session((s) => [...s.entries.keys()])).toEqual(['10.0.0.2']);
    expect(temps()).toEqual([]);
    expect(await session((s) => s.findByID('ctr9', 'eth0'))).toBe(false);
  });

  it('replaces a leftover temp file of its own pid instead of writing through it', async () => {
    await session(() => undefined);
    const target = join(root, 'elsewhere');
    writeFileSync(target, 'untouched');
    symlinkSync(target, join(dir(), `${TEMP_PREFIX}${process.pid}`));
    expect(await session((s) => s.reserve(ip('10.0.0.3'), 'ctr1', 'eth0', 0))).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('untouched');
    expect(readFileSync(join(dir(), '10.0.0.3'), 'utf8')).toBe('ctr1\r\neth0');
    expect(temps()).toEqual([]);
  });

  const steps: PersistStep[] = ['opened', 'truncated', 'stamped', 'written'];
  it.each(steps)('keeps the index right when persist is stopped after %s', async (step) => {
    await session((s) => {
      for (let i = 2; i < 6; i++) s.reserve(ip(`10.0.0.${i}`), `c${i}`, 'eth0', 0);
    });
    // A session that adds one and removes one, "killed" after `step` of its persist.
    const killed = DiskStore.open(root, 'net1', {
      create: true,
      onPersistStep: (at) => {
        if (at === step) throw new Error(`killed after ${at}`);
      },
    })!;
    try {
      await killed.withLock((s) => {
        s.reserve(ip('10.0.0.9'), 'new', 'eth0', 0);
        s.releaseByID('c3', 'eth0');
      });
    } finally {
      killed.close();
    }
    // A later process must see exactly what is on disk, index or not.
    const onDisk = readdirSync(dir()).filter((n) => /^\d/.test(n)).sort();
    expect(onDisk).toEqual(['10.0.0.2', '10.0.0.4', '10.0.0.5', '10.0.0.9']);
    expect(await session((s) => [...s.entries.keys()].sort())).toEqual(onDisk);
    expect(await session((s) => [s.findByID('new', 'eth0'), s.findByID('c3', 'eth0')])).toEqual([true, false]);
    // ... and the index is trusted again from then on.
    reads = [];
    expect(await session((s) => s.getByID('c5', 'eth0').map(String))).toEqual(['10.0.0.5']);
    expect(reads).toEqual([]);
  });
});
