// `nft -j list …` parsing into plain records for reconciliation: tables,
// chains, rules (with their body rendered back to `nft list` text), sets and
// maps with their elements (key, value, timeout, comment as nft prints them).
import { NetError } from '../errors.ts';
import type { NftFamily } from './nft-tx.ts';

export interface NftChainInfo {
  family: NftFamily;
  table: string;
  name: string;
  handle: number;
  type?: string;
  hook?: string;
  prio?: number;
  policy?: string;
  /** Only from nft ≥ 1.0.7: 1.0.6's JSON omits chain comments. */
  comment?: string;
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
export interface NftElementInfo {
  /** As nft prints it: `10.0.0.1 . tcp . 80`, `10.0.0.0/24`, `1000-2000`. */
  key: string;
  /** Map value: `goto chain`, `drop`, `1.2.3.4`. */
  value?: string;
  /** Seconds. */
  timeout?: number;
  comment?: string;
}
export interface NftSetInfo {
  family: NftFamily;
  table: string;
  name: string;
  handle: number;
  /** Raw JSON `type` (a string, or an array for a concatenation). */
  type: unknown;
  /** Raw JSON elements. */
  elem: unknown[];
  /** Raw JSON map value type (maps only). */
  map?: unknown;
  kind?: 'set' | 'map';
  /** `ipv4_addr . inet_proto . inet_service`. */
  keyType?: string;
  /** `verdict`, `ipv4_addr` (maps only). */
  valueType?: string;
  flags?: string[];
  /** Default element timeout in seconds. */
  timeout?: number;
  size?: number;
  comment?: string;
  elements?: NftElementInfo[];
}
export interface NftTableInfo {
  family: NftFamily;
  name: string;
  /** Only from nft ≥ 1.0.7: 1.0.6's JSON omits table comments. */
  comment?: string;
  chains: NftChainInfo[];
  rules: NftRuleInfo[];
  sets: NftSetInfo[];
}

type J = Record<string, unknown>;
const isObj = (v: unknown): v is J => typeof v === 'object' && v !== null && !Array.isArray(v);

const BARE_META = new Set(['iifname', 'oifname', 'iif', 'oif', 'iiftype', 'oiftype', 'iifgroup', 'oifgroup']);

const VERDICTS = ['accept', 'drop', 'return', 'continue'];

function verdictText(v: J): string | undefined {
  for (const k of VERDICTS) if (k in v) return k;
  for (const k of ['jump', 'goto']) if (isObj(v[k])) return `${k} ${String((v[k] as J).target)}`;
  return undefined;
}

function valueText(v: unknown, quoteStrings: boolean): string {
  if (typeof v === 'string') return quoteStrings ? `"${v}"` : v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v) && v.length === 2) return `${valueText(v[0], quoteStrings)} : ${valueText(v[1], quoteStrings)}`;
  if (isObj(v)) {
    const verdict = verdictText(v);
    if (verdict !== undefined) return verdict;
    if (isObj(v.prefix)) return `${valueText(v.prefix.addr, false)}/${String(v.prefix.len)}`;
    if (Array.isArray(v.range)) return `${valueText(v.range[0], quoteStrings)}-${valueText(v.range[1], quoteStrings)}`;
    if (Array.isArray(v.set)) return `{ ${v.set.map((x) => valueText(x, quoteStrings)).join(', ')} }`;
    if (isObj(v.payload)) return `${String(v.payload.protocol)} ${String(v.payload.field)}`;
    if (isObj(v.meta)) return BARE_META.has(String(v.meta.key)) ? String(v.meta.key) : `meta ${String(v.meta.key)}`;
    if (isObj(v.ct)) return `ct ${String(v.ct.key)}`;
    if (isObj(v.numgen)) return `numgen ${String(v.numgen.mode)} mod ${String(v.numgen.mod)}${v.numgen.offset ? ` offset ${String(v.numgen.offset)}` : ''}`;
    if (Array.isArray(v.concat)) return v.concat.map((x) => valueText(x, quoteStrings)).join(' . ');
    if (isObj(v.elem)) return valueText(v.elem.val, quoteStrings);
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
    case 'vmap': {
      const o = v as J;
      const data = typeof o.data === 'string' ? o.data : valueText(o.data, false);
      return `${valueText(o.key, false)} vmap ${data}`;
    }
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

function typeText(t: unknown): string {
  return Array.isArray(t) ? t.map(String).join(' . ') : String(t);
}

/** One JSON element: a bare key, `{elem: {val, timeout, comment}}`, or for maps `[key, value]`. */
export function parseNftElement(raw: unknown): NftElementInfo {
  let keyPart = raw;
  let value: unknown;
  if (Array.isArray(raw) && raw.length === 2) [keyPart, value] = raw;
  const out: NftElementInfo = { key: '' };
  if (isObj(keyPart) && isObj(keyPart.elem)) {
    const e = keyPart.elem;
    out.key = valueText(e.val, false);
    if (typeof e.timeout === 'number') out.timeout = e.timeout;
    if (typeof e.comment === 'string') out.comment = e.comment;
  } else out.key = valueText(keyPart, false);
  if (value !== undefined) out.value = valueText(value, false);
  return out;
}

function setInfo(kind: 'set' | 'map', s: J): NftSetInfo {
  const elem = Array.isArray(s.elem) ? (s.elem as unknown[]) : [];
  const info: NftSetInfo = { family: s.family as NftFamily, table: String(s.table), name: String(s.name), handle: Number(s.handle), type: s.type, elem, kind, keyType: typeText(s.type) };
  if (s.map !== undefined) {
    info.map = s.map;
    info.valueType = typeText(s.map);
  }
  if (Array.isArray(s.flags)) info.flags = s.flags.map(String);
  else if (typeof s.flags === 'string') info.flags = [s.flags];
  if (typeof s.timeout === 'number') info.timeout = s.timeout;
  if (typeof s.size === 'number') info.size = s.size;
  if (typeof s.comment === 'string') info.comment = s.comment;
  info.elements = elem.map(parseNftElement);
  return info;
}

/** Parses `nft -j list table F T` (or `list ruleset`) output: every table it holds. */
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
    if (isObj(item.table)) {
      const tab = tableOf(item.table.family, item.table.name);
      if (typeof item.table.comment === 'string') tab.comment = item.table.comment;
    } else if (isObj(item.chain)) {
      const c = item.chain;
      const info: NftChainInfo = { family: c.family as NftFamily, table: String(c.table), name: String(c.name), handle: Number(c.handle) };
      if (typeof c.type === 'string') info.type = c.type;
      if (typeof c.hook === 'string') info.hook = c.hook;
      if (typeof c.prio === 'number') info.prio = c.prio;
      if (typeof c.policy === 'string') info.policy = c.policy;
      if (typeof c.comment === 'string') info.comment = c.comment;
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
    } else if (isObj(item.set)) {
      tableOf(item.set.family, item.set.table).sets.push(setInfo('set', item.set));
    } else if (isObj(item.map)) {
      tableOf(item.map.family, item.map.table).sets.push(setInfo('map', item.map));
    }
  }
  return [...tables.values()];
}
