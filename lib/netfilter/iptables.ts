// iptables-restore text: builder, iptables-save parser, runner (real + fake).
//
// Rules are token arrays in the canonical form iptables-save prints
// (`-s 10.0.0.2/32 -m comment --comment "x y" -j CHAIN`), so a rendered rule
// line compares equal to the saved one and callers can diff desired against
// observed state without one `iptables -C` process per rule.
import { ExecError, run, runOptions, type RunOptions } from '../exec.ts';

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

type Op = { kind: '-A' | '-D'; chain: string; args: readonly string[] } | { kind: '-I'; chain: string; args: readonly string[]; pos: number | undefined } | { kind: '-F' | '-X'; chain: string };

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
   * created if missing and flushed if present), `:NAME POLICY [0:0]` for a builtin.
   */
  chain(name: string, policy = '-'): this {
    if (!this.declared.has(name)) {
      this.declared.add(name);
      this.decls.push(`:${name} ${policy} [0:0]`);
    }
    return this;
  }
  append(chain: string, args: readonly string[]): this {
    this.ops.push({ kind: '-A', chain, args });
    return this;
  }
  insert(chain: string, args: readonly string[], pos?: number): this {
    this.ops.push({ kind: '-I', chain, args, pos });
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
          lines.push(`-I ${op.chain}${op.pos === undefined ? '' : ` ${op.pos}`} ${renderArgs(op.args)}`);
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
}

export interface SavedChain {
  name: string;
  /** Policy of a builtin chain, or undefined for a user chain (`-`). */
  policy: string | undefined;
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

export class IptablesParseError extends Error {
  readonly code = 'IPTABLES_PARSE';
  constructor(lineNo: number, line: string) {
    super(`cannot parse iptables-save line ${lineNo}: ${line}`);
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
      const [name, policy] = line.slice(1).split(' ');
      if (!name) throw new IptablesParseError(n + 1, line);
      cur.chains.set(name, { name, policy: policy === '-' || policy === undefined ? undefined : policy });
      continue;
    }
    // Optional counters `[pkts:bytes] -A …` (iptables-save -c).
    const m = /^\[\d+:\d+\]\s+/.exec(line);
    if (m) line = line.slice(m[0].length);
    const toks = splitArgs(line);
    if (toks[0] !== '-A' || toks.length < 2) throw new IptablesParseError(n + 1, line);
    const chain = toks[1]!;
    const args = toks.slice(2);
    cur.rules.push({ chain, args, line: ruleLine(chain, args) });
  }
  return dump;
}

// ---------------------------------------------------------------------------
// Runner

export interface IptablesRestore {
  /** Feeds `text` to (ip6)iptables-restore in one process; atomic per table. */
  restore(family: IpFamily, text: string, opts: { noflush: boolean }): Promise<void>;
  /** Output of (ip6)iptables-save, optionally one table. */
  save(family: IpFamily, table?: string): Promise<string>;
}

export async function saveParsed(ipt: IptablesRestore, family: IpFamily, table?: string): Promise<SaveDump> {
  return parseIptablesSave(await ipt.save(family, table));
}

export interface RealIptablesOptions {
  /** Run inside this netns via nsenter (tests and tools only). */
  netns?: string;
  /** Seconds to wait for the xtables lock; undefined waits indefinitely. */
  waitSeconds?: number;
  timeoutMs?: number;
}

export class RealIptables implements IptablesRestore {
  constructor(private readonly opts: RealIptablesOptions = {}) {}
  private runOpts(input?: string): RunOptions {
    return runOptions(this.opts, input);
  }
  async restore(family: IpFamily, text: string, opts: { noflush: boolean }): Promise<void> {
    const args = ['--wait'];
    if (this.opts.waitSeconds !== undefined) args.push(String(this.opts.waitSeconds));
    if (opts.noflush) args.push('--noflush');
    await run(family === 'ip' ? 'iptables-restore' : 'ip6tables-restore', args, this.runOpts(text));
  }
  async save(family: IpFamily, table?: string): Promise<string> {
    const args = table === undefined ? [] : ['-t', table];
    return (await run(family === 'ip' ? 'iptables-save' : 'ip6tables-save', args, this.runOpts())).stdout;
  }
}

// ---------------------------------------------------------------------------
// Fake (tests): applies restore text to an in-memory model, atomically, with
// the exit codes and messages iptables-nft 1.8.9 gives.

