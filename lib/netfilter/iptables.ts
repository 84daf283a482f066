// iptables-restore text: builder, iptables-save parser, runner (real + fake).
//
// Rules are token arrays in the canonical form iptables-save prints
// (`-s 10.0.0.2/32 -m comment --comment "x y" -j CHAIN`), so a rendered rule
// line compares equal to the saved one and callers can diff desired against
// observed state without one `iptables -C` process per rule.
import { NetError } from '../errors.ts';
import { ExecError, run, runOptions, type RunOptions } from '../exec.ts';
import { iptablesBinary, iptablesModeOf, parseModeSetting, type Detection, type IptablesMode, type IptablesModeSetting } from './iptables-mode.ts';

export type IpFamily = 'ip' | 'ip6';

export const BUILTIN_CHAINS: Readonly<Record<string, readonly string[]>> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
};

// ---------------------------------------------------------------------------
// Quoting, exactly as libxtables' xtables_save_string prints a string value.

const NO_QUOTE = /^[A-Za-z0-9_-]+$/;

/** Quotes a string value (comment, log prefix) the way iptables-save prints it. */
export function saveString(value: string): string {
  if (NO_QUOTE.test(value)) return value;
  return `"${value.replace(/["\\']/g, (c) => `\\${c}`)}"`;
}

/** Options whose value iptables-save prints through xtables_save_string. */
const STRING_VALUED = new Set(['--comment', '--log-prefix', '--nflog-prefix']);

function renderToken(tok: string, prev: string | undefined): string {
  if (prev !== undefined && STRING_VALUED.has(prev)) return saveString(tok);
  if (tok !== '' && !/[\s"'\\]/.test(tok)) return tok;
  return `"${tok.replace(/["\\']/g, (c) => `\\${c}`)}"`;
}

/** Renders rule arguments as iptables-save would. */
export function renderArgs(args: readonly string[]): string {
  return args.map((t, i) => renderToken(t, i > 0 ? args[i - 1] : undefined)).join(' ');
}

/** Splits a rule line into tokens the way iptables-restore does (double quotes, backslash escapes). */
export function splitArgs(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inToken = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inToken = true;
    } else if (c === '"') {
      quoted = !quoted;
      inToken = true;
    } else if (!quoted && (c === ' ' || c === '\t')) {
      if (inToken) out.push(cur);
      cur = '';
      inToken = false;
    } else {
      cur += c;
      inToken = true;
    }
  }
  if (inToken) out.push(cur);
  return out;
}

/** `-m comment --comment <text>` tokens. */
export function commentArgs(text: string): string[] {
  return ['-m', 'comment', '--comment', text];
}

// ---------------------------------------------------------------------------
// Builder

/** Packet and byte counters, as `[pkts:bytes]` in iptables-save -c and iptables-restore --counters. */
export interface Counters {
  packets: bigint | number;
  bytes: bigint | number;
}

export const countersText = (c: Counters | undefined): string => `[${c?.packets ?? 0}:${c?.bytes ?? 0}]`;

type Op =
  | { kind: '-A'; chain: string; args: readonly string[]; counters: Counters | undefined }
  | { kind: '-D'; chain: string; args: readonly string[] }
  | { kind: '-I'; chain: string; args: readonly string[]; pos: number | undefined; counters: Counters | undefined }
  | { kind: '-F' | '-X'; chain: string };

const countersPrefix = (c: Counters | undefined): string => (c === undefined ? '' : `${countersText(c)} `);

