// V1NetworkPolicy → Policy: validation (the rules of the API server's
// ValidateNetworkPolicySpec that matter for enforcement), defaulting
// (protocol TCP, policyTypes), and the fail-closed rejection of a policy
// that does not validate.
//
// Objects may come from the API (typed by client-node) or from a manifest
// file (plain JSON/YAML), so nothing is trusted to have the declared types:
// every field is checked at run time. client-node's model names the `from`
// field `_from` (a TS keyword workaround in its ObjectSerializer), while the
// wire format and our manifest source use `from`: both are read.
import type {
  V1IPBlock,
  V1NetworkPolicy,
  V1NetworkPolicyEgressRule,
  V1NetworkPolicyIngressRule,
  V1NetworkPolicyPeer,
  V1NetworkPolicyPort,
} from '@kubernetes/client-node';
import { IPPrefix } from '../../lib/ip/index.ts';
import { compileSelector, MATCH_ALL, type Report } from './selector.ts';
import type { Peer, Policy, PortSpec, Problem, Protocol, Rule, Selector } from './types.ts';
import { PROTOCOLS } from './types.ts';

/** The namespace an object without metadata.namespace belongs to, as kubectl applies it. */
export const DEFAULT_NAMESPACE = 'default';

/**
 * Compiles one policy. A policy with any problem is rejected: its rules are
 * dropped (it allows nothing) but it keeps isolating what it selects in its
 * directions, so a typo never opens traffic. See Policy.podSelector for what
 * "what it selects" means when the podSelector itself is the typo.
 */
export function compilePolicy(np: V1NetworkPolicy): Policy {
  const namespace = np.metadata?.namespace || DEFAULT_NAMESPACE;
  const name = np.metadata?.name ?? '';
  const key = `${namespace}/${name}`;
  const problems: Problem[] = [];
  const report: Report = (field, reason) => problems.push({ kind: 'NetworkPolicy', object: key, field, reason });

  if (name === '') report('metadata.name', 'name is required');
  const spec = np.spec ?? {};
  const podSelector = compileSelector(spec.podSelector, 'spec.podSelector', report);
  const types = compilePolicyTypes(spec.policyTypes, report);
  const ingress = compileRules(spec.ingress, 'spec.ingress', 'from', report);
  const egress = compileRules(spec.egress, 'spec.egress', 'to', report);

  // policyTypes defaults (SetDefaults_NetworkPolicySpec): Ingress always,
  // Egress when there are egress rules. With an invalid policyTypes we
  // cannot know which directions were meant, so both are isolated.
  const egressRulesGiven = Array.isArray(spec.egress) && spec.egress.length > 0;
  const ingressIsolation = types === 'invalid' ? true : types === undefined ? true : types.has('Ingress');
  const egressIsolation = types === 'invalid' ? true : types === undefined ? egressRulesGiven : types.has('Egress');

  const rejected = problems.length > 0;
  return {
    key,
    namespace,
    name,
    podSelector: podSelector ?? MATCH_ALL,
    ingressIsolation,
    egressIsolation,
    ingress: rejected || !ingressIsolation ? [] : ingress,
    egress: rejected || !egressIsolation ? [] : egress,
    problems,
  };
}

function compilePolicyTypes(pt: unknown, report: Report): ReadonlySet<string> | undefined | 'invalid' {
  // An empty list is defaulted like a missing one, as the API server does.
  if (pt === undefined || pt === null || (Array.isArray(pt) && pt.length === 0)) return undefined;
  if (!Array.isArray(pt)) {
    report('spec.policyTypes', 'must be a list');
    return 'invalid';
  }
  let ok = true;
  if (pt.length > 2) {
    ok = false;
    report('spec.policyTypes', `must have at most 2 items, has ${pt.length}`);
  }
  pt.forEach((t: unknown, i) => {
    if (t !== 'Ingress' && t !== 'Egress') {
      ok = false;
      report(`spec.policyTypes[${i}]`, `unsupported value ${JSON.stringify(t)}: must be Ingress or Egress`);
    }
  });
  return ok ? new Set(pt as string[]) : 'invalid';
}

type AnyRule = V1NetworkPolicyIngressRule & V1NetworkPolicyEgressRule & { from?: V1NetworkPolicyPeer[] };

