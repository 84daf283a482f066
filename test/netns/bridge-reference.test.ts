// Side by side: the same configs through the reference bridge + host-local
// (/usr/lib/cni, Debian containernetworking-plugins 1.1.1, spec ≤ 1.0.0) and
// through ours, each in its own node namespace; results and kernel state must
// agree modulo random values (MACs, veth names) and the documented deliberate
// differences: our error JSON carries cniVersion, our 1.x results omit an
// empty `dns`, our masquerade chain name/comment include the ifname.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  CniBed,
  OUR_BIN,
  REF_BIN,
  REF_VERSIONS,
  cni,
  cniEnv,
  normalizeResult,
  ping,
  snapshot,
  storeIps,
  type CniOutcome,
  type NsState,
  type Snapshot,
} from '../harness/cni.ts';

const bed = new CniBed('brref');
beforeAll(() => {
  for (const p of [join(OUR_BIN, 'bridge'), join(OUR_BIN, 'host-local'), join(REF_BIN, 'bridge'), join(REF_BIN, 'host-local')]) {
    if (!existsSync(p)) throw new Error(`${p} is missing (npm run build; apt install containernetworking-plugins)`);
  }
});
afterAll(() => bed.cleanup());

type Conf = Record<string, unknown>;
type Who = 'ref' | 'ours';
const BIN: Record<Who, string> = { ref: REF_BIN, ours: OUR_BIN };

function call(who: Who, node: string, cmd: string, cid: string, pod: string, conf: Conf, ifName = 'eth0', env: Record<string, string | undefined> = {}): Promise<CniOutcome> {
  return cni({ node, plugin: join(BIN[who], 'bridge'), env: cniEnv(cmd, cid, pod, ifName, BIN[who], env), stdin: conf });
}
async function ok(p: Promise<CniOutcome>): Promise<CniOutcome> {
  const r = await p;
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  return r;
}

function baseConf(version: string, dataDir: string, extra: Conf = {}, ipam: Conf = {}): Conf {
  return {
    cniVersion: version,
    name: 'refnet',
    type: 'bridge',
    bridge: 'rbr0',
    isGateway: true,
    ipMasq: true,
    hairpinMode: true,
    ...extra,
    ipam: { type: 'host-local', subnet: '10.90.0.0/24', routes: [{ dst: '0.0.0.0/0' }], dataDir, ...ipam },
  };
}

/** The reference's result with the documented differences applied. */
function expectedFromRef(ref: any): unknown {
  const out = structuredClone(ref);
  if (typeof out.cniVersion === 'string' && out.cniVersion >= '1.0.0' && out.dns && Object.keys(out.dns).length === 0) delete out.dns;
  return normalizeResult(out);
}

/** Replaces the pod namespace path (different per side) in `interfaces[].sandbox`. */
function podless(json: any, pod: string): any {
  const out = structuredClone(json);
  for (const i of out?.interfaces ?? []) if (i.sandbox === pod) i.sandbox = '<pod>';
  return out;
}

const VETH = /veth[0-9a-f]{8}/g;
const normNs = (s: NsState) => ({
  links: s.links.map((l) => ({ name: l.name.replace(VETH, '<veth>'), kind: l.kind, up: l.up, mtu: l.mtu, master: l.master, promisc: l.promisc, hairpin: l.hairpin, isolated: l.isolated })),
  addrs: s.addrs.map((a) => a.replace(VETH, '<veth>')),
  routes: s.routes.map((r) => r.replace(VETH, '<veth>')),
});
const normNat = (lines: string[]): string[] =>
  lines.map((l) => l.replace(/CNI-[0-9a-f]{24}/g, 'CNI-<chain>').replace(/ if: \\"[^"\\]*\\""/, '"'));

