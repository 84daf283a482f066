// External (underlay) interface selection, in upstream's order:
//   1. every --iface (a name or an IP on the interface), in order;
//   2. every --iface-regex, matched against the interface IPs first, then names;
//   3. --iface-can-reach: the interface the kernel routes that IP through;
//   4. otherwise the default-route interface (dual-stack: v4 and v6 must agree).
// With none of 1-3 given and --public-ip set to an address of a local
// interface, that interface is used (upstream looks the public IP up first).
// The lease's public address defaults to the interface address unless
// --public-ip / --public-ipv6 is set. An interface with MTU 0 is rejected.
import { NetError } from '../lib/errors.ts';
import { IPAddr, families as enabledFamilies, type Family } from '../lib/ip/index.ts';
import { IFA_F_DADFAILED, IFA_F_DEPRECATED, IFA_F_TEMPORARY, IFA_F_TENTATIVE, RTN_UNICAST, RT_SCOPE_UNIVERSE } from '../lib/netlink/constants.ts';
import type { Addr, Link, NetlinkHandle, Route } from '../lib/netlink/index.ts';
import type { ExternalInterface } from './backend/types.ts';

/** The netlink methods interface selection needs. */
export type IfaceNetlink = Pick<NetlinkHandle, 'linkList' | 'addrList' | 'routeList' | 'routeGet'>;

export interface IfaceOptions {
  iface: readonly string[];
  ifaceRegex: readonly string[];
  ifaceCanReach: string;
  publicIP: string;
  publicIPv6: string;
  enableIPv4: boolean;
  enableIPv6: boolean;
}

export class InterfaceSelectionError extends NetError {
  constructor(message: string, cause?: unknown) {
    super('NO_EXTERNAL_INTERFACE', message, { cause });
  }
}

// Address flags that make an address unsuitable as a stable underlay address.
const UNSTABLE = IFA_F_TEMPORARY | IFA_F_DEPRECATED | IFA_F_TENTATIVE | IFA_F_DADFAILED;

const ipOf = (a: Addr): IPAddr => a.address.addr;

/** 169.254.0.0/16 or fe80::/10. */
function isLinkLocal(ip: IPAddr): boolean {
  return ip.family === 4 ? ip.value >> 16n === 0xa9fen : ip.value >> 118n === 0x3fan;
}

/** Addresses of `family` on the link usable as an underlay address, best first. */
function usableAddrs(addrs: readonly Addr[], index: number, family: Family): IPAddr[] {
  const own = addrs.filter((a) => a.index === index && a.family === family);
  const good = own.filter((a) => (a.flags & UNSTABLE) === 0 && !isLinkLocal(ipOf(a)));
  // Global scope first, then the rest (a host-only setup may use a site address).
  good.sort((a, b) => Number(a.scope !== RT_SCOPE_UNIVERSE) - Number(b.scope !== RT_SCOPE_UNIVERSE));
  return good.map(ipOf);
}

function families(o: IfaceOptions): Family[] {
  const f = enabledFamilies(o);
  if (f.length === 0) throw new InterfaceSelectionError('neither IPv4 nor IPv6 is enabled in the network config');
  return f;
}

interface World {
  links: Link[];
  addrs: Addr[];
}

/**
 * Completes a candidate: one address per enabled family (`pinned` fixes one),
 * MTU check, public addresses. Returns undefined (with the reason) when the
 * link lacks an address of an enabled family.
 */
function complete(w: World, link: Link, o: IfaceOptions, pinned: Partial<Record<Family, IPAddr>>): ExternalInterface | string {
  if (link.mtu === 0) return `failed to determine MTU for ${link.name} interface`;
  const ext: ExternalInterface = { index: link.index, name: link.name, mtu: link.mtu };
  for (const fam of families(o)) {
    const addr = pinned[fam] ?? usableAddrs(w.addrs, link.index, fam)[0];
    if (addr === undefined) return `interface ${link.name} has no usable IPv${fam} address`;
    const flag = fam === 4 ? o.publicIP : o.publicIPv6;
    const pub = flag === '' ? addr : IPAddr.parse(flag);
    if (pub === undefined) return `invalid public IP address: ${flag}`;
    if (fam === 4) {
      ext.ifaceAddr = addr;
      ext.extAddr = pub;
    } else {
      ext.ifaceV6Addr = addr;
      ext.extV6Addr = pub;
    }
  }
  return ext;
}

function linkByIP(w: World, ip: IPAddr): Link | undefined {
  const a = w.addrs.find((x) => ipOf(x).equals(ip));
  return a && w.links.find((l) => l.index === a.index);
}

function byNameOrIP(w: World, spec: string, o: IfaceOptions): ExternalInterface | string {
  const ip = IPAddr.parse(spec);
  if (ip) {
    const link = linkByIP(w, ip);
    if (!link) return `no interface with address ${spec}`;
    return complete(w, link, o, { [ip.family]: ip });
  }
  const link = w.links.find((l) => l.name === spec);
  if (!link) return `no interface named ${spec}`;
  return complete(w, link, o, {});
}

