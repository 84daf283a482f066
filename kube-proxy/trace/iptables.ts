// A packet tracer over iptables-restore text, after upstream's test tracer
// (pkg/proxy/iptables/proxier_test.go: iptablesTracer, tracePacket): the
// packet walks nat PREROUTING (or OUTPUT) into KUBE-SERVICES and on, its
// destination becomes the first DNAT target, then the filter chains
// KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-NODEPORTS and
// KUBE-PROXY-FIREWALL run. Probabilistic jumps are all followed, each with
// the probability of getting there; affinity (`recent --rcheck`) and mark
// checks never match, since a traced packet has no history, and are noted.
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import { parseRestore, type Rule, type Table } from './parse.ts';

export interface Packet {
  readonly source: string;
  readonly destination: string;
  readonly port: number;
  /** "tcp", "udp" or "sctp" (any case). */
  readonly protocol: string;
  /** The incoming interface, for `-i` matches; unset: no interface matches. */
  readonly inInterface?: string | undefined;
}

export interface TraceStep {
  readonly table: string;
  readonly chain: string;
  readonly rule: string;
  /** Probability that a packet gets to this rule and matches it. */
  readonly probability: number;
  readonly depth: number;
}

export interface Verdict {
  /** DNAT, ACCEPT, DROP or REJECT. */
  readonly target: string;
  /** The DNAT destination "ip:port". */
  readonly destination?: string;
  readonly probability: number;
  /** Whether the packet was marked for masquerade on the way there. */
  readonly masquerade: boolean;
  readonly table: string;
  readonly chains: readonly string[];
}

export interface TraceResult {
  readonly steps: readonly TraceStep[];
  readonly verdicts: readonly Verdict[];
  /** Upstream's output string: the verdicts in order, DNATs as "ip:port", joined by ", "; "" for none. */
  readonly output: string;
  /** Upstream's masq: any matched rule jumped to KUBE-MARK-MASQ. */
  readonly masquerade: boolean;
  /** What the tracer could not decide (affinity, marks) and skipped. */
  readonly notes: readonly string[];
}

export class TraceError extends Error {
  override name = 'TraceError';
}

/** A rule's matches, parsed once. Negatable matches keep their "!". */
interface Match {
  readonly jump?: string;
  readonly goto?: boolean;
  readonly toDestination?: string;
  readonly probability?: number;
  readonly source?: { neg: boolean; prefix: IPPrefix };
  readonly destination?: { neg: boolean; prefix: IPPrefix };
  readonly srcType?: { neg: boolean; type: string };
  readonly dstType?: { neg: boolean; type: string };
  readonly protocol?: { neg: boolean; value: string };
  readonly dport?: { neg: boolean; value: number };
  readonly inInterface?: { neg: boolean; name: string };
  readonly ctstate?: { neg: boolean; states: readonly string[] };
  readonly recentCheck?: { name: string; seconds: string };
  readonly recentSet?: string;
  readonly markCheck?: string;
}

/** Options that take one argument and do not change the verdict of a traced packet. */
const IGNORED_WITH_ARG = new Set(['-m', '--mode', '--nfacct-name', '--or-mark', '--xor-mark', '--set-xmark', '--mask', '--seconds']);
const IGNORED_FLAGS = new Set(['--random-fully', '--reap', '--rsource', '--set', '--rcheck']);

function prefixOf(s: string, rule: string): IPPrefix {
  const p = IPPrefix.parseOrHost(s);
  if (!p) throw new TraceError(`bad address ${s} in: ${rule}`);
  return p;
}

function parseMatch(rule: Rule): Match {
  const a = rule.args;
  const m: { -readonly [K in keyof Match]: Match[K] } = {};
  for (let i = 0; i < a.length; i++) {
    let neg = false;
    let opt = a[i] ?? '';
    if (opt === '!') {
      neg = true;
      opt = a[++i] ?? '';
    }
    const arg = (): string => {
      const v = a[++i];
      if (v === undefined) throw new TraceError(`${opt} without a value in: ${rule.raw}`);
      return v;
    };
    switch (opt) {
      case '-j':
        m.jump = arg();
        break;
      case '-g':
        m.jump = arg();
        m.goto = true;
        break;
      case '--to-destination':
        m.toDestination = arg();
        break;
      case '--probability':
        m.probability = Number(arg());
        break;
      case '-s':
      case '--source':
        m.source = { neg, prefix: prefixOf(arg(), rule.raw) };
        break;
      case '-d':
      case '--destination':
        m.destination = { neg, prefix: prefixOf(arg(), rule.raw) };
        break;
      case '--src-type':
        m.srcType = { neg, type: arg() };
        break;
      case '--dst-type':
        m.dstType = { neg, type: arg() };
        break;
      case '-p':
      case '--protocol':
        m.protocol = { neg, value: arg().toLowerCase() };
        break;
      case '--dport':
      case '--destination-port':
        m.dport = { neg, value: Number(arg()) };
        break;
      case '-i':
      case '--in-interface':
        m.inInterface = { neg, name: arg() };
        break;
      case '--ctstate':
        m.ctstate = { neg, states: arg().split(',') };
        break;
      case '--mark':
        m.markCheck = arg();
        break;
      case '--name': {
        const name = arg();
        if (a.includes('--rcheck')) m.recentCheck = { name, seconds: a[a.indexOf('--seconds') + 1] ?? '' };
        else if (a.includes('--set')) m.recentSet = name;
        break;
      }
      case '--comment':
        // iptables-save quotes comments with spaces; hand-written rules may not: take words up to the next option.
        i++;
        while (i + 1 < a.length && !(a[i + 1] ?? '').startsWith('-') && a[i + 1] !== '!') i++;
        break;
      default:
        if (IGNORED_WITH_ARG.has(opt)) i++;
        else if (!IGNORED_FLAGS.has(opt)) throw new TraceError(`unsupported option ${opt} in: ${rule.raw}`);
    }
  }
  return m;
}

