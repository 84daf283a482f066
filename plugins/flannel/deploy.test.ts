// The Kubernetes manifests in deploy/ (owned with the flannel plugin): they
// parse, carry upstream kube-flannel.yml's names, RBAC, config keys, flags,
// probes and host paths (install-cni.sh itself: test/install-cni.unit.test.ts).
import { describe, expect, test } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { buildDelegate, parseFlannelConf, renderDelegate } from './delegate.ts';
import { parseFlannelSubnetEnv } from './subnet-env.ts';

const DEPLOY = resolve(import.meta.dirname, '../../deploy');

type Obj = Record<string, any>;

function loadAll(): Obj[] {
  const files = readdirSync(DEPLOY).filter((f) => /\.ya?ml$/.test(f));
  expect(files.length).toBeGreaterThan(0);
  const docs: Obj[] = [];
  for (const f of files) {
    for (const doc of parseAllDocuments(readFileSync(join(DEPLOY, f), 'utf8'))) {
      expect(doc.errors, `${f}: ${doc.errors.map((e) => e.message).join('; ')}`).toEqual([]);
      const v = doc.toJS() as Obj | null;
      if (v === null) continue;
      expect(typeof v.apiVersion, f).toBe('string');
      expect(typeof v.kind, f).toBe('string');
      expect(typeof v.metadata?.name, f).toBe('string');
      docs.push(v);
    }
  }
  return docs;
}

function find(docs: Obj[], kind: string, name: string): Obj {
  const d = docs.find((x) => x.kind === kind && x.metadata.name === name);
  expect(d, `${kind}/${name}`).toBeDefined();
  return d!;
}

describe('deploy/kube-flannel.yml', () => {
  const docs = loadAll();

  test('namespace, service account and RBAC as upstream', () => {
    expect(find(docs, 'Namespace', 'kube-flannel').metadata.labels['pod-security.kubernetes.io/enforce']).toBe('privileged');
    expect(find(docs, 'ServiceAccount', 'flannel').metadata.namespace).toBe('kube-flannel');
    const rules = find(docs, 'ClusterRole', 'flannel').rules as Obj[];
    const verbs = (res: string): string[] => rules.filter((r) => r.resources.includes(res)).flatMap((r) => r.verbs as string[]).sort();
    expect(verbs('pods')).toEqual(['get']);
    expect(verbs('nodes')).toEqual(['get', 'list', 'watch']);
    expect(verbs('nodes/status')).toEqual(['patch']);
    const binding = find(docs, 'ClusterRoleBinding', 'flannel');
    expect(binding.roleRef).toMatchObject({ kind: 'ClusterRole', name: 'flannel' });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'flannel', namespace: 'kube-flannel' }]);
  });

  test("ConfigMap: upstream conflist, which our plugin turns into upstream's delegate", () => {
    const cm = find(docs, 'ConfigMap', 'kube-flannel-cfg');
    expect(cm.metadata.namespace).toBe('kube-flannel');
    const list = JSON.parse(cm.data['cni-conf.json'] as string) as Obj;
    expect(list).toEqual({
      name: 'cbr0',
      cniVersion: '0.3.1',
      plugins: [
        { type: 'flannel', delegate: { hairpinMode: true, isDefaultGateway: true } },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    });
    // what the runtime passes to the flannel plugin: the plugin object plus name and cniVersion
    const conf = parseFlannelConf({ ...list.plugins[0], name: list.name, cniVersion: list.cniVersion });
    const env = parseFlannelSubnetEnv('subnet.env', 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    expect(renderDelegate(buildDelegate(conf, env)).toString()).toBe(
      '{"cniVersion":"0.3.1","hairpinMode":true,"ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"10.244.0.0/16"}],"type":"host-local"},"isDefaultGateway":true,"isGateway":true,"mtu":1450,"name":"cbr0","type":"bridge"}',
    );
    expect(JSON.parse(cm.data['net-conf.json'] as string)).toEqual({ Network: '10.244.0.0/16', EnableNFTables: false, Backend: { Type: 'vxlan' } });
  });

  test('DaemonSet: install containers, flanneld flags, probes, capabilities, volumes', () => {
    const ds = find(docs, 'DaemonSet', 'kube-flannel-ds');
    expect(ds.apiVersion).toBe('apps/v1');
    expect(ds.metadata.namespace).toBe('kube-flannel');
    const tpl = ds.spec.template;
    for (const [k, v] of Object.entries(ds.spec.selector.matchLabels as Obj)) expect(tpl.metadata.labels[k]).toBe(v);
    const spec = tpl.spec as Obj;
    expect(spec).toMatchObject({ hostNetwork: true, priorityClassName: 'system-node-critical', serviceAccountName: 'flannel' });
    expect(spec.tolerations).toContainEqual({ operator: 'Exists', effect: 'NoSchedule' });

    const init = spec.initContainers as Obj[];
    const plugins = init.find((c) => c.name === 'install-cni-plugin')!;
    expect(plugins.command).toEqual(['/opt/kube-netstack/install-cni.sh', 'plugins']);
    expect((plugins.env as Obj[]).find((e) => e.name === 'PLUGINS')!.value.split(' ').sort()).toEqual(['bridge', 'flannel', 'host-local', 'loopback']);
    const conf = init.find((c) => c.name === 'install-cni')!;
    expect(conf.command).toEqual(['/opt/kube-netstack/install-cni.sh', 'conf']);
    expect((conf.env as Obj[]).find((e) => e.name === 'CNI_CONF_NAME')!.value).toBe('10-flannel.conflist');

    const main = (spec.containers as Obj[]).find((c) => c.name === 'kube-flannel')!;
    expect(main.command).toEqual(['/opt/kube-netstack/bin/flanneld']);
    expect(main.args).toEqual(['--ip-masq', '--kube-subnet-mgr', '--healthz-port=8081']);
    expect(main.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 8081 });
    expect(main.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 8081 });
    expect(main.securityContext).toEqual({ privileged: false, capabilities: { add: ['NET_ADMIN', 'NET_RAW'] } });
    expect((main.env as Obj[]).map((e) => e.name)).toEqual(expect.arrayContaining(['POD_NAME', 'POD_NAMESPACE', 'EVENT_QUEUE_DEPTH', 'CONT_WHEN_CACHE_NOT_READY']));

    const volumes = new Map((spec.volumes as Obj[]).map((v) => [v.name as string, v]));
    expect(volumes.get('run')!.hostPath.path).toBe('/run/flannel');
    expect(volumes.get('cni-plugin')!.hostPath.path).toBe('/opt/cni/bin');
    expect(volumes.get('cni')!.hostPath.path).toBe('/etc/cni/net.d');
    expect(volumes.get('xtables-lock')!.hostPath).toEqual({ path: '/run/xtables.lock', type: 'FileOrCreate' });
    expect(volumes.get('flannel-cfg')!.configMap.name).toBe('kube-flannel-cfg');
    // every mount names a declared volume; flanneld sees subnet.env's directory, its config and the xtables lock
    for (const c of [...init, ...(spec.containers as Obj[])]) {
      for (const m of c.volumeMounts as Obj[]) expect(volumes.has(m.name as string), `${c.name}: ${m.name}`).toBe(true);
      // the image's one tag everywhere
      expect(c.image).toBe(main.image);
    }
    const mounts = Object.fromEntries((main.volumeMounts as Obj[]).map((m) => [m.name, m.mountPath]));
    expect(mounts).toMatchObject({ run: '/run/flannel', 'flannel-cfg': '/etc/kube-flannel/', 'xtables-lock': '/run/xtables.lock' });
  });
});
