// FakeNft (tests): applies `nft -f -` text as NftTransaction renders it, with
// nft 1.0.6's semantics measured against the real tool: `add` leaves existing
// objects, `create` fails EEXIST, `delete` fails ENOENT, `destroy` never
// fails for a missing object, a referenced chain or set fails EBUSY, `flush
// table` empties chains but keeps set elements, `replace` keeps the handle,
// and a failing transaction changes nothing. `dump()` prints the state the
// way `nft list ruleset` does, for golden tests.
import { ExecError } from '../exec.ts';
import type { Nft } from './nft.ts';
import type { NftChainInfo, NftElementInfo, NftSetInfo, NftTableInfo } from './nft-json.ts';
import type { NftFamily, NftTransaction } from './nft-tx.ts';

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
  device?: string;
  comment?: string;
  rules: FakeRule[];
}
interface FakeElem {
  key: string;
  value?: string;
  timeout?: number;
  comment?: string;
}
interface FakeSet {
  name: string;
  handle: number;
  kind: 'set' | 'map';
  /** As listed: `ipv4_addr . inet_proto . inet_service`. */
  type: string;
  valueType?: string;
  /** Declared with typeof: the expression, printed back by dump(). */
  typeofExpr?: string;
  flags: string[];
  timeout?: number;
  size?: number;
  comment?: string;
  elems: Map<string, FakeElem>;
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

/** The datatypes nft derives for the `typeof` expressions kube-proxy and netpolicy use. */
const TYPEOF: Record<string, string> = {
  'ip saddr': 'ipv4_addr',
  'ip daddr': 'ipv4_addr',
  'ip6 saddr': 'ipv6_addr',
  'ip6 daddr': 'ipv6_addr',
  'meta l4proto': 'inet_proto',
  'ip protocol': 'inet_proto',
  'ip6 nexthdr': 'inet_proto',
  'th dport': 'inet_service',
  'th sport': 'inet_service',
  'tcp dport': 'inet_service',
  'tcp sport': 'inet_service',
  'udp dport': 'inet_service',
  'udp sport': 'inet_service',
  'meta mark': 'mark',
  iifname: 'ifname',
  oifname: 'ifname',
  'meta iifname': 'ifname',
  'meta oifname': 'ifname',
  'ether saddr': 'ether_addr',
  'ether daddr': 'ether_addr',
};

const ERRNO_TEXT = {
  ENOENT: 'No such file or directory',
  EEXIST: 'File exists',
  EBUSY: 'Device or resource busy',
  EINVAL: 'Invalid argument',
  EOPNOTSUPP: 'Operation not supported',
} as const;
type Errno = keyof typeof ERRNO_TEXT;

class LineError extends Error {
  constructor(readonly errno: Errno | 'syntax') {
    super(errno);
  }
}
const fail = (errno: Errno | 'syntax'): never => {
  throw new LineError(errno);
};

function normalizeRule(text: string): string {
  return text
    .trim()
    .split(/\s+/)
    .filter((t) => t !== '==')
    .join(' ');
}

/** Splits at `sep` outside double quotes and braces. */
function splitTop(s: string, sep: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let cur = '';
  for (const c of s) {
    if (c === '"') quoted = !quoted;
    else if (!quoted && c === '{') depth++;
    else if (!quoted && c === '}') depth--;
    if (!quoted && depth === 0 && c === sep) {
      out.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  if (cur.trim() !== '') out.push(cur.trim());
  return out;
}

/** `{ inner }` → inner, or undefined when there is no brace block. */
function braced(s: string | undefined): string | undefined {
  if (s === undefined || s.trim() === '') return undefined;
  const m = /^\{(.*)\}$/.exec(s.trim());
  return m ? m[1]!.trim() : fail('syntax');
}

function parseDuration(s: string): number {
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$/.exec(s);
  if (!m || s === '') return fail('syntax');
  const [d, h, mi, sec, ms] = m.slice(1).map((x) => Number(x ?? 0)) as [number, number, number, number, number];
  return d * 86400 + h * 3600 + mi * 60 + sec + Math.floor(ms / 1000);
}

function splitComment(body: string): { text: string; comment: string | undefined } {
  const m = /\s*\bcomment\s+"([^"]*)"\s*$/.exec(body);
  if (!m) return { text: normalizeRule(body), comment: undefined };
  return { text: normalizeRule(body.slice(0, m.index)), comment: m[1] };
}

const chainRefs = (text: string): string[] => [...text.matchAll(/\b(?:jump|goto)\s+([^\s,}]+)/g)].map((m) => m[1]!);
const setRefs = (text: string): string[] => [...text.matchAll(/@([A-Za-z_][A-Za-z0-9_./:-]*)/g)].map((m) => m[1]!);

