import { copyFileSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PluginNotFoundError,
  captureIO,
  delegateAdd,
  delegateCheck,
  delegateDel,
  delegateGc,
  delegateStatus,
  findPlugin,
  isSameExecutable,
  registerInProcess,
} from './invoke.ts';
import { runPlugin } from './index.ts';
import { CniError } from './types.ts';
import type { CmdArgs, PluginFuncs } from './types.ts';

let dir: string;
let bin: string;
let bin2: string;
let rec: string;

const ADD_OUTPUT_040 =
  '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.5/24","gateway":"10.1.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}';

function script(path: string, body: string): void {
  writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'skel-invoke-'));
  bin = join(dir, 'bin');
  bin2 = join(dir, 'bin2');
  rec = join(dir, 'rec');
  for (const d of [bin, bin2, rec]) mkdirSync(d);
  // A foreign IPAM: records what it saw, answers ADD in 0.4.0.
  script(
    join(bin2, 'fake-ipam'),
    [
      'echo "$CNI_COMMAND|$CNI_CONTAINERID|$CNI_IFNAME|$CNI_NETNS|$CNI_PATH|$EXTRA" >> "$REC/calls"',
      'cat > "$REC/stdin.$CNI_COMMAND"',
      `if [ "$CNI_COMMAND" = ADD ]; then printf '%s' '${ADD_OUTPUT_040}'; fi`,
      'exit 0',
    ].join('\n'),
  );
  script(join(bin, 'fail-ipam'), `printf '%s' '{"code":11,"msg":"busy","details":"lock held"}'; exit 1`);
  script(join(bin, 'stderr-ipam'), 'echo "oops" >&2; exit 3');
  script(join(bin, 'silent-ipam'), 'exit 2');
  script(join(bin, 'garbage-ipam'), 'echo notjson; exit 1');
  script(join(bin, 'empty-ipam'), 'exit 0');
  script(join(bin, 'old-ipam'), `printf '%s' '{"ip4":{"ip":"10.1.0.7/24"}}'`);
  // Our plugins are one executable under several names: `ours` and
  // `ours-fail` are symlinks to the executable running this test. A
  // registered type whose binary is another file is spawned (and says so).
  symlinkSync(process.execPath, join(bin, 'ours'));
  symlinkSync(process.execPath, join(bin, 'ours-fail'));
  writeFileSync(join(bin, 'mislabelled'), `#!/bin/sh\nprintf '%s' '{"code":99,"msg":"spawned"}'; exit 1\n`, { mode: 0o755 });
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function cmdArgs(conf: string, extraEnv: Record<string, string> = {}): CmdArgs {
  const env = {
    PATH: process.env.PATH,
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: 'ctr1',
    CNI_IFNAME: 'eth0',
    CNI_NETNS: '/var/run/netns/skel-test-none',
    CNI_PATH: `${bin}:${bin2}`,
    REC: rec,
    ...extraEnv,
  };
  return {
    command: 'ADD',
    containerId: 'ctr1',
    netns: env.CNI_NETNS,
    ifName: 'eth0',
    args: '',
    path: [bin, bin2],
    stdinData: Buffer.from(conf),
    config: JSON.parse(conf) as Record<string, unknown>,
    cniVersion: '1.0.0',
    env,
  };
}

async function caught(p: Promise<unknown>): Promise<{ code: number; msg: string; details: string | undefined }> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(CniError);
    const e = err as CniError;
    return { code: e.cniCode, msg: e.message, details: e.details };
  }
  throw new Error('expected a rejection');
}

const CONF = '{"cniVersion":"1.0.0","name":"net1","type":"bridge","ipam":{"type":"fake-ipam"}}';

describe('findPlugin', () => {
  it('finds the first regular file along the path', () => {
    expect(findPlugin('fake-ipam', [join(dir, 'nope'), bin, bin2])).toBe(join(bin2, 'fake-ipam'));
  });
  it('not found: reference text, typed error', () => {
    let err: unknown;
    try {
      findPlugin('nonexistent', ['/a', '/b']);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PluginNotFoundError);
    expect((err as PluginNotFoundError).message).toBe('failed to find plugin "nonexistent" in path [/a /b]');
    expect((err as PluginNotFoundError).cniCode).toBe(7);
    expect((err as PluginNotFoundError).pluginType).toBe('nonexistent');
  });
  it('rejects unusable names and an empty path', () => {
    expect(() => findPlugin('', [bin])).toThrow('no plugin name provided');
    expect(() => findPlugin('../x', [bin])).toThrow('invalid plugin name: ../x');
    expect(() => findPlugin('x', [])).toThrow('no paths provided');
    // A directory of that name is not a plugin.
    expect(() => findPlugin('bin', [dir])).toThrow(`failed to find plugin "bin" in path [${dir}]`);
  });
});

