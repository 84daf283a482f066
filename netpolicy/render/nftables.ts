// LocalPlan → nft script for the agent's own table (`inet netpolicy`), and
// the minimal transaction from one plan to the next. Pure: text in, text out.
// (Plain nft text for now; lib/netfilter/nft.ts's typed transaction builder
// can carry it once that settles, see README.md.)
//
// Layout of the table (hook map in ../README.md):
//
//   forward_egress   hook forward  priority filter - 1   policy accept
//   forward_ingress  hook forward  priority filter       policy accept
//   input_egress     hook input    priority filter - 1   policy accept
//
//   ct state established,related accept      replies of allowed connections
//   ct state invalid drop                     (forward only)
//   ip saddr . ip daddr @self_v4 accept       (forward only) a pod to itself, e.g.
//                                             through its own Service: always allowed
//   ip saddr vmap @egress_v4                  pod address → jump grp_eg_<id> | accept
//   ip saddr @hold_v4 drop                    unknown address in the pod CIDRs
//
//   grp_<dir>_<id>          one per distinct list of selecting policies:
//                           jump pol_<dir>_<ns>_<name> …; [log]; counter drop
//   pol_<dir>_<ns>_<name>   one per policy and direction: its rules, each
//                           ending in accept (which ends this base chain
//                           only: the packet still meets the other direction)
//   peer_<id>_v4/_v6        peer addresses (interval sets for ipBlocks, with
//   except_<id>_v4/_v6      the excepts in a second set: `@peer != @except`)
//   named_<id>_v4/_v6       (address . port) of a named port, per destination pod
//
// The datapath cost per packet is two map lookups plus the rules of the
// policies that select the pod: it does not grow with the number of
// policies in the cluster. Traffic the node sends to its own pods (kubelet
// probes) leaves through the output hook, which is not policed.
import type { Family, IPAddr, IPPrefix } from '../../lib/ip/index.ts';
import type { Direction } from '../model/types.ts';
import { stableId, type Group, type LocalPlan, type NamedPortSet, type PeerSet, type PolicyPlan, type PortPlan, type RulePlan } from '../model/plan.ts';

export interface NftRenderOptions {
  /** Table name in the inet family; default "netpolicy". Never another component's table. */
  readonly table?: string;
  /** Log denied packets: nft `log` behind a rate limit, or to an nflog group. */
  readonly logDenied?: false | { readonly ratePerSecond?: number; readonly group?: number };
}

export const DEFAULT_TABLE = 'netpolicy';

/** One set or verdict map. `elements` holds keys; a map's values are in `values`. */
export interface NftSet {
  readonly name: string;
  /** The body of its declaration: "type ipv4_addr; flags interval; comment …". */
  readonly decl: string;
  readonly elements: readonly string[];
  /** For verdict maps: key → verdict. */
  readonly values?: ReadonlyMap<string, string>;
}

export interface NftChain {
  readonly name: string;
  /** "type filter hook forward priority filter; policy accept;" for base chains, else comment or "". */
  readonly decl: string;
  readonly rules: readonly string[];
}

/** The desired content of the table, ordered: what both renderers walk. */
export interface NftState {
  readonly table: string;
  readonly sets: ReadonlyMap<string, NftSet>;
  readonly chains: ReadonlyMap<string, NftChain>;
}

const FAMILIES: readonly Family[] = [4, 6];
const IPX: Record<Family, 'ip' | 'ip6'> = { 4: 'ip', 6: 'ip6' };
const ADDR_TYPE: Record<Family, string> = { 4: 'ipv4_addr', 6: 'ipv6_addr' };
const DIR_TAG: Record<Direction, string> = { ingress: 'in', egress: 'eg' };
const BASE_PRIORITY: Record<Direction, string> = { ingress: 'filter', egress: 'filter - 1' };

const v = (f: Family): string => `v${f}`;
export const vmapName = (dir: Direction, f: Family): string => `${dir}_${v(f)}`;
export const holdName = (f: Family): string => `hold_${v(f)}`;
export const selfName = (f: Family): string => `self_${v(f)}`;
export const peerSetName = (id: string, f: Family): string => `peer_${id}_${v(f)}`;
export const exceptSetName = (id: string, f: Family): string => `except_${id}_${v(f)}`;
export const namedSetName = (id: string, f: Family): string => `named_${id}_${v(f)}`;
export const groupChainName = (g: Pick<Group, 'id' | 'direction'>): string => `grp_${DIR_TAG[g.direction]}_${g.id}`;

