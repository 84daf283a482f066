// The plugin through the real skeleton, in-process, on a temp-dir store.
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LOCK_EX, LOCK_UN, flockSync } from '../../lib/sys/index.ts';
import { runPlugin } from '../skel/index.ts';
import { makeHostLocalFuncs } from './host-local.ts';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'hl-plugin-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const funcs = makeHostLocalFuncs({ lockTimeoutMs: 200 });

interface Call {
  cmd: string;
  id?: string;
  ifname?: string;
  args?: string;
  config: Record<string, unknown>;
}

async function call(c: Call): Promise<{ rc: number; out: any }> {
  let out = '';
  const rc = await runPlugin(funcs, 'test', {
    env: {
      CNI_COMMAND: c.cmd,
      CNI_CONTAINERID: c.id ?? 'ctr1',
      CNI_IFNAME: c.ifname ?? 'eth0',
      CNI_NETNS: '/run/netns/hl-does-not-matter',
      CNI_PATH: '/opt/cni/bin',
      CNI_ARGS: c.args ?? '',
    },
    readStdin: () => Buffer.from(JSON.stringify(c.config)),
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: () => undefined },
  });
  return { rc, out: out === '' ? undefined : JSON.parse(out) };
}

const net = (ipam: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  cniVersion: '1.0.0',
  name: 'net1',
  type: 'host-local',
  ipam: { type: 'host-local', dataDir: root, ...ipam },
  ...extra,
});
const storeFiles = (): string[] => readdirSync(join(root, 'net1')).filter((n) => n !== '.host-local-index').sort();

