// The request/dump state machine against a scripted socket: sequence
// matching, ACK errors carrying errno, NLM_F_DUMP_INTR retry, multipart.
import { describe, expect, test } from 'vitest';
import { NetlinkConn, DumpInterruptedError, DUMP_RETRIES, type NativeCtor } from './conn.ts';
import { decodeMsgs, encodeMsg } from './wire.ts';
import { NLM_F_DUMP_INTR, NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR, RTM_GETLINK, RTM_NEWLINK } from './constants.ts';
import { ErrnoError } from '../errors.ts';

type Reply = (seq: number, attempt: number) => Buffer[];

/** A fake kernel socket answering each request with `reply(seq, attempt)`. */
function fakeSocket(reply: Reply): { Native: NativeCtor; sent: number; sends: number } {
  const state = { sent: 0, sends: 0 };
  class Fake {
    constructor(_p: number, _m: number, private onMsg: (b: Buffer) => void) {}
    bind(): void {}
    ref(): void {}
    unref(): void {}
    close(): void {}
    addMembership(): void {}
    setRecvBufferSize(): void {}
    send(_port: number, _groups: number, msg: Uint8Array, cb: (err?: Error) => void): void {
      state.sends++;
      cb();
      for (const m of decodeMsgs(Buffer.from(msg))) {
        const attempt = state.sent++;
        setImmediate(() => {
          for (const b of reply(m.seq, attempt)) this.onMsg(b);
        });
      }
    }
  }
  return {
    Native: Fake as unknown as NativeCtor,
    get sent() {
      return state.sent;
    },
    get sends() {
      return state.sends;
    },
  };
}

const errMsg = (seq: number, errno: number): Buffer => {
  const p = Buffer.alloc(20);
  p.writeInt32LE(-errno, 0);
  return encodeMsg(NLMSG_ERROR, 0, seq, p);
};
const link = (seq: number, flags: number, n: number): Buffer => encodeMsg(RTM_NEWLINK, NLM_F_MULTI | flags, seq, Buffer.from([n, 0, 0, 0]));
const done = (seq: number, flags = 0): Buffer => encodeMsg(NLMSG_DONE, NLM_F_MULTI | flags, seq, Buffer.alloc(4));

describe('NetlinkConn', () => {
  test('a dump interrupted by a concurrent change is retried until it is consistent', async () => {
    const f = fakeSocket((seq, attempt) =>
      attempt < 2 ? [Buffer.concat([link(seq, NLM_F_DUMP_INTR, 1), done(seq, NLM_F_DUMP_INTR)])] : [Buffer.concat([link(seq, 0, 1), link(seq, 0, 2)]), done(seq)],
    );
    const c = new NetlinkConn([], f.Native);
    const msgs = await c.dump(RTM_GETLINK, Buffer.alloc(16), 'link list');
    expect(msgs.map((m) => m.payload[0])).toEqual([1, 2]);
    expect(f.sent).toBe(3);
  });

  test('a dump that never settles fails with DumpInterruptedError after the retries', async () => {
    const f = fakeSocket((seq) => [Buffer.concat([link(seq, NLM_F_DUMP_INTR, 1), done(seq, NLM_F_DUMP_INTR)])]);
    const c = new NetlinkConn([], f.Native);
    await expect(c.dump(RTM_GETLINK, Buffer.alloc(16), 'link list')).rejects.toBeInstanceOf(DumpInterruptedError);
    expect(f.sent).toBe(DUMP_RETRIES + 1);
  });

  test('an error ACK rejects with the errno; a zero ACK resolves', async () => {
    const f = fakeSocket((seq, attempt) => [errMsg(seq, attempt === 0 ? 17 /* EEXIST */ : 0)]);
    const c = new NetlinkConn([], f.Native);
    const err = await c.request(RTM_NEWLINK, 0, Buffer.alloc(16), 'link add x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ErrnoError);
    expect((err as ErrnoError).errno).toBe(17);
    expect((err as ErrnoError).message).toBe('link add x: file exists');
    await expect(c.request(RTM_NEWLINK, 0, Buffer.alloc(16), 'link add y')).resolves.toEqual([]);
  });

  test('answers are matched to requests by sequence number, whatever their order', async () => {
    const held: { seq: number; tag: number }[] = [];
    let deliver: ((b: Buffer) => void) | undefined;
    class Reversing {
      constructor(_p: number, _m: number, onMsg: (b: Buffer) => void) {
        deliver = onMsg;
      }
      bind(): void {}
      ref(): void {}
      unref(): void {}
      close(): void {}
      addMembership(): void {}
      setRecvBufferSize(): void {}
      send(_port: number, _groups: number, msg: Uint8Array, cb: (err?: Error) => void): void {
        for (const m of decodeMsgs(Buffer.from(msg))) held.push({ seq: m.seq, tag: m.payload[0]! });
        cb();
      }
    }
    const c = new NetlinkConn([], Reversing as unknown as NativeCtor);
    const answers = [7, 8, 9].map((tag) => c.request(RTM_GETLINK, 0, Buffer.from([tag, 0, 0, 0]), `get ${tag}`));
    await Promise.resolve(); // the batched send goes out in a microtask
    // Answer the last request first: each answer echoes its request's tag.
    for (const { seq, tag } of [...held].reverse()) {
      deliver!(Buffer.concat([encodeMsg(RTM_NEWLINK, 0, seq, Buffer.from([tag, 0, 0, 0])), errMsg(seq, 0)]));
    }
    const got = await Promise.all(answers);
    expect(got.map((msgs) => msgs.map((m) => m.payload[0]))).toEqual([[7], [8], [9]]);
  });

  test('requests made in the same tick go out in one send, each answered on its own', async () => {
    const f = fakeSocket((seq) => [errMsg(seq, seq % 2 === 0 ? 0 : 17)]);
    const c = new NetlinkConn([], f.Native);
    const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => c.request(RTM_NEWLINK, 0, Buffer.alloc(16), `op ${i}`)));
    expect(f.sends).toBe(1);
    expect(f.sent).toBe(50);
    expect(results.filter((r) => r.status === 'rejected').length).toBe(25);
  });
});