/** Kernel + store state with random names and the documented masquerade naming difference removed. */
function norm(s: Snapshot, pods: string[]) {
  return {
    node: normNs(s.node),
    forwarding: s.node.forwarding,
    nat4: normNat(s.node.nat.ip),
    nat6: normNat(s.node.nat.ip6),
    chains: s.node.nat.chains.map((c) => c.replace(/CNI-[0-9a-f]{24}/, 'CNI-<chain>')),
    pods: pods.map((p) => (s.pods[p] ? normNs(s.pods[p]!) : undefined)),
    ips: storeIps(s).map((l) => l.replace(/^[^/]*\//, '')),
    lastReserved: s.store.filter((l) => /(^|\/)last_reserved_ip\.\d+$/.test(l)).map((l) => l.replace(/^[^/]*\//, '')),
  };
}

describe.each(REF_VERSIONS)('spec %s: reference vs ours', (version) => {
  test('ADD result, kernel state, CHECK and DEL agree', async () => {
    const side = async (who: Who) => {
      const node = bed.netns(`${who}n`);
      const pod = bed.netns(`${who}p`);
      const dataDir = bed.dir(`${who}s`);
      return { who, node, pod, dataDir, conf: baseConf(version, dataDir) };
    };
    const sides = [await side('ref'), await side('ours')] as const;
    const results: CniOutcome[] = [];
    const shown: unknown[] = [];
    const states: ReturnType<typeof norm>[] = [];
    for (const s of sides) {
      const r = await ok(call(s.who, s.node, 'ADD', 'ctr1', s.pod, s.conf));
      results.push(r);
      shown.push(podless(r.json, s.pod));
      states.push(norm(await snapshot({ node: s.node, pods: [s.pod], stores: [s.dataDir] }), [s.pod]));
      expect(await ping(s.pod, '10.90.0.1')).toBe(true);
    }
    const [ref, ours] = results as [CniOutcome, CniOutcome];
    expect(normalizeResult(shown[1])).toEqual(expectedFromRef(shown[0]));
    // Same formatting: 4-space indent, no trailing newline.
    expect(ours.stdout.endsWith('}')).toBe(ref.stdout.endsWith('}'));
    // The sandbox path differs only by the namespace name.
    expect(states[1]).toEqual(states[0]);
    expect(states[0]!.nat4.length).toBe(3);

    if (version >= '0.4.0') {
      for (const [k, s] of sides.entries()) await ok(call(s.who, s.node, 'CHECK', 'ctr1', s.pod, { ...s.conf, prevResult: results[k]!.json }));
    }
    const after: ReturnType<typeof norm>[] = [];
    for (const [k, s] of sides.entries()) {
      const conf = version >= '0.4.0' ? { ...s.conf, prevResult: results[k]!.json } : s.conf;
      const d = await ok(call(s.who, s.node, 'DEL', 'ctr1', s.pod, conf));
      expect(d.stdout).toBe('');
      await ok(call(s.who, s.node, 'DEL', 'ctr1', s.pod, conf));
      after.push(norm(await snapshot({ node: s.node, pods: [s.pod], stores: [s.dataDir] }), [s.pod]));
    }
    expect(after[1]).toEqual(after[0]);
    expect(after[0]!.nat4).toEqual([]);
    expect(after[0]!.ips).toEqual([]);
  });
});

describe('options side by side (1.0.0)', () => {
  const cases: [string, Conf, Conf][] = [
    ['isDefaultGateway dual stack, mtu, promisc', { isDefaultGateway: true, mtu: 1400, promiscMode: true, hairpinMode: false }, { subnet: undefined, routes: [], ranges: [[{ subnet: '10.91.0.0/24' }], [{ subnet: 'fd00:91::/64' }]] }],
    ['L2 (ipam {})', { isGateway: false, ipMasq: false }, {}],
    ['no gateway, no masquerade', { isGateway: false, ipMasq: false }, { subnet: '10.92.0.0/24' }],
    ['MAC from CNI_ARGS', {}, { subnet: '10.93.0.0/24' }],
  ];
  test.each(cases)('%s', async (label, extra, ipam) => {
    const outs: CniOutcome[] = [];
    const states: ReturnType<typeof norm>[] = [];
    for (const who of ['ref', 'ours'] as const) {
      const node = bed.netns(`${who}n`);
      const pod = bed.netns(`${who}p`);
      const dataDir = bed.dir(`${who}s`);
      const conf = baseConf('1.0.0', dataDir, extra, ipam);
      if (label.startsWith('L2')) conf.ipam = {};
      const env = label.startsWith('MAC') ? { CNI_ARGS: 'IgnoreUnknown=1;MAC=c2:11:22:33:44:55' } : {};
      const r = await ok(call(who, node, 'ADD', 'o1', pod, conf, 'eth0', env));
      outs.push({ ...r, json: podless(r.json, pod) });
      if (label.startsWith('MAC')) expect(r.json.interfaces[2].mac).toBe('c2:11:22:33:44:55');
      const s = norm(await snapshot({ node, pods: [pod], stores: [dataDir] }), [pod]);
      // IPv6 addresses on the bridge may still be tentative in one and not the other: compare the list only.
      states.push(s);
      await ok(call(who, node, 'DEL', 'o1', pod, conf, 'eth0', env));
    }
    expect(normalizeResult(outs[1]!.json)).toEqual(expectedFromRef(outs[0]!.json));
    expect(states[1]).toEqual(states[0]);
  });

  const errors: [string, Conf, Record<string, string | undefined>][] = [
    ['hairpin + promisc', { promiscMode: true, hairpinMode: true }, {}],
    ['bridge name of a non-bridge', { bridge: 'lo' }, {}],
    ['unknown CNI_ARGS', {}, { CNI_ARGS: 'FOO=bar' }],
  ];
  test.each(errors)('error: %s — same message, cniVersion added', async (_label, extra, env) => {
    const outs: CniOutcome[] = [];
    for (const who of ['ref', 'ours'] as const) {
      const node = bed.netns(`${who}n`);
      const pod = bed.netns(`${who}p`);
      outs.push(await call(who, node, 'ADD', 'e1', pod, baseConf('1.0.0', bed.dir('s'), extra), 'eth0', env));
    }
    const [ref, ours] = outs as [CniOutcome, CniOutcome];
    expect(ref.code).toBe(1);
    expect(ours.code).toBe(1);
    expect(ours.json.cniVersion).toBe('1.0.0');
    expect(ours.json.msg).toBe(ref.json.msg);
  });
});

test('error: missing netns — same path and cause; ours uses code 8 (invalid netns) where the reference uses 999', async () => {
  const outs: CniOutcome[] = [];
  for (const who of ['ref', 'ours'] as const) {
    outs.push(await call(who, bed.netns(`${who}n`), 'ADD', 'e1', '/run/netns/kn-does-not-exist', baseConf('1.0.0', bed.dir('s'))));
  }
  const [ref, ours] = outs as [CniOutcome, CniOutcome];
  expect(ref.json).toEqual({ code: 999, msg: 'failed to open netns "/run/netns/kn-does-not-exist": failed to Statfs "/run/netns/kn-does-not-exist": no such file or directory' });
  expect(ours.json.msg).toMatch(/^failed to open netns "\/run\/netns\/kn-does-not-exist": .*no such file or directory$/);
  expect(ours.json.code).toBe(8);
});

describe('one host-local store shared by the reference bridge and ours', () => {
  test('alternate ADDs get distinct IPs and each DELs the other’s attachments', async () => {
    const node = bed.netns('node');
    const dataDir = bed.dir('shared');
    const conf = baseConf('1.0.0', dataDir, { ipMasq: false });
    const pods = [bed.netns('p'), bed.netns('p'), bed.netns('p'), bed.netns('p')];
    const adder: Who[] = ['ref', 'ours', 'ref', 'ours'];
    const ips: string[] = [];
    for (const [k, pod] of pods.entries()) {
      const r = await ok(call(adder[k]!, node, 'ADD', `c${k}`, pod, conf));
      ips.push(r.json.ips[0].address);
    }
    expect(new Set(ips).size).toBe(4);
    expect(ips).toEqual(['10.90.0.2/24', '10.90.0.3/24', '10.90.0.4/24', '10.90.0.5/24']);
    expect(await ping(pods[0]!, '10.90.0.3')).toBe(true);
    expect(await ping(pods[1]!, '10.90.0.4')).toBe(true);
    for (const [k, pod] of pods.entries()) {
      const deleter: Who = adder[k] === 'ref' ? 'ours' : 'ref';
      await ok(call(deleter, node, 'DEL', `c${k}`, pod, conf));
    }
    const s = await snapshot({ node, pods, stores: [dataDir] });
    expect(storeIps(s)).toEqual([]);
    expect(s.node.links.filter((l) => l.kind === 'veth')).toEqual([]);
    for (const p of pods) expect(s.pods[p]!.links.map((l) => l.name)).toEqual(['lo']);
  });

  test('our DEL removes the masquerade state of a reference ADD', async () => {
    const node = bed.netns('node');
    const pod = bed.netns('p');
    const dataDir = bed.dir('shared');
    const conf = baseConf('1.0.0', dataDir);
    const r = await ok(call('ref', node, 'ADD', 'm1', pod, conf));
    const mid = await snapshot({ node, stores: [dataDir] });
    expect(mid.node.nat.ip).toHaveLength(3);
    await ok(call('ours', node, 'DEL', 'm1', pod, { ...conf, prevResult: r.json }));
    const s = await snapshot({ node, pods: [pod], stores: [dataDir] });
    expect(s.node.nat.ip).toEqual([]);
    expect(s.node.nat.chains).toEqual([]);
    expect(storeIps(s)).toEqual([]);
  });
});
