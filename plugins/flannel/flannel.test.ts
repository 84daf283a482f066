// The plugin end to end without root: runPlugin with injected IO, delegating
// to a fake "bridge" executable in a temporary CNI_PATH (spawn path).
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPlugin } from '../skel/index.ts';
import { captureIO } from '../skel/invoke.ts';
import { createFlannelFuncs } from './flannel.ts';

const ENV_V4 = 'FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n';

// A delegate that records each call (command, ifname, stdin) and answers ADD with one address.
const FAKE = `#!/usr/bin/env node
const fs = require('node:fs');
const stdin = fs.readFileSync(0, 'utf8');
const cmd = process.env.CNI_COMMAND;
fs.appendFileSync(process.env.FAKE_LOG, JSON.stringify({ type: process.env.FAKE_TYPE || 'bridge', cmd, id: process.env.CNI_CONTAINERID, ifname: process.env.CNI_IFNAME, stdin }) + '\\n');
const fail = (process.env.FAKE_FAIL || '').split(',');
if (fail.includes(cmd)) {
  process.stdout.write(JSON.stringify({ code: 7, msg: 'fake ' + cmd + ' failed', details: 'because' }));
  process.exit(1);
}
if (cmd === 'ADD') {
  const conf = JSON.parse(stdin);
  process.stdout.write(JSON.stringify({ cniVersion: conf.cniVersion || '0.1.0', interfaces: [{ name: 'cni0', mac: '0a:58:0a:01:11:01' }, { name: process.env.CNI_IFNAME, sandbox: process.env.CNI_NETNS }], ips: [{ interface: 1, address: '10.1.17.2/24', gateway: '10.1.17.1' }], routes: [{ dst: '10.1.0.0/16', gw: '10.1.17.1' }], dns: {} }));
}
`;

interface Call {
  type: string;
  cmd: string;
  id: string;
  ifname: string;
  stdin: string;
}

