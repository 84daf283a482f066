// The scenarios behind the renderers' golden files (testdata/), shared by
// the golden tests and by check-syntax.sh's generator, so the files the
// kernel checks are exactly the files the tests compare.
import type { V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { IPPrefix } from '../../lib/ip/index.ts';
import { buildCluster } from '../model/cluster.ts';
import { localPlan, type LocalPlan } from '../model/plan.ts';
import { namespace, pod, policy } from '../testing/fixtures.ts';

export const NODE = 'n1';
const POD_CIDRS = [IPPrefix.mustParse('10.244.1.0/24'), IPPrefix.mustParse('fd00:244:1::/64')];
const NAMESPACES = [namespace('shop', { team: 'web' }), namespace('tools', { team: 'ops' })];

const PODS: V1Pod[] = [
  pod('shop', 'web-0', { labels: { app: 'web' }, ips: ['10.244.1.10', 'fd00:244:1::10'], node: 'n1', ports: [['http', 'TCP', 8080], ['metrics', 'TCP', 9100]] }),
  pod('shop', 'web-1', { labels: { app: 'web' }, ips: ['10.244.1.11', 'fd00:244:1::11'], node: 'n1', ports: [['http', 'TCP', 8081]] }),
  pod('shop', 'db-0', { labels: { app: 'db' }, ips: ['10.244.2.20'], node: 'n2', ports: [['pg', 'TCP', 5432]] }),
  pod('shop', 'cache-0', { labels: { app: 'cache' }, ips: ['10.244.1.30'], node: 'n1' }),
  pod('tools', 'prom-0', { labels: { app: 'prometheus' }, ips: ['10.244.2.40', 'fd00:244:2::40'], node: 'n2' }),
  pod('tools', 'agent', { labels: { app: 'agent' }, ips: ['192.0.2.1'], node: 'n1', hostNetwork: true }),
];

const POLICIES: V1NetworkPolicy[] = [
  policy('shop', 'default-deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
  policy('shop', 'web', {
    podSelector: { matchLabels: { app: 'web' } },
    ingress: [
      { from: [{ ipBlock: { cidr: '198.51.100.0/24', except: ['198.51.100.128/25', '198.51.100.192/26'] } }, { ipBlock: { cidr: '2001:db8::/32' } }], ports: [{ port: 'http' }] },
      { from: [{ namespaceSelector: { matchLabels: { team: 'ops' } }, podSelector: { matchLabels: { app: 'prometheus' } } }], ports: [{ port: 'metrics' }] },
    ],
    egress: [{ to: [{ podSelector: { matchLabels: { app: 'db' } } }], ports: [{ port: 'pg' }] }, { to: [{ podSelector: { matchLabels: { app: 'cache' } } }], ports: [{ port: 6379 }, { port: 11211, endPort: 11212, protocol: 'UDP' }] }],
  }),
  policy('shop', 'dns', { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ port: 53, protocol: 'UDP' }, { port: 53 }] }] }),
  policy('shop', 'cache.v1', { podSelector: { matchLabels: { app: 'cache' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ protocol: 'TCP' }] }] }),
];

function planOf(pods: readonly V1Pod[], policies: readonly V1NetworkPolicy[]): LocalPlan {
  return localPlan(buildCluster({ pods, namespaces: NAMESPACES, policies }), NODE, { podCIDRs: POD_CIDRS });
}

export interface FullCase {
  readonly name: string;
  readonly plan: LocalPlan;
  /** --log-denied: nft log / iptables LOG behind a rate limit, or to an nflog group. */
  readonly logDenied: false | { readonly ratePerSecond?: number; readonly group?: number };
}

export interface UpdateCase {
  readonly name: string;
  readonly prev: LocalPlan;
  readonly next: LocalPlan;
}

export function fullCases(): FullCase[] {
  return [
    { name: 'empty', plan: planOf([], []), logDenied: false },
    { name: 'unisolated', plan: planOf(PODS, []), logDenied: false },
    { name: 'shop', plan: planOf(PODS, POLICIES), logDenied: false },
    { name: 'shop-log-denied', plan: planOf(PODS, POLICIES), logDenied: { ratePerSecond: 10 } },
    { name: 'shop-nflog', plan: planOf(PODS, POLICIES), logDenied: { group: 7 } },
    {
      // The whole address space (hash:net cannot hold a /0) and more ports than one multiport match takes.
      name: 'wide',
      plan: planOf(PODS, [
        policy('shop', 'internet', {
          podSelector: { matchLabels: { app: 'web' } },
          policyTypes: ['Egress'],
          egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '192.168.0.0/16'] } }, { ipBlock: { cidr: '::/0', except: ['fd00::/8'] } }] }],
        }),
        policy('shop', 'many-ports', {
          podSelector: { matchLabels: { app: 'cache' } },
          ingress: [{ ports: [...Array.from({ length: 14 }, (_, i) => ({ port: 7000 + i })), { port: 8000, endPort: 8100 }, { port: 9000, protocol: 'SCTP' }] }],
        }),
      ]),
      logDenied: false,
    },
    {
      name: 'rejected',
      plan: planOf(PODS, [policy('shop', 'typo', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['192.168.0.0/16'] } }] }] }), POLICIES[3]!]),
      logDenied: false,
    },
  ];
}

const relabel = (p: V1Pod, labels: Record<string, string>): V1Pod => ({ ...p, metadata: { ...p.metadata, labels } });

export function updateCases(): UpdateCase[] {
  const base = planOf(PODS, POLICIES);
  const web2 = pod('shop', 'web-2', { labels: { app: 'web' }, ips: ['10.244.1.12'], node: 'n1', ports: [['http', 'TCP', 8080]] });
  const changedWeb = policy('shop', 'web', {
    podSelector: { matchLabels: { app: 'web' } },
    ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'ops' } } }], ports: [{ port: 8080 }] }],
  });
  return [
    { name: 'pod-added', prev: base, next: planOf([...PODS, web2], POLICIES) },
    { name: 'pod-deleted', prev: base, next: planOf(PODS.filter((p) => p.metadata!.name !== 'web-1'), POLICIES) },
    // cache-0 becomes a web pod: it changes groups and moves between peer sets.
    { name: 'label-changed', prev: base, next: planOf(PODS.map((p) => (p.metadata!.name === 'cache-0' ? relabel(p, { app: 'web' }) : p)), POLICIES) },
    { name: 'policy-changed', prev: base, next: planOf(PODS, [POLICIES[0]!, changedWeb, POLICIES[2]!, POLICIES[3]!]) },
    { name: 'policy-deleted', prev: base, next: planOf(PODS, POLICIES.filter((p) => p.metadata!.name !== 'web')) },
    { name: 'all-policies-deleted', prev: base, next: planOf(PODS, []) },
  ];
}
