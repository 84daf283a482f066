// The commands of one nftables table as values: what a renderer plans, from
// which both the `nft -f` text (goldens, dry-run, `kube-proxy trace`) and the
// nf_tables netlink messages (nft-netlink-encode.ts) derive. Rule bodies stay
// nft text in `nft list` form; the netlink side compiles exactly the forms it
// knows (nft-netlink-rule.ts) and refuses anything else with a typed error.
import { checkName, quoteComment, type NftFamily } from './nft-tx.ts';

export type NftChainType = 'filter' | 'nat' | 'route';
export type NftHook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';

export type NftCommand =
  | { readonly op: 'add-table'; readonly comment?: string }
  | { readonly op: 'delete-table' }
  | {
      readonly op: 'add-chain';
      readonly name: string;
      readonly type?: NftChainType;
      readonly hook?: NftHook;
      readonly priority?: number;
      readonly comment?: string;
    }
  | { readonly op: 'flush-chain'; readonly name: string }
  | { readonly op: 'delete-chain'; readonly name: string }
  | { readonly op: 'add-rule'; readonly chain: string; readonly rule: string; readonly comment?: string }
  | {
      readonly op: 'add-set';
      readonly kind: 'set' | 'map';
      readonly name: string;
      /** nft type syntax: `ipv4_addr`, `ipv4_addr . inet_proto . inet_service : verdict`. */
      readonly type: string;
      readonly flags?: readonly string[];
      /** Seconds. */
      readonly timeout?: number;
      readonly comment?: string;
    }
  | { readonly op: 'delete-set'; readonly kind: 'set' | 'map'; readonly name: string }
  | { readonly op: 'add-element'; readonly set: string; readonly key: readonly string[]; readonly value?: string; readonly comment?: string }
  | { readonly op: 'delete-element'; readonly set: string; readonly key: readonly string[] };

/** The table the commands of a batch act on. */
export interface NftTableRef {
  readonly family: NftFamily;
  readonly name: string;
}

/** One command as an `nft -f` line (no newline), exactly as NftTransaction writes it. */
export function commandText(t: NftTableRef, c: NftCommand): string {
  const p = `${t.family} ${t.name}`;
  switch (c.op) {
    case 'add-table':
      return `add table ${p}${c.comment !== undefined ? ` { comment ${quoteComment(c.comment)} ; }` : ''}`;
    case 'delete-table':
      return `delete table ${p}`;
    case 'add-chain': {
      const parts: string[] = [];
      if (c.type !== undefined) parts.push(`type ${c.type} hook ${c.hook} priority ${c.priority} ;`);
      if (c.comment !== undefined) parts.push(`comment ${quoteComment(c.comment)} ;`);
      return `add chain ${p} ${checkName('chain', c.name)}${parts.length ? ` { ${parts.join(' ')} }` : ''}`;
    }
    case 'flush-chain':
      return `flush chain ${p} ${c.name}`;
    case 'delete-chain':
      return `delete chain ${p} ${c.name}`;
    case 'add-rule':
      return `add rule ${p} ${c.chain} ${c.rule}${c.comment !== undefined ? ` comment ${quoteComment(c.comment)}` : ''}`;
    case 'add-set': {
      const parts = [`type ${c.type} ;`];
      if (c.flags?.length) parts.push(`flags ${c.flags.join(',')} ;`);
      if (c.timeout !== undefined) parts.push(`timeout ${c.timeout}s ;`);
      if (c.comment !== undefined) parts.push(`comment ${quoteComment(c.comment)} ;`);
      return `add ${c.kind} ${p} ${checkName('set', c.name)} { ${parts.join(' ')} }`;
    }
    case 'delete-set':
      return `delete ${c.kind} ${p} ${c.name}`;
    case 'add-element': {
      const comment = c.comment !== undefined ? ` comment ${quoteComment(c.comment)}` : '';
      const value = c.value !== undefined ? ` : ${c.value}` : '';
      return `add element ${p} ${c.set} { ${c.key.join(' . ')}${comment}${value} }`;
    }
    case 'delete-element':
      return `delete element ${p} ${c.set} { ${c.key.join(' . ')} }`;
  }
}

/** The commands as one `nft -f` text, each line newline-terminated. */
export function commandsText(t: NftTableRef, cmds: readonly NftCommand[]): string {
  let s = '';
  for (const c of cmds) s += `${commandText(t, c)}\n`;
  return s;
}
