// LocalPlan → ipset restore text + iptables-restore / ip6tables-restore text
// (kube-router-style chains in the filter table, ipsets for peers), and the
// minimal update from one plan to the next. Pure: text in, text out.
//
//   FORWARD → NETPOL-FORWARD   (the apply layer inserts the jump first in FORWARD)
//     RELATED,ESTABLISHED → RETURN      replies; the rest of FORWARD decides
//     INVALID → DROP
//     a pod to itself (e.g. through its own Service): NETPOL-SELF marks it
//     (one rule per local pod, for traffic between local pods only), and the
//     mark goes to NETPOL-ALLOW: never policed
//     held: src or dst in NP<f>-HOLD (pod CIDRs) but not in NP<f>-LOCAL → DROP
//     -j NETPOL-EGRESS, -j NETPOL-INGRESS
//   INPUT → NETPOL-INPUT: RELATED,ESTABLISHED → RETURN; -j NETPOL-EGRESS
//   NETPOL-EGRESS / NETPOL-INGRESS: one rule per group:
//     -m set --match-set NP<f>-GE-<id> src -j NETPOL-GE-<id>
//   NETPOL-GE-<id> (group chain): for each selecting policy
//     -j NETPOL-PE-<hash>; -m mark --mark M/M -g NETPOL-ALLOW
//     then [log]; DROP
//   NETPOL-PE-<hash> (policy chain): its rules, each -j MARK --set-xmark M/M
//   NETPOL-ALLOW: clears M; its goto returns straight to NETPOL-EGRESS/-INGRESS
//
// iptables has no per-chain "accept and go on" the way an nft base chain
// has, and an ACCEPT here would skip every FORWARD rule after ours, so the
// verdict travels in one mark bit (kube-router uses the same bit, 0x10000)
// which is cleared again before the packet leaves our chains. Nothing here
// ever ACCEPTs: allowed traffic returns to FORWARD as if we were not there.
//
// Peer sets: hash:ip (pods), hash:net with `nomatch` entries for an
// ipBlock's except (the longest prefix decides, so one set and one match
// cover cidr-minus-except), hash:ip,port for named ports.
import type { Family, IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import type { Direction } from '../model/types.ts';
import { stableId, type Group, type LocalPlan, type NamedPortSet, type PeerSet, type PolicyPlan, type PortPlan, type RulePlan } from '../model/plan.ts';

export interface IptablesRenderOptions {
  /** The mark bit that carries "allowed" between chains; default 0x10000 (kube-router's). */
  readonly mark?: number;
  /** Log denied packets: LOG behind a rate limit, or NFLOG to a group. */
  readonly logDenied?: false | { readonly ratePerSecond?: number; readonly group?: number };
}

/** The jumps the apply layer ensures, first in their built-in chains (filter table, both families). */
export const IPTABLES_JUMPS: readonly { readonly chain: 'FORWARD' | 'INPUT'; readonly rule: string }[] = [
  { chain: 'FORWARD', rule: '-j NETPOL-FORWARD' },
  { chain: 'INPUT', rule: '-j NETPOL-INPUT' },
];

export type IpsetType = 'hash:ip' | 'hash:net' | 'hash:ip,port';

export interface Ipset {
  readonly name: string;
  readonly family: Family;
  readonly type: IpsetType;
  /** Entries as `ipset add` takes them ("10.0.0.1", "10.1.0.0/16 nomatch", "10.0.0.1,tcp:8080"). */
  readonly elements: readonly string[];
}

export interface IptablesState {
  readonly sets: ReadonlyMap<string, Ipset>;
  /** Chains of the filter table, per family: name → rules (without "-A <name>"). */
  readonly chains: Readonly<Record<Family, ReadonlyMap<string, readonly string[]>>>;
}

/** The four texts of one sync, applied in this order. */
export interface IptablesScripts {
  /** `ipset restore`: sets created, elements added and deleted, before the rules refer to them. */
  readonly ipsetPre: string;
  /** `iptables-restore --noflush`. */
  readonly iptables: string;
  /** `ip6tables-restore --noflush`. */
  readonly ip6tables: string;
  /** `ipset restore`: sets nothing refers to any more, destroyed after the rules changed. */
  readonly ipsetPost: string;
}

const FAMILIES: readonly Family[] = [4, 6];
const DIR_TAG: Record<Direction, 'I' | 'E'> = { ingress: 'I', egress: 'E' };
const PROTO: Record<string, string> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };
const DEFAULT_MARK = 0x10000;
/** multiport takes at most 15 ports (a range counts two). */
const MULTIPORT_MAX = 15;

