// nft transactions: typed verbs over typed objects, rendered to `nft -f -`
// text (knftables-style, one command per line) that nft 1.0.x accepts.
//
// Rule bodies are written in the form `nft list` prints them (no `==`).
// Names are checked against what nft 1.0.6's parser takes unquoted (it takes
// no quoted identifiers at all), comments against what it can carry.
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
  /** Base chain: type/hook/priority (priority may be a keyword such as `srcnat`, or `dstnat - 10`). */
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
  /** add: after this handle; insert: before it; replace: the rule replaced. */
  handle?: number;
}
/** nft durations: seconds, or nft's own syntax (`1h30m`, `500ms`). */
export type NftDuration = number | string;

export interface NftSetSpec {
  family: NftFamily;
  table: string;
  name: string;
  /** `ipv4_addr`, `ipv4_addr . inet_proto . inet_service`; for a map `ipv4_addr : verdict`. */
  type?: string;
  /** Instead of type: `ip daddr . meta l4proto . th dport`, for a map `… : verdict`. */
  typeof?: string;
  flags?: readonly ('constant' | 'dynamic' | 'interval' | 'timeout')[] | readonly string[];
  /** Default timeout of elements (needs flag `timeout`). */
  timeout?: NftDuration;
  size?: number;
  policy?: 'performance' | 'memory';
  comment?: string;
}
export interface NftElementSpec {
  family: NftFamily;
  table: string;
  /** Set or map name. */
  set: string;
  /** One key, or the parts of a concatenated key (`['10.0.0.1', 'tcp', '80']`). */
  key: string | readonly string[];
  /** Map value: a verdict (`drop`, `goto chain`, `jump chain`) or data (an address…). */
  value?: string;
  /** Per-element timeout (the set needs flag `timeout`). */
  timeout?: NftDuration;
  comment?: string;
}

/** Typed objects for the generic verbs. */
export type NftObject =
  | ({ kind: 'table' } & NftTableSpec)
  | ({ kind: 'chain' } & NftChainSpec)
  | ({ kind: 'rule' } & NftRuleSpec)
  | ({ kind: 'set' } & NftSetSpec)
  | ({ kind: 'map' } & NftSetSpec)
  | ({ kind: 'element' } & NftElementSpec);

/** A rule by its handle, for delete and destroy. */
export interface NftRuleRef {
  kind: 'rule';
  family: NftFamily;
  table: string;
  chain: string;
  handle: number;
}

export type NftVerb = 'add' | 'create' | 'insert' | 'replace' | 'delete' | 'destroy' | 'flush';

export class NftInputError extends NetError {
  constructor(message: string) {
    super('NFT_INVALID_INPUT', message);
  }
}

/** Longest comment knftables accepts; nft itself allows a little more. */
export const NFT_COMMENT_MAX = 128;

export function quoteComment(c: string): string {
  if (c.includes('"') || c.includes('\n')) throw new NftInputError(`nft comment may not contain quotes or newlines: ${JSON.stringify(c)}`);
  if (c.length > NFT_COMMENT_MAX) throw new NftInputError(`nft comment longer than ${NFT_COMMENT_MAX} characters`);
  return `"${c}"`;
}

