// ipset: an `ipset restore` builder, an `ipset save` parser, a runner over
// the real tool (ipset 7.x) and FakeIpset for tests.
//
// `ipset restore` is NOT a transaction: lines before a failing one stay
// applied (measured on ipset 7.17). Callers that need all-or-nothing build
// the new content in a temporary set and `swap` it in, as kube-proxy's IPVS
// mode does; FakeIpset reproduces the partial application.
import { ExecError, run, runOptions, type RunOptions } from '../exec.ts';
import { NetError } from '../errors.ts';

export type IpsetType =
  | 'hash:ip'
  | 'hash:ip,port'
  | 'hash:ip,port,ip'
  | 'hash:ip,port,net'
  | 'hash:net'
  | 'hash:net,port'
  | 'hash:ip,mark'
  | 'bitmap:port';

export type IpsetFamily = 'inet' | 'inet6';

export interface IpsetSpec {
  name: string;
  type: IpsetType;
  /** hash:* only; default inet. */
  family?: IpsetFamily;
  /** Default entry timeout in seconds; 0 makes entries permanent unless given one. */
  timeout?: number;
  /** Entries may carry a comment. */
  comment?: boolean;
  hashsize?: number;
  maxelem?: number;
  /** bitmap:port only: `0-65535`. */
  range?: string;
}

export interface IpsetEntryOptions {
  timeout?: number;
  comment?: string;
}

export class IpsetInputError extends NetError {
  constructor(message: string) {
    super('IPSET_INVALID_INPUT', message);
  }
}

/** ipset's limit on set names (IPSET_MAXNAMELEN - 1). */
export const IPSET_NAME_MAX = 31;
/** ipset's limit on comments (IPSET_MAX_COMMENT_SIZE). */
export const IPSET_COMMENT_MAX = 255;

function checkSetName(name: string): string {
  if (!/^[A-Za-z0-9_.:-]+$/.test(name) || name.length > IPSET_NAME_MAX) throw new IpsetInputError(`invalid ipset name ${JSON.stringify(name)}`);
  return name;
}
function checkEntry(entry: string): string {
  if (!/^[0-9A-Za-z.:/,_-]+$/.test(entry)) throw new IpsetInputError(`invalid ipset entry ${JSON.stringify(entry)}`);
  return entry;
}
function checkUint(what: string, n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new IpsetInputError(`ipset ${what} must be a non-negative integer: ${n}`);
  return n;
}
function quoteIpsetComment(c: string): string {
  if (c.includes('"') || c.includes('\n') || c.length > IPSET_COMMENT_MAX) throw new IpsetInputError(`invalid ipset comment ${JSON.stringify(c)}`);
  return `"${c}"`;
}

/** `ip,proto:port` (hash:ip,port), the entry kube-proxy's service sets hold. */
export const ipPortEntry = (ip: string, proto: 'tcp' | 'udp' | 'sctp', port: number): string => `${ip},${proto}:${port}`;
/** `ip,proto:port,ip2` (hash:ip,port,ip). */
export const ipPortIpEntry = (ip: string, proto: 'tcp' | 'udp' | 'sctp', port: number, ip2: string): string => `${ip},${proto}:${port},${ip2}`;
/** `ip,proto:port,net` (hash:ip,port,net). */
export const ipPortNetEntry = (ip: string, proto: 'tcp' | 'udp' | 'sctp', port: number, net: string): string => `${ip},${proto}:${port},${net}`;

/** The `create` line's options, in the order ipset save prints them. */
function specOptions(s: IpsetSpec): string[] {
  const out: string[] = [];
  if (s.type === 'bitmap:port') {
    if (s.family !== undefined) throw new IpsetInputError('bitmap:port has no family');
    out.push('range', s.range ?? '0-65535');
  } else {
    if (s.range !== undefined) throw new IpsetInputError(`${s.type} has no range`);
    out.push('family', s.family ?? 'inet');
    if (s.hashsize !== undefined) out.push('hashsize', String(checkUint('hashsize', s.hashsize)));
    if (s.maxelem !== undefined) out.push('maxelem', String(checkUint('maxelem', s.maxelem)));
  }
  if (s.timeout !== undefined) out.push('timeout', String(checkUint('timeout', s.timeout)));
  if (s.comment === true) out.push('comment');
  return out;
}

function entryOptions(o: IpsetEntryOptions | undefined): string {
  if (!o) return '';
  let t = '';
  if (o.timeout !== undefined) t += ` timeout ${checkUint('timeout', o.timeout)}`;
  if (o.comment !== undefined) t += ` comment ${quoteIpsetComment(o.comment)}`;
  return t;
}

/** An `ipset restore` input. `exist` on a command ignores "already exists" / "not added" for that line. */
export class IpsetRestore {
  private readonly lines: string[] = [];