function compileRules(rules: unknown, field: string, peersField: 'from' | 'to', report: Report): Rule[] {
  if (rules === undefined || rules === null) return [];
  if (!Array.isArray(rules)) {
    report(field, 'must be a list');
    return [];
  }
  const out: Rule[] = [];
  rules.forEach((r: unknown, index) => {
    const f = `${field}[${index}]`;
    if (typeof r !== 'object' || r === null) {
      report(f, 'must be an object');
      return;
    }
    const rule = r as AnyRule;
    const rawPeers = peersField === 'from' ? (rule.from ?? rule._from) : rule.to;
    const peers = compilePeers(rawPeers, `${f}.${peersField}`, report);
    const ports = compilePorts(rule.ports, `${f}.ports`, report);
    if (peers && ports) out.push({ index, peers, ports });
  });
  return out;
}

function compilePeers(peers: unknown, field: string, report: Report): Peer[] | 'any' | undefined {
  if (peers === undefined || peers === null || (Array.isArray(peers) && peers.length === 0)) return 'any';
  if (!Array.isArray(peers)) {
    report(field, 'must be a list');
    return undefined;
  }
  const out: Peer[] = [];
  let ok = true;
  peers.forEach((p: unknown, i) => {
    const peer = compilePeer(p, `${field}[${i}]`, report);
    if (peer) out.push(peer);
    else ok = false;
  });
  return ok ? out : undefined;
}

function compilePeer(p: unknown, field: string, report: Report): Peer | undefined {
  if (typeof p !== 'object' || p === null || Array.isArray(p)) {
    report(field, 'must be an object');
    return undefined;
  }
  const peer = p as V1NetworkPolicyPeer;
  const hasPods = peer.podSelector !== undefined && peer.podSelector !== null;
  const hasNs = peer.namespaceSelector !== undefined && peer.namespaceSelector !== null;
  const hasBlock = peer.ipBlock !== undefined && peer.ipBlock !== null;
  if (!hasPods && !hasNs && !hasBlock) {
    report(field, 'must specify a peer: podSelector, namespaceSelector or ipBlock (an empty peer is invalid)');
    return undefined;
  }
  if (hasBlock && (hasPods || hasNs)) {
    report(field, 'may not specify ipBlock together with podSelector or namespaceSelector');
    return undefined;
  }
  if (hasBlock) return compileIPBlock(peer.ipBlock, `${field}.ipBlock`, report);
  const pods = compileSelector(peer.podSelector, `${field}.podSelector`, report);
  const ns: Selector | undefined = hasNs ? compileSelector(peer.namespaceSelector, `${field}.namespaceSelector`, report) : MATCH_ALL;
  if (!pods || !ns) return undefined;
  return {
    kind: 'pods',
    namespaces: hasNs ? { kind: 'selector', selector: ns } : { kind: 'policy-namespace' },
    pods,
  };
}

function compileIPBlock(block: V1IPBlock | undefined, field: string, report: Report): Peer | undefined {
  if (typeof block !== 'object' || block === null) {
    report(field, 'must be an object');
    return undefined;
  }
  const cidr = parseCIDR(block.cidr, `${field}.cidr`, report);
  if (!cidr) return undefined;
  const rawExcept: unknown = block.except ?? [];
  if (!Array.isArray(rawExcept)) {
    report(`${field}.except`, 'must be a list');
    return undefined;
  }
  const except: IPPrefix[] = [];
  let ok = true;
  rawExcept.forEach((e: unknown, i) => {
    const f = `${field}.except[${i}]`;
    const p = parseCIDR(e, f, report);
    if (!p) ok = false;
    else if (p.family !== cidr.family) {
      ok = false;
      report(f, `must be of the same IP family as cidr ${cidr.toString()}`);
    } else if (!cidr.contains(p) || p.length <= cidr.length) {
      ok = false;
      report(f, `must be a strict subset of cidr ${cidr.toString()}`);
    } else except.push(p);
  });
  if (!ok) return undefined;
  return { kind: 'ipBlock', cidr, except: dedupePrefixes(except) };
}

/**
 * A CIDR as the API server accepts it (host bits allowed, then masked, as
 * Go's ParseCIDR returns the network). Leading zeros in IPv4 octets, which
 * Go's legacy parser took, are rejected: guessing would fail open.
 */
