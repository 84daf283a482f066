// For the tests: the sample app as `up` would leave it (pods placed on nodes
// round-robin in manifest order, addresses and Ready filled in, Services
// filled as up fills them), as CheckObjects + Topology, without any kernel.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1EndpointSlice, V1Namespace, V1NetworkPolicy, V1Pod, V1Service } from '@kubernetes/client-node';
import { deriveEndpointSlices, isManifestName, parseManifest } from '../../lib/kube/index.ts';
import { allocateService, takenBy } from '../manifests.ts';
import type { CheckObjects, Topology } from './expect.ts';

const SAMPLE_DIR = fileURLToPath(new URL('../sample/', import.meta.url));

/** The sample's manifest files in the order a manifest directory reads them. */
export function sampleFiles(): { name: string; text: string }[] {
  return readdirSync(SAMPLE_DIR)
    .filter(isManifestName)
    .sort()
    .map((name) => ({ name, text: readFileSync(join(SAMPLE_DIR, name), 'utf8') }));
}

export interface SampleWorld {
  readonly objs: CheckObjects;
  readonly topo: Topology;
}

export interface SampleOptions {
  readonly nodes?: number;
  readonly dualStack?: boolean;
  /** Changes the objects before slices are derived (a policy removed, a label changed). */
  readonly edit?: (o: { pods: V1Pod[]; namespaces: V1Namespace[]; policies: V1NetworkPolicy[]; services: V1Service[] }) => void;
}

export function sampleWorld(opts: SampleOptions = {}): SampleWorld {
  const nodeCount = opts.nodes ?? 3;
  const pods: V1Pod[] = [];
  const namespaces: V1Namespace[] = [];
  const policies: V1NetworkPolicy[] = [];
  const services: V1Service[] = [];
  for (const f of sampleFiles()) {
    for (const { kind, obj } of parseManifest(f.text, f.name).objects) {
      if (kind === 'Pod') pods.push(structuredClone(obj) as V1Pod);
      else if (kind === 'Namespace') namespaces.push(obj as V1Namespace);
      else if (kind === 'NetworkPolicy') policies.push(obj as V1NetworkPolicy);
      else if (kind === 'Service') services.push(obj as V1Service);
    }
  }
  const serviceCIDRs = ['10.96.0.0/16', ...(opts.dualStack ? ['fd00:10:96::/112'] : [])];
  const taken = takenBy(services);
  services.splice(0, services.length, ...services.map((s) => allocateService(s, serviceCIDRs, taken)));
  const nodes = Array.from({ length: nodeCount }, (_, i) => ({ name: `node-${i + 1}`, ips: [`192.0.2.${11 + i}`, ...(opts.dualStack ? [`2001:db8::${11 + i}`] : [])] }));
  const perNode = new Map<string, number>();
  const topoPods = pods.map((p, i) => {
    const node = nodes[i % nodeCount]!.name;
    const n = i % nodeCount + 1;
    const onNode = perNode.get(node) ?? 0;
    perNode.set(node, onNode + 1);
    const k = onNode + 2;
    const ips = [`10.244.${n}.${k}`, ...(opts.dualStack ? [`fd00:10:244:${n}::${k}`] : [])];
    p.spec = { ...p.spec!, nodeName: node };
    p.status = { phase: 'Running', podIP: ips[0]!, podIPs: ips.map((ip) => ({ ip })), conditions: [{ type: 'Ready', status: 'True' }] };
    const key = `${p.metadata!.namespace}/${p.metadata!.name}`;
    return { key, node, netns: `/var/run/netns/test-${p.metadata!.name}`, ips };
  });
  opts.edit?.({ pods, namespaces, policies, services });
  const slices: V1EndpointSlice[] = deriveEndpointSlices(services, pods, []);
  return {
    objs: { pods, namespaces, policies, services, slices },
    topo: { pods: topoPods, nodes, external: { netns: '/var/run/netns/test-external', ips: ['192.0.2.99', ...(opts.dualStack ? ['2001:db8::99'] : [])] } },
  };
}