export class RestoreTable {
  readonly name: string;
  private readonly decls: string[] = [];
  private readonly declared = new Set<string>();
  private readonly ops: Op[] = [];
  constructor(name: string) {
    this.name = name;
  }
  /**
   * Declares a chain: `:NAME - [0:0]` for a user chain (with --noflush it is
   * created if missing and flushed if present), `:NAME POLICY [0:0]` for a
   * builtin (policy set; its rules stay under --noflush). `counters` are
   * restored with --counters (builtin chains only; nft-based iptables keeps
   * none for user chains) and reset to zero without it.
   */
  chain(name: string, policy = '-', counters?: Counters): this {
    if (!this.declared.has(name)) {
      this.declared.add(name);
      this.decls.push(`:${name} ${policy} ${countersText(counters)}`);
    }
    return this;
  }
  /** `-A`; with `counters`, `[pkts:bytes] -A …`, which only --counters honours. */
  append(chain: string, args: readonly string[], counters?: Counters): this {
    this.ops.push({ kind: '-A', chain, args, counters });
    return this;
  }
  insert(chain: string, args: readonly string[], pos?: number, counters?: Counters): this {
    this.ops.push({ kind: '-I', chain, args, pos, counters });
    return this;
  }
  delete(chain: string, args: readonly string[]): this {
    this.ops.push({ kind: '-D', chain, args });
    return this;
  }
  flush(chain: string): this {
    this.ops.push({ kind: '-F', chain });
    return this;
  }
  deleteChain(chain: string): this {
    this.ops.push({ kind: '-X', chain });
    return this;
  }
  get isEmpty(): boolean {
    return this.decls.length === 0 && this.ops.length === 0;
  }
  render(): string {
    const lines = [`*${this.name}`, ...this.decls];
    for (const op of this.ops) {
      switch (op.kind) {
        case '-F':
        case '-X':
          lines.push(`${op.kind} ${op.chain}`);
          break;
        case '-I':
          lines.push(`${countersPrefix(op.counters)}-I ${op.chain}${op.pos === undefined ? '' : ` ${op.pos}`} ${renderArgs(op.args)}`);
          break;
        case '-A':
          lines.push(`${countersPrefix(op.counters)}-A ${op.chain} ${renderArgs(op.args)}`);
          break;
        default:
          lines.push(`${op.kind} ${op.chain} ${renderArgs(op.args)}`);
      }
    }
    lines.push('COMMIT');
    return lines.join('\n') + '\n';
  }
}

/** A whole iptables-restore input: one section per table, in first-use order. */
export class RestoreBuilder {
  private readonly tables = new Map<string, RestoreTable>();
  table(name: string): RestoreTable {
    let t = this.tables.get(name);
    if (!t) {
      t = new RestoreTable(name);
      this.tables.set(name, t);
    }
    return t;
  }
  get isEmpty(): boolean {
    return [...this.tables.values()].every((t) => t.isEmpty);
  }
  render(): string {
    return [...this.tables.values()].filter((t) => !t.isEmpty).map((t) => t.render()).join('');
  }
}

/** Renders a single rule line `-A CHAIN args…` exactly as iptables-save prints it. */
export function ruleLine(chain: string, args: readonly string[]): string {
  return `-A ${chain} ${renderArgs(args)}`;
}

// ---------------------------------------------------------------------------
// iptables-save parser

export interface SavedRule {
  chain: string;
  args: string[];
  /** `-A CHAIN …` as printed (counters stripped). */
  line: string;
  /** From `iptables-save -c`. */
  counters?: Counters;
}

export interface SavedChain {
  name: string;
  /** Policy of a builtin chain, or undefined for a user chain (`-`). */
  policy: string | undefined;
  /** The chain's `[pkts:bytes]` (meaningful with `iptables-save -c`). */
  counters?: Counters;
}

export interface SavedTable {
  name: string;
  chains: Map<string, SavedChain>;
  rules: SavedRule[];
}

export class SaveDump {
  readonly tables = new Map<string, SavedTable>();
  table(name: string): SavedTable | undefined {
    return this.tables.get(name);
  }
  hasChain(table: string, chain: string): boolean {
    return this.tables.get(table)?.chains.has(chain) ?? false;
  }
  rules(table: string, chain?: string): SavedRule[] {
    const t = this.tables.get(table);
    if (!t) return [];
    return chain === undefined ? t.rules : t.rules.filter((r) => r.chain === chain);
  }
  hasRule(table: string, chain: string, args: readonly string[]): boolean {
    const line = ruleLine(chain, args);
    return this.rules(table, chain).some((r) => r.line === line);
  }
}

