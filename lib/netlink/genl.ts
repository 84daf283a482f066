// Generic netlink: one NETLINK_GENERIC socket speaking one family. Every
// message carries a genlmsghdr (cmd, version, reserved) after the netlink
// header and attributes after that; the family's message type is a number
// the kernel assigns at registration, resolved by name through the
// controller (CTRL_CMD_GETFAMILY), exactly as libnl's genl_ctrl_resolve asks
// it. Framing, sequence numbers, ACKs and dumps are NetlinkConn's.
//
// GenlConn also bounds the requests in flight (`maxInFlight`): the kernel
// answers each request of a batch on the receive buffer while it processes
// the batch, and an answer that does not fit is dropped. The socket then
// reports ENOBUFS once and, until its queue has drained, drops every further
// answer silently, so those requests would never complete. Measured on
// 6.18 with the default 208 KiB buffer: 160 requests answered with a reply
// and an ACK each already overflow it, 128 do not. The window is 64
// requests; a dump (whose parts fill the buffer as far as the kernel lets
// them) runs alone.
import { closeSync } from 'node:fs';
import { constants } from 'node:os';
import { NetError, errnoOf } from '../errors.ts';
import { openNetns, withNetnsSync } from '../netns/index.ts';
import { NETLINK_GENERIC, NetlinkConn, type NetlinkSocketCtor } from './conn.ts';
import { NLM_F_ACK, NLM_F_REQUEST } from './constants.ts';
import { AttrMap, attr, cstr, decodeAttrs, encodeAttrs, encodeMsg, type Attr, type NlMsg } from './wire.ts';

export const GENL_HDRLEN = 4;
/** The controller's fixed family id (linux/genetlink.h). */
export const GENL_ID_CTRL = 0x10;

export const CTRL_CMD_NEWFAMILY = 1;
export const CTRL_CMD_GETFAMILY = 3;
/** The controller's version, as libnl sends it. */
export const CTRL_VERSION = 1;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
export const CTRL_ATTR_VERSION = 3;
export const CTRL_ATTR_HDRSIZE = 4;
export const CTRL_ATTR_MAXATTR = 5;
export const CTRL_ATTR_OPS = 6;
export const CTRL_ATTR_MCAST_GROUPS = 7;
export const CTRL_ATTR_MCAST_GRP_NAME = 1;
export const CTRL_ATTR_MCAST_GRP_ID = 2;

/** A generic netlink family as the controller describes it. */
export interface GenlFamily {
  readonly id: number;
  readonly name: string;
  readonly version: number;
  /** Size of the family's own header after the genlmsghdr (0 for most). */
  readonly hdrSize: number;
  readonly maxAttr: number;
  /** Multicast group name → group id. */
  readonly mcastGroups: ReadonlyMap<string, number>;
}

/** A decoded generic netlink message. */
export interface GenlMsg {
  readonly cmd: number;
  readonly version: number;
  readonly attrs: AttrMap;
  /** The raw attribute bytes (after the genlmsghdr and the family header). */
  readonly payload: Buffer;
}

/** A family the kernel does not have (the controller answered ENOENT). */
export class GenlFamilyNotFoundError extends NetError {
  readonly family: string;
  constructor(family: string, cause?: unknown) {
    super('GENL_FAMILY_NOT_FOUND', `generic netlink family "${family}" not found: the kernel does not provide it (module not loaded or not built)`, { cause });
    this.family = family;
  }
}

/** genlmsghdr + attributes: the payload of a generic netlink message. */
export function encodeGenl(cmd: number, version: number, attrs: readonly Attr[]): Buffer {
  const hdr = Buffer.from([cmd & 0xff, version & 0xff, 0, 0]);
  return Buffer.concat([hdr, encodeAttrs(attrs)]);
}

/** Splits a generic netlink message into its header fields and attributes. */
export function decodeGenl(m: NlMsg, hdrSize = 0): GenlMsg {
  if (m.payload.length < GENL_HDRLEN + hdrSize) {
    throw new RangeError(`malformed generic netlink message: ${m.payload.length} bytes, header needs ${GENL_HDRLEN + hdrSize}`);
  }
  const payload = m.payload.subarray(GENL_HDRLEN + hdrSize);
  return { cmd: m.payload[0]!, version: m.payload[1]!, attrs: decodeAttrs(payload), payload };
}

/** The CTRL_CMD_GETFAMILY request by name, as libnl's genl_ctrl_resolve sends it (without the netlink header). */
export function encodeGetFamily(name: string): Buffer {
  return encodeGenl(CTRL_CMD_GETFAMILY, CTRL_VERSION, [attr(CTRL_ATTR_FAMILY_NAME, cstr(name))]);
}

/** A whole message as it goes on the wire (flags as NetlinkConn adds them: REQUEST | ACK). */
export function encodeGenlMessage(type: number, flags: number, seq: number, payload: Buffer): Buffer {
  return encodeMsg(type, flags | NLM_F_REQUEST | NLM_F_ACK, seq, payload);
}

/** Parses the controller's CTRL_CMD_NEWFAMILY answer. */
export function parseFamily(m: GenlMsg): GenlFamily {
  const a = m.attrs;
  const id = a.u16(CTRL_ATTR_FAMILY_ID);
  const name = a.str(CTRL_ATTR_FAMILY_NAME);
  if (id === undefined || name === undefined) throw new RangeError('malformed CTRL_CMD_NEWFAMILY: no family id or name');
  const groups = new Map<string, number>();
  const g = a.get(CTRL_ATTR_MCAST_GROUPS);
  if (g) {
    const list = decodeAttrs(g);
    for (const t of list.types()) {
      for (const entry of list.all(t)) {
        const ga = decodeAttrs(entry);
        const gname = ga.str(CTRL_ATTR_MCAST_GRP_NAME);
        const gid = ga.u32(CTRL_ATTR_MCAST_GRP_ID);
        if (gname !== undefined && gid !== undefined) groups.set(gname, gid);
      }
    }
  }
  return { id, name, version: a.u32(CTRL_ATTR_VERSION) ?? 0, hdrSize: a.u32(CTRL_ATTR_HDRSIZE) ?? 0, maxAttr: a.u32(CTRL_ATTR_MAXATTR) ?? 0, mcastGroups: groups };
}