function typeofToType(expr: string): string {
  return expr
    .split(' . ')
    .map((p) => TYPEOF[p.trim()] ?? p.trim())
    .join(' . ');
}

export class FakeNft implements Nft {
  tables = new Map<string, FakeNftTable>();
  /** Every transaction text run (check runs excluded), in order. */
  readonly runs: string[] = [];
  /** Every transaction text checked with check(). */
  readonly checks: string[] = [];
  lists = 0;

  async run(tx: NftTransaction | string): Promise<void> {
    const text = typeof tx === 'string' ? tx : tx.render();
    if (text === '') return;
    this.runs.push(text);
    this.tables = this.applied(text, 'nft -f -');
  }

  /** Like `nft -c -f -`: validates against the current state, changes nothing. */
  async check(tx: NftTransaction | string): Promise<void> {
    const text = typeof tx === 'string' ? tx : tx.render();
    this.checks.push(text);
    if (text !== '') this.applied(text, 'nft -c -f -');
  }

  private applied(text: string, command: string): Map<string, FakeNftTable> {
    const state = structuredClone(this.tables);
    const lines = text.split('\n');
    for (let n = 0; n < lines.length; n++) {
      const line = lines[n]!.trim();
      if (line === '' || line.startsWith('#')) continue;
      try {
        this.apply(state, line);
      } catch (err) {
        if (!(err instanceof LineError)) throw err;
        const what = err.errno === 'syntax' ? 'syntax error' : `Could not process rule: ${ERRNO_TEXT[err.errno]}`;
        throw new ExecError('EXEC_FAILED', {
          command,
          exitCode: 1,
          stderr: `/dev/stdin:${n + 1}:1-${line.length}: Error: ${what}\n${line}\n`,
          shortMessage: `Command failed with exit code 1: ${command}`,
        });
      }
    }
    return state;
  }

  private apply(state: Map<string, FakeNftTable>, line: string): void {
    const m = /^(add|create|insert|replace|delete|destroy|flush)\s+(table|chain|rule|set|map|element)\s+(\S+)\s+(\S+)(?:\s+(.*))?$/.exec(line);
    if (!m) return fail('syntax');
    const [, verb, obj, fam, second, rest] = m as unknown as [string, string, string, NftFamily, string, string | undefined];
    if (obj === 'table') return this.applyTable(state, verb, fam, second, rest);
    const table = state.get(`${fam} ${second}`);
    if (!table) return verb === 'destroy' ? undefined : fail('ENOENT');
    const r = /^(\S+)(?:\s+(.*))?$/.exec(rest ?? '') ?? fail('syntax');
    const [, name, tail] = r as unknown as [string, string, string | undefined];
    switch (obj) {
      case 'chain':
        return this.applyChain(table, verb, name, tail);
      case 'rule':
        return this.applyRule(table, verb, name, tail ?? '');
      case 'set':
      case 'map':
        return this.applySet(table, verb, obj, name, tail);
      default:
        return this.applyElements(table, verb, name, tail);
    }
  }