  get isEmpty(): boolean {
    return this.lines.length === 0;
  }
  get length(): number {
    return this.lines.length;
  }
  private push(line: string, exist: boolean | undefined): this {
    this.lines.push(exist === true ? `${line} -exist` : line);
    return this;
  }
  create(s: IpsetSpec, opts: { exist?: boolean } = {}): this {
    return this.push(`create ${checkSetName(s.name)} ${s.type} ${specOptions(s).join(' ')}`, opts.exist);
  }
  add(set: string, entry: string, opts: IpsetEntryOptions & { exist?: boolean } = {}): this {
    return this.push(`add ${checkSetName(set)} ${checkEntry(entry)}${entryOptions(opts)}`, opts.exist);
  }
  del(set: string, entry: string, opts: { exist?: boolean } = {}): this {
    return this.push(`del ${checkSetName(set)} ${checkEntry(entry)}`, opts.exist);
  }
  /** Empties one set, or every set when no name is given. */
  flush(set?: string): this {
    return this.push(set === undefined ? 'flush' : `flush ${checkSetName(set)}`, undefined);
  }
  /** Destroys one set, or every set when no name is given. */
  destroy(set?: string): this {
    return this.push(set === undefined ? 'destroy' : `destroy ${checkSetName(set)}`, undefined);
  }
  /** Exchanges the contents (and names) of two sets of the same type. */
  swap(a: string, b: string): this {
    return this.push(`swap ${checkSetName(a)} ${checkSetName(b)}`, undefined);
  }
  render(): string {
    return this.lines.map((l) => l + '\n').join('');
  }
}

// ---------------------------------------------------------------------------
// `ipset save` parsing

export interface IpsetEntry {
  entry: string;
  /** Remaining seconds (0: permanent in a set with timeouts). */
  timeout?: number;
  comment?: string;
  /** hash:net `nomatch`: an exception inside a larger entry (the longest prefix decides). */
  nomatch?: true;
}
export interface IpsetInfo {
  name: string;
  type: string;
  /** The create line's options (`family`, `hashsize`, `maxelem`, `timeout`, `range`, `bucketsize`, `initval`, `comment`: ''). */
  options: Record<string, string>;
  entries: IpsetEntry[];
}

export class IpsetParseError extends NetError {
  constructor(lineNo: number, line: string) {
    super('IPSET_PARSE', `cannot parse ipset save line ${lineNo}: ${line}`);
  }
}

/** Splits a save line into words, keeping a double-quoted comment whole. */
function words(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

const FLAG_OPTIONS = new Set(['comment', 'counters', 'skbinfo', 'forceadd']);

/** Parses `ipset save` / `ipset list -o save` output. */
export function parseIpsetSave(text: string): IpsetInfo[] {
  const sets = new Map<string, IpsetInfo>();
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const w = words(line);
    const bad = (): never => {
      throw new IpsetParseError(n + 1, line);
    };
    if (w[0] === 'create') {
      const [, name, type, ...rest] = w;
      if (name === undefined || type === undefined) bad();
      const options: Record<string, string> = {};
      for (let i = 0; i < rest.length; i++) {
        const k = rest[i]!;
        if (FLAG_OPTIONS.has(k)) options[k] = '';
        else options[k] = rest[++i] ?? bad();
      }
      sets.set(name!, { name: name!, type: type!, options, entries: [] });
    } else if (w[0] === 'add') {
      const [, name, entry, ...rest] = w;
      const set = sets.get(name ?? '') ?? bad();
      if (entry === undefined) bad();
      const e: IpsetEntry = { entry: entry! };
      for (let i = 0; i < rest.length; i += 2) {
        if (rest[i] === 'nomatch') {
          e.nomatch = true;
          i -= 1;
          continue;
        }
        const v = rest[i + 1] ?? bad();
        if (rest[i] === 'timeout') e.timeout = Number(v);
        else if (rest[i] === 'comment') e.comment = v;
      }
      set.entries.push(e);
    } else bad();
  }
  return [...sets.values()];
}

// ---------------------------------------------------------------------------
// Runner

export interface Ipset {
  /** Feeds `text` to `ipset restore` (with `-exist` when asked) in one process. Not atomic. */
  restore(input: IpsetRestore | string, opts?: { exist?: boolean }): Promise<void>;
  /** Every set (or one) with its entries. */
  list(name?: string): Promise<IpsetInfo[]>;
}

export interface RealIpsetOptions {
  /** Path of a network namespace to run `ipset` in (via nsenter): tests and tools. */
  netns?: string;
  timeoutMs?: number;
}

