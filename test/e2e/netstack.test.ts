// The cluster command end to end, as a user runs it: dist/bin/netstack up →
// check → apply (a policy change and a Service change) → check → down, and
// after down nothing of the run is left: no namespace with its prefix (so no
// link, route or rule either: they all lived in those namespaces), no
// process it started, no file in its state dir. Also: a `kill -9` of `up`
// midway, then `down`, leaves nothing.
//
// `npm test` runs a diagonal of backend × proxy mode; `npm run test:matrix`
// (NETSTACK_E2E_MATRIX=full) runs all of it.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseState, isAlive } from '../../netstack/state.ts';
import type { State } from '../../netstack/state.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const NETSTACK = join(ROOT, 'dist/bin/netstack');
const NODE = join(ROOT, 'dist/bin/node');

interface Combo {
  backend: 'vxlan' | 'host-gw' | 'udp';
  proxyMode: 'iptables' | 'nftables';
  policyBackend: 'nftables' | 'iptables';
  dualStack?: boolean;
}

const FULL: Combo[] = (['vxlan', 'host-gw', 'udp'] as const).flatMap((backend) =>
  (['iptables', 'nftables'] as const).map((proxyMode) => ({ backend, proxyMode, policyBackend: proxyMode === 'iptables' ? 'nftables' : 'iptables' }) as Combo),
);
const DUAL: Combo[] = (['vxlan', 'host-gw'] as const).flatMap((backend) =>
  (['iptables', 'nftables'] as const).map((proxyMode) => ({ backend, proxyMode, policyBackend: proxyMode === 'iptables' ? 'nftables' : 'iptables', dualStack: true }) as Combo),
);
// Every backend, both proxy modes, both policy backends and both families, in three runs.
const DIAGONAL: Combo[] = [
  { backend: 'vxlan', proxyMode: 'iptables', policyBackend: 'nftables' },
  { backend: 'host-gw', proxyMode: 'nftables', policyBackend: 'iptables', dualStack: true },
  { backend: 'udp', proxyMode: 'iptables', policyBackend: 'nftables' },
];
// flanneld's udp backend is IPv4 only (as upstream's); IPVS needs ip_vs, which this kernel lacks.
const COMBOS = process.env['NETSTACK_E2E_MATRIX'] === 'full' ? [...FULL, ...DUAL] : DIAGONAL;

const dirs: string[] = [];
afterAll(() => {
  // A failed test still removes its cluster.
  for (const d of dirs) {
    if (existsSync(join(stateOf(d), 'state.json'))) spawnSync(NETSTACK, ['down', '--state-dir', stateOf(d)], { stdio: 'ignore' });
    // A state that down could not remove stays, for the next down.
    if (!existsSync(join(stateOf(d), 'state.json'))) rmSync(d, { recursive: true, force: true });
  }
});

function newStateDir(): string {
  const base = mkdtempSync(join(tmpdir(), 'netstack-e2e-'));
  dirs.push(base);
  return join(base, 'state');
}

/** The state dir of a temp dir from newStateDir. */
function stateOf(base: string): string {
  return join(base, 'state');
}

interface Run {
  code: number | null;
  out: string;
}

function netstack(args: string[], input?: string): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(NETSTACK, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, out }));
    child.stdin.end(input ?? '');
  });
}

async function ok(args: string[]): Promise<string> {
  const r = await netstack(args);
  if (r.code !== 0) throw new Error(`netstack ${args.join(' ')} exited ${r.code}:\n${r.out}`);
  return r.out;
}

const readState = (dir: string): State => parseState(readFileSync(join(dir, 'state.json'), 'utf8'));

/** A TCP connect from inside a pod (through `netstack exec`), as the pod's programs would. */
async function tcp(dir: string, pod: string, ip: string, port: number): Promise<'open' | 'refused' | 'timeout'> {
  const js = `const s=require('net').connect(${port},'${ip}');s.setTimeout(1500,()=>{console.log('timeout');process.exit(0)});s.on('connect',()=>{console.log('open');process.exit(0)});s.on('error',e=>{console.log(e.code==='ECONNREFUSED'?'refused':'error '+e.code);process.exit(0)})`;
  const r = await netstack(['exec', '--state-dir', dir, pod, '--', NODE, '-e', js]);
  const word = r.out.trim().split('\n').pop();
  if (word !== 'open' && word !== 'refused' && word !== 'timeout') throw new Error(`probe from ${pod} to ${ip}:${port}: ${r.out}`);
  return word;
}

/** What is left of a run: namespaces with its prefix, processes it recorded, files in its state dir. */
function leftovers(s: State, dir: string): { namespaces: string[]; processes: number[]; files: string[] } {
  const namespaces = readdirSync('/var/run/netns').filter((n) => n.startsWith(`${s.prefix}-`));
  const processes = s.procs.filter((p) => isAlive(p)).map((p) => p.pid);
  const files = existsSync(dir) ? readdirSync(dir, { recursive: true }).map(String) : [];
  return { namespaces, processes, files };
}

const POLICY_CHANGE = `# web pods may now reach the database directly
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: allow-pg-from-web, namespace: db }
spec:
  podSelector: { matchLabels: { app: pg } }
  policyTypes: [Ingress]
  ingress:
    - from:
        - namespaceSelector: { matchLabels: { kubernetes.io/metadata.name: frontend } }
          podSelector: { matchLabels: { app: web } }
      ports: [{ port: 5432, protocol: TCP }]
`;

