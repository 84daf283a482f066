// `kube-proxy trace`: where does this packet go? It renders the ruleset the
// proxy would write for the manifests given (--manifests DIR, with the
// proxy's own flags: --proxy-mode, node name, cluster CIDR, masquerade, …),
// or in iptables mode takes the live one from iptables-save
// (--from-kernel), and walks the packet through it with the tracers of
// trace/: the chains and rules (and nftables maps) it passes, each verdict
// (which endpoint, with which probability), and whether it is masqueraded.
import { Command, Option } from 'commander';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { IPAddr, type Family } from '../../lib/ip/index.ts';
import { ManifestDir } from '../../lib/kube/manifest-dir.ts';
import type { IptablesRestore } from '../../lib/netfilter/iptables.ts';
import { addProxyFlags, configFromCommand, ConfigError, parseCommand, type ProxyConfig } from '../config/index.ts';
import { nftRenderOptionsFor, renderOptionsFor, localAddresses } from '../proxier/options.ts';
import { IPTablesRenderer } from '../render/iptables.ts';
import { NFTablesRenderer } from '../render/nftables.ts';
import { IPVSPlan, type IPVSOptions } from '../render/ipvs.ts';
import { formatTrace, IPTablesTracer, type Packet, type TraceResult } from '../trace/iptables.ts';
import { formatIPVSTrace, IPVSTracer, type IPVSTraceResult } from '../trace/ipvs.ts';
import { NFTablesTracer } from '../trace/nftables.ts';
import { Endpoints, EndpointsChangeTracker, ServiceChangeTracker, ServicePorts } from '../tracker/index.ts';

export interface TraceArgs {
  readonly config: ProxyConfig;
  readonly packet: Packet;
  readonly fromKernel: boolean;
  readonly nodeIPs: readonly string[];
  readonly json: boolean;
}

const intArg = (v: string): number => {
  if (!/^[0-9]+$/.test(v) || Number(v) > 65535) throw new ConfigError(`invalid port ${JSON.stringify(v)}`);
  return Number(v);
};
const list = (v: string, prev: unknown): string[] => [...((prev as string[] | undefined) ?? []), ...v.split(',').filter((s) => s !== '')];

export function traceCommand(): Command {
  return addProxyFlags(new Command('kube-proxy trace'))
    .description('Trace a packet through the rules kube-proxy renders for the given manifests (or the running rules).')
    .addOption(new Option('--src <ip>', 'source IP of the packet').makeOptionMandatory())
    .addOption(new Option('--dst <ip>', 'destination IP of the packet').makeOptionMandatory())
    .addOption(new Option('--port <port>', 'destination port').argParser(intArg).makeOptionMandatory())
    .addOption(new Option('--protocol <proto>', 'tcp, udp or sctp').choices(['tcp', 'udp', 'sctp', 'TCP', 'UDP', 'SCTP']).default('tcp'))
    .addOption(new Option('--in-interface <name>', 'the interface the packet comes in on (for -i matches)'))
    .addOption(new Option('--node-ip <ips>', "this node's IPs for `addrtype LOCAL` (default: the addresses of this network namespace)").argParser(list))
    .addOption(new Option('--from-kernel', 'trace over the rules in the kernel (iptables-save) instead of rendering the manifests'))
    .addOption(new Option('--json', 'print the trace as JSON'));
}

/** Parses `kube-proxy trace …` arguments. */
export async function parseTraceArgs(argv: readonly string[], read?: (path: string) => Promise<string>): Promise<TraceArgs> {
  const cmd = traceCommand();
  parseCommand(cmd, argv);
  const o = cmd.opts<{ src: string; dst: string; port: number; protocol: string; inInterface?: string; nodeIp?: string[]; fromKernel?: boolean; json?: boolean }>();
  for (const ip of [o.src, o.dst, ...(o.nodeIp ?? [])]) if (!IPAddr.parse(ip)) throw new ConfigError(`invalid IP address ${JSON.stringify(ip)}`);
  const config = await configFromCommand(cmd, read);
  if (!o.fromKernel && config.manifests === undefined) throw new ConfigError('trace needs --manifests DIR (or --from-kernel)');
  if (o.fromKernel && config.mode !== 'iptables') throw new ConfigError('trace --from-kernel reads iptables-save: only for --proxy-mode iptables');
  return {
    config,
    packet: { source: o.src, destination: o.dst, port: o.port, protocol: o.protocol.toLowerCase(), inInterface: o.inInterface },
    fromKernel: o.fromKernel === true,
    nodeIPs: o.nodeIp ?? localAddresses().map(String),
    json: o.json === true,
  };
}

/**
 * The ruleset kube-proxy would write for one family, from services and
 * slices: iptables-restore text, or in nftables mode the table as `add` lines.
 */
export function renderFor(config: ProxyConfig, family: Family, services: readonly V1Service[], slices: readonly V1EndpointSlice[], nodeIPs: readonly string[], report: (msg: string) => void): string {
  const sct = new ServiceChangeTracker(family, (i) => report(`${i.kind} ${i.namespace}/${i.name}: ${i.reason}`));
  const ect = new EndpointsChangeTracker(family, config.nodeName, (i) => report(`${i.kind} ${i.namespace}/${i.name}: ${i.reason}`));
  for (const s of services) sct.update(undefined, s);
  for (const s of slices) ect.endpointSliceUpdate(s, false);
  const sp = new ServicePorts();
  const eps = new Endpoints();
  sp.update(sct);
  eps.update(ect);
  const local = nodeIPs.map((s) => IPAddr.mustParse(s));
  if (config.mode === 'nftables') {
    const r = new NFTablesRenderer(nftRenderOptionsFor(config, family, undefined, local));
    r.commitAll(r.plan({ services: sp.map, endpoints: eps.map }));
    return r.dump();
  }
  return new IPTablesRenderer().render({ services: sp.map, endpoints: eps.map }, renderOptionsFor(config, family, undefined, local)).text;
}

