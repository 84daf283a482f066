import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { initialState } from '../up.ts';
import type { State } from '../state.ts';
import { readCheckObjects, runCheck, topologyOf } from './index.ts';
import { sampleFiles } from './testing.ts';

const tmp = mkdtempSync(join(tmpdir(), 'netstack-check-unit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function state(dualStack: boolean): State {
  const s = initialState(join(tmp, `state-${dualStack}`), { nodes: 2, backend: 'vxlan', proxyMode: 'iptables', policyBackend: 'nftables', dualStack }, 'nsunit1');
  const rec = (name: string) => ({ name: `nsunit1-${name}`, path: `/var/run/netns/nsunit1-${name}` });
  s.nodes.push({ name: 'node-1', netns: rec('node-1'), ip: '192.0.2.11', ...(dualStack ? { ip6: '2001:db8:0:1::b' } : {}), dir: tmp, subnetFile: join(tmp, 'subnet.env'), healthz: { flanneld: 1, 'kube-proxy': 2, netpolicy: 3 } } as State['nodes'][number]);
  s.pods.push({ namespace: 'db', name: 'pg-0', labels: { app: 'pg' }, node: 'node-1', netns: rec('db-pg-0'), containerId: 'x', ips: dualStack ? ['10.244.1.2', 'fd00:10:244:1::2'] : ['10.244.1.2'], ports: [] });
  return s;
}

describe('topologyOf', () => {
  it('takes pods, nodes and the external host from the state, both families', () => {
    const t = topologyOf(state(true));
    expect(t.pods).toEqual([{ key: 'db/pg-0', node: 'node-1', netns: '/var/run/netns/nsunit1-db-pg-0', ips: ['10.244.1.2', 'fd00:10:244:1::2'] }]);
    expect(t.nodes).toEqual([{ name: 'node-1', ips: ['192.0.2.11', '2001:db8:0:1::b'] }]);
    expect(t.external).toEqual({ netns: '/var/run/netns/nsunit1-external', ips: [expect.stringMatching(/^192\.0\.2\./), expect.stringContaining(':')] });
    expect(topologyOf(state(false)).nodes).toEqual([{ name: 'node-1', ips: ['192.0.2.11'] }]);
  });
});

describe('readCheckObjects', () => {
  it('reads the sample with EndpointSlices derived for its Services', async () => {
    const dir = join(tmp, 'sample');
    mkdirSync(dir);
    for (const f of sampleFiles()) writeFileSync(join(dir, f.name), f.text);
    const o = await readCheckObjects(dir);
    expect(o.pods.map((p) => p.metadata?.name).sort()).toEqual(['api-0', 'api-1', 'pg-0', 'web-0', 'web-1', 'web-2']);
    expect(o.namespaces).toHaveLength(3);
    expect(o.policies).toHaveLength(6);
    expect(o.services.map((s) => s.metadata?.name).sort()).toEqual(['api', 'api-canary', 'pg', 'web']);
    // The sample's Pods have no addresses yet: each Service gets its placeholder slice.
    expect(new Set(o.slices.map((s) => s.metadata?.labels?.['kubernetes.io/service-name']))).toEqual(new Set(['api', 'api-canary', 'pg', 'web']));
  });
});

describe('runCheck without probes', () => {
  it('fails a cluster whose up did not finish and whose pods the manifests do not know', async () => {
    const s = state(false);
    mkdirSync(s.dirs.manifests, { recursive: true });
    const r = await runCheck(s);
    expect(r.ok).toBe(false);
    expect(r.rows).toEqual([]);
    expect(r.problems).toEqual(['netstack up did not finish (state phase "creating")', 'pod db/pg-0 runs on node-1 but has no Pod object in the manifests']);
    expect(r.report).toContain('Problems (2):');
    expect(r.report.trimEnd().split('\n').at(-1)).toMatch(/^FAILED: 0 of 0 probes differ from the model \(none\), 2 problems in /);
    expect(r.report.split('\n')[0]).toBe('netstack check: 1 node, 1 pod; vxlan, kube-proxy iptables, netpolicy nftables; IPv4');
  });

  it('fails when asked for a family the cluster does not run, rather than passing with no probes', async () => {
    const s = { ...state(false), phase: 'ready' as const, pods: [] };
    const r = await runCheck(s, { families: [6] });
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual(['IPv6 asked for, but the cluster does not run it (netstack up --dual-stack)']);
  });
});
