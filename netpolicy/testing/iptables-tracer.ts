// A packet tracer over the iptables renderer's output (IptablesState): the
// first packet of a new connection enters FORWARD (or INPUT) through the
// jump the agent installs, walks our chains with -j/-g/RETURN semantics,
// ipset lookups (hash:net longest match with nomatch) and the skb mark, and
// either is dropped or returns to the built-in chain. It knows exactly the
// rule shapes render/iptables.ts emits and throws on anything else.
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import type { Family } from '../../lib/ip/index.ts';
import type { Ipset, IptablesState } from '../render/iptables.ts';
import type { Protocol } from '../model/types.ts';

export interface IptPacket {
  readonly src: IPAddr;
  readonly dst: IPAddr;
  readonly protocol: Protocol;
  readonly port: number;
}

type Outcome = 'DROP' | 'RETURN';

const ENTRY = { forward: 'NETPOL-FORWARD', input: 'NETPOL-INPUT' } as const;

export class IptablesTracer {
  constructor(private readonly state: IptablesState) {}

  /** Whether our chains let the packet go on through the built-in chain of `hook`. */
  passes(hook: 'forward' | 'input', pkt: IptPacket): boolean {
    const ctx = { pkt, family: pkt.src.family, mark: 0 };
    const out = this.run(ENTRY[hook], ctx, 0);
    if (out !== 'DROP' && (ctx.mark & 0x10000) !== 0) throw new Error('the verdict mark leaked out of our chains');
    return out !== 'DROP';
  }

  private run(chain: string, ctx: Ctx, depth: number): Outcome {
    if (depth > 16) throw new Error(`jump loop at ${chain}`);
    const rules = this.state.chains[ctx.family].get(chain);
    if (!rules) throw new Error(`jump to missing chain ${chain}`);
    for (const rule of rules) {
      const r = this.rule(rule, ctx, depth);
      if (r === 'DROP' || r === 'RETURN') return r;
    }
    return 'RETURN';
  }

  /** Runs one rule: DROP/RETURN end the chain, undefined goes on. */
  private rule(rule: string, ctx: Ctx, depth: number): Outcome | undefined {
    let s = rule;
    const take = (re: RegExp): RegExpExecArray | null => {
      const m = re.exec(s);
      if (m) s = s.slice(m[0].length);
      return m;
    };
    let ok = true;
    let m: RegExpExecArray | null;
    while (s !== '' && !s.startsWith('-j ') && !s.startsWith('-g ')) {
      if ((m = take(/^-m conntrack --ctstate (RELATED,ESTABLISHED|INVALID) /))) ok = false; // a new connection is neither
      else if ((m = take(/^-m comment --comment "[^"]*" /))) continue;
      else if ((m = take(/^-m set (! )?--match-set (\S+) (src|dst) /))) ok &&= Boolean(m[1]) !== this.member(m[2]!, m[3] === 'src' ? ctx.pkt.src : ctx.pkt.dst);
      else if ((m = take(/^-m set --match-set (\S+) dst,dst /))) ok &&= this.set(m[1]!).entries.has(`${ctx.pkt.dst.toString()},${ctx.pkt.protocol.toLowerCase()}:${ctx.pkt.port}`);
      else if ((m = take(/^-m mark --mark (0x[0-9a-f]+)\/(0x[0-9a-f]+) /))) ok &&= (ctx.mark & Number(m[2])) === Number(m[1]);
      else if ((m = take(/^-s (\S+) /))) ok &&= IPPrefix.mustParse(m[1]!).contains(ctx.pkt.src);
      else if ((m = take(/^-d (\S+) /))) ok &&= IPPrefix.mustParse(m[1]!).contains(ctx.pkt.dst);
      else if ((m = take(/^-p (tcp|udp|sctp) /))) ok &&= m[1] === ctx.pkt.protocol.toLowerCase();
      else if ((m = take(/^--dport (\d+) /))) ok &&= Number(m[1]) === ctx.pkt.port;
      else if ((m = take(/^-m multiport --dports (\S+) /))) ok &&= m[1]!.split(',').some((p) => inRange(p, ctx.pkt.port));
      else if ((m = take(/^-m limit --limit \d+\/second --limit-burst \d+ /))) continue;
      else throw new Error(`tracer: unknown match at "${s}" in "${rule}"`);
    }
    if (!ok) return undefined;
    if ((m = take(/^-j (DROP|RETURN)$/))) return m[1] as Outcome;
    if ((m = take(/^-j MARK --set-xmark (0x[0-9a-f]+)\/(0x[0-9a-f]+)$/))) {
      ctx.mark = (ctx.mark & ~Number(m[2])) ^ Number(m[1]);
      return undefined;
    }
    if (take(/^-j (LOG --log-prefix "[^"]*"|NFLOG --nflog-group \d+ --nflog-prefix "[^"]*")$/)) return undefined;
    if ((m = take(/^-j (NETPOL-\S+)$/))) return this.run(m[1]!, ctx, depth + 1) === 'DROP' ? 'DROP' : undefined;
    // goto: when the target returns, so does the chain that holds the goto.
    if ((m = take(/^-g (NETPOL-\S+)$/))) return this.run(m[1]!, ctx, depth + 1);
    throw new Error(`tracer: unknown target "${s}" in "${rule}"`);
  }

  private member(name: string, a: IPAddr): boolean {
    return this.set(name).contains(a);
  }

  private set(name: string): ParsedIpset {
    const s = this.state.sets.get(name);
    if (!s) throw new Error(`reference to missing ipset ${name}`);
    return parseIpset(s);
  }
}

interface Ctx {
  readonly pkt: IptPacket;
  readonly family: Family;
  mark: number;
}

interface ParsedIpset {
  contains(a: IPAddr): boolean;
  readonly entries: ReadonlySet<string>;
}

const cache = new WeakMap<Ipset, ParsedIpset>();

function parseIpset(s: Ipset): ParsedIpset {
  const hit = cache.get(s);
  if (hit) return hit;
  let parsed: ParsedIpset;
  if (s.type === 'hash:ip,port') parsed = { contains: () => false, entries: new Set(s.elements) };
  else if (s.type === 'hash:ip') parsed = { contains: (a) => s.elements.includes(a.toString()), entries: new Set() };
  else {
    // hash:net: the most specific entry decides; a nomatch entry says "not in the set".
    const nets = s.elements.map((e) => {
      const [cidr, flag] = e.split(' ');
      const p = IPPrefix.parse(cidr!);
      if (!p || p.length === 0) throw new Error(`ipset ${s.name}: bad hash:net entry ${e}`);
      return { p, nomatch: flag === 'nomatch' };
    });
    parsed = {
      contains: (a) => {
        const best = nets.filter((n) => n.p.contains(a)).sort((x, y) => y.p.length - x.p.length)[0];
        return best !== undefined && !best.nomatch;
      },
      entries: new Set(),
    };
  }
  cache.set(s, parsed);
  return parsed;
}

function inRange(p: string, port: number): boolean {
  const [from, to] = p.split(':').map(Number);
  return to === undefined ? from === port : from! <= port && port <= to;
}
