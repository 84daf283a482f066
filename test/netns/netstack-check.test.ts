// netstack check's prober on a real kernel, against namespaces this test
// makes: three "pods" a, b, c on one bridge (in a fourth namespace), IPv4
// 198.51.100.0/24 and IPv6 2001:db8:c::/64. a and b run a TCP server and a
// UDP echo on port 80; c accepts nothing new (nft policy drop, replies of its
// own connections pass), except that TCP 83 is rejected with ICMP
// admin-prohibited. Then runCheck against a State and a manifest directory
// describing the same pods, with a default-deny policy on c: the model and
// the kernel agree, and stop agreeing when the policy is removed.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lib/exec.ts';
import { IPPrefix, type Family } from '../../lib/ip/index.ts';
import { runCheck, type CheckState } from '../../netstack/check/index.ts';
import { runProbes, runProbesInChild } from '../../netstack/check/probe.ts';
import type { Expected, Observed, Probe, ProbeProtocol } from '../../netstack/check/types.ts';
import type { PodState } from '../../netstack/state.ts';
import { isRoot, World } from '../harness/world.ts';

const PODS = ['a', 'b', 'c'] as const;
type PodName = (typeof PODS)[number];
const V4: Record<PodName, string> = { a: '198.51.100.1', b: '198.51.100.2', c: '198.51.100.3' };
const V6: Record<PodName, string> = { a: '2001:db8:c::1', b: '2001:db8:c::2', c: '2001:db8:c::3' };
const ip = (p: PodName, f: Family): string => (f === 4 ? V4[p] : V6[p]);

// TCP accept (prints the peer's address) and UDP echo on [::]:80, both families.
const SERVER_JS = `
const net = require('node:net'), dgram = require('node:dgram');
let up = 0;
const ready = () => { if (++up === 2) console.log('ready'); };
net.createServer((s) => { console.log('tcp ' + s.remoteAddress); s.on('error', () => {}); s.end(); }).listen({ port: 80, host: '::', ipv6Only: false }, ready);
const u = dgram.createSocket({ type: 'udp6', ipv6Only: false });
u.on('message', (m, r) => u.send(m, r.port, r.address));
u.bind(80, '::', ready);
`;

const C_RULES = `
table inet chk {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
    tcp dport 83 reject with icmpx type admin-prohibited
  }
}
`;

