// conntrack entry deletion for kube-proxy's UDP cleanup, through the
// `conntrack` tool (conntrack-tools 1.4.x): delete by (proto, original
// destination[, original destination port]) when a service gains endpoints,
// and by (proto, reply source) when an endpoint goes away. Plus a listing
// parser and FakeConntrack, which holds entries and applies the same filters.
import { ExecError, run, runOptions, type RunOptions } from '../exec.ts';
import { IPAddr, type Family } from '../ip/index.ts';
import { NetError } from '../errors.ts';

export type ConntrackProto = 'tcp' | 'udp' | 'sctp';

export interface ConntrackTuple {
  src: IPAddr;
  dst: IPAddr;
  sport?: number;
  dport?: number;
}
export interface ConntrackEntry {
  family: Family;
  proto: string;
  /** Seconds left. */
  timeout: number;
  /** TCP/SCTP state (`ESTABLISHED`). */
  state?: string;
  orig: ConntrackTuple;
  reply: ConntrackTuple;
  /** `UNREPLIED`, `ASSURED`. */
  flags: string[];
}

/** One deletion: every field given must match. The family is that of the address. */
export type ConntrackFilter = { proto: ConntrackProto } & ({ origDst: IPAddr; origDstPort?: number; origSrc?: IPAddr; origSrcPort?: number } | { replySrc: IPAddr });

const familyArg = (f: Family): string => (f === 4 ? 'ipv4' : 'ipv6');

/** `conntrack -D` arguments for a filter (`--orig-port-dst`: 1.4.7 has no `--dst-port`, and `-p` must come first). */
export function deleteArgs(f: ConntrackFilter): string[] {
  if ('origDst' in f) {
    const args = ['-D', '-f', familyArg(f.origDst.family), '-p', f.proto, '--orig-dst', f.origDst.toString()];
    if (f.origDstPort !== undefined) args.push('--orig-port-dst', String(f.origDstPort));
    if (f.origSrc !== undefined) args.push('--orig-src', f.origSrc.toString());
    if (f.origSrcPort !== undefined) args.push('--orig-port-src', String(f.origSrcPort));
    return args;
  }
  return ['-D', '-f', familyArg(f.replySrc.family), '-p', f.proto, '--reply-src', f.replySrc.toString()];
}

/** `conntrack -I` arguments that create `e` (tests; the family follows from the addresses). */
export function insertArgs(e: Omit<ConntrackEntry, 'family' | 'flags'> & { proto: ConntrackProto }): string[] {
  const args = ['-I', '-p', e.proto, '-s', e.orig.src.toString(), '-d', e.orig.dst.toString()];
  if (e.orig.sport !== undefined) args.push('--sport', String(e.orig.sport));
  if (e.orig.dport !== undefined) args.push('--dport', String(e.orig.dport));
  args.push('-r', e.reply.src.toString(), '-q', e.reply.dst.toString());
  if (e.reply.sport !== undefined) args.push('--reply-port-src', String(e.reply.sport));
  if (e.reply.dport !== undefined) args.push('--reply-port-dst', String(e.reply.dport));
  args.push('-t', String(e.timeout));
  if (e.state !== undefined) args.push('--state', e.state);
  return args;
}

export class ConntrackParseError extends NetError {
  constructor(line: string) {
    super('CONNTRACK_PARSE', `cannot parse conntrack line: ${line}`);
  }
}

/** Parses `conntrack -L` output (the default format). */
export function parseConntrackList(text: string): ConntrackEntry[] {
  const out: ConntrackEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const w = line.split(/\s+/);
    const [proto, , timeout, ...rest] = w;
    if (proto === undefined || timeout === undefined || !/^\d+$/.test(timeout)) throw new ConntrackParseError(line);
    const tuples: Record<string, string>[] = [];
    const flags: string[] = [];
    let state: string | undefined;
    for (const tok of rest) {
      const kv = /^(\w+)=(.*)$/.exec(tok);
      if (kv) {
        if (kv[1] === 'src') tuples.push({});
        if (['src', 'dst', 'sport', 'dport'].includes(kv[1]!)) tuples[tuples.length - 1]![kv[1]!] = kv[2]!;
      } else if (/^\[\w+\]$/.test(tok)) flags.push(tok.slice(1, -1));
      else if (tuples.length === 0) state = tok;
    }
    const tuple = (t: Record<string, string> | undefined): ConntrackTuple => {
      const src = IPAddr.parse(t?.['src'] ?? '');
      const dst = IPAddr.parse(t?.['dst'] ?? '');
      if (!src || !dst) throw new ConntrackParseError(line);
      const out: ConntrackTuple = { src, dst };
      if (t?.['sport'] !== undefined) out.sport = Number(t['sport']);
      if (t?.['dport'] !== undefined) out.dport = Number(t['dport']);
      return out;
    };
    const orig = tuple(tuples[0]);
    const entry: ConntrackEntry = { family: orig.src.family, proto, timeout: Number(timeout), orig, reply: tuple(tuples[1]), flags };
    if (state !== undefined) entry.state = state;
    out.push(entry);
  }
  return out;
}

