// Micro-benchmark of the pure iptables renderer at 10,000 services × 10
// endpoints (issue 8's scale; not a test, nothing touches the kernel).
//   npx esbuild kube-proxy/render/iptables.bench.ts --bundle --platform=node \
//     --format=esm --packages=external --outfile=/tmp/kp-bench.mjs && node /tmp/kp-bench.mjs [services] [endpoints]
// Prints: tracker fold time, cold full render (every hash computed), warm full
// render (hashes cached on the model objects), a partial render after one
// endpoint change, and the restore text size.
import { performance } from 'node:perf_hooks';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import { Endpoints, EndpointsChangeTracker, LABEL_SERVICE_NAME, ServiceChangeTracker, ServicePorts } from '../tracker/index.ts';
import { IPTablesRenderer, type IPTablesOptions } from './iptables.ts';
import { detectLocalByCIDR } from './options.ts';

const [nServices = 10_000, nEndpoints = 10] = process.argv.slice(2).map(Number);

const v4 = (n: number): string => `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
const CLUSTER_BASE = IPAddr.mustParse('10.96.0.0').value;
const POD_BASE = IPAddr.mustParse('10.128.0.0').value;

function service(i: number): V1Service {
  return {
    kind: 'Service',
    metadata: { namespace: `ns${i % 100}`, name: `svc${i}` },
    spec: {
      type: i % 10 === 0 ? 'NodePort' : 'ClusterIP',
      clusterIP: v4(Number(CLUSTER_BASE) + i + 1),
      ports: [{ name: 'http', port: 80, protocol: 'TCP', ...(i % 10 === 0 ? { nodePort: 30000 + (i % 2000) } : {}) }],
    },
  };
}

function slice(i: number, shift = 0): V1EndpointSlice {
  return {
    kind: 'EndpointSlice',
    addressType: 'IPv4',
    metadata: { namespace: `ns${i % 100}`, name: `svc${i}-abc`, labels: { [LABEL_SERVICE_NAME]: `svc${i}` } },
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: Array.from({ length: nEndpoints }, (_, j) => ({
      addresses: [v4(Number(POD_BASE) + i * nEndpoints + j + shift)],
      nodeName: `node${j % 50}`,
    })),
  };
}

const options: IPTablesOptions = {
  family: 4,
  nodeName: 'node0',
  localDetector: detectLocalByCIDR(IPPrefix.mustParse('10.128.0.0/9')),
  masqueradeBit: 14,
  nfacct: true,
  randomFully: true,
};

const ms = (t0: number): string => `${(performance.now() - t0).toFixed(1)} ms`;

const svcTracker = new ServiceChangeTracker(4);
const epTracker = new EndpointsChangeTracker(4, 'node0');
const services = new ServicePorts();
const endpoints = new Endpoints();
let t = performance.now();
for (let i = 0; i < nServices; i++) {
  svcTracker.update(undefined, service(i));
  epTracker.endpointSliceUpdate(slice(i), false);
}
services.update(svcTracker);
endpoints.update(epTracker);
console.log(`${nServices} services × ${nEndpoints} endpoints`);
console.log(`trackers (objects → model):   ${ms(t)}`);

const renderer = new IPTablesRenderer();
const renderIPTables = renderer.render.bind(renderer);
const input = { services: services.map, endpoints: endpoints.map };
t = performance.now();
let r = renderIPTables(input, options);
console.log(`full render, cold:            ${ms(t)}  (${(r.text.length / 1e6).toFixed(1)} MB, ${r.natRulesTotal + r.filterRules} rules)`);
const runs = Number(process.env['KP_BENCH_RUNS'] ?? 10);
t = performance.now();
for (let k = 0; k < runs; k++) r = renderIPTables(input, options);
console.log(`full render, warm (mean of ${runs}): ${((performance.now() - t) / runs).toFixed(1)} ms`);

// Steady state of the daemon: one endpoint of one service changes per sync.
// The chains in the kernel, kept as the daemon keeps them: minus deleted, plus written.
const kernelChains = new Set(r.writtenChains);
let partialTotal = 0;
let foldTotal = 0;
let last = r;
for (let k = 1; k <= runs; k++) {
  epTracker.endpointSliceUpdate(slice(42, k % 2), false);
  t = performance.now();
  const changed = endpoints.update(epTracker).updatedServices;
  foldTotal += performance.now() - t;
  t = performance.now();
  last = renderIPTables({ ...input, updatedServices: changed, existingNatChains: kernelChains }, options);
  for (const c of last.deletedChains) kernelChains.delete(c);
  for (const c of last.writtenChains) kernelChains.add(c);
  partialTotal += performance.now() - t;
}
console.log(`one endpoint change: fold ${(foldTotal / runs).toFixed(1)} ms + partial render ${(partialTotal / runs).toFixed(1)} ms (mean of ${runs}; ${(last.text.length / 1e3).toFixed(0)} kB, deleted ${last.deletedChains.length} chain)`);
console.log(`heap used: ${(process.memoryUsage().heapUsed / 1e6).toFixed(0)} MB`);
