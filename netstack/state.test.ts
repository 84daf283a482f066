import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StateStore, findPod, isAlive, loadState, lockStateDir, parseState, procStartTime, requireState, statePath } from './state.ts';
import type { PodState, State } from './state.ts';
import { initialState } from './up.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'netstack-state-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const opts = { nodes: 3, backend: 'vxlan', proxyMode: 'iptables', policyBackend: 'nftables', dualStack: false } as const;
const pod = (s: State, namespace: string, name: string): PodState => ({
  namespace,
  name,
  labels: {},
  node: 'node-1',
  netns: { name: `${s.prefix}-${namespace}-${name}`, path: `/var/run/netns/${s.prefix}-${namespace}-${name}` },
  containerId: `${s.prefix}-${namespace}-${name}`,
  ips: [],
  ports: [],
});

describe('state', () => {
  it('round-trips through state.json, written atomically with no temp files left', async () => {
    const s = initialState(dir, opts, 'nsabc123');
    const store = new StateStore(s);
    await store.update((st) => st.namespaces.push({ name: 'nsabc123-underlay', path: '/var/run/netns/nsabc123-underlay' }));
    expect(readdirSync(dir)).toEqual(['state.json']);
    const back = await loadState(dir);
    expect(back).toEqual(s);
    expect(back!.dirs.manifests).toBe(join(dir, 'manifests'));
  });

  it('serialises concurrent updates: the file ends with the last one', async () => {
    const s = initialState(dir, opts, 'nsabc123');
    const store = new StateStore(s);
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.update((st) => st.pods.push(pod(st, 'ns', `p${i}`)))));
    const back = parseState(readFileSync(statePath(dir), 'utf8'));
    expect(back.pods.map((p) => p.name)).toEqual(Array.from({ length: 20 }, (_, i) => `p${i}`));
  });

  it('no state is undefined for load and a clear error for require', async () => {
    expect(await loadState(join(dir, 'none'))).toBeUndefined();
    await expect(requireState(join(dir, 'none'))).rejects.toMatchObject({ code: 'STATE_NOT_FOUND' });
  });

  it('rejects corrupt state: bad JSON, other version, a namespace without the run prefix, a bad PID', () => {
    const good = JSON.stringify(initialState(dir, opts, 'nsabc123'));
    expect(() => parseState('{', 'x')).toThrow(/not JSON/);
    expect(() => parseState(good.replace('"version":1', '"version":9'))).toThrow(/version 9/);
    const s = JSON.parse(good) as { namespaces: unknown[]; procs: unknown[] };
    s.namespaces.push({ name: 'other-node', path: '/var/run/netns/other-node' });
    expect(() => parseState(JSON.stringify(s))).toThrow(/lacks the run prefix/);
    s.namespaces.pop();
    s.procs.push({ pid: 1, startTime: 5, role: 'etcd', log: '', argv: [] });
    expect(() => parseState(JSON.stringify(s))).toThrow(/bad process record/);
  });

  it('finds pods by name or namespace/name and refuses an ambiguous name', () => {
    const s = initialState(dir, opts, 'nsabc123');
    s.pods.push(pod(s, 'a', 'web'), pod(s, 'b', 'web'), pod(s, 'a', 'db'));
    expect(findPod(s, 'db')?.namespace).toBe('a');
    expect(findPod(s, 'b/web')?.namespace).toBe('b');
    expect(findPod(s, 'nope')).toBeUndefined();
    expect(() => findPod(s, 'web')).toThrow(/namespace\/name/);
  });
});

describe('process identity', () => {
  it('a recorded process is alive only with its own start time, and not after it exited', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    await new Promise((r) => child.once('spawn', r));
    const pid = child.pid!;
    const start = procStartTime(pid);
    expect(start).toBeGreaterThan(0);
    expect(isAlive({ pid, startTime: start! })).toBe(true);
    // Same PID, another start time: a recycled PID is someone else's.
    expect(isAlive({ pid, startTime: start! + 1 })).toBe(false);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    expect(isAlive({ pid, startTime: start! })).toBe(false);
  });
});

describe('state dir lock', () => {
  it('one changing command at a time; released, the next one gets it', () => {
    const release = lockStateDir(dir, 'up');
    expect(() => lockStateDir(dir, 'down')).toThrow(expect.objectContaining({ code: 'CLUSTER_BUSY' }));
    release();
    const again = lockStateDir(dir, 'down');
    again();
  });
});