/** Asks the controller for a family by name; GenlFamilyNotFoundError when the kernel has none of that name. */
export async function resolveFamily(conn: NetlinkConn, name: string): Promise<GenlFamily> {
  let msgs: NlMsg[];
  try {
    msgs = await conn.request(GENL_ID_CTRL, 0, encodeGetFamily(name), `genl resolve family ${name}`);
  } catch (err) {
    if (errnoOf(err) === constants.errno.ENOENT) throw new GenlFamilyNotFoundError(name, err);
    throw err;
  }
  const first = msgs[0];
  if (!first) throw new NetError('GENL_BAD_REPLY', `genl resolve family ${name}: the controller answered without a family`);
  return parseFamily(decodeGenl(first));
}

export interface GenlOpenOptions {
  /** Path of the network namespace (/var/run/netns/x); default: the caller's. */
  readonly netns?: string | undefined;
  /** Replaces the runtime's socket (unit tests of the framing). */
  readonly socket?: NetlinkSocketCtor | undefined;
  /** Requests in flight at most (default GENL_MAX_IN_FLIGHT). */
  readonly maxInFlight?: number | undefined;
}

/** The default window: half of what was measured to fit in the default receive buffer. */
export const GENL_MAX_IN_FLIGHT = 64;

/** One generic netlink socket in one namespace, bound to one resolved family. */
export class GenlConn {
  readonly conn: NetlinkConn;
  readonly family: GenlFamily;
  /** Requests sent so far (dumps count one). */
  requests = 0;
  readonly #maxInFlight: number;
  /** Window slots in use: a request takes one, a dump all of them. */
  #inFlight = 0;
  readonly #waiting: { weight: number; go: () => void }[] = [];
  #releasing = false;

  private constructor(conn: NetlinkConn, family: GenlFamily, maxInFlight: number) {
    this.conn = conn;
    this.family = family;
    this.#maxInFlight = maxInFlight;
  }

  /**
   * Opens a NETLINK_GENERIC socket in `opts.netns` (entered only for the
   * synchronous socket creation) and resolves `name`. Throws
   * GenlFamilyNotFoundError when the kernel lacks the family.
   */
  static async open(name: string, opts: GenlOpenOptions = {}): Promise<GenlConn> {
    const conn = openGenericSocket(opts);
    try {
      const family = await resolveFamily(conn, name);
      return new GenlConn(conn, family, opts.maxInFlight ?? GENL_MAX_IN_FLIGHT);
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  /** One request of the family (ACK awaited); resolves with the answers. */
  request(cmd: number, attrs: readonly Attr[], op: string, flags = 0): Promise<GenlMsg[]> {
    return this.#windowed(1, () => this.conn.request(this.family.id, flags, encodeGenl(cmd, this.family.version, attrs), op));
  }

  /** A dump of the family (NLM_F_DUMP, retried on NLM_F_DUMP_INTR). */
  dump(cmd: number, attrs: readonly Attr[], op: string): Promise<GenlMsg[]> {
    return this.#windowed(this.#maxInFlight, () => this.conn.dump(this.family.id, encodeGenl(cmd, this.family.version, attrs), op));
  }

  /** The payload this connection would send for `cmd` (for golden tests of encoders). */
  encode(cmd: number, attrs: readonly Attr[]): Buffer {
    return encodeGenl(cmd, this.family.version, attrs);
  }

  close(): void {
    this.conn.close();
  }

  /**
   * Runs `send` once `weight` slots of the window are free (FIFO). Slots
   * freed while answers arrive are handed out together on the next turn of
   * the event loop, so the requests they let through go out in one batch.
   */
  async #windowed(weight: number, send: () => Promise<NlMsg[]>): Promise<GenlMsg[]> {
    const w = Math.min(weight, this.#maxInFlight);
    if (this.#waiting.length > 0 || this.#inFlight + w > this.#maxInFlight) await new Promise<void>((go) => this.#waiting.push({ weight: w, go }));
    else this.#inFlight += w;
    this.requests++;
    try {
      const msgs = await send();
      return msgs.map((m) => decodeGenl(m, this.family.hdrSize));
    } finally {
      this.#inFlight -= w;
      this.#scheduleRelease();
    }
  }

  #scheduleRelease(): void {
    if (this.#releasing || this.#waiting.length === 0) return;
    this.#releasing = true;
    setImmediate(() => {
      this.#releasing = false;
      while (this.#waiting.length > 0 && this.#inFlight + this.#waiting[0]!.weight <= this.#maxInFlight) {
        const next = this.#waiting.shift()!;
        this.#inFlight += next.weight;
        next.go();
      }
    });
  }

}

/** A NETLINK_GENERIC NetlinkConn created inside `opts.netns` (synchronously). */
export function openGenericSocket(opts: Pick<GenlOpenOptions, 'netns' | 'socket'> = {}): NetlinkConn {
  const make = (): NetlinkConn => new NetlinkConn([], opts.socket, NETLINK_GENERIC);
  if (opts.netns === undefined) return make();
  const fd = openNetns(opts.netns);
  try {
    return withNetnsSync(fd, make);
  } finally {
    closeSync(fd);
  }
}
