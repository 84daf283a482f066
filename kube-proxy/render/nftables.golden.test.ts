// Golden: upstream's TestOverallNFTablesRules (research §3.2), from API
// objects through the trackers to the table, compared after upstream's
// sortNFTablesTransaction as assertNFTablesTransactionEqual does.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FakeNft } from '../../lib/netfilter/nft-fake.ts';
import { overallWorld } from '../testing/upstream.ts';
import { upstreamNFTablesFakeProxier } from './nftables.fixtures.ts';
import { NFTablesRenderer, sortNFTablesTransaction } from './nftables.ts';

const testdata = (f: string): string => readFileSync(new URL(`./testdata/${f}`, import.meta.url), 'utf8');

describe('TestOverallNFTablesRules (upstream golden)', () => {
  it('renders exactly the expected table after upstream sorting', async () => {
    const w = overallWorld();
    w.sync();
    const r = new NFTablesRenderer(upstreamNFTablesFakeProxier());
    const plan = r.plan({ services: w.services.map, endpoints: w.endpoints.map });
    // What the transactions build (applied with nft's semantics) is what the renderer records.
    const nft = new FakeNft();
    for (const t of plan.transactions) await nft.run(t.text);
    r.commitAll(plan);
    expect(sortNFTablesTransaction(r.dump())).toBe(sortNFTablesTransaction(testdata('nft-overall.golden')));
    // The transaction itself carries the same objects: rendered from scratch, it is the dump.
    expect(sortNFTablesTransaction(plan.transactions.map((t) => t.text).join(''))).toBe(sortNFTablesTransaction(testdata('nft-overall.golden')));
    expect(plan.noLocalEndpointsExternal).toBe(1);
    expect(w.issues).toEqual([]);
    // Nothing changed: nothing to do.
    expect(r.plan({ services: w.services.map, endpoints: w.endpoints.map }).transactions).toEqual([]);
  });
});
