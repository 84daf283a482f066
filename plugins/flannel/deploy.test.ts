// The Kubernetes manifests in deploy/ (owned with the flannel plugin): they
// parse, carry upstream kube-flannel.yml's names, RBAC, config keys, flags,
// probes and host paths, and their install step links the plugin names to
// the one executable (install-cni.sh itself: test/install-cni.unit.test.ts).
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
    // exactly upstream's host paths: nothing of ours (no node runtime) lives on the host outside /opt/cni/bin
    const hostPaths = (spec.volumes as Obj[]).filter((v) => v.hostPath !== undefined).map((v) => v.hostPath.path as string);
    expect(hostPaths.sort()).toEqual(['/etc/cni/net.d', '/opt/cni/bin', '/run/flannel', '/run/xtables.lock']);
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

/** The default of `NAME=${NAME:-default}` in a shell script. */
function shellDefault(script: string, name: string): string {
  const m = new RegExp(`^${name}=\\$\\{${name}:-([^}]+)\\}$`, 'm').exec(script);
  expect(m, `${name} default`).not.toBeNull();
  return m![1]!;
}

describe('the install-cni-plugin init container', () => {
  const SCRIPT = join(DEPLOY, 'install-cni.sh');
  const script = readFileSync(SCRIPT, 'utf8');
  const EXE = shellDefault(script, 'EXE');
  const spec = find(loadAll(), 'DaemonSet', 'kube-flannel-ds').spec.template.spec as Obj;
  const container = (spec.initContainers as Obj[]).find((c) => c.name === 'install-cni-plugin')!;
  const names = (container.env as Obj[]).find((e) => e.name === 'PLUGINS')!.value.split(' ') as string[];

  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'deploy-test-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('mounts only /opt/cni/bin of the host, where the script installs, and passes only PLUGINS', () => {
    expect(container.volumeMounts).toEqual([{ name: 'cni-plugin', mountPath: shellDefault(script, 'CNI_BIN_DIR') }]);
    expect((container.env as Obj[]).map((e) => e.name)).toEqual(['PLUGINS']);
    expect(EXE).toBe('kube-netstack-cni');
  });

  test("with the manifest's env: the executable once, each plugin name a hard link to it, nothing else", () => {
    const src = join(dir, 'image/opt/kube-netstack/bin');
    const host = join(dir, 'host');
    const bin = join(host, 'opt/cni/bin');
    mkdirSync(src, { recursive: true });
    // stands in for the compiled executable: reports the name it was started as
    writeFileSync(join(src, EXE), '#!/bin/sh\necho "$(basename "$0")"\n', { mode: 0o755 });
    const env = Object.fromEntries((container.env as Obj[]).map((e) => [e.name as string, e.value as string]));
    const r = spawnSync('sh', [SCRIPT, ...(container.command as string[]).slice(1)], {
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env, SRC_DIR: src, CNI_BIN_DIR: bin },
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(readdirSync(host)).toEqual(['opt']);
    expect(readdirSync(bin).sort()).toEqual([EXE, ...names].sort());
    const exe = statSync(join(bin, EXE));
    expect(exe.nlink).toBe(1 + names.length);
    for (const n of names) {
      expect(statSync(join(bin, n)).ino, n).toBe(exe.ino);
      expect(spawnSync(join(bin, n), { encoding: 'utf8' }).stdout).toBe(`${n}\n`);
    }
  });

  test('the image holds the executable once, in the directory the script installs from, with the names linked', () => {
    const dockerfile = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
    const srcDir = shellDefault(script, 'SRC_DIR');
    const copy = dockerfile.split('\n').find((l) => l.startsWith('COPY dist/bin/'));
    expect(copy, 'COPY of dist/bin').toBeDefined();
    const words = copy!.split(/\s+/).slice(1);
    expect(words.at(-1)).toBe(`${srcDir}/`);
    const sources = words.slice(0, -1);
    // COPY does not keep hard links: copying the plugin names would store the executable again for each
    expect(sources).toContain(`dist/bin/${EXE}`);
    for (const n of names) expect(sources).not.toContain(`dist/bin/${n}`);
    expect(sources).not.toContain('dist/bin/');
    const link = dockerfile.split('\n').find((l) => l.startsWith('RUN ') && l.includes(`ln ${EXE}`));
    expect(link, `RUN … ln ${EXE}`).toBeDefined();
    expect(link).toContain(`cd ${srcDir} `);
    for (const n of names) expect(link).toMatch(new RegExp(`for p in [^;]*\\b${n}\\b`));
  });
});
