// `netstack status`: nodes, leases, pods, services with endpoints, policies
// and the health of every daemon, read from the state, etcd, the manifest
// directory and each daemon's /healthz (over the underlay).
import { enterNetns } from '../lib/netns/index.ts';
import { deriveEndpointSlices } from '../lib/kube/endpoints.ts';
import type { V1EndpointSlice, V1NetworkPolicy, V1Pod, V1Service } from '../lib/kube/types.ts';
import { errorMessage } from '../lib/errors.ts';
import { cniRuntime, conflists, httpGet, leases, rtConf } from './cluster.ts';
import { readObjects } from './manifests.ts';
import { isAlive, DAEMONS } from './state.ts';
import type { PodState, State } from './state.ts';

export interface StatusReport {
  readonly text: string;
  /** Every recorded daemon answers /healthz with 200. */
  readonly healthy: boolean;
}

export async function status(s: State): Promise<StatusReport> {
  const lines: string[] = [];
  let healthy = s.phase === 'ready';
  const o = s.options;
  lines.push(`cluster ${s.prefix} (${s.phase}): ${o.nodes} nodes, backend ${o.backend}, proxy ${o.proxyMode}, policy ${o.policyBackend}${o.dualStack ? ', dual-stack' : ''}`);
  const leave = enterNetns(s.underlay.netns.path);
  try {
    let leaseText: string[];
    try {
      const l = await leases(s);
      leaseText = Object.entries(l).map(([k, v]) => {
        let ip = '';
        try {
          ip = (JSON.parse(v) as { PublicIP?: string }).PublicIP ?? '';
        } catch {
          // keep the raw key
        }
        return `  ${k.slice(k.lastIndexOf('/') + 1).replace('-', '/')}  → ${ip}`;
      });
    } catch (err) {
      healthy = false;
      leaseText = [`  (etcd ${s.etcd.endpoint}: ${errorMessage(err)})`];
    }
    lines.push('nodes:');
    for (const n of s.nodes) {
      const health: string[] = [];
      for (const d of DAEMONS) {
        const proc = s.procs.find((p) => p.role === d && p.owner === n.name);
        const r = proc && isAlive(proc) ? await httpGet(n.ip, n.healthz[d], '/healthz') : undefined;
        const ok = r?.status === 200;
        if (!ok) healthy = false;
        health.push(`${d} ${!proc ? 'not started' : !isAlive(proc) ? 'exited' : ok ? 'ok' : r ? `unhealthy (${r.status})` : 'no answer'}`);
      }
      lines.push(`  ${n.name}  ${[n.ip, n.ip6].filter(Boolean).join(' ')}  ${health.join(', ')}`);
    }
    const etcd = s.procs.find((p) => p.role === 'etcd');
    lines.push(`etcd ${s.etcd.endpoint}: ${etcd && isAlive(etcd) ? 'running' : 'not running'}`);
    if (!etcd || !isAlive(etcd)) healthy = false;
    lines.push('leases:', ...leaseText);
  } finally {
    leave();
  }
  lines.push('pods:');
  for (const p of s.pods) {
    const srv = s.procs.find((x) => x.role === 'server' && x.owner === `${p.namespace}/${p.name}`);
    const cni = await cniCheck(s, p);
    if (cni !== 'ok' || !srv || !isAlive(srv)) healthy = false;
    lines.push(`  ${p.namespace}/${p.name}  ${p.ips.join(' ') || '(no IP)'}  on ${p.node}  ports ${p.ports.map((x) => `${x.port}/${x.protocol}`).join(',') || '-'}  server ${srv && isAlive(srv) ? 'running' : 'not running'}  cni ${cni}`);
  }
  const objs = await readObjects(s.dirs.manifests).catch(() => []);
  const services = objs.filter((x) => x.kind === 'Service').map((x) => x.obj as V1Service);
  const pods = objs.filter((x) => x.kind === 'Pod').map((x) => x.obj as V1Pod);
  const given = objs.filter((x) => x.kind === 'EndpointSlice').map((x) => x.obj as V1EndpointSlice);
  const slices = [...given, ...deriveEndpointSlices(services, pods, given)];
  lines.push('services:');
  for (const svc of services) {
    const ns = svc.metadata?.namespace ?? 'default';
    const name = svc.metadata?.name ?? '';
    const eps = slices
      .filter((sl) => sl.metadata?.namespace === ns && sl.metadata?.labels?.['kubernetes.io/service-name'] === name)
      .flatMap((sl) => (sl.endpoints ?? []).filter((e) => e.conditions?.ready !== false).flatMap((e) => e.addresses));
    const ports = (svc.spec?.ports ?? []).map((p) => `${p.port}${p.nodePort ? ':' + p.nodePort : ''}/${p.protocol ?? 'TCP'}`).join(',');
    lines.push(`  ${ns}/${name}  ${svc.spec?.type ?? 'ClusterIP'} ${(svc.spec?.clusterIPs ?? [svc.spec?.clusterIP]).join(',')}  ${ports}  → ${eps.join(', ') || '(no endpoints)'}`);
  }
  lines.push('network policies:');
  for (const np of objs.filter((x) => x.kind === 'NetworkPolicy').map((x) => x.obj as V1NetworkPolicy)) {
    const sel = np.spec?.podSelector?.matchLabels;
    lines.push(`  ${np.metadata?.namespace}/${np.metadata?.name}  pods ${sel && Object.keys(sel).length ? JSON.stringify(sel) : '(all)'}  ${(np.spec?.policyTypes ?? ['Ingress']).join('+')}`);
  }
  return { text: lines.join('\n'), healthy };
}

/** CNI CHECK of the pod's attachments (lo, eth0), as a runtime checks them: "ok" or what failed. */
async function cniCheck(s: State, p: PodState): Promise<string> {
  const n = s.nodes.find((x) => x.name === p.node);
  if (!n) return `no node ${p.node}`;
  const { pod, lo } = conflists(n);
  const rt = cniRuntime(s, n);
  try {
    await rt.check(lo, rtConf(p, 'lo'));
    await rt.check(pod, rtConf(p, 'eth0'));
    return 'ok';
  } catch (err) {
    return `CHECK failed: ${errorMessage(err)}`;
  }
}
