import { describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../../lib/log.ts';
import type { Lease, LeaseWatchResult } from '../subnet/types.ts';
import { PeerSet, runReconciler, type Programmer, type SyncFailure } from './reconciler.ts';
import { vtepOf } from './vxlan.ts';
import { IPPrefix } from '../../lib/ip/index.ts';

function lease(n: number, mac: string): Lease {
  return { enableIPv4: true, enableIPv6: false, subnet: IPPrefix.mustParse(`10.244.${n}.0/24`), attrs: { publicIP: `192.0.2.${n}`, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: mac } } };
}
const check = (l: Lease) => {
  const v = vtepOf(l, 4);
  return 'error' in v ? v.error : null;
};
const macs = (s: PeerSet) => s.peers().map((l) => (l.attrs.backendData as { VtepMAC: string }).VtepMAC);

describe('PeerSet', () => {
  it('drops our own lease; a garbage update keeps the last good version; removal drops it', () => {
    const own = lease(1, '0e:00:00:00:00:01');
    const ignored: number[] = [];
    const s = new PeerSet(own, check, silentLogger(), (n) => ignored.push(n));
    expect(s.initialized).toBe(false);
    s.apply({ snapshot: [own, lease(2, '0e:00:00:00:00:02')] });
    expect(s.initialized).toBe(true);
    expect(macs(s)).toEqual(['0e:00:00:00:00:02']);
    s.apply({ events: [{ type: 'added', lease: lease(2, 'garbage') }] });
    expect(macs(s)).toEqual(['0e:00:00:00:00:02']);
    s.apply({ events: [{ type: 'added', lease: lease(3, 'garbage') }] });
    expect(macs(s)).toEqual(['0e:00:00:00:00:02']);
    s.apply({ events: [{ type: 'removed', lease: lease(2, 'garbage') }] });
    expect(macs(s)).toEqual([]);
    // After each update: how many current leases are being ignored.
    expect(ignored).toEqual([0, 1, 2, 1]);
  });
});

describe('PeerSet logs', () => {
  it('logs peers added and removed at info, as upstream: "Subnet added: … via …"; a renewal is not a new peer', () => {
    const lines: { level: string; msg: string }[] = [];
    const log = createLogger({ format: 'json', destination: { write: (l: string) => void lines.push(JSON.parse(l) as { level: string; msg: string }) } });
    const s = new PeerSet(undefined, check, log);
    s.apply({ snapshot: [lease(2, '0e:00:00:00:00:02')] });
    s.apply({ events: [{ type: 'added', lease: { ...lease(2, '0e:00:00:00:00:02'), expiration: new Date() } }] });
    s.apply({ events: [{ type: 'added', lease: lease(3, '0e:00:00:00:00:03') }] });
    s.apply({ events: [{ type: 'removed', lease: lease(2, '0e:00:00:00:00:02') }] });
    expect(lines.map((l) => `${l.level} ${l.msg}`)).toEqual([
      'info Subnet added: 10.244.2.0/24 via 192.0.2.2',
      'info Subnet added: 10.244.3.0/24 via 192.0.2.3',
      'info Subnet removed: 10.244.2.0/24 via 192.0.2.2',
    ]);
  });
});