const fam = (f: Family): string => `NP${f}`;
export const ipsetNames = {
  local: (f: Family): string => `${fam(f)}-LOCAL`,
  hold: (f: Family): string => `${fam(f)}-HOLD`,
  group: (g: Pick<Group, 'id' | 'direction'>, f: Family): string => `${fam(f)}-G${DIR_TAG[g.direction]}-${g.id}`,
  peer: (ps: Pick<PeerSet, 'id' | 'kind'>, f: Family): string => `${fam(f)}-${ps.kind === 'pods' ? 'P' : 'B'}-${ps.id}`,
  named: (id: string, f: Family): string => `${fam(f)}-N-${id}`,
};
export const groupChain = (g: Pick<Group, 'id' | 'direction'>): string => `NETPOL-G${DIR_TAG[g.direction]}-${g.id}`;
export const policyChain = (key: string, dir: Direction): string => `NETPOL-P${DIR_TAG[dir]}-${stableId(key)}`;

export function iptablesState(plan: LocalPlan, opts: IptablesRenderOptions = {}): IptablesState {
  const mark = `0x${(opts.mark ?? DEFAULT_MARK).toString(16)}`;
  const sets = new Map<string, Ipset>();
  const add = (s: Ipset): void => void sets.set(s.name, s);
  const policies = new Map(plan.policies.map((p) => [p.key, p]));
  const peerSets = new Map(plan.peerSets.map((s) => [s.id, s]));
  const named = new Map(plan.namedPorts.map((s) => [s.id, s]));

  for (const f of FAMILIES) {
    for (const g of plan.groups) {
      const members = plan.pods.filter((p) => p[g.direction] === g.id).flatMap((p) => p.ips);
      add({ name: ipsetNames.group(g, f), family: f, type: 'hash:ip', elements: addrs(members, f) });
    }
    add({ name: ipsetNames.local(f), family: f, type: 'hash:ip', elements: addrs(plan.pods.flatMap((p) => p.ips), f) });
    add({ name: ipsetNames.hold(f), family: f, type: 'hash:net', elements: nets(plan.hold, f) });
    for (const ps of plan.peerSets) {
      if (ps.kind === 'pods') add({ name: ipsetNames.peer(ps, f), family: f, type: 'hash:ip', elements: addrs(ps.addrs, f) });
      else if (ps.cidr.family === f) add({ name: ipsetNames.peer(ps, f), family: f, type: 'hash:net', elements: [...nets([ps.cidr], f), ...nets(ps.except, f).map((e) => `${e} nomatch`)] });
    }
    for (const np of plan.namedPorts) {
      const elems = np.entries.filter((e) => e.addr.family === f).map((e) => `${e.addr.toString()},${PROTO[np.protocol]}:${e.port}`);
      add({ name: ipsetNames.named(np.id, f), family: f, type: 'hash:ip,port', elements: [...new Set(elems)] });
    }
  }

  const chains = {} as Record<Family, Map<string, readonly string[]>>;
  for (const f of FAMILIES) {
    const c = new Map<string, readonly string[]>();
    const local = ipsetNames.local(f);
    const hold = ipsetNames.hold(f);
    c.set('NETPOL-FORWARD', [
      '-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
      '-m conntrack --ctstate INVALID -j DROP',
      `-m set --match-set ${local} src -m set --match-set ${local} dst -j NETPOL-SELF`,
      `-m mark --mark ${mark}/${mark} -m comment --comment "a pod to itself: always allowed" -g NETPOL-ALLOW`,
      `-m set --match-set ${hold} src -m set ! --match-set ${local} src -m comment --comment "held: not evaluated yet" -j DROP`,
      `-m set --match-set ${hold} dst -m set ! --match-set ${local} dst -m comment --comment "held: not evaluated yet" -j DROP`,
      '-j NETPOL-EGRESS',
      '-j NETPOL-INGRESS',
    ]);
    // One rule per local pod, met only by traffic between two local pods.
    // (ipset's hash:net,net would make this one lookup, but not every kernel
    // has it: 6.18 here does not.)
    const host = f === 4 ? '/32' : '/128';
    c.set('NETPOL-SELF', addrs(plan.pods.flatMap((p) => p.ips), f).map((a) => `-s ${a}${host} -d ${a}${host} -j MARK --set-xmark ${mark}/${mark}`));
    c.set('NETPOL-INPUT', ['-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN', '-j NETPOL-EGRESS']);
    for (const dir of ['egress', 'ingress'] as const) {
      const side = dir === 'egress' ? 'src' : 'dst';
      c.set(
        dir === 'egress' ? 'NETPOL-EGRESS' : 'NETPOL-INGRESS',
        plan.groups.filter((g) => g.direction === dir).map((g) => `-m set --match-set ${ipsetNames.group(g, f)} ${side} -j ${groupChain(g)}`),
      );
    }
    c.set('NETPOL-ALLOW', [`-j MARK --set-xmark 0x0/${mark}`]);
    for (const g of plan.groups) c.set(groupChain(g), groupRules(g, policies, mark, opts));
    for (const p of plan.policies) {
      for (const dir of ['ingress', 'egress'] as const) {
        const rules = p[dir];
        if (rules) c.set(policyChain(p.key, dir), policyRules(rules, dir, f, peerSets, named, mark));
      }
    }
    chains[f] = c;
  }
  return { sets, chains };
}