export class IptablesParseError extends NetError {
  constructor(lineNo: number, line: string) {
    super('IPTABLES_PARSE', `cannot parse iptables-save line ${lineNo}: ${line}`);
  }
}

/** Value of `--comment` in a rule's args, if any. */
export function ruleComment(args: readonly string[]): string | undefined {
  const i = args.indexOf('--comment');
  return i >= 0 ? args[i + 1] : undefined;
}

/** Target of `-j`, if any. */
export function ruleTarget(args: readonly string[]): string | undefined {
  const i = args.indexOf('-j');
  return i >= 0 ? args[i + 1] : undefined;
}

/** `[pkts:bytes]` → counters (bigint: byte counts outgrow 2^53). */
export function parseCounters(s: string): Counters | undefined {
  const m = /^\[(\d+):(\d+)\]$/.exec(s);
  return m ? { packets: BigInt(m[1]!), bytes: BigInt(m[2]!) } : undefined;
}

export function parseIptablesSave(text: string): SaveDump {
  const dump = new SaveDump();
  let cur: SavedTable | undefined;
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    let line = lines[n]!.trimEnd();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      const name = line.slice(1);
      cur = dump.tables.get(name) ?? { name, chains: new Map(), rules: [] };
      dump.tables.set(name, cur);
      continue;
    }
    if (!cur) throw new IptablesParseError(n + 1, line);
    if (line === 'COMMIT') {
      cur = undefined;
      continue;
    }
    if (line.startsWith(':')) {
      const [name, policy, ctr] = line.slice(1).split(' ');
      if (!name) throw new IptablesParseError(n + 1, line);
      const chain: SavedChain = { name, policy: policy === '-' || policy === undefined ? undefined : policy };
      const c = ctr === undefined ? undefined : parseCounters(ctr);
      if (c) chain.counters = c;
      cur.chains.set(name, chain);
      continue;
    }
    // Optional counters `[pkts:bytes] -A …` (iptables-save -c).
    const m = /^(\[\d+:\d+\])\s+/.exec(line);
    if (m) line = line.slice(m[0].length);
    const toks = splitArgs(line);
    if (toks[0] !== '-A' || toks.length < 2) throw new IptablesParseError(n + 1, line);
    const chain = toks[1]!;
    const args = toks.slice(2);
    const rule: SavedRule = { chain, args, line: ruleLine(chain, args) };
    if (m) rule.counters = parseCounters(m[1]!)!;
    cur.rules.push(rule);
  }
  return dump;
}

// ---------------------------------------------------------------------------
// Runner

export interface RestoreOptions {
  /** --noflush: tables are not flushed; only declared user chains are. */
  noflush: boolean;
  /** --counters: `[pkts:bytes]` in the input are restored (kube-proxy's RestoreAll). */
  counters?: boolean;
}

export interface SaveOptions {
  /** -c: print `[pkts:bytes]` before each rule and on each chain. */
  counters?: boolean;
}

export interface IptablesRestore {
  /** Feeds `text` to (ip6)iptables-restore in one process; atomic per table. */
  restore(family: IpFamily, text: string, opts: RestoreOptions): Promise<void>;
  /** Output of (ip6)iptables-save, optionally one table. */
  save(family: IpFamily, table?: string, opts?: SaveOptions): Promise<string>;
}

export async function saveParsed(ipt: IptablesRestore, family: IpFamily, table?: string, opts?: SaveOptions): Promise<SaveDump> {
  return parseIptablesSave(await ipt.save(family, table, opts));
}

/** The argument vector of (ip6)iptables-restore for these options. */
export function restoreArgs(opts: RestoreOptions, lock: { waitSeconds?: number | undefined; waitIntervalUsec?: number | undefined } = {}): string[] {
  const args = ['--wait'];
  if (lock.waitSeconds !== undefined) args.push(String(lock.waitSeconds));
  if (lock.waitIntervalUsec !== undefined) args.push('--wait-interval', String(lock.waitIntervalUsec));
  if (opts.noflush) args.push('--noflush');
  if (opts.counters === true) args.push('--counters');
  return args;
}

