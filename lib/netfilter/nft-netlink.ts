// The nf_tables writer: commands (nft-netlink-commands.ts) sent straight to
// the kernel over NETLINK_NETFILTER as one batch each — no nft process, no
// cache dump before every transaction (nft 1.0.6 lists every chain first:
// ~1.3 s at 110,000 chains). One batch is one sendmsg; the kernel applies it
// all or nothing. The messages are nft's own for the same text
// (nft-netlink-encode.ts), so `nft list` prints what `nft -f` would have left.
import { closeSync } from 'node:fs';
import { errnoName, NetError } from '../errors.ts';
import { NETLINK_NETFILTER, NetlinkConn, type BatchError, type NetlinkSocketCtor } from '../netlink/conn.ts';
import { openNetns, withNetnsSync } from '../netns/index.ts';
import { commandText, type NftCommand, type NftTableRef } from './nft-netlink-commands.ts';
import { NftBatchEncoder, type EncodeOptions } from './nft-netlink-encode.ts';
import { BlockingNetlinkSocket } from './nft-netlink-socket.ts';

export { NftCompileError } from './nft-netlink-rule.ts';
export { NftEncodeError } from './nft-netlink-encode.ts';

/** A batch the kernel refused: nothing of it was applied. */
export class NftBatchError extends NetError {
  constructor(
    readonly table: NftTableRef,
    /** The first failing command, as nft text, when the kernel named one. */
    readonly command: string | undefined,
    readonly errno: number,
    readonly errors: readonly BatchError[],
  ) {
    super(
      'NFT_BATCH_FAILED',
      `nf_tables batch for table ${table.family} ${table.name} failed (${errnoName(errno)})${command !== undefined ? `: ${command}` : ': commit failed'}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`,
    );
  }
}

/** What a proxier needs: apply one table's commands as one atomic batch. */
export interface NftBatchWriter {
  apply(table: NftTableRef, commands: readonly NftCommand[]): Promise<void>;
  /** Forget what the writer knows of a table (its sets), after someone else rebuilt it. */
  reset(table: NftTableRef): void;
  /** Declares a set found in the kernel (`type` in nft syntax, `… : verdict` for a map) so its elements can be written. */
  knownSet(table: NftTableRef, name: string, kind: 'set' | 'map', type: string): void;
  close(): void;
}

export interface NftNetlinkOptions {
  /** Path of the network namespace to write in; default: the current one. */
  readonly netns?: string;
  /** Largest batch in bytes (SO_SNDBUF(FORCE) is raised to hold it; default 256 MiB). */
  readonly maxBatchBytes?: number;
  /** Replaces the runtime's socket (unit tests). */
  readonly socket?: NetlinkSocketCtor;
  readonly encode?: EncodeOptions;
}

export const DEFAULT_MAX_BATCH_BYTES = 256 << 20;

export class NftNetlinkWriter implements NftBatchWriter {
  private readonly encoders = new Map<string, NftBatchEncoder>();
  readonly maxBatchBytes: number;
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly conn: NetlinkConn,
    private readonly opts: NftNetlinkOptions,
  ) {
    this.maxBatchBytes = opts.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    // The kernel doubles the value (and, without CAP_NET_ADMIN, caps it at net.core.wmem_max).
    conn.setSendBufferSize(this.maxBatchBytes);
    conn.setRecvBufferSize(1 << 20);
  }

  /** Opens the NETLINK_NETFILTER socket (in `opts.netns`, entered only for the open). */
  static open(opts: NftNetlinkOptions = {}): NftNetlinkWriter {
    const Socket = opts.socket ?? BlockingNetlinkSocket;
    const make = (): NetlinkConn => new NetlinkConn([], Socket, NETLINK_NETFILTER);
    if (opts.netns === undefined) return new NftNetlinkWriter(make(), opts);
    const fd = openNetns(opts.netns);
    try {
      return new NftNetlinkWriter(
        withNetnsSync(fd, () => make()),
        opts,
      );
    } finally {
      closeSync(fd);
    }
  }

  private encoder(table: NftTableRef): NftBatchEncoder {
    const key = `${table.family} ${table.name}`;
    let e = this.encoders.get(key);
    if (!e) {
      // Anonymous set names of ours start at a random number: names left in
      // the table by an earlier process (ours or nft's kernel-named __map%d)
      // are not known to this one.
      const base = this.opts.encode?.anonymousSetBase ?? Math.floor(Math.random() * 0x40000000) + 0x10000;
      e = new NftBatchEncoder(table, { ...this.opts.encode, anonymousSetBase: base });
      this.encoders.set(key, e);
    }
    return e;
  }

  /** Declares a set that exists in the kernel (created by an earlier run), so its elements can be encoded. */
  knownSet(table: NftTableRef, name: string, kind: 'set' | 'map', type: string): void {
    this.encoder(table).knownSet(name, kind, type);
  }

  reset(table: NftTableRef): void {
    this.encoder(table).forgetSets();
  }

  /** Applies the commands as one batch; throws NftBatchError (nothing applied) when the kernel refuses it. */
  apply(table: NftTableRef, commands: readonly NftCommand[]): Promise<void> {
    // Batches go one at a time: each one's encoding depends on the previous one's sets.
    const next = this.tail.then(
      () => this.applyNow(table, commands),
      () => this.applyNow(table, commands),
    );
    this.tail = next.catch(() => undefined);
    return next;
  }

  private async applyNow(table: NftTableRef, commands: readonly NftCommand[]): Promise<void> {
    if (commands.length === 0) return;
    const enc = this.encoder(table);
    // The message count is known only once encoded: encode from 0, then renumber.
    const batch = enc.encode(commands, 0);
    batch.rebase(this.conn.reserveSeq(batch.messages));
    if (batch.bytes.length > this.maxBatchBytes) {
      throw new NetError('NFT_BATCH_TOO_LARGE', `nf_tables batch of ${commands.length} commands is ${batch.bytes.length} bytes, over the ${this.maxBatchBytes}-byte limit: split it`);
    }
    const errors = await this.conn.sendBatch(batch.bytes, { first: batch.firstSeq, ack: batch.lastSeq, end: batch.lastSeq + 1 }, `nf_tables batch (${table.family} ${table.name})`);
    if (errors.length > 0) {
      const firstErr = errors.reduce((a, b) => (b.seq < a.seq ? b : a));
      const idx = batch.commandOf(firstErr.seq);
      throw new NftBatchError(table, idx !== undefined ? commandText(table, commands[idx]!) : undefined, firstErr.errno, errors);
    }
    batch.commit();
  }

  close(): void {
    this.conn.close();
  }
}