function groupRules(g: Group, policies: ReadonlyMap<string, PolicyPlan>, mark: string, opts: IptablesRenderOptions): string[] {
  const out = [`-j MARK --set-xmark 0x0/${mark}`];
  for (const key of g.policies) {
    const p = policies.get(key);
    // Default denies and rejected policies allow nothing: no jump needed.
    if (!p || (p[g.direction]?.length ?? 0) === 0) continue;
    out.push(`-m comment --comment "${sanitize(`${key} ${g.direction}`)}" -j ${policyChain(key, g.direction)}`);
    out.push(`-m mark --mark ${mark}/${mark} -g NETPOL-ALLOW`);
  }
  const log = opts.logDenied;
  if (log) {
    const prefix = `"netpolicy deny ${g.direction === 'ingress' ? 'in' : 'eg'}: "`;
    out.push(log.group !== undefined ? `-j NFLOG --nflog-group ${log.group} --nflog-prefix ${prefix}` : `-m limit --limit ${log.ratePerSecond ?? 10}/second --limit-burst 5 -j LOG --log-prefix ${prefix}`);
  }
  out.push('-j DROP');
  return out;
}

function policyRules(rules: readonly RulePlan[], dir: Direction, f: Family, peerSets: ReadonlyMap<string, PeerSet>, named: ReadonlyMap<string, NamedPortSet>, mark: string): string[] {
  const side = dir === 'ingress' ? 'src' : 'dst';
  const out = new Set<string>();
  for (const r of rules) {
    const peers = r.peers === 'any' ? [''] : r.peers.flatMap((id) => peerMatch(peerSets.get(id), f, side));
    for (const peer of peers) for (const port of portMatches(r.ports, f, named)) out.add(join(peer, port, `-j MARK --set-xmark ${mark}/${mark}`));
  }
  return [...out];
}

function peerMatch(ps: PeerSet | undefined, f: Family, side: string): string[] {
  if (!ps || (ps.kind === 'ipBlock' && ps.cidr.family !== f)) return [];
  return [`-m set --match-set ${ipsetNames.peer(ps, f)} ${side}`];
}

