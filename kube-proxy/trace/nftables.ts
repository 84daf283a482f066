// A packet tracer over kube-proxy's nftables table, after upstream's test
// tracer (pkg/proxy/nftables/helpers_test.go: nftablesTracer, tracePacket):
// the packet walks filter-prerouting-pre-dnat (LoadBalancerSourceRanges),
// nat-prerouting (service dispatch, DNAT), then, with its destination
// replaced by the first DNAT target, filter-forward and filter-input (the
// no-endpoint and cluster-IP checks). Verdict maps are looked up by key;
// `numgen random mod N` branches are all followed, each with probability
// 1/N of its parent, so every endpoint is reported with its chance. Affinity
// lookups (`ip saddr @affinity-…`) never match: a traced packet has no history.
//
// Input is the table as `add …` lines (NFTablesRenderer.dump(), or a
// knftables-style golden file); only the rule forms kube-proxy writes are
// understood, and anything else is an error rather than a guess.
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import { MARK_MASQ_CHAIN } from '../render/nftables.ts';
import { TraceError, type Packet, type TraceResult, type TraceStep, type Verdict } from './iptables.ts';

export { TraceError, type Packet, type TraceResult } from './iptables.ts';

interface Table {
  readonly chains: Map<string, string[]>;
  /** Set and map elements: key parts joined by " . ", to the value ('' for sets). */
  readonly sets: Map<string, Map<string, string>>;
}

/** Parses `add table|chain|set|map|rule|element` lines (comments dropped). */
export function parseNftAddLines(text: string): Table {
  const chains = new Map<string, string[]>();
  const sets = new Map<string, Map<string, string>>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^add (table|chain|set|map|rule|element) (ip6?|inet) (\S+)(?: (\S+))?(?: (.*))?$/.exec(line);
    if (!m) throw new TraceError(`cannot read nft line: ${line}`);
    const [, kind, , , name = '', rest = ''] = m;
    if (kind === 'chain') chains.set(name, chains.get(name) ?? []);
    else if (kind === 'set' || kind === 'map') sets.set(name, sets.get(name) ?? new Map());
    else if (kind === 'rule') {
      const rules = chains.get(name);
      if (!rules) throw new TraceError(`rule for unknown chain ${name}`);
      rules.push(rest.replace(/ comment "[^"]*"$/, ''));
    } else if (kind === 'element') {
      const set = sets.get(name);
      if (!set) throw new TraceError(`element of unknown set ${name}`);
      const body = /^\{ (.*) \}$/.exec(rest)?.[1];
      if (body === undefined) throw new TraceError(`cannot read element: ${line}`);
      const colon = body.lastIndexOf(' : ');
      const keyPart = (colon >= 0 ? body.slice(0, colon) : body).replace(/ comment "[^"]*"$/, '');
      set.set(keyPart, colon >= 0 ? body.slice(colon + 3) : '');
    }
  }
  return { chains, sets };
}

interface Ctx {
  readonly probability: number;
  /** Shared along one path (the mark stays on the packet); copied for each numgen branch. */
  readonly mark: { masquerade: boolean };
  readonly path: readonly string[];
  readonly depth: number;
}

interface Addrs {
  readonly source: IPAddr;
  readonly destination: IPAddr;
  readonly proto: string;
  readonly port: string;
  readonly inInterface: string | undefined;
}

const MAX_DEPTH = 32;

export class NFTablesTracer {
  private readonly table: Table;
  private readonly local: Set<string>;

  constructor(table: string, nodeIPs: readonly string[]) {
    this.table = parseNftAddLines(table);
    this.local = new Set(nodeIPs.map((ip) => IPAddr.mustParse(ip).toString()));
  }

