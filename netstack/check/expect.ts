// The expected side of `netstack check`, pure: from the objects the daemons
// read (Pods, Namespaces, NetworkPolicies, Services, EndpointSlices) and the
// cluster's topology (which pod lives in which netns on which node), the list
// of probes and what each should see.
//
// Policy verdicts come from the netpolicy model (buildCluster + evaluate):
// nothing here decides what a policy allows. A Service with ready endpoints
// answers as its endpoints do (each one asked of the model); one without is
// refused (kube-proxy rejects). ICMP is evaluated as a protocol without ports:
// only rules without `ports` admit it.
import type { V1EndpointSlice, V1Namespace, V1NetworkPolicy, V1Pod, V1Service, V1ServicePort } from '@kubernetes/client-node';
import { IPAddr, type Family } from '../../lib/ip/index.ts';
import { LABEL_SERVICE_NAME } from '../../lib/kube/index.ts';
import { clusterIPForFamily } from '../../kube-proxy/tracker/service.ts';
import { buildCluster, evaluate, type Cluster, type Endpoint, type EvaluateProtocol, type Pod, type Verdict } from '../../netpolicy/model/index.ts';
import type { Expectation, Probe, ProbeProtocol, ProbeSource, ProbeTarget, Section } from './types.ts';

/** The objects of the manifest directory that decide reachability. */
export interface CheckObjects {
  readonly pods: readonly V1Pod[];
  readonly namespaces: readonly V1Namespace[];
  readonly policies: readonly V1NetworkPolicy[];
  readonly services: readonly V1Service[];
  /** The directory's own slices and the ones derived from Pods (lib/kube ManifestDir serves both). */
  readonly slices: readonly V1EndpointSlice[];
}

/** A pod as the cluster runs it. */
export interface TopologyPod {
  /** namespace/name */
  readonly key: string;
  readonly node: string;
  /** Path of its network namespace. */
  readonly netns: string;
  readonly ips: readonly string[];
}

export interface Topology {
  readonly pods: readonly TopologyPod[];
  readonly nodes: readonly { readonly name: string; readonly ips: readonly string[] }[];
  /** A host outside the cluster on the nodes' network, for NodePorts. */
  readonly external?: { readonly netns: string; readonly ips: readonly string[] } | undefined;
}

export interface Plan {
  readonly probes: Probe[];
  /** Disagreements between the topology and the objects (a pod without a manifest, other addresses). */
  readonly problems: string[];
  readonly cluster: Cluster;
}

/** `ip:port`, with brackets for IPv6. */
export function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

const ipOf = (ips: readonly string[], family: Family): string | undefined => ips.map((s) => IPAddr.parse(s)).find((ip) => ip?.family === family)?.toString();