/**
 * pol_<in|eg>_<namespace>_<name>: readable in `nft list`, and unambiguous
 * because Kubernetes names contain no "_". Names too long for a readable
 * chain name (a 253-character policy name) fall back to a hash.
 */
export function policyChainName(p: Pick<PolicyPlan, 'namespace' | 'name'>, dir: Direction): string {
  const readable = `pol_${DIR_TAG[dir]}_${p.namespace}_${p.name}`;
  return readable.length <= 200 ? readable : `pol_${DIR_TAG[dir]}_${stableId(`${p.namespace}/${p.name}`)}`;
}

/** Builds the table's desired content from a plan. */
export function nftState(plan: LocalPlan, opts: NftRenderOptions = {}): NftState {
  const sets = new Map<string, NftSet>();
  const chains = new Map<string, NftChain>();
  const addSet = (s: NftSet): void => void sets.set(s.name, s);
  const addChain = (c: NftChain): void => void chains.set(c.name, c);

  for (const f of FAMILIES) {
    for (const dir of ['egress', 'ingress'] as const) addSet(vmapSet(plan, dir, f));
    addSet(selfSet(plan, f));
    addSet({ name: holdName(f), decl: `type ${ADDR_TYPE[f]}; flags interval; comment "pod CIDRs: unknown addresses are held back";`, elements: prefixElements(plan.hold, f) });
  }
  for (const ps of plan.peerSets) for (const s of peerSets(ps)) addSet(s);
  for (const np of plan.namedPorts) for (const f of FAMILIES) addSet(namedSet(np, f));

  addChain(baseChain('forward_egress', 'forward', 'egress', true));
  addChain(baseChain('forward_ingress', 'forward', 'ingress', true));
  addChain(baseChain('input_egress', 'input', 'egress', false));
  const idx = indexPlan(plan);
  for (const g of plan.groups) addChain(groupChain(idx, g, opts));
  for (const p of plan.policies) {
    for (const dir of ['ingress', 'egress'] as const) {
      const rules = p[dir];
      if (rules) addChain(policyChain(p, dir, rules, idx));
    }
  }
  return { table: opts.table ?? DEFAULT_TABLE, sets, chains };
}

function vmapSet(plan: LocalPlan, dir: Direction, f: Family): NftSet {
  const groups = new Map(plan.groups.map((g) => [g.id, g]));
  const values = new Map<string, string>();
  for (const pod of plan.pods) {
    const gid = pod[dir];
    const g = gid === undefined ? undefined : groups.get(gid);
    // Every known local pod is in the map, isolated or not: an address of the
    // pod CIDRs that is missing here is one not yet evaluated, and is held.
    const verdict = g ? `jump ${groupChainName(g)}` : 'accept';
    for (const ip of pod.ips) if (ip.family === f) values.set(ip.toString(), verdict);
  }
  return { name: vmapName(dir, f), decl: `type ${ADDR_TYPE[f]} : verdict; comment "local pod ${dir}";`, elements: [...values.keys()], values };
}

/** Every local pod address as `addr . addr`: traffic from a pod to itself. */
function selfSet(plan: LocalPlan, f: Family): NftSet {
  const elements = [...new Set(plan.pods.flatMap((p) => p.ips).filter((ip) => ip.family === f).map((ip) => `${ip.toString()} . ${ip.toString()}`))];
  return { name: selfName(f), decl: `type ${ADDR_TYPE[f]} . ${ADDR_TYPE[f]}; comment "a local pod to itself";`, elements };
}

function peerSets(ps: PeerSet): NftSet[] {
  const comment = `comment ${quote(trim(ps.description))};`;
  if (ps.kind === 'pods') {
    return FAMILIES.map((f) => ({ name: peerSetName(ps.id, f), decl: `type ${ADDR_TYPE[f]}; ${comment}`, elements: addrElements(ps.addrs, f) }));
  }
  const f = ps.cidr.family;
  const out: NftSet[] = [{ name: peerSetName(ps.id, f), decl: `type ${ADDR_TYPE[f]}; flags interval; ${comment}`, elements: [ps.cidr.toString()] }];
  if (ps.except.length > 0) out.push({ name: exceptSetName(ps.id, f), decl: `type ${ADDR_TYPE[f]}; flags interval; ${comment}`, elements: prefixElements(ps.except, f) });
  return out;
}