/** The IPVS mode's plan and iptables text for one family, from services and slices; NodePorts on the node IPs given. */
export function planIPVS(config: ProxyConfig, family: Family, services: readonly V1Service[], slices: readonly V1EndpointSlice[], nodeIPs: readonly string[], report: (msg: string) => void): { plan: IPVSPlan; iptables: string } {
  const sct = new ServiceChangeTracker(family, (i) => report(`${i.kind} ${i.namespace}/${i.name}: ${i.reason}`));
  const ect = new EndpointsChangeTracker(family, config.nodeName, (i) => report(`${i.kind} ${i.namespace}/${i.name}: ${i.reason}`));
  for (const s of services) sct.update(undefined, s);
  for (const s of slices) ect.endpointSliceUpdate(s, false);
  const sp = new ServicePorts();
  const eps = new Endpoints();
  sp.update(sct);
  eps.update(ect);
  const local = nodeIPs.map((s) => IPAddr.mustParse(s));
  const base = renderOptionsFor(config, family, undefined, local);
  const npa = base.nodePortAddresses;
  const usable = local.filter((a) => a.family === family && !a.isLoopback());
  const options: IPVSOptions = {
    ...base,
    scheduler: config.ipvs.scheduler,
    nodePortIPs: !npa || npa.matchAll ? usable : usable.filter((a) => npa.ips.some((ip) => ip.equals(a))),
    nodeLocalAddresses: local.filter((a) => a.family === family),
  };
  const plan = new IPVSPlan();
  for (const i of plan.update(sp.map, eps.map, options).issues) report(`${i.kind} ${i.namespace}/${i.name}: ${i.reason}`);
  return { plan, iptables: plan.iptables(options) };
}

/** Reads the manifest directory once (until its first full read). */
async function readManifests(dir: string): Promise<{ services: V1Service[]; slices: V1EndpointSlice[] }> {
  const md = new ManifestDir(dir, { watch: false });
  const services = md.source('Service');
  const slices = md.source('EndpointSlice');
  const ac = new AbortController();
  const running = [services.run(ac.signal), slices.run(ac.signal)];
  try {
    await Promise.all([services.waitForSync(ac.signal, 10_000), slices.waitForSync(ac.signal, 10_000)]);
    return { services: services.list(), slices: slices.list() };
  } finally {
    ac.abort();
    await Promise.all(running);
  }
}

/**
 * iptables-save prints some defaults kube-proxy never writes (REJECT's
 * `--reject-with icmp-port-unreachable`); the tracer reads kube-proxy's own
 * forms, so those are taken out again.
 */
export function fromSave(save: string): string {
  return save.replace(/ --reject-with icmp6?-port-unreachable\b/g, '');
}

export interface TraceOutput {
  readonly text: string;
  /** In the IPVS mode: the real servers as DNAT verdicts (see `ipvs` for the whole trace). */
  readonly result: TraceResult;
  readonly ipvs?: IPVSTraceResult;
}

function ipvsAsResult(r: IPVSTraceResult): TraceResult {
  const verdicts: TraceResult['verdicts'] = r.filtered
    ? [{ target: r.filtered.target, probability: 1, masquerade: r.masquerade, table: 'filter', chains: [r.filtered.chain] }]
    : r.realServers.map((d) => ({ target: 'DNAT', destination: d.destination, probability: d.probability, masquerade: d.masquerade, table: 'ipvs', chains: [r.virtualServer ?? ''] }));
  return {
    steps: r.steps.map((s) => ({ ...s, probability: 1 })),
    verdicts,
    output: verdicts.map((v) => v.destination ?? v.target).join(', '),
    masquerade: r.masquerade || r.realServers.some((d) => d.masquerade),
    notes: r.notes,
  };
}

/** Runs the trace; the caller prints `text`. */
export async function runTrace(a: TraceArgs, deps: { iptables: IptablesRestore; warn: (msg: string) => void }): Promise<TraceOutput> {
  const family = IPAddr.mustParse(a.packet.destination).family;
  if (a.config.mode === 'ipvs') {
    const { services, slices } = await readManifests(a.config.manifests!);
    const { plan, iptables } = planIPVS(a.config, family, services, slices, a.nodeIPs, deps.warn);
    const r = new IPVSTracer(plan, iptables, a.nodeIPs, family).trace(a.packet);
    const result = ipvsAsResult(r);
    const text = a.json ? `${JSON.stringify({ packet: a.packet, ...r }, null, 2)}\n` : formatIPVSTrace(a.packet, r);
    return { text, result, ipvs: r };
  }
  let ruleset: string;
  if (a.fromKernel) {
    ruleset = fromSave(await deps.iptables.save(family === 4 ? 'ip' : 'ip6'));
  } else {
    const { services, slices } = await readManifests(a.config.manifests!);
    ruleset = renderFor(a.config, family, services, slices, a.nodeIPs, deps.warn);
  }
  const tracer = a.config.mode === 'nftables' ? new NFTablesTracer(ruleset, a.nodeIPs) : new IPTablesTracer(ruleset, a.nodeIPs);
  const result = tracer.trace(a.packet);
  const text = a.json ? `${JSON.stringify({ packet: a.packet, ...result }, null, 2)}\n` : formatTrace(a.packet, result);
  return { text, result };
}
