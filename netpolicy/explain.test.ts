import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Namespace, V1NetworkPolicy, V1Node, V1Pod } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { startHttpServer } from '../lib/daemon/index.ts';
import { FakeSource } from '../lib/kube/index.ts';
import { silentLogger } from '../lib/log.ts';
import { newRegistry } from '../lib/metrics.ts';
import { FakeConntrack } from '../lib/netfilter/conntrack.ts';
import { FakeNft } from '../lib/netfilter/nft.ts';
import { Agent } from './agent.ts';
import { NftBackend } from './backend.ts';
import { AgentStateError, clusterFromAgent, clusterFromManifests, endpoint, explainJSON, explainReport, explainVerdict } from './explain.ts';
import { namespace, pod, policy } from './testing/fixtures.ts';

const objects = [
  namespace('x', { ns: 'x' }),
  namespace('y', { ns: 'y' }),
  pod('x', 'a', { labels: { app: 'a' }, ips: ['10.0.1.1'], node: 'n1', ports: [['http', 'TCP', 8080]] }),
  pod('y', 'b', { labels: { app: 'b' }, ips: ['10.0.2.1'], node: 'n2' }),
  policy('x', 'web', { podSelector: { matchLabels: { app: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ port: 'http' }] }] }),
];

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('netpolicy explain', () => {
  it('reads a manifest directory and explains both directions with the deciding rule', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'np-explain-'));
    dirs.push(dir);
    await writeFile(join(dir, 'all.yaml'), objects.map((o) => stringify(o)).join('---\n'));
    const c = await clusterFromManifests(dir);
    const allowed = explainVerdict(c, { source: 'y/b', destination: 'x/a', port: 8080, protocol: 'TCP', family: undefined });
    expect(allowed.allowed).toBe(true);
    const text = explainReport(allowed, { source: 'y/b', destination: 'x/a', port: 8080, protocol: 'TCP' });
    expect(text).toBe(
      'y/b -> x/a TCP/8080\nALLOWED: 10.0.2.1 -> 10.0.1.1 (IPv4)\n' +
        `  egress:  allowed: ${allowed.egress.reason}\n  ingress: allowed: ${allowed.ingress.reason}\n`,
    );
    expect(allowed.ingress.reason).toContain('x/web ingress[0]');
    const denied = explainVerdict(c, { source: '10.0.2.1', destination: 'x/a', port: 80, protocol: 'TCP', family: undefined });
    expect(denied.allowed).toBe(false);
    expect(JSON.parse(explainJSON(denied))).toMatchObject({ allowed: false, srcIP: '10.0.2.1', dstIP: '10.0.1.1', ingress: { isolated: true, policies: [{ policy: 'x/web' }] } });
  });

  it('tells pods from addresses', () => {
    expect(endpoint('x/a')).toEqual({ pod: 'x/a' });
    expect(endpoint('192.0.2.1')).toEqual({ ip: '192.0.2.1' });
    expect(endpoint('fd00::1')).toEqual({ ip: 'fd00::1' });
  });

  it("reads a running agent's state from /debug/state", async () => {
    const src = <T extends { kind?: string }>(kind: string, list: unknown[]): FakeSource<T & import('@kubernetes/client-node').KubernetesObject> =>
      new FakeSource(kind, list.filter((o) => (o as { kind: string }).kind === kind) as (T & import('@kubernetes/client-node').KubernetesObject)[]);
    const agent = new Agent({
      nodeName: 'n1',
      sources: { pods: src<V1Pod>('Pod', objects), namespaces: src<V1Namespace>('Namespace', objects), policies: src<V1NetworkPolicy>('NetworkPolicy', objects), nodes: src<V1Node>('Node', []) },
      backend: new NftBackend(new FakeNft()),
      conntrack: new FakeConntrack(),
      log: silentLogger(),
      registry: newRegistry(),
    });
    await agent.sync({ reason: 'requested' });
    const server = await startHttpServer({ host: '127.0.0.1', port: 0, handlers: { '/debug/state': () => ({ status: 200, body: JSON.stringify(agent.state()), contentType: 'application/json' }) } });
    try {
      const c = await clusterFromAgent(`http://127.0.0.1:${server.port}`);
      expect(explainVerdict(c, { source: 'y/b', destination: 'x/a', port: 8080, protocol: 'TCP', family: undefined }).allowed).toBe(true);
      expect(explainVerdict(c, { source: 'y/b', destination: 'x/a', port: 8080, protocol: 'UDP', family: undefined }).allowed).toBe(false);
      await expect(clusterFromAgent(`http://127.0.0.1:${server.port}/nope/`, async () => new Response('x', { status: 404 }))).rejects.toThrow(AgentStateError);
    } finally {
      await server.close();
    }
  });
});