/** Strips quotes and truncates so a string is usable as an nft comment. */
export function sanitizeComment(c: string): string {
  return c.replace(/["\n]/g, '').slice(0, NFT_COMMENT_MAX);
}

/** Identifiers nft 1.0.6 parses unquoted (kube-proxy's `service-H8-ns/name/tcp/p80` included). */
const NAME = /^[A-Za-z_][A-Za-z0-9_./:-]*$/;
/** NFT_NAME_MAXLEN (256) less the terminating NUL. */
export const NFT_NAME_MAX = 255;

export function checkName(what: string, name: string): string {
  if (!NAME.test(name) || name.length > NFT_NAME_MAX) throw new NftInputError(`invalid nft ${what} name ${JSON.stringify(name)}`);
  return name;
}

const DURATION = /^(\d+d)?(\d+h)?(\d+m(?!s))?(\d+s)?(\d+ms)?$/;

export function renderDuration(d: NftDuration): string {
  if (typeof d === 'number') {
    if (!Number.isInteger(d) || d < 0) throw new NftInputError(`nft timeout must be whole seconds: ${d}`);
    return `${d}s`;
  }
  if (d === '' || !DURATION.test(d)) throw new NftInputError(`invalid nft duration ${JSON.stringify(d)}`);
  return d;
}

/** The key of an element as nft prints it: concatenation parts joined by ` . `. */
export function elementKey(key: string | readonly string[]): string {
  const parts = typeof key === 'string' ? [key] : key;
  if (parts.length === 0 || parts.some((p) => p.trim() === '' || /[{},;"\n]/.test(p))) throw new NftInputError(`invalid nft element key ${JSON.stringify(key)}`);
  return parts.join(' . ');
}

/** The verdict value of a map element that goes to (or jumps to) a chain. */
export const gotoChain = (chain: string): string => `goto ${checkName('chain', chain)}`;
export const jumpChain = (chain: string): string => `jump ${checkName('chain', chain)}`;

function checkBody(what: string, s: string): string {
  if (s.trim() === '' || s.includes('\n')) throw new NftInputError(`invalid nft ${what} ${JSON.stringify(s)}`);
  return s;
}

function tableRef(o: { family: NftFamily; table: string }): string {
  return `${o.family} ${checkName('table', o.table)}`;
}

function tableText(t: NftTableSpec, withSpec: boolean): string {
  const spec = withSpec && t.comment !== undefined ? ` { comment ${quoteComment(t.comment)} ; }` : '';
  return `table ${t.family} ${checkName('table', t.name)}${spec}`;
}

function chainSpec(c: NftChainSpec): string {
  const parts: string[] = [];
  if (c.type !== undefined || c.hook !== undefined || c.priority !== undefined) {
    if (c.type === undefined || c.hook === undefined || c.priority === undefined) throw new NftInputError(`base chain ${c.name} needs type, hook and priority`);
    const device = c.device !== undefined ? ` device ${JSON.stringify(c.device)}` : '';
    parts.push(`type ${c.type} hook ${c.hook}${device} priority ${c.priority} ;`);
    if (c.policy !== undefined) parts.push(`policy ${c.policy} ;`);
  } else if (c.policy !== undefined) throw new NftInputError(`regular chain ${c.name} cannot have a policy`);
  if (c.comment !== undefined) parts.push(`comment ${quoteComment(c.comment)} ;`);
  return parts.length ? ` { ${parts.join(' ')} }` : '';
}

function chainText(c: NftChainSpec, withSpec: boolean): string {
  return `chain ${tableRef(c)} ${checkName('chain', c.name)}${withSpec ? chainSpec(c) : ''}`;
}

function setSpec(kind: 'set' | 'map', s: NftSetSpec): string {
  if ((s.type === undefined) === (s.typeof === undefined)) throw new NftInputError(`${kind} ${s.name} needs exactly one of type and typeof`);
  const decl = s.type !== undefined ? `type ${checkBody('type', s.type)}` : `typeof ${checkBody('typeof', s.typeof!)}`;
  if (kind === 'map' && !decl.includes(' : ')) throw new NftInputError(`map ${s.name} needs a value type (\`key : value\`)`);
  if (kind === 'set' && decl.includes(' : ')) throw new NftInputError(`set ${s.name} cannot have a value type; use a map`);
  const parts = [`${decl} ;`];
  if (s.flags?.length) parts.push(`flags ${s.flags.join(',')} ;`);
  if (s.timeout !== undefined) parts.push(`timeout ${renderDuration(s.timeout)} ;`);
  if (s.size !== undefined) parts.push(`size ${s.size} ;`);
  if (s.policy !== undefined) parts.push(`policy ${s.policy} ;`);
  if (s.comment !== undefined) parts.push(`comment ${quoteComment(s.comment)} ;`);
  return ` { ${parts.join(' ')} }`;
}

function setText(kind: 'set' | 'map', s: NftSetSpec, withSpec: boolean): string {
  return `${kind} ${tableRef(s)} ${checkName(kind, s.name)}${withSpec ? setSpec(kind, s) : ''}`;
}

function elementText(e: NftElementSpec, withExtras: boolean): string {
  let body = elementKey(e.key);
  if (withExtras) {
    if (e.timeout !== undefined) body += ` timeout ${renderDuration(e.timeout)}`;
    if (e.comment !== undefined) body += ` comment ${quoteComment(e.comment)}`;
    if (e.value !== undefined) body += ` : ${checkBody('element value', e.value)}`;
  }
  return `element ${tableRef(e)} ${checkName('set', e.set)} { ${body} }`;
}

function ruleText(verb: 'add' | 'insert' | 'replace', r: NftRuleSpec): string {
  let where = '';
  if (verb === 'replace') {
    if (r.handle === undefined) throw new NftInputError('replace rule needs the handle of the rule it replaces');
    where = ` handle ${checkHandle(r.handle)}`;
  } else if (r.handle !== undefined) where = ` position ${checkHandle(r.handle)}`;
  const comment = r.comment !== undefined ? ` comment ${quoteComment(r.comment)}` : '';
  return `${verb} rule ${tableRef(r)} ${checkName('chain', r.chain)}${where} ${checkBody('rule', r.rule)}${comment}`;
}

function checkHandle(h: number): number {
  if (!Number.isInteger(h) || h <= 0) throw new NftInputError(`invalid nft rule handle ${h}`);
  return h;
}

export interface NftTransactionOptions {
  /**
   * How `destroy` is written. `native` needs nft ≥ 1.0.7 and kernel ≥ 6.3.
   * `emulate` (the default, for nft 1.0.6 as on Debian 12) writes `add` then
   * `delete` of the same object, which succeeds whether or not it existed; it
   * needs the object's table to exist, a set's or map's full spec, and a map
   * element's value (an existing element with another value fails EEXIST).
   * Rules cannot be destroyed by emulation.
   */
  destroy?: 'native' | 'emulate';
}

export class NftTransaction {
  private readonly lines: string[] = [];
  private readonly nativeDestroy: boolean;

  constructor(opts: NftTransactionOptions = {}) {
    this.nativeDestroy = opts.destroy === 'native';
  }

  get isEmpty(): boolean {
    return this.lines.length === 0;
  }
  get length(): number {
    return this.lines.length;
  }
  private push(...s: string[]): this {
    this.lines.push(...s);
    return this;
  }

  // -- generic verbs ---------------------------------------------------------

  /** Creates the object, or leaves an existing one (rules: appends, after `handle` if given). */
  add(o: NftObject): this {
    if (o.kind === 'rule') return this.push(ruleText('add', o));
    return this.push(`add ${objectText(o, true)}`);
  }
  /** Creates the object; fails (EEXIST) if it exists. */
  create(o: Exclude<NftObject, { kind: 'rule' }>): this {
    return this.push(`create ${objectText(o, true)}`);
  }
  /** Prepends a rule to its chain, or inserts it before `handle`. */
  insert(r: NftRuleSpec): this {
    return this.push(ruleText('insert', r));
  }
  /** Replaces the rule with `handle` in place. */
  replace(r: NftRuleSpec & { handle: number }): this {
    return this.push(ruleText('replace', r));
  }
  /** Deletes the object; fails (ENOENT) if it is missing. Rules by handle. */
  delete(o: Exclude<NftObject, { kind: 'rule' }> | NftRuleRef): this {
    if (o.kind === 'rule') return this.push(`delete rule ${tableRef(o)} ${checkName('chain', o.chain)} handle ${checkHandle(o.handle)}`);
    return this.push(`delete ${objectText(o, false)}`);
  }
  /** Deletes the object if it exists; never fails for a missing one. */
  destroy(o: Exclude<NftObject, { kind: 'rule' }> | NftRuleRef): this {
    if (this.nativeDestroy) {
      if (o.kind === 'rule') return this.push(`destroy rule ${tableRef(o)} ${checkName('chain', o.chain)} handle ${checkHandle(o.handle)}`);
      return this.push(`destroy ${objectText(o, false)}`);
    }
    if (o.kind === 'rule') throw new NftInputError('destroy of a rule needs nft ≥ 1.0.7 (NftTransaction { destroy: "native" })');
    // The `add` carries only what nft needs to parse it: no element timeout or
    // comment, no chain hook (restating a base chain's hook could try to change it).
    const bare = o.kind === 'element' ? bareElement(o) : o.kind === 'table' || o.kind === 'chain' ? stripSpec(o) : o;
    return this.push(`add ${objectText(bare, true)}`, `delete ${objectText(o, false)}`);
  }
  /** Empties a table (its chains' rules; set elements stay), a chain, or a set or map. */
  flush(o: { kind: 'table'; family: NftFamily; name: string } | { kind: 'chain' | 'set' | 'map'; family: NftFamily; table: string; name: string }): this {
    if (o.kind === 'table') return this.push(`flush table ${o.family} ${checkName('table', o.name)}`);
    return this.push(`flush ${o.kind} ${tableRef(o)} ${checkName(o.kind, o.name)}`);
  }

  // -- typed shorthands (the API flanneld and the bridge plugin use) ----------

  addTable(t: NftTableSpec): this {
    return this.add({ kind: 'table', ...t });
  }
  flushTable(t: { family: NftFamily; name: string }): this {
    return this.flush({ kind: 'table', ...t });
  }
  deleteTable(t: { family: NftFamily; name: string }): this {
    return this.delete({ kind: 'table', ...t });
  }
  addChain(c: NftChainSpec): this {
    return this.add({ kind: 'chain', ...c });
  }
  flushChain(c: { family: NftFamily; table: string; name: string }): this {
    return this.flush({ kind: 'chain', ...c });
  }
  deleteChain(c: { family: NftFamily; table: string; name: string }): this {
    return this.delete({ kind: 'chain', ...c });
  }
  addRule(r: NftRuleSpec): this {
    return this.add({ kind: 'rule', ...r });
  }
  insertRule(r: NftRuleSpec): this {
    return this.insert(r);
  }
  replaceRule(r: NftRuleSpec & { handle: number }): this {
    return this.replace(r);
  }
  deleteRule(r: { family: NftFamily; table: string; chain: string; handle: number }): this {
    return this.delete({ kind: 'rule', ...r });
  }
  addSet(s: NftSetSpec): this {
    return this.add({ kind: 'set', ...s });
  }
  addMap(s: NftSetSpec): this {
    return this.add({ kind: 'map', ...s });
  }
  flushSet(s: { family: NftFamily; table: string; name: string }, kind: 'set' | 'map' = 'set'): this {
    return this.flush({ kind, ...s });
  }
  deleteSet(s: { family: NftFamily; table: string; name: string }, kind: 'set' | 'map' = 'set'): this {
    return this.delete({ kind, ...s });
  }
  addElement(e: NftElementSpec): this {
    return this.add({ kind: 'element', ...e });
  }
  createElement(e: NftElementSpec): this {
    return this.create({ kind: 'element', ...e });
  }
  deleteElement(e: NftElementSpec): this {
    return this.delete({ kind: 'element', ...e });
  }

  render(): string {
    return this.lines.map((l) => l + '\n').join('');
  }
}

function bareElement(e: { kind: 'element' } & NftElementSpec): { kind: 'element' } & NftElementSpec {
  const out: { kind: 'element' } & NftElementSpec = { kind: 'element', family: e.family, table: e.table, set: e.set, key: e.key };
  if (e.value !== undefined) out.value = e.value;
  return out;
}

function stripSpec<T extends ({ kind: 'table' } & NftTableSpec) | ({ kind: 'chain' } & NftChainSpec)>(o: T): T {
  if (o.kind === 'table') return { kind: 'table', family: o.family, name: o.name } as T;
  return { kind: 'chain', family: o.family, table: o.table, name: o.name } as T;
}

function objectText(o: Exclude<NftObject, { kind: 'rule' }>, withSpec: boolean): string {
  switch (o.kind) {
    case 'table':
      return tableText(o, withSpec);
    case 'chain':
      return chainText(o, withSpec);
    case 'set':
    case 'map':
      return setText(o.kind, o, withSpec);
    case 'element':
      return elementText(o, withSpec);
  }
}
