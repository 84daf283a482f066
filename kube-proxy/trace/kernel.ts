// An in-memory model of what `iptables-restore --noflush` does to the
// kernel's tables: a declared chain is created or flushed, -A appends, -X
// deletes an empty, unreferenced chain, and each table commits atomically or
// not at all. Upstream tests partial syncs against the same kind of model
// (pkg/util/iptables/testing/fake.go); the daemon can use it to remember
// what it applied instead of running iptables-save.
import { dumpString, parseRestore, type Chain, type Table } from './parse.ts';

const BUILTIN: Record<string, readonly string[]> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
};

export class RestoreError extends Error {
  override name = 'RestoreError';
}

function jumpTarget(args: readonly string[]): string | undefined {
  const j = args.findIndex((a) => a === '-j' || a === '-g');
  return j >= 0 ? args[j + 1] : undefined;
}

function cloneTable(t: Table): Table {
  return { name: t.name, chains: t.chains.map((c) => ({ ...c, rules: [...c.rules] })) };
}

export class RulesetModel {
  private tables = new Map<string, Table>();

  private table(name: string): Table {
    let t = this.tables.get(name);
    if (!t) {
      const chains: Chain[] = (BUILTIN[name] ?? []).map((n) => ({ name: n, policy: 'ACCEPT', counters: '[0:0]', rules: [], deleted: false }));
      t = { name, chains };
      this.tables.set(name, t);
    }
    return t;
  }

  /** Applies restore input with --noflush semantics; a failing table leaves that table unchanged and throws. */
  apply(text: string): void {
    for (const input of parseRestore(text)) {
      const next = cloneTable(this.table(input.name));
      const find = (n: string): Chain | undefined => next.chains.find((c) => c.name === n);
      for (const decl of input.chains) {
        const existing = find(decl.name);
        if (existing) existing.rules.length = 0;
        else next.chains.push({ name: decl.name, policy: decl.policy, counters: '[0:0]', rules: [], deleted: false });
      }
      for (const decl of input.chains) {
        const chain = find(decl.name);
        if (chain) chain.rules.push(...decl.rules);
      }
      for (const c of next.chains) {
        for (const r of c.rules) {
          const t = jumpTarget(r.args);
          if (t !== undefined && /^[A-Z0-9-]+$/.test(t) && t.startsWith('KUBE-') && !find(t)) {
            throw new RestoreError(`${input.name}: rule in ${c.name} jumps to missing chain ${t}`);
          }
        }
      }
      for (const decl of input.chains.filter((c) => c.deleted)) {
        const refs = next.chains.filter((c) => c.name !== decl.name && c.rules.some((r) => jumpTarget(r.args) === decl.name));
        if (refs.length > 0) throw new RestoreError(`${input.name}: cannot delete ${decl.name}: referenced from ${refs.map((c) => c.name).join(', ')}`);
        const i = next.chains.findIndex((c) => c.name === decl.name);
        if (i >= 0) next.chains.splice(i, 1);
      }
      this.tables.set(input.name, next);
    }
  }

  /** The chain names of a table, as GetChainsFromTable reads them from iptables-save. */
  chains(table: string): string[] {
    return (this.tables.get(table)?.chains ?? []).map((c) => c.name);
  }

  /** An iptables-save-like dump (restore syntax as written, builtin chains included). */
  save(): string {
    return dumpString([...this.tables.values()]);
  }

  /** The tables, for the tracer. */
  snapshot(): Table[] {
    return [...this.tables.values()].map(cloneTable);
  }
}