describe.runIf(isRoot)('netstack check: the prober in namespaces', () => {
  const w = new World('chk');
  const ns = {} as Record<PodName, string>;
  const servers: ChildProcess[] = [];
  const peers: string[] = [];
  let tmp: string;

  beforeAll(async () => {
    const hl = w.handle(w.netns('l'));
    await hl.linkAdd({ name: 'br0', kind: 'bridge', up: true });
    const br = await hl.linkByName('br0');
    for (const p of PODS) {
      ns[p] = w.netns(p);
      const h = w.handle(ns[p]);
      await h.linkAdd({ name: 'eth0', kind: 'veth', veth: { peerName: `v${p}`, peerNetnsFd: hl.nsFd! } });
      const peer = await hl.linkByName(`v${p}`);
      await hl.linkSetMaster(peer.index, br.index);
      await hl.linkSetUp(peer.index);
      const eth = await h.linkByName('eth0');
      await h.addrAdd(eth.index, { address: IPPrefix.mustParse(`${V4[p]}/24`) });
      await h.addrAdd(eth.index, { address: IPPrefix.mustParse(`${V6[p]}/64`), noDad: true });
      await h.linkSetUp(eth.index);
      await h.linkSetUp((await h.linkByName('lo')).index);
    }
    await run('ip', ['netns', 'exec', `${w.prefix}-c`, 'nft', '-f', '-'], { input: C_RULES });
    for (const p of ['a', 'b'] as const) {
      const child = spawn('ip', ['netns', 'exec', `${w.prefix}-${p}`, process.execPath, '-e', SERVER_JS], { stdio: ['ignore', 'pipe', 'inherit'] });
      servers.push(child);
      const lines = createInterface({ input: child.stdout! });
      await new Promise<void>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`server in ${p} exited with ${code}`)));
        lines.on('line', (l) => {
          if (l === 'ready') resolve();
          else if (l.startsWith('tcp ')) peers.push(`${p} ${l.slice(4).replace(/^::ffff:/, '')}`);
        });
      });
    }
    tmp = mkdtempSync(join(tmpdir(), 'netstack-check-'));
  });

  afterAll(async () => {
    for (const s of servers) s.kill('SIGKILL');
    await Promise.all(servers.map((s) => (s.exitCode === null && s.signalCode === null ? new Promise((r) => s.once('exit', r)) : undefined)));
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    await w.cleanup();
  });

  const probe = (id: number, family: Family, from: PodName, to: PodName, protocol: ProbeProtocol, port: number, outcome: Expected, netns = ns[from]): Probe => ({
    id,
    section: protocol === 'ICMP' ? 'icmp' : 'pod',
    family,
    from: { label: from, netns, ip: ip(from, family) },
    to: { ip: ip(to, family), port, protocol },
    row: `${to} ${port}/${protocol}`,
    column: from,
    expect: { outcome, reason: 'test' },
  });

  for (const family of [4, 6] as const) {
    it(`sees open, refused, dropped and rejected over IPv${family}, from inside the source namespace`, async () => {
      const cases: [PodName, PodName, ProbeProtocol, number, Expected, Observed][] = [
        ['a', 'b', 'ICMP', 0, 'open', 'open'],
        ['a', 'c', 'ICMP', 0, 'blocked', 'timeout'],
        ['a', 'b', 'TCP', 80, 'open', 'open'],
        ['a', 'b', 'TCP', 82, 'refused', 'refused'],
        ['a', 'c', 'TCP', 80, 'blocked', 'timeout'],
        ['a', 'c', 'TCP', 83, 'blocked', 'unreachable'],
        ['a', 'b', 'UDP', 80, 'open', 'open'],
        ['a', 'b', 'UDP', 82, 'refused', 'refused'],
        ['a', 'c', 'UDP', 80, 'blocked', 'timeout'],
        ['b', 'a', 'ICMP', 0, 'open', 'open'],
        ['c', 'a', 'TCP', 80, 'open', 'open'],
      ];
      const probes = cases.map(([from, to, proto, port, exp], i) => probe(i + 1, family, from, to, proto, port, exp));
      peers.length = 0;
      // 1.5 s: over IPv6 the kernel reports the admin-prohibited reject of a SYN only for its retransmission, after 1 s.
      const results = await runProbes(probes, { timeoutMs: 1500 });
      expect(results.map((r, i) => `${cases[i]!.slice(0, 4).join(' ')} ${r.observed}`)).toEqual(cases.map((c) => `${c.slice(0, 4).join(' ')} ${c[5]}`));
      // Nothing here was retried: every answer was the expected one.
      expect(results.some((r) => r.retried)).toBe(false);
      // The servers saw the probes come from the source pods' own addresses.
      expect(peers.sort()).toEqual([`a ${ip('c', family)}`, `b ${ip('a', family)}`]);
    });
  }

  it('retries a probe that got no answer where one was expected, and reports a missing namespace as an error', async () => {
    const results = await runProbes([probe(1, 4, 'a', 'c', 'TCP', 80, 'open'), probe(2, 4, 'a', 'b', 'ICMP', 0, 'open', join(tmp, 'no-such-netns'))], { timeoutMs: 300 });
    expect(results[0]).toMatchObject({ observed: 'timeout', retried: true });
    expect(results[1]).toMatchObject({ observed: 'error' });
    expect(results[1]!.detail).toContain('no-such-netns');
  });

  it('runs the same probes in a child on the project Node (for a Node that cannot load raw-socket)', async () => {
    const probes = [probe(1, 6, 'a', 'b', 'ICMP', 0, 'open'), probe(2, 4, 'a', 'b', 'UDP', 80, 'open'), probe(3, 4, 'a', 'b', 'TCP', 82, 'refused')];
    const results = await runProbesInChild(probes, { timeoutMs: 1000 });
    expect(results.map((r) => r.observed)).toEqual(['open', 'open', 'refused']);
  });

  describe('runCheck', () => {
    let manifests: string;
    let state: CheckState;

    beforeAll(() => {
      manifests = join(tmp, 'manifests');
      const node = (p: PodName): string => (p === 'a' ? 'node-1' : 'node-2');
      const docs: unknown[] = PODS.map((p) => ({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { namespace: 'chk', name: p, labels: { app: p } },
        spec: {
          nodeName: node(p),
          containers: [{ name: 's', ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }, { name: 'echo', containerPort: 80, protocol: 'UDP' }] }],
        },
        status: { phase: 'Running', podIP: V4[p], podIPs: [{ ip: V4[p] }, { ip: V6[p] }], conditions: [{ type: 'Ready', status: 'True' }] },
      }));
      docs.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'chk' } });
      // The manifest directory: the pods, and c isolated (what the nft rules in c enforce).
      mkdirSync(manifests);
      writeFileSync(join(manifests, 'pods.yaml'), docs.map((d) => stringify(d)).join('---\n'));
      writeFileSync(
        join(manifests, 'policy.yaml'),
        stringify({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: 'chk', name: 'isolate-c' }, spec: { podSelector: { matchLabels: { app: 'c' } }, policyTypes: ['Ingress'] } }),
      );
      const rec = (name: string) => ({ name: `${w.prefix}-${name}`, path: w.nsPath(name) });
      const pods: PodState[] = PODS.map((p) => ({
        namespace: 'chk',
        name: p,
        labels: { app: p },
        node: node(p),
        netns: rec(p),
        containerId: `c-${p}`,
        ips: [V4[p], V6[p]],
        ports: [
          { name: 'http', port: 80, protocol: 'TCP' },
          { name: 'echo', port: 80, protocol: 'UDP' },
        ],
      }));
      state = {
        options: { nodes: 2, backend: 'host-gw', proxyMode: 'iptables', policyBackend: 'nftables', dualStack: true },
        phase: 'ready',
        external: { netns: rec('c'), ip: V4.c, ip6: V6.c },
        dirs: { manifests },
        nodes: [
          { name: 'node-1', ip: '192.0.2.11' },
          { name: 'node-2', ip: '192.0.2.12' },
        ],
        pods,
      };
    });

    it('agrees with the kernel when the manifests say what the namespaces do', async () => {
      const res = await runCheck(state, { timeoutMs: 500 });
      expect(res.problems).toEqual([]);
      expect(res.rows.filter((r) => !r.match).map((r) => `${r.probe.family} ${r.probe.column} -> ${r.probe.row}: ${r.result.observed}`)).toEqual([]);
      expect(res.ok).toBe(true);
      // ICMP across nodes (a <-> b, a <-> c), and every declared port of every other pod, both families.
      expect(res.rows.filter((r) => r.probe.section === 'icmp')).toHaveLength(8);
      expect(res.rows.filter((r) => r.probe.section === 'pod')).toHaveLength(24);
      const toC = res.rows.filter((r) => r.probe.row.startsWith('chk/c'));
      expect(toC.length).toBeGreaterThan(0);
      expect(toC.every((r) => r.probe.expect.outcome === 'blocked' && r.result.observed === 'timeout')).toBe(true);
      expect(res.report).toContain('IPv6: pod to pod port (the policy matrix) (12/12 as expected)');
      expect(res.report.trimEnd().split('\n').at(-1)).toMatch(/^OK: all 32 probes as expected \(IPv4 16, IPv6 16\) in \d+\.\d s$/);
    });

    it('fails, naming each probe, once the manifests no longer say so', async () => {
      unlinkSync(join(manifests, 'policy.yaml'));
      const res = await runCheck(state, { timeoutMs: 300, families: [4] });
      expect(res.ok).toBe(false);
      const bad = res.rows.filter((r) => !r.match);
      // a and b now expect to reach c on TCP and UDP 80 (ICMP only from a: b is on c's node).
      expect(bad.map((r) => `${r.probe.column} -> ${r.probe.row} ${r.result.observed}`).sort()).toEqual([
        'chk/a -> chk/c',
        'chk/a -> chk/c 80/TCP (http)',
        'chk/a -> chk/c 80/UDP (echo)',
        'chk/b -> chk/c 80/TCP (http)',
        'chk/b -> chk/c 80/UDP (echo)',
      ].map((s) => `${s} timeout`).sort());
      expect(bad.every((r) => r.result.retried)).toBe(true);
      expect(res.report).toContain('Mismatches (5):');
      expect(res.report).toContain('expected open, saw dropped');
      expect(res.report.trimEnd().split('\n').at(-1)).toMatch(/^FAILED: 5 of 16 probes differ from the model/);
    });
  });
});
