// Applies a plan from reconcile.ts over netlink. Each operation stands on its
// own: a failure is recorded and the rest goes on (the next sync retries);
// only the later entries of the same peer are skipped, so a route is never
// installed without its neighbour and FDB entry.
import { isNotFound } from '../../lib/errors.ts';
import { RTN_UNICAST } from '../../lib/netlink/constants.ts';
import type { NetlinkHandle } from '../../lib/netlink/index.ts';
import type { Entry, Op } from './reconcile.ts';

/** The part of the netlink handle the apply layer uses. */
export type RouteNeighOps = Pick<NetlinkHandle, 'routeReplace' | 'routeDel' | 'neighSet' | 'neighDel'>;

export interface OpFailure {
  op: Op;
  error: unknown;
}

async function applyOne(h: RouteNeighOps, op: Op): Promise<void> {
  const e: Entry = op.entry;
  switch (e.kind) {
    case 'neigh':
      if (op.op === 'set') await h.neighSet({ index: e.index, ip: e.ip, mac: e.mac });
      else await h.neighDel({ index: e.index, ip: e.ip, mac: e.mac });
      return;
    case 'fdb':
      if (op.op === 'set') await h.neighSet({ index: e.index, fdb: true, ip: e.dst, mac: e.mac });
      else await h.neighDel({ index: e.index, fdb: true, ip: e.dst, mac: e.mac });
      return;
    case 'route': {
      const r = {
        family: e.family,
        dst: e.dst,
        ...(e.gw !== undefined ? { gw: e.gw } : {}),
        ...(e.oif !== undefined ? { oif: e.oif } : {}),
        ...(e.onlink ? { onlink: true } : {}),
        protocol: e.protocol,
        type: RTN_UNICAST,
      };
      if (op.op === 'set') await h.routeReplace(r);
      else await h.routeDel(r);
      return;
    }
  }
}

/** Requests in flight at once within one phase (bounded so ACKs never overflow the socket buffer). */
export const PIPELINE_DEPTH = 128;

/**
 * Runs the operations phase by phase, in the order given (a phase is a run
 * of operations of the same kind and direction: deletes of routes, FDB,
 * neighbours; sets of neighbours, FDB, routes). Within a phase the requests
 * are pipelined on the socket instead of waiting for each ACK, which is what
 * a thousand-peer sync spends its time on; the phase barrier keeps the
 * neighbour → FDB → route order per peer. Returns the failures (a delete of
 * something already gone is not one).
 */
export async function applyOps(h: RouteNeighOps, ops: readonly Op[]): Promise<OpFailure[]> {
  const failures: OpFailure[] = [];
  const brokenPeers = new Set<string>();
  for (let i = 0; i < ops.length; ) {
    let j = i;
    while (j < ops.length && ops[j]!.op === ops[i]!.op && ops[j]!.entry.kind === ops[i]!.entry.kind) j++;
    const phase = ops.slice(i, j).filter((op) => !(op.op === 'set' && op.entry.peer !== '' && brokenPeers.has(op.entry.peer)));
    for (let k = 0; k < phase.length; k += PIPELINE_DEPTH) {
      const chunk = phase.slice(k, k + PIPELINE_DEPTH);
      const results = await Promise.allSettled(chunk.map((op) => applyOne(h, op)));
      results.forEach((r, n) => {
        if (r.status === 'fulfilled') return;
        const op = chunk[n]!;
        if (op.op === 'del' && isNotFound(r.reason)) return;
        failures.push({ op, error: r.reason });
        if (op.op === 'set' && op.entry.peer !== '') brokenPeers.add(op.entry.peer);
      });
    }
    i = j;
  }
  return failures;
}
