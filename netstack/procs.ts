// Processes of the cluster: started detached (they outlive `up`), inside a
// namespace through nsenter (which execs, so the PID is the program's),
// output to a log file in the state dir; recorded with their start time so
// that stopping never signals a recycled PID.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { NetError } from '../lib/errors.ts';
import { sleep } from '../lib/abort.ts';
import { isAlive, procStartTime } from './state.ts';
import type { ProcRecord } from './state.ts';

export interface StartSpec {
  readonly role: ProcRecord['role'];
  readonly owner?: string;
  /** Path of the namespace to run in. */
  readonly netns: string;
  readonly argv: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly log: string;
}

/** Starts the process and returns its record (PID and start time). */
export async function startProcess(spec: StartSpec): Promise<ProcRecord> {
  await mkdir(dirname(spec.log), { recursive: true });
  const fd = openSync(spec.log, 'a', 0o644);
  try {
    const child = spawn('nsenter', [`--net=${spec.netns}`, '--', ...spec.argv], {
      stdio: ['ignore', fd, fd],
      detached: true,
      env: spec.env ?? process.env,
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('error', (e) => reject(new NetError('EXEC_SPAWN', `starting ${spec.argv[0]}: ${e.message}`, { cause: e })));
      child.once('spawn', () => resolve(child.pid!));
    });
    child.unref();
    const startTime = procStartTime(pid);
    if (startTime === undefined) throw new NetError('PROCESS_EXITED', `${spec.role} exited at once; see ${spec.log}`);
    return { pid, startTime, role: spec.role, ...(spec.owner !== undefined ? { owner: spec.owner } : {}), log: spec.log, argv: [...spec.argv] };
  } finally {
    closeSync(fd);
  }
}

/**
 * Stops the recorded processes that still run: SIGTERM to all, then SIGKILL
 * to those left after `graceMs`. A PID whose start time differs is someone
 * else's and is left alone. Returns the records that were running.
 */
export async function stopProcesses(procs: readonly Pick<ProcRecord, 'pid' | 'startTime'>[], graceMs = 5000): Promise<number> {
  const alive = procs.filter((p) => isAlive(p));
  for (const p of alive) signal(p, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && alive.some((p) => isAlive(p))) await sleep(50);
  const left = alive.filter((p) => isAlive(p));
  for (const p of left) signal(p, 'SIGKILL');
  const killDeadline = Date.now() + 5000;
  while (Date.now() < killDeadline && left.some((p) => isAlive(p))) await sleep(20);
  return alive.length;
}

function signal(p: Pick<ProcRecord, 'pid' | 'startTime'>, sig: NodeJS.Signals): void {
  if (!isAlive(p)) return;
  try {
    process.kill(p.pid, sig);
  } catch {
    // Exited in between.
  }
}

/**
 * Processes (other than this one) whose network namespace is one of
 * `nsInodes`: what is left in a run's namespaces after a crash between a
 * spawn and the state write that would have recorded it.
 */
export function processesInNamespaces(nsInodes: ReadonlySet<number>): { pid: number; startTime: number }[] {
  const out: { pid: number; startTime: number }[] = [];
  if (nsInodes.size === 0) return out;
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    let link: string;
    try {
      link = readlinkSync(`/proc/${pid}/ns/net`);
    } catch {
      continue;
    }
    const m = /^net:\[(\d+)\]$/.exec(link);
    if (!m || !nsInodes.has(Number(m[1]))) continue;
    const startTime = procStartTime(pid);
    if (startTime !== undefined) out.push({ pid, startTime });
  }
  return out;
}

/** Inode of a namespace file (as /proc/<pid>/ns/net names it), or undefined when it is gone. */
export function nsInode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}
