// One netlink socket (NETLINK_ROUTE by default; NETLINK_NETFILTER and
// NETLINK_GENERIC take the same framing): sequence numbers, ACK/error handling, multipart
// dumps with NLM_F_DUMP_INTR detection. The raw socket is the runtime's
// (lib/runtime: the `netlink` package's binding on Node, blocking libc calls
// on Bun); framing and attributes are ours, the same on both.
import { constants } from 'node:os';
import { NetlinkSocketImpl } from '../runtime/node.ts';
import { ErrnoError, NetError } from '../errors.ts';
import { NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_MULTI, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP } from './constants.ts';
import { decodeMsgs, encodeMsg, readI32, type NlMsg } from './wire.ts';

/**
 * A raw netlink socket as NetlinkConn drives it. Replies reach the
 * constructor's `onMessage`, one datagram (possibly several messages) at a
 * time; a failure of the socket itself goes to `onError`.
 */
export interface NetlinkSocket {
  /** Binds to port id `port`; throws an error whose `errno` is EADDRINUSE when the id is taken. */
  bind(port: number): void;
  /**
   * Sends one buffer of requests; `cb` gets the send error, if any.
   * `awaiting()` tells whether a request of this buffer is still
   * unanswered: an event-driven socket ignores it (replies arrive later
   * from its poller), a blocking one receives and delivers replies until it
   * turns false before returning.
   */
  send(msg: Uint8Array, awaiting: () => boolean, cb: (err?: Error) => void): void;
  /**
   * The most requests one send may carry (default: as many as fit in
   * MAX_BATCH_BYTES). A blocking socket reads no answer before the kernel
   * has processed the whole send, so all of a send's ACKs must fit in its
   * receive buffer at once.
   */
  readonly maxBatchMessages?: number;
  addMembership(group: number): void;
  setRecvBufferSize(n: number): void;
  /** SO_SNDBUF (the kernel caps it at net.core.wmem_max, and doubles it); optional. */
  setSendBufferSize?(n: number): void;
  /** Keep the event loop alive (a request or a subscription is outstanding), or not. */
  ref(): void;
  unref(): void;
  close(): void;
}
export type NetlinkSocketCtor = new (protocol: number, onMessage: (msg: Buffer) => void, onError: (err: Error) => void) => NetlinkSocket;

/** Netlink protocol numbers (linux/netlink.h). */
export const NETLINK_ROUTE = 0;
export const NETLINK_NETFILTER = 12;
export const NETLINK_GENERIC = 16;

let portCounter = 32;
/** Binds to a free netlink port id (pid in the low bits, a counter above). */
function bindFree(sock: NetlinkSocket): void {
  for (let tries = 0; tries < 100; tries++) {
    const port = ((portCounter << 22) | (process.pid & 0x3fffff)) >>> 0;
    portCounter = (portCounter + 1) & 0x3ff;
    try {
      sock.bind(port);
      return;
    } catch (err) {
      if ((err as { errno?: number }).errno !== constants.errno.EADDRINUSE) throw err;
    }
  }
  throw new NetError('EADDRINUSE', 'no free netlink port id');
}

export class DumpInterruptedError extends NetError {
  constructor(what: string) {
    super('EDUMPINTR', `${what}: dump interrupted by a concurrent change (NLM_F_DUMP_INTR)`);
  }
}

interface Pending {
  resolve: (msgs: NlMsg[]) => void;
  reject: (err: Error) => void;
  parts: NlMsg[];
  interrupted: boolean;
  dump: boolean;
  op: string;
}

/** Upper bound of one batched send (well under the default socket send buffer). */
const MAX_BATCH_BYTES = 64 * 1024;

/** How often a dump is retried after NLM_F_DUMP_INTR before giving up. */
export const DUMP_RETRIES = 10;

/** One message's error in an nfnetlink batch. */
export interface BatchError {
  readonly seq: number;
  readonly errno: number;
}

/** The sequence numbers of a pre-encoded nfnetlink batch (NFNL_MSG_BATCH_BEGIN … END). */
export interface BatchSeqs {
  /** BATCH_BEGIN's: the kernel answers it when the commit itself fails. */
  readonly first: number;
  /** The one message that asks for an ACK: its answer ends the batch. */
  readonly ack: number;
  /** BATCH_END's. */
  readonly end: number;
}

interface PendingBatch extends BatchSeqs {
  readonly resolve: (errors: BatchError[]) => void;
  readonly reject: (err: Error) => void;
  readonly errors: BatchError[];
}

