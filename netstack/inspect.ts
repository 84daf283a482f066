// What `exec` and `logs` resolve: a node, pod or special host to its
// namespace, and a daemon (on a node) or a pod's server to its log file.
import { NetError } from '../lib/errors.ts';
import { daemonLog } from './cluster.ts';
import { DAEMONS, findNode, findPod } from './state.ts';
import type { DaemonName, State } from './state.ts';

/** The netns path of NODE, POD, NAMESPACE/POD, or one of underlay, etcd, external. */
export function targetNetns(s: State, target: string): string {
  const special: Record<string, string> = { underlay: s.underlay.netns.path, etcd: s.etcd.netns.path, external: s.external.netns.path };
  const path = findNode(s, target)?.netns.path ?? special[target] ?? findPod(s, target)?.netns.path;
  if (!path) {
    throw new NetError(
      'TARGET_NOT_FOUND',
      `no node or pod "${target}" (nodes: ${s.nodes.map((n) => n.name).join(', ')}; pods: ${s.pods.map((p) => `${p.namespace}/${p.name}`).join(', ')}; also underlay, etcd, external)`,
    );
  }
  return path;
}

/** The log file of `daemon` on `node`, of etcd, or of a pod's server (`server POD`). */
export function logPath(s: State, daemon: string, node: string | undefined): string {
  if (daemon === 'etcd') return s.procs.find((p) => p.role === 'etcd')?.log ?? `${s.dirs.logs}/etcd.log`;
  if (daemon === 'server') {
    const pod = node ? findPod(s, node) : undefined;
    if (!pod) throw new NetError('TARGET_NOT_FOUND', `no pod "${node ?? ''}"`);
    const rec = s.procs.find((p) => p.role === 'server' && p.owner === `${pod.namespace}/${pod.name}`);
    if (!rec) throw new NetError('TARGET_NOT_FOUND', `pod ${pod.namespace}/${pod.name} has no server`);
    return rec.log;
  }
  if (!(DAEMONS as readonly string[]).includes(daemon)) throw new NetError('INVALID_ARGUMENT', `unknown daemon "${daemon}" (${DAEMONS.join(', ')}, etcd, server)`);
  const n = node ? findNode(s, node) : undefined;
  if (!n) throw new NetError('TARGET_NOT_FOUND', `no node "${node ?? ''}" (${s.nodes.map((x) => x.name).join(', ')})`);
  return daemonLog(s, n.name, daemon as DaemonName);
}