describe('runReconciler', () => {
  it('ensures the device but touches no entry before the first watch result; then syncs the peers; counts failures', async () => {
    const calls: (number | null)[] = [];
    let fail = 1;
    const errors: string[] = [];
    let gate: (() => void) | undefined;
    const gated = new Promise<void>((r) => (gate = r));
    const prog: Programmer = {
      checkLease: check,
      sync: async (peers) => {
        calls.push(peers === null ? null : peers.length);
        if (peers && fail-- > 0) return [{ kind: 'route', what: 'x', error: new Error('boom') }];
        return [];
      },
    };
    const ac = new AbortController();
    async function* watch(): AsyncIterable<LeaseWatchResult> {
      await gated;
      yield { snapshot: [lease(2, '0e:00:00:00:00:02'), lease(3, '0e:00:00:00:00:03')] };
    }
    const done = runReconciler(
      { name: 't', log: silentLogger(), programmer: prog, ownLease: undefined, minInterval: 0, resyncInterval: 60_000, hooks: { onProgrammingError: (k) => errors.push(k) } },
      watch(),
      ac.signal,
    );
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toEqual([null]);
    gate!();
    // The failed sync is retried (backoff 500 ms) until it succeeds.
    for (let i = 0; i < 100 && !(calls.length >= 3 && calls.at(-1) === 2 && fail < 0); i++) await new Promise((r) => setTimeout(r, 50));
    expect(calls.slice(0, 3)).toEqual([null, 2, 2]);
    expect(errors).toEqual(['route']);
    ac.abort();
    await done;
  });

  it('a failing watch ends the loop with its error', async () => {
    const prog: Programmer = { checkLease: () => null, sync: async () => [] };
    // eslint-disable-next-line require-yield
    async function* watch(): AsyncIterable<LeaseWatchResult> {
      throw new Error('watch broke');
    }
    await expect(runReconciler({ name: 't', log: silentLogger(), programmer: prog, ownLease: undefined }, watch(), new AbortController().signal)).rejects.toThrow('watch broke');
  });

  /** A feed of watch results the test pushes one at a time; ends when `signal` aborts (as the real watch does). */
  function feed(signal: AbortSignal): { push(r: LeaseWatchResult): void; it: AsyncIterable<LeaseWatchResult> } {
    const q: LeaseWatchResult[] = [];
    let wake: (() => void) | undefined;
    return {
      push(r) {
        q.push(r);
        wake?.();
      },
      it: (async function* () {
        signal.addEventListener('abort', () => wake?.(), { once: true });
        while (!signal.aborted) {
          while (q.length) yield q.shift()!;
          await new Promise<void>((r) => (wake = r));
        }
      })(),
    };
  }
  const until = async (cond: () => boolean, what: string) => {
    for (let i = 0; i < 400; i++) {
      if (cond()) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`timed out waiting for ${what}`);
  };

  it('full sync first, after a failure and after a kernel event; a lease event alone gives a partial sync', async () => {
    const calls: { n: number | null; full: boolean }[] = [];
    let failNext = false;
    let kernelEvent: (() => void) | undefined;
    const prog: Programmer = {
      checkLease: check,
      sync: async (peers, { full }) => {
        calls.push({ n: peers === null ? null : peers.length, full });
        if (failNext) {
          failNext = false;
          return [{ kind: 'route', what: 'x', error: new Error('boom') }] satisfies SyncFailure[];
        }
        return [];
      },
      subscribe: (cb) => {
        kernelEvent = cb;
        return { close: () => (kernelEvent = undefined) };
      },
    };
    const ac = new AbortController();
    const f = feed(ac.signal);
    const done = runReconciler({ name: 't', log: silentLogger(), programmer: prog, ownLease: undefined, minInterval: 0, resyncInterval: 600_000 }, f.it, ac.signal);
    await until(() => calls.length === 1, 'the start-up sync');
    f.push({ snapshot: [lease(2, '0e:00:00:00:00:02')] });
    await until(() => calls.length === 2, 'the snapshot sync');
    f.push({ events: [{ type: 'added', lease: lease(3, '0e:00:00:00:00:03') }] });
    await until(() => calls.length === 3, 'the lease-event sync');
    failNext = true;
    f.push({ events: [{ type: 'added', lease: lease(4, '0e:00:00:00:00:04') }] });
    // The failed partial sync is retried (after the 500 ms backoff) as a full one.
    await until(() => calls.length === 5, 'the retry');
    f.push({ events: [{ type: 'removed', lease: lease(4, '0e:00:00:00:00:04') }] });
    await until(() => calls.length === 6, 'the second lease-event sync');
    kernelEvent!();
    await until(() => calls.length === 7, 'the kernel-event sync');
    expect(calls).toEqual([
      { n: null, full: true },
      { n: 1, full: true },
      { n: 2, full: false },
      { n: 3, full: false },
      { n: 3, full: true },
      { n: 2, full: false },
      { n: 2, full: true },
    ]);
    ac.abort();
    await done;
  });

  it('the periodic resync is full', async () => {
    const calls: boolean[] = [];
    const prog: Programmer = {
      checkLease: check,
      sync: async (_peers, { full }) => {
        calls.push(full);
        return [];
      },
    };
    const ac = new AbortController();
    const f = feed(ac.signal);
    const done = runReconciler({ name: 't', log: silentLogger(), programmer: prog, ownLease: undefined, minInterval: 0, resyncInterval: 100 }, f.it, ac.signal);
    f.push({ snapshot: [lease(2, '0e:00:00:00:00:02')] });
    await until(() => calls.length >= 4, 'periodic syncs');
    ac.abort();
    await done;
    expect(calls.every((full) => full)).toBe(true);
  });
});
