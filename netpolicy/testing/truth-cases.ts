// Truth tables in the style of upstream's e2e netpol suite: namespaces x, y,
// z with pods a, b, c, each serving TCP and UDP on 80 and 81 (named
// serve-80-tcp …), spread over two nodes, plus one external host. For each
// policy case the full reachability matrix is written by hand. The model's
// evaluate(), the node plans (model/truth-table.test.ts) and the rendered
// rulesets (render/*.flow.test.ts) are all held to these same matrices.
//
// Matrix rows are sources, columns destinations, in the order
// xa xb xc  ya yb yc  za zb zc; "1" allowed, "0" denied. The last row, ext,
// is the external host 192.0.2.99. A pod reaching itself is always allowed
// (Kubernetes never polices it; through its own Service the packet does leave
// the pod and crosses the node's forward hook), so the diagonal is all 1.
import type { V1Namespace, V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import type { Protocol } from '../model/types.ts';
import { namespace, pod, policy } from './fixtures.ts';

export const NS = ['x', 'y', 'z'] as const;
const PODNAMES = ['a', 'b', 'c'] as const;
export const CELLS = NS.flatMap((n) => PODNAMES.map((p) => `${n}${p}`));
export const EXT = '192.0.2.99';
export const NODES = ['n1', 'n2'];
export const PROBES: readonly (readonly [Protocol, number])[] = [
  ['TCP', 80],
  ['TCP', 81],
  ['UDP', 80],
  ['UDP', 81],
];
export type ProbeName = 'TCP/80' | 'TCP/81' | 'UDP/80' | 'UDP/81';

export const ipOf = (cell: string): string => `10.0.${NS.indexOf(cell[0] as 'x') + 1}.${PODNAMES.indexOf(cell[1] as 'a') + 1}`;
export const nodeOf = (i: number): string => NODES[i % 2]!;

export function world(extraPorts: Partial<Record<string, readonly (readonly [string, string, number])[]>> = {}): { pods: V1Pod[]; namespaces: V1Namespace[] } {
  const base: (readonly [string, string, number])[] = [
    ['serve-80-tcp', 'TCP', 80],
    ['serve-81-tcp', 'TCP', 81],
    ['serve-80-udp', 'UDP', 80],
    ['serve-81-udp', 'UDP', 81],
  ];
  const pods = CELLS.map((cell, i) =>
    pod(cell[0]!, cell[1]!, { labels: { pod: cell[1]! }, ips: [ipOf(cell)], node: nodeOf(i), ports: [...base, ...(extraPorts[cell] ?? [])] }),
  );
  return { pods, namespaces: NS.map((n) => namespace(n, { ns: n })) };
}

/** Parses "xa 100 111 111" lines into row → 9 cells. */
export function matrix(text: string): Map<string, boolean[]> {
  const rows = new Map<string, boolean[]>();
  for (const line of text.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const [name, ...groups] = line.split(/\s+/);
    const bits = groups.join('');
    if (bits.length !== 9 || !/^[01]+$/.test(bits)) throw new Error(`bad matrix row: ${line}`);
    rows.set(name!, [...bits].map((b) => b === '1'));
  }
  const want = [...CELLS, 'ext'];
  if (rows.size !== want.length || !want.every((r) => rows.has(r))) throw new Error(`matrix needs rows ${want.join(' ')}`);
  return rows;
}

export interface Case {
  name: string;
  policies: V1NetworkPolicy[];
  /** One matrix for every probe, or one per probe. */
  expect: string | Record<ProbeName, string>;
  extraPorts?: Partial<Record<string, readonly (readonly [string, string, number])[]>>;
}

const ALL_ALLOWED = `
  xa 111 111 111
  xb 111 111 111
  xc 111 111 111
  ya 111 111 111
  yb 111 111 111
  yc 111 111 111
  za 111 111 111
  zb 111 111 111
  zc 111 111 111
  ext 111 111 111`;

/** Only the cell's own diagonal is open in column xa; everything else allowed. */
const XA_SELF_ONLY = `
  xa 111 111 111
  xb 011 111 111
  xc 011 111 111
  ya 011 111 111
  yb 011 111 111
  yc 011 111 111
  za 011 111 111
  zb 011 111 111
  zc 011 111 111
  ext 011 111 111`;

const A = { matchLabels: { pod: 'a' } };
const nsSel = (n: string): unknown => ({ namespaceSelector: { matchLabels: { ns: n } } });

export const CASES: Case[] = [
  { name: 'no policies', policies: [], expect: ALL_ALLOWED },
  {
    name: 'default deny ingress in x',
    policies: [policy('x', 'deny', { podSelector: {} })],
    expect: `
      xa 100 111 111
      xb 010 111 111
      xc 001 111 111
      ya 000 111 111
      yb 000 111 111
      yc 000 111 111
      za 000 111 111
      zb 000 111 111
      zc 000 111 111
      ext 000 111 111`,
  },
  {
    name: 'x/a admits pods of its own namespace',
    policies: [policy('x', 'p', { podSelector: A, ingress: [{ from: [{ podSelector: {} }] }] })],
    expect: `
      xa 111 111 111
      xb 111 111 111
      xc 111 111 111
      ya 011 111 111
      yb 011 111 111
      yc 011 111 111
      za 011 111 111
      zb 011 111 111
      zc 011 111 111
      ext 011 111 111`,
  },
  {
    name: 'x/a admits namespace y',
    policies: [policy('x', 'p', { podSelector: A, ingress: [{ from: [nsSel('y')] }] })],
    expect: `
      xa 111 111 111
      xb 011 111 111
      xc 011 111 111
      ya 111 111 111
      yb 111 111 111
      yc 111 111 111
      za 011 111 111
      zb 011 111 111
      zc 011 111 111
      ext 011 111 111`,
  },
  {
    name: 'x/a admits pod b of namespace y (both selectors: AND)',
    policies: [policy('x', 'p', { podSelector: A, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }] }] })],
    expect: `
      xa 111 111 111
      xb 011 111 111
      xc 011 111 111
      ya 011 111 111
      yb 111 111 111
      yc 011 111 111
      za 011 111 111
      zb 011 111 111
      zc 011 111 111
      ext 011 111 111`,
  },
  {
    name: 'x/a admits namespace y or pod b of x (two peers: OR)',
    policies: [policy('x', 'p', { podSelector: A, ingress: [{ from: [nsSel('y'), { podSelector: { matchLabels: { pod: 'b' } } }] }] })],
    expect: `
      xa 111 111 111
      xb 111 111 111
      xc 011 111 111
      ya 111 111 111
      yb 111 111 111
      yc 111 111 111
      za 011 111 111
      zb 011 111 111
      zc 011 111 111
      ext 011 111 111`,
  },
  {
    name: 'x/a admits pods NotIn (b) of every namespace',
    policies: [policy('x', 'p', { podSelector: A, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchExpressions: [{ key: 'pod', operator: 'NotIn', values: ['b'] }] } }] }] })],
    expect: `
      xa 111 111 111
      xb 011 111 111
      xc 111 111 111
      ya 111 111 111
      yb 011 111 111
      yc 111 111 111
      za 111 111 111
      zb 011 111 111
      zc 111 111 111
      ext 011 111 111`,
  },
  {
    name: 'x/a admits everyone on TCP 81 only',
    policies: [policy('x', 'p', { podSelector: A, ingress: [{ ports: [{ port: 81 }] }] })],
    expect: { 'TCP/80': XA_SELF_ONLY, 'TCP/81': ALL_ALLOWED, 'UDP/80': XA_SELF_ONLY, 'UDP/81': XA_SELF_ONLY },
  },
  {
    name: 'x/a admits namespace y on TCP 80-81 (endPort)',
    policies: [policy('x', 'p', { podSelector: A, ingress: [{ from: [nsSel('y')], ports: [{ port: 80, endPort: 81, protocol: 'TCP' }] }] })],
    expect: {
      'TCP/80': `
        xa 111 111 111
        xb 011 111 111
        xc 011 111 111
        ya 111 111 111
        yb 111 111 111
        yc 111 111 111
        za 011 111 111
        zb 011 111 111
        zc 011 111 111
        ext 011 111 111`,
      'TCP/81': `
        xa 111 111 111
        xb 011 111 111
        xc 011 111 111
        ya 111 111 111
        yb 111 111 111
        yc 111 111 111
        za 011 111 111
        zb 011 111 111
        zc 011 111 111
        ext 011 111 111`,
      'UDP/80': XA_SELF_ONLY,
      'UDP/81': XA_SELF_ONLY,
    },
  },
  {
    name: 'x/a admits everyone on the named port serve-81-udp',
    policies: [policy('x', 'p', { podSelector: A, ingress: [{ ports: [{ port: 'serve-81-udp', protocol: 'UDP' }] }] })],
    expect: { 'TCP/80': XA_SELF_ONLY, 'TCP/81': XA_SELF_ONLY, 'UDP/80': XA_SELF_ONLY, 'UDP/81': ALL_ALLOWED },
  },
  {
    name: 'named port resolved per destination pod: http is 80 on x/a, 81 on x/b, absent on x/c',
    extraPorts: { xa: [['http', 'TCP', 80]], xb: [['http', 'TCP', 81]] },
    policies: [policy('x', 'p', { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] })],
    expect: {
      'TCP/80': `
        xa 100 111 111
        xb 110 111 111
        xc 101 111 111
        ya 100 111 111
        yb 100 111 111
        yc 100 111 111
        za 100 111 111
        zb 100 111 111
        zc 100 111 111
        ext 100 111 111`,
      'TCP/81': `
        xa 110 111 111
        xb 010 111 111
        xc 011 111 111
        ya 010 111 111
        yb 010 111 111
        yc 010 111 111
        za 010 111 111
        zb 010 111 111
        zc 010 111 111
        ext 010 111 111`,
      'UDP/80': `
        xa 100 111 111
        xb 010 111 111
        xc 001 111 111
        ya 000 111 111
        yb 000 111 111
        yc 000 111 111
        za 000 111 111
        zb 000 111 111
        zc 000 111 111
        ext 000 111 111`,
      'UDP/81': `
        xa 100 111 111
        xb 010 111 111
        xc 001 111 111
        ya 000 111 111
        yb 000 111 111
        yc 000 111 111
        za 000 111 111
        zb 000 111 111
        zc 000 111 111
        ext 000 111 111`,
    },
  },
  {
    name: 'default deny egress in x',
    policies: [policy('x', 'deny', { podSelector: {}, policyTypes: ['Egress'] })],
    expect: `
      xa 100 000 000
      xb 010 000 000
      xc 001 000 000
      ya 111 111 111
      yb 111 111 111
      yc 111 111 111
      za 111 111 111
      zb 111 111 111
      zc 111 111 111
      ext 111 111 111`,
  },
  {
    name: 'x/a may send to namespace y on TCP 80 only',
    policies: [policy('x', 'p', { podSelector: A, policyTypes: ['Egress'], egress: [{ to: [nsSel('y')], ports: [{ port: 80 }] }] })],
    expect: {
      'TCP/80': `
        xa 100 111 000
        xb 111 111 111
        xc 111 111 111
        ya 111 111 111
        yb 111 111 111
        yc 111 111 111
        za 111 111 111
        zb 111 111 111
        zc 111 111 111
        ext 111 111 111`,
      'TCP/81': `
        xa 100 000 000
        xb 111 111 111
        xc 111 111 111
        ya 111 111 111
        yb 111 111 111
        yc 111 111 111
        za 111 111 111
        zb 111 111 111
        zc 111 111 111
        ext 111 111 111`,
      'UDP/80': `
        xa 100 000 000
        xb 111 111 111
        xc 111 111 111
        ya 111 111 111
        yb 111 111 111
        yc 111 111 111
        za 111 111 111
        zb 111 111 111
        zc 111 111 111
        ext 111 111 111`,
      'UDP/81': `
        xa 100 000 000
        xb 111 111 111
        xc 111 111 111
        ya 111 111 111
        yb 111 111 111
        yc 111 111 111
        za 111 111 111
        zb 111 111 111
        zc 111 111 111
        ext 111 111 111`,
    },
  },
  {
    name: 'x/a admits 10.0.0.0/16 except 10.0.2.0/24 (pod addresses of y)',
    policies: [policy('x', 'p', { podSelector: A, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.2.0/24'] } }] }] })],
    expect: `
      xa 111 111 111
      xb 111 111 111
      xc 111 111 111
      ya 011 111 111
      yb 011 111 111
      yc 011 111 111
      za 111 111 111
      zb 111 111 111
      zc 111 111 111
      ext 011 111 111`,
  },
  {
    name: 'x/a admits the external network only',
    policies: [policy('x', 'p', { podSelector: A, ingress: [{ from: [{ ipBlock: { cidr: '192.0.2.0/24' } }] }] })],
    expect: `
      xa 111 111 111
      xb 011 111 111
      xc 011 111 111
      ya 011 111 111
      yb 011 111 111
      yc 011 111 111
      za 011 111 111
      zb 011 111 111
      zc 011 111 111
      ext 111 111 111`,
  },
  {
    name: 'two policies on x/a: their rules are a union',
    policies: [
      policy('x', 'from-b', { podSelector: A, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] }),
      policy('x', 'from-z', { podSelector: A, ingress: [{ from: [nsSel('z')] }] }),
    ],
    expect: `
      xa 111 111 111
      xb 111 111 111
      xc 011 111 111
      ya 011 111 111
      yb 011 111 111
      yc 011 111 111
      za 111 111 111
      zb 111 111 111
      zc 111 111 111
      ext 011 111 111`,
  },
  {
    name: 'y may send only to x, and x admits only y: both directions must allow',
    policies: [
      policy('y', 'egress-to-x', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [nsSel('x')] }] }),
      policy('x', 'deny', { podSelector: {} }),
      policy('x', 'from-y', { podSelector: {}, ingress: [{ from: [nsSel('y')] }] }),
    ],
    expect: `
      xa 100 111 111
      xb 010 111 111
      xc 001 111 111
      ya 111 100 000
      yb 111 010 000
      yc 111 001 000
      za 000 111 111
      zb 000 111 111
      zc 000 111 111
      ext 000 111 111`,
  },
  {
    name: 'a rejected policy on x/a fails closed; a valid one in z keeps working',
    policies: [
      policy('x', 'bad', { podSelector: A, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] } }] }] }),
      policy('z', 'from-y', { podSelector: {}, ingress: [{ from: [nsSel('y')] }] }),
    ],
    expect: `
      xa 111 111 000
      xb 011 111 000
      xc 011 111 000
      ya 011 111 111
      yb 011 111 111
      yc 011 111 111
      za 011 111 100
      zb 011 111 010
      zc 011 111 001
      ext 011 111 000`,
  },
  {
    name: 'an invalid podSelector in y isolates all of y',
    policies: [policy('y', 'bad', { podSelector: { matchExpressions: [{ key: 'pod', operator: 'Exists', values: ['a'] }] }, ingress: [{}] })],
    expect: `
      xa 111 000 111
      xb 111 000 111
      xc 111 000 111
      ya 111 100 111
      yb 111 010 111
      yc 111 001 111
      za 111 000 111
      zb 111 000 111
      zc 111 000 111
      ext 111 000 111`,
  },
];

export const ROWS = [...CELLS, 'ext'];

/** The hand-written matrix of a case for one probe. */
export function expected(c: Case, probe: ProbeName): Map<string, boolean[]> {
  return matrix(typeof c.expect === 'string' ? c.expect : c.expect[probe]);
}

/** The probes as table rows for test.each. */
export const PROBE_ROWS = PROBES.map(([proto, port]) => ({ probe: `${proto}/${port}` as ProbeName, proto, port }));

/** A matrix computed cell by cell, the diagonal (a pod to itself) included. */
export function computeMatrix(allowed: (src: string, dst: string) => boolean): Map<string, boolean[]> {
  return new Map(ROWS.map((r) => [r, CELLS.map((d) => allowed(r, d))]));
}

/** Matrix text in the cases' layout, so a failure shows the two matrices side by side. */
export function render(m: Map<string, boolean[]>): string {
  return ROWS.map((r) => {
    const bits = m.get(r)!.map((x) => (x ? '1' : '0')).join('');
    return `${r.padEnd(3)} ${bits.slice(0, 3)} ${bits.slice(3, 6)} ${bits.slice(6)}`;
  }).join('\n');
}