  private applyTable(state: Map<string, FakeNftTable>, verb: string, family: NftFamily, name: string, rest: string | undefined): void {
    const key = `${family} ${name}`;
    const table = state.get(key);
    switch (verb) {
      case 'add':
      case 'create': {
        if (table) return verb === 'create' ? fail('EEXIST') : undefined;
        const spec = braced(rest);
        const comment = spec !== undefined ? /comment "([^"]*)"/.exec(spec)?.[1] : undefined;
        state.set(key, { family, name, comment, nextHandle: 1, chains: new Map(), sets: new Map() });
        return;
      }
      case 'delete':
      case 'destroy':
        if (!table) return verb === 'delete' ? fail('ENOENT') : undefined;
        state.delete(key);
        return;
      case 'flush':
        for (const c of (table ?? fail('ENOENT')).chains.values()) c.rules = [];
        return;
      default:
        return fail('syntax');
    }
  }

  private referencedChain(t: FakeNftTable, name: string): boolean {
    for (const c of t.chains.values()) if (c.rules.some((r) => chainRefs(r.text).includes(name))) return true;
    for (const s of t.sets.values()) for (const e of s.elems.values()) if (e.value !== undefined && chainRefs(e.value).includes(name)) return true;
    return false;
  }

  private applyChain(t: FakeNftTable, verb: string, name: string, tail: string | undefined): void {
    const chain = t.chains.get(name);
    switch (verb) {
      case 'add':
      case 'create': {
        const spec = this.chainSpec(t.family, braced(tail));
        if (chain) {
          if (verb === 'create') return fail('EEXIST');
          if (spec.hook !== undefined && spec.hook !== chain.hook) return fail('EOPNOTSUPP');
          if (spec.hook !== undefined && spec.policy !== undefined) chain.policy = spec.policy;
          return;
        }
        t.chains.set(name, { name, handle: t.nextHandle++, ...spec, ...(spec.hook !== undefined && spec.policy === undefined ? { policy: 'accept' } : {}), rules: [] });
        return;
      }
      case 'flush':
        (chain ?? fail('ENOENT')).rules = [];
        return;
      case 'delete':
      case 'destroy':
        if (!chain) return verb === 'delete' ? fail('ENOENT') : undefined;
        // The kernel deletes a chain's own rules with it; only references keep it.
        chain.rules = [];
        if (this.referencedChain(t, name)) return fail('EBUSY');
        t.chains.delete(name);
        return;
      default:
        return fail('syntax');
    }
  }

  private chainSpec(family: NftFamily, spec: string | undefined): Omit<FakeChain, 'name' | 'handle' | 'rules'> {
    const out: Omit<FakeChain, 'name' | 'handle' | 'rules'> = {};
    if (spec === undefined) return out;
    for (const part of splitTop(spec, ';')) {
      const base = /^type (\w+) hook (\w+)(?: device "([^"]*)")? priority (.+)$/.exec(part);
      if (base) {
        out.type = base[1]!;
        out.hook = base[2]!;
        if (base[3] !== undefined) out.device = base[3];
        out.prio = this.priority(family, base[4]!.trim());
      } else if (/^policy (accept|drop)$/.test(part)) out.policy = part.slice(7);
      else if (/^comment "[^"]*"$/.test(part)) out.comment = part.slice(9, -1);
      else fail('syntax');
    }
    return out;
  }

  private priority(family: NftFamily, p: string): number {
    if (/^-?\d+$/.test(p)) return Number(p);
    const m = /^(\w+)(?:\s*([+-])\s*(\d+))?$/.exec(p) ?? fail('syntax');
    const base = (family === 'bridge' ? BRIDGE_PRIORITIES : PRIORITIES)[m[1]!] ?? fail('syntax');
    return m[2] === undefined ? base : m[2] === '+' ? base + Number(m[3]) : base - Number(m[3]);
  }

  private checkRefs(t: FakeNftTable, text: string): void {
    for (const target of chainRefs(text)) if (!t.chains.has(target)) fail('ENOENT');
    for (const s of setRefs(text)) if (!t.sets.has(s)) fail('ENOENT');
  }

  private applyRule(t: FakeNftTable, verb: string, chainName: string, tail: string): void {
    const chain = t.chains.get(chainName);
    if (!chain) return verb === 'destroy' ? undefined : fail('ENOENT');
    const pm = /^(position|handle|index)\s+(\d+)(?:\s+(.*))?$/.exec(tail);
    const where = pm ? { kind: pm[1]!, n: Number(pm[2]) } : undefined;
    const body = pm ? (pm[3] ?? '') : tail;
    const at = where !== undefined ? chain.rules.findIndex((r) => r.handle === where.n) : -1;
    if (verb === 'delete' || verb === 'destroy') {
      if (where?.kind !== 'handle' || body !== '') return fail('syntax');
      if (at < 0) return verb === 'delete' ? fail('ENOENT') : undefined;
      chain.rules.splice(at, 1);
      return;
    }
    if (body.trim() === '') return fail('syntax');
    const { text, comment } = splitComment(body);
    this.checkRefs(t, text);
    if (verb === 'replace') {
      if (where?.kind !== 'handle') return fail('syntax');
      if (at < 0) return fail('ENOENT');
      chain.rules[at] = { handle: where.n, text, comment };
      return;
    }
    if (verb !== 'add' && verb !== 'insert') return fail('syntax');
    if (where !== undefined && where.kind !== 'position') return fail('syntax');
    if (where !== undefined && at < 0) return fail('ENOENT');
    const idx = where === undefined ? (verb === 'insert' ? 0 : chain.rules.length) : verb === 'insert' ? at : at + 1;
    chain.rules.splice(idx, 0, { handle: t.nextHandle++, text, comment });
  }

  private referencedSet(t: FakeNftTable, name: string): boolean {
    for (const c of t.chains.values()) if (c.rules.some((r) => setRefs(r.text).includes(name))) return true;
    return false;
  }

  private applySet(t: FakeNftTable, verb: string, kind: 'set' | 'map', name: string, tail: string | undefined): void {
    const set = t.sets.get(name);
    if (set && set.kind !== kind) return fail(verb === 'add' || verb === 'create' ? 'EEXIST' : 'ENOENT');
    switch (verb) {
      case 'add':
      case 'create': {
        const spec = this.setSpec(kind, braced(tail) ?? fail('syntax'));
        if (set) {
          if (verb === 'create' || set.type !== spec.type || set.valueType !== spec.valueType) return fail('EEXIST');
          return;
        }
        t.sets.set(name, { ...spec, name, handle: t.nextHandle++ });
        return;
      }
      case 'flush':
        (set ?? fail('ENOENT')).elems.clear();
        return;
      case 'delete':
      case 'destroy':
        if (!set) return verb === 'delete' ? fail('ENOENT') : undefined;
        if (this.referencedSet(t, name)) return fail('EBUSY');
        t.sets.delete(name);
        return;
      default:
        return fail('syntax');
    }
  }

  private setSpec(kind: 'set' | 'map', spec: string): Omit<FakeSet, 'name' | 'handle'> {
    const out: Omit<FakeSet, 'name' | 'handle'> = { kind, type: '', flags: [], elems: new Map() };
    for (const part of splitTop(spec, ';')) {
      const [word, ...rest] = part.split(/\s+/);
      const arg = rest.join(' ');
      switch (word) {
        case 'type':
        case 'typeof': {
          const [k, v] = arg.split(' : ');
          if (k === undefined || (kind === 'map') !== (v !== undefined)) return fail('syntax');
          out.type = word === 'type' ? k : typeofToType(k);
          if (word === 'typeof') out.typeofExpr = arg;
          if (v !== undefined) out.valueType = word === 'type' ? v : typeofToType(v);
          break;
        }
        case 'flags':
          out.flags = arg.split(',').map((f) => f.trim());
          if (out.flags.some((f) => !['constant', 'dynamic', 'interval', 'timeout'].includes(f))) fail('syntax');
          break;
        case 'timeout':
          out.timeout = parseDuration(arg);
          break;
        case 'size':
          out.size = /^\d+$/.test(arg) ? Number(arg) : fail('syntax');
          break;
        case 'policy':
          if (arg !== 'performance' && arg !== 'memory') fail('syntax');
          break;
        case 'comment':
          out.comment = /^"([^"]*)"$/.exec(arg)?.[1] ?? fail('syntax');
          break;
        default:
          fail('syntax');
      }
    }
    if (out.type === '') fail('syntax');
    if (out.timeout !== undefined && !out.flags.includes('timeout')) out.flags.push('timeout');
    return out;
  }

  private parseElement(text: string): FakeElem {
    const [keyPart, value] = text.includes(' : ') ? splitOnValue(text) : [text, undefined];
    const m = /^(.*?)(?:\s+timeout\s+(\S+))?(?:\s+comment\s+"([^"]*)")?$/.exec(keyPart.trim()) ?? fail('syntax');
    const e: FakeElem = { key: normalizeKey(m[1]!) };
    if (e.key === '') fail('syntax');
    if (m[2] !== undefined) e.timeout = parseDuration(m[2]);
    if (m[3] !== undefined) e.comment = m[3];
    if (value !== undefined) e.value = normalizeRule(value);
    return e;
  }

  private applyElements(t: FakeNftTable, verb: string, setName: string, tail: string | undefined): void {
    const set = t.sets.get(setName);
    if (!set) return verb === 'destroy' ? undefined : fail('ENOENT');
    const body = braced(tail) ?? fail('syntax');
    for (const text of splitTop(body, ',')) {
      const e = this.parseElement(text);
      const parts = e.key.split(' . ');
      if (parts.length !== set.type.split(' . ').length) fail('EINVAL');
      if (!set.flags.includes('interval') && parts.some(isInterval)) fail('EINVAL');
      const existing = set.elems.get(e.key);
      if (verb === 'delete' || verb === 'destroy') {
        if (!existing) {
          if (verb === 'delete') fail('ENOENT');
          continue;
        }
        set.elems.delete(e.key);
        continue;
      }
      if (verb !== 'add' && verb !== 'create') fail('syntax');
      if ((set.kind === 'map') !== (e.value !== undefined)) fail('EINVAL');
      if (e.timeout !== undefined && !set.flags.includes('timeout')) fail('EINVAL');
      if (e.value !== undefined) this.checkRefs(t, e.value);
      if (existing) {
        if (verb === 'create' || existing.value !== e.value) fail('EEXIST');
        continue;
      }
      if (e.timeout === undefined && set.timeout !== undefined) e.timeout = set.timeout;
      set.elems.set(e.key, e);
    }
  }

  async list(family: NftFamily, table: string): Promise<NftTableInfo | undefined> {
    this.lists++;
    const t = this.tables.get(`${family} ${table}`);
    return t ? tableInfo(t) : undefined;
  }

  async listRuleset(): Promise<NftTableInfo[]> {
    this.lists++;
    return [...this.tables.values()].map(tableInfo);
  }

  /** The state as `nft list ruleset` prints it (elements in key order, priorities numeric unless exact keywords). */
  dump(): string {
    return [...this.tables.values()].map(dumpTable).join('');
  }
}