describe('delegation by spawning', () => {
  it('ADD: same stdin bytes, parent env with CNI_COMMAND replaced, result up-converted', async () => {
    rmSync(join(rec, 'calls'), { force: true });
    const args = cmdArgs(CONF, { CNI_COMMAND: 'CHECK', EXTRA: 'inherited' });
    const stdin = Buffer.from('{"cniVersion":"1.0.0","name":"net1","type":"fake-ipam"}');
    const result = await delegateAdd('fake-ipam', stdin, args);
    expect(result).toEqual({
      ips: [{ address: '10.1.0.5/24', gateway: '10.1.0.1' }],
      routes: [{ dst: '0.0.0.0/0' }],
    });
    expect(readFileSync(join(rec, 'stdin.ADD'))).toEqual(stdin);
    expect(readFileSync(join(rec, 'calls'), 'utf8')).toBe(
      `ADD|ctr1|eth0|/var/run/netns/skel-test-none|${bin}:${bin2}|inherited\n`,
    );
  });

  it('DEL, CHECK, STATUS, GC send their command and print nothing', async () => {
    rmSync(join(rec, 'calls'), { force: true });
    const args = cmdArgs(CONF);
    await delegateDel('fake-ipam', args.stdinData, args);
    await delegateCheck('fake-ipam', args.stdinData, args);
    await delegateStatus('fake-ipam', args.stdinData, args);
    await delegateGc('fake-ipam', args.stdinData, args);
    const commands = readFileSync(join(rec, 'calls'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split('|')[0]);
    expect(commands).toEqual(['DEL', 'CHECK', 'STATUS', 'GC']);
  });

  it('a result without cniVersion is read in the config version', async () => {
    const args = cmdArgs(CONF);
    expect(await delegateAdd('old-ipam', Buffer.from('{"name":"n"}'), args)).toEqual({ ips: [{ address: '10.1.0.7/24' }] });
  });

  const failures: [string, { code: number; msg: string; details: string | undefined }][] = [
    ['fail-ipam', { code: 11, msg: 'busy', details: 'lock held' }],
    ['stderr-ipam', { code: 999, msg: 'netplugin failed: "oops\\n": exit status 3', details: undefined }],
    ['silent-ipam', { code: 999, msg: 'netplugin failed with no error message: exit status 2', details: undefined }],
    [
      'garbage-ipam',
      {
        code: 999,
        msg: `netplugin failed but error parsing its diagnostic message "notjson\\n": Unexpected token 'o', "notjson\n" is not valid JSON`,
        details: undefined,
      },
    ],
    ['empty-ipam', { code: 6, msg: 'failed to unmarshal raw result: unexpected end of JSON input', details: undefined }],
    ['missing-ipam', { code: 7, msg: `failed to find plugin "missing-ipam" in path [${'BIN'} ${'BIN2'}]`, details: undefined }],
  ];
  for (const [type, expected] of failures) {
    it(`ADD failure: ${type}`, async () => {
      const args = cmdArgs(CONF);
      const want = { ...expected, msg: expected.msg.replace('BIN2', bin2).replace('BIN', bin) };
      expect(await caught(delegateAdd(type, args.stdinData, args))).toEqual(want);
    });
  }
});

describe('delegation in-process (same executable + registration)', () => {
  const seen: { command: string; stdin: string; env: Record<string, string | undefined> }[] = [];
  const ours: PluginFuncs = {
    add: async (a) => {
      seen.push({ command: a.command, stdin: a.stdinData.toString(), env: { ...a.env } });
      return {
        interfaces: [{ name: 'eth0', mtu: 1450 }],
        ips: [{ interface: 0, address: '10.1.0.9/24', gateway: '10.1.0.1' }],
      };
    },
    del: async (a) => void seen.push({ command: a.command, stdin: a.stdinData.toString(), env: { ...a.env } }),
    check: async () => undefined,
  };
  const failing: PluginFuncs = {
    add: async () => {
      throw new CniError(11, 'busy', 'lock held');
    },
    del: async () => {
      throw new Error('plain failure');
    },
    check: async () => undefined,
  };

  beforeAll(() => {
    registerInProcess('ours', ours);
    registerInProcess('ours-fail', failing);
    registerInProcess('mislabelled', ours);
    registerInProcess('fake-ipam', ours); // registered, but the binary is foreign
  });

  it('same-executable detection: hard links and symlinks are the same file, a copy is not', () => {
    const f = join(dir, 'exe');
    writeFileSync(f, 'x', { mode: 0o755 });
    linkSync(f, join(dir, 'exe-hard'));
    symlinkSync(f, join(dir, 'exe-sym'));
    copyFileSync(f, join(dir, 'exe-copy'));
    expect(isSameExecutable(join(dir, 'exe-hard'), f)).toBe(true);
    expect(isSameExecutable(join(dir, 'exe-sym'), join(dir, 'exe-hard'))).toBe(true);
    expect(isSameExecutable(join(dir, 'exe-copy'), f)).toBe(false);
    expect(isSameExecutable(join(dir, 'nope'), f)).toBe(false);
    expect(isSameExecutable(f, join(dir, 'nope'))).toBe(false);
    // By default against this process's executable.
    expect(isSameExecutable(join(bin, 'ours'))).toBe(true);
    expect(isSameExecutable(join(bin, 'mislabelled'))).toBe(false);
  });

  it('ADD runs in-process with the injected env and stdin; result goes through the config version', async () => {
    seen.length = 0;
    const args = cmdArgs(CONF, { CNI_COMMAND: 'DEL' });
    const stdin = Buffer.from('{"cniVersion":"0.4.0","name":"net1","type":"ours"}');
    const result = await delegateAdd('ours', stdin, args);
    // Printed as 0.4.0 and parsed back, exactly as a spawned plugin's output: mtu is not in 0.4.0.
    expect(result).toEqual({ interfaces: [{ name: 'eth0' }], ips: [{ interface: 0, address: '10.1.0.9/24', gateway: '10.1.0.1' }] });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.command).toBe('ADD');
    expect(seen[0]!.stdin).toBe(stdin.toString());
    expect(seen[0]!.env).toEqual({ ...args.env, CNI_COMMAND: 'ADD' });
  });

  it('DEL runs in-process', async () => {
    seen.length = 0;
    const args = cmdArgs(CONF);
    await delegateDel('ours', args.stdinData, args);
    expect(seen.map((s) => s.command)).toEqual(['DEL']);
  });

  it('errors are the same as from a spawned plugin printing the same error', async () => {
    const args = cmdArgs(CONF);
    const inProc = await caught(delegateAdd('ours-fail', args.stdinData, args));
    const spawned = await caught(delegateAdd('fail-ipam', args.stdinData, args));
    expect(inProc).toEqual(spawned);
    expect(await caught(delegateDel('ours-fail', args.stdinData, args))).toEqual({
      code: 999,
      msg: 'plain failure',
      details: undefined,
    });
  });

  it('the in-process run gets the same skeleton validation (e.g. bad stdin)', async () => {
    const args = cmdArgs(CONF);
    expect(await caught(delegateAdd('ours', Buffer.from('{"cniVersion":"1.0.0"}'), args))).toEqual({
      code: 7,
      msg: 'missing network name',
      details: undefined,
    });
  });

  it('a registered type whose binary is another file is spawned', async () => {
    const args = cmdArgs(CONF);
    expect(await caught(delegateAdd('mislabelled', args.stdinData, args))).toEqual({ code: 99, msg: 'spawned', details: undefined });
    rmSync(join(rec, 'calls'), { force: true });
    await delegateDel('fake-ipam', args.stdinData, args);
    expect(readFileSync(join(rec, 'calls'), 'utf8')).toMatch(/^DEL\|/);
  });
});

describe('captureIO', () => {
  it('collects output of a plugin run', async () => {
    const io = captureIO({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
    expect(await runPlugin({ add: async () => ({}), del: async () => undefined, check: async () => undefined }, '', io)).toBe(0);
    expect(JSON.parse(io.out())).toMatchObject({ cniVersion: '1.0.0' });
    expect(io.err()).toBe('');
  });
});
