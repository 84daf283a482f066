// Masquerade for a plugin's attachments (ipMasq), iptables and nftables
// backends: the reference plugins' pkg/ip ipmasq, shared by every plugin
// that gives a container an address behind the node (bridge today).
//
// Pure renderers map (attachment, observed state) to one iptables-restore
// input per family or one nft transaction; the apply functions read state
// once (iptables-save / nft -j list) and write once.
//
// iptables layout: as the reference plugin's, except that the chain is keyed
// by (network, containerID, ifname) so that two attachments of one pod no
// longer share (and on DEL flush) one chain. Chains the reference created
// (keyed by network+containerID) are migrated away on DEL: the jump for the
// IPs being torn down is removed, and the chain once nothing jumps to it.
// nftables layout: exactly the reference's (table inet cni_plugins_masquerade).
import { createHash } from 'node:crypto';
import { accessSync, constants as fsc } from 'node:fs';
import { delimiter, join } from 'node:path';
import { retry } from '../../lib/daemon/retry.ts';
import { NetError } from '../../lib/errors.ts';
import { IPPrefix, InvalidPrefixError } from '../../lib/ip/index.ts';
import { ExecError, isExecNotFound } from '../../lib/exec.ts';
import {
  RestoreBuilder,
  commentArgs,
  parseIptablesSave,
  ruleComment,
  ruleLine,
  ruleTarget,
  type IpFamily,
  type IptablesRestore,
  type SaveDump,
} from '../../lib/netfilter/iptables.ts';
import { NftTransaction, sanitizeComment, type Nft, type NftTableInfo } from '../../lib/netfilter/nft.ts';

export type IPMasqBackend = 'iptables' | 'nftables';

export interface MasqRunners {
  iptables: IptablesRestore;
  nft: Nft;
}

export interface MasqAttachment {
  network: string;
  containerId: string;
  ifName: string;
  /** CIDRs with host bits, e.g. `10.99.0.2/24`. */
  ips: readonly { address: string }[];
}

export interface MasqProblem {
  backend: IPMasqBackend;
  family: IpFamily;
  kind: 'missing-chain' | 'chain-mismatch' | 'missing-jump' | 'missing-rule' | 'missing-table';
  message: string;
}

export class IPMasqError extends NetError {
  constructor(message: string, cause?: unknown) {
    super('IPMASQ', message, cause === undefined ? undefined : { cause });
  }
}

// ---------------------------------------------------------------------------
// Addresses

interface MasqIP {
  family: IpFamily;
  /** Address without prefix, canonical text. */
  ip: string;
  /** Network of the address, canonical `addr/len`. */
  subnet: string;
}

export function parseMasqIP(cidr: string): MasqIP {
  const p = IPPrefix.parseOrHost(cidr);
  if (!p) throw new IPMasqError(`invalid IP address ${JSON.stringify(cidr)}`, new InvalidPrefixError(cidr));
  return { family: p.family === 4 ? 'ip' : 'ip6', ip: p.addr.toString(), subnet: p.masked().toString() };
}

const MULTICAST: Record<IpFamily, string> = { ip: '224.0.0.0/4', ip6: 'ff00::/8' };
const HOST_LEN: Record<IpFamily, number> = { ip: 32, ip6: 128 };
const FAMILIES: readonly IpFamily[] = ['ip', 'ip6'];

function sha512hex(s: string): string {
  return createHash('sha512').update(s).digest('hex');
}

// ---------------------------------------------------------------------------
// iptables naming

/** The reference plugin's chain for (network, containerID): `CNI-` + 24 hex of sha512(name+id). */
export function referenceChainName(network: string, containerId: string): string {
  return `CNI-${sha512hex(network + containerId).slice(0, 24)}`;
}

/**
 * Our chain for (network, containerID, ifname). The hashed string contains
 * `/`, which network names and container IDs cannot, so it never equals a
 * reference chain's name+id input.
 */
export function masqChainName(network: string, containerId: string, ifName: string): string {
  return `CNI-${sha512hex(`${network}/${containerId}/${ifName}`).slice(0, 24)}`;
}

const goQuote = (s: string): string => JSON.stringify(s);

/** The reference's comment: `name: "<net>" id: "<cid>"`. */
export function referenceComment(network: string, containerId: string): string {
  return `name: ${goQuote(network)} id: ${goQuote(containerId)}`;
}

/** Our comment: the reference's plus ` if: "<ifname>"`. */
export function masqComment(network: string, containerId: string, ifName: string): string {
  return `${referenceComment(network, containerId)} if: ${goQuote(ifName)}`;
}