interface ParsedChain {
  readonly rules: readonly { readonly rule: Rule; readonly m: Match }[];
}

/** A parsed ruleset plus the node's addresses; trace() can run many packets over it. */
export class IPTablesTracer {
  private readonly tables = new Map<string, Map<string, ParsedChain>>();
  private readonly local: readonly IPAddr[];

  /** `nodeIPs`: addresses that `-m addrtype --src-type/--dst-type LOCAL` treats as local (loopback always is). */
  constructor(ruleset: string | readonly Table[], nodeIPs: readonly string[]) {
    const tables = typeof ruleset === 'string' ? parseRestore(ruleset) : ruleset;
    for (const t of tables) {
      const chains = new Map<string, ParsedChain>();
      for (const c of t.chains) chains.set(c.name, { rules: c.rules.map((rule) => ({ rule, m: parseMatch(rule) })) });
      this.tables.set(t.name, chains);
    }
    this.local = nodeIPs.map((s) => {
      const ip = IPAddr.parse(s);
      if (!ip) throw new TraceError(`bad node IP ${s}`);
      return ip;
    });
  }

  /** `-m addrtype --*-type LOCAL`: a node IP or loopback. */
  isLocal(ip: IPAddr): boolean {
    return ip.isLoopback() || this.local.some((l) => l.equals(ip));
  }

  trace(pkt: Packet): TraceResult {
    const src = IPAddr.parse(pkt.source);
    const dst0 = IPAddr.parse(pkt.destination);
    if (!src || !dst0) throw new TraceError(`bad packet address ${!src ? pkt.source : pkt.destination}`);
    const walk = new Walk(this, { src, dst: dst0, port: pkt.port, proto: pkt.protocol.toLowerCase(), iface: pkt.inInterface });
    // Locally generated packets take nat OUTPUT; everything else nat PREROUTING. Both jump to
    // KUBE-SERVICES; a ruleset without base chains (restore input) starts there.
    const nat = this.tables.get('nat');
    const base = this.isLocal(src) ? 'OUTPUT' : 'PREROUTING';
    walk.run('nat', nat?.get(base)?.rules.length ? base : 'KUBE-SERVICES', 1, 0, []);
    const firstDnat = walk.verdicts.find((v) => v.target === 'DNAT')?.destination;
    if (firstDnat !== undefined) {
      // The pending DNAT is done before the filter table sees the packet.
      const host = firstDnat.startsWith('[') ? firstDnat.slice(1, firstDnat.indexOf(']')) : firstDnat.slice(0, firstDnat.lastIndexOf(':'));
      const ip = IPAddr.parse(host);
      if (ip) walk.pkt = { ...walk.pkt, dst: ip, port: Number(firstDnat.slice(firstDnat.lastIndexOf(':') + 1)) };
    }
    for (const chain of ['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL']) walk.run('filter', chain, 1, 0, []);
    return {
      steps: walk.steps,
      verdicts: walk.verdicts,
      output: walk.verdicts.map((v) => v.destination ?? v.target).join(', '),
      masquerade: walk.masqAny,
      notes: [...new Set(walk.notes)],
    };
  }

  chain(table: string, name: string): ParsedChain | undefined {
    return this.tables.get(table)?.get(name);
  }
}

interface PacketState {
  readonly src: IPAddr;
  readonly dst: IPAddr;
  readonly port: number;
  readonly proto: string;
  readonly iface: string | undefined;
}

class Walk {
  readonly steps: TraceStep[] = [];
  readonly verdicts: Verdict[] = [];
  readonly notes: string[] = [];
  masqAny = false;
  private masq = false;

