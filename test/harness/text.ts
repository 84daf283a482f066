// Netlink objects with their addresses as text, for assertions in the root
// suites (the model carries lib/ip values; tests compare what `ip` prints).
import type { Addr, Neigh, Route } from '../../lib/netlink/index.ts';

type Text<T, K extends keyof T> = Omit<T, K> & { [P in K]: undefined extends T[P] ? string | undefined : string };

const str = (v: { toString(): string } | undefined): string | undefined => (v === undefined ? undefined : v.toString());

export type RouteText = Text<Route, 'dst' | 'gw' | 'prefsrc'>;
export type NeighText = Text<Neigh, 'ip'>;
export type AddrText = Text<Addr, 'address' | 'local'>;

export function routeText(r: Route): RouteText {
  const { dst, gw, prefsrc, ...rest } = r;
  return { ...rest, dst: dst.toString(), ...(gw ? { gw: gw.toString() } : {}), ...(prefsrc ? { prefsrc: prefsrc.toString() } : {}) } as RouteText;
}

export const neighText = (n: Neigh): NeighText => ({ ...n, ip: str(n.ip) });

export const addrText = (a: Addr): AddrText => ({ ...a, address: a.address.toString(), local: str(a.local) });