export interface RealIptablesOptions {
  /** Run inside this netns via nsenter (tests and tools only). */
  netns?: string;
  /** Seconds to wait for the xtables lock (`-w N`); undefined waits indefinitely. */
  waitSeconds?: number;
  /** Microseconds between lock attempts (`-W N`; kube-proxy uses 100000). */
  waitIntervalUsec?: number;
  timeoutMs?: number;
  /**
   * legacy or nft binaries; `auto` (the default; env KN_IPTABLES_MODE
   * overrides it) detects the host's flavour once (iptables-mode.ts);
   * `default` runs the plain names.
   */
  mode?: IptablesModeSetting;
}

export class RealIptables implements IptablesRestore {
  private detected: Promise<IptablesMode | undefined> | undefined;
  constructor(private readonly opts: RealIptablesOptions = {}) {}
  private runOpts(input?: string): RunOptions {
    return runOptions(this.opts, input);
  }
  /** The flavour this runner's binaries are (undefined: the plain names), with the reason. */
  async flavour(): Promise<Detection> {
    const setting = parseModeSetting(process.env['KN_IPTABLES_MODE']) ?? this.opts.mode ?? 'auto';
    if (setting === 'default') return { mode: undefined, reason: 'plain iptables binaries requested' };
    if (setting !== 'auto') return { mode: setting, reason: `${setting} requested` };
    return iptablesModeOf(this.opts.netns);
  }
  private binary(family: IpFamily, tool: 'restore' | 'save'): Promise<string> {
    this.detected ??= this.flavour().then((d) => d.mode);
    return this.detected.then((mode) => iptablesBinary(family, tool, mode));
  }
  async restore(family: IpFamily, text: string, opts: RestoreOptions): Promise<void> {
    await run(await this.binary(family, 'restore'), restoreArgs(opts, this.opts), this.runOpts(text));
  }
  async save(family: IpFamily, table?: string, opts: SaveOptions = {}): Promise<string> {
    const args = table === undefined ? [] : ['-t', table];
    if (opts.counters === true) args.push('-c');
    return (await run(await this.binary(family, 'save'), args, this.runOpts())).stdout;
  }
}

// ---------------------------------------------------------------------------
// Fake (tests): applies restore text to an in-memory model, atomically, with
// the exit codes and messages iptables-nft 1.8.9 gives.

const KNOWN_TARGETS = new Set([
  'ACCEPT', 'DROP', 'RETURN', 'REJECT', 'MASQUERADE', 'SNAT', 'DNAT', 'REDIRECT', 'MARK', 'CONNMARK', 'LOG', 'NFLOG', 'NOTRACK', 'CT', 'TPROXY', 'CHECKSUM', 'TCPMSS',
]);

interface FakeRule {
  args: string[];
  packets: bigint;
  bytes: bigint;
}
interface FakeChain {
  policy: string | undefined;
  packets: bigint;
  bytes: bigint;
  rules: FakeRule[];
}
interface FakeTable {
  chains: Map<string, FakeChain>;
}

function canonicalArgs(args: string[], family: IpFamily): string[] {
  const out = [...args];
  for (let i = 0; i < out.length - 1; i++) {
    if ((out[i] === '-s' || out[i] === '-d' || out[i] === '--source' || out[i] === '--destination') && !out[i + 1]!.includes('/')) {
      out[i + 1] = `${out[i + 1]}/${family === 'ip' ? 32 : 128}`;
    }
    if (out[i] === '--source') out[i] = '-s';
    if (out[i] === '--destination') out[i] = '-d';
  }
  return out;
}

const toBig = (c: Counters): { packets: bigint; bytes: bigint } => ({ packets: BigInt(c.packets), bytes: BigInt(c.bytes) });

