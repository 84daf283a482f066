// The manifest directory against a real temporary directory. Watch latency
// is never asserted as a time: a test waits for the event to arrive and
// fails only by the (generous) test timeout.
import { mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { KubernetesObject, V1EndpointSlice } from '@kubernetes/client-node';
import { createLogger } from '../log.ts';
import { ManifestDir } from './manifest-dir.ts';
import type { ManifestDirOptions, ManifestLog } from './manifest-dir.ts';
import type { Source, SyncReason } from './source.ts';
import type { Kind } from './types.ts';
import { until } from '../../test/harness/until.ts';

const T = 20_000;

interface LogLine {
  level: string;
  msg: string;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function capture(): { log: ManifestLog; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: string) =>
    (_obj: object, msg: string): void => {
      lines.push({ level, msg });
    };
  return { log: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

/** Starts a directory with the given files; every kind's source runs until the test ends. */
async function start(files: Record<string, string> = {}, opts: ManifestDirOptions = {}, create = true) {
  const root = mkdtempSync(join(tmpdir(), 'manifests-'));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  const path = join(root, 'm');
  if (create) mkdirSync(path);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(path, name), text);
  const { log, lines } = capture();
  const dir = new ManifestDir(path, { log, debounceMs: 20, ...opts });
  const ac = new AbortController();
  const kinds: Kind[] = ['Namespace', 'Node', 'Pod', 'Service', 'EndpointSlice', 'NetworkPolicy'];
  const running = Promise.all(kinds.map((k) => dir.source(k).run(ac.signal)));
  cleanups.push(async () => {
    ac.abort();
    await running;
  });
  await dir.source('Service').waitForSync(ac.signal);
  return { path, dir, lines, write: (name: string, text: string) => writeFileSync(join(path, name), text), signal: ac.signal };
}

/** Records a source's events as "add ns/name", "update ns/name", "delete ns/name". */
function record<T extends KubernetesObject>(src: Source<T>): { events: string[]; last: Map<string, T> } {
  const events: string[] = [];
  const last = new Map<string, T>();
  const key = (o: T): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
  src.subscribe({
    add: (o) => {
      events.push(`add ${key(o)}`);
      last.set(key(o), o);
    },
    update: (_old, o) => {
      events.push(`update ${key(o)}`);
      last.set(key(o), o);
    },
    delete: (o) => {
      events.push(`delete ${key(o)}`);
      last.delete(key(o));
    },
  });
  return { events, last };
}

const service = (name: string, extra = ''): string => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: shop
${extra}spec:
  selector: {app: ${name}}
  ports: [{name: http, port: 80, targetPort: http}]
`;

const pod = (name: string, app: string, ip: string, o: { ready?: boolean; deleting?: boolean; port?: number } = {}): string => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  namespace: shop
  labels: {app: ${app}}
${o.deleting ? '  deletionTimestamp: "2026-01-01T00:00:00Z"\n' : ''}spec:
  nodeName: n1
  containers: [{name: c, ports: [{name: http, containerPort: ${o.port ?? 8080}}]}]
status:
  phase: Running
  podIPs: [{ip: "${ip}"}]
  conditions: [{type: Ready, status: "${o.ready === false ? 'False' : 'True'}"}]
`;

describe('ManifestDir: reading', () => {
  it('reads multi-document YAML, kind: List and JSON files once for every source', { timeout: T }, async () => {
    const syncs: [string, SyncReason, number][] = [];
    const { dir, lines } = await start({
      'a.yaml': `${service('web')}---\n${pod('web-1', 'web', '192.0.2.10')}`,
      'b.yml': `apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: shop}}
- {apiVersion: v1, kind: Node, metadata: {name: n1}}
- {apiVersion: apps/v1, kind: Deployment, metadata: {name: d}}
- {apiVersion: v1, kind: Pod, metadata: {namespace: shop}}
`,
      'c.json': JSON.stringify({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'deny', namespace: 'shop' }, spec: { podSelector: {} } }),
      'README.md': 'not a manifest',
      '.hidden.yaml': service('hidden'),
    });
    for (const k of ['Service', 'Pod', 'Namespace'] as const) {
      dir.source(k).subscribe({ sync: (all, why) => syncs.push([k, why, all.length]) });
    }
    expect(dir.source('Service').synced).toBe(true);
    expect(dir.source('Service').list().map((s) => s.metadata?.name)).toEqual(['web']);
    expect(dir.source('Pod').get('web-1', 'shop')?.status?.podIPs).toEqual([{ ip: '192.0.2.10' }]);
    expect(dir.source('Namespace').get('shop')?.kind).toBe('Namespace');
    expect(dir.source('Node').get('n1')).toBeDefined();
    expect(dir.source('NetworkPolicy').get('deny', 'shop')?.spec?.podSelector).toEqual({});
    expect(dir.source('EndpointSlice').list()).toHaveLength(1); // derived for "web"
    expect(lines).toContainEqual({ level: 'debug', msg: expect.stringMatching(/b\.yml \[0\.items\[2\]\]: ignoring kind Deployment$/) });
    expect(lines).toContainEqual({ level: 'warn', msg: expect.stringMatching(/b\.yml \[0\.items\[3\]\]: Pod has no metadata\.name$/) });
    // Subscribed after the initial sync: nothing replayed, the caches are already full.
    expect(syncs).toEqual([]);
  });

  it('reports the initial sync with the whole cache', { timeout: T }, async () => {
    const root = mkdtempSync(join(tmpdir(), 'manifests-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    writeFileSync(join(root, 's.yaml'), `${service('a')}---\n${service('b')}`);
    const dir = new ManifestDir(root);
    const src = dir.source('Service');
    expect(dir.source('Service')).toBe(src);
    const syncs: [SyncReason, string[]][] = [];
    src.subscribe({ sync: (all, why) => syncs.push([why, all.map((s) => s.metadata?.name ?? '')]) });
    const ac = new AbortController();
    const running = src.run(ac.signal);
    await src.waitForSync(ac.signal);
    expect(syncs).toEqual([['initial', ['a', 'b']]]);
    ac.abort();
    await running;
  });

  it('emits periodic resyncs with the whole cache when asked to', { timeout: T }, async () => {
    const { dir } = await start({ 'a.yaml': service('web') }, { resyncMs: 30, rescanMs: 10 });
    const syncs: [SyncReason, number][] = [];
    dir.source('Service').subscribe({ sync: (all, why) => syncs.push([why, all.length]) });
    await until(() => syncs.length >= 2);
    expect(syncs.slice(0, 2)).toEqual([
      ['resync', 1],
      ['resync', 1],
    ]);
  });

  it('serves nothing while the directory is missing, and its objects once it appears', { timeout: T }, async () => {
    const { path, dir, lines } = await start({}, { rescanMs: 50 }, false);
    expect(dir.source('Service').synced).toBe(true);
    expect(dir.source('Service').list()).toEqual([]);
    expect(lines.some((l) => l.level === 'warn' && /does not exist/.test(l.msg))).toBe(true);
    const svc = record(dir.source('Service'));
    mkdirSync(path);
    writeFileSync(join(path, 'a.yaml'), service('web'));
    await until(() => svc.events.length > 0);
    expect(svc.events).toEqual(['add shop/web']);
  });
});

describe('ManifestDir: logging', () => {
  it('logs through a pino logger with the file (and index) as fields', { timeout: T }, async () => {
    const root = mkdtempSync(join(tmpdir(), 'manifests-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    writeFileSync(join(root, 'bad.yaml'), 'kind: [\n');
    writeFileSync(join(root, 'anon.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata: {}\n');
    const out: Record<string, unknown>[] = [];
    const write = (line: string): void => {
      out.push(JSON.parse(line) as Record<string, unknown>);
    };
    const log = createLogger({ format: 'json', destination: { write } });
    const dir = new ManifestDir(root, { log });
    const ac = new AbortController();
    const running = dir.source('Pod').run(ac.signal);
    await dir.source('Pod').waitForSync(ac.signal);
    ac.abort();
    await running;
    expect(out).toContainEqual(expect.objectContaining({ level: 'error', file: join(root, 'bad.yaml'), err: expect.objectContaining({ message: expect.any(String) }) }));
    expect(out).toContainEqual(expect.objectContaining({ level: 'warn', file: join(root, 'anon.yaml'), index: '0' }));
  });
});

describe('ManifestDir: watching', () => {
  it('applies a file added, changed and deleted', { timeout: T }, async () => {
    const { dir, write, path } = await start({});
    const svc = record(dir.source('Service'));
    write('a.yaml', service('web'));
    await until(() => svc.events.length === 1);
    expect(svc.events).toEqual(['add shop/web']);

    write('a.yaml', service('web', '  labels: {v: "2"}\n'));
    await until(() => svc.events.length === 2);
    expect(svc.events[1]).toBe('update shop/web');
    expect(svc.last.get('shop/web')?.metadata?.labels).toEqual({ v: '2' });

    unlinkSync(join(path, 'a.yaml'));
    await until(() => svc.events.length === 3);
    expect(svc.events[2]).toBe('delete shop/web');
    expect(dir.source('Service').list()).toEqual([]);
  });

  it('applies a file renamed into place, and ignores the hidden temporary', { timeout: T }, async () => {
    const { dir, write, path } = await start({ 'a.yaml': service('web') });
    const svc = record(dir.source('Service'));
    write('.a.yaml.tmp', service('web', '  labels: {v: "2"}\n') + '---\n' + service('api'));
    renameSync(join(path, '.a.yaml.tmp'), join(path, 'a.yaml'));
    await until(() => svc.events.length === 2);
    expect(svc.events.sort()).toEqual(['add shop/api', 'update shop/web']);
    expect(svc.last.get('shop/web')?.metadata?.labels).toEqual({ v: '2' });
  });

  it('turns an object moving to another file into an update, never a delete', { timeout: T }, async () => {
    const { dir, write, path } = await start({ 'a.yaml': service('web') });
    const svc = record(dir.source('Service'));
    write('b.yaml', service('web', '  labels: {moved: "yes"}\n'));
    unlinkSync(join(path, 'a.yaml'));
    await until(() => svc.events.length === 1);
    expect(svc.events).toEqual(['update shop/web']);
    expect(dir.source('Service').get('web', 'shop')?.metadata?.labels).toEqual({ moved: 'yes' });
  });

  it('lets the lexically first file win a duplicate, logged, and the other take over when it goes', { timeout: T }, async () => {
    const { dir, lines, path } = await start({
      'b.yaml': pod('p', 'web', '192.0.2.20'),
      'a.yaml': pod('p', 'web', '192.0.2.10'),
    });
    expect(dir.source('Pod').get('p', 'shop')?.status?.podIPs).toEqual([{ ip: '192.0.2.10' }]);
    expect(lines).toContainEqual({ level: 'warn', msg: 'duplicate object Pod shop/p: b.yaml [0] ignored, a.yaml wins' });
    const pods = record(dir.source('Pod'));
    unlinkSync(join(path, 'a.yaml'));
    await until(() => pods.events.length === 1);
    expect(pods.events).toEqual(['update shop/p']);
    expect(pods.last.get('shop/p')?.status?.podIPs).toEqual([{ ip: '192.0.2.20' }]);
  });

  it('keeps the last good objects of a malformed file, logs path and parser message, and goes on with other files', { timeout: T }, async () => {
    const { dir, lines, write, path } = await start({ 'a.yaml': service('web') });
    const svc = record(dir.source('Service'));
    write('a.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: [web\n');
    const file = join(path, 'a.yaml');
    await until(() => lines.some((l) => l.level === 'error' && l.msg.includes(file)));
    const err = lines.find((l) => l.level === 'error')!;
    expect(err.msg).toMatch(new RegExp(`^malformed manifest file ${file}: .*line \\d+`));
    expect(dir.source('Service').get('web', 'shop')).toBeDefined();

    write('b.yaml', service('api'));
    await until(() => svc.events.length === 1);
    expect(svc.events).toEqual(['add shop/api']);
    expect(dir.source('Service').list().map((s) => s.metadata?.name).sort()).toEqual(['api', 'web']);

    write('a.yaml', service('web', '  labels: {fixed: "1"}\n'));
    await until(() => svc.events.length === 2);
    expect(svc.events[1]).toBe('update shop/web');
    expect(lines.filter((l) => l.level === 'error')).toHaveLength(1);
  });

  it('finds changes by the periodic rescan alone when fs.watch is off', { timeout: T }, async () => {
    const { dir, write } = await start({ 'a.yaml': service('web') }, { watch: false, rescanMs: 50 });
    const svc = record(dir.source('Service'));
    write('a.yaml', service('web', '  labels: {v: "2"}\n'));
    await until(() => svc.events.length === 1);
    expect(svc.events).toEqual(['update shop/web']);
  });

  it('stops when the last running source is aborted, and can run again', { timeout: T }, async () => {
    const root = mkdtempSync(join(tmpdir(), 'manifests-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const dir = new ManifestDir(root, { debounceMs: 10 });
    const a = new AbortController();
    const b = new AbortController();
    const syncs: SyncReason[] = [];
    dir.source('Service').subscribe({ sync: (_all, why) => syncs.push(why) });
    const runA = dir.source('Service').run(a.signal);
    const runB = dir.source('Pod').run(b.signal);
    await dir.source('Pod').waitForSync(b.signal);
    a.abort();
    await runA;
    const svc = record(dir.source('Service'));
    writeFileSync(join(root, 's.yaml'), service('web'));
    await until(() => svc.events.length === 1); // still watched for B
    b.abort();
    await runB;
    const c = new AbortController();
    const runC = dir.source('Service').run(c.signal);
    writeFileSync(join(root, 't.yaml'), service('api'));
    await until(() => svc.events.length === 2);
    expect(svc.events).toEqual(['add shop/web', 'add shop/api']);
    await dir.source('Service').waitForSync(c.signal);
    c.abort();
    await runC;
    expect(syncs).toEqual(['initial', 'relist']);
  });
});

describe('ManifestDir: derived EndpointSlices', () => {
  const endpoints = (s: V1EndpointSlice | undefined): string[] =>
    (s?.endpoints ?? []).map((e) => `${e.addresses[0]} ${e.targetRef?.name} ready=${e.conditions?.ready} serving=${e.conditions?.serving} terminating=${e.conditions?.terminating}`);
  const only = (src: Source<V1EndpointSlice>): V1EndpointSlice | undefined => {
    const all = src.list();
    return all.length === 1 ? all[0] : undefined;
  };

  it('follow the pods: readiness, termination, named ports and deletion are updates of the slice', { timeout: T }, async () => {
    const { dir, write, path } = await start({
      'svc.yaml': service('web'),
      'p1.yaml': pod('web-1', 'web', '192.0.2.10'),
      'p2.yaml': pod('web-2', 'web', '192.0.2.11', { ready: false }),
      'other.yaml': pod('db-1', 'db', '192.0.2.30'),
    });
    const src = dir.source('EndpointSlice');
    const first = only(src)!;
    expect(first.metadata?.name).toMatch(/^web-[0-9a-f]{8}$/);
    expect(first.metadata?.labels?.['kubernetes.io/service-name']).toBe('web');
    expect(first.ports).toEqual([{ name: 'http', port: 8080, protocol: 'TCP' }]);
    expect(endpoints(first)).toEqual(['192.0.2.10 web-1 ready=true serving=true terminating=false', '192.0.2.11 web-2 ready=false serving=false terminating=false']);
    const ev = record(src);
    const name = `shop/${first.metadata!.name!}`;

    write('p2.yaml', pod('web-2', 'web', '192.0.2.11'));
    await until(() => ev.events.length === 1);
    expect(endpoints(ev.last.get(name))[1]).toBe('192.0.2.11 web-2 ready=true serving=true terminating=false');

    write('p1.yaml', pod('web-1', 'web', '192.0.2.10', { deleting: true }));
    await until(() => ev.events.length === 2);
    expect(endpoints(ev.last.get(name))[0]).toBe('192.0.2.10 web-1 ready=false serving=true terminating=true');

    unlinkSync(join(path, 'p1.yaml'));
    await until(() => ev.events.length === 3);
    expect(endpoints(ev.last.get(name))).toEqual(['192.0.2.11 web-2 ready=true serving=true terminating=false']);

    // The named port resolves to the new containerPort.
    write('p2.yaml', pod('web-2', 'web', '192.0.2.11', { port: 9090 }));
    await until(() => ev.events.length === 4);
    expect(ev.last.get(name)?.ports).toEqual([{ name: 'http', port: 9090, protocol: 'TCP' }]);

    unlinkSync(join(path, 'p2.yaml'));
    await until(() => ev.events.length === 5);
    expect(ev.events).toEqual(['update ' + name, 'update ' + name, 'update ' + name, 'update ' + name, 'update ' + name]);
    expect(ev.last.get(name)?.endpoints).toEqual([]);
  });

  it('follow the service selector, and give way to an EndpointSlice in the directory', { timeout: T }, async () => {
    const { dir, write, path } = await start({
      'svc.yaml': service('web'),
      'p1.yaml': pod('web-1', 'web', '192.0.2.10'),
      'p2.yaml': pod('db-1', 'db', '192.0.2.30'),
    });
    const src = dir.source('EndpointSlice');
    const ev = record(src);
    const name = `shop/${only(src)!.metadata!.name!}`;
    write('svc.yaml', service('web').replace('selector: {app: web}', 'selector: {app: db}'));
    await until(() => ev.events.length === 1);
    expect(ev.events).toEqual([`update ${name}`]);
    expect(endpoints(ev.last.get(name))).toEqual(['192.0.2.30 db-1 ready=true serving=true terminating=false']);

    write(
      'slice.yaml',
      `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-manual
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints: [{addresses: ["192.0.2.99"]}]
`,
    );
    await until(() => ev.events.length === 3);
    expect(ev.events.slice(1).sort()).toEqual(['add shop/web-manual', `delete ${name}`]);
    expect(src.list().map((s) => s.metadata?.name)).toEqual(['web-manual']);

    unlinkSync(join(path, 'svc.yaml'));
    unlinkSync(join(path, 'slice.yaml'));
    await until(() => src.list().length === 0);
  });

  it('dual-stack pods give one slice per family', { timeout: T }, async () => {
    const dual = pod('web-1', 'web', '192.0.2.10').replace('podIPs: [{ip: "192.0.2.10"}]', 'podIPs: [{ip: "192.0.2.10"}, {ip: "fd00::10"}]');
    const { dir } = await start({ 'svc.yaml': service('web'), 'p.yaml': dual });
    const slices = dir.source('EndpointSlice').list();
    expect(slices.map((s) => `${s.addressType} ${s.endpoints?.[0]?.addresses[0]}`).sort()).toEqual(['IPv4 192.0.2.10', 'IPv6 fd00::10']);
  });
});