function namedSet(np: NamedPortSet, f: Family): NftSet {
  const elements = np.entries.filter((e) => e.addr.family === f).map((e) => `${e.addr.toString()} . ${e.port}`);
  const where = np.scope === 'ingress' ? 'local pods' : 'all pods';
  return { name: namedSetName(np.id, f), decl: `type ${ADDR_TYPE[f]} . inet_service; comment ${quote(trim(`named port ${np.name}/${np.protocol} on ${where}`))};`, elements: [...new Set(elements)] };
}

function baseChain(name: string, hook: 'forward' | 'input', dir: Direction, forward: boolean): NftChain {
  const side = dir === 'egress' ? 'saddr' : 'daddr';
  const rules = ['ct state established,related accept'];
  if (forward) rules.push('ct state invalid drop');
  // A pod reaching itself (hairpin through its own Service: after DNAT the
  // forwarded packet goes from the pod to the pod) is never policed, as
  // Kubernetes specifies; the connection is the pod's own business.
  if (forward) for (const f of FAMILIES) rules.push(`${IPX[f]} saddr . ${IPX[f]} daddr @${selfName(f)} accept`);
  for (const f of FAMILIES) rules.push(`${IPX[f]} ${side} vmap @${vmapName(dir, f)}`);
  // Only forwarded traffic is held: the node's own traffic from its bridge
  // address (inside the pod CIDR) reaches the input hook too.
  if (forward) for (const f of FAMILIES) rules.push(`${IPX[f]} ${side} @${holdName(f)} drop`);
  return { name, decl: `type filter hook ${hook} priority ${BASE_PRIORITY[dir]}; policy accept;`, rules };
}

/** The plan's objects by id, built once per render. */
interface PlanIndex {
  readonly policies: ReadonlyMap<string, PolicyPlan>;
  readonly peerSets: ReadonlyMap<string, PeerSet>;
  readonly namedPorts: ReadonlyMap<string, NamedPortSet>;
}

function indexPlan(plan: LocalPlan): PlanIndex {
  return {
    policies: new Map(plan.policies.map((p) => [p.key, p])),
    peerSets: new Map(plan.peerSets.map((s) => [s.id, s])),
    namedPorts: new Map(plan.namedPorts.map((s) => [s.id, s])),
  };
}

function groupChain(idx: PlanIndex, g: Group, opts: NftRenderOptions): NftChain {
  const rules: string[] = [];
  for (const key of g.policies) {
    const p = idx.policies.get(key);
    // A policy without rules here (a default deny, a rejected policy) allows
    // nothing: its chain stays, for `nft list`, but is not worth a jump.
    if (p && (p[g.direction]?.length ?? 0) > 0) rules.push(`jump ${policyChainName(p, g.direction)}`);
  }
  const log = opts.logDenied;
  if (log) {
    const prefix = quote(`netpolicy denied ${g.direction}: `);
    rules.push(log.group !== undefined ? `log prefix ${prefix} group ${log.group}` : `limit rate ${log.ratePerSecond ?? 10}/second burst 5 packets log prefix ${prefix} level info`);
  }
  rules.push('counter drop');
  return { name: groupChainName(g), decl: `comment ${quote(trim(`${g.direction} of pods selected by ${g.policies.join(', ')}`))};`, rules };
}

function policyChain(p: PolicyPlan, dir: Direction, rules: readonly RulePlan[], idx: PlanIndex): NftChain {
  const text = p.rejected ? `${p.key} ${dir} (rejected: allows nothing)` : `${p.key} ${dir}`;
  const out = new Set<string>();
  for (const r of rules) for (const line of ruleLines(r, dir, idx.peerSets, idx.namedPorts)) out.add(line);
  return { name: policyChainName(p, dir), decl: `comment ${quote(trim(text))};`, rules: [...out] };
}

