// Partial syncs (KEP-3453), ported from upstream's TestSyncProxyRulesRepeated:
// after each change the exact restore input (after upstream's sort), applied
// to an in-memory kernel model with --noflush semantics; the state partial
// syncs leave must equal the state of a full sync from scratch.
import { readFileSync } from 'node:fs';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { makeService, makeSlice, tcp, World } from '../testing/fixtures.ts';
import { RestoreError, RulesetModel } from '../trace/kernel.ts';
import { sortRestore } from '../trace/parse.ts';
import { upstreamFakeProxier } from '../testing/upstream.ts';
import { IPTablesRenderer, renderIPTables, type IPTablesOptions, type RenderResult } from './iptables.ts';
import { checkRuleJumps } from './check.ts';

const golden = (f: string): string => readFileSync(new URL(`./testdata/repeated/${f}`, import.meta.url), 'utf8');

// That test predates the nfacct counters.
const options: IPTablesOptions = { ...upstreamFakeProxier, nfacct: false };

class Proxier {
  readonly world = new World(4, 'test-node');
  readonly kernel = new RulesetModel();
  readonly renderer = new IPTablesRenderer();
  needFullSync = true;

  /** One syncProxyRules: fold changes, render (partial unless a full sync is due), apply. */
  sync(opts: IPTablesOptions = options): RenderResult {
    const updated = this.world.sync();
    const r = this.renderer.render(
      {
        services: this.world.services.map,
        endpoints: this.world.endpoints.map,
        updatedServices: this.needFullSync ? undefined : updated,
        existingNatChains: new Set(this.kernel.chains('nat')),
      },
      opts,
    );
    try {
      this.kernel.apply(r.text);
      this.needFullSync = false;
    } catch (e) {
      // As upstream: a failed restore loses the state a partial sync relies on.
      this.needFullSync = true;
      throw e;
    }
    return r;
  }
}

const svc = (ns: string, name: string, ip: string, portName: string, port: number): V1Service =>
  makeService(ns, name, { clusterIP: ip, ports: [{ name: portName, port, protocol: 'TCP' }] });
const slice = (ns: string, name: string, ips: string[], portName: string, port: number): V1EndpointSlice =>
  makeSlice(ns, name, 1, ips.map((ip) => ({ addresses: [ip] })), [tcp(portName, port)]);

