import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CniError, CniRuntime, parseConfList, pluginConfig, versionAtLeast } from './cni.ts';
import type { PluginExecutor, PluginOutcome, PluginRun } from './cni.ts';

/** A fake plugin boundary: records every call; each plugin answers from a script. */
class FakeExec implements PluginExecutor {
  readonly calls: { type: string; env: Record<string, string>; conf: Record<string, unknown> }[] = [];
  constructor(
    private readonly answer: (type: string, cmd: string, conf: Record<string, unknown>) => PluginOutcome,
    private readonly installed = new Set(['a', 'b', 'c']),
  ) {}
  async find(type: string, paths: readonly string[]): Promise<string | undefined> {
    return this.installed.has(type) ? join(paths[0]!, type) : undefined;
  }
  async run(call: PluginRun): Promise<PluginOutcome> {
    const type = call.path.slice(call.path.lastIndexOf('/') + 1);
    const conf = JSON.parse(call.stdin) as Record<string, unknown>;
    this.calls.push({ type, env: { ...call.env }, conf });
    return this.answer(type, call.env['CNI_COMMAND']!, conf);
  }
}

const ok = (result: unknown = undefined): PluginOutcome => ({ code: 0, stdout: result === undefined ? '' : JSON.stringify(result), stderr: '' });
const list = parseConfList(JSON.stringify({ cniVersion: '1.0.0', name: 'net1', plugins: [{ type: 'a', x: 1 }, { type: 'b' }, { type: 'c' }] }));
const rt = { containerId: 'cid1', netns: '/var/run/netns/p1', ifName: 'eth0', args: [['K8S_POD_NAME', 'web'] as const] };