export class NetlinkConn {
  private readonly sock: NetlinkSocket;
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly pending = new Map<number, Pending>();
  private closed = false;
  private listeners: ((m: NlMsg) => void)[] = [];
  private readonly batches: PendingBatch[] = [];

  /**
   * Creates the socket in the calling thread's current network namespace.
   * `Socket` replaces the runtime's socket in unit tests of the framing logic.
   */
  constructor(groups: readonly number[] = [], Socket: NetlinkSocketCtor = NetlinkSocketImpl, protocol: number = NETLINK_ROUTE) {
    this.sock = new Socket(protocol, (buf) => this.onMessage(buf), (err) => this.failAll(err));
    try {
      if (groups.length) this.sock.setRecvBufferSize(4 << 20);
      bindFree(this.sock);
      for (const g of groups) this.sock.addMembership(g);
    } catch (err) {
      this.sock.close();
      throw err;
    }
    // Idle sockets must not keep a CLI alive; a pending request refs it.
    this.sock.unref();
  }

  /** Receive multicast notifications (seq 0). */
  onNotification(cb: (m: NlMsg) => void): void {
    this.listeners.push(cb);
    this.sock.ref();
  }

  private onMessage(buf: Buffer): void {
    let msgs: NlMsg[];
    try {
      msgs = decodeMsgs(buf);
    } catch (err) {
      this.failAll(err as Error);
      return;
    }
    for (const m of msgs) {
      if (this.batches.length > 0 && this.onBatchMessage(m)) continue;
      const p = m.seq !== 0 ? this.pending.get(m.seq) : undefined;
      if (!p) {
        if (m.type !== NLMSG_ERROR && m.type !== NLMSG_DONE) for (const l of this.listeners) l(m);
        continue;
      }
      if (m.flags & NLM_F_DUMP_INTR) p.interrupted = true;
      if (m.type === NLMSG_ERROR) {
        const errno = -readI32(m.payload, 0);
        this.finish(m.seq);
        if (errno === 0) p.resolve(p.parts);
        else p.reject(new ErrnoError(p.op, errno));
      } else if (m.type === NLMSG_DONE) {
        this.finish(m.seq);
        if (p.interrupted) p.reject(new DumpInterruptedError(p.op));
        else p.resolve(p.parts);
      } else if (m.type !== NLMSG_NOOP) {
        p.parts.push({ ...m, payload: Buffer.from(m.payload) });
        // A non-multipart answer (e.g. a GET of one object with ACK) ends
        // only with the ACK; a dump ends with DONE.
      }
      if (!p.dump && !(m.flags & NLM_F_MULTI) && m.type !== NLMSG_ERROR && m.type !== NLMSG_DONE) {
        // wait for the ACK that follows
      }
    }
  }

  private finish(seq: number): void {
    this.pending.delete(seq);
    if (this.pending.size === 0 && this.batches.length === 0 && this.listeners.length === 0 && !this.closed) this.sock.unref();
  }

  private failAll(err: Error): void {
    for (const [seq, p] of this.pending) {
      this.pending.delete(seq);
      p.reject(err);
    }
    for (const b of this.batches.splice(0)) b.reject(err);
  }

  /** Answers to a pending batch: errors are collected; the ACK'd message's answer (or a commit error) ends it. */
  private onBatchMessage(m: NlMsg): boolean {
    const i = this.batches.findIndex((b) => m.seq >= b.first && m.seq <= b.end);
    if (i < 0) return false;
    const b = this.batches[i]!;
    if (m.type !== NLMSG_ERROR) return true;
    const errno = -readI32(m.payload, 0);
    if (errno !== 0) b.errors.push({ seq: m.seq, errno });
    if (m.seq === b.ack || (errno !== 0 && (m.seq === b.first || m.seq === b.end))) {
      this.batches.splice(i, 1);
      this.finish(0);
      b.resolve(b.errors);
    }
    return true;
  }

  /**
   * Reserves `n` consecutive sequence numbers for a batch the caller
   * encodes; returns the first.
   */
  reserveSeq(n: number): number {
    if (this.seq + n + 1 > 0x7fffffff) this.seq = 0;
    const first = this.seq + 1;
    this.seq += n;
    return first;
  }

  /** Raises the socket's send buffer (a batch must fit in one sendmsg). */
  setSendBufferSize(n: number): void {
    this.sock.setSendBufferSize?.(n);
  }

