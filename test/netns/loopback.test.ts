// Our loopback plugin (dist/bin/loopback) for real, every spec version: `lo`
// state read back over netlink, result shapes converted per version (unlike
// the reference, which prints 1.0-shaped JSON for old versions, research
// cni.md §2.4, §3.8), CHECK and DEL semantics.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CniBed, OUR_BIN, REF_BIN, SPEC_VERSIONS, cni, cniEnv, podState, type CniOutcome } from '../harness/cni.ts';

const LOOPBACK = join(OUR_BIN, 'loopback');
const bed = new CniBed('lo');
let node: string;
beforeAll(() => {
  if (!existsSync(LOOPBACK)) throw new Error('run `npm run build` first: dist/bin/loopback is needed');
  node = bed.netns('node');
});
afterAll(() => bed.cleanup());

const conf = (version: string, extra: Record<string, unknown> = {}) => ({ cniVersion: version, name: 'lonet', type: 'loopback', ...extra });
function run(cmd: string, pod: string, version: string, opts: { plugin?: string; extra?: Record<string, unknown>; ifName?: string } = {}): Promise<CniOutcome> {
  const bin = opts.plugin ?? OUR_BIN;
  return cni({ node, plugin: join(bin, 'loopback'), env: cniEnv(cmd, 'lo1', pod, opts.ifName ?? 'lo', bin), stdin: conf(version, opts.extra) });
}
async function ok(p: Promise<CniOutcome>): Promise<CniOutcome> {
  const r = await p;
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  return r;
}
async function lo(pod: string) {
  const s = await podState(pod);
  const l = s.links.find((x) => x.name === 'lo')!;
  return { up: l.up, addrs: s.addrs.filter((a) => a.startsWith('lo ')) };
}

describe.each(SPEC_VERSIONS)('spec %s', (version) => {
  test('ADD result shape, lo up; CHECK; DEL brings lo down; repeated DEL', async () => {
    const pod = bed.netns('pod');
    expect((await lo(pod)).up).toBe(false);
    const r = await ok(run('ADD', pod, version, { ifName: 'eth0' })); // CNI_IFNAME is ignored
    if (version < '0.3.0') {
      expect(r.json).toEqual({ cniVersion: version, ip4: { ip: '127.0.0.1/8' }, ip6: { ip: '::1/128' }, dns: {} });
    } else {
      const withVersion = version < '1.0.0';
      const ip = (v: '4' | '6', address: string) => (withVersion ? { version: v, interface: 0, address } : { interface: 0, address });
      const expected: Record<string, unknown> = {
        cniVersion: version,
        interfaces: [{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: pod }],
        ips: [ip('4', '127.0.0.1/8'), ip('6', '::1/128')],
      };
      if (withVersion) expected.dns = {};
      expect(r.json).toEqual(expected);
    }
    expect(await lo(pod)).toEqual({ up: true, addrs: ['lo 127.0.0.1/8', 'lo ::1/128'] });

    if (version >= '0.4.0') {
      await ok(run('CHECK', pod, version));
    } else {
      expect((await run('CHECK', pod, version)).json).toMatchObject({ code: 1, msg: 'config version does not allow CHECK' });
    }
    const d = await ok(run('DEL', pod, version));
    expect(d.stdout).toBe('');
    expect((await lo(pod)).up).toBe(false);
    await ok(run('DEL', pod, version));
    if (version >= '0.4.0') {
      const c = await run('CHECK', pod, version);
      expect(c.code).toBe(1);
      expect(c.json).toMatchObject({ code: 999, msg: 'loopback interface is down' });
    }
  });
});

describe('loopback edge cases', () => {
  test('CHECK before ADD fails with "loopback interface is down"', async () => {
    const pod = bed.netns('pod');
    const r = await run('CHECK', pod, '1.0.0');
    expect(r.code).toBe(1);
    expect(r.json).toEqual({ cniVersion: '1.0.0', code: 999, msg: 'loopback interface is down' });
  });

  test('DEL on a missing netns succeeds', async () => {
    await ok(run('DEL', '/run/netns/kn-lo-does-not-exist', '1.0.0'));
    await ok(run('DEL', '/run/netns/kn-lo-does-not-exist', '0.3.1'));
  });

  test('ADD with prevResult echoes it', async () => {
    const pod = bed.netns('pod');
    const prev = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: pod }], ips: [{ interface: 0, address: '10.1.2.3/24' }] };
    const r = await ok(run('ADD', pod, '1.0.0', { extra: { prevResult: prev } }));
    expect(r.json).toEqual(prev);
    expect((await lo(pod)).up).toBe(true);
  });

  test('1.0.0 result equals the reference’s (modulo the empty dns we omit)', async () => {
    const outs: unknown[] = [];
    for (const bin of [REF_BIN, OUR_BIN]) {
      const pod = bed.netns('pod');
      const r = await ok(run('ADD', pod, '1.0.0', { plugin: bin }));
      const j = r.json;
      j.interfaces[0].sandbox = '<pod>';
      if (j.dns && Object.keys(j.dns).length === 0) delete j.dns;
      outs.push(j);
    }
    expect(outs[1]).toEqual(outs[0]);
  });
});