describe('flannel plugin with a fake delegate', () => {
  let dir: string;
  let binDir: string;
  let dataDir: string;
  let subnetFile: string;
  let logFile: string;
  let stderrText: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'flannel-cni-'));
    binDir = join(dir, 'bin');
    dataDir = join(dir, 'data');
    subnetFile = join(dir, 'subnet.env');
    logFile = join(dir, 'calls.log');
    mkdirSync(binDir);
    for (const t of ['bridge', 'ipvlan']) {
      writeFileSync(join(binDir, t), FAKE.replace("process.env.FAKE_TYPE || 'bridge'", `'${t}'`));
      chmodSync(join(binDir, t), 0o755);
    }
    writeFileSync(subnetFile, ENV_V4);
    stderrText = '';
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const calls = (): Call[] =>
    existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Call) : [];

  function conf(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { cniVersion: '1.0.0', name: 'cbr0', type: 'flannel', subnetFile, dataDir, delegate: { hairpinMode: true, isDefaultGateway: true }, ...extra };
  }

  async function run(
    command: string,
    config: Record<string, unknown>,
    opts: { id?: string; ifname?: string; env?: Record<string, string> } = {},
  ): Promise<{ code: number; out: string; json: Record<string, unknown> | undefined }> {
    const io = captureIO(
      {
        PATH: process.env.PATH,
        CNI_COMMAND: command,
        CNI_CONTAINERID: opts.id ?? 'ctr1',
        CNI_NETNS: '/var/run/netns/flannel-unit-test-does-not-exist',
        CNI_IFNAME: opts.ifname ?? 'eth0',
        CNI_PATH: binDir,
        FAKE_LOG: logFile,
        ...opts.env,
      },
      JSON.stringify(config),
    );
    const funcs = createFlannelFuncs({ stderr: { write: (s: string) => (stderrText += s) } });
    const code = await runPlugin(funcs, 'CNI flannel plugin', io);
    const out = io.out();
    return { code, out, json: out === '' ? undefined : (JSON.parse(out) as Record<string, unknown>) };
  }

  test('ADD saves the rendered delegate (0600) before delegating, passes it byte for byte, prints the result in the config version', async () => {
    const r = await run('ADD', conf({ cniVersion: '0.3.1' }));
    expect(r.code).toBe(0);
    const expected =
      '{"cniVersion":"0.3.1","hairpinMode":true,"ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.1.17.0/24"}]],"routes":[{"dst":"10.1.0.0/16"}],"type":"host-local"},"isDefaultGateway":true,"isGateway":true,"mtu":1472,"name":"cbr0","type":"bridge"}';
    const file = join(dataDir, 'ctr1');
    expect(readFileSync(file, 'utf8')).toBe(expected);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    const c = calls();
    expect(c).toHaveLength(1);
    expect(c[0]).toMatchObject({ cmd: 'ADD', id: 'ctr1', ifname: 'eth0', stdin: expected });
    // converted to the 0.3.1 shape (ips[].version), not passed through
    expect(r.json).toMatchObject({ cniVersion: '0.3.1', ips: [{ version: '4', interface: 1, address: '10.1.17.2/24', gateway: '10.1.17.1' }] });
    expect(stderrText).toContain('delegateAdd: netconf sent to delegate plugin:');
    // no temp files left behind
    expect(readdirSync(dataDir)).toEqual(['ctr1']);
  });

  test('DEL sends the saved bytes (not the DEL config) and removes the file; a second DEL succeeds without calling the delegate', async () => {
    await run('ADD', conf());
    const saved = readFileSync(join(dataDir, 'ctr1'), 'utf8');
    // config changed between ADD and DEL: the saved delegate still drives DEL
    writeFileSync(subnetFile, ENV_V4.replace('10.1.17.1/24', '10.1.99.1/24'));
    expect((await run('DEL', conf({ delegate: { type: 'ipvlan' } }))).code).toBe(0);
    const del = calls().filter((c) => c.cmd === 'DEL');
    expect(del).toEqual([{ type: 'bridge', cmd: 'DEL', id: 'ctr1', ifname: 'eth0', stdin: saved }]);
    expect(existsSync(join(dataDir, 'ctr1'))).toBe(false);
    expect((await run('DEL', conf())).code).toBe(0);
    expect(calls().filter((c) => c.cmd === 'DEL')).toHaveLength(1);
  });

  test('DEL works without subnet.env (flanneld gone) and without a netns', async () => {
    await run('ADD', conf());
    rmSync(subnetFile);
    const r = await run('DEL', conf(), { env: { CNI_NETNS: '' } });
    expect(r.code).toBe(0);
    expect(calls().map((c) => c.cmd)).toEqual(['ADD', 'DEL']);
  });

  test('two attachments of one container keep separate files', async () => {
    await run('ADD', conf(), { ifname: 'eth0' });
    await run('ADD', conf({ delegate: { type: 'ipvlan', master: 'eth0' } }), { ifname: 'net1' });
    expect(readdirSync(dataDir).sort()).toEqual(['ctr1', 'ctr1@net1']);
    await run('DEL', conf(), { ifname: 'net1' });
    const del = calls().filter((c) => c.cmd === 'DEL');
    expect(del.map((c) => [c.type, c.ifname])).toEqual([['ipvlan', 'net1']]);
    expect(readdirSync(dataDir)).toEqual(['ctr1']);
  });

  test("DEL falls back to upstream's <containerID> file", async () => {
    mkdirSync(dataDir);
    const legacy = '{"ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.1.17.0/24"}]],"routes":[{"dst":"10.1.0.0/16"}],"type":"host-local"},"isGateway":true,"mtu":1472,"name":"cbr0","type":"bridge"}';
    writeFileSync(join(dataDir, 'ctr1'), legacy);
    expect((await run('DEL', conf())).code).toBe(0);
    expect(calls()).toEqual([{ type: 'bridge', cmd: 'DEL', id: 'ctr1', ifname: 'eth0', stdin: legacy }]);
    expect(existsSync(join(dataDir, 'ctr1'))).toBe(false);
  });

  test("DEL reads and removes the previous version's <containerID>@eth0 file", async () => {
    mkdirSync(dataDir);
    const old = '{"ipMasq":false,"ipam":{"type":"host-local"},"name":"cbr0","type":"bridge"}';
    writeFileSync(join(dataDir, 'ctr1@eth0'), old);
    expect((await run('CHECK', conf())).json).toMatchObject({ msg: expect.stringContaining('node subnet changed') });
    expect((await run('DEL', conf())).code).toBe(0);
    expect(calls()).toEqual([{ type: 'bridge', cmd: 'DEL', id: 'ctr1', ifname: 'eth0', stdin: old }]);
    expect(readdirSync(dataDir)).toEqual([]);
  });

  test('eth0 saved by this and by the previous version: one DEL per distinct config, both files removed', async () => {
    await run('ADD', conf());
    const now = readFileSync(join(dataDir, 'ctr1'), 'utf8');
    writeFileSync(join(dataDir, 'ctr1@eth0'), now);
    expect((await run('DEL', conf())).code).toBe(0);
    expect(calls().filter((c) => c.cmd === 'DEL').map((c) => c.stdin)).toEqual([now]);
    expect(readdirSync(dataDir)).toEqual([]);

    await run('ADD', conf());
    const other = now.replace('"mtu":1472', '"mtu":1400');
    writeFileSync(join(dataDir, 'ctr1@eth0'), other);
    expect((await run('DEL', conf())).code).toBe(0);
    expect(calls().filter((c) => c.cmd === 'DEL').map((c) => c.stdin)).toEqual([now, now, other]);
    expect(readdirSync(dataDir)).toEqual([]);
  });

  test("a repeated DEL of another interface never consumes eth0's <containerID> file", async () => {
    await run('ADD', conf(), { ifname: 'eth0' });
    await run('ADD', conf(), { ifname: 'net1' });
    expect((await run('DEL', conf(), { ifname: 'net1' })).code).toBe(0);
    expect((await run('DEL', conf(), { ifname: 'net1' })).code).toBe(0);
    expect(calls().filter((c) => c.cmd === 'DEL').map((c) => c.ifname)).toEqual(['net1']);
    expect(readdirSync(dataDir)).toEqual(['ctr1']);
  });

  test('one store, both directions: our ADD then upstream DEL, upstream ADD then our DEL', async () => {
    const sent = (id: string, cmd: string): string[] => calls().filter((c) => c.id === id && c.cmd === cmd).map((c) => c.stdin);
    // Ours → upstream (rollback): upstream's doCmdDel reads exactly filepath.Join(dataDir, containerID).
    await run('ADD', conf({ cniVersion: '0.3.1' }), { id: 'ours' });
    await run('ADD', conf({ cniVersion: '0.3.1' }), { id: 'ours', ifname: 'net1' });
    upstreamDel('ours');
    expect(sent('ours', 'DEL')).toEqual(sent('ours', 'ADD').slice(0, 1));
    expect(existsSync(join(dataDir, 'ours'))).toBe(false);
    // Upstream never sees net1 (it cannot key a second interface); our DEL still finds it.
    expect(readdirSync(dataDir)).toEqual(['ours@net1']);
    expect((await run('DEL', conf(), { id: 'ours', ifname: 'net1' })).code).toBe(0);

    // Upstream → ours (upgrade): upstream's saveScratchNetConf writes json.Marshal(delegate) (sorted keys) at <containerID>.
    const upstream =
      '{"cniVersion":"0.3.1","hairpinMode":true,"ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.1.17.0/24"}]],"routes":[{"dst":"10.1.0.0/16"}],"type":"host-local"},"isDefaultGateway":true,"isGateway":true,"mtu":1472,"name":"cbr0","type":"bridge"}';
    writeFileSync(join(dataDir, 'theirs'), upstream, { mode: 0o600 });
    expect((await run('DEL', conf(), { id: 'theirs' })).code).toBe(0);
    expect(sent('theirs', 'DEL')).toEqual([upstream]);
    // What our ADD saves for the same config is byte for byte what upstream saved.
    expect(sent('ours', 'ADD')[0]).toBe(upstream);
    expect(readdirSync(dataDir)).toEqual([]);
  });

  /**
   * flannel-io/cni-plugin doCmdDel, step by step: consumeScratchNetConf reads
   * filepath.Join(dataDir, containerID) (missing: return nil, the silent leak);
   * json.Unmarshal into types.NetConf (failure: log, return nil, file kept);
   * invoke.DelegateDel(nc.Type, bytes, nil) with the runtime's CNI_* environment;
   * on success os.Remove(path).
   */
  function upstreamDel(id: string, ifname = 'eth0'): void {
    const path = join(dataDir, id);
    expect(existsSync(path)).toBe(true);
    const bytes = readFileSync(path);
    const nc = JSON.parse(bytes.toString('utf8')) as { type?: unknown };
    expect(typeof nc.type).toBe('string');
    const r = spawnSync(join(binDir, String(nc.type)), [], {
      input: bytes,
      env: { PATH: process.env.PATH, CNI_COMMAND: 'DEL', CNI_CONTAINERID: id, CNI_NETNS: '', CNI_IFNAME: ifname, CNI_PATH: binDir, FAKE_LOG: logFile },
    });
    expect(r.status).toBe(0);
    rmSync(path);
  }

  test('a corrupt or empty saved file does not fail DEL, is reported on stderr and removed', async () => {
    mkdirSync(dataDir);
    writeFileSync(join(dataDir, 'ctr1'), '');
    writeFileSync(join(dataDir, 'ctr2@eth0'), '{"type": ');
    expect((await run('DEL', conf())).code).toBe(0);
    expect((await run('DEL', conf(), { id: 'ctr2' })).code).toBe(0);
    expect(calls()).toEqual([]);
    expect(stderrText).toContain(`${join(dataDir, 'ctr1')} (0 bytes)`);
    expect(stderrText).toContain(`${join(dataDir, 'ctr2@eth0')} (9 bytes)`);
    expect(readdirSync(dataDir)).toEqual([]);
  });

  test('a failing delegate DEL keeps the file (the runtime retries) and reports the delegate error', async () => {
    await run('ADD', conf());
    const r = await run('DEL', conf(), { env: { FAKE_FAIL: 'DEL' } });
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ code: 7, msg: 'fake DEL failed', details: 'because' });
    expect(existsSync(join(dataDir, 'ctr1'))).toBe(true);
  });

  test('a failing delegate ADD is undone with a delegate DEL and leaves no file', async () => {
    const r = await run('ADD', conf(), { env: { FAKE_FAIL: 'ADD' } });
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ code: 7, msg: 'failed to delegate add: fake ADD failed' });
    expect(calls().map((c) => c.cmd)).toEqual(['ADD', 'DEL']);
    expect(readdirSync(dataDir)).toEqual([]);
  });

  test('when the cleanup DEL fails too, the file stays for the runtime DEL', async () => {
    const r = await run('ADD', conf(), { env: { FAKE_FAIL: 'ADD,DEL' } });
    expect(r.code).toBe(1);
    expect(readdirSync(dataDir)).toEqual(['ctr1']);
  });

  test('missing subnet.env: code 11, the clear upstream message, nothing saved, no delegate call', async () => {
    rmSync(subnetFile);
    const r = await run('ADD', conf());
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({
      code: 11,
      msg: `failed to load flannel 'subnet.env' file: open ${subnetFile}: no such file or directory. Check the flannel pod log for this node.`,
    });
    expect(String(r.json?.details)).toContain('flanneld has not written');
    expect(existsSync(dataDir)).toBe(false);
    expect(calls()).toEqual([]);
  });

  test('incomplete subnet.env and bad delegate configs fail ADD before anything is saved', async () => {
    writeFileSync(subnetFile, 'FLANNEL_NETWORK=10.1.0.0/16\n');
    const r = await run('ADD', conf());
    expect(r.json).toMatchObject({
      code: 999,
      msg: `failed to load flannel 'subnet.env' file: ${subnetFile} is missing FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ. Check the flannel pod log for this node.`,
    });
    writeFileSync(subnetFile, ENV_V4);
    const r2 = await run('ADD', conf({ delegate: { name: 'x' } }));
    expect(r2.json).toMatchObject({ code: 7, msg: "'delegate' dictionary must not have 'name' field, it'll be set by flannel" });
    expect(existsSync(dataDir)).toBe(false);
    expect(calls()).toEqual([]);
  });

  test('CHECK asks the delegate with the saved config plus the runtime prevResult', async () => {
    const add = await run('ADD', conf());
    const r = await run('CHECK', conf({ prevResult: add.json }));
    expect(r.code).toBe(0);
    const check = calls().find((c) => c.cmd === 'CHECK');
    const sent = JSON.parse(check!.stdin) as Record<string, unknown>;
    expect(sent).toMatchObject({ name: 'cbr0', type: 'bridge', hairpinMode: true, cniVersion: '1.0.0' });
    expect(sent.prevResult).toMatchObject({ ips: [{ address: '10.1.17.2/24' }] });
    // delegate failure is CHECK failure
    expect((await run('CHECK', conf({ prevResult: add.json }), { env: { FAKE_FAIL: 'CHECK' } })).json).toMatchObject({ code: 7 });
  });

  test('CHECK fails for an unknown attachment and after the node subnet changed', async () => {
    expect((await run('CHECK', conf())).code).toBe(1);
    await run('ADD', conf());
    writeFileSync(subnetFile, ENV_V4.replace('10.1.17.1/24', '10.1.99.1/24'));
    const r = await run('CHECK', conf());
    expect(r.code).toBe(1);
    expect(String(r.json?.msg)).toContain('node subnet changed since ADD');
    expect(calls().filter((c) => c.cmd === 'CHECK')).toEqual([]);
  });

  test('STATUS: code 50 without subnet.env, else forwarded to the delegate', async () => {
    const c11 = conf({ cniVersion: '1.1.0' });
    rmSync(subnetFile);
    const r = await run('STATUS', c11);
    expect(r.json).toMatchObject({ code: 50 });
    expect(String(r.json?.msg)).toContain(`open ${subnetFile}: no such file or directory`);
    writeFileSync(subnetFile, ENV_V4);
    expect((await run('STATUS', c11)).code).toBe(0);
    const st = calls().filter((c) => c.cmd === 'STATUS');
    expect(st).toHaveLength(1);
    expect(JSON.parse(st[0]!.stdin)).toMatchObject({ cniVersion: '1.1.0', type: 'bridge', ipam: { ranges: [[{ subnet: '10.1.17.0/24' }]] } });
    expect((await run('STATUS', c11, { env: { FAKE_FAIL: 'STATUS' } })).json).toMatchObject({ code: 7, msg: 'fake STATUS failed' });
  });

  test('GC forwards to each distinct delegate and removes saved files of attachments not in the valid list', async () => {
    await run('ADD', conf(), { id: 'keep', ifname: 'eth0' });
    await run('ADD', conf(), { id: 'gone', ifname: 'eth0' });
    await run('ADD', conf({ delegate: { type: 'ipvlan', master: 'eth0' } }), { id: 'keep', ifname: 'net1' });
    // Previous version's names for eth0.
    writeFileSync(join(dataDir, 'oldkeep@eth0'), readFileSync(join(dataDir, 'keep')));
    writeFileSync(join(dataDir, 'oldgone@eth0'), readFileSync(join(dataDir, 'keep')));
    writeFileSync(join(dataDir, '.gone@eth1.abcdef.tmp'), '{');
    const valid = [
      { containerID: 'keep', ifname: 'eth0' },
      { containerID: 'keep', ifname: 'net1' },
      { containerID: 'oldkeep', ifname: 'eth0' },
    ];
    const r = await run('GC', conf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': valid, 'cni.dev/attachments': valid }), {
      env: { CNI_CONTAINERID: '', CNI_IFNAME: '', CNI_NETNS: '' },
    });
    expect(r.code).toBe(0);
    expect(r.out).toBe('');
    const gc = calls().filter((c) => c.cmd === 'GC');
    expect(gc.map((c) => c.type).sort()).toEqual(['bridge', 'ipvlan']);
    for (const c of gc) expect(JSON.parse(c.stdin)).toMatchObject({ cniVersion: '1.1.0', name: 'cbr0', 'cni.dev/valid-attachments': valid });
    expect(readdirSync(dataDir).sort()).toEqual(['keep', 'keep@net1', 'oldkeep@eth0']);
  });

  test('GC: failures of several delegates are one error with the first one\'s code and no details', async () => {
    await run('ADD', conf(), { id: 'a', ifname: 'eth0' });
    await run('ADD', conf({ delegate: { type: 'ipvlan', master: 'eth0' } }), { id: 'b', ifname: 'eth0' });
    const r = await run('GC', conf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [] }), {
      env: { CNI_CONTAINERID: '', CNI_IFNAME: '', CNI_NETNS: '', FAKE_FAIL: 'GC' },
    });
    expect(r.code).toBe(1);
    expect(r.json).toEqual({
      cniVersion: '1.1.0',
      code: 7,
      msg: 'failed to delegate GC to bridge: fake GC failed; failed to delegate GC to ipvlan: fake GC failed',
    });
  });

  test('GC with a malformed attachment list fails with code 6 and removes nothing', async () => {
    await run('ADD', conf(), { id: 'a', ifname: 'eth0' });
    const r = await run('GC', conf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'a' }] }), {
      env: { CNI_CONTAINERID: '', CNI_IFNAME: '', CNI_NETNS: '' },
    });
    expect(r.json).toMatchObject({ code: 6, msg: 'cni.dev/valid-attachments[0]: expected {"containerID": string, "ifname": string}' });
    expect(readdirSync(dataDir)).toEqual(['a']);
    expect(calls().filter((c) => c.cmd === 'GC')).toEqual([]);
  });
});
