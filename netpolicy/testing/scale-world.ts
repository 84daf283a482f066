// A cluster that grows the way real ones do: more tenants (namespaces), each
// of the same shape. 50 pods and 25 policies per namespace, so `pods` pods
// come with pods/2 policies; ten nodes. Shared by the scale test and
// plan.bench.ts.
//
// Per namespace i (team t<i%4>), pods p = 0..49 with app=app<p%10> and a
// named port http (8080/TCP), and policies:
//   - deny: default deny ingress;
//   - in-<a> (10): app<a> admits app<a+1> of its namespace on 8080 and on http;
//   - team-<a> (10): app<a> admits app<a> of every namespace of its team on 80-90;
//   - out-<a> (4): app<a> may send to 10.0.0.0/8 except its namespace's /24,
//     and to any pod of its namespace on http.
import type { V1Namespace, V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { namespace, pod, policy } from './fixtures.ts';

export const SCALE_NODES = 10;

export function scaleWorld(pods: number): { pods: V1Pod[]; namespaces: V1Namespace[]; policies: V1NetworkPolicy[] } {
  const nsCount = Math.ceil(pods / 50);
  const out = { pods: [] as V1Pod[], namespaces: [] as V1Namespace[], policies: [] as V1NetworkPolicy[] };
  for (let i = 0; i < nsCount; i++) {
    const ns = `ns${i}`;
    out.namespaces.push(namespace(ns, { team: `t${i % 4}` }));
    for (let p = 0; p < 50 && out.pods.length < pods; p++) {
      const n = out.pods.length;
      out.pods.push(
        pod(ns, `pod${p}`, {
          labels: { app: `app${p % 10}` },
          ips: [`10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`],
          node: `n${(i + Math.floor(p / 10) + p) % SCALE_NODES}`,
          ports: [['http', 'TCP', 8080]],
        }),
      );
    }
    out.policies.push(policy(ns, 'deny', { podSelector: {} }));
    for (let a = 0; a < 10; a++) {
      const sel = { matchLabels: { app: `app${a}` } };
      out.policies.push(policy(ns, `in-${a}`, { podSelector: sel, ingress: [{ from: [{ podSelector: { matchLabels: { app: `app${(a + 1) % 10}` } } }], ports: [{ port: 8080 }, { port: 'http' }] }] }));
      out.policies.push(
        policy(ns, `team-${a}`, {
          podSelector: sel,
          ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: `t${i % 4}` } }, podSelector: sel }], ports: [{ port: 80, endPort: 90 }] }],
        }),
      );
    }
    for (let a = 0; a < 4; a++) {
      out.policies.push(
        policy(ns, `out-${a}`, {
          podSelector: { matchLabels: { app: `app${a}` } },
          policyTypes: ['Egress'],
          egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: [`10.200.${i % 256}.0/24`] } }] }, { to: [{ podSelector: {} }], ports: [{ port: 'http' }] }],
        }),
      );
    }
  }
  return out;
}