/** Splits `key … : value` at the value colon (IPv6 keys hold colons, but never ` : `). */
function splitOnValue(text: string): [string, string] {
  const i = text.lastIndexOf(' : ');
  if (i < 0) return fail('syntax');
  return [text.slice(0, i), text.slice(i + 3)];
}

/** A prefix (`10.0.0.0/8`) or a range (`1000-2000`, `10.0.0.1-10.0.0.9`) needs an interval set. */
const isInterval = (part: string): boolean => part.includes('/') || /^[0-9a-fA-F.:]+-[0-9a-fA-F.:]+$/.test(part);

function normalizeKey(k: string): string {
  return k
    .trim()
    .split(/\s+\.\s+/)
    .map((p) => p.trim())
    .join(' . ');
}

function tableInfo(t: FakeNftTable): NftTableInfo {
  const { family, name: table } = t;
  // nft 1.0.6's JSON carries no table or chain comments, so neither does this listing (dump() prints them).
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
    const elements = [...s.elems.values()].map((e) => ({ ...e }) as NftElementInfo);
    const info: NftSetInfo = { family, table, name: s.name, handle: s.handle, type: s.type, elem: [...s.elems.keys()], kind: s.kind, keyType: s.type, flags: [...s.flags], elements };
    if (s.valueType !== undefined) {
      info.map = s.valueType;
      info.valueType = s.valueType;
    }
    if (s.timeout !== undefined) info.timeout = s.timeout;
    if (s.size !== undefined) info.size = s.size;
    if (s.comment !== undefined) info.comment = s.comment;
    out.sets.push(info);
  }
  return out;
}