describe.each(COMBOS)('netstack up/check/apply/check/down: $backend, kube-proxy $proxyMode, netpolicy $policyBackend, dual-stack $dualStack', (combo) => {
  it('runs the sample app as the model says, takes changes, and leaves nothing behind', async () => {
    const dir = newStateDir();
    try {
      await scenario(dir, combo);
    } finally {
      // On failure too: one cluster at a time on the 2-core machine.
      if (existsSync(join(dir, 'state.json'))) await netstack(['down', '--state-dir', dir]);
    }
  });
});

/** up → status → check → apply → probes → check → down → nothing left. */
async function scenario(dir: string, combo: Combo): Promise<void> {
  await ok(['up', '--state-dir', dir, '--nodes', '3', '--backend', combo.backend, '--proxy-mode', combo.proxyMode, '--policy-backend', combo.policyBackend, ...(combo.dualStack ? ['--dual-stack'] : [])]);
  const s = readState(dir);
  expect(s.phase).toBe('ready');
  expect(s.nodes).toHaveLength(3);
  expect(s.pods.every((p) => p.ips.length === (combo.dualStack ? 2 : 1))).toBe(true);

  const status = await ok(['status', '--state-dir', dir]);
  expect(status).toMatch(/node-1 .*flanneld ok, kube-proxy ok, netpolicy ok/);
  expect(status.match(/→ 192\.0\.2\.1\d/g)).toHaveLength(3); // three leases

  const first = await netstack(['check', '--state-dir', dir]);
  expect(first.code, first.out).toBe(0);

  // Before the change: web → pg is denied, the canary Service has no endpoints.
  const pg = s.pods.find((p) => p.name === 'pg-0')!;
  expect(await tcp(dir, 'web-0', pg.ips[0]!, 5432)).toBe('timeout');
  const services = (await ok(['status', '--state-dir', dir])).split('\n');
  const canary = services.find((l) => l.includes('backend/api-canary'))!;
  const canaryIP = /ClusterIP ([^,\s]+)/.exec(canary)![1]!; // the IPv4 one
  expect(canary).toContain('(no endpoints)');
  expect(await tcp(dir, 'web-0', canaryIP, 9090)).toBe('refused');

  const changes = join(dir, '..', 'changes');
  rmSync(changes, { recursive: true, force: true });
  mkdirSync(changes, { recursive: true });
  writeFileSync(join(changes, 'policy.yaml'), POLICY_CHANGE);
  // The canary Service now selects the api pods.
  writeFileSync(
    join(changes, 'service.yaml'),
    `apiVersion: v1\nkind: Service\nmetadata: { name: api-canary, namespace: backend }\nspec:\n  selector: { app: api }\n  ports: [{ name: api, port: 9090, targetPort: 9090, protocol: TCP }]\n`,
  );
  await ok(['apply', '--state-dir', dir, changes]);

  expect(await tcp(dir, 'web-0', pg.ips[0]!, 5432)).toBe('open');
  const canaryAfter = (await ok(['status', '--state-dir', dir])).split('\n').find((l) => l.includes('backend/api-canary'))!;
  expect(canaryAfter).toContain(canaryIP); // an update keeps the ClusterIP
  expect(canaryAfter).not.toContain('(no endpoints)');
  expect(await tcp(dir, 'web-0', canaryIP, 9090)).toBe('open');

  const second = await netstack(['check', '--state-dir', dir]);
  expect(second.code, second.out).toBe(0);

  await ok(['down', '--state-dir', dir]);
  expect(leftovers(s, dir)).toEqual({ namespaces: [], processes: [], files: [] });
  // Idempotent.
  await ok(['down', '--state-dir', dir]);
}

describe('netstack down after kill -9 of up', () => {
  it('finds the half-made cluster through the state dir and removes all of it', async () => {
    const dir = newStateDir();
    const up = spawn(NETSTACK, ['up', '--state-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } });
    let out = '';
    up.stdout.on('data', (d: Buffer) => (out += d.toString()));
    up.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((r) => up.once('exit', () => r()));
    // Midway: once the first pod has its address (etcd and flanneld run, pods are being attached).
    await new Promise<void>((resolvePromise, reject) => {
      const t = setInterval(() => {
        try {
          const s = readState(dir);
          if (s.pods.some((p) => p.ips.length > 0)) {
            clearInterval(t);
            resolvePromise();
          }
        } catch {
          // not written yet
        }
        if (up.exitCode !== null) {
          clearInterval(t);
          reject(new Error(`up exited before it was killed:\n${out}`));
        }
      }, 20);
    });
    up.kill('SIGKILL');
    await exited;
    const s = readState(dir);
    expect(s.phase).toBe('creating');
    expect(s.procs.filter((p) => isAlive(p)).length).toBeGreaterThan(0);
    expect(readdirSync('/var/run/netns').filter((n) => n.startsWith(`${s.prefix}-`)).length).toBeGreaterThan(3);

    await ok(['down', '--state-dir', dir]);
    expect(leftovers(s, dir)).toEqual({ namespaces: [], processes: [], files: [] });
  });
});