function portMatches(ports: PortPlan | 'any', f: Family, named: ReadonlyMap<string, NamedPortSet>): string[] {
  if (ports === 'any') return [''];
  const out: string[] = [];
  for (const proto of ['TCP', 'UDP', 'SCTP'] as const) {
    const ranges = ports.ranges.filter((r) => r.protocol === proto);
    if (ranges.length === 0) continue;
    const p = PROTO[proto]!;
    if (ranges.some((r) => r.from === 0 && r.to === 65535)) {
      out.push(`-p ${p}`);
      continue;
    }
    for (const chunk of multiportChunks(ranges.map((r) => (r.from === r.to ? `${r.from}` : `${r.from}:${r.to}`)))) {
      out.push(chunk.length === 1 && !chunk[0]!.includes(':') ? `-p ${p} --dport ${chunk[0]}` : `-p ${p} -m multiport --dports ${chunk.join(',')}`);
    }
  }
  for (const id of ports.named) {
    const np = named.get(id);
    if (np) out.push(`-p ${PROTO[np.protocol]} -m set --match-set ${ipsetNames.named(id, f)} dst,dst`);
  }
  return out;
}

function multiportChunks(items: string[]): string[][] {
  const chunks: string[][] = [];
  let cur: string[] = [];
  let weight = 0;
  for (const it of items) {
    const w = it.includes(':') ? 2 : 1;
    if (weight + w > MULTIPORT_MAX) {
      chunks.push(cur);
      cur = [];
      weight = 0;
    }
    cur.push(it);
    weight += w;
  }
  if (cur.length) chunks.push(cur);
  return chunks;
}

/**
 * Everything, for the first sync (or a resync): each set is filled under a
 * temporary name and swapped in, so no packet ever meets a half-filled set;
 * the chains are rewritten whole in one restore per family. `stale` names
 * chains and sets of an earlier run that the plan no longer has.
 */
export function renderIptablesFull(plan: LocalPlan, opts: IptablesRenderOptions = {}, stale: { chains?: Partial<Record<Family, readonly string[]>>; sets?: readonly string[] } = {}): IptablesScripts {
  const s = iptablesState(plan, opts);
  const pre: string[] = [];
  for (const set of s.sets.values()) {
    const tmp = `${set.name}-T`;
    pre.push(createLine(set, set.name, true), createLine(set, tmp, true), `flush ${tmp}`);
    for (const e of set.elements) pre.push(`add ${tmp} ${e}`);
    pre.push(`swap ${tmp} ${set.name}`, `destroy ${tmp}`);
  }
  const restore = (f: Family): string => {
    const chains = s.chains[f];
    const gone = (stale.chains?.[f] ?? []).filter((c) => !chains.has(c));
    const lines = ['*filter'];
    for (const name of [...chains.keys(), ...gone]) lines.push(`:${name} - [0:0]`);
    for (const [name, rules] of chains) for (const r of rules) lines.push(`-A ${name} ${r}`);
    for (const name of gone) lines.push(`-X ${name}`);
    lines.push('COMMIT');
    return lines.join('\n') + '\n';
  };
  const post = (stale.sets ?? []).filter((n) => !s.sets.has(n)).map((n) => `destroy ${n}`);
  return { ipsetPre: text(pre), iptables: restore(4), ip6tables: restore(6), ipsetPost: text(post) };
}

/**
 * The minimal update from `prev` to `next`. Elements are added before any
 * is deleted, and a pod joins NP<f>-LOCAL only after its group set (and
 * leaves it first): between two `ipset` commands a pod is always in its old
 * or its new group, never in none, so no update opens a window. Only new or
 * changed chains are written (":chain" flushes it); removed chains are
 * flushed and deleted in the same restore, which is atomic per table.
 */
