// The skeleton as a real executable: a fixture plugin bundled with esbuild for
// Node, run as a child process (real fd 0/1/2, exit code), and compared with the same plugin delegated in-process.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { delegateAdd, registerInProcess } from './invoke.ts';
import { CniError } from './types.ts';
import type { CmdArgs } from './types.ts';
import { fakeIpam } from './testdata/fake-ipam.ts';

let dir: string;
let marked: string; // fake-ipam is this process's own executable: delegation runs it in-process
let plain: string; // fake-ipam is the bundle: delegation spawns it
let inProcessAdds = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'skel-process-'));
  marked = join(dir, 'marked');
  plain = join(dir, 'plain');
  mkdirSync(marked);
  mkdirSync(plain);
  // Outside any package scope, the bundle is CommonJS, as in /opt/cni/bin.
  const entry = fileURLToPath(new URL('./testdata/fake-ipam-main.ts', import.meta.url));
  const out = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    logLevel: 'silent',
  });
  const code = out.outputFiles[0]!.text;
  // As the multi-call executable under another name: a link to the running executable.
  symlinkSync(process.execPath, join(marked, 'fake-ipam'));
  writeFileSync(join(plain, 'fake-ipam'), `#!/usr/bin/env node\n${code}`, { mode: 0o755 });
  registerInProcess('fake-ipam', {
    ...fakeIpam,
    add: (a) => {
      inProcessAdds++;
      return fakeIpam.add(a);
    },
  });
}, 60_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const CONF = '{"cniVersion":"0.3.1","name":"net1","type":"fake-ipam"}';
const ENV = {
  PATH: process.env.PATH,
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'ctr1',
  CNI_NETNS: '/var/run/netns/skel-test-none',
  CNI_IFNAME: 'eth0',
};

function exec(env: Record<string, string | undefined>, stdin: string) {
  const r = spawnSync(join(plain, 'fake-ipam'), [], { env, input: stdin, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('a bundled plugin process', () => {
  it('ADD: result on stdout in the config version, exit 0', () => {
    const r = exec({ ...ENV, CNI_PATH: plain }, CONF);
    expect(r).toEqual({
      status: 0,
      stderr: '',
      stdout: JSON.stringify(
        {
          cniVersion: '0.3.1',
          ips: [
            { version: '4', address: '10.1.0.9/24', gateway: '10.1.0.1' },
            { version: '6', address: '2001:db8::9/64' },
          ],
          routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1400 }],
          dns: { nameservers: ['10.1.0.10'] },
        },
        null,
        4,
      ),
    });
  });

  it('error: JSON on stdout, exit 1', () => {
    const r = exec({ ...ENV, CNI_PATH: plain, CNI_CONTAINERID: 'fail' }, CONF);
    expect(r).toEqual({
      status: 1,
      stderr: '',
      stdout: JSON.stringify({ cniVersion: '0.3.1', code: 11, msg: 'pool busy', details: 'container fail' }, null, 4),
    });
  });

  it('VERSION and no command', () => {
    const v = exec({ PATH: process.env.PATH, CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}');
    expect(v.status).toBe(0);
    expect(v.stdout).toBe(
      '{"cniVersion":"0.4.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}\n',
    );
    const about = exec({ PATH: process.env.PATH }, '');
    expect(about).toEqual({
      status: 0,
      stdout: '',
      stderr: 'fake ipam for tests\nCNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n',
    });
  });

  it('large stdin is read completely', () => {
    const big = JSON.stringify({ cniVersion: '1.0.0', name: 'net1', type: 'fake-ipam', pad: 'x'.repeat(300_000) });
    const r = exec({ ...ENV, CNI_PATH: plain }, big);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ cniVersion: '1.0.0' });
  });
});

describe('spawned and in-process delegation give the same answer', () => {
  function args(path: string, containerId: string): CmdArgs {
    const env = { ...ENV, CNI_CONTAINERID: containerId, CNI_PATH: path };
    return {
      command: 'ADD',
      containerId,
      netns: ENV.CNI_NETNS,
      ifName: 'eth0',
      args: '',
      path: [path],
      stdinData: Buffer.from(CONF),
      config: JSON.parse(CONF) as Record<string, unknown>,
      cniVersion: '0.3.1',
      env,
    };
  }
  async function outcome(path: string, containerId: string): Promise<unknown> {
    const a = args(path, containerId);
    try {
      return { result: await delegateAdd('fake-ipam', a.stdinData, a) };
    } catch (err) {
      expect(err).toBeInstanceOf(CniError);
      const e = err as CniError;
      return { error: { code: e.cniCode, msg: e.message, details: e.details } };
    }
  }

  for (const id of ['ctr1', 'fail', 'crash']) {
    it(`containerId ${id}`, async () => {
      const before = inProcessAdds;
      const spawned = await outcome(plain, id);
      expect(inProcessAdds).toBe(before);
      const inProcess = await outcome(marked, id);
      expect(inProcessAdds).toBe(before + 1);
      expect(inProcess).toEqual(spawned);
    });
  }

  it('the outcomes are what the plugin produced', async () => {
    expect(await outcome(plain, 'crash')).toEqual({ error: { code: 999, msg: 'unexpected <crash>', details: undefined } });
    expect(await outcome(marked, 'ctr1')).toEqual({
      result: {
        ips: [{ address: '10.1.0.9/24', gateway: '10.1.0.1' }, { address: '2001:db8::9/64' }],
        routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1400 }],
        dns: { nameservers: ['10.1.0.10'] },
      },
    });
  });
});