  trace(pkt: Packet): TraceResult {
    const source = IPAddr.parse(pkt.source);
    const destination = IPAddr.parse(pkt.destination);
    if (!source || !destination) throw new TraceError(`bad packet address: ${pkt.source} → ${pkt.destination}`);
    const steps: TraceStep[] = [];
    const verdicts: Verdict[] = [];
    const notes: string[] = [];
    let a: Addrs = { source, destination, proto: pkt.protocol.toLowerCase(), port: String(pkt.port), inInterface: pkt.inInterface };
    const run = (chain: string, table: string): boolean => this.run(chain, a, { probability: 1, mark: { masquerade: false }, path: [], depth: 0 }, table, steps, verdicts, notes);

    // filter-prerouting-pre-dnat runs first; a drop there ends the walk.
    if (run('filter-prerouting-pre-dnat', 'filter') && verdicts.length > 0) return result(steps, verdicts, notes);
    run('nat-prerouting', 'nat');
    // Pending DNATs are processed next; later chains see the (first) new destination.
    const dnat = verdicts.find((v) => v.target === 'DNAT');
    if (dnat?.destination) {
      const host = /^\[?([^\]]+?)\]?:\d+$/.exec(dnat.destination)?.[1];
      const ip = host !== undefined ? IPAddr.parse(host) : undefined;
      if (ip) a = { ...a, destination: ip };
    }
    if (!run('filter-forward', 'filter')) run('filter-input', 'filter');
    return result(steps, verdicts, notes);
  }

  /** Runs one chain; true when the packet got a final verdict (on every branch). */
  private run(chain: string, a: Addrs, ctx: Ctx, table: string, steps: TraceStep[], verdicts: Verdict[], notes: string[]): boolean {
    const rules = this.table.chains.get(chain);
    if (!rules) throw new TraceError(`unknown chain ${chain}`);
    if (ctx.depth > MAX_DEPTH) throw new TraceError(`chain loop at ${chain}`);
    const path = [...ctx.path, chain];
    for (const rule of rules) {
      const r = this.rule(rule, a, { ...ctx, path }, table, steps, verdicts, notes);
      if (r === 'terminal') return true;
      if (r === 'return') return false;
    }
    return false;
  }

  /** Evaluates one rule: 'next' (no match, or a non-terminal match), 'terminal' or 'return'. */
  private rule(rule: string, a: Addrs, ctx: Ctx, table: string, steps: TraceStep[], verdicts: Verdict[], notes: string[]): 'next' | 'terminal' | 'return' {
    const chain = ctx.path[ctx.path.length - 1]!;
    let rest = rule.replace(/^ct state new\s*/, '');
    const step = (): void => {
      steps.push({ table, chain, rule, probability: ctx.probability, depth: ctx.depth });
    };
    for (;;) {
      rest = rest.trimStart();
      let m: RegExpExecArray | null;
      if (rest === '') {
        step();
        return 'next';
      }
      if ((m = /^ip6? daddr \. meta l4proto \. th dport vmap @(\S+)$/.exec(rest))) {
        const v = this.lookup(m[1]!, [a.destination.toString(), a.proto, a.port]);
        if (v === undefined) return 'next';
        step();
        rest = v;
        continue;
      }
      if ((m = /^meta l4proto \. th dport vmap @(\S+)$/.exec(rest))) {
        const v = this.lookup(m[1]!, [a.proto, a.port]);
        if (v === undefined) return 'next';
        step();
        rest = v;
        continue;
      }
      if ((m = /^ip6? ([sd])addr @(\S+)/.exec(rest))) {
        const set = m[2]!;
        if (set.startsWith('affinity-')) {
          notes.push(`${chain}: affinity lookup in @${set} not matched (a traced packet has no history)`);
          return 'next';
        }
        const ip = m[1] === 's' ? a.source : a.destination;
        if (this.lookup(set, [ip.toString()]) === undefined) return 'next';
        rest = rest.slice(m[0].length);
        continue;
      }
      if ((m = /^ip6? ([sd])addr (!= )?\{ ([^}]*) \}/.exec(rest))) {
        const ip = m[1] === 's' ? a.source : a.destination;
        const inSet = m[3]!.split(' , ').some((x) => addressMatches(ip, x.trim()));
        if (inSet === (m[2] !== undefined)) return 'next';
        rest = rest.slice(m[0].length);
        continue;
      }
      if ((m = /^ip6? ([sd])addr (!= )?([0-9a-fA-F.:]+(?:\/\d+)?)(?=\s|$)/.exec(rest))) {
        const ip = m[1] === 's' ? a.source : a.destination;
        if (addressMatches(ip, m[3]!) === (m[2] !== undefined)) return 'next';
        rest = rest.slice(m[0].length);
        continue;
      }
      if ((m = /^fib ([sd])addr type local/.exec(rest))) {
        const ip = m[1] === 's' ? a.source : a.destination;
        if (!this.local.has(ip.toString())) return 'next';
        rest = rest.slice(m[0].length);
        continue;
      }
      if ((m = /^iifname (!= )?(\S+)/.exec(rest))) {
        const want = m[2]!;
        const name = a.inInterface;
        const is = name !== undefined && (want.endsWith('*') ? name.startsWith(want.slice(0, -1)) : name === want);
        if (is === (m[1] !== undefined)) return 'next';
        rest = rest.slice(m[0].length);
        continue;
      }
      if ((m = /^(tcp|udp|sctp) dport (\d+)/.exec(rest))) {
        if (a.proto !== m[1] || a.port !== m[2]) return 'next';
        rest = rest.slice(m[0].length);
        continue;
      }
      if ((m = /^numgen random mod (\d+) vmap \{ (.*) \}$/.exec(rest))) {
        step();
        const n = Number(m[1]);
        const entries = m[2]!.split(' , ').map((e) => /^\d+ : (goto|jump) (\S+)$/.exec(e.trim()));
        let all = true;
        for (const e of entries) {
          if (!e) throw new TraceError(`cannot read numgen entry in: ${rule}`);
          const branch: Ctx = { probability: ctx.probability / n, mark: { ...ctx.mark }, path: ctx.path, depth: ctx.depth + 1 };
          if (!this.run(e[2]!, a, branch, table, steps, verdicts, notes)) all = false;
        }
        return all ? 'terminal' : 'return';
      }
      if (rest === `jump ${MARK_MASQ_CHAIN}`) {
        step();
        ctx.mark.masquerade = true;
        return 'next';
      }
      if ((m = /^(jump|goto) (\S+)$/.exec(rest))) {
        step();
        const done = this.run(m[2]!, a, { ...ctx, depth: ctx.depth + 1 }, table, steps, verdicts, notes);
        if (done) return 'terminal';
        // goto never comes back to this chain: its caller goes on.
        return m[1] === 'goto' ? 'return' : 'next';
      }
      if (rest === 'return') {
        step();
        return 'return';
      }
      if ((m = /^(drop|reject)$/.exec(rest))) {
        step();
        verdicts.push({ target: m[1]!.toUpperCase(), probability: ctx.probability, masquerade: ctx.mark.masquerade, table, chains: [...ctx.path] });
        return 'terminal';
      }
      if ((m = /^meta l4proto (tcp|udp|sctp) dnat to (\S+)$/.exec(rest))) {
        step();
        verdicts.push({ target: 'DNAT', destination: m[2]!, probability: ctx.probability, masquerade: ctx.mark.masquerade, table, chains: [...ctx.path] });
        return 'terminal';
      }
      if (/^update @\S+ \{ ip6? saddr \}/.test(rest)) {
        rest = rest.replace(/^update @\S+ \{ ip6? saddr \}/, '');
        continue;
      }
      if (/^(mark |masquerade)/.test(rest)) {
        step();
        return 'next';
      }
      throw new TraceError(`cannot trace rule in ${chain}: ${rule}`);
    }
  }

  private lookup(set: string, key: readonly string[]): string | undefined {
    const s = this.table.sets.get(set);
    if (!s) throw new TraceError(`unknown set @${set}`);
    return s.get(key.join(' . '));
  }
}

function addressMatches(ip: IPAddr, spec: string): boolean {
  if (spec.includes('/')) {
    const p = IPPrefix.parse(spec);
    if (!p) throw new TraceError(`bad prefix in rule: ${spec}`);
    return p.contains(ip);
  }
  const other = IPAddr.parse(spec);
  if (!other) throw new TraceError(`bad address in rule: ${spec}`);
  return other.toString() === ip.toString();
}

function result(steps: TraceStep[], verdicts: Verdict[], notes: string[]): TraceResult {
  const output = verdicts.map((v) => (v.target === 'DNAT' ? v.destination! : v.target)).join(', ');
  return { steps, verdicts, output, masquerade: verdicts.some((v) => v.masquerade), notes };
}
