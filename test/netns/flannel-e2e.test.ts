// flanneld end to end: three node namespaces on one underlay, a real etcd,
// flanneld running as a child process in each node, pods attached by the
// flannel CNI plugin. Per backend: pod-to-pod ping and TCP across nodes;
// node leaving; lease deleted while a daemon is down; zero-loss restart
// (vxlan, host-gw); subnet.env content; /readyz.
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, removeFlanneldBundle } from '../harness/cluster.ts';
import type { Node, Pod } from '../harness/cluster.ts';

const NETWORK = '10.244.0.0/16';

afterAll(() => removeFlanneldBundle());

async function peers(c: Cluster, n: Node): Promise<number | undefined> {
  const m = /^flannel_peers (\d+)$/m.exec((await c.probe(n, '/metrics'))?.body ?? '');
  return m ? Number(m[1]) : undefined;
}

async function routesTo(n: Node, subnet: string): Promise<number> {
  const routes = await n.handle.routeList({ family: 4 });
  return routes.filter((r) => String(r.dst) === subnet).length;
}

const leaseSubnet = (envSubnet: string): string => {
  // 10.244.7.1/24 -> 10.244.7.0/24
  const [ip, len] = envSubnet.split('/') as [string, string];
  const o = ip.split('.').map(Number);
  o[3] = 0;
  return `${o.join('.')}/${len}`;
};

describe('flanneld e2e: readiness', () => {
  let c: Cluster | undefined;
  afterAll(async () => {
    await c?.destroy();
  }, 60_000);

  it('serves /healthz at once and /readyz 503 until the network config exists, then 200', async () => {
    c = await Cluster.create({ nodes: 1, netConf: { Network: NETWORK, Backend: { Type: 'host-gw' } }, etcdPrefix: '/kn/test' });
    const n = c.node(1);
    await c.startFlanneld(n, ['--etcd-prefix=/kn/missing']);
    await c.until('/healthz', async () => (await c!.probe(n, '/healthz'))?.status === 200);
    const r = await c.probe(n, '/readyz');
    expect(r?.status).toBe(503);
    expect(existsSync(n.subnetFile)).toBe(false);
    await c.client.put('/kn/missing/config').value(JSON.stringify({ Network: NETWORK, Backend: { Type: 'host-gw' } }));
    await c.waitReady(n);
    expect(c.subnetOf(n)).toMatch(/^10\.244\.\d+\.1\/24$/);
    expect(await c.client.getAll().prefix('/kn/missing/subnets/').keys()).toHaveLength(1);
  });
});

for (const backend of ['vxlan', 'host-gw', 'udp'] as const) {
  describe(`flanneld e2e: ${backend}`, () => {
    let c: Cluster;
    const pods: Pod[] = [];
    const mtu = backend === 'vxlan' ? 1450 : backend === 'udp' ? 1472 : 1500;

    beforeAll(async () => {
      c = await Cluster.create({ nodes: 3, netConf: { Network: NETWORK, Backend: { Type: backend } } });
      for (const n of c.nodes) await c.startFlanneld(n, ['--ip-masq']);
      for (const n of c.nodes) await c.waitReady(n);
      for (const n of c.nodes) pods.push(await c.addPod(n, 'p1'));
    }, 120_000);

    afterAll(async () => {
      await c?.destroy();
    }, 60_000);

    it('writes subnet.env exactly as upstream and reports ready', async () => {
      for (const n of c.nodes) {
        const text = readFileSync(n.subnetFile, 'utf8');
        const subnet = c.subnetOf(n);
        expect(subnet).toMatch(/^10\.244\.\d+\.1\/24$/);
        expect(text).toBe(`FLANNEL_NETWORK=${NETWORK}\nFLANNEL_SUBNET=${subnet}\nFLANNEL_MTU=${mtu}\nFLANNEL_IPMASQ=true\n`);
        expect(await c.probe(n, '/healthz')).toEqual({ status: 200, body: 'flanneld is running' });
        expect((await c.probe(n, '/metrics'))?.body).toContain('flannel_peers');
      }
      // Three distinct leases in etcd, keyed like upstream.
      const keys = await c.leaseKeys();
      expect(keys.sort()).toEqual(c.nodes.map((n) => `/coreos.com/network/subnets/${leaseSubnet(c.subnetOf(n)).replace('/', '-')}`).sort());
    });

    it('pods ping each other across nodes', async () => {
      for (const a of pods) {
        for (const b of pods) {
          if (a === b) continue;
          await c.until(`${a.name}@${a.node.name} -> ${b.ip}`, () => c.ping(a, b.ip, ['-c', '1', '-W', '1']).received === 1, 20_000);
          const r = c.ping(a, b.ip);
          expect(r.received, r.out).toBe(3);
        }
      }
    });

    it('pods talk TCP across nodes', async () => {
      expect(await c.tcpEcho(pods[0]!, pods[1]!)).toBe(`hello from ${pods[0]!.name}`);
      expect(await c.tcpEcho(pods[2]!, pods[0]!, 8081)).toBe(`hello from ${pods[2]!.name}`);
    });

    if (backend !== 'udp') {
      it('restarting flanneld loses no packet', async () => {
        const n2 = c.node(2);
        const ping = c.pingLong(pods[0]!, pods[1]!.ip, 0.05);
        await new Promise((r) => setTimeout(r, 500));
        expect(await n2.daemon!.stop()).toBe(0);
        await c.startFlanneld(n2, ['--ip-masq']);
        await c.waitReady(n2);
        await new Promise((r) => setTimeout(r, 500));
        const r = await ping.stop();
        expect(r.sent).toBeGreaterThan(10);
        expect(r.received, r.out.slice(-500)).toBe(r.sent);
      });
    }

    it('a node leaving is removed on the running nodes, and on a node that was down, after its restart', async () => {
      const [n1, , n3] = c.nodes as [Node, Node, Node];
      const s3 = leaseSubnet(c.subnetOf(n3));
      // udp keeps its per-peer routes in the proxy, not in the kernel: the peer count tells.
      const kernelRoutes = backend !== 'udp';
      if (kernelRoutes) await c.until(`${n1.name} has a route to ${s3}`, async () => (await routesTo(n1, s3)) > 0);
      await c.until(`${n1.name} programs 2 peers`, async () => (await peers(c, n1)) === 2);
      // n3 leaves for good (its daemon would put its lease back otherwise); n1 is down meanwhile.
      await n3.daemon!.stop();
      await n1.daemon!.stop();
      await c.client.delete().key(`/coreos.com/network/subnets/${s3.replace('/', '-')}`);
      await c.startFlanneld(n1, ['--ip-masq']);
      await c.waitReady(n1);
      await c.until(`${n1.name} programs 1 peer`, async () => (await peers(c, n1)) === 1);
      await c.until(`${c.node(2).name} programs 1 peer`, async () => (await peers(c, c.node(2))) === 1);
      if (kernelRoutes) {
        expect(await routesTo(n1, s3)).toBe(0);
        // The running node saw the delete as it happened.
        expect(await routesTo(c.node(2), s3)).toBe(0);
      }
      if (backend === 'vxlan') {
        const neigh = await n1.handle.neighList({ family: 4 });
        expect(neigh.filter((x) => String(x.ip) === s3.split('/')[0])).toEqual([]);
        const fdb = await n1.handle.neighList({ family: 'bridge' });
        expect(fdb.filter((x) => String(x.ip) === c.node(3).ip)).toEqual([]);
      }
      // The remaining pods still talk.
      expect(c.ping(pods[0]!, pods[1]!.ip).received).toBe(3);
    });
  });
}