export class RealIpset implements Ipset {
  constructor(private readonly opts: RealIpsetOptions = {}) {}
  private runOpts(input?: string): RunOptions {
    return runOptions(this.opts, input);
  }
  async restore(input: IpsetRestore | string, opts: { exist?: boolean } = {}): Promise<void> {
    const text = typeof input === 'string' ? input : input.render();
    if (text === '') return;
    await run('ipset', opts.exist === true ? ['-exist', 'restore'] : ['restore'], this.runOpts(text));
  }
  async list(name?: string): Promise<IpsetInfo[]> {
    const { stdout } = await run('ipset', name === undefined ? ['save'] : ['list', name, '-o', 'save'], this.runOpts());
    return parseIpsetSave(stdout);
  }
}

// ---------------------------------------------------------------------------
// Fake (tests): ipset 7.17's semantics and messages, partial application included.

interface FakeSet {
  name: string;
  type: IpsetType;
  family: IpsetFamily | undefined;
  options: Record<string, string>;
  entries: Map<string, IpsetEntry>;
}

const TYPES: readonly string[] = ['hash:ip', 'hash:ip,port', 'hash:ip,port,ip', 'hash:ip,port,net', 'hash:net', 'hash:net,port', 'hash:ip,mark', 'bitmap:port'];

class IpsetLineError extends Error {}
const lineFail = (msg: string): never => {
  throw new IpsetLineError(msg);
};

/** The entry as ipset save prints it: default proto tcp, host prefixes dropped, lower case. */
function canonicalEntry(set: FakeSet, entry: string): string {
  const parts = entry.toLowerCase().split(',');
  const kinds = set.type.split(':')[1]!.split(',');
  if (parts.length !== kinds.length) lineFail(`Syntax error: Second element is missing from ${entry}.`);
  return parts
    .map((p, i) => {
      switch (kinds[i]) {
        case 'port': {
          const m = /^(?:(tcp|udp|sctp|udplite|icmp|icmpv6):)?(\d+)$/.exec(p) ?? lineFail(`Syntax error: cannot parse '${p}' as a port`);
          if (Number(m[2]) > 65535) lineFail(`Syntax error: '${m[2]}' is out of range 0-65535`);
          return set.type === 'bitmap:port' ? m[2]! : `${m[1] ?? 'tcp'}:${m[2]}`;
        }
        case 'net': {
          const host = set.family === 'inet6' ? '/128' : '/32';
          return p.endsWith(host) ? p.slice(0, -host.length) : p;
        }
        default:
          return p;
      }
    })
    .join(',');
}

/** The order ipset save prints create options in. */
const OPTION_ORDER = ['range', 'family', 'hashsize', 'maxelem', 'timeout', 'counters', 'comment', 'skbinfo', 'forceadd'];
const optionRank = (k: string): number => (OPTION_ORDER.includes(k) ? OPTION_ORDER.indexOf(k) : OPTION_ORDER.length);

export class FakeIpset implements Ipset {
  sets = new Map<string, FakeSet>();
  /** Every restore input with its -exist flag, in order. */
  readonly restores: { text: string; exist: boolean }[] = [];

  async restore(input: IpsetRestore | string, opts: { exist?: boolean } = {}): Promise<void> {
    const text = typeof input === 'string' ? input : input.render();
    if (text === '') return;
    this.restores.push({ text, exist: opts.exist === true });
    const lines = text.split('\n');
    for (let n = 0; n < lines.length; n++) {
      const line = lines[n]!.trim();
      if (line === '' || line.startsWith('#')) continue;
      try {
        this.apply(words(line), opts.exist === true);
      } catch (err) {
        if (!(err instanceof IpsetLineError)) throw err;
        throw new ExecError('EXEC_FAILED', {
          command: `ipset${opts.exist === true ? ' -exist' : ''} restore`,
          exitCode: 1,
          stderr: `ipset v7.17: Error in line ${n + 1}: ${err.message}\n`,
          shortMessage: 'Command failed with exit code 1: ipset restore',
        });
      }
    }
  }

  private need(name: string | undefined): FakeSet {
    return this.sets.get(name ?? '') ?? lineFail('The set with the given name does not exist');
  }