const COMMENT_RE = /^name: ("(?:[^"\\]|\\.)*") id: ("(?:[^"\\]|\\.)*")(?: if: ("(?:[^"\\]|\\.)*"))?$/;

/** Parses either comment form; `ifName` is undefined for the reference's. */
export function parseMasqComment(c: string): { network: string; containerId: string; ifName: string | undefined } | undefined {
  const m = COMMENT_RE.exec(c);
  if (!m) return undefined;
  try {
    return { network: JSON.parse(m[1]!) as string, containerId: JSON.parse(m[2]!) as string, ifName: m[3] === undefined ? undefined : (JSON.parse(m[3]) as string) };
  } catch {
    return undefined;
  }
}

function groupByFamily(ips: readonly { address: string }[]): Map<IpFamily, MasqIP[]> {
  const out = new Map<IpFamily, MasqIP[]>();
  for (const { address } of ips) {
    const p = parseMasqIP(address);
    const l = out.get(p.family) ?? [];
    l.push(p);
    out.set(p.family, l);
  }
  return out;
}

// ---------------------------------------------------------------------------
// iptables: pure renderers

/** Desired rules of our chain for one family, in order. */
export function iptablesChainRules(a: Omit<MasqAttachment, 'ips'>, family: IpFamily, ips: readonly MasqIP[]): string[][] {
  const comment = commentArgs(masqComment(a.network, a.containerId, a.ifName));
  const subnets = [...new Set(ips.map((i) => i.subnet))];
  return [...subnets.map((s) => ['-d', s, ...comment, '-j', 'ACCEPT']), ['!', '-d', MULTICAST[family], ...comment, '-j', 'MASQUERADE']];
}

export function iptablesJumpRule(a: Omit<MasqAttachment, 'ips'>, ip: MasqIP): string[] {
  return ['-s', `${ip.ip}/${HOST_LEN[ip.family]}`, ...commentArgs(masqComment(a.network, a.containerId, a.ifName)), '-j', masqChainName(a.network, a.containerId, a.ifName)];
}

/**
 * iptables-restore --noflush input that makes the nat table hold exactly our
 * chain and jumps for `ips` (one family). Declaring the chain creates or
 * flushes it; jumps already present are kept, stale ones to our chain removed.
 */
export function renderIptablesSetup(a: Omit<MasqAttachment, 'ips'>, family: IpFamily, ips: readonly MasqIP[], observed: SaveDump): string {
  const chain = masqChainName(a.network, a.containerId, a.ifName);
  const b = new RestoreBuilder();
  const t = b.table('nat');
  t.chain(chain);
  for (const r of iptablesChainRules(a, family, ips)) t.append(chain, r);
  const want = ips.map((ip) => iptablesJumpRule(a, ip));
  const wantLines = new Set(want.map((r) => ruleLine('POSTROUTING', r)));
  const have = observed.rules('nat', 'POSTROUTING');
  const haveLines = new Set(have.map((r) => r.line));
  for (const r of have) if (ruleTarget(r.args) === chain && !wantLines.has(r.line)) t.delete('POSTROUTING', r.args);
  const added = new Set<string>();
  for (const r of want) {
    const l = ruleLine('POSTROUTING', r);
    if (!haveLines.has(l) && !added.has(l)) {
      added.add(l);
      t.append('POSTROUTING', r);
    }
  }
  return b.render();
}

/**
 * iptables-restore --noflush input removing our chain and every rule that
 * jumps to it, plus (migration) the reference's jumps for `ips` and the
 * reference's chain once nothing jumps to it. Only deletes what `observed`
 * holds; empty string when there is nothing to do.
 */
export function renderIptablesTeardown(a: Omit<MasqAttachment, 'ips'>, family: IpFamily, ips: readonly MasqIP[], observed: SaveDump): string {
  const chain = masqChainName(a.network, a.containerId, a.ifName);
  const ref = referenceChainName(a.network, a.containerId);
  const b = new RestoreBuilder();
  const t = b.table('nat');
  const rules = observed.rules('nat');
  const sources = new Set<string>();
  for (const ip of ips) {
    sources.add(`${ip.ip}/${HOST_LEN[family]}`);
    sources.add(ip.subnet); // legacy `-s ip/len` jumps, which iptables stores masked
  }
  const deleted = new Set<(typeof rules)[number]>();
  for (const r of rules) {
    if (r.chain === chain) continue; // goes with the chain
    const target = ruleTarget(r.args);
    if (target === chain) deleted.add(r);
    else if (target === ref && r.chain === 'POSTROUTING') {
      const s = r.args[r.args.indexOf('-s') + 1];
      if (r.args.includes('-s') && s !== undefined && sources.has(s)) deleted.add(r);
    }
  }
  for (const r of deleted) t.delete(r.chain, r.args);
  if (observed.hasChain('nat', chain)) t.flush(chain).deleteChain(chain);
  if (ref !== chain && observed.hasChain('nat', ref)) {
    const stillUsed = rules.some((r) => r.chain !== ref && !deleted.has(r) && ruleTarget(r.args) === ref);
    if (!stillUsed) t.flush(ref).deleteChain(ref);
  }
  return b.render();
}

export function checkIptables(a: MasqAttachment, observed: Map<IpFamily, SaveDump>): MasqProblem[] {
  const problems: MasqProblem[] = [];
  const chain = masqChainName(a.network, a.containerId, a.ifName);
  for (const [family, ips] of groupByFamily(a.ips)) {
    const dump = observed.get(family);
    const p = (kind: MasqProblem['kind'], message: string): void => void problems.push({ backend: 'iptables', family, kind, message });
    if (!dump?.hasChain('nat', chain)) {
      p('missing-chain', `masquerade chain ${chain} missing in ${family === 'ip' ? 'iptables' : 'ip6tables'} nat table`);
    } else {
      const want = iptablesChainRules(a, family, ips).map((r) => ruleLine(chain, r));
      const have = dump.rules('nat', chain).map((r) => r.line);
      if (want.join('\n') !== have.join('\n')) p('chain-mismatch', `masquerade chain ${chain} has rules [${have.join('; ')}], expected [${want.join('; ')}]`);
    }
    for (const ip of ips) {
      if (!dump?.hasRule('nat', 'POSTROUTING', iptablesJumpRule(a, ip))) p('missing-jump', `POSTROUTING jump for ${ip.ip} to ${chain} missing`);
    }
  }
  return problems;
}

/** Chains (and their POSTROUTING jumps) of `network` whose attachment is not in `valid`. */
export function renderIptablesGC(network: string, valid: readonly { containerID: string; ifname: string }[], observed: SaveDump): string {
  const validOurs = new Set(valid.map((v) => masqChainName(network, v.containerID, v.ifname)));
  const validRef = new Set(valid.map((v) => referenceChainName(network, v.containerID)));
  const stale = new Set<string>();
  for (const r of observed.rules('nat')) {
    if (!r.chain.startsWith('CNI-')) continue;
    const c = ruleComment(r.args);
    const who = c === undefined ? undefined : parseMasqComment(c);
    if (!who || who.network !== network) continue;
    const expected = who.ifName === undefined ? referenceChainName(network, who.containerId) : masqChainName(network, who.containerId, who.ifName);
    if (expected !== r.chain) continue; // not a masquerade chain of ours
    if (!(who.ifName === undefined ? validRef : validOurs).has(r.chain)) stale.add(r.chain);
  }
  const b = new RestoreBuilder();
  const t = b.table('nat');
  for (const r of observed.rules('nat')) {
    const target = ruleTarget(r.args);
    if (target !== undefined && stale.has(target) && !stale.has(r.chain)) t.delete(r.chain, r.args);
  }
  for (const c of stale) t.flush(c).deleteChain(c);
  return b.render();
}

// ---------------------------------------------------------------------------
// nftables: naming and pure renderers (the reference's layout)

export const NFT_MASQ_TABLE = 'cni_plugins_masquerade';
export const NFT_MASQ_CHAIN = 'masq_checks';
const NFT_TABLE_COMMENT = 'Masquerading for plugins from github.com/containernetworking/plugins';
const NFT_CHAIN_COMMENT = 'Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet';

export function nftNetworkHash(network: string): string {
  return sha512hex(network).slice(0, 16);
}
export function nftInstanceHash(network: string, ifName: string, containerId: string): string {
  return `${nftNetworkHash(network)}-${sha512hex(`${ifName}:${containerId}`).slice(0, 16)}`;
}
export function nftMasqComment(network: string, ifName: string, containerId: string): string {
  const strip = (s: string): string => s.replaceAll('"', '');
  return sanitizeComment(`${nftInstanceHash(network, ifName, containerId)}, net: ${strip(network)}, if: ${strip(ifName)}, id: ${strip(containerId)}`);
}

export function nftMasqRule(ip: MasqIP): string {
  return `${ip.family} saddr ${ip.ip} ${ip.family} daddr != ${ip.subnet} masquerade`;
}

const T = { family: 'inet', table: NFT_MASQ_TABLE } as const;

export function renderNftSetup(a: MasqAttachment, observed: NftTableInfo | undefined): NftTransaction {
  const prefix = nftInstanceHash(a.network, a.ifName, a.containerId);
  const comment = nftMasqComment(a.network, a.ifName, a.containerId);
  const tx = new NftTransaction();
  tx.addTable({ family: 'inet', name: NFT_MASQ_TABLE, comment: NFT_TABLE_COMMENT });
  tx.addChain({ ...T, name: NFT_MASQ_CHAIN, comment: NFT_CHAIN_COMMENT });
  tx.addChain({ ...T, name: 'postrouting', type: 'nat', hook: 'postrouting', priority: 'srcnat' });
  tx.flushChain({ ...T, name: 'postrouting' });
  tx.addRule({ ...T, chain: 'postrouting', rule: `ip daddr ${MULTICAST.ip} return` });
  tx.addRule({ ...T, chain: 'postrouting', rule: `ip6 daddr ${MULTICAST.ip6} return` });
  tx.addRule({ ...T, chain: 'postrouting', rule: `goto ${NFT_MASQ_CHAIN}` });
  for (const r of observed?.rules ?? []) {
    if (r.chain === NFT_MASQ_CHAIN && r.comment?.startsWith(prefix)) tx.deleteRule({ ...T, chain: NFT_MASQ_CHAIN, handle: r.handle });
  }
  for (const { address } of a.ips) tx.addRule({ ...T, chain: NFT_MASQ_CHAIN, rule: nftMasqRule(parseMasqIP(address)), comment });
  return tx;
}

export function renderNftTeardown(a: Omit<MasqAttachment, 'ips'>, observed: NftTableInfo | undefined): NftTransaction {
  const prefix = nftInstanceHash(a.network, a.ifName, a.containerId);
  const tx = new NftTransaction();
  for (const r of observed?.rules ?? []) {
    if (r.chain === NFT_MASQ_CHAIN && r.comment?.startsWith(prefix)) tx.deleteRule({ ...T, chain: NFT_MASQ_CHAIN, handle: r.handle });
  }
  return tx;
}

export function renderNftGC(network: string, valid: readonly { containerID: string; ifname: string }[], observed: NftTableInfo | undefined): NftTransaction {
  const prefix = `${nftNetworkHash(network)}-`;
  const keep = new Set(valid.map((v) => nftMasqComment(network, v.ifname, v.containerID)));
  const tx = new NftTransaction();
  for (const r of observed?.rules ?? []) {
    if (r.chain === NFT_MASQ_CHAIN && r.comment?.startsWith(prefix) && !keep.has(r.comment)) tx.deleteRule({ ...T, chain: NFT_MASQ_CHAIN, handle: r.handle });
  }
  return tx;
}

export function checkNft(a: MasqAttachment, observed: NftTableInfo | undefined): MasqProblem[] {
  const problems: MasqProblem[] = [];
  const comment = nftMasqComment(a.network, a.ifName, a.containerId);
  const post = observed?.chains.find((c) => c.name === 'postrouting');
  if (!observed || !post || post.hook !== 'postrouting' || !observed.rules.some((r) => r.chain === 'postrouting' && r.text === `goto ${NFT_MASQ_CHAIN}`)) {
    const fam = groupByFamily(a.ips).keys().next().value ?? 'ip';
    problems.push({ backend: 'nftables', family: fam, kind: 'missing-table', message: `nftables table inet ${NFT_MASQ_TABLE} or its postrouting chain is missing` });
  }
  for (const { address } of a.ips) {
    const ip = parseMasqIP(address);
    const text = nftMasqRule(ip);
    if (!observed?.rules.some((r) => r.chain === NFT_MASQ_CHAIN && r.comment === comment && r.text === text)) {
      problems.push({ backend: 'nftables', family: ip.family, kind: 'missing-rule', message: `nftables masquerade rule "${text}" missing` });
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------
// Apply

/** Retries a read-then-write step (3 attempts, at once) when a concurrent writer made the write fail. */
function withRetry<T>(step: () => Promise<T>): Promise<T> {
  return retry(step, { min: 0, max: 0, attempts: 3, retryIf: (err) => err instanceof ExecError && err.code === 'EXEC_FAILED' });
}

async function natDump(ipt: IptablesRestore, family: IpFamily): Promise<SaveDump> {
  return parseIptablesSave(await ipt.save(family, 'nat'));
}

export async function setupIPMasq(opts: MasqAttachment & { backend: IPMasqBackend }, runners: MasqRunners): Promise<void> {
  const byFamily = groupByFamily(opts.ips);
  if (opts.backend === 'nftables') {
    await withRetry(async () => runners.nft.run(renderNftSetup(opts, await runners.nft.list('inet', NFT_MASQ_TABLE))));
    return;
  }
  for (const [family, ips] of byFamily) {
    await withRetry(async () => {
      const text = renderIptablesSetup(opts, family, ips, await natDump(runners.iptables, family));
      await runners.iptables.restore(family, text, { noflush: true });
    });
  }
}

/**
 * Removes the attachment's masquerade state in both backends. Works from the
 * IPs given (prevResult / IPAM store) since the netns may be gone; our own
 * chains are found without IPs. Never deletes what is not there.
 */
export async function teardownIPMasq(opts: MasqAttachment, runners: MasqRunners, preferred: IPMasqBackend = 'iptables'): Promise<void> {
  const byFamily = groupByFamily(opts.ips);
  // With the attachment's IPs known, only their families can hold its
  // chains (setup creates none elsewhere); without any, look in both.
  const families = byFamily.size > 0 ? [...byFamily.keys()] : FAMILIES;
  /** Tears down the iptables state; true when something was there. */
  const viaIptables = async (): Promise<boolean> => {
    const found = await Promise.all(
      families.map(async (family) => {
        const ips = byFamily.get(family) ?? [];
        try {
          return await withRetry(async () => {
            const text = renderIptablesTeardown(opts, family, ips, await natDump(runners.iptables, family));
            if (text !== '') await runners.iptables.restore(family, text, { noflush: true });
            return text !== '';
          });
        } catch (err) {
          // A family we hold no IPs for is checked on a best-effort basis (e.g. no IPv6 in this kernel).
          if (isExecNotFound(err) || (ips.length === 0 && err instanceof ExecError)) return false;
          throw err;
        }
      }),
    );
    return found.some(Boolean);
  };
  const viaNft = async (): Promise<boolean> => {
    try {
      return await withRetry(async () => {
        const tx = renderNftTeardown(opts, await runners.nft.list('inet', NFT_MASQ_TABLE));
        if (!tx.isEmpty) await runners.nft.run(tx);
        return !tx.isEmpty;
      });
    } catch (err) {
      if (isExecNotFound(err)) return false;
      throw err;
    }
  };
  // Setup uses one backend. Tear down the configured one first; only when it
  // held nothing (the config changed since ADD, or a reference-made
  // attachment) look at the other one too. Each listing is a child process
  // that contends with the kernel's own teardown work, so skipping the
  // needless one is what keeps DEL short.
  const [first, second] = preferred === 'nftables' ? [viaNft, viaIptables] : [viaIptables, viaNft];
  try {
    if (!(await first())) await second();
  } catch (err) {
    throw new IPMasqError(`failed to tear down ipMasq for ${opts.containerId}/${opts.ifName}: ${(err as Error).message}`, err);
  }
}

export async function checkIPMasq(opts: MasqAttachment & { backend: IPMasqBackend }, runners: MasqRunners): Promise<MasqProblem[]> {
  if (opts.backend === 'nftables') return checkNft(opts, await runners.nft.list('inet', NFT_MASQ_TABLE));
  const dumps = new Map<IpFamily, SaveDump>();
  for (const family of groupByFamily(opts.ips).keys()) dumps.set(family, await natDump(runners.iptables, family));
  return checkIptables(opts, dumps);
}

/** Removes masquerade state of `network` for attachments not in `valid`, in both backends. */
export async function gcIPMasq(network: string, valid: readonly { containerID: string; ifname: string }[], runners: MasqRunners): Promise<void> {
  const errors: unknown[] = [];
  for (const family of FAMILIES) {
    try {
      await withRetry(async () => {
        const text = renderIptablesGC(network, valid, await natDump(runners.iptables, family));
        if (text !== '') await runners.iptables.restore(family, text, { noflush: true });
      });
    } catch (err) {
      if (isExecNotFound(err) || (family === 'ip6' && err instanceof ExecError)) continue;
      errors.push(err);
    }
  }
  try {
    await withRetry(async () => {
      const tx = renderNftGC(network, valid, await runners.nft.list('inet', NFT_MASQ_TABLE));
      if (!tx.isEmpty) await runners.nft.run(tx);
    });
  } catch (err) {
    if (!isExecNotFound(err)) errors.push(err);
  }
  if (errors.length > 0) throw new IPMasqError(`failed to garbage-collect ipMasq for network ${network}: ${errors.map((e) => (e as Error).message).join('; ')}`, errors[0]);
}

function onPath(bin: string, path = process.env.PATH ?? ''): boolean {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, bin), fsc.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** The reference's default: iptables unless only nftables is available. */
export function defaultIPMasqBackend(path?: string): IPMasqBackend {
  return !onPath('iptables-restore', path) && onPath('nft', path) ? 'nftables' : 'iptables';
}
