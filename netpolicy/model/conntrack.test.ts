import { describe, expect, test } from 'vitest';
import { IPAddr } from '../../lib/ip/index.ts';
import { namespace, pod, policy } from '../testing/fixtures.ts';
import { buildCluster } from './cluster.ts';
import { flowsToCut, type Flow } from './conntrack.ts';
import type { Protocol } from './types.ts';

const PODS = [
  pod('ns', 'web', { labels: { app: 'web' }, ips: ['10.0.1.1', 'fd00::1'], node: 'n1' }),
  pod('ns', 'client', { labels: { app: 'client' }, ips: ['10.0.1.2'], node: 'n1' }),
  pod('ns', 'remote', { labels: { app: 'client' }, ips: ['10.0.2.2'], node: 'n2' }),
];
const flow = (src: string, dst: string, port = 80, protocol: Protocol = 'TCP'): Flow => ({ src: IPAddr.mustParse(src), dst: IPAddr.mustParse(dst), port, protocol });
const FLOWS = [flow('10.0.1.2', '10.0.1.1'), flow('10.0.2.2', '10.0.1.1'), flow('198.51.100.1', '10.0.1.1'), flow('10.0.1.1', '198.51.100.1', 443), flow('10.0.2.2', '198.51.100.1'), flow('fd00::9', 'fd00::1', 53, 'UDP')];
const cut = (policies: ReturnType<typeof policy>[], node = 'n1'): string[] =>
  flowsToCut(buildCluster({ pods: PODS, namespaces: [namespace('ns')], policies }), node, FLOWS).map((f) => `${f.src.toString()}>${f.dst.toString()}:${f.port}`);

describe('connections a change now denies are cut', () => {
  test('no policy: nothing', () => expect(cut([])).toEqual([]));

  test('ingress deny on a local pod cuts every flow to it', () => {
    expect(cut([policy('ns', 'deny', { podSelector: { matchLabels: { app: 'web' } } })])).toEqual(['10.0.1.2>10.0.1.1:80', '10.0.2.2>10.0.1.1:80', '198.51.100.1>10.0.1.1:80', 'fd00::9>fd00::1:53']);
  });

  test('only the flows the new rules do not admit', () => {
    const allowClients = policy('ns', 'p', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 80 }] }] });
    expect(cut([allowClients])).toEqual(['198.51.100.1>10.0.1.1:80', 'fd00::9>fd00::1:53']);
  });

  test('egress deny cuts flows from local pods only; the other node cuts its own', () => {
    const deny = policy('ns', 'deny', { podSelector: {}, policyTypes: ['Egress'] });
    expect(cut([deny])).toEqual(['10.0.1.2>10.0.1.1:80', '10.0.1.1>198.51.100.1:443']);
    expect(cut([deny], 'n2')).toEqual(['10.0.2.2>10.0.1.1:80', '10.0.2.2>198.51.100.1:80']);
  });

  test('flows with no local end are never ours', () => {
    expect(cut([policy('ns', 'deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })], 'n3')).toEqual([]);
  });
});