export function renderIptablesUpdate(prev: LocalPlan, next: LocalPlan, opts: IptablesRenderOptions = {}): IptablesScripts {
  const a = iptablesState(prev, opts);
  const b = iptablesState(next, opts);
  const pre: string[] = [];
  for (const set of b.sets.values()) if (!a.sets.has(set.name)) pre.push(createLine(set, set.name, false));
  const isLocal = (n: string): boolean => n.endsWith('-LOCAL');
  const ordered = [...b.sets.values()].sort((x, y) => Number(isLocal(x.name)) - Number(isLocal(y.name)));
  for (const set of ordered) {
    const had = new Set(a.sets.get(set.name)?.elements);
    for (const e of set.elements) if (!had.has(e)) pre.push(`add ${set.name} ${e}`);
  }
  for (const set of [...ordered].reverse()) {
    const old = a.sets.get(set.name);
    if (!old) continue;
    const keep = new Set(set.elements);
    for (const e of old.elements) if (!keep.has(e)) pre.push(`del ${set.name} ${e.replace(/ nomatch$/, '')}`);
  }
  const restore = (f: Family): string => {
    const before = a.chains[f];
    const after = b.chains[f];
    const changed = [...after].filter(([name, rules]) => !sameRules(before.get(name), rules));
    const gone = [...before.keys()].filter((n) => !after.has(n));
    if (changed.length === 0 && gone.length === 0) return '';
    const lines = ['*filter'];
    for (const [name] of changed) lines.push(`:${name} - [0:0]`);
    for (const name of gone) lines.push(`:${name} - [0:0]`);
    for (const [name, rules] of changed) for (const r of rules) lines.push(`-A ${name} ${r}`);
    for (const name of gone) lines.push(`-X ${name}`);
    lines.push('COMMIT');
    return lines.join('\n') + '\n';
  };
  const post = [...a.sets.keys()].filter((n) => !b.sets.has(n)).map((n) => `destroy ${n}`);
  return { ipsetPre: text(pre), iptables: restore(4), ip6tables: restore(6), ipsetPost: text(post) };
}

/** Rules and elements of a state, both families. */
export function iptablesCounts(s: IptablesState): { sets: number; chains: number; rules: number; elements: number } {
  let rules = 0;
  let chains = 0;
  for (const f of FAMILIES) {
    chains += s.chains[f].size;
    for (const r of s.chains[f].values()) rules += r.length;
  }
  let elements = 0;
  for (const set of s.sets.values()) elements += set.elements.length;
  return { sets: s.sets.size, chains, rules, elements };
}

function createLine(set: Ipset, name: string, exist: boolean): string {
  return `create ${name} ${set.type} family ${set.family === 4 ? 'inet' : 'inet6'}${exist ? ' -exist' : ''}`;
}

function sameRules(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((r, i) => r === b[i]);
}

function addrs(list: readonly IPAddr[], f: Family): string[] {
  return [...new Set(list.filter((a) => a.family === f).map((a) => a.toString()))];
}

/**
 * Prefixes as hash:net entries. hash:net cannot store a /0, so the whole
 * address space (ipBlock 0.0.0.0/0 or ::/0, common for "the internet") is
 * stored as its two halves, as kube-router does.
 */
function nets(list: readonly IPPrefix[], f: Family): string[] {
  const out = new Set<string>();
  for (const p of list) {
    if (p.family !== f) continue;
    if (p.length === 0) for (const half of p.masked().subnets(1)) out.add(half.toString());
    else out.add(p.masked().toString());
  }
  return [...out];
}

function join(...parts: string[]): string {
  return parts.filter((p) => p !== '').join(' ');
}

function text(lines: string[]): string {
  return lines.length ? lines.join('\n') + '\n' : '';
}

/** Comments hold Kubernetes names only; never let a quote end one. */
function sanitize(s: string): string {
  return s.replace(/["\\]/g, '').slice(0, 200);
}

const SECTIONS: readonly [keyof IptablesScripts, string][] = [
  ['ipsetPre', 'ipset restore (before the rules)'],
  ['iptables', 'iptables-restore --noflush'],
  ['ip6tables', 'ip6tables-restore --noflush'],
  ['ipsetPost', 'ipset restore (after the rules)'],
];

/** The four scripts as one text with `### <tool>` headers: golden files, dry runs. */
export function scriptsText(s: IptablesScripts): string {
  return SECTIONS.map(([k, title]) => `### ${title}\n${s[k]}`).join('');
}
