// The request/dump state machine against a scripted socket: sequence
// matching, ACK errors carrying errno, NLM_F_DUMP_INTR retry, multipart;
// with an event-driven socket (Node's kind) and a blocking one (Bun's kind).
import { describe, expect, test } from 'vitest';
import { NetlinkConn, DumpInterruptedError, DUMP_RETRIES, type NetlinkSocketCtor } from './conn.ts';
import { decodeMsgs, encodeMsg } from './wire.ts';
import { NLM_F_DUMP_INTR, NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR, RTM_GETLINK, RTM_NEWLINK } from './constants.ts';
import { ErrnoError } from '../errors.ts';

type Reply = (seq: number, attempt: number) => Buffer[];

/** A fake kernel socket answering each request with `reply(seq, attempt)`. */
function fakeSocket(reply: Reply): { Native: NetlinkSocketCtor; sent: number; sends: number } {
  const state = { sent: 0, sends: 0 };
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
    send(msg: Uint8Array, _awaiting: () => boolean, cb: (err?: Error) => void): void {
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
    Native: Fake as unknown as NetlinkSocketCtor,
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
      constructor(_p: number, onMsg: (b: Buffer) => void) {
        deliver = onMsg;
      }
      bind(): void {}
      ref(): void {}
      unref(): void {}
      close(): void {}
      addMembership(): void {}
      setRecvBufferSize(): void {}
      send(msg: Uint8Array, _awaiting: () => boolean, cb: (err?: Error) => void): void {
        for (const m of decodeMsgs(Buffer.from(msg))) held.push({ seq: m.seq, tag: m.payload[0]! });
        cb();
      }
    }
    const c = new NetlinkConn([], Reversing as unknown as NetlinkSocketCtor);
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

/**
 * A blocking socket, as Bun's: send() delivers the answers itself, one
 * datagram at a time, for as long as `awaiting()` says a request of this
 * send is unanswered. It fails the test if `awaiting()` stays true with
 * nothing left to receive (a real one would block in recv forever).
 */
function blockingSocket(reply: Reply, maxBatchMessages?: number): { Socket: NetlinkSocketCtor; sends: number; sent: number; datagrams: number; largestSend: number } {
  const state = { sends: 0, sent: 0, datagrams: 0, largestSend: 0 };
  class Blocking {
    readonly maxBatchMessages = maxBatchMessages;
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
    send(msg: Uint8Array, awaiting: () => boolean, cb: (err?: Error) => void): void {
      state.sends++;
      cb();
      const requests = decodeMsgs(Buffer.from(msg));
      state.largestSend = Math.max(state.largestSend, requests.length);
      const queue = requests.flatMap((m) => reply(m.seq, state.sent++));
      while (awaiting()) {
        const next = queue.shift();
        if (!next) throw new Error('awaiting() is true with no answer left to receive');
        state.datagrams++;
        this.onMsg(next);
      }
      if (queue.length) throw new Error(`send returned with ${queue.length} answers unread`);
    }
  }
  return {
    Socket: Blocking as unknown as NetlinkSocketCtor,
    get sends() {
      return state.sends;
    },
    get sent() {
      return state.sent;
    },
    get datagrams() {
      return state.datagrams;
    },
    get largestSend() {
      return state.largestSend;
    },
  };
}

describe('NetlinkConn on a blocking socket', () => {
  test('a send receives exactly its own answers, also when the requests of one tick need several sends', async () => {
    // 3,000 requests of 32 bytes are more than one 64 KiB batch.
    const f = blockingSocket((seq) => [errMsg(seq, seq % 3 === 0 ? 19 /* ENODEV */ : 0)]);
    const c = new NetlinkConn([], f.Socket);
    const results = await Promise.allSettled(Array.from({ length: 3000 }, (_, i) => c.request(RTM_NEWLINK, 0, Buffer.alloc(16), `op ${i}`)));
    expect(f.sends).toBeGreaterThan(1);
    expect(f.datagrams).toBe(3000);
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(rejected.length).toBeGreaterThan(900);
    expect(rejected.every((r) => (r.reason as ErrnoError).errno === 19)).toBe(true);
  });

  test('a socket that limits the requests per send gets at most that many, and every answer', async () => {
    const f = blockingSocket((seq) => [errMsg(seq, 0)], 128);
    const c = new NetlinkConn([], f.Socket);
    await Promise.all(Array.from({ length: 1000 }, (_, i) => c.request(RTM_NEWLINK, 0, Buffer.alloc(16), `op ${i}`)));
    expect(f.largestSend).toBe(128);
    expect(f.sends).toBe(Math.ceil(1000 / 128));
  });

  test('a multipart dump is read up to its DONE, and an interrupted one is retried', async () => {
    const f = blockingSocket((seq, attempt) =>
      attempt === 0
        ? [link(seq, NLM_F_DUMP_INTR, 1), done(seq, NLM_F_DUMP_INTR)]
        : [Buffer.concat([link(seq, 0, 1), link(seq, 0, 2)]), link(seq, 0, 3), done(seq)],
    );
    const c = new NetlinkConn([], f.Socket);
    const msgs = await c.dump(RTM_GETLINK, Buffer.alloc(16), 'link list');
    expect(msgs.map((m) => m.payload[0])).toEqual([1, 2, 3]);
    expect(f.sends).toBe(2);
  });
});
