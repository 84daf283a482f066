// Our host-local and the reference binary (/usr/lib/cni/host-local) on one
// store at the same time: distinct addresses, each side reads and releases
// the other's reservations, and the store ends up clean. Ours runs in-process
// through the real skeleton; the reference runs as child processes.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createNamedNetns, deleteNamedNetns } from '../../lib/netns/index.ts';
import { INDEX_NAME } from '../../plugins/host-local/disk-store.ts';
import { hostLocalFuncs } from '../../plugins/host-local/host-local.ts';
import { runPlugin } from '../../plugins/skel/index.ts';

const REF = '/usr/lib/cni/host-local';
const prefix = `hl${Math.random().toString(36).slice(2, 8)}`;
const nsName = `${prefix}-pod`;
let nsPath = '';
let root = '';
let dataDir = '';

const config = (): string =>
  JSON.stringify({
    cniVersion: '1.0.0',
    name: 'net1',
    type: 'bridge',
    ipam: { type: 'host-local', subnet: '10.77.0.0/24', routes: [{ dst: '0.0.0.0/0' }], dataDir },
  });

interface Outcome {
  rc: number;
  out: string;
}

function env(cmd: string, id: string): Record<string, string> {
  return { CNI_COMMAND: cmd, CNI_CONTAINERID: id, CNI_IFNAME: 'eth0', CNI_NETNS: nsPath, CNI_PATH: '/usr/lib/cni', CNI_ARGS: '' };
}

function reference(cmd: string, id: string, cniArgs = ''): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const e = { PATH: '/usr/bin:/bin', ...env(cmd, id), CNI_ARGS: cniArgs };
    const p = spawn(REF, [], { env: e, stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('close', (rc) => resolve({ rc: rc ?? -1, out }));
    p.stdin.end(config());
  });
}

async function ours(cmd: string, id: string): Promise<Outcome> {
  let out = '';
  const rc = await runPlugin(hostLocalFuncs, '', {
    env: env(cmd, id),
    readStdin: () => Buffer.from(config()),
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: () => undefined },
  });
  return { rc, out };
}

const addressOf = (o: Outcome): string => (JSON.parse(o.out) as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!;
const storeDir = (): string => join(dataDir, 'net1');
const reservations = (): string[] => readdirSync(storeDir()).filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n));

beforeAll(() => {
  if (!existsSync(REF)) throw new Error(`${REF} is missing: install Debian's containernetworking-plugins`);
  nsPath = createNamedNetns(nsName);
  root = mkdtempSync(join(tmpdir(), `${prefix}-`));
});
afterAll(() => {
  deleteNamedNetns(nsName);
  if (root) rmSync(root, { recursive: true, force: true });
});
beforeEach((ctx) => {
  dataDir = join(root, ctx.task.id);
});

describe('host-local side by side with the reference binary', () => {
  it('20 + 20 interleaved ADDs get distinct addresses; each side CHECKs and DELs the other', async () => {
    const ids = Array.from({ length: 20 }, (_, i) => i);
    const results = await Promise.all(ids.flatMap((i) => [reference('ADD', `ref${i}`), ours('ADD', `our${i}`)]));
    for (const r of results) expect(r).toMatchObject({ rc: 0 });
    const addrs = results.map(addressOf);
    expect(new Set(addrs).size).toBe(40);
    expect(reservations().sort()).toEqual([...addrs].sort());
    // Every file in the reference's format, whoever wrote it.
    for (const [k, r] of results.entries()) {
      const id = k % 2 === 0 ? `ref${k / 2}` : `our${(k - 1) / 2}`;
      expect(readFileSync(join(storeDir(), addressOf(r)), 'utf8')).toBe(`${id}\r\neth0`);
    }
    // Cross CHECK.
    expect(await ours('CHECK', 'ref3')).toEqual({ rc: 0, out: '' });
    expect(await reference('CHECK', 'our3')).toEqual({ rc: 0, out: '' });
    expect((await reference('CHECK', 'nobody')).rc).toBe(1);
    // Cross DEL, concurrently: ours releases the reference's, the reference ours.
    const dels = await Promise.all(ids.flatMap((i) => [ours('DEL', `ref${i}`), reference('DEL', `our${i}`)]));
    for (const d of dels) expect(d).toEqual({ rc: 0, out: '' });
    expect(readdirSync(storeDir()).filter((n) => n !== INDEX_NAME).sort()).toEqual(['last_reserved_ip.0', 'lock']);
    // Our index survived the reference's scans (its content never matches an owner).
    expect(existsSync(join(storeDir(), INDEX_NAME))).toBe(true);
  });

  it('50 concurrent ADDs then DELs (reference processes and ours in-process) leave a clean store', async () => {
    const ids = Array.from({ length: 50 }, (_, i) => i);
    const run = (cmd: string, i: number): Promise<Outcome> => (i % 2 === 0 ? reference(cmd, `c${i}`) : ours(cmd, `c${i}`));
    const adds = await Promise.all(ids.map((i) => run('ADD', i)));
    for (const r of adds) expect(r).toMatchObject({ rc: 0 });
    expect(new Set(adds.map(addressOf)).size).toBe(50);
    expect(reservations()).toHaveLength(50);
    // DEL by the other side this time.
    const dels = await Promise.all(ids.map((i) => run('DEL', i + 1)));
    for (const d of dels) expect(d).toMatchObject({ rc: 0 });
    // run(DEL, i+1) addressed container c(i+1): c0 is left; release it too.
    expect(reservations()).toHaveLength(1);
    expect((await ours('DEL', 'c0')).rc).toBe(0);
    expect(readdirSync(storeDir()).filter((n) => n !== INDEX_NAME).sort()).toEqual(['last_reserved_ip.0', 'lock']);
  });

  it('ours releases a reservation the reference recreated under the same name only for its new owner', async () => {
    expect((await ours('ADD', 'first')).rc).toBe(0);
    const addr = reservations()[0]!;
    // The reference frees it and hands the same address to someone else.
    expect((await reference('DEL', 'first')).rc).toBe(0);
    expect((await reference('ADD', 'second', `IP=${addr}`)).rc).toBe(0);
    expect((await ours('DEL', 'first')).rc).toBe(0);
    expect(readFileSync(join(storeDir(), addr), 'utf8')).toBe('second\r\neth0');
    expect((await ours('CHECK', 'second')).rc).toBe(0);
    expect((await ours('CHECK', 'first')).rc).toBe(1);
    expect((await ours('DEL', 'second')).rc).toBe(0);
    expect(reservations()).toEqual([]);
  });
});