/** The accept rules of one policy rule: (peer per family) × (port ranges | one named-port set). */
function ruleLines(r: RulePlan, dir: Direction, sets: ReadonlyMap<string, PeerSet>, named: ReadonlyMap<string, NamedPortSet>): string[] {
  const peerSide = dir === 'ingress' ? 'saddr' : 'daddr';
  const lines: string[] = [];
  for (const f of FAMILIES) {
    const peerConds = r.peers === 'any' ? [''] : r.peers.flatMap((id) => peerConditions(sets.get(id), f, peerSide));
    for (const pc of peerConds) for (const port of portConditions(r.ports, f, named)) lines.push(join(pc, port, 'accept'));
  }
  return lines;
}

function peerConditions(ps: PeerSet | undefined, f: Family, side: string): string[] {
  if (!ps) return [];
  const ipx = IPX[f];
  if (ps.kind === 'pods') return [`${ipx} ${side} @${peerSetName(ps.id, f)}`];
  if (ps.cidr.family !== f) return [];
  const except = ps.except.length > 0 ? ` ${ipx} ${side} != @${exceptSetName(ps.id, f)}` : '';
  return [`${ipx} ${side} @${peerSetName(ps.id, f)}${except}`];
}

function portConditions(ports: PortPlan | 'any', f: Family, named: ReadonlyMap<string, NamedPortSet>): string[] {
  if (ports === 'any') return [''];
  const out: string[] = [];
  if (ports.ranges.length > 0) {
    const elems = ports.ranges.map((r) => `${r.protocol.toLowerCase()} . ${r.from === r.to ? r.from : `${r.from}-${r.to}`}`);
    out.push(`meta l4proto . th dport { ${elems.join(', ')} }`);
  }
  for (const id of ports.named) {
    const np = named.get(id);
    if (np) out.push(`meta l4proto ${np.protocol.toLowerCase()} ${IPX[f]} daddr . th dport @${namedSetName(id, f)}`);
  }
  return out;
}

/** The whole table in one atomic script: create it if missing, drop whatever it held, write it anew. */
export function renderFull(plan: LocalPlan, opts: NftRenderOptions = {}): string {
  return renderStateFull(nftState(plan, opts));
}

