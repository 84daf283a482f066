// nftables: a small transaction builder (knftables-style) rendering `nft -f -`
// text, a parser for `nft -j list table …`, and a runner (real + fake).
//
// Rule bodies are written in the form `nft list` prints them (no `==`), and
// listed rules come back with `text` rendered from their JSON expression in
// that same form, so callers compare desired and observed rules as strings.
import { ExecError, run, runOptions, type RunOptions } from '../exec.ts';
import { NetError } from '../errors.ts';

export type NftFamily = 'ip' | 'ip6' | 'inet' | 'arp' | 'bridge' | 'netdev';

export interface NftTableSpec {
  family: NftFamily;
  name: string;
  comment?: string;
}
export interface NftChainSpec {
  family: NftFamily;
  table: string;
  name: string;
  /** Base chain: type/hook/priority (priority may be a keyword such as `srcnat`). */
  type?: 'filter' | 'nat' | 'route';
  hook?: 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting' | 'ingress' | 'egress';
  priority?: string | number;
  policy?: 'accept' | 'drop';
  device?: string;
  comment?: string;
}
export interface NftRuleSpec {
  family: NftFamily;
  table: string;
  chain: string;
  /** Rule body in `nft list` form, e.g. `ip saddr 10.0.0.2 ip daddr != 10.0.0.0/24 masquerade`. */
  rule: string;
  comment?: string;
  /** With addRule: add after this handle; with insertRule: insert before it. */
  handle?: number;
}
export interface NftSetSpec {
  family: NftFamily;
  table: string;
  name: string;
  /** `ipv4_addr`, `ipv4_addr . inet_service`, for a map `ipv4_addr : verdict`. */
  type: string;
  flags?: readonly string[];
  comment?: string;
}
export interface NftElementSpec {
  family: NftFamily;
  table: string;
  /** Set or map name. */
  set: string;
  key: string;
  /** Map value (verdict, address, …). */
  value?: string;
  comment?: string;
}

export class NftInputError extends NetError {
  constructor(message: string) {
    super('NFT_INVALID_INPUT', message);
  }
}

/** Longest comment knftables accepts; nft itself allows a little more. */
export const NFT_COMMENT_MAX = 128;

function quoteComment(c: string): string {
  if (c.includes('"') || c.includes('\n')) throw new NftInputError(`nft comment may not contain quotes or newlines: ${JSON.stringify(c)}`);
  if (c.length > NFT_COMMENT_MAX) throw new NftInputError(`nft comment longer than ${NFT_COMMENT_MAX} characters`);
  return `"${c}"`;
}