  /** Sets the socket's receive buffer. */
  setRecvBufferSize(n: number): void {
    this.sock.setRecvBufferSize(n);
  }

  /**
   * Sends one pre-encoded nfnetlink batch as ONE sendmsg (the kernel applies
   * it all or nothing) and resolves with the errors the kernel reported for
   * its messages once the ACK'd message is answered (or the commit failed).
   * An empty list means the batch was committed.
   */
  sendBatch(buf: Buffer, seqs: BatchSeqs, op: string): Promise<BatchError[]> {
    if (this.closed) return Promise.reject(new NetError('CLOSED', `${op}: netlink handle is closed`));
    return new Promise<BatchError[]>((resolve, reject) => {
      const b: PendingBatch = { ...seqs, resolve, reject, errors: [] };
      this.batches.push(b);
      this.sock.ref();
      this.sock.send(
        buf,
        () => this.batches.includes(b),
        (err) => {
          if (!err) return;
          const i = this.batches.indexOf(b);
          if (i >= 0) this.batches.splice(i, 1);
          this.finish(0);
          reject(new NetError((err as { code?: string }).code ?? 'ESEND', `${op}: sendmsg of ${buf.length} bytes failed: ${err.message}`));
        },
      );
    });
  }

  /** Sends one request and resolves with the answer messages (ACK requested). */
  request(type: number, flags: number, payload: Buffer, op: string): Promise<NlMsg[]> {
    if (this.closed) return Promise.reject(new NetError('CLOSED', `${op}: netlink handle is closed`));
    this.seq = (this.seq + 1) & 0x7fffffff || 1;
    const seq = this.seq;
    const dump = (flags & NLM_F_DUMP) === NLM_F_DUMP;
    const msg = encodeMsg(type, flags | NLM_F_REQUEST | NLM_F_ACK, seq, payload);
    return new Promise<NlMsg[]>((resolve, reject) => {
      this.pending.set(seq, { resolve, reject, parts: [], interrupted: false, dump, op });
      this.sock.ref();
      this.outbox.push({ seq, msg });
      if (this.outbox.length === 1) queueMicrotask(() => this.flush());
    });
  }

  private outbox: { seq: number; msg: Buffer }[] = [];

  /**
   * Sends the requests made in the same tick as one buffer: the kernel
   * processes the messages of one sendmsg in order and answers each on its
   * own, so a pipelined batch (e.g. a thousand neighbour entries) costs one
   * system call per ~64 KiB instead of one per entry.
   */
  private flush(): void {
    const queued = this.outbox;
    this.outbox = [];
    const maxMessages = this.sock.maxBatchMessages ?? Infinity;
    for (let i = 0; i < queued.length; ) {
      let size = 0;
      let j = i;
      while (j < queued.length && (j === i || (size + queued[j]!.msg.length <= MAX_BATCH_BYTES && j - i < maxMessages))) size += queued[j++]!.msg.length;
      const batch = queued.slice(i, j);
      const buf = batch.length === 1 ? batch[0]!.msg : Buffer.concat(batch.map((b) => b.msg), size);
      const awaiting = (): boolean => batch.some(({ seq }) => this.pending.has(seq));
      this.sock.send(buf, awaiting, (err) => {
        if (!err) return;
        for (const { seq } of batch) {
          const p = this.pending.get(seq);
          this.finish(seq);
          p?.reject(err);
        }
      });
      i = j;
    }
  }

  private dumpTail: Promise<unknown> = Promise.resolve();

  /**
   * A dump, retried while the kernel flags it as interrupted. The kernel runs
   * one dump per socket at a time (a second one gets EBUSY), so dumps on a
   * connection are queued behind each other.
   */
  dump(type: number, payload: Buffer, op: string): Promise<NlMsg[]> {
    const next = this.dumpTail.then(
      () => this.dumpNow(type, payload, op),
      () => this.dumpNow(type, payload, op),
    );
    this.dumpTail = next.catch(() => undefined);
    return next;
  }

  private async dumpNow(type: number, payload: Buffer, op: string): Promise<NlMsg[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.request(type, NLM_F_DUMP, payload, op);
      } catch (err) {
        if (!(err instanceof DumpInterruptedError) || attempt >= DUMP_RETRIES) throw err;
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new NetError('CLOSED', 'netlink handle closed'));
    this.sock.close();
  }
}
