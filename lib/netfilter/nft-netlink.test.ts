// The nf_tables writer without root: rule forms it refuses (typed, never a
// guess), the expressions of the forms whose nft bytes the fixtures do not
// cover, and the batch protocol against a scripted kernel (one sendmsg, one
// ACK, errors mapped back to the failing command, a failed commit).
import { describe, expect, it } from 'vitest';
import { decodeMsgs, encodeMsg } from '../netlink/wire.ts';
import type { NetlinkSocketCtor } from '../netlink/conn.ts';
import { NftBatchEncoder, NftEncodeError } from './nft-netlink-encode.ts';
import { compileRule, NftCompileError } from './nft-netlink-rule.ts';
import { NftBatchError, NftNetlinkWriter } from './nft-netlink.ts';

describe('compileRule', () => {
  it.each([
    'ip daddr 10.0.0.1 counter accept',
    'ip saddr != @set drop',
    'tcp dport { 80 , 443 } accept',
    'ip6 daddr ::1 drop',
    'meta l4proto icmp accept',
    'numgen random mod 2 vmap { 0 : goto a }',
    'numgen random mod 2 vmap { 1 : goto a , 0 : goto b }',
    'dnat to 10.0.0.1:80',
    'masquerade',
    'jump services drop',
    'ip daddr 10.0.0.300 drop',
    'mark set mark and 0x4000',
    '',
  ])('refuses %j with NftCompileError', (rule) => {
    expect(() => compileRule(4, rule)).toThrow(NftCompileError);
    try {
      compileRule(4, rule);
    } catch (e) {
      expect((e as NftCompileError).code).toBe('NFT_UNSUPPORTED_RULE');
      expect((e as NftCompileError).rule).toBe(rule);
    }
  });

  it('matches whole-byte prefixes with a short load and other prefixes with a mask, as nft does', () => {
    const short = compileRule(4, 'ip saddr 10.0.0.0/8 drop').exprs;
    expect(short[0]).toMatchObject({ k: 'payload', offset: 12, len: 1 });
    expect(short[1]).toMatchObject({ k: 'cmp', data: Buffer.from([10]) });
    const masked = compileRule(6, 'ip6 saddr != fd00:10::/60 drop').exprs;
    expect(masked[0]).toMatchObject({ k: 'payload', offset: 8, len: 16 });
    expect(masked[1]).toMatchObject({ k: 'bitwise', len: 16 });
    expect((masked[1] as { mask: Buffer }).mask.toString('hex')).toBe('fffffffffffffff00000000000000000');
    expect(masked[2]).toMatchObject({ k: 'cmp', op: 1 });
  });

  it('merges overlapping and adjacent ranges of an anonymous set and marks an interval open at the top', () => {
    const { anon, exprs } = compileRule(4, 'ip saddr != { 10.0.0.0/25 , 10.0.0.128/25 , 10.0.0.5 , 255.255.255.0/24 } drop');
    expect(exprs[1]).toMatchObject({ k: 'lookup', set: { anon: 0 }, flags: 1 });
    const els = anon[0]!.elements.map((e) => `${e.key.toString('hex')}${e.end ? ' end' : ''}${e.open ? ' open' : ''}`);
    // The kernel's nft 1.0.6 sent exactly these for the same set (captured).
    expect(els).toEqual(['00000000 end', '0a000000', '0a000100 end', 'ffffff00 open']);
    expect(anon[0]!.size).toBe(5);
  });

  it('an IPv4 address in an IPv6 rule is refused, and the other way round', () => {
    expect(() => compileRule(6, 'ip6 saddr 10.0.0.1 drop')).toThrow(NftCompileError);
    expect(() => compileRule(4, 'ip saddr fd00::1 drop')).toThrow(NftCompileError);
    expect(() => compileRule(6, 'meta l4proto tcp dnat to 10.0.0.1:80')).toThrow(NftCompileError);
  });
});