/** Strips quotes and truncates so a string is usable as an nft comment. */
export function sanitizeComment(c: string): string {
  return c.replace(/["\n]/g, '').slice(0, NFT_COMMENT_MAX);
}

export class NftTransaction {
  private readonly lines: string[] = [];

  get isEmpty(): boolean {
    return this.lines.length === 0;
  }
  get length(): number {
    return this.lines.length;
  }
  private push(s: string): this {
    this.lines.push(s);
    return this;
  }

  addTable(t: NftTableSpec): this {
    return this.push(`add table ${t.family} ${t.name}${t.comment !== undefined ? ` { comment ${quoteComment(t.comment)} ; }` : ''}`);
  }
  flushTable(t: { family: NftFamily; name: string }): this {
    return this.push(`flush table ${t.family} ${t.name}`);
  }
  deleteTable(t: { family: NftFamily; name: string }): this {
    return this.push(`delete table ${t.family} ${t.name}`);
  }

  addChain(c: NftChainSpec): this {
    const parts: string[] = [];
    if (c.type !== undefined || c.hook !== undefined) {
      if (c.type === undefined || c.hook === undefined || c.priority === undefined) throw new NftInputError(`base chain ${c.name} needs type, hook and priority`);
      parts.push(`type ${c.type} hook ${c.hook}${c.device !== undefined ? ` device ${JSON.stringify(c.device)}` : ''} priority ${c.priority} ;`);
      if (c.policy !== undefined) parts.push(`policy ${c.policy} ;`);
    }
    if (c.comment !== undefined) parts.push(`comment ${quoteComment(c.comment)} ;`);
    return this.push(`add chain ${c.family} ${c.table} ${c.name}${parts.length ? ` { ${parts.join(' ')} }` : ''}`);
  }
  flushChain(c: { family: NftFamily; table: string; name: string }): this {
    return this.push(`flush chain ${c.family} ${c.table} ${c.name}`);
  }
  deleteChain(c: { family: NftFamily; table: string; name: string }): this {
    return this.push(`delete chain ${c.family} ${c.table} ${c.name}`);
  }

  private ruleText(verb: 'add' | 'insert', r: NftRuleSpec): string {
    const pos = r.handle !== undefined ? ` position ${r.handle}` : '';
    return `${verb} rule ${r.family} ${r.table} ${r.chain}${pos} ${r.rule}${r.comment !== undefined ? ` comment ${quoteComment(r.comment)}` : ''}`;
  }
  addRule(r: NftRuleSpec): this {
    return this.push(this.ruleText('add', r));
  }
  insertRule(r: NftRuleSpec): this {
    return this.push(this.ruleText('insert', r));
  }
  deleteRule(r: { family: NftFamily; table: string; chain: string; handle: number }): this {
    return this.push(`delete rule ${r.family} ${r.table} ${r.chain} handle ${r.handle}`);
  }

  private setText(kind: 'set' | 'map', s: NftSetSpec): string {
    const parts = [`type ${s.type} ;`];
    if (s.flags?.length) parts.push(`flags ${s.flags.join(',')} ;`);
    if (s.comment !== undefined) parts.push(`comment ${quoteComment(s.comment)} ;`);
    return `add ${kind} ${s.family} ${s.table} ${s.name} { ${parts.join(' ')} }`;
  }
  addSet(s: NftSetSpec): this {
    return this.push(this.setText('set', s));
  }
  addMap(s: NftSetSpec): this {
    return this.push(this.setText('map', s));
  }
  flushSet(s: { family: NftFamily; table: string; name: string }, kind: 'set' | 'map' = 'set'): this {
    return this.push(`flush ${kind} ${s.family} ${s.table} ${s.name}`);
  }
  deleteSet(s: { family: NftFamily; table: string; name: string }, kind: 'set' | 'map' = 'set'): this {
    return this.push(`delete ${kind} ${s.family} ${s.table} ${s.name}`);
  }
  private elemText(e: NftElementSpec, withExtras: boolean): string {
    let body = e.key;
    if (withExtras && e.comment !== undefined) body += ` comment ${quoteComment(e.comment)}`;
    if (withExtras && e.value !== undefined) body += ` : ${e.value}`;
    return `${e.family} ${e.table} ${e.set} { ${body} }`;
  }
  addElement(e: NftElementSpec): this {
    return this.push(`add element ${this.elemText(e, true)}`);
  }
  deleteElement(e: NftElementSpec): this {
    return this.push(`delete element ${this.elemText(e, false)}`);
  }

  render(): string {
    return this.lines.map((l) => l + '\n').join('');
  }
}

// ---------------------------------------------------------------------------
// `nft -j list` parsing

export interface NftChainInfo {
  family: NftFamily;
  table: string;
  name: string;
  handle: number;
  type?: string;
  hook?: string;
  prio?: number;
  policy?: string;
}
export interface NftRuleInfo {
  family: NftFamily;
  table: string;
  chain: string;
  handle: number;
  comment: string | undefined;
  /** Rule body rendered from the JSON expression in `nft list` form (comment excluded). */
  text: string;
  expr: unknown[];
}
export interface NftSetInfo {
  family: NftFamily;
  table: string;
  name: string;
  handle: number;
  type: unknown;
  elem: unknown[];
  map?: unknown;
}
export interface NftTableInfo {
  family: NftFamily;
  name: string;
  chains: NftChainInfo[];
  rules: NftRuleInfo[];
  sets: NftSetInfo[];
}

type J = Record<string, unknown>;
const isObj = (v: unknown): v is J => typeof v === 'object' && v !== null && !Array.isArray(v);

const BARE_META = new Set(['iifname', 'oifname', 'iif', 'oif', 'iiftype', 'oiftype', 'iifgroup', 'oifgroup']);

function valueText(v: unknown, quoteStrings: boolean): string {
  if (typeof v === 'string') return quoteStrings ? `"${v}"` : v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (isObj(v)) {
    if (isObj(v.prefix)) return `${valueText(v.prefix.addr, false)}/${String(v.prefix.len)}`;
    if (Array.isArray(v.range)) return `${valueText(v.range[0], quoteStrings)}-${valueText(v.range[1], quoteStrings)}`;
    if (Array.isArray(v.set)) return `{ ${v.set.map((x) => valueText(x, quoteStrings)).join(', ')} }`;
    if (isObj(v.payload)) return `${String(v.payload.protocol)} ${String(v.payload.field)}`;
    if (isObj(v.meta)) return BARE_META.has(String(v.meta.key)) ? String(v.meta.key) : `meta ${String(v.meta.key)}`;
    if (isObj(v.ct)) return `ct ${String(v.ct.key)}`;
    if (Array.isArray(v.concat)) return v.concat.map((x) => valueText(x, quoteStrings)).join(' . ');
  }
  return JSON.stringify(v);
}

function leftQuotesStrings(left: unknown): boolean {
  return isObj(left) && isObj(left.meta) && ['iifname', 'oifname'].includes(String(left.meta.key));
}

function statementText(s: unknown): string {
  if (!isObj(s)) return JSON.stringify(s);
  const [k, v] = Object.entries(s)[0] ?? ['', undefined];
  switch (k) {
    case 'match': {
      const m = v as J;
      const op = m.op === '==' || m.op === 'in' ? '' : `${String(m.op)} `;
      return `${valueText(m.left, false)} ${op}${valueText(m.right, leftQuotesStrings(m.left))}`;
    }
    case 'accept':
    case 'drop':
    case 'return':
    case 'continue':
      return k;
    case 'jump':
    case 'goto':
      return `${k} ${String((v as J).target)}`;
    case 'masquerade':
    case 'snat':
    case 'dnat': {
      if (v === null) return k;
      const o = v as J;
      let t = k;
      if (o.addr !== undefined) t += ` to ${valueText(o.addr, false)}${o.port !== undefined ? `:${valueText(o.port, false)}` : ''}`;
      const flags = Array.isArray(o.flags) ? o.flags : typeof o.flags === 'string' ? [o.flags] : [];
      if (flags.length) t += ` ${flags.join(',')}`;
      return t;
    }
    case 'counter':
      return isObj(v) ? `counter packets ${String(v.packets)} bytes ${String(v.bytes)}` : 'counter';
    default:
      return JSON.stringify(s);
  }
}

export function nftRuleText(expr: readonly unknown[]): string {
  return expr.map(statementText).join(' ');
}

export class NftParseError extends NetError {
  constructor(message: string) {
    super('NFT_PARSE', message);
  }
}

/** Parses `nft -j list table F T` (or `list ruleset`) output; returns the named table, or all tables. */
export function parseNftJson(json: string): NftTableInfo[] {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (err) {
    throw new NftParseError(`cannot parse nft JSON: ${(err as Error).message}`);
  }
  if (!isObj(doc) || !Array.isArray(doc.nftables)) throw new NftParseError('nft JSON lacks "nftables" array');
  const tables = new Map<string, NftTableInfo>();
  const key = (f: unknown, t: unknown): string => `${String(f)} ${String(t)}`;
  const tableOf = (f: unknown, t: unknown): NftTableInfo => {
    let tab = tables.get(key(f, t));
    if (!tab) {
      tab = { family: f as NftFamily, name: String(t), chains: [], rules: [], sets: [] };
      tables.set(key(f, t), tab);
    }
    return tab;
  };
  for (const item of doc.nftables as unknown[]) {
    if (!isObj(item)) continue;
    if (isObj(item.table)) tableOf(item.table.family, item.table.name);
    else if (isObj(item.chain)) {
      const c = item.chain;
      const info: NftChainInfo = { family: c.family as NftFamily, table: String(c.table), name: String(c.name), handle: Number(c.handle) };
      if (typeof c.type === 'string') info.type = c.type;
      if (typeof c.hook === 'string') info.hook = c.hook;
      if (typeof c.prio === 'number') info.prio = c.prio;
      if (typeof c.policy === 'string') info.policy = c.policy;
      tableOf(c.family, c.table).chains.push(info);
    } else if (isObj(item.rule)) {
      const r = item.rule;
      const expr = Array.isArray(r.expr) ? (r.expr as unknown[]) : [];
      tableOf(r.family, r.table).rules.push({
        family: r.family as NftFamily,
        table: String(r.table),
        chain: String(r.chain),
        handle: Number(r.handle),
        comment: typeof r.comment === 'string' ? r.comment : undefined,
        text: nftRuleText(expr),
        expr,
      });
    } else if (isObj(item.set) || isObj(item.map)) {
      const s = (item.set ?? item.map) as J;
      const info: NftSetInfo = { family: s.family as NftFamily, table: String(s.table), name: String(s.name), handle: Number(s.handle), type: s.type, elem: Array.isArray(s.elem) ? s.elem : [] };
      if (s.map !== undefined) info.map = s.map;
      tableOf(s.family, s.table).sets.push(info);
    }
  }
  return [...tables.values()];
}

// ---------------------------------------------------------------------------
// Runner

export interface Nft {
  /** Runs one transaction (`nft -f -`); all or nothing. */
  run(tx: NftTransaction | string): Promise<void>;
  /** Lists one table, or undefined if it does not exist. */
  list(family: NftFamily, table: string): Promise<NftTableInfo | undefined>;
}

export interface RealNftOptions {
  netns?: string;
  timeoutMs?: number;
}

export class RealNft implements Nft {
  constructor(private readonly opts: RealNftOptions = {}) {}
  private runOpts(input?: string): RunOptions {
    return runOptions(this.opts, input);
  }
  async run(tx: NftTransaction | string): Promise<void> {
    const text = typeof tx === 'string' ? tx : tx.render();
    if (text === '') return;
    await run('nft', ['-f', '-'], this.runOpts(text));
  }
  async list(family: NftFamily, table: string): Promise<NftTableInfo | undefined> {
    // Ask for the family's table names first: absent tables (the common case
    // for callers that tear down "just in case") then cost one process, and a
    // failing listing never has to be told apart by its message.
    const { stdout: names } = await run('nft', ['-j', 'list', 'tables', family], this.runOpts());
    if (!parseNftJson(names).some((t) => t.name === table)) return undefined;
    const { stdout } = await run('nft', ['-j', 'list', 'table', family, table], this.runOpts());
    return parseNftJson(stdout).find((t) => t.family === family && t.name === table) ?? { family, name: table, chains: [], rules: [], sets: [] };
  }
}

// ---------------------------------------------------------------------------
// Fake (tests): understands the commands NftTransaction renders.

interface FakeRule {
  handle: number;
  text: string;
  comment: string | undefined;
}
interface FakeChain {
  name: string;
  handle: number;
  type?: string;
  hook?: string;
  prio?: number;
  policy?: string;
  rules: FakeRule[];
}
interface FakeSet {
  name: string;
  handle: number;
  kind: 'set' | 'map';
  type: string;
  elems: Map<string, { value: string | undefined; comment: string | undefined }>;
}
interface FakeNftTable {
  family: NftFamily;
  name: string;
  comment: string | undefined;
  nextHandle: number;
  chains: Map<string, FakeChain>;
  sets: Map<string, FakeSet>;
}

const PRIORITIES: Record<string, number> = { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 };
const BRIDGE_PRIORITIES: Record<string, number> = { dstnat: -300, filter: -200, out: 100, srcnat: 300 };

function normalizeRule(text: string): string {
  return text
    .trim()
    .split(/\s+/)
    .filter((t) => t !== '==')
    .join(' ');
}

function splitComment(body: string): { text: string; comment: string | undefined } {
  const m = /\s+comment\s+"([^"]*)"\s*$/.exec(body);
  if (!m) return { text: normalizeRule(body), comment: undefined };
  return { text: normalizeRule(body.slice(0, m.index)), comment: m[1] };
}