export function planProbes(objs: CheckObjects, topo: Topology, families: readonly Family[]): Plan {
  const cluster = buildCluster({ pods: objs.pods, namespaces: objs.namespaces, policies: objs.policies });
  const problems: string[] = [];
  const pods: { topo: TopologyPod; model: Pod }[] = [];
  for (const t of topo.pods) {
    const model = cluster.pods.get(t.key);
    if (!model) {
      problems.push(`pod ${t.key} runs on ${t.node} but has no Pod object in the manifests`);
      continue;
    }
    const want = new Set(t.ips.map((s) => IPAddr.parse(s)?.toString() ?? s));
    const have = new Set(model.ips.map((ip) => ip.toString()));
    if (want.size !== have.size || [...want].some((ip) => !have.has(ip))) {
      problems.push(`pod ${t.key}: its netns has ${[...want].join(', ') || 'no address'}, its Pod object says ${[...have].join(', ') || 'no address'}`);
    }
    if (model.nodeName !== undefined && model.nodeName !== t.node) problems.push(`pod ${t.key} runs on ${t.node}, its Pod object says ${model.nodeName}`);
    pods.push({ topo: t, model });
  }
  const running = new Set(topo.pods.map((t) => t.key));
  for (const model of cluster.pods.values()) {
    if (!running.has(model.key) && !model.hostNetwork && model.ips.length > 0) {
      problems.push(`Pod object ${model.key} (${model.ips.join(', ')}) has no running pod: traffic to it goes nowhere`);
    }
  }

  const probes: Probe[] = [];
  const add = (section: Section, family: Family, from: ProbeSource, to: ProbeTarget, row: string, column: string, expect: Expectation): void => {
    probes.push({ id: probes.length + 1, section, family, from, to, row, column, expect });
  };

  for (const family of families) {
    const sources = pods.flatMap(({ topo: t, model }) => {
      const ip = ipOf(t.ips, family);
      return ip ? [{ t, model, from: { label: t.key, netns: t.netns, ip } satisfies ProbeSource }] : [];
    });
    const ask = (src: Endpoint, dst: Endpoint, port: number, protocol: EvaluateProtocol): Verdict => evaluate(cluster, src, dst, port, protocol, { family });

    // ICMP echo between pods on different nodes.
    for (const dst of sources) {
      for (const src of sources) {
        if (src.t.node === dst.t.node) continue;
        const v = ask({ pod: src.t.key }, { pod: dst.t.key }, 0, 'ICMP');
        add('icmp', family, src.from, { ip: dst.from.ip, port: 0, protocol: 'ICMP' }, dst.t.key, src.t.key, fromVerdict(v));
      }
    }

    // Every declared port of every other pod: the policy matrix.
    for (const dst of sources) {
      for (const cp of dst.model.ports) {
        if (cp.protocol === 'SCTP') continue;
        const row = `${dst.t.key} ${cp.port}/${cp.protocol}${cp.name ? ` (${cp.name})` : ''}`;
        for (const src of sources) {
          if (src.t.key === dst.t.key) continue;
          const v = ask({ pod: src.t.key }, { pod: dst.t.key }, cp.port, cp.protocol);
          add('pod', family, src.from, { ip: dst.from.ip, port: cp.port, protocol: cp.protocol }, row, src.t.key, fromVerdict(v));
        }
      }
    }

    for (const svc of [...objs.services].sort((a, b) => cmp(objKey(a), objKey(b)))) {
      if (svc.spec?.type === 'ExternalName') continue;
      const key = objKey(svc);
      const clusterIP = clusterIPForFamily(svc, family);
      const vip = IPAddr.parse(clusterIP)?.toString();
      for (const sp of svc.spec?.ports ?? []) {
        const protocol = sp.protocol ?? 'TCP';
        if (protocol !== 'TCP' && protocol !== 'UDP') continue;
        const eps = endpointsOf(svc, sp, objs.slices, family);
        if (vip) {
          const row = `${key} ${hostPort(vip, sp.port)}/${protocol}`;
          for (const src of sources) {
            add('service', family, src.from, { ip: vip, port: sp.port, protocol }, row, src.t.key, throughService(ask, { pod: src.t.key }, eps, protocol));
          }
        }
        const nodePort = sp.nodePort;
        const ext = topo.external;
        const extIP = ext ? ipOf(ext.ips, family) : undefined;
        if (!nodePort || !ext || !extIP || (svc.spec?.type !== 'NodePort' && svc.spec?.type !== 'LoadBalancer')) continue;
        const local = svc.spec?.externalTrafficPolicy === 'Local';
        const row = `${key} :${nodePort}/${protocol} (port ${sp.port})`;
        for (const node of topo.nodes) {
          const nodeIP = ipOf(node.ips, family);
          if (!nodeIP) continue;
          const from: ProbeSource = { label: 'external', netns: ext.netns, ip: extIP };
          const to: ProbeTarget = { ip: nodeIP, port: nodePort, protocol };
          const usable = local ? eps.filter((e) => e.node === node.name) : eps;
          const expect: Expectation =
            local && usable.length === 0 && eps.length > 0
              ? { outcome: 'blocked', reason: `externalTrafficPolicy Local and no endpoint on ${node.name}: dropped` }
              : throughService(ask, { ip: extIP }, usable, protocol);
          add('nodeport', family, from, to, row, node.name, expect);
        }
      }
    }
  }
  return { probes, problems, cluster };
}

