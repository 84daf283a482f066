// `kube-proxy trace` for the IPVS mode: a packet walks the IPVS mode's
// iptables rules with their ipsets (from the plan: no kernel needed), in the
// order the kernel runs them for a packet that arrives at the node — nat
// KUBE-SERVICES (masquerade marks), filter INPUT's KUBE-IPVS-FILTER,
// KUBE-PROXY-FIREWALL and KUBE-NODE-PORT (REJECT/DROP/ACCEPT), then IPVS
// (LOCAL_IN): the virtual server it matches, its scheduler and
// persistence, and each real server with the share the scheduler gives it
// (every real server has weight 1), then nat KUBE-POSTROUTING (hairpin
// masquerade per real server).
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import { IPVS_SVC_F_PERSISTENT } from '../../lib/netlink/ipvs-types.ts';
import { ipsetName, SET_INFO, vsKey, type IPVSPlan, type SetBase, type VirtualServer } from '../render/ipvs.ts';
import type { Packet } from './iptables.ts';
import { parseRestore, type Rule } from './parse.ts';
import { TraceError } from './iptables.ts';

export interface IPVSTraceStep {
  readonly table: string;
  readonly chain: string;
  readonly rule: string;
  readonly depth: number;
}

export interface IPVSRealServerChoice {
  readonly destination: string;
  /** The share of new connections (1/n with equal weights). */
  readonly probability: number;
  readonly masquerade: boolean;
}

export interface IPVSTraceResult {
  readonly steps: readonly IPVSTraceStep[];
  /** REJECT or DROP in filter, or undefined when the packet gets through. */
  readonly filtered?: { readonly target: string; readonly chain: string };
  /** The virtual server matched ("TCP 10.96.0.10:80 rr"), if any. */
  readonly virtualServer?: string;
  readonly persistence?: number;
  readonly realServers: readonly IPVSRealServerChoice[];
  /** KUBE-MARK-MASQ was hit in nat KUBE-SERVICES. */
  readonly masquerade: boolean;
  readonly notes: readonly string[];
}

interface Pkt {
  readonly src: IPAddr;
  readonly dst: IPAddr;
  readonly port: number;
  readonly proto: string;
}

type Outcome = 'continue' | 'return' | { readonly target: string; readonly chain: string };

/** Walks the IPVS mode's rules; `nodeIPs` are the addresses `addrtype LOCAL` matches (loopback always does). */
export class IPVSTracer {
  private readonly chains = new Map<string, readonly Rule[]>();
  private readonly setOf = new Map<string, SetBase>();
  private readonly local: readonly IPAddr[];

  constructor(
    private readonly plan: IPVSPlan,
    iptables: string,
    nodeIPs: readonly string[],
    family: 4 | 6,
  ) {
    for (const t of parseRestore(iptables)) for (const c of t.chains) this.chains.set(`${t.name}/${c.name}`, c.rules);
    for (const s of SET_INFO) this.setOf.set(ipsetName(s.base, family), s.base);
    this.local = nodeIPs.map((s) => IPAddr.parse(s) ?? fail(`bad node IP ${s}`));
  }

  private isLocal(ip: IPAddr): boolean {
    return ip.isLoopback() || this.local.some((l) => l.equals(ip)) || this.plan.hasBind(ip.toString());
  }

  /** Whether (the directions of) a packet are in a set. */
  private inSet(name: string, dirs: string, p: Pkt, dstOverride?: { ip: IPAddr; port: number }): boolean {
    const base = this.setOf.get(name);
    if (!base) throw new TraceError(`unknown set ${name}`);
    const type = SET_INFO.find((s) => s.base === base)!.type;
    const dst = dstOverride?.ip ?? p.dst;
    const port = dstOverride?.port ?? p.port;
    const d = dirs.split(',');
    const ipOf = (dir: string | undefined): string => (dir === 'src' ? p.src : dst).toString();
    switch (type) {
      case 'bitmap:port':
        return this.plan.hasEntry(base, String(port));
      case 'hash:ip':
        return this.plan.hasEntry(base, ipOf(d[0]));
      case 'hash:ip,port':
        return this.plan.hasEntry(base, `${ipOf(d[0])},${p.proto}:${port}`);
      case 'hash:ip,port,ip':
        return this.plan.hasEntry(base, `${ipOf(d[0])},${p.proto}:${port},${ipOf(d[2])}`);
      case 'hash:ip,port,net': {
        const head = `${ipOf(d[0])},${p.proto}:${port},`;
        const third = d[2] === 'src' ? p.src : dst;
        return this.plan.entries(base).some((e) => e.startsWith(head) && (IPPrefix.parseOrHost(e.slice(head.length))?.contains(third) ?? false));
      }
      default:
        throw new TraceError(`set type ${type} is not traced`);
    }
  }

  private matches(r: Rule, p: Pkt, marked: boolean, dst?: { ip: IPAddr; port: number }): boolean {
    const a = r.args;
    for (let i = 0; i < a.length; i++) {
      let neg = false;
      let opt = a[i]!;
      if (opt === '!') {
        neg = true;
        opt = a[++i]!;
      }
      const v = (): string => a[++i] ?? fail(`${opt} without a value in: ${r.raw}`);
      let ok: boolean;
      switch (opt) {
        case '-j':
        case '--comment':
        case '--vaddr':
        case '--vproto':
        case '--vport':
        case '--xor-mark':
        case '--or-mark':
          v();
          continue;
        case '-m':
          v();
          continue;
        case '--random-fully':
          continue;
        case '-s':
          ok = IPPrefix.parseOrHost(v())?.contains(p.src) ?? false;
          break;
        case '-d':
          ok = IPPrefix.parseOrHost(v())?.contains(dst?.ip ?? p.dst) ?? false;
          break;
        case '-p':
          ok = v() === p.proto;
          break;
        case '--src-type':
          ok = v() === 'LOCAL' && this.isLocal(p.src);
          break;
        case '--dst-type':
          ok = v() === 'LOCAL' && this.isLocal(dst?.ip ?? p.dst);
          break;
        case '--match-set': {
          const name = v();
          ok = this.inSet(name, v(), p, dst);
          break;
        }
        case '--ctstate':
          // A traced packet starts a connection.
          ok = v().split(',').includes('NEW');
          break;
        case '--physdev-is-in':
          // Traced packets do not come through a bridge port.
          ok = false;
          break;
        case '--mark':
          // The only mark is the masquerade one.
          v();
          ok = marked;
          break;
        case '-i':
          ok = false;
          v();
          break;
        default:
          throw new TraceError(`unsupported option ${opt} in: ${r.raw}`);
      }
      if (ok === neg) return false;
    }
    return true;
  }

