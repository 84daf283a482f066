// Applies a plan from reconcile.ts over netlink. Each operation stands on its
// own: a failure is recorded and the rest goes on (the next sync retries);
// only the later entries of the same peer are skipped, so a route is never
// installed without its neighbour and FDB entry.
import { isNotFound } from '../../lib/errors.ts';
import type { Handle } from '../../lib/netlink/index.ts';
import type { Entry, Op } from './reconcile.ts';

/** The part of the netlink Handle the apply layer uses (a fake implements it in tests). */
export type RouteNeighOps = Pick<Handle, 'routeReplace' | 'routeDel' | 'neighSet' | 'neighDel'>;

export interface OpFailure {
  op: Op;
  error: unknown;
}

const RTN_UNICAST = 1;

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

/** Runs the operations in order; returns the failures (a delete of something already gone is not one). */
export async function applyOps(h: RouteNeighOps, ops: readonly Op[]): Promise<OpFailure[]> {
  const failures: OpFailure[] = [];
  const brokenPeers = new Set<string>();
  for (const op of ops) {
    const peer = op.entry.peer;
    if (op.op === 'set' && peer !== '' && brokenPeers.has(peer)) continue;
    try {
      await applyOne(h, op);
    } catch (error) {
      if (op.op === 'del' && isNotFound(error)) continue;
      failures.push({ op, error });
      if (op.op === 'set' && peer !== '') brokenPeers.add(peer);
    }
  }
  return failures;
}