describe('NftBatchEncoder', () => {
  const table = { family: 'ip', name: 't' } as const;
  it('encodes elements by the type of their set, and refuses elements of sets it does not know', () => {
    const e = new NftBatchEncoder(table);
    expect(() => e.encode([{ op: 'add-element', set: 's', key: ['10.0.0.1'] }], 0)).toThrow(NftEncodeError);
    const b = e.encode([{ op: 'add-set', kind: 'set', name: 's', type: 'ipv4_addr' }], 0);
    // Not committed: still unknown.
    expect(() => e.encode([{ op: 'add-element', set: 's', key: ['10.0.0.1'] }], 0)).toThrow(NftEncodeError);
    b.commit();
    expect(() => e.encode([{ op: 'add-element', set: 's', key: ['10.0.0.1'] }], 0)).not.toThrow();
    expect(() => e.encode([{ op: 'add-element', set: 's', key: ['10.0.0.1', 'tcp'] }], 0)).toThrow(/does not fit/);
    expect(() => e.encode([{ op: 'add-set', kind: 'set', name: 'x', type: 'ipv6_addr' }], 0)).toThrow(/IPv4 table/);
  });

  it('numbers messages from BATCH_BEGIN to BATCH_END and asks for one ACK, on the last command', () => {
    const e = new NftBatchEncoder(table);
    const b = e.encode([{ op: 'add-table' }, { op: 'add-chain', name: 'c' }, { op: 'add-rule', chain: 'c', rule: 'numgen random mod 1 vmap { 0 : goto c }' }], 0).rebase(100);
    const msgs = decodeMsgs(b.bytes);
    expect(msgs.map((m) => m.seq)).toEqual([100, 101, 102, 103, 104, 105, 106]);
    expect(msgs[0]!.type).toBe(16);
    expect(msgs[6]!.type).toBe(17);
    expect(msgs.filter((m) => m.flags & 4).map((m) => m.seq)).toEqual([b.lastSeq]);
    // The anonymous set's two messages belong to the rule (command 2).
    expect([101, 102, 103, 104, 105].map((s) => b.commandOf(s))).toEqual([0, 1, 2, 2, 2]);
  });
});

/** A scripted kernel: answers each batch with `answer(seqs)` (seq → errno, 0 = ACK). */
function kernel(answer: (seqs: { seq: number; flags: number }[]) => [number, number][]): { Socket: NetlinkSocketCtor; sends: Buffer[] } {
  const sends: Buffer[] = [];
  class Fake {
    constructor(
      _p: number,
      private onMsg: (b: Buffer) => void,
    ) {}
    bind(): void {}
    ref(): void {}
    unref(): void {}
    close(): void {}
    addMembership(): void {}
    setRecvBufferSize(): void {}
    setSendBufferSize(): void {}
    send(msg: Uint8Array, _awaiting: () => boolean, cb: (err?: Error) => void): void {
      const buf = Buffer.from(msg);
      sends.push(buf);
      cb();
      const replies = answer(decodeMsgs(buf).map((m) => ({ seq: m.seq, flags: m.flags })));
      setImmediate(() => {
        for (const [seq, errno] of replies) {
          const p = Buffer.alloc(20);
          p.writeInt32LE(-errno, 0);
          this.onMsg(encodeMsg(2, 0, seq, p));
        }
      });
    }
  }
  return { Socket: Fake as unknown as NetlinkSocketCtor, sends };
}

describe('NftNetlinkWriter', () => {
  const table = { family: 'ip', name: 'kube-proxy' } as const;
  const cmds = [{ op: 'add-table' }, { op: 'add-chain', name: 'a' }, { op: 'add-rule', chain: 'a', rule: 'jump b' }, { op: 'add-chain', name: 'z' }] as const;

  it('sends one buffer per batch and resolves on the ACK of the last command', async () => {
    const k = kernel((m) => m.filter((x) => x.flags & 4).map((x) => [x.seq, 0]));
    const w = NftNetlinkWriter.open({ socket: k.Socket });
    await w.apply(table, cmds);
    await w.apply(table, [{ op: 'flush-chain', name: 'a' }]);
    expect(k.sends.length).toBe(2);
    w.close();
  });

  it('maps an error to the command that caused it (nothing applied)', async () => {
    // The kernel reports the failing rule and still ACKs the last message.
    const k = kernel((m) => [
      [m[3]!.seq, 2],
      [m[m.length - 2]!.seq, 0],
    ]);
    const w = NftNetlinkWriter.open({ socket: k.Socket });
    const err = (await w.apply(table, cmds).catch((e: unknown) => e)) as NftBatchError;
    expect(err).toBeInstanceOf(NftBatchError);
    expect(err.code).toBe('NFT_BATCH_FAILED');
    expect(err.errno).toBe(2);
    expect(err.command).toBe('add rule ip kube-proxy a jump b');
    expect(err.message).toContain('ENOENT');
    w.close();
  });

  it('a commit the kernel refuses as a whole is an error too (answered on BATCH_BEGIN)', async () => {
    const k = kernel((m) => [[m[0]!.seq, 16]]);
    const w = NftNetlinkWriter.open({ socket: k.Socket });
    const err = (await w.apply(table, cmds).catch((e: unknown) => e)) as NftBatchError;
    expect(err).toBeInstanceOf(NftBatchError);
    expect(err.command).toBeUndefined();
    expect(err.message).toContain('commit failed');
    w.close();
  });

  it('refuses a batch over its size limit before sending anything', async () => {
    const k = kernel(() => []);
    const w = NftNetlinkWriter.open({ socket: k.Socket, maxBatchBytes: 100 });
    await expect(w.apply(table, cmds)).rejects.toMatchObject({ code: 'NFT_BATCH_TOO_LARGE' });
    expect(k.sends.length).toBe(0);
    w.close();
  });
});
