import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeIptables } from '../../lib/netfilter/iptables.ts';
import { fromSave, parseTraceArgs, runTrace } from './trace.ts';

const MANIFESTS = `
apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec:
  type: NodePort
  clusterIP: 172.30.0.10
  clusterIPs: [172.30.0.10]
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: 8080, protocol: TCP, nodePort: 30080 }]
---
apiVersion: v1
kind: Pod
metadata: { name: web-1, namespace: default, labels: { app: web } }
spec: { nodeName: node-a, containers: [{ name: c, image: x }] }
status: { podIP: 10.244.1.5, podIPs: [{ ip: 10.244.1.5 }], conditions: [{ type: Ready, status: "True" }] }
---
apiVersion: v1
kind: Pod
metadata: { name: web-2, namespace: default, labels: { app: web } }
spec: { nodeName: node-b, containers: [{ name: c, image: x }] }
status: { podIP: 10.244.2.5, podIPs: [{ ip: 10.244.2.5 }], conditions: [{ type: Ready, status: "True" }] }
`;

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function manifests(): string {
  dir = mkdtempSync(join(tmpdir(), 'kp-trace-'));
  writeFileSync(join(dir, 'web.yaml'), MANIFESTS);
  return dir;
}

describe('kube-proxy trace', () => {
  it('traces a ClusterIP packet from a pod to both endpoints with their probabilities', async () => {
    const m = manifests();
    const a = await parseTraceArgs(['--manifests', m, '--hostname-override=node-a', '--cluster-cidr=10.244.0.0/16', '--src', '10.244.1.9', '--dst', '172.30.0.10', '--port', '80', '--node-ip', '192.0.2.1']);
    const out = await runTrace(a, { iptables: new FakeIptables(), warn: () => {} });
    expect(out.result.output).toBe('10.244.1.5:8080, 10.244.2.5:8080');
    expect(out.result.verdicts.map((v) => v.probability)).toEqual([0.5, 0.5]);
    expect(out.result.masquerade).toBe(false);
    expect(out.text).toContain('nat/KUBE-SERVICES');
    expect(out.text).toContain('verdict: DNAT to 10.244.1.5:8080 with probability 0.5000');
  });

  it('shows masquerade for a NodePort packet from outside and REJECT for a port without a service', async () => {
    const m = manifests();
    const base = ['--manifests', m, '--hostname-override=node-a', '--cluster-cidr=10.244.0.0/16', '--node-ip', '192.0.2.1'];
    const np = await runTrace(await parseTraceArgs([...base, '--src', '198.51.100.7', '--dst', '192.0.2.1', '--port', '30080']), { iptables: new FakeIptables(), warn: () => {} });
    expect(np.result.output).toBe('10.244.1.5:8080, 10.244.2.5:8080');
    expect(np.result.masquerade).toBe(true);
    const json = await runTrace(await parseTraceArgs([...base, '--src', '10.244.1.9', '--dst', '172.30.0.10', '--port', '81', '--json']), { iptables: new FakeIptables(), warn: () => {} });
    expect(JSON.parse(json.text).output).toBe('');
  });

  it('traces the nftables table with --proxy-mode nftables', async () => {
    const m = manifests();
    const base = ['--proxy-mode=nftables', '--manifests', m, '--hostname-override=node-a', '--cluster-cidr=10.244.0.0/16', '--node-ip', '192.0.2.1'];
    const c = await runTrace(await parseTraceArgs([...base, '--src', '10.244.1.9', '--dst', '172.30.0.10', '--port', '80']), { iptables: new FakeIptables(), warn: () => {} });
    expect(c.result.output).toBe('10.244.1.5:8080, 10.244.2.5:8080');
    expect(c.result.verdicts.map((v) => v.probability)).toEqual([0.5, 0.5]);
    const np = await runTrace(await parseTraceArgs([...base, '--src', '198.51.100.7', '--dst', '192.0.2.1', '--port', '30080']), { iptables: new FakeIptables(), warn: () => {} });
    expect(np.result.output).toBe('10.244.1.5:8080, 10.244.2.5:8080');
    expect(np.result.masquerade).toBe(true);
    await expect(parseTraceArgs([...base, '--from-kernel', '--src', '10.0.0.1', '--dst', '10.0.0.2', '--port', '80'])).rejects.toThrow(/only for --proxy-mode iptables/);
  });

  it('traces the IPVS mode: the virtual server, the real-server choice, masquerade, and REJECT for a port of a service IP without a service', async () => {
    const m = manifests();
    const base = ['--proxy-mode=ipvs', '--manifests', m, '--hostname-override=node-a', '--cluster-cidr=10.244.0.0/16', '--node-ip', '192.0.2.1'];
    const c = await runTrace(await parseTraceArgs([...base, '--src', '10.244.1.9', '--dst', '172.30.0.10', '--port', '80']), { iptables: new FakeIptables(), warn: () => {} });
    expect(c.ipvs?.virtualServer).toBe('TCP 172.30.0.10:80 rr');
    expect(c.result.output).toBe('10.244.1.5:8080, 10.244.2.5:8080');
    expect(c.result.verdicts.map((v) => v.probability)).toEqual([0.5, 0.5]);
    expect(c.result.masquerade).toBe(false);
    expect(c.text).toContain('ipvs: virtual server TCP 172.30.0.10:80 rr');
    expect(c.text).toContain('verdict: real server 10.244.1.5:8080 with probability 0.5000');
    const np = await runTrace(await parseTraceArgs([...base, '--src', '198.51.100.7', '--dst', '192.0.2.1', '--port', '30080']), { iptables: new FakeIptables(), warn: () => {} });
    expect(np.ipvs?.virtualServer).toBe('TCP 192.0.2.1:30080 rr');
    expect(np.result.masquerade).toBe(true);
    const other = await runTrace(await parseTraceArgs([...base, '--src', '10.244.1.9', '--dst', '172.30.0.10', '--port', '22']), { iptables: new FakeIptables(), warn: () => {} });
    expect(other.result.output).toBe('REJECT');
    expect(other.ipvs?.filtered).toEqual({ target: 'REJECT', chain: 'KUBE-IPVS-FILTER' });
    const aff = await runTrace(await parseTraceArgs([...base, '--ipvs-scheduler=sh', '--src', '10.244.1.9', '--dst', '172.30.0.10', '--port', '80']), { iptables: new FakeIptables(), warn: () => {} });
    expect(aff.ipvs?.virtualServer).toBe('TCP 172.30.0.10:80 sh');
  });

  it('traces the rules in the kernel with --from-kernel', async () => {
    const ipt = new FakeIptables();
    await ipt.restore('ip', '*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -j KUBE-SERVICES\n-A KUBE-SERVICES -d 172.30.0.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.244.1.1:80\nCOMMIT\n', { noflush: true });
    const a = await parseTraceArgs(['--from-kernel', '--src', '10.244.1.9', '--dst', '172.30.0.1', '--port', '80', '--node-ip', '192.0.2.1']);
    expect((await runTrace(a, { iptables: ipt, warn: () => {} })).result.output).toBe('10.244.1.1:80');
  });

  it('reads iptables-save output back in kube-proxy\'s own forms', () => {
    expect(fromSave('-A KUBE-SERVICES -d 172.30.0.13/32 -j REJECT --reject-with icmp-port-unreachable\n-A X -j REJECT --reject-with icmp6-port-unreachable\n')).toBe(
      '-A KUBE-SERVICES -d 172.30.0.13/32 -j REJECT\n-A X -j REJECT\n',
    );
    expect(fromSave('-A X -j REJECT --reject-with tcp-reset\n')).toBe('-A X -j REJECT --reject-with tcp-reset\n');
  });

  it.each([
    [['--src', '10.0.0.1', '--dst', '10.0.0.2', '--port', '80'], /needs --manifests/],
    [['--manifests', '/m', '--src', 'x', '--dst', '10.0.0.2', '--port', '80'], /invalid IP address "x"/],
    [['--manifests', '/m', '--src', '10.0.0.1', '--dst', '10.0.0.2', '--port', '70000'], /invalid port/],
    [['--manifests', '/m', '--dst', '10.0.0.2', '--port', '80'], /--src/],
    [['--manifests', '/m', '--src', '10.0.0.1', '--dst', '10.0.0.2', '--port', '80', '--protocol', 'icmp'], /icmp/],
  ])('rejects %j', async (argv, msg) => {
    await expect(parseTraceArgs(argv)).rejects.toThrow(msg);
  });
});