describe('TestSyncProxyRulesRepeated (partial syncs)', () => {
  it('writes only the changed services’ chains, deletes stale ones, and converges like a full sync', () => {
    const p = new Proxier();
    const svc2 = svc('ns2', 'svc2', '172.30.0.42', 'p8080', 8080);
    p.world.add(svc('ns1', 'svc1', '172.30.0.41', 'p80', 80), svc2);
    p.world.add(slice('ns1', 'svc1', ['10.0.1.1'], 'p80', 80), slice('ns2', 'svc2', ['10.0.2.1'], 'p8080', 8080));
    let r = p.sync();
    expect(sortRestore(r.text)).toBe(golden('1-initial.golden'));
    expect(checkRuleJumps(golden('1-initial.golden'))).toEqual([]);

    // Add a service and its endpoints: only its SVC and SEP chains are written.
    const eps3 = slice('ns3', 'svc3', ['10.0.3.1'], 'p80', 80);
    p.world.add(svc('ns3', 'svc3', '172.30.0.43', 'p80', 80), eps3);
    r = p.sync();
    expect(sortRestore(r.text)).toBe(golden('2-add-svc3.golden'));

    // Delete a service: its chains are flushed and deleted, the others untouched.
    p.world.serviceChanges.update(svc2, undefined);
    r = p.sync();
    expect(sortRestore(r.text)).toBe(golden('3-delete-svc2.golden'));
    expect(r.deletedChains).toEqual(['KUBE-SEP-UHEGFW77JX3KXTOV', 'KUBE-SVC-2VJB64SDSIJUP5T6']);

    // A service without endpoints only gets its REJECT rule...
    const svc4 = svc('ns4', 'svc4', '172.30.0.44', 'p80', 80);
    p.world.add(svc4);
    r = p.sync();
    expect(sortRestore(r.text)).toBe(golden('4-add-svc4-no-endpoints.golden'));
    // ...and its chains once the endpoints arrive.
    p.world.add(slice('ns4', 'svc4', ['10.0.4.1'], 'p80', 80));
    r = p.sync();
    expect(sortRestore(r.text)).toBe(golden('5-add-svc4-endpoints.golden'));

    // Change an endpoint: SVC rewritten, new SEP, old SEP deleted.
    const eps3b = slice('ns3', 'svc3', ['10.0.3.2'], 'p80', 80);
    p.world.endpointChanges.endpointSliceUpdate(eps3b, false);
    r = p.sync();
    expect(sortRestore(r.text)).toBe(golden('6-change-endpoint.golden'));

    // Add an endpoint.
    p.world.endpointChanges.endpointSliceUpdate(slice('ns3', 'svc3', ['10.0.3.2', '10.0.3.3'], 'p80', 80), false);
    r = p.sync();
    expect(sortRestore(r.text)).toBe(golden('7-add-endpoint.golden'));

    // No changes: no service chain is rewritten.
    r = p.sync();
    expect(sortRestore(r.text)).toBe(golden('8-no-changes.golden'));
    expect(r.natRulesTotal).toBeGreaterThan(r.natRulesWritten);

    // A dangling jump a partial sync cannot see makes it fail (upstream's "absurd scenario");
    // the full sync that follows rewrites everything and succeeds.
    const bad = '*nat\n:KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]\n' + kernelRules(p.kernel, 'KUBE-SVC-X27LE4BHSL4DOUIK') + '-A KUBE-SVC-X27LE4BHSL4DOUIK -j KUBE-SEP-AYCN5HPXMIRJNJXU\nCOMMIT\n';
    p.kernel.apply(bad);
    p.world.serviceChanges.update(svc4, undefined);
    expect(() => p.sync()).toThrow(RestoreError);
    expect(p.kernel.chains('nat')).toContain('KUBE-SEP-AYCN5HPXMIRJNJXU');
    r = p.sync();
    expect(sortRestore(r.text)).toBe(golden('9-full-after-delete-svc4.golden'));

    // The kernel state after all those partial syncs equals one full sync of the final state.
    const fresh = new RulesetModel();
    fresh.apply(renderIPTables({ services: p.world.services.map, endpoints: p.world.endpoints.map }, options).text);
    expect(p.kernel.save()).toBe(fresh.save());
  });

  it('declares no chain of an unchanged service (declaring would flush it)', () => {
    const p = new Proxier();
    p.world.add(svc('ns1', 'svc1', '172.30.0.41', 'p80', 80), slice('ns1', 'svc1', ['10.0.1.1'], 'p80', 80));
    p.sync();
    p.world.add(svc('ns2', 'svc2', '172.30.0.42', 'p80', 80));
    const r = p.sync();
    expect(r.text).not.toContain('KUBE-SVC-XPGD46QRK7WJZT7O -');
    expect(r.activeNatChains.has('KUBE-SVC-XPGD46QRK7WJZT7O')).toBe(true);
    expect(p.kernel.chains('nat')).toContain('KUBE-SVC-XPGD46QRK7WJZT7O');
  });
});

describe('partial syncs under changed options', () => {
  it('become full syncs, since unchanged services were rendered under the old options', () => {
    const p = new Proxier();
    p.world.add(svc('ns1', 'svc1', '172.30.0.41', 'p80', 80), slice('ns1', 'svc1', ['10.0.1.1'], 'p80', 80));
    p.sync();
    expect(p.sync().fullSync).toBe(false);
    const r = p.sync({ ...options, masqueradeAll: true });
    expect(r.fullSync).toBe(true);
    expect(r.text).toContain('-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ');
  });
});

function kernelRules(kernel: RulesetModel, chain: string): string {
  const nat = kernel.snapshot().find((t) => t.name === 'nat');
  return (nat?.chains.find((c) => c.name === chain)?.rules ?? []).map((r) => `${r.raw}\n`).join('');
}

describe('the renderer’s memory', () => {
  it('a full sync after partial ones writes exactly what a fresh renderer writes (cached chain text is dropped once written)', () => {
    const p = new Proxier();
    p.world.add(svc('ns1', 'svc1', '172.30.0.41', 'p80', 80), slice('ns1', 'svc1', ['10.0.1.1', '10.0.1.2'], 'p80', 80));
    p.world.add(svc('ns2', 'svc2', '172.30.0.42', 'p80', 80), slice('ns2', 'svc2', ['10.0.2.1'], 'p80', 80));
    p.sync();
    // A partial sync that changes svc2 only, then one that changes nothing.
    p.world.add(slice('ns2', 'svc2', ['10.0.2.1', '10.0.2.2'], 'p80', 80));
    expect(p.sync().text.match(/^:KUBE-SEP-/gm)).toHaveLength(2);
    expect(p.sync().text).not.toContain(':KUBE-SEP-');
    p.needFullSync = true;
    const again = p.sync();
    const fresh = new IPTablesRenderer().render({ services: p.world.services.map, endpoints: p.world.endpoints.map }, options);
    expect(again.text).toBe(fresh.text);
    expect(again.text.match(/^:KUBE-SEP-/gm)).toHaveLength(4);
    expect([...again.writtenChains].sort()).toEqual([...fresh.writtenChains].sort());
  });
});