describe('flanneld e2e: kube subnet manager (API fixture), host-gw', () => {
  let c: Cluster;
  const pods: Pod[] = [];

  beforeAll(async () => {
    c = await Cluster.create({ nodes: 3, kube: true, netConf: { Network: NETWORK, Backend: { Type: 'host-gw' } } });
    for (const n of c.nodes) await c.startFlanneld(n);
    for (const n of c.nodes) await c.waitReady(n);
    for (const n of c.nodes) pods.push(await c.addPod(n, 'p1'));
  }, 120_000);

  afterAll(async () => {
    await c?.destroy();
  }, 60_000);

  it('uses each node\'s podCIDR, publishes the annotations and clears NetworkUnavailable', async () => {
    for (const n of c.nodes) {
      expect(c.subnetOf(n)).toBe(`10.244.${n.index}.1/24`);
      const node = c.api!.get('nodes', n.name)!;
      const a = node.metadata.annotations ?? {};
      expect(a['flannel.alpha.coreos.com/kube-subnet-manager']).toBe('true');
      expect(a['flannel.alpha.coreos.com/backend-type']).toBe('host-gw');
      expect(a['flannel.alpha.coreos.com/public-ip']).toBe(n.ip);
      await c.until(`${n.name} NetworkUnavailable=False`, () => {
        const conds = ((c.api!.get('nodes', n.name)!['status'] as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? []);
        return conds.some((x) => x.type === 'NetworkUnavailable' && x.status === 'False');
      });
    }
  });

  it('pods ping and talk TCP across nodes', async () => {
    for (const [a, b] of [[0, 1], [1, 2], [2, 0]] as const) {
      await c.until(`${pods[a]!.ip} -> ${pods[b]!.ip}`, () => c.ping(pods[a]!, pods[b]!.ip, ['-c', '1', '-W', '1']).received === 1, 20_000);
    }
    expect(await c.tcpEcho(pods[0]!, pods[2]!)).toBe(`hello from ${pods[0]!.name}`);
  });

  it('a deleted Node disappears from the other nodes\' routes', async () => {
    const s3 = '10.244.3.0/24';
    await c.until('routes to n3', async () => (await routesTo(c.node(1), s3)) === 1 && (await routesTo(c.node(2), s3)) === 1);
    await c.node(3).daemon!.stop();
    c.api!.remove('nodes', 'n3');
    await c.until('n1 and n2 drop the route to n3', async () => (await routesTo(c.node(1), s3)) === 0 && (await routesTo(c.node(2), s3)) === 0);
    expect(await peers(c, c.node(1))).toBe(1);
    expect(c.ping(pods[0]!, pods[1]!.ip).received).toBe(3);
  });
});
