// Resident memory of the kube-proxy daemon at scale (issue 8: ≤ 250 MB at
// 10,000 services × 10 endpoints), manifest mode, iptables mode, in a
// network namespace this program creates (and deletes, also on failure).
// It writes --services Services and their EndpointSlices into a manifest
// directory (one JSON List per 1,000 services), starts the given kube-proxy
// executable in the netns, waits until the first sync has put every
// service's rules in place (kubeproxy_sync_proxy_rules_last_timestamp_seconds
// set, and the rule count that sync reported), then samples VmRSS/VmHWM, and
// again after one endpoint change has been synced.
//   node <bundle> --prefix P --kube-proxy PATH [--node PATH] [--services 10000]
//        [--endpoints 10] [--mode legacy|nft] [--timeout-s 1800] [--node-options '…']
// Prints one JSON line.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { run } from '../lib/exec.ts';
import { Handle } from '../lib/netlink/index.ts';
import { createNamedNetns, deleteNamedNetns } from '../lib/netns/index.ts';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}
const prefix = arg('prefix', '');
const kubeProxy = arg('kube-proxy', '');
if (prefix === '' || kubeProxy === '') throw new Error('--prefix NAME and --kube-proxy PATH are required');
const nodeBin = arg('node', process.execPath);
const nServices = Number(arg('services', '10000'));
const nEndpoints = Number(arg('endpoints', '10'));
const mode = arg('mode', 'legacy');
const timeoutMs = Number(arg('timeout-s', '1800')) * 1000;
/** NODE_OPTIONS for the daemon (e.g. V8 heap flags), '' for none. */
const nodeOptions = arg('node-options', '');
const progress = (what: string, extra: Record<string, unknown> = {}): void => void process.stderr.write(`progress ${JSON.stringify({ what, ...extra })}\n`);

