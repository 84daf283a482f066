// One NETLINK_ROUTE socket: sequence numbers, ACK/error handling, multipart
// dumps with NLM_F_DUMP_INTR detection. Uses the `netlink` package only for
// the raw socket (its native part); framing and attributes are ours.
import { createRequire } from 'node:module';
import { ErrnoError, NetError } from '../errors.ts';
import { NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_MULTI, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP } from './constants.ts';
import { decodeMsgs, encodeMsg, readI32, type NlMsg } from './wire.ts';

interface RawSocket {
  on(ev: 'message', cb: (msg: Buffer) => void): unknown;
  on(ev: 'error', cb: (err: Error) => void): unknown;
  send(msg: Uint8Array, opts: object, cb: (err?: Error) => void): void;
  close(): void;
  unref(): void;
  ref(): void;
  addMembership(group: number): void;
  setRecvBufferSize(n: number): unknown;
}
type RawCtor = new (protocol: number, opts?: object) => RawSocket;

let RawNetlinkSocket: RawCtor | undefined;
function rawCtor(): RawCtor {
  if (!RawNetlinkSocket) {
    const require = createRequire(import.meta.url);
    RawNetlinkSocket = (require('netlink/dist/raw.js') as { RawNetlinkSocket: RawCtor }).RawNetlinkSocket;
  }
  return RawNetlinkSocket;
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

/** How often a dump is retried after NLM_F_DUMP_INTR before giving up. */
export const DUMP_RETRIES = 10;

export class NetlinkConn {
  private readonly sock: RawSocket;
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly pending = new Map<number, Pending>();
  private closed = false;
  private listeners: ((m: NlMsg) => void)[] = [];

  /** Creates the socket in the calling thread's current network namespace. */
  constructor(groups: readonly number[] = []) {
    const Ctor = rawCtor();
    this.sock = new Ctor(0 /* NETLINK_ROUTE */, groups.length ? { recvBufferSize: 4 << 20 } : undefined);
    for (const g of groups) this.sock.addMembership(g);
    this.sock.on('message', (buf) => this.onMessage(buf));
    this.sock.on('error', (err) => this.failAll(err));
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
    if (this.pending.size === 0 && this.listeners.length === 0 && !this.closed) this.sock.unref();
  }

  private failAll(err: Error): void {
    for (const [seq, p] of this.pending) {
      this.pending.delete(seq);
      p.reject(err);
    }
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
      this.sock.send(msg, {}, (err) => {
        if (err) {
          this.finish(seq);
          reject(err);
        }
      });
    });
  }

  /** A dump, retried while the kernel flags it as interrupted. */
  async dump(type: number, payload: Buffer, op: string): Promise<NlMsg[]> {
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