describe('ADD', () => {
  it('returns ips, routes and dns in the requested version', async () => {
    const rc = join(root, 'resolv.conf');
    writeFileSync(rc, 'nameserver 10.0.0.53\nsearch a.example\n');
    const ipam = {
      ranges: [[{ subnet: '10.97.0.0/24', rangeStart: '10.97.0.10', rangeEnd: '10.97.0.20', gateway: '10.97.0.254' }], [{ subnet: 'fd00:97::/64' }]],
      routes: [{ dst: '0.0.0.0/0' }],
      resolvConf: rc,
    };
    const r = await call({ cmd: 'ADD', config: net(ipam, { cniVersion: '0.3.1' }) });
    expect(r).toEqual({
      rc: 0,
      out: {
        cniVersion: '0.3.1',
        ips: [
          { version: '4', address: '10.97.0.10/24', gateway: '10.97.0.254' },
          { version: '6', address: 'fd00:97::2/64', gateway: 'fd00:97::1' },
        ],
        routes: [{ dst: '0.0.0.0/0' }],
        dns: { nameservers: ['10.0.0.53'], search: ['a.example'] },
      },
    });
    expect(readFileSync(join(root, 'net1', 'fd00:97::2'), 'utf8')).toBe('ctr1\r\neth0');
  });

  it('fails on exhaustion with code 110 and the reference message, releasing earlier sets', async () => {
    const config = net({ ranges: [[{ subnet: 'fd00::/64' }], [{ subnet: '10.98.0.0/30' }]] });
    expect((await call({ cmd: 'ADD', id: 'c1', config })).rc).toBe(0);
    const r = await call({ cmd: 'ADD', id: 'c2', config });
    expect(r.out.code).toBe(110);
    expect(r.out.msg).toBe('failed to allocate for range 1: no IP addresses available in range set: 10.98.0.1-10.98.0.2');
    expect(storeFiles()).toEqual(['10.98.0.2', 'fd00::2', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
  });

  it('a repeated ADD fails on the duplicate without releasing the existing reservation', async () => {
    const config = net({ ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/64' }]] });
    await call({ cmd: 'ADD', config: net({ ranges: [[{ subnet: '10.1.0.0/24' }]] }) });
    const r = await call({ cmd: 'ADD', config });
    expect(r.out.msg).toBe('failed to allocate for range 0: 10.1.0.2 has been allocated to ctr1, duplicate allocation is not allowed');
    expect(r.out.code).toBe(112);
    // v6 first: set 0 allocates, set 1 hits the duplicate; only the new v6 address is released.
    const r2 = await call({ cmd: 'ADD', config: net({ ranges: [[{ subnet: 'fd00::/64' }], [{ subnet: '10.1.0.0/24' }]] }) });
    expect(r2.out.code).toBe(112);
    expect(storeFiles()).toEqual(['10.1.0.2', 'last_reserved_ip.0', 'lock']);
  });

  it('honours requested IPs and reports the unfulfilled ones', async () => {
    const ipam = { ranges: [[{ subnet: '10.97.0.0/24', rangeStart: '10.97.0.10', rangeEnd: '10.97.0.20', gateway: '10.97.0.254' }]] };
    const ok = await call({ cmd: 'ADD', id: 'a', args: 'IP=10.97.0.15/24', config: net(ipam) });
    expect(ok.out.ips[0].address).toBe('10.97.0.15/24');
    const again = await call({ cmd: 'ADD', id: 'b', args: 'IP=10.97.0.15', config: net(ipam) });
    expect(again.out.msg).toBe('failed to allocate for range 0: requested IP address 10.97.0.15 is not available in range set 10.97.0.10-10.97.0.20');
    const gw = await call({ cmd: 'ADD', id: 'c', args: 'IP=10.97.0.254', config: net(ipam) });
    expect(gw.out.msg).toBe('failed to allocate all requested IPs: 10.97.0.254');
    expect(gw.out.code).toBe(111);
    expect(storeFiles()).toEqual(['10.97.0.15', 'last_reserved_ip.0', 'lock']);
  });

  it('maps config errors to code 7', async () => {
    const r = await call({ cmd: 'ADD', config: net({ subnet: '10.1.0.0/31' }) });
    expect(r.out).toMatchObject({ code: 7, msg: 'invalid range set 0: Network 10.1.0.0/31 too small to allocate from' });
  });

  it('times out on a held lock with code 11', async () => {
    const config = net({ subnet: '10.1.0.0/24' });
    await call({ cmd: 'ADD', id: 'a', config });
    const fd = openSync(join(root, 'net1', 'lock'), 'r');
    try {
      flockSync(fd, LOCK_EX);
      const r = await call({ cmd: 'ADD', id: 'b', config });
      expect(r.out.code).toBe(11);
    } finally {
      flockSync(fd, LOCK_UN);
      closeSync(fd);
    }
  });
});

describe('DEL and CHECK', () => {
  it('DEL releases across the whole store even when the config no longer validates', async () => {
    await call({ cmd: 'ADD', config: net({ runtimeConfig: undefined, ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/64' }]] }) });
    await call({ cmd: 'ADD', id: 'other', config: net({ subnet: '10.1.0.0/24' }) });
    expect((await call({ cmd: 'DEL', ifname: 'eth1', config: net({ subnet: '10.1.0.0/24' }) })).rc).toBe(0);
    expect(storeFiles()).toContain('fd00::2');
    const r = await call({ cmd: 'DEL', config: net({ subnet: 'garbage' }) });
    expect(r).toEqual({ rc: 0, out: undefined });
    expect(storeFiles()).toEqual(['10.1.0.3', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
    expect((await call({ cmd: 'DEL', config: net({ subnet: 'garbage' }) })).rc).toBe(0);
  });

  it('DEL of a store that does not exist succeeds without creating it', async () => {
    expect((await call({ cmd: 'DEL', config: { cniVersion: '1.0.0', name: 'net1', ipam: { dataDir: root } } })).rc).toBe(0);
    expect(existsSync(join(root, 'net1'))).toBe(false);
  });

  it('CHECK succeeds iff the attachment holds an address', async () => {
    const config = net({ subnet: '10.1.0.0/24' });
    await call({ cmd: 'ADD', config });
    expect(await call({ cmd: 'CHECK', config })).toEqual({ rc: 0, out: undefined });
    const r = await call({ cmd: 'CHECK', ifname: 'eth1', config });
    expect(r.out.msg).toBe('host-local: Failed to find address added by container ctr1');
  });
});

describe('GC and STATUS (1.1.0)', () => {
  it('GC releases only reservations of attachments not in the valid list', async () => {
    const base = net({ subnet: '10.1.0.0/24' }, { cniVersion: '1.1.0' });
    for (const [id, ifname] of [['a', 'eth0'], ['a', 'eth1'], ['b', 'eth0']] as const) await call({ cmd: 'ADD', id, ifname, config: base });
    const d = join(root, 'net1');
    writeFileSync(join(d, '10.1.0.100'), 'a'); // legacy, id in list → kept
    writeFileSync(join(d, '10.1.0.101'), 'zz'); // legacy, id not in list → released
    writeFileSync(join(d, '10.1.0.102'), '{"weird": true}'); // unparsable → kept
    writeFileSync(join(d, 'notes'), 'x\r\neth0'); // not a reservation name → kept
    expect((await call({ cmd: 'GC', config: base })).rc).toBe(0); // no list: nothing happens
    expect(storeFiles()).toHaveLength(9);
    const r = await call({ cmd: 'GC', config: { ...base, 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }] } });
    expect(r.rc).toBe(0);
    expect(storeFiles()).toEqual(['10.1.0.100', '10.1.0.102', '10.1.0.2', 'last_reserved_ip.0', 'lock', 'notes']);
    // The older key name works too; an empty list is meaningful.
    await call({ cmd: 'GC', config: { ...base, 'cni.dev/attachments': [] } });
    expect(storeFiles()).toEqual(['10.1.0.102', 'last_reserved_ip.0', 'lock', 'notes']);
  });

  it('a store that cannot be created is an I/O failure (5) with the system error text', async () => {
    writeFileSync(join(root, 'file'), '');
    const dataDir = join(root, 'file', 'sub');
    const r = await call({ cmd: 'ADD', config: net({ subnet: '10.1.0.0/24', dataDir }) });
    expect(r.rc).toBe(1);
    expect(r.out).toMatchObject({ code: 5, msg: `ENOTDIR: not a directory, mkdir '${join(dataDir, 'net1')}'` });
  });

  it('GC with a malformed attachment list fails with code 6 and releases nothing', async () => {
    const base = net({ subnet: '10.1.0.0/24' }, { cniVersion: '1.1.0' });
    await call({ cmd: 'ADD', id: 'a', config: base });
    const before = storeFiles();
    for (const list of [{ containerID: 'a', ifname: 'eth0' }, [{ containerID: 'a', ifname: 'eth0' }, { containerID: 'b' }]]) {
      const r = await call({ cmd: 'GC', config: { ...base, 'cni.dev/valid-attachments': list } });
      expect(r.rc).toBe(1);
      expect(r.out.code).toBe(6);
    }
    expect(storeFiles()).toEqual(before);
  });

  it('STATUS fails with 50 when a range set is exhausted or the store cannot be written', async () => {
    const config = net({ subnet: '10.98.0.0/30' }, { cniVersion: '1.1.0' });
    expect((await call({ cmd: 'STATUS', config })).rc).toBe(0);
    await call({ cmd: 'ADD', config });
    const r = await call({ cmd: 'STATUS', config });
    expect(r.out).toMatchObject({ code: 50, msg: 'host-local: no IP addresses available in range set: 10.98.0.1-10.98.0.2' });
    writeFileSync(join(root, 'file'), '');
    const bad = await call({ cmd: 'STATUS', config: { ...config, ipam: { subnet: '10.98.0.0/30', dataDir: join(root, 'file', 'sub') } } });
    expect(bad.out.code).toBe(50);
  });
});