export class FakeIptables implements IptablesRestore {
  readonly families: Record<IpFamily, Map<string, FakeTable>> = { ip: new Map(), ip6: new Map() };
  /** Every restore input, in order. */
  readonly restores: { family: IpFamily; text: string; noflush: boolean; counters: boolean }[] = [];
  saves = 0;

  private static clone(m: Map<string, FakeTable>): Map<string, FakeTable> {
    return structuredClone(m);
  }

  private static newTable(name: string): FakeTable {
    return { chains: new Map((BUILTIN_CHAINS[name] ?? []).map((c) => [c, { policy: 'ACCEPT', packets: 0n, bytes: 0n, rules: [] }])) };
  }

  /** Sets the counters of the rule at `index` (0-based) of a chain, as traffic would. */
  setRuleCounters(family: IpFamily, table: string, chain: string, index: number, c: Counters): void {
    const rule = this.families[family].get(table)?.chains.get(chain)?.rules[index];
    if (!rule) throw new Error(`no rule ${index} in ${table}/${chain}`);
    Object.assign(rule, toBig(c));
  }

  async restore(family: IpFamily, text: string, opts: RestoreOptions): Promise<void> {
    const withCounters = opts.counters === true;
    this.restores.push({ family, text, noflush: opts.noflush, counters: withCounters });
    const prog = `${family === 'ip' ? 'iptables' : 'ip6tables'}-restore`;
    const fail = (exitCode: number, stderr: string): never => {
      throw new ExecError('EXEC_FAILED', { command: `${prog} ${restoreArgs(opts).join(' ')}`, exitCode, stderr, shortMessage: `Command failed with exit code ${exitCode}: ${prog}` });
    };
    const state = FakeIptables.clone(this.families[family]);
    let table: FakeTable | undefined;
    const lines = text.split('\n');
    for (let n = 0; n < lines.length; n++) {
      const lineNo = n + 1;
      let line = lines[n]!.trim();
      if (line === '' || line.startsWith('#')) continue;
      const badLine = (): never => fail(1, `${prog}: line ${lineNo} failed\n`);
      if (line.startsWith('*')) {
        const name = line.slice(1);
        if (!BUILTIN_CHAINS[name]) fail(1, `${prog} v1.8.9 (nf_tables): table '${name}' does not exist\nError occurred at line: ${lineNo}\n`);
        table = state.get(name) ?? FakeIptables.newTable(name);
        if (!opts.noflush) table = FakeIptables.newTable(name);
        state.set(name, table);
        continue;
      }
      if (!table) return badLine();
      if (line === 'COMMIT') {
        for (const [, c] of table.chains) {
          for (const r of c.rules) {
            const t = ruleTarget(r.args);
            if (t !== undefined && !KNOWN_TARGETS.has(t) && !table.chains.has(t)) {
              fail(2, `${prog} v1.8.9 (nf_tables): Chain '${t}' does not exist\nError occurred at line: ${lineNo}\nTry \`${prog} -h' or '${prog} --help' for more information.\n`);
            }
          }
        }
        table = undefined;
        continue;
      }
      if (line.startsWith(':')) {
        const [name, policy, ctr] = line.slice(1).split(' ');
        if (!name) return badLine();
        const counters = ctr === undefined ? undefined : (parseCounters(ctr) ?? badLine());
        const existing = table.chains.get(name);
        if (existing && existing.policy !== undefined) {
          // A builtin chain: its policy is set (and its counters, zero
          // without --counters); its rules stay, even under --noflush.
          if (policy && policy !== '-') existing.policy = policy;
          Object.assign(existing, withCounters && counters ? toBig(counters) : { packets: 0n, bytes: 0n });
        } else if (existing) {
          existing.rules = [];
        } else {
          table.chains.set(name, { policy: undefined, packets: 0n, bytes: 0n, rules: [] });
        }
        continue;
      }
      // `[pkts:bytes] -A …`: accepted always, honoured only with --counters,
      // and (measured on ip6tables-nft 1.8.9) never by ip6tables-restore,
      // which restores chain policy counters but zeroes rule counters.
      const cm = /^(\[\d+:\d+\])\s+/.exec(line);
      const ruleCounters = cm && withCounters && family === 'ip' ? toBig(parseCounters(cm[1]!)!) : { packets: 0n, bytes: 0n };
      if (cm) line = line.slice(cm[0].length);
      const toks = splitArgs(line);
      const op = toks[0];
      const chainName = toks[1];
      if (!op || !chainName) return badLine();
      if (cm && op !== '-A' && op !== '-I') return badLine();
      const chain = table.chains.get(chainName);
      const noChain = (): never => fail(1, `${prog}: line ${lineNo} failed: No chain/target/match by that name.\n`);
      switch (op) {
        case '-A':
        case '-I': {
          if (!chain) return noChain();
          let rest = toks.slice(2);
          let pos = 1;
          if (op === '-I' && rest[0] !== undefined && /^\d+$/.test(rest[0])) {
            pos = Number(rest[0]);
            rest = rest.slice(1);
          }
          const rule: FakeRule = { args: canonicalArgs(rest, family), ...ruleCounters };
          if (op === '-A') chain.rules.push(rule);
          else chain.rules.splice(pos - 1, 0, rule);
          break;
        }
        case '-D': {
          if (!chain) return noChain();
          // `-D CHAIN N` deletes by rule number (1-based), as flanneld's compare-and-patch plan does.
          if (toks.length === 3 && /^\d+$/.test(toks[2]!)) {
            const n = Number(toks[2]);
            if (n < 1 || n > chain.rules.length) fail(1, `${prog}: line ${lineNo} failed: Index of deletion too big.\n`);
            chain.rules.splice(n - 1, 1);
            break;
          }
          const line2 = ruleLine(chainName, canonicalArgs(toks.slice(2), family));
          const idx = chain.rules.findIndex((r) => ruleLine(chainName, r.args) === line2);
          if (idx < 0) fail(1, `${prog}: line ${lineNo} failed: Bad rule (does a matching rule exist in that chain?).\n`);
          chain.rules.splice(idx, 1);
          break;
        }
        case '-F':
          if (!chain) return noChain();
          chain.rules = [];
          break;
        case '-X': {
          if (!chain || chain.policy !== undefined) return noChain();
          const referenced = [...table.chains.values()].some((c) => c.rules.some((r) => ruleTarget(r.args) === chainName));
          if (referenced || chain.rules.length > 0) {
            fail(4, `${prog} v1.8.9 (nf_tables): \nline ${lineNo}: CHAIN_DEL failed (Device or resource busy): chain ${chainName}\n`);
          }
          table.chains.delete(chainName);
          break;
        }
        default:
          return badLine();
      }
    }
    if (table) fail(1, `${prog}: COMMIT expected at line ${lines.length + 1}\n`);
    this.families[family] = state;
  }

  async save(family: IpFamily, table?: string, opts: SaveOptions = {}): Promise<string> {
    this.saves++;
    const prog = `${family === 'ip' ? 'iptables' : 'ip6tables'}-save`;
    const withCounters = opts.counters === true;
    let out = '';
    for (const [name, t] of this.families[family]) {
      if (table !== undefined && name !== table) continue;
      out += `# Generated by ${prog} v1.8.9 (nf_tables)\n*${name}\n`;
      const builtins = BUILTIN_CHAINS[name] ?? [];
      const users = [...t.chains.keys()].filter((c) => !builtins.includes(c)).sort();
      const order = [...builtins, ...users];
      for (const c of order) {
        const ch = t.chains.get(c);
        if (ch) out += `:${c} ${ch.policy ?? '-'} ${withCounters ? countersText(ch) : '[0:0]'}\n`;
      }
      for (const c of order) for (const r of t.chains.get(c)?.rules ?? []) out += `${withCounters ? `${countersText(r)} ` : ''}${ruleLine(c, r.args)}\n`;
      out += `COMMIT\n# Completed\n`;
    }
    return out;
  }
}
