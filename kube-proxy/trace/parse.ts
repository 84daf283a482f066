// iptables-restore / iptables-save text → tables, chains and rules
// (upstream pkg/util/iptables/testing/parse.go ParseIPTablesDump, and the
// canonical order of proxier_test.go's sortIPTablesRules). Used by the packet
// tracer and by the golden tests.

export interface Rule {
  /** The line as written. */
  readonly raw: string;
  readonly chain: string;
  /** Tokens after "-A CHAIN", quotes removed. */
  readonly args: readonly string[];
  /** The --comment value, unquoted; "" when the rule has none. */
  readonly comment: string;
}

export interface Chain {
  readonly name: string;
  /** "-" for a user chain, ACCEPT/DROP for a builtin chain's policy. */
  readonly policy: string;
  readonly counters: string;
  readonly rules: Rule[];
  /** A "-X CHAIN" line deletes it. */
  deleted: boolean;
}

export interface Table {
  readonly name: string;
  readonly chains: Chain[];
}

export class RestoreParseError extends Error {
  constructor(
    readonly lineNo: number,
    readonly line: string,
    reason: string,
  ) {
    super(`line ${lineNo}: ${reason}: ${line}`);
    this.name = 'RestoreParseError';
  }
}

/** Splits a rule line into tokens; "double quoted" tokens keep their spaces and lose the quotes. */
export function tokenize(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] === ' ') {
      i++;
      continue;
    }
    if (line[i] === '"') {
      const end = line.indexOf('"', i + 1);
      if (end === -1) throw new Error('unterminated quote');
      out.push(line.slice(i + 1, end));
      i = end + 1;
    } else {
      let end = line.indexOf(' ', i);
      if (end === -1) end = line.length;
      out.push(line.slice(i, end));
      i = end;
    }
  }
  return out;
}

export function parseRestore(text: string): Table[] {
  const tables: Table[] = [];
  let table: Table | undefined;
  let byName = new Map<string, Chain>();
  const lines = text.split('\n');
  lines.forEach((raw, idx) => {
    const line = raw.trim();
    const fail = (reason: string): never => {
      throw new RestoreParseError(idx + 1, raw, reason);
    };
    if (line === '' || line.startsWith('#')) return;
    if (line.startsWith('*')) {
      if (table) fail('table not committed');
      table = { name: line.slice(1), chains: [] };
      byName = new Map();
      return;
    }
    if (!table) return fail('outside a table');
    if (line === 'COMMIT') {
      tables.push(table);
      table = undefined;
      return;
    }
    if (line.startsWith(':')) {
      const [name = '', policy = '-', counters = '[0:0]'] = line.slice(1).split(' ');
      if (byName.has(name)) return;
      const chain: Chain = { name, policy, counters, rules: [], deleted: false };
      byName.set(name, chain);
      table.chains.push(chain);
      return;
    }
    let tokens: string[];
    try {
      tokens = tokenize(line);
    } catch (e) {
      return fail((e as Error).message);
    }
    const [op, name = ''] = tokens;
    const chain = byName.get(name);
    if (op === '-X') {
      if (!chain) fail(`deleting undeclared chain ${name}`);
      else chain.deleted = true;
      return;
    }
    if (op !== '-A') return fail(`unsupported operation ${op ?? ''}`);
    if (!chain) return fail(`rule for undeclared chain ${name}`);
    const args = tokens.slice(2);
    const ci = args.indexOf('--comment');
    chain.rules.push({ raw: line, chain: name, args, comment: ci >= 0 ? (args[ci + 1] ?? '') : '' });
  });
  if (table) throw new RestoreParseError(lines.length, '', `table ${table.name} not committed`);
  return tables;
}

/** IPTablesDump.String(): chain lines, then the rules chain by chain, then the deletions, per table. */
export function dumpString(tables: readonly Table[]): string {
  const out: string[] = [];
  for (const t of tables) {
    out.push(`*${t.name}`);
    for (const c of t.chains) out.push(`:${c.name} ${c.policy} ${c.counters}`);
    for (const c of t.chains) for (const r of c.rules) out.push(r.raw);
    for (const c of t.chains) if (c.deleted) out.push(`-X ${c.name}`);
    out.push('COMMIT');
  }
  return `${out.join('\n')}\n`;
}

function chainOrder(a: string, b: string): number {
  const rank = (n: string): number => (n === 'KUBE-NODEPORTS' ? 0 : n === 'KUBE-SERVICES' ? 1 : n.startsWith('KUBE-') ? 2 : 3);
  const d = rank(a) - rank(b);
  if (d !== 0) return d;
  return a < b ? -1 : a > b ? 1 : 0;
}

const byComment = (a: Rule, b: Rule): number => (a.comment < b.comment ? -1 : a.comment > b.comment ? 1 : 0);
const NODEPORTS_LAST = 'kubernetes service nodeports';

/**
 * upstream's sortIPTablesRules: tables by name; chains KUBE-NODEPORTS, then
 * KUBE-SERVICES, then other KUBE-* alphabetically, then the rest; the rules
 * of KUBE-NODEPORTS and KUBE-SERVICES stably by comment (the nat
 * "must be the last rule" rule last); other chains keep their rule order.
 */
export function sortRestore(text: string): string {
  const tables = parseRestore(text).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const t of tables) {
    t.chains.sort((a, b) => chainOrder(a.name, b.name));
    for (const c of t.chains) {
      if (c.name === 'KUBE-NODEPORTS' || (c.name === 'KUBE-SERVICES' && t.name === 'filter')) {
        c.rules.sort(byComment); // Array.prototype.sort is stable.
      } else if (c.name === 'KUBE-SERVICES' && t.name === 'nat') {
        c.rules.sort((a, b) => {
          const al = a.comment.startsWith(NODEPORTS_LAST);
          const bl = b.comment.startsWith(NODEPORTS_LAST);
          if (al || bl) return al === bl ? 0 : al ? 1 : -1;
          return byComment(a, b);
        });
      }
    }
  }
  return dumpString(tables);
}