const KNOWN_TARGETS = new Set([
  'ACCEPT', 'DROP', 'RETURN', 'REJECT', 'MASQUERADE', 'SNAT', 'DNAT', 'REDIRECT', 'MARK', 'CONNMARK', 'LOG', 'NFLOG', 'NOTRACK', 'CT', 'TPROXY', 'CHECKSUM', 'TCPMSS',
]);

interface FakeTable {
  chains: Map<string, { policy: string | undefined; rules: string[][] }>;
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

export class FakeIptables implements IptablesRestore {
  readonly families: Record<IpFamily, Map<string, FakeTable>> = { ip: new Map(), ip6: new Map() };
  /** Every restore input, in order. */
  readonly restores: { family: IpFamily; text: string; noflush: boolean }[] = [];
  saves = 0;

  private static clone(m: Map<string, FakeTable>): Map<string, FakeTable> {
    const out = new Map<string, FakeTable>();
    for (const [k, t] of m) {
      out.set(k, { chains: new Map([...t.chains].map(([c, v]) => [c, { policy: v.policy, rules: v.rules.map((r) => [...r]) }])) });
    }
    return out;
  }

  private static newTable(name: string): FakeTable {
    return { chains: new Map((BUILTIN_CHAINS[name] ?? []).map((c) => [c, { policy: 'ACCEPT', rules: [] }])) };
  }

  async restore(family: IpFamily, text: string, opts: { noflush: boolean }): Promise<void> {
    this.restores.push({ family, text, noflush: opts.noflush });
    const prog = `${family === 'ip' ? 'iptables' : 'ip6tables'}-restore`;
    const fail = (exitCode: number, stderr: string): never => {
      throw new ExecError('EXEC_FAILED', { command: `${prog} --wait${opts.noflush ? ' --noflush' : ''}`, exitCode, stderr, shortMessage: `Command failed with exit code ${exitCode}: ${prog}` });
    };
    const state = FakeIptables.clone(this.families[family]);
    let table: FakeTable | undefined;
    const lines = text.split('\n');
    for (let n = 0; n < lines.length; n++) {
      const lineNo = n + 1;
      const line = lines[n]!.trim();
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
            const t = ruleTarget(r);
            if (t !== undefined && !KNOWN_TARGETS.has(t) && !table.chains.has(t)) {
              fail(2, `${prog} v1.8.9 (nf_tables): Chain '${t}' does not exist\nError occurred at line: ${lineNo}\nTry \`${prog} -h' or '${prog} --help' for more information.\n`);
            }
          }
        }
        table = undefined;
        continue;
      }
      if (line.startsWith(':')) {
        const [name, policy] = line.slice(1).split(' ');
        if (!name) return badLine();
        const existing = table.chains.get(name);
        if (existing) {
          existing.rules = [];
          if (policy && policy !== '-') existing.policy = policy;
        } else {
          table.chains.set(name, { policy: undefined, rules: [] });
        }
        continue;
      }
      const toks = splitArgs(line);
      const op = toks[0];
      const chainName = toks[1];
      if (!op || !chainName) return badLine();
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
          const args = canonicalArgs(rest, family);
          if (op === '-A') chain.rules.push(args);
          else chain.rules.splice(pos - 1, 0, args);
          break;
        }
        case '-D': {
          if (!chain) return noChain();
          const line2 = ruleLine(chainName, canonicalArgs(toks.slice(2), family));
          const idx = chain.rules.findIndex((r) => ruleLine(chainName, r) === line2);
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
          const referenced = [...table.chains.values()].some((c) => c.rules.some((r) => ruleTarget(r) === chainName));
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

  async save(family: IpFamily, table?: string): Promise<string> {
    this.saves++;
    const prog = `${family === 'ip' ? 'iptables' : 'ip6tables'}-save`;
    let out = '';
    for (const [name, t] of this.families[family]) {
      if (table !== undefined && name !== table) continue;
      out += `# Generated by ${prog} v1.8.9 (nf_tables)\n*${name}\n`;
      const builtins = BUILTIN_CHAINS[name] ?? [];
      const users = [...t.chains.keys()].filter((c) => !builtins.includes(c)).sort();
      const order = [...builtins, ...users];
      for (const c of order) {
        const ch = t.chains.get(c);
        if (ch) out += `:${c} ${ch.policy ?? '-'} [0:0]\n`;
      }
      for (const c of order) for (const r of t.chains.get(c)?.rules ?? []) out += `${ruleLine(c, r)}\n`;
      out += `COMMIT\n# Completed\n`;
    }
    return out;
  }
}