/** Each plugin adds its name to the result's `chain` and keeps the rest of prevResult. */
function chaining(type: string, cmd: string, conf: Record<string, unknown>): PluginOutcome {
  if (cmd !== 'ADD') return ok();
  const prev = (conf['prevResult'] as { chain?: string[]; ips?: unknown[] } | undefined) ?? {};
  return ok({ cniVersion: '1.0.0', ips: prev.ips ?? [{ address: '10.0.0.2/24' }], chain: [...(prev.chain ?? []), type] });
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'netstack-cni-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('CniRuntime', () => {
  it('ADD runs the plugins in order, each with the previous result, and caches the last', async () => {
    const ex = new FakeExec(chaining);
    const cni = new CniRuntime(['/opt/cni/bin'], dir, ex);
    const res = (await cni.add(list, rt)) as { chain: string[] };
    expect(ex.calls.map((c) => c.type)).toEqual(['a', 'b', 'c']);
    expect(ex.calls[0]!.conf['prevResult']).toBeUndefined();
    expect(ex.calls[1]!.conf['prevResult']).toEqual({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }], chain: ['a'] });
    expect(ex.calls[2]!.conf['prevResult']).toMatchObject({ chain: ['a', 'b'] });
    expect(res.chain).toEqual(['a', 'b', 'c']);
    // Each plugin gets its own object plus the list's name and version.
    expect(ex.calls[0]!.conf).toMatchObject({ type: 'a', x: 1, name: 'net1', cniVersion: '1.0.0' });
    expect(ex.calls[0]!.env).toMatchObject({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'cid1', CNI_NETNS: '/var/run/netns/p1', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', CNI_ARGS: 'K8S_POD_NAME=web' });
    const cached = JSON.parse(readFileSync(join(dir, 'results', 'net1-cid1-eth0'), 'utf8')) as { kind: string; result: unknown; networkName: string };
    expect(cached.kind).toBe('cniCacheV1');
    expect(cached.networkName).toBe('net1');
    expect(cached.result).toEqual(res);
  });

  it('CHECK passes the cached result to every plugin in order', async () => {
    const ex = new FakeExec(chaining);
    const cni = new CniRuntime(['/bin'], dir, ex);
    const res = await cni.add(list, rt);
    ex.calls.length = 0;
    await cni.check(list, rt);
    expect(ex.calls.map((c) => [c.type, c.env['CNI_COMMAND']])).toEqual([['a', 'CHECK'], ['b', 'CHECK'], ['c', 'CHECK']]);
    for (const c of ex.calls) expect(c.conf['prevResult']).toEqual(res);
  });

  it('CHECK without a cached result is an error, and lists older than 0.4.0 have no CHECK', async () => {
    const cni = new CniRuntime(['/bin'], dir, new FakeExec(chaining));
    await expect(cni.check(list, rt)).rejects.toMatchObject({ code: 'CNI_NO_CACHED_RESULT' });
    const old = parseConfList(JSON.stringify({ cniVersion: '0.3.1', name: 'old', plugins: [{ type: 'a' }] }));
    await expect(cni.check(old, rt)).rejects.toMatchObject({ code: 'INCOMPATIBLE_VERSION' });
  });

  it('DEL runs in reverse order with the cached result and removes the cache entry', async () => {
    const ex = new FakeExec(chaining);
    const cni = new CniRuntime(['/bin'], dir, ex);
    const res = await cni.add(list, rt);
    ex.calls.length = 0;
    await cni.del(list, rt);
    expect(ex.calls.map((c) => [c.type, c.env['CNI_COMMAND']])).toEqual([['c', 'DEL'], ['b', 'DEL'], ['a', 'DEL']]);
    for (const c of ex.calls) expect(c.conf['prevResult']).toEqual(res);
    expect(existsSync(join(dir, 'results', 'net1-cid1-eth0'))).toBe(false);
    // Idempotent: a second DEL (no cache) still asks every plugin, without prevResult.
    ex.calls.length = 0;
    await cni.del(list, rt);
    expect(ex.calls.map((c) => c.type)).toEqual(['c', 'b', 'a']);
    for (const c of ex.calls) expect(c.conf['prevResult']).toBeUndefined();
  });

  it('DEL asks every plugin even when one fails, then reports the failure and keeps the cache', async () => {
    const ex = new FakeExec((type, cmd, conf) => (cmd === 'DEL' && type === 'b' ? { code: 1, stdout: JSON.stringify({ cniVersion: '1.0.0', code: 11, msg: 'busy' }), stderr: '' } : chaining(type, cmd, conf)));
    const cni = new CniRuntime(['/bin'], dir, ex);
    await cni.add(list, rt);
    ex.calls.length = 0;
    const err = await cni.del(list, rt).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).cniCode).toBe(11);
    expect((err as CniError).plugin).toBe('b');
    expect(ex.calls.map((c) => c.type)).toEqual(['c', 'b', 'a']);
    expect(existsSync(join(dir, 'results', 'net1-cid1-eth0'))).toBe(true);
  });

  it('a failing ADD stops the chain with the plugin\'s error and caches nothing', async () => {
    const ex = new FakeExec((type, cmd, conf) =>
      type === 'b' ? { code: 1, stdout: JSON.stringify({ cniVersion: '1.0.0', code: 7, msg: 'invalid config', details: 'no bridge' }), stderr: '' } : chaining(type, cmd, conf),
    );
    const cni = new CniRuntime(['/bin'], dir, ex);
    const err = (await cni.add(list, rt).catch((e: unknown) => e)) as CniError;
    expect(err.code).toBe('CNI_PLUGIN_FAILED');
    expect(err.cniCode).toBe(7);
    expect(err.details).toBe('no bridge');
    expect(err.message).toContain('invalid config');
    expect(ex.calls.map((c) => c.type)).toEqual(['a', 'b']);
    expect(existsSync(join(dir, 'results', 'net1-cid1-eth0'))).toBe(false);
  });

  it('a plugin that is not in CNI_PATH, and one that prints no JSON, are errors naming the plugin', async () => {
    const missing = new CniRuntime(['/x', '/y'], dir, new FakeExec(chaining, new Set(['a'])));
    await expect(missing.add(list, rt)).rejects.toThrow(/failed to find plugin "b" in path \[\/x \/y\]/);
    const garbage = new CniRuntime(['/x'], dir, new FakeExec((t, c) => (c === 'ADD' && t === 'a' ? { code: 0, stdout: 'not json', stderr: '' } : ok())));
    await expect(garbage.add(list, rt)).rejects.toThrow(/CNI ADD a: result is not JSON/);
    const crash = new CniRuntime(['/x'], dir, new FakeExec(() => ({ code: 2, stdout: '', stderr: 'segfault\n' })));
    await expect(crash.add(list, rt)).rejects.toThrow(/CNI ADD a: segfault/);
  });
});

describe('conflist', () => {
  it('rejects lists without name, version, plugins or plugin types', () => {
    expect(() => parseConfList('{')).toThrow(/not JSON/);
    expect(() => parseConfList('{"cniVersion":"1.0.0","plugins":[{"type":"a"}]}')).toThrow(/no network name/);
    expect(() => parseConfList('{"name":"n","plugins":[{"type":"a"}]}')).toThrow(/no cniVersion/);
    expect(() => parseConfList('{"name":"n","cniVersion":"1.0.0","plugins":[]}')).toThrow(/no plugins/);
    expect(() => parseConfList('{"name":"n","cniVersion":"1.0.0","plugins":[{}]}')).toThrow(/plugins\[0\] has no type/);
  });

  it('a plugin config never carries a prevResult of its own into the first call', () => {
    const l = parseConfList(JSON.stringify({ cniVersion: '0.4.0', name: 'n', plugins: [{ type: 'a', prevResult: { stale: true } }] }));
    expect(JSON.parse(pluginConfig(l, 0, undefined))).toEqual({ type: 'a', name: 'n', cniVersion: '0.4.0' });
  });

  it('compares versions numerically', () => {
    expect(versionAtLeast('1.0.0', '0.4.0')).toBe(true);
    expect(versionAtLeast('0.4.0', '0.4.0')).toBe(true);
    expect(versionAtLeast('0.3.1', '0.4.0')).toBe(false);
    expect(versionAtLeast('0.10.0', '0.4.0')).toBe(true);
  });
});
