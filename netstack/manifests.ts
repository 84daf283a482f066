// The cluster's manifest directory: what an API server would hold. `up` and
// `apply` write one file per object (<kind>-<namespace>-<name>.yaml), so a
// changed object replaces its file and the daemons' watch sees an update.
// Like the API server, they fill what a manifest leaves to it: a Service's
// ClusterIP(s) from the service range and NodePorts from 30000-32767.
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { NetError } from '../lib/errors.ts';
import { writeFileAtomic } from '../lib/fs.ts';
import { IPAddr, IPPrefix } from '../lib/ip/index.ts';
import { isManifestName, parseManifest } from '../lib/kube/manifest.ts';
import type { ManifestObject } from '../lib/kube/manifest.ts';
import type { KubernetesObject, V1Service } from '../lib/kube/types.ts';

export const NODEPORT_MIN = 30000;
export const NODEPORT_MAX = 32767;

/** Every object in FILE or in the manifest files of DIR (sorted by name). Problems of kind `warn` are errors. */
export async function readObjects(path: string): Promise<ManifestObject[]> {
  let files: string[];
  try {
    const st = await stat(path);
    files = st.isDirectory() ? (await readdir(path)).filter(isManifestName).sort().map((f) => join(path, f)) : [path];
  } catch (err) {
    throw new NetError('MANIFEST_NOT_FOUND', `${path}: ${(err as Error).message}`, { cause: err });
  }
  const out: ManifestObject[] = [];
  for (const f of files) {
    const parsed = parseManifest(await readFile(f, 'utf8'), f);
    const bad = parsed.problems.filter((p) => p.level === 'warn');
    if (bad.length > 0) throw new NetError('INVALID_MANIFEST', `${f}: ${bad.map((p) => `[${p.index}] ${p.message}`).join('; ')}`);
    out.push(...parsed.objects);
  }
  return out;
}

export function objectFileName(kind: string, o: KubernetesObject): string {
  const ns = o.metadata?.namespace ?? '';
  const name = o.metadata?.name ?? '';
  const safe = (s: string): string => s.replace(/[^A-Za-z0-9_.-]/g, '_');
  return `${kind.toLowerCase()}-${ns ? safe(ns) + '-' : ''}${safe(name)}.yaml`;
}

/** Writes one object to its file in `dir` (atomically: the daemons never read half a file). */
export async function writeObject(dir: string, kind: string, o: KubernetesObject): Promise<string> {
  const p = join(dir, objectFileName(kind, o));
  await writeFileAtomic(p, stringify(o));
  return p;
}

/** Addresses and ports already taken by the Services in `services`. */
export function takenBy(services: readonly V1Service[]): { ips: Set<string>; nodePorts: Set<number> } {
  const ips = new Set<string>();
  const nodePorts = new Set<number>();
  for (const s of services) {
    for (const ip of [s.spec?.clusterIP, ...(s.spec?.clusterIPs ?? [])]) if (ip && ip !== 'None') ips.add(ip);
    for (const p of s.spec?.ports ?? []) if (p.nodePort) nodePorts.add(p.nodePort);
  }
  return { ips, nodePorts };
}

/**
 * Fills a Service as the API server would: clusterIP(s) (one per family of
 * `serviceCIDRs` when ipFamilyPolicy asks for it; first family otherwise)
 * and nodePorts for NodePort/LoadBalancer. Keeps what is given; an explicit
 * address outside the range is an error. Returns a new object.
 */
export function allocateService(svc: V1Service, serviceCIDRs: readonly string[], taken: { ips: Set<string>; nodePorts: Set<number> }): V1Service {
  const s = structuredClone(svc);
  const spec = (s.spec ??= {});
  const ranges = serviceCIDRs.map((c) => IPPrefix.mustParse(c));
  const headless = spec.clusterIP === 'None';
  if (!headless && spec.type !== 'ExternalName') {
    const wantFamilies = spec.ipFamilyPolicy === 'PreferDualStack' || spec.ipFamilyPolicy === 'RequireDualStack' ? ranges.map((r) => r.family) : [ranges[0]!.family];
    const have = [spec.clusterIP, ...(spec.clusterIPs ?? [])].filter((x): x is string => !!x);
    const ips: string[] = [];
    const families = new Set(ranges.map((r) => r.family));
    // Addresses of a family the cluster does not run are dropped, as the API
    // server does for PreferDualStack on a single-stack cluster.
    for (const ip of have) if (!ips.includes(ip) && families.has(IPAddr.parse(ip)?.family ?? 4)) ips.push(ip);
    for (const ip of ips) {
      const a = IPAddr.parse(ip);
      if (!a || !ranges.some((r) => r.contains(a))) throw new NetError('INVALID_MANIFEST', `Service ${s.metadata?.namespace}/${s.metadata?.name}: clusterIP ${ip} is not in the service range ${serviceCIDRs.join(',')}`);
    }
    for (const fam of wantFamilies) {
      if (ips.some((ip) => IPAddr.parse(ip)?.family === fam)) continue;
      const r = ranges.find((x) => x.family === fam)!;
      ips.push(nextFree(r, taken.ips));
    }
    spec.clusterIP = ips[0]!;
    spec.clusterIPs = ips;
    spec.ipFamilies = ips.map((ip) => (IPAddr.parse(ip)!.family === 6 ? 'IPv6' : 'IPv4'));
    spec.ipFamilyPolicy ??= ips.length > 1 ? 'PreferDualStack' : 'SingleStack';
  }
  spec.type ??= 'ClusterIP';
  if (spec.type === 'NodePort' || spec.type === 'LoadBalancer') {
    for (const p of spec.ports ?? []) {
      if (p.nodePort) continue;
      let n = NODEPORT_MIN;
      while (taken.nodePorts.has(n) && n <= NODEPORT_MAX) n++;
      if (n > NODEPORT_MAX) throw new NetError('NODEPORTS_EXHAUSTED', 'no free NodePort left');
      p.nodePort = n;
      taken.nodePorts.add(n);
    }
  }
  for (const p of spec.ports ?? []) p.protocol ??= 'TCP';
  return s;
}

/** The first free address of the range from .10 on (the first few are conventionally kept). */
function nextFree(r: IPPrefix, taken: Set<string>): string {
  const size = r.size();
  for (let n = 10n; n < size - 1n; n++) {
    const ip = r.network().add(n).toString();
    if (!taken.has(ip)) {
      taken.add(ip);
      return ip;
    }
  }
  throw new NetError('SERVICE_RANGE_EXHAUSTED', `no free address left in ${r.toString()}`);
}

/** The Services currently in the manifest directory. */
export async function servicesIn(dir: string): Promise<V1Service[]> {
  const objs = await readObjects(dir).catch((err: unknown) => {
    if (err instanceof NetError && err.code === 'MANIFEST_NOT_FOUND') return [];
    throw err;
  });
  return objs.filter((o) => o.kind === 'Service').map((o) => o.obj as V1Service);
}