/** Whether an entry matches a deletion filter, as the tool decides. */
export function matchesFilter(e: ConntrackEntry, f: ConntrackFilter): boolean {
  if (e.proto !== f.proto) return false;
  if ('origDst' in f) {
    return (
      e.orig.dst.equals(f.origDst) &&
      (f.origDstPort === undefined || e.orig.dport === f.origDstPort) &&
      (f.origSrc === undefined || e.orig.src.equals(f.origSrc)) &&
      (f.origSrcPort === undefined || e.orig.sport === f.origSrcPort)
    );
  }
  return e.reply.src.equals(f.replySrc);
}

export interface Conntrack {
  /** Deletes matching entries; returns how many. None matching is not an error. */
  delete(filter: ConntrackFilter): Promise<number>;
  /** Entries of one family, optionally of one protocol. */
  list(family: Family, proto?: ConntrackProto): Promise<ConntrackEntry[]>;
}

export interface RealConntrackOptions {
  /** Path of a network namespace to run `conntrack` in (via nsenter): tests and tools. */
  netns?: string;
  timeoutMs?: number;
}

const DELETED = /(\d+) flow entries have been deleted/;

export class RealConntrack implements Conntrack {
  constructor(private readonly opts: RealConntrackOptions = {}) {}
  private runOpts(): RunOptions {
    return runOptions(this.opts);
  }
  async delete(filter: ConntrackFilter): Promise<number> {
    try {
      const { stderr } = await run('conntrack', deleteArgs(filter), this.runOpts());
      return Number(DELETED.exec(stderr)?.[1] ?? 0);
    } catch (err) {
      // conntrack exits 1 when nothing matched; that is the common case, not a failure.
      if (err instanceof ExecError && err.exitCode === 1 && DELETED.exec(err.stderr)?.[1] === '0') return 0;
      throw err;
    }
  }
  async list(family: Family, proto?: ConntrackProto): Promise<ConntrackEntry[]> {
    const args = ['-L', '-f', familyArg(family)];
    if (proto !== undefined) args.push('-p', proto);
    const { stdout } = await run('conntrack', args, this.runOpts());
    return parseConntrackList(stdout);
  }
  /** Creates an entry (tests). */
  async insert(e: Parameters<typeof insertArgs>[0]): Promise<void> {
    await run('conntrack', insertArgs(e), this.runOpts());
  }
}

/** Holds entries, applies the tool's filters, and records every deletion asked for. */
export class FakeConntrack implements Conntrack {
  entries: ConntrackEntry[] = [];
  readonly deletes: ConntrackFilter[] = [];

  async insert(e: Parameters<typeof insertArgs>[0]): Promise<void> {
    const entry: ConntrackEntry = { family: e.orig.src.family, proto: e.proto, timeout: e.timeout, orig: e.orig, reply: e.reply, flags: ['UNREPLIED'] };
    if (e.state !== undefined) entry.state = e.state;
    this.entries.push(entry);
  }
  async delete(filter: ConntrackFilter): Promise<number> {
    this.deletes.push(filter);
    const before = this.entries.length;
    this.entries = this.entries.filter((e) => !matchesFilter(e, filter));
    return before - this.entries.length;
  }
  async list(family: Family, proto?: ConntrackProto): Promise<ConntrackEntry[]> {
    return this.entries.filter((e) => e.family === family && (proto === undefined || e.proto === proto));
  }
}