const v4 = (n: number): string => `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
const CLUSTER_BASE = (10 << 24) | (96 << 16);
const POD_BASE = (10 << 24) | (128 << 16);

const service = (i: number) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { namespace: `ns${i % 100}`, name: `svc${i}` },
  spec: {
    type: i % 10 === 0 ? 'NodePort' : 'ClusterIP',
    clusterIP: v4(CLUSTER_BASE + i + 1),
    ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, ...(i % 10 === 0 ? { nodePort: 30000 + i / 10 } : {}) }],
  },
});
const slice = (i: number, shift = 0) => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  addressType: 'IPv4',
  metadata: { namespace: `ns${i % 100}`, name: `svc${i}-abc`, labels: { 'kubernetes.io/service-name': `svc${i}` } },
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: Array.from({ length: nEndpoints }, (_, j) => ({
    addresses: [v4(POD_BASE + i * nEndpoints + j + shift)],
    conditions: { ready: true, serving: true, terminating: false },
    nodeName: `node${j % 50}`,
  })),
});

const PER_FILE = 1000;
function writeChunk(dir: string, c: number, shiftOf: (i: number) => number): void {
  const items: object[] = [];
  for (let i = c * PER_FILE; i < Math.min(nServices, (c + 1) * PER_FILE); i++) items.push(service(i), slice(i, shiftOf(i)));
  const file = join(dir, `svc-${String(c).padStart(3, '0')}.json`);
  writeFileSync(`${file}.tmp`, JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
  renameSync(`${file}.tmp`, file);
}

function status(pid: number): { rssMB: number; hwmMB: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rssMB: Math.round(kb('VmRSS') / 1024), hwmMB: Math.round(kb('VmHWM') / 1024) };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const tmp = mkdtempSync(join(tmpdir(), 'kp-rss-'));
const manifests = join(tmp, 'manifests');
const nsName = `${prefix}-rss`;
let child: ReturnType<typeof spawn> | undefined;
let netnsMade = false;
let log = '';
try {
  writeFileSync(join(tmp, '.keep'), '');
  rmSync(manifests, { recursive: true, force: true });
  await import('node:fs/promises').then((f) => f.mkdir(manifests));
  for (let c = 0; c * PER_FILE < nServices; c++) writeChunk(manifests, c, () => 0);
  const nsPath = createNamedNetns(nsName);
  netnsMade = true;
  const h = Handle.open({ netns: nsPath });
  try {
    await h.linkSetUp((await h.linkByName('lo')).index);
  } finally {
    h.close();
  }
  const metricsPort = 10249;
  child = spawn(
    'nsenter',
    [`--net=${nsPath}`, '--', nodeBin, kubeProxy, '--proxy-mode', 'iptables', '--manifests', manifests, '--hostname-override', 'node0', '--cluster-cidr', '10.128.0.0/9', '--healthz-bind-address', '127.0.0.1:10256', '--metrics-bind-address', `127.0.0.1:${metricsPort}`],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KN_IPTABLES_MODE: mode, NODE_OPTIONS: nodeOptions } },
  );
  child.stderr?.on('data', (d: Buffer) => void (log = (log + d.toString()).slice(-20_000)));
  if (process.env['KP_RSS_LOG']) child.stderr?.pipe(process.stderr);
  const pid = child.pid!;
  /** The value of `name` on the series carrying every one of `labels` (`key="value"` strings). */
  const metric = async (name: string, ...labels: string[]): Promise<number | undefined> => {
    try {
      const { stdout } = await run('curl', ['-s', '--max-time', '5', `http://127.0.0.1:${metricsPort}/metrics`], { netns: nsPath });
      for (const line of stdout.split('\n')) {
        const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
        if (m && m[1] === name && labels.every((l) => (m[2] ?? '').split(',').includes(l))) return Number(m[3]);
      }
      return undefined;
    } catch {
      return undefined;
    }
  };
  const waitSync = async (after: number, what: string): Promise<number> => {
    const t0 = performance.now();
    let peak = 0;
    for (;;) {
      if (child!.exitCode !== null) throw new Error(`kube-proxy exited (${child!.exitCode}): ${log.slice(-2000)}`);
      peak = Math.max(peak, status(pid).rssMB);
      // The IPv4 family's sync (the daemon runs both families; IPv6 has nothing to do and is done first).
      const ts = await metric('kubeproxy_sync_proxy_rules_last_timestamp_seconds', 'ip_family="IPv4"');
      if (ts !== undefined && ts > after) return peak;
      if (performance.now() - t0 > timeoutMs) throw new Error(`no ${what} within ${timeoutMs / 1000} s`);
      await sleep(1000);
    }
  };
  const t0 = performance.now();
  progress('waiting for the first sync');
  await waitSync(0, 'first sync');
  const firstSyncS = (performance.now() - t0) / 1000;
  const natRules = await metric('kubeproxy_sync_proxy_rules_iptables_total', 'ip_family="IPv4"', 'table="nat"');
  const afterFirst = status(pid);
  progress('first sync done', { firstSyncS, ...afterFirst });
  // One endpoint change: rewrite the file holding service 42 with its endpoints shifted.
  const ts1 = (await metric('kubeproxy_sync_proxy_rules_last_timestamp_seconds', 'ip_family="IPv4"'))!;
  writeChunk(manifests, 0, (i) => (i === 42 ? 1 : 0));
  await waitSync(ts1, 'sync after an endpoint change');
  await sleep(2000);
  const afterChange = status(pid);
  console.log(JSON.stringify({ services: nServices, endpoints: nEndpoints, mode, kubeProxy, node: nodeBin, nodeOptions, firstSyncS: Math.round(firstSyncS), natRulesMetric: natRules, afterFirstSync: afterFirst, afterEndpointChange: afterChange }));
} finally {
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    await Promise.race([new Promise((r) => child!.once('exit', r)), sleep(10_000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  if (netnsMade) deleteNamedNetns(nsName);
  rmSync(tmp, { recursive: true, force: true });
}
