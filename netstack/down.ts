// `netstack down`: removes everything the state records, in reverse: pods'
// CNI attachments (DEL, as a runtime would), every process (by PID and start
// time), every process still inside one of the run's namespaces (started
// between a spawn and the state write that would have recorded it), every
// namespace (recorded ones and any left with the run prefix), then the
// files and the state dir. Works on a half-made cluster; idempotent: no
// state, nothing to do.
import { existsSync, readdirSync } from 'node:fs';
import { rm, rmdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { errorMessage, isNotFound } from '../lib/errors.ts';
import { isAtomicTempName } from '../lib/fs.ts';
import { NETNS_RUN_DIR, deleteNamedNetns } from '../lib/netns/index.ts';
import { cniRuntime, conflists, rtConf } from './cluster.ts';
import { nsInode, processesInNamespaces, stopProcesses } from './procs.ts';
import { LOCK_FILE, STATE_FILE, loadState, lockStateDir, statePath } from './state.ts';
import type { State } from './state.ts';

export interface DownResult {
  readonly found: boolean;
  readonly prefix?: string;
  readonly stopped: number;
  readonly namespaces: number;
  readonly problems: readonly string[];
}

/** Names under /var/run/netns that carry the run prefix. */
export function namespacesWithPrefix(prefix: string): string[] {
  try {
    return readdirSync(NETNS_RUN_DIR).filter((n) => n.startsWith(`${prefix}-`));
  } catch {
    return [];
  }
}

export async function down(stateDir: string, log: (msg: string) => void): Promise<DownResult> {
  if (!existsSync(stateDir)) {
    log(`netstack down: no cluster recorded in ${stateDir}; nothing to do`);
    return { found: false, stopped: 0, namespaces: 0, problems: [] };
  }
  const unlock = lockStateDir(stateDir, 'down');
  try {
    return await downLocked(stateDir, log);
  } finally {
    unlock();
    if ((await loadState(stateDir).catch(() => undefined)) === undefined) {
      await rm(join(stateDir, LOCK_FILE), { force: true });
      await rmdir(stateDir).catch((err: unknown) => {
        if (!isNotFound(err)) log(`  kept ${stateDir}: ${errorMessage(err)}`);
      });
    }
  }
}

async function downLocked(stateDir: string, log: (msg: string) => void): Promise<DownResult> {
  const s = await loadState(stateDir);
  if (!s) {
    log(`netstack down: no cluster recorded in ${stateDir}; nothing to do`);
    return { found: false, stopped: 0, namespaces: 0, problems: [] };
  }
  log(`netstack down: run ${s.prefix} (${s.phase})`);
  const problems: string[] = [];

  const t0 = performance.now();
  await delPods(s, log);
  const t1 = performance.now();

  // Servers and daemons together (their namespaces go next anyway), etcd
  // last: flanneld may still talk to it while it exits.
  let stopped = 0;
  stopped += await stopProcesses(s.procs.filter((p) => p.role !== 'etcd'));
  stopped += await stopProcesses(s.procs.filter((p) => p.role === 'etcd'));

  const names = new Set([...s.namespaces.map((n) => n.name), ...namespacesWithPrefix(s.prefix)]);
  const inodes = new Set<number>();
  for (const n of names) {
    const ino = nsInode(`${NETNS_RUN_DIR}/${n}`);
    if (ino !== undefined) inodes.add(ino);
  }
  const strays = processesInNamespaces(inodes);
  if (strays.length > 0) {
    log(`  ${strays.length} unrecorded process(es) in the run's namespaces: ${strays.map((p) => p.pid).join(', ')}`);
    stopped += await stopProcesses(strays, 2000);
  }

  let removed = 0;
  for (const n of [...names].reverse()) {
    try {
      deleteNamedNetns(n);
      removed++;
    } catch (err) {
      problems.push(`deleting netns ${n}: ${errorMessage(err)}`);
    }
  }
  log(`  CNI DEL of ${s.pods.length} pod(s) ${((t1 - t0) / 1000).toFixed(1)} s; stopped ${stopped} process(es), deleted ${removed} namespace(s) ${((performance.now() - t1) / 1000).toFixed(1)} s`);

  if (problems.length === 0) {
    // The state file goes last: if anything above failed, a second down finds it again.
    // Only what the cluster made under its state dir; the dir itself only when empty then.
    const root = resolve(stateDir);
    for (const d of [...Object.values(s.dirs), s.etcd.dataDir]) {
      if (resolve(d).startsWith(root + '/')) await rm(d, { recursive: true, force: true });
    }
    await rm(statePath(stateDir), { force: true });
    // A state write interrupted by a kill -9 of up leaves its temp file beside state.json.
    for (const name of readdirSync(stateDir)) {
      if (isAtomicTempName(name) && name.startsWith(`.${STATE_FILE}.`)) await rm(join(stateDir, name), { force: true });
    }
  } else {
    for (const p of problems) log(`  problem: ${p}`);
  }
  return { found: true, prefix: s.prefix, stopped, namespaces: removed, problems };
}

/** CNI DEL of every pod whose node namespace still exists (best effort; the namespaces go anyway). */
async function delPods(s: State, log: (msg: string) => void): Promise<void> {
  const present = new Set(namespacesWithPrefix(s.prefix));
  // Pods in parallel (the plugins lock what they share: the host-local store).
  await Promise.all(
    s.pods.map(async (p) => {
      const node = s.nodes.find((n) => n.name === p.node);
      if (!node || !present.has(node.netns.name)) return;
      const rt = cniRuntime(s, node);
      const { pod, lo } = conflists(node);
      for (const [list, ifName] of [[pod, 'eth0'], [lo, 'lo']] as const) {
        try {
          await rt.del(list, rtConf(p, ifName));
        } catch (err) {
          // Not fatal: deleting the namespaces removes what DEL would.
          log(`  CNI DEL ${p.namespace}/${p.name} ${ifName}: ${errorMessage(err)}`);
        }
      }
    }),
  );
}