function durationText(sec: number): string {
  const parts: string[] = [];
  const units: [number, string][] = [[86400, 'd'], [3600, 'h'], [60, 'm'], [1, 's']];
  let rest = sec;
  for (const [n, u] of units) {
    if (rest >= n) {
      parts.push(`${Math.floor(rest / n)}${u}`);
      rest %= n;
    }
  }
  return parts.join('') || '0s';
}

function priorityText(family: NftFamily, prio: number): string {
  const names = family === 'bridge' ? BRIDGE_PRIORITIES : PRIORITIES;
  const exact = Object.entries(names).find(([, v]) => v === prio);
  return exact ? exact[0] : String(prio);
}

function dumpSet(s: FakeSet): string {
  const lines = [`\t${s.kind} ${s.name} {`];
  lines.push(s.typeofExpr !== undefined ? `\t\ttypeof ${s.typeofExpr}` : `\t\ttype ${s.type}${s.valueType !== undefined ? ` : ${s.valueType}` : ''}`);
  if (s.size !== undefined) lines.push(`\t\tsize ${s.size}`);
  if (s.flags.length) lines.push(`\t\tflags ${s.flags.join(',')}`);
  if (s.timeout !== undefined) lines.push(`\t\ttimeout ${durationText(s.timeout)}`);
  if (s.comment !== undefined) lines.push(`\t\tcomment "${s.comment}"`);
  if (s.elems.size) {
    const elems = [...s.elems.values()]
      .sort((a, b) => a.key.localeCompare(b.key))
      .map((e) => `${e.key}${e.timeout !== undefined ? ` timeout ${durationText(e.timeout)}` : ''}${e.comment !== undefined ? ` comment "${e.comment}"` : ''}${e.value !== undefined ? ` : ${e.value}` : ''}`);
    lines.push(`\t\telements = { ${elems.join(',\n\t\t\t     ')} }`);
  }
  lines.push('\t}');
  return lines.join('\n');
}

function dumpChain(family: NftFamily, c: FakeChain): string {
  const lines = [`\tchain ${c.name} {`];
  if (c.comment !== undefined) lines.push(`\t\tcomment "${c.comment}"`);
  if (c.hook !== undefined) {
    const device = c.device !== undefined ? ` device "${c.device}"` : '';
    lines.push(`\t\ttype ${c.type} hook ${c.hook}${device} priority ${priorityText(family, c.prio ?? 0)}; policy ${c.policy ?? 'accept'};`);
  }
  for (const r of c.rules) lines.push(`\t\t${r.text}${r.comment !== undefined ? ` comment "${r.comment}"` : ''}`);
  lines.push('\t}');
  return lines.join('\n');
}

function dumpTable(t: FakeNftTable): string {
  const blocks = [...[...t.sets.values()].map(dumpSet), ...[...t.chains.values()].map((c) => dumpChain(t.family, c))];
  const head = t.comment !== undefined ? `\tcomment "${t.comment}"\n` : '';
  return `table ${t.family} ${t.name} {\n${head}${blocks.join('\n\n')}${blocks.length ? '\n' : ''}}\n`;
}
