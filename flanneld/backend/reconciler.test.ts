import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../lib/log.ts';
import { Prefix } from '../subnet/prefix.ts';
import type { Lease, LeaseWatchResult } from '../subnet/types.ts';
import { PeerSet, runReconciler, type Programmer } from './reconciler.ts';
import { vtepOf } from './vxlan.ts';

function lease(n: number, mac: string): Lease {
  return { enableIPv4: true, enableIPv6: false, subnet: Prefix.parse(`10.244.${n}.0/24`), attrs: { publicIP: `192.0.2.${n}`, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: mac } } };
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
});
