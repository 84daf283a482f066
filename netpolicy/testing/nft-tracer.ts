// A packet tracer over the nftables renderer's output (NftState): it runs a
// new connection's first packet through the table's base chains in
// priority order and says whether the table drops it. It understands
// exactly the rule shapes render/nftables.ts emits and throws on anything
// else, so a renderer change that the tracer does not know fails loudly
// instead of being misread (kube-proxy's nftablesTracer does the same).
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import type { NftSet, NftState } from '../render/nftables.ts';
import type { Protocol } from '../model/types.ts';

export interface NftPacket {
  readonly src: IPAddr;
  readonly dst: IPAddr;
  readonly protocol: Protocol;
  readonly port: number;
}

type Verdict = 'accept' | 'drop';

/** The base chains of each hook, in priority order (the order the renderer declares them). */
const HOOK_RE = /^type filter hook (forward|input) priority filter(?: - (\d+))?; policy accept;$/;

export class NftTracer {
  private readonly sets = new Map<string, ParsedSet>();

  constructor(private readonly state: NftState) {
    for (const s of state.sets.values()) this.sets.set(s.name, parseSet(s));
  }

  /** Whether the table lets a new connection's first packet through `hook`. */
  passes(hook: 'forward' | 'input', pkt: NftPacket): boolean {
    const bases = [...this.state.chains.values()]
      .map((c) => ({ c, m: HOOK_RE.exec(c.decl) }))
      .filter((x): x is { c: typeof x.c; m: RegExpExecArray } => x.m !== null && x.m[1] === hook)
      .sort((a, b) => -Number(a.m[2] ?? 0) + Number(b.m[2] ?? 0));
    // accept ends one base chain only; drop is final.
    return bases.every(({ c }) => this.runChain(c.name, pkt, 0) !== 'drop');
  }

  private runChain(name: string, pkt: NftPacket, depth: number): Verdict | undefined {
    if (depth > 16) throw new Error(`jump loop at ${name}`);
    const chain = this.state.chains.get(name);
    if (!chain) throw new Error(`jump to missing chain ${name}`);
    for (const rule of chain.rules) {
      const v = this.runRule(rule, pkt, depth);
      if (v) return v;
    }
    return undefined;
  }

  /** A rule's verdict, or undefined to go on with the next rule. */
  private runRule(rule: string, pkt: NftPacket, depth: number): Verdict | undefined {
    let rest = rule;
    for (;;) {
      const step = this.match(rest, pkt);
      if (step === undefined) break;
      if (!step.ok) return undefined;
      if (step.verdict !== undefined) return this.verdict(step.verdict, pkt, depth);
      rest = step.rest;
    }
    if (rest === '') return undefined; // statements only (log, counter)
    return this.verdict(rest, pkt, depth);
  }

  private verdict(text: string, pkt: NftPacket, depth: number): Verdict | undefined {
    if (text === 'accept' || text === 'drop') return text;
    const jump = /^jump (\S+)$/.exec(text);
    if (jump) return this.runChain(jump[1]!, pkt, depth + 1);
    throw new Error(`tracer: unknown verdict "${text}"`);
  }

  /** One leading match or statement of `s`: whether it holds, and what is left. */
  private match(s: string, pkt: NftPacket): { ok: boolean; rest: string; verdict?: string } | undefined {
    let m: RegExpExecArray | null;
    const next = (re: RegExp): RegExpExecArray | null => re.exec(s);
    const rest = (x: RegExpExecArray): string => s.slice(x[0].length);
    // We trace the first packet of a connection: neither established nor invalid.
    if ((m = next(/^ct state (established,related|invalid) /))) return { ok: false, rest: rest(m) };
    if ((m = next(/^(counter|limit rate \d+\/second burst \d+ packets|log prefix "[^"]*" (?:level \w+|group \d+)) ?/))) return { ok: true, rest: rest(m) };
    if ((m = next(/^(ip6?) (saddr|daddr) vmap @(\S+)$/))) {
      const addr = this.addr(m[1]!, m[2]!, pkt);
      if (!addr) return { ok: false, rest: '' };
      const v = this.set(m[3]!).verdicts.get(addr.toString());
      return v === undefined ? { ok: false, rest: '' } : { ok: true, rest: '', verdict: v };
    }
    if ((m = next(/^(ip6?) (saddr|daddr) (!= )?@(\S+) ?/))) {
      const addr = this.addr(m[1]!, m[2]!, pkt);
      if (!addr) return { ok: false, rest: rest(m) };
      const has = this.set(m[4]!).contains(addr);
      return { ok: m[3] ? !has : has, rest: rest(m) };
    }
    if ((m = next(/^meta l4proto \. th dport \{ ([^}]*) \} ?/))) {
      const ok = m[1]!.split(', ').some((e) => {
        const x = /^(tcp|udp|sctp) \. (\d+)(?:-(\d+))?$/.exec(e);
        if (!x) throw new Error(`tracer: unknown port element "${e}"`);
        const from = Number(x[2]);
        const to = x[3] === undefined ? from : Number(x[3]);
        return x[1] === pkt.protocol.toLowerCase() && from <= pkt.port && pkt.port <= to;
      });
      return { ok, rest: rest(m) };
    }
    if ((m = next(/^meta l4proto (tcp|udp|sctp) ?/))) return { ok: m[1] === pkt.protocol.toLowerCase(), rest: rest(m) };
    if ((m = next(/^(ip6?) saddr \. (ip6?) daddr @(\S+) ?/))) {
      const src = this.addr(m[1]!, 'saddr', pkt);
      const dst = this.addr(m[2]!, 'daddr', pkt);
      return { ok: src !== undefined && dst !== undefined && this.set(m[3]!).pairs.has(`${src.toString()} . ${dst.toString()}`), rest: rest(m) };
    }
    if ((m = next(/^(ip6?) daddr \. th dport @(\S+) ?/))) {
      const addr = this.addr(m[1]!, 'daddr', pkt);
      return { ok: addr !== undefined && this.set(m[2]!).pairs.has(`${addr.toString()} . ${pkt.port}`), rest: rest(m) };
    }
    if (/^(accept|drop|jump \S+)$/.test(s) || s === '') return undefined;
    throw new Error(`tracer: unknown rule shape at "${s}"`);
  }

  /** The packet's address for an `ip`/`ip6` match, or undefined when the family differs (no match). */
  private addr(ipx: string, field: string, pkt: NftPacket): IPAddr | undefined {
    const a = field === 'saddr' ? pkt.src : pkt.dst;
    return (ipx === 'ip') === (a.family === 4) ? a : undefined;
  }

  private set(name: string): ParsedSet {
    const s = this.sets.get(name);
    if (!s) throw new Error(`reference to missing set @${name}`);
    return s;
  }
}

interface ParsedSet {
  contains(a: IPAddr): boolean;
  readonly verdicts: ReadonlyMap<string, string>;
  readonly pairs: ReadonlySet<string>;
}

function parseSet(s: NftSet): ParsedSet {
  if (s.values) return { contains: () => false, verdicts: s.values, pairs: new Set() };
  if (s.decl.includes(' . inet_service') || /_addr \. ipv[46]_addr/.test(s.decl)) return { contains: () => false, verdicts: new Map(), pairs: new Set(s.elements) };
  const prefixes = s.elements.map((e) => {
    const p = IPPrefix.parseOrHost(e);
    if (!p) throw new Error(`set ${s.name}: bad element ${e}`);
    return p;
  });
  return { contains: (a) => prefixes.some((p) => p.contains(a)), verdicts: new Map(), pairs: new Set() };
}