  constructor(
    private readonly tracer: IPTablesTracer,
    public pkt: PacketState,
  ) {}

  private matches(m: Match): boolean {
    const p = this.pkt;
    const neg = (n: boolean, v: boolean): boolean => (n ? !v : v);
    if (m.source && !neg(m.source.neg, m.source.prefix.contains(p.src))) return false;
    if (m.srcType && !neg(m.srcType.neg, m.srcType.type === 'LOCAL' && this.tracer.isLocal(p.src))) return false;
    if (m.protocol && !neg(m.protocol.neg, m.protocol.value === p.proto)) return false;
    if (m.destination && !neg(m.destination.neg, m.destination.prefix.contains(p.dst))) return false;
    if (m.dstType && !neg(m.dstType.neg, m.dstType.type === 'LOCAL' && this.tracer.isLocal(p.dst))) return false;
    if (m.dport && !neg(m.dport.neg, m.dport.value === p.port)) return false;
    if (m.inInterface) {
      const want = m.inInterface.name;
      const hit = p.iface !== undefined && (want.endsWith('+') ? p.iface.startsWith(want.slice(0, -1)) : p.iface === want);
      if (!neg(m.inInterface.neg, hit)) return false;
    }
    // A traced packet is the first of its connection: NEW.
    if (m.ctstate && !neg(m.ctstate.neg, m.ctstate.states.includes('NEW'))) return false;
    if (m.recentCheck) {
      this.notes.push(`session affinity: a client seen in ${m.recentCheck.name} within ${m.recentCheck.seconds}s goes to it again (not traced)`);
      return false;
    }
    if (m.markCheck !== undefined) {
      this.notes.push(`mark match ${m.markCheck} not evaluated (no packet history)`);
      return false;
    }
    return true;
  }

  /** Runs a chain; true when it reached a terminal verdict (upstream runChain). */
  run(table: string, chain: string, weight: number, depth: number, path: readonly string[]): boolean {
    const c = this.tracer.chain(table, chain);
    if (!c || depth > 64) return false;
    const here = [...path, chain];
    let remaining = weight;
    for (const { rule, m } of c.rules) {
      if (m.jump === undefined || remaining <= 0) continue;
      if (!this.matches(m)) continue;
      const p = m.probability ?? 1;
      const taken = remaining * p;
      this.steps.push({ table, chain, rule: rule.raw, probability: taken, depth });
      if (m.recentSet !== undefined) this.notes.push(`session affinity: the client is recorded in ${m.recentSet}`);
      switch (m.jump) {
        case 'KUBE-MARK-MASQ':
          this.masq = this.masqAny = true;
          continue;
        case 'MARK':
          continue;
        case 'RETURN':
          return false;
        case 'ACCEPT':
        case 'DROP':
        case 'REJECT':
          this.verdicts.push({ target: m.jump, probability: taken, masquerade: this.masq, table, chains: here });
          return true;
        case 'DNAT':
          this.verdicts.push({ target: 'DNAT', destination: m.toDestination ?? '', probability: taken, masquerade: this.masq, table, chains: here });
          return true;
        case 'MASQUERADE':
        case 'SNAT':
          continue;
        default: {
          const masqBefore = this.masq;
          const terminated = this.run(table, m.jump, taken, depth + 1, here);
          // Each probabilistic branch carries its own masquerade decision.
          if (m.probability !== undefined) this.masq = masqBefore;
          if (m.probability === undefined) {
            if (terminated || m.goto) return terminated;
          } else if (terminated) {
            // That share of the packets ended in the sub-chain; the rest goes on here.
            remaining -= taken;
          }
        }
      }
    }
    return false;
  }
}

/** Human-readable trace: the rules walked (indented by chain depth), the verdicts, the notes. */
export function formatTrace(pkt: Packet, r: TraceResult): string {
  const lines = [`packet ${pkt.protocol.toLowerCase()} ${pkt.source} -> ${pkt.destination}:${pkt.port}${pkt.inInterface ? ` in ${pkt.inInterface}` : ''}`];
  for (const s of r.steps) {
    const prob = s.probability < 1 ? ` [p=${s.probability.toFixed(4)}]` : '';
    lines.push(`${'  '.repeat(s.depth + 1)}${s.table}/${s.chain}: ${s.rule}${prob}`);
  }
  if (r.verdicts.length === 0) lines.push('verdict: no rule matched (the packet is not a service packet here)');
  for (const v of r.verdicts) {
    const what = v.target === 'DNAT' ? `DNAT to ${v.destination ?? ''}` : v.target;
    lines.push(`verdict: ${what} with probability ${v.probability.toFixed(4)}${v.masquerade ? ', masqueraded' : ''} (${v.table}: ${v.chains.join(' > ')})`);
  }
  for (const n of r.notes) lines.push(`note: ${n}`);
  return `${lines.join('\n')}\n`;
}