interface ServiceEndpoint {
  readonly ip: IPAddr;
  readonly port: number;
  readonly node: string | undefined;
}

/** The ready endpoints of one Service port in one family, from the Service's EndpointSlices. */
export function endpointsOf(svc: V1Service, sp: V1ServicePort, slices: readonly V1EndpointSlice[], family: Family): ServiceEndpoint[] {
  const ns = svc.metadata?.namespace ?? 'default';
  const name = svc.metadata?.name ?? '';
  const protocol = sp.protocol ?? 'TCP';
  const out = new Map<string, ServiceEndpoint>();
  for (const s of slices) {
    if ((s.metadata?.namespace ?? 'default') !== ns || s.metadata?.labels?.[LABEL_SERVICE_NAME] !== name) continue;
    if (s.addressType !== `IPv${family}`) continue;
    const port = (s.ports ?? []).find((p) => (p.name ?? '') === (sp.name ?? '') && (p.protocol ?? 'TCP') === protocol)?.port;
    if (port === undefined || port === null) continue;
    for (const ep of s.endpoints ?? []) {
      // An unset ready condition means ready (discovery.k8s.io/v1).
      if (ep.conditions?.ready === false) continue;
      for (const a of ep.addresses) {
        const ip = IPAddr.parse(a);
        if (ip?.family !== family) continue;
        out.set(hostPort(ip.toString(), port), { ip, port, node: ep.nodeName ?? undefined });
      }
    }
  }
  return [...out.values()].sort((a, b) => a.ip.compare(b.ip) || a.port - b.port);
}

/** What a connection through a Service should see: refused without endpoints, else what the model says of each endpoint. */
function throughService(ask: (src: Endpoint, dst: Endpoint, port: number, protocol: EvaluateProtocol) => Verdict, src: Endpoint, eps: readonly ServiceEndpoint[], protocol: ProbeProtocol): Expectation {
  if (eps.length === 0) return { outcome: 'refused', reason: 'no ready endpoints: kube-proxy rejects' };
  const verdicts = eps.map((ep) => ({ ep, v: ask(src, { ip: ep.ip }, ep.port, protocol) }));
  const allowed = verdicts.filter((x) => x.v.allowed);
  const n = eps.length;
  if (allowed.length === n) return { outcome: 'open', reason: `${n === 1 ? 'its endpoint allows' : `all ${n} endpoints allow`}: ${verdictReason(verdicts[0]!.v)}` };
  if (allowed.length === 0) return { outcome: 'blocked', reason: `${n === 1 ? 'its endpoint denies' : `all ${n} endpoints deny`}: ${verdictReason(verdicts[0]!.v)}` };
  const list = (xs: typeof verdicts): string => xs.map((x) => hostPort(x.ep.ip.toString(), x.ep.port)).join(', ');
  return { outcome: 'either', reason: `${allowed.length} of ${n} endpoints allow (${list(allowed)}), the others deny: the answer depends on the endpoint chosen` };
}

/** A direct connection: open when the model allows it, else blocked (a policy drops it). */
function fromVerdict(v: Verdict): Expectation {
  return { outcome: v.allowed ? 'open' : 'blocked', reason: verdictReason(v) };
}

/** The direction that decides: the one that denies, else the destination's ingress. */
function verdictReason(v: Verdict): string {
  if (!v.egress.allowed) return `egress: ${v.egress.reason}`;
  return `ingress: ${v.ingress.reason}`;
}

const objKey = (o: { metadata?: { namespace?: string; name?: string } }): string => `${o.metadata?.namespace ?? 'default'}/${o.metadata?.name ?? ''}`;
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