export class FakeNft implements Nft {
  tables = new Map<string, FakeNftTable>();
  readonly runs: string[] = [];
  lists = 0;

  private static cloneAll(m: Map<string, FakeNftTable>): Map<string, FakeNftTable> {
    return structuredClone(m);
  }

  async run(tx: NftTransaction | string): Promise<void> {
    const text = typeof tx === 'string' ? tx : tx.render();
    if (text === '') return;
    this.runs.push(text);
    const state = FakeNft.cloneAll(this.tables);
    const lines = text.split('\n');
    for (let n = 0; n < lines.length; n++) {
      const line = lines[n]!.trim();
      if (line === '' || line.startsWith('#')) continue;
      this.apply(state, line, n + 1);
    }
    this.tables = state;
  }

  private fail(lineNo: number, line: string, what: string): never {
    throw new ExecError('EXEC_FAILED', {
      command: 'nft -f -',
      exitCode: 1,
      stderr: `/dev/stdin:${lineNo}:1-${line.length}: Error: Could not process rule: ${what}\n${line}\n`,
      shortMessage: 'Command failed with exit code 1: nft -f -',
    });
  }

  private apply(state: Map<string, FakeNftTable>, line: string, lineNo: number): void {
    const enoent = (): never => this.fail(lineNo, line, 'No such file or directory');
    const ebusy = (): never => this.fail(lineNo, line, 'Device or resource busy');
    const toks = line.split(/\s+/);
    const [verb, obj, fam, tname] = toks as [string, string, NftFamily, string];
    const tkey = `${fam} ${tname}`;
    const table = state.get(tkey);
    const needTable = (): FakeNftTable => table ?? enoent();
    const handle = (): number => needTable().nextHandle++;
    if (obj === 'table') {
      if (verb === 'add') {
        if (!table) {
          const m = /comment "([^"]*)"/.exec(line);
          state.set(tkey, { family: fam, name: tname, comment: m?.[1], nextHandle: 1, chains: new Map(), sets: new Map() });
        }
      } else if (verb === 'delete') {
        needTable();
        state.delete(tkey);
      } else if (verb === 'flush') {
        for (const c of needTable().chains.values()) c.rules = [];
        for (const s of needTable().sets.values()) s.elems.clear();
      } else enoent();
      return;
    }
    const name = toks[4] ?? enoent();
    if (obj === 'chain') {
      const t = needTable();
      const chain = t.chains.get(name);
      if (verb === 'add') {
        if (chain) return;
        const c: FakeChain = { name, handle: handle(), rules: [] };
        const m = /type (\w+) hook (\w+)(?: device "[^"]*")? priority ([-\w]+) ;(?: policy (\w+) ;)?/.exec(line);
        if (m) {
          c.type = m[1]!;
          c.hook = m[2]!;
          const p = m[3]!;
          c.prio = /^-?\d+$/.test(p) ? Number(p) : ((fam === 'bridge' ? BRIDGE_PRIORITIES : PRIORITIES)[p] ?? enoent());
          c.policy = m[4] ?? 'accept';
        }
        t.chains.set(name, c);
      } else if (verb === 'flush') {
        (chain ?? enoent()).rules = [];
      } else if (verb === 'delete') {
        if (!chain) return enoent();
        for (const other of t.chains.values()) {
          if (other !== chain && other.rules.some((r) => new RegExp(`\\b(jump|goto) ${name}(\\s|$)`).test(r.text))) ebusy();
        }
        t.chains.delete(name);
      } else enoent();
      return;
    }
    if (obj === 'rule') {
      const t = needTable();
      const chain = t.chains.get(name) ?? enoent();
      if (verb === 'delete') {
        const h = Number(toks[6]);
        const idx = chain.rules.findIndex((r) => r.handle === h);
        if (toks[5] !== 'handle' || idx < 0) enoent();
        chain.rules.splice(idx, 1);
        return;
      }
      let rest = toks.slice(5);
      let pos: number | undefined;
      if (rest[0] === 'position' || rest[0] === 'handle') {
        pos = Number(rest[1]);
        rest = rest.slice(2);
      }
      const { text, comment } = splitComment(rest.join(' '));
      const target = /\b(?:jump|goto) (\S+)/.exec(text)?.[1];
      if (target !== undefined && !t.chains.has(target)) enoent();
      const rule: FakeRule = { handle: handle(), text, comment };
      let idx = verb === 'insert' ? 0 : chain.rules.length;
      if (pos !== undefined) {
        const at = chain.rules.findIndex((r) => r.handle === pos);
        if (at < 0) enoent();
        idx = verb === 'insert' ? at : at + 1;
      }
      if (verb !== 'add' && verb !== 'insert') enoent();
      chain.rules.splice(idx, 0, rule);
      return;
    }
    if (obj === 'set' || obj === 'map') {
      const t = needTable();
      const set = t.sets.get(name);
      if (verb === 'add') {
        if (!set) t.sets.set(name, { name, handle: handle(), kind: obj, type: /type ([^;]+) ;/.exec(line)?.[1]?.trim() ?? '', elems: new Map() });
      } else if (verb === 'flush') (set ?? enoent()).elems.clear();
      else if (verb === 'delete') {
        if (!set) enoent();
        t.sets.delete(name);
      } else enoent();
      return;
    }
    if (obj === 'element') {
      const t = needTable();
      const set = t.sets.get(name) ?? enoent();
      const body = /\{ (.*) \}$/.exec(line)?.[1] ?? enoent();
      const m = /^(.*?)(?: comment "([^"]*)")?(?: : (.*))?$/.exec(body)!;
      const key = m[1]!.trim();
      if (verb === 'add') {
        if (!set.elems.has(key)) set.elems.set(key, { value: m[3], comment: m[2] });
      } else if (verb === 'delete') {
        if (!set.elems.delete(key)) enoent();
      } else enoent();
      return;
    }
    enoent();
  }

  async list(family: NftFamily, table: string): Promise<NftTableInfo | undefined> {
    this.lists++;
    const t = this.tables.get(`${family} ${table}`);
    if (!t) return undefined;
    const out: NftTableInfo = { family, name: table, chains: [], rules: [], sets: [] };
    for (const c of t.chains.values()) {
      const info: NftChainInfo = { family, table, name: c.name, handle: c.handle };
      if (c.type !== undefined) info.type = c.type;
      if (c.hook !== undefined) info.hook = c.hook;
      if (c.prio !== undefined) info.prio = c.prio;
      if (c.policy !== undefined) info.policy = c.policy;
      out.chains.push(info);
      for (const r of c.rules) out.rules.push({ family, table, chain: c.name, handle: r.handle, comment: r.comment, text: r.text, expr: [] });
    }
    for (const s of t.sets.values()) {
      out.sets.push({ family, table, name: s.name, handle: s.handle, type: s.type, elem: [...s.elems.keys()] });
    }
    return out;
  }
}
