// The netlink writer's batches byte for byte against nft 1.0.6's own: for
// each fixture, the renderer's commands encoded as one batch equal what
// `nft -f` of the same text sent to the kernel (testdata/nft-netlink/*.hex:
// the sendmsg buffer captured with
//   strace -f -e trace=sendmsg -e write=all nft -f <text>
// in a fresh netns). Only the sequence numbers' ACK flag on the last message
// differs (we ask for one ACK), and the anonymous sets' names, which nft
// leaves to the kernel (`__set%d`) and we choose.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NftBatchEncoder } from '../../lib/netfilter/nft-netlink-encode.ts';
import { overallWorld } from '../testing/upstream.ts';
import { extraNFTablesWorlds, upstreamNFTablesFakeProxier } from './nftables.fixtures.ts';
import { NFTablesRenderer } from './nftables.ts';

const cases = [
  { name: 'upstream-overall', world: overallWorld(), options: upstreamNFTablesFakeProxier(4) },
  ...extraNFTablesWorlds().map((c, i) => ({ ...c, name: ['ipv6', 'ipv4-extras', 'ipv4-interface-masquerade-all'][i]! })),
];

const hex = (name: string): Buffer => Buffer.from(readFileSync(new URL(`./testdata/nft-netlink/${name}.hex`, import.meta.url), 'utf8').replace(/\s+/g, ''), 'hex');

/**
 * Splits a batch into messages, clearing NLM_F_ACK (0x4) and the sequence
 * number so only content is compared. nft sends a run of `add element`
 * commands to one set in an order of its own (the kernel's set does not
 * care): such runs are compared as sorted.
 */
function messages(b: Buffer): string[] {
  const out: string[] = [];
  let run: { set: string; msgs: string[] } | undefined;
  const flush = (): void => {
    if (run) out.push(...run.msgs.sort());
    run = undefined;
  };
  for (let off = 0; off + 16 <= b.length; ) {
    const len = b.readUInt32LE(off);
    const m = Buffer.from(b.subarray(off, off + len));
    m.writeUInt16LE(m.readUInt16LE(6) & ~0x4, 6);
    m.writeUInt32LE(0, 8);
    const hexed = m.toString('hex');
    if (m.readUInt16LE(4) === ((10 << 8) | 12)) {
      // NFTA_SET_ELEM_LIST_SET is the second attribute, after the table name.
      const tlen = m.readUInt16LE(20);
      const set = m.subarray(20 + ((tlen + 3) & ~3) + 4, 20 + ((tlen + 3) & ~3) + m.readUInt16LE(20 + ((tlen + 3) & ~3))).toString();
      if (run?.set !== set) flush();
      run ??= { set, msgs: [] };
      run.msgs.push(hexed);
    } else {
      flush();
      out.push(hexed);
    }
    off += (len + 3) & ~3;
  }
  flush();
  return out;
}

describe('nf_tables batches equal nft 1.0.6’s for the same transaction', () => {
  for (const c of cases) {
    it(c.name, () => {
      c.world.sync();
      const r = new NFTablesRenderer(c.options);
      const plan = r.plan({ services: c.world.services.map, endpoints: c.world.endpoints.map });
      const enc = new NftBatchEncoder(plan.transactions[0]!.table, { anonymousSetName: (map) => (map ? '__map%d' : '__set%d') });
      const batch = enc.encode(plan.transactions.flatMap((t) => t.commands), 0);
      const ours = messages(batch.bytes);
      const theirs = messages(hex(c.name));
      expect(ours.length).toBe(theirs.length);
      for (let i = 0; i < ours.length; i++) expect(ours[i], `message ${i}`).toBe(theirs[i]);
      // Only the last command message asks for an ACK.
      const acked = [];
      for (let off = 0; off < batch.bytes.length; ) {
        if (batch.bytes.readUInt16LE(off + 6) & 0x4) acked.push(batch.bytes.readUInt32LE(off + 8));
        off += (batch.bytes.readUInt32LE(off) + 3) & ~3;
      }
      expect(acked).toEqual([batch.lastSeq]);
    });
  }
});