function parseCIDR(s: unknown, field: string, report: Report): IPPrefix | undefined {
  if (typeof s !== 'string' || s === '') {
    report(field, 'a CIDR is required');
    return undefined;
  }
  const p = IPPrefix.parse(s);
  if (!p) {
    report(field, `invalid CIDR ${JSON.stringify(s)}`);
    return undefined;
  }
  return p.masked();
}

function dedupePrefixes(ps: IPPrefix[]): IPPrefix[] {
  const seen = new Map<string, IPPrefix>();
  for (const p of ps) seen.set(p.toString(), p);
  return [...seen.values()].sort((a, b) => a.addr.compare(b.addr) || a.length - b.length);
}

function compilePorts(ports: unknown, field: string, report: Report): PortSpec[] | 'any' | undefined {
  if (ports === undefined || ports === null || (Array.isArray(ports) && ports.length === 0)) return 'any';
  if (!Array.isArray(ports)) {
    report(field, 'must be a list');
    return undefined;
  }
  const out: PortSpec[] = [];
  let ok = true;
  ports.forEach((p: unknown, i) => {
    const spec = compilePort(p, `${field}[${i}]`, report);
    if (spec) out.push(spec);
    else ok = false;
  });
  return ok ? out : undefined;
}

function compilePort(p: unknown, field: string, report: Report): PortSpec | undefined {
  if (typeof p !== 'object' || p === null || Array.isArray(p)) {
    report(field, 'must be an object');
    return undefined;
  }
  const { protocol: rawProto, port, endPort } = p as V1NetworkPolicyPort;
  const protocol = rawProto ?? 'TCP';
  let ok = true;
  if (!(PROTOCOLS as readonly unknown[]).includes(protocol)) {
    ok = false;
    report(`${field}.protocol`, `unsupported value ${JSON.stringify(protocol)}: must be TCP, UDP or SCTP`);
  }
  const proto = protocol as Protocol;
  if (port === undefined || port === null) {
    if (endPort !== undefined && endPort !== null) {
      report(`${field}.endPort`, 'may not be specified when port is not specified');
      return undefined;
    }
    return ok ? { kind: 'all', protocol: proto } : undefined;
  }
  if (typeof port === 'string') {
    const why = svcNameProblem(port);
    if (why) {
      report(`${field}.port`, `invalid named port ${JSON.stringify(port)}: ${why}`);
      return undefined;
    }
    if (endPort !== undefined && endPort !== null) {
      report(`${field}.endPort`, 'may not be specified when port is a named port');
      return undefined;
    }
    return ok ? { kind: 'named', protocol: proto, name: port } : undefined;
  }
  if (!isPortNumber(port)) {
    report(`${field}.port`, `invalid port ${JSON.stringify(port)}: must be an integer in 1-65535 or a named port`);
    return undefined;
  }
  if (endPort === undefined || endPort === null) return ok ? { kind: 'range', protocol: proto, from: port, to: port } : undefined;
  if (!isPortNumber(endPort)) {
    report(`${field}.endPort`, `invalid endPort ${JSON.stringify(endPort)}: must be an integer in 1-65535`);
    return undefined;
  }
  if (endPort < port) {
    report(`${field}.endPort`, `must be greater than or equal to port ${port}`);
    return undefined;
  }
  return ok ? { kind: 'range', protocol: proto, from: port, to: endPort } : undefined;
}

function isPortNumber(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

/**
 * Why `s` is not an IANA_SVC_NAME (RFC 6335 §5.1, validation.IsValidPortName):
 * 1–15 characters of [a-z0-9-], at least one letter, no leading, trailing or
 * doubled hyphen. A string of digits ("80") is therefore not a named port.
 */
export function svcNameProblem(s: string): string | undefined {
  if (s.length === 0 || s.length > 15) return 'must be 1-15 characters';
  if (!/^[-a-z0-9]+$/.test(s)) return 'must contain only lowercase alphanumeric characters and "-"';
  if (!/[a-z]/.test(s)) return 'must contain at least one letter';
  if (s.startsWith('-') || s.endsWith('-')) return 'must not begin or end with "-"';
  if (s.includes('--')) return 'must not contain consecutive hyphens';
  return undefined;
}
