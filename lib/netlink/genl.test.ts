// Generic netlink framing against a scripted socket: family resolution
// (reply parsing, ENOENT → GenlFamilyNotFoundError), the request window and
// dumps running alone. test/netns/genl.test.ts does the same against the
// kernel.
import { describe, expect, test } from 'vitest';
import { codeOf } from '../errors.ts';
import type { NetlinkSocketCtor } from './conn.ts';
import { NLM_F_DUMP, NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR } from './constants.ts';
import {
  CTRL_ATTR_FAMILY_ID,
  CTRL_ATTR_FAMILY_NAME,
  CTRL_ATTR_HDRSIZE,
  CTRL_ATTR_MAXATTR,
  CTRL_ATTR_MCAST_GROUPS,
  CTRL_ATTR_MCAST_GRP_ID,
  CTRL_ATTR_MCAST_GRP_NAME,
  CTRL_ATTR_VERSION,
  CTRL_CMD_GETFAMILY,
  CTRL_CMD_NEWFAMILY,
  GENL_ID_CTRL,
  GenlConn,
  GenlFamilyNotFoundError,
  decodeGenl,
  encodeGenl,
} from './genl.ts';
import { attr, cstr, decodeMsgs, encodeMsg, nest, u16, u32, type NlMsg } from './wire.ts';

const FAMILY_ID = 0x25;

const ack = (seq: number, errno = 0): Buffer => {
  const p = Buffer.alloc(20);
  p.writeInt32LE(-errno, 0);
  return encodeMsg(NLMSG_ERROR, 0, seq, p);
};

function familyReply(seq: number, name: string): Buffer {
  const payload = encodeGenl(CTRL_CMD_NEWFAMILY, 2, [
    attr(CTRL_ATTR_FAMILY_NAME, cstr(name)),
    attr(CTRL_ATTR_FAMILY_ID, u16(FAMILY_ID)),
    attr(CTRL_ATTR_VERSION, u32(1)),
    attr(CTRL_ATTR_HDRSIZE, u32(0)),
    attr(CTRL_ATTR_MAXATTR, u32(6)),
    nest(CTRL_ATTR_MCAST_GROUPS, [nest(1, [attr(CTRL_ATTR_MCAST_GRP_NAME, cstr('events')), attr(CTRL_ATTR_MCAST_GRP_ID, u32(9))])]),
  ]);
  return encodeMsg(GENL_ID_CTRL, 0, seq, payload);
}

interface Script {
  Socket: NetlinkSocketCtor;
  /** Requests sent to the family, in order. */
  sent: NlMsg[];
  /** Most requests to the family unanswered at once. */
  maxOutstanding: number;
  /** Answers the held requests. */
  answerAll(): void;
}