  /** Runs a chain: a terminal target, or 'return'/'continue' at its end. */
  private run(table: string, chain: string, p: Pkt, steps: IPVSTraceStep[], depth: number, marks: { masq: boolean }, dst?: { ip: IPAddr; port: number }): Outcome {
    for (const r of this.chains.get(`${table}/${chain}`) ?? []) {
      if (!this.matches(r, p, marks.masq, dst)) continue;
      steps.push({ table, chain, rule: r.raw, depth });
      const j = r.args[r.args.indexOf('-j') + 1] ?? '';
      if (j === 'RETURN') return 'return';
      if (j === 'MARK') continue;
      if (j === 'KUBE-MARK-MASQ') {
        marks.masq = true;
        continue;
      }
      if (j === 'MASQUERADE') {
        marks.masq = true;
        return { target: j, chain };
      }
      if (['ACCEPT', 'DROP', 'REJECT'].includes(j)) return { target: j, chain };
      if (this.chains.has(`${table}/${j}`)) {
        const o = this.run(table, j, p, steps, depth + 1, marks, dst);
        if (o !== 'return' && o !== 'continue') return o;
      }
    }
    return 'continue';
  }

  trace(pkt: Packet): IPVSTraceResult {
    const src = IPAddr.parse(pkt.source) ?? fail(`bad source ${pkt.source}`);
    const dst = IPAddr.parse(pkt.destination) ?? fail(`bad destination ${pkt.destination}`);
    const p: Pkt = { src, dst, port: pkt.port, proto: pkt.protocol.toLowerCase() };
    const steps: IPVSTraceStep[] = [];
    const notes: string[] = [];
    const marks = { masq: false };
    this.run('nat', 'KUBE-SERVICES', p, steps, 0, marks);
    // filter INPUT, in the order the jumps end up (each was inserted at position 1).
    for (const chain of ['KUBE-IPVS-FILTER', 'KUBE-PROXY-FIREWALL', 'KUBE-NODE-PORT']) {
      const o = this.run('filter', chain, p, steps, 0, { masq: false });
      if (o !== 'return' && o !== 'continue') {
        if (o.target === 'ACCEPT') break;
        return { steps, filtered: o, realServers: [], masquerade: marks.masq, notes };
      }
    }
    const vs: VirtualServer | undefined = this.plan.virtualServer(vsKey({ address: dst, protocol: p.proto as 'tcp', port: p.port }));
    if (!vs) {
      notes.push(`no virtual server for ${p.proto} ${pkt.destination}:${pkt.port}: the packet goes to the node itself`);
      return { steps, realServers: [], masquerade: marks.masq, notes };
    }
    const s = vs.service;
    const persistent = (s.flags & IPVS_SVC_F_PERSISTENT) !== 0;
    if (persistent) notes.push(`persistent: a client keeps its real server for ${s.timeout}s after its last connection`);
    if (vs.destinations.length === 0) notes.push('the virtual server has no real servers');
    const n = vs.destinations.length;
    const realServers = vs.destinations.map((d) => {
      const m = { masq: marks.masq };
      this.run('nat', 'KUBE-POSTROUTING', p, [], 0, m, { ip: d.address, port: d.port });
      const at = d.address.family === 6 ? `[${d.address}]:${d.port}` : `${d.address}:${d.port}`;
      return { destination: at, probability: 1 / n, masquerade: m.masq };
    });
    const host = s.address.family === 6 ? `[${s.address}]` : s.address.toString();
    return {
      steps,
      virtualServer: `${s.protocol.toUpperCase()} ${host}:${s.port} ${s.scheduler}`,
      ...(persistent ? { persistence: s.timeout } : {}),
      realServers,
      masquerade: marks.masq,
      notes,
    };
  }
}

function fail(msg: string): never {
  throw new TraceError(msg);
}

/** Human-readable IPVS trace. */
export function formatIPVSTrace(pkt: Packet, r: IPVSTraceResult): string {
  const lines = [`packet ${pkt.protocol.toLowerCase()} ${pkt.source} -> ${pkt.destination}:${pkt.port}`];
  for (const s of r.steps) lines.push(`${'  '.repeat(s.depth + 1)}${s.table}/${s.chain}: ${s.rule}`);
  if (r.filtered) lines.push(`verdict: ${r.filtered.target} in filter ${r.filtered.chain}`);
  if (r.virtualServer) lines.push(`ipvs: virtual server ${r.virtualServer}${r.persistence === undefined ? '' : ` persistent ${r.persistence}s`}`);
  for (const d of r.realServers) lines.push(`verdict: real server ${d.destination} with probability ${d.probability.toFixed(4)}${d.masquerade ? ', masqueraded' : ''}`);
  for (const n of r.notes) lines.push(`note: ${n}`);
  return `${lines.join('\n')}\n`;
}