function byRegex(w: World, re: RegExp, o: IfaceOptions): ExternalInterface | string {
  // IPs first, in interface order …
  for (const link of w.links) {
    for (const fam of families(o)) {
      for (const ip of usableAddrs(w.addrs, link.index, fam)) {
        if (re.test(ip.toString())) {
          const r = complete(w, link, o, { [fam]: ip });
          if (typeof r !== 'string') return r;
        }
      }
    }
  }
  // … then names.
  for (const link of w.links) {
    if (re.test(link.name)) {
      const r = complete(w, link, o, {});
      if (typeof r !== 'string') return r;
    }
  }
  return `no interface with an IP or name matching ${re.source}`;
}

async function byCanReach(nl: IfaceNetlink, w: World, target: string, o: IfaceOptions): Promise<ExternalInterface | string> {
  const dst = IPAddr.parse(target);
  if (!dst) return `--iface-can-reach ${target} is not an IP address`;
  let route: Route;
  try {
    route = await nl.routeGet(dst);
  } catch (err) {
    return `no route to ${target}: ${(err as Error).message}`;
  }
  const link = w.links.find((l) => l.index === route.oif);
  if (!link) return `route to ${target} has no output interface`;
  return complete(w, link, o, route.prefsrc !== undefined ? { [dst.family]: route.prefsrc } : {});
}

async function defaultRouteLink(nl: IfaceNetlink, w: World, fam: Family): Promise<Link | undefined> {
  const routes = await nl.routeList({ family: fam });
  const def = routes
    .filter((r) => r.dst.length === 0 && r.oif !== undefined && (r.type === undefined || r.type === RTN_UNICAST))
    .sort((a, b) => (a.priority ?? 0) - (b.priority ?? 0))[0];
  return def === undefined ? undefined : w.links.find((l) => l.index === def.oif);
}

async function byDefaultRoute(nl: IfaceNetlink, w: World, o: IfaceOptions): Promise<ExternalInterface | string> {
  const fams = families(o);
  const links: Link[] = [];
  for (const fam of fams) {
    const l = await defaultRouteLink(nl, w, fam);
    if (!l) return `no IPv${fam} default route`;
    links.push(l);
  }
  if (links.length === 2 && links[0]!.index !== links[1]!.index) {
    return `IPv4 default route interface (${links[0]!.name}) differs from IPv6 default route interface (${links[1]!.name})`;
  }
  return complete(w, links[0]!, o, {});
}

export interface SelectLog {
  info(obj: object, msg: string): void;
}

/** Resolves the external interface; throws InterfaceSelectionError listing why each candidate failed. */
export async function selectExternalInterface(nl: IfaceNetlink, o: IfaceOptions, log?: SelectLog): Promise<ExternalInterface> {
  families(o);
  const w: World = { links: await nl.linkList(), addrs: await nl.addrList() };
  const reasons: string[] = [];
  const done = (r: ExternalInterface | string, what: string): ExternalInterface | undefined => {
    if (typeof r !== 'string') return r;
    reasons.push(`${what}: ${r}`);
    log?.info({ candidate: what, reason: r }, 'could not use interface');
    return undefined;
  };

  const explicit = o.iface.length > 0 || o.ifaceRegex.length > 0 || o.ifaceCanReach !== '';
  if (explicit) {
    for (const spec of o.iface) {
      const r = done(byNameOrIP(w, spec, o), `--iface ${spec}`);
      if (r) return r;
    }
    for (const src of o.ifaceRegex) {
      let re: RegExp;
      try {
        re = new RegExp(src);
      } catch (err) {
        throw new InterfaceSelectionError(`invalid --iface-regex ${src}`, err);
      }
      const r = done(byRegex(w, re, o), `--iface-regex ${src}`);
      if (r) return r;
    }
    if (o.ifaceCanReach !== '') {
      const r = done(await byCanReach(nl, w, o.ifaceCanReach, o), `--iface-can-reach ${o.ifaceCanReach}`);
      if (r) return r;
    }
    throw new InterfaceSelectionError(
      `failed to find interface to use that matches the interfaces and/or regexes provided (${reasons.join('; ')})`,
    );
  }

  const pub = o.publicIP !== '' ? o.publicIP : o.publicIPv6;
  const pubIP = IPAddr.parse(pub);
  if (pubIP && linkByIP(w, pubIP)) {
    const r = done(byNameOrIP(w, pub, o), `--public-ip ${pub}`);
    if (r) return r;
  }
  const r = done(await byDefaultRoute(nl, w, o), 'default route');
  if (r) return r;
  throw new InterfaceSelectionError(`failed to find any valid interface to use (${reasons.join('; ')})`);
}
