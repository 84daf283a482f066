// Consistency of rendered restore text (upstream proxier_test.go
// checkIPTablesRuleJumps): every jump target and every filled chain is
// declared, every jumped-to chain has rules, and every declared service
// chain is used. Cheap enough to run after any render in tests.
import { parseRestore } from '../trace/parse.ts';
import { KUBE_EXTERNAL_SERVICES, KUBE_FIREWALL, KUBE_FORWARD, KUBE_MARK_MASQ, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_PROXY_FIREWALL, KUBE_SERVICES } from './iptables.ts';

const BUILTIN_TARGETS = new Set(['ACCEPT', 'REJECT', 'DROP', 'MARK', 'RETURN', 'DNAT', 'SNAT', 'MASQUERADE']);
const TOP_LEVEL = new Set([KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_FORWARD, KUBE_MARK_MASQ, KUBE_PROXY_FIREWALL, KUBE_FIREWALL]);

/** Problems found, one string each; empty when consistent. */
export function checkRuleJumps(text: string): string[] {
  const problems: string[] = [];
  for (const table of parseRestore(text)) {
    const created = new Set(table.chains.filter((c) => !c.deleted).map((c) => c.name));
    const filled = new Set<string>();
    const jumped = new Set<string>();
    for (const c of table.chains) {
      for (const r of c.rules) {
        filled.add(c.name);
        const j = r.args.indexOf('-j');
        const target = j >= 0 ? r.args[j + 1] : undefined;
        if (target !== undefined && !BUILTIN_TARGETS.has(target)) jumped.add(target);
      }
    }
    const list = (s: Iterable<string>): string => [...s].sort().join(', ');
    const missing = [...jumped, ...filled].filter((c) => !created.has(c));
    if (missing.length > 0) problems.push(`${table.name}: used but not created: ${list(new Set(missing))}`);
    const empty = [...jumped].filter((c) => !filled.has(c) && c !== KUBE_NODEPORTS);
    if (empty.length > 0) problems.push(`${table.name}: jumped to but empty: ${list(empty)}`);
    const extra = [...created].filter((c) => !jumped.has(c) && !TOP_LEVEL.has(c));
    if (extra.length > 0) problems.push(`${table.name}: created but not used: ${list(extra)}`);
  }
  return problems;
}