  private apply(w: string[], globalExist: boolean): void {
    const exist = globalExist || w.includes('-exist');
    const args = w.filter((x) => x !== '-exist');
    const [cmd, name, third, ...rest] = args;
    switch (cmd) {
      case 'create':
        return this.create(name, third, rest, exist);
      case 'add': {
        const set = this.need(name);
        const entry = canonicalEntry(set, third ?? lineFail('Syntax error: missing entry'));
        const e: IpsetEntry = { entry };
        for (let i = 0; i < rest.length; i += 2) {
          if (rest[i] === 'nomatch') {
            if (!set.type.startsWith('hash:net')) lineFail('Syntax error: nomatch is not supported by this set type');
            e.nomatch = true;
            i -= 1;
            continue;
          }
          const v = rest[i + 1] ?? lineFail(`Syntax error: ${rest[i]} needs a value`);
          if (rest[i] === 'timeout') {
            if (set.options['timeout'] === undefined) lineFail('Timeout cannot be used: set was created without timeout support');
            e.timeout = Number(v);
          } else if (rest[i] === 'comment') {
            if (set.options['comment'] === undefined) lineFail('Comment cannot be used: set was created without comment support');
            e.comment = v;
          } else lineFail(`Syntax error: Unknown argument: '${rest[i]}'`);
        }
        if (e.timeout === undefined && set.options['timeout'] !== undefined) e.timeout = Number(set.options['timeout']);
        if (set.entries.has(entry) && !exist) lineFail("Element cannot be added to the set: it's already added");
        set.entries.set(entry, e);
        return;
      }
      case 'del': {
        const set = this.need(name);
        const entry = canonicalEntry(set, third ?? lineFail('Syntax error: missing entry'));
        if (!set.entries.delete(entry) && !exist) lineFail("Element cannot be deleted from the set: it's not added");
        return;
      }
      case 'flush':
        for (const s of name === undefined ? this.sets.values() : [this.need(name)]) s.entries.clear();
        return;
      case 'destroy':
        if (name === undefined) this.sets.clear();
        else if (!this.sets.delete(name)) lineFail('The set with the given name does not exist');
        return;
      case 'swap': {
        const a = this.need(name);
        const b = this.need(third);
        if (a.type !== b.type || a.family !== b.family) lineFail('The sets cannot be swapped: their type does not match');
        this.sets.set(a.name, { ...b, name: a.name });
        this.sets.set(b.name, { ...a, name: b.name });
        return;
      }
      default:
        lineFail(`Syntax error: unknown command ${cmd ?? ''}`);
    }
  }

  private create(name: string | undefined, type: string | undefined, rest: string[], exist: boolean): void {
    if (name === undefined || type === undefined) return lineFail('Syntax error: create needs a name and a type');
    if (!TYPES.includes(type)) return lineFail(`Syntax error: Unknown settype: '${type}'`);
    const options: Record<string, string> = {};
    for (let i = 0; i < rest.length; i++) {
      const k = rest[i]!;
      if (FLAG_OPTIONS.has(k)) options[k] = '';
      else options[k] = rest[++i] ?? lineFail(`Syntax error: ${k} needs a value`);
    }
    const bitmap = type === 'bitmap:port';
    if (bitmap && options['range'] === undefined) lineFail('Syntax error: Missing mandatory option: range');
    if (!bitmap) {
      options['family'] ??= 'inet';
      options['hashsize'] ??= '1024';
      options['maxelem'] ??= '65536';
    }
    const ordered = Object.fromEntries(Object.entries(options).sort(([a], [b]) => optionRank(a) - optionRank(b)));
    const existing = this.sets.get(name);
    if (existing) {
      // -exist takes an existing set of the same type as it is (ipset 7.17 ignores other options here).
      if (!exist || existing.type !== type) lineFail('Set cannot be created: set with the same name already exists');
      return;
    }
    const family = bitmap ? undefined : (options['family'] as IpsetFamily);
    this.sets.set(name, { name, type: type as IpsetType, family, options: ordered, entries: new Map() });
  }

  async list(name?: string): Promise<IpsetInfo[]> {
    const sets = name === undefined ? [...this.sets.values()] : [this.sets.get(name) ?? this.missing(name)];
    return sets.map((s) => ({ name: s.name, type: s.type, options: { ...s.options }, entries: [...s.entries.values()].map((e) => ({ ...e })) }));
  }

  private missing(name: string): never {
    throw new ExecError('EXEC_FAILED', {
      command: `ipset list ${name} -o save`,
      exitCode: 1,
      stderr: 'ipset v7.17: The set with the given name does not exist\n',
      shortMessage: 'Command failed with exit code 1: ipset list',
    });
  }

  /** `ipset save` text (entries in insertion order; the kernel's is hash order). */
  save(): string {
    let out = '';
    for (const s of this.sets.values()) {
      const opts = Object.entries(s.options).map(([k, v]) => (FLAG_OPTIONS.has(k) ? k : `${k} ${v}`));
      out += `create ${s.name} ${s.type} ${opts.join(' ')}\n`;
      for (const e of s.entries.values()) {
        out += `add ${s.name} ${e.entry}${e.timeout !== undefined ? ` timeout ${e.timeout}` : ''}${e.comment !== undefined ? ` comment "${e.comment}"` : ''}${e.nomatch ? ' nomatch' : ''}\n`;
      }
    }
    return out;
  }
}