export function renderStateFull(s: NftState): string {
  const lines = [`add table inet ${s.table}`, `delete table inet ${s.table}`, `table inet ${s.table} {`];
  for (const set of s.sets.values()) lines.push(...setBlock(set));
  for (const c of s.chains.values()) {
    lines.push(`\tchain ${c.name} {`);
    if (c.decl) lines.push(`\t\t${c.decl}`);
    for (const r of c.rules) lines.push(`\t\t${r}`);
    lines.push('\t}');
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

function setBlock(set: NftSet): string[] {
  const kind = set.values ? 'map' : 'set';
  const out = [`\t${kind} ${set.name} {`, ...set.decl.split('; ').map((d) => `\t\t${d.endsWith(';') ? d : `${d};`}`)];
  if (set.elements.length > 0) out.push(`\t\telements = { ${elementTexts(set, set.elements).join(',\n\t\t\t     ')} }`);
  out.push('\t}');
  return out;
}

function elementTexts(set: NftSet, keys: readonly string[]): string[] {
  return set.values ? keys.map((k) => `${k} : ${set.values!.get(k)!}`) : [...keys];
}

/**
 * The minimal transaction from `prev` to `next`, in an order the kernel
 * accepts inside one batch: new sets and chains first (empty), then element
 * deletions (a map key whose verdict changes is deleted, then added), element
 * additions, the rules of new and changed chains (flush chain + add rule: a
 * chain is replaced whole, rules have no stable identity), and last the
 * removal of chains (flushed first, so no deleted chain still jumps to
 * another) and sets nothing refers to any more. Empty when nothing changed.
 */
export function renderUpdate(prev: LocalPlan, next: LocalPlan, opts: NftRenderOptions = {}): string {
  return diffStates(nftState(prev, opts), nftState(next, opts));
}

export function diffStates(a: NftState, b: NftState): string {
  if (a.table !== b.table) throw new RangeError(`cannot diff table ${a.table} against ${b.table}`);
  const t = `inet ${b.table}`;
  const out: string[] = [];
  const addedSets = [...b.sets.values()].filter((s) => !a.sets.has(s.name) || a.sets.get(s.name)!.decl !== s.decl);
  const goneSets = [...a.sets.values()].filter((s) => !b.sets.has(s.name) || b.sets.get(s.name)!.decl !== s.decl);
  const addedChains = [...b.chains.values()].filter((c) => !a.chains.has(c.name) || a.chains.get(c.name)!.decl !== c.decl);
  const goneChains = [...a.chains.values()].filter((c) => !b.chains.has(c.name) || b.chains.get(c.name)!.decl !== c.decl);
  if (goneSets.some((s) => b.sets.has(s.name)) || goneChains.some((c) => b.chains.has(c.name))) {
    // Names are derived from content, so a declaration never changes under
    // the same name; if it ever does, only a full render is correct.
    throw new RangeError('declaration changed under the same name: render in full');
  }

  for (const s of addedSets) out.push(`add ${s.values ? 'map' : 'set'} ${t} ${s.name} { ${s.decl} }`);
  for (const c of addedChains) out.push(`add chain ${t} ${c.name}${c.decl ? ` { ${c.decl} }` : ''}`);

  const newSets = new Set(addedSets);
  // A map key whose verdict changed counts as deleted and added again.
  const changed = (s: NftSet, old: NftSet, k: string): boolean => s.values !== undefined && s.values.get(k) !== old.values?.get(k);
  for (const s of b.sets.values()) {
    const old = a.sets.get(s.name);
    if (!old || newSets.has(s)) continue;
    const keep = new Set(s.elements);
    const del = old.elements.filter((k) => !keep.has(k) || changed(s, old, k));
    if (del.length) out.push(`delete element ${t} ${s.name} { ${del.join(', ')} }`);
  }
  for (const s of b.sets.values()) {
    const old = newSets.has(s) ? undefined : a.sets.get(s.name);
    const had = new Set(old?.elements);
    const add = s.elements.filter((k) => !old || !had.has(k) || changed(s, old, k));
    if (add.length) out.push(`add element ${t} ${s.name} { ${elementTexts(s, add).join(', ')} }`);
  }

  const newChains = new Set(addedChains);
  for (const c of b.chains.values()) {
    const old = a.chains.get(c.name);
    const isNew = newChains.has(c);
    if (!isNew && old && sameRules(old.rules, c.rules)) continue;
    if (!isNew) out.push(`flush chain ${t} ${c.name}`);
    for (const r of c.rules) out.push(`add rule ${t} ${c.name} ${r}`);
  }

  for (const c of goneChains) out.push(`flush chain ${t} ${c.name}`);
  for (const c of goneChains) out.push(`delete chain ${t} ${c.name}`);
  for (const s of goneSets) out.push(`delete ${s.values ? 'map' : 'set'} ${t} ${s.name}`);
  return out.length ? out.join('\n') + '\n' : '';
}

function sameRules(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((r, i) => r === b[i]);
}

/** Rules and elements of a state: the figure for metrics and for the scale test. */
export function nftCounts(s: NftState): { sets: number; chains: number; rules: number; elements: number } {
  let rules = 0;
  let elements = 0;
  for (const c of s.chains.values()) rules += c.rules.length;
  for (const set of s.sets.values()) elements += set.elements.length;
  return { sets: s.sets.size, chains: s.chains.size, rules, elements };
}

function addrElements(addrs: readonly IPAddr[], f: Family): string[] {
  return [...new Set(addrs.filter((a) => a.family === f).map((a) => a.toString()))];
}

/**
 * Prefixes of one family as interval-set elements. A prefix inside another
 * is dropped: an interval set rejects overlapping elements, and the outer
 * prefix already covers it.
 */
function prefixElements(ps: readonly IPPrefix[], f: Family): string[] {
  const fam = ps.filter((p) => p.family === f).map((p) => p.masked());
  const kept = fam.filter((p, i) => !fam.some((q, j) => j !== i && q.contains(p) && (q.length < p.length || j < i)));
  return [...new Set(kept.map((p) => p.toString()))];
}

function join(...parts: string[]): string {
  return parts.filter((p) => p !== '').join(' ');
}

/** A quoted nft string; Kubernetes names and our texts hold no quotes, but never let one end the string. */
function quote(s: string): string {
  return `"${s.replace(/["\\]/g, '')}"`;
}

/** nft comments are limited to 128 bytes. */
function trim(s: string): string {
  return s.length <= 120 ? s : `${s.slice(0, 117)}...`;
}