/** A kernel that knows one family ("TEST") and holds its requests until answerAll(). */
function scripted(known = 'TEST'): Script {
  let deliver: (b: Buffer) => void = () => {};
  const held: NlMsg[] = [];
  const s: Script = {
    Socket: undefined as unknown as NetlinkSocketCtor,
    sent: [],
    maxOutstanding: 0,
    answerAll() {
      for (const m of held.splice(0)) {
        if (m.flags & NLM_F_DUMP) {
          deliver(Buffer.concat([encodeMsg(FAMILY_ID, NLM_F_MULTI, m.seq, encodeGenl(1, 1, [attr(1, u32(7))])), encodeMsg(NLMSG_DONE, NLM_F_MULTI, m.seq, Buffer.alloc(4))]));
        } else deliver(Buffer.concat([encodeMsg(FAMILY_ID, 0, m.seq, encodeGenl(1, 1, [attr(1, u32(m.seq))])), ack(m.seq)]));
      }
    },
  };
  class Fake {
    constructor(_p: number, onMsg: (b: Buffer) => void) {
      deliver = onMsg;
    }
    bind(): void {}
    ref(): void {}
    unref(): void {}
    close(): void {}
    addMembership(): void {}
    setRecvBufferSize(): void {}
    send(buf: Uint8Array, _awaiting: () => boolean, cb: (err?: Error) => void): void {
      cb();
      for (const m of decodeMsgs(Buffer.from(buf))) {
        if (m.type === GENL_ID_CTRL) {
          const g = decodeGenl(m);
          expect(g.cmd).toBe(CTRL_CMD_GETFAMILY);
          const name = g.attrs.str(CTRL_ATTR_FAMILY_NAME);
          setImmediate(() => deliver(name === known ? Buffer.concat([familyReply(m.seq, known), ack(m.seq)]) : ack(m.seq, 2 /* ENOENT */)));
          continue;
        }
        s.sent.push(m);
        held.push(m);
        s.maxOutstanding = Math.max(s.maxOutstanding, held.length);
      }
    }
  }
  s.Socket = Fake as unknown as NetlinkSocketCtor;
  return s;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('GenlConn', () => {
  test('resolves a family by name: id, version, header size, attributes, multicast groups', async () => {
    const k = scripted();
    const g = await GenlConn.open('TEST', { socket: k.Socket });
    expect(g.family).toEqual({ id: FAMILY_ID, name: 'TEST', version: 1, hdrSize: 0, maxAttr: 6, mcastGroups: new Map([['events', 9]]) });
  });

  test('an unknown family: GenlFamilyNotFoundError (the controller says ENOENT)', async () => {
    const k = scripted();
    const err = await GenlConn.open('OTHER', { socket: k.Socket }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GenlFamilyNotFoundError);
    expect(codeOf(err)).toBe('GENL_FAMILY_NOT_FOUND');
  });

  test('requests carry the family id and version, and get their own answers', async () => {
    const k = scripted();
    const g = await GenlConn.open('TEST', { socket: k.Socket });
    const p = g.request(5, [attr(1, u32(42))], 'op');
    await tick();
    expect(k.sent[0]!.type).toBe(FAMILY_ID);
    expect([...k.sent[0]!.payload.subarray(0, 4)]).toEqual([5, 1, 0, 0]);
    k.answerAll();
    const [m] = await p;
    expect(m!.attrs.u32(1)).toBe(k.sent[0]!.seq);
    expect(g.requests).toBe(1);
  });

  test('never more than maxInFlight requests unanswered; the rest follow as answers arrive', async () => {
    const k = scripted();
    const g = await GenlConn.open('TEST', { socket: k.Socket, maxInFlight: 10 });
    const all = Promise.all(Array.from({ length: 35 }, (_, i) => g.request(5, [attr(1, u32(i))], `op ${i}`)));
    for (let i = 0; i < 10 && k.sent.length < 35; i++) {
      await tick();
      await tick();
      k.answerAll();
    }
    const got = await all;
    expect(got.length).toBe(35);
    expect(k.sent.length).toBe(35);
    expect(k.maxOutstanding).toBe(10);
  });

  test('a dump waits for the requests before it and runs alone', async () => {
    const k = scripted();
    const g = await GenlConn.open('TEST', { socket: k.Socket, maxInFlight: 10 });
    const before = [g.request(5, [], 'a'), g.request(5, [], 'b')];
    const dump = g.dump(8, [], 'dump');
    const after = g.request(5, [], 'c');
    await tick();
    await tick();
    expect(k.sent.map((m) => m.flags & NLM_F_DUMP)).toEqual([0, 0]);
    k.answerAll();
    await Promise.all(before);
    await tick();
    await tick();
    expect(k.sent.length).toBe(3);
    expect(k.sent[2]!.flags & NLM_F_DUMP).toBe(NLM_F_DUMP);
    k.answerAll();
    expect((await dump).map((m) => m.attrs.u32(1))).toEqual([7]);
    await tick();
    await tick();
    expect(k.sent.length).toBe(4);
    k.answerAll();
    await after;
  });
});
