// The Kubernetes manifests of deploy/: every object validates against the
// Kubernetes OpenAPI schema; kube-flannel.yml and kube-proxy.yml keep the
// identity fields of upstream's manifests (copies in test/fixtures/upstream/)
// so that `kubectl apply` over an upstream install is accepted and swaps it
// in place; every flag passed to our executables exists in their --help;
// probes, ports, scrape annotations, capabilities, RBAC and host paths are
// what each daemon needs.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { parseConfigFile } from '../../kube-proxy/config/file.ts';
import { CNI_EXECUTABLE, CNI_PLUGINS, installCniCommand } from '../../netstack/install-cni.ts';
import { ROOT, UPSTREAM, canonical, containersOf, deployManifests, find, flagNames, helpFlagNames, idOf, immutableChanges, loadYaml, unknownFields, validateObject } from './manifests.ts';
import type { Obj } from './manifests.ts';

const manifests = deployManifests();
const all = [...manifests.values()].flat();
const flannel = manifests.get('kube-flannel.yml')!;
const proxy = manifests.get('kube-proxy.yml')!;
const netpolicy = manifests.get('netpolicy.yml')!;
const upstreamFlannel = loadYaml(join(UPSTREAM, 'kube-flannel-v0.28.x.yml'));
const kubeadmProxy = loadYaml(join(UPSTREAM, 'kubeadm-kube-proxy.yml'));
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** The executable in dist/bin that an image path runs (the image tree maps them the same way: test/deploy/image-tree.test.ts). */
const EXECUTABLES: Record<string, string> = {
  '/opt/bin/flanneld': 'flanneld',
  '/usr/local/bin/kube-proxy': 'kube-proxy',
  '/opt/kube-netstack/bin/flanneld': 'flanneld',
  '/opt/kube-netstack/bin/kube-proxy': 'kube-proxy',
  '/opt/kube-netstack/bin/netpolicy': 'netpolicy',
  '/opt/kube-netstack/bin/netstack': 'netstack',
};

const daemonSet = (docs: Obj[], name: string): Obj => find(docs, 'DaemonSet', name);
const container = (ds: Obj, name: string): Obj => {
  const c = containersOf(ds).find((x) => x.name === name);
  if (c === undefined) throw new Error(`${idOf(ds)}: no container ${name}`);
  return c;
};
const argvOf = (c: Obj): string[] => [...((c.command as string[] | undefined) ?? []), ...((c.args as string[] | undefined) ?? [])];
/** The value of `--name=value` in a command line. */
const flagValue = (argv: readonly string[], name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

describe('every object validates against the Kubernetes OpenAPI schema', () => {
  test('deploy/ holds the three manifests', () => {
    expect([...manifests.keys()]).toEqual(['kube-flannel.yml', 'kube-proxy.yml', 'netpolicy.yml', 'restore-cni.yml']);
  });
  for (const [file, docs] of manifests) {
    test(file, async () => {
      expect(docs.length).toBeGreaterThan(0);
      for (const o of docs) await expect(validateObject(o), idOf(o)).resolves.toBeUndefined();
      // no two objects with one identity
      expect(new Set(docs.map(idOf)).size).toBe(docs.length);
    });
  }
  test('the validator rejects what the API server rejects (a port that is not a number, a container without a name)', async () => {
    const ds = structuredClone(daemonSet(flannel, 'kube-flannel-ds'));
    ds.spec.template.spec.containers[0].ports[0].containerPort = 'healthz';
    await expect(validateObject(ds)).rejects.toThrow(/containerPort must be integer/);
    const ds2 = structuredClone(daemonSet(flannel, 'kube-flannel-ds'));
    delete ds2.spec.template.spec.containers[0].name;
    await expect(validateObject(ds2)).rejects.toThrow(/must have required property name/);
  });
  test('no object has a field the API does not know (kubectl apply validates fields strictly)', async () => {
    for (const o of all) expect(await unknownFields(o), idOf(o)).toEqual([]);
    // what it finds: a misspelt field, deep in a pod template
    const ds = structuredClone(daemonSet(flannel, 'kube-flannel-ds'));
    ds.spec.template.spec.containers[0].volumeMounts[0].readOnlly = true;
    ds.spec.template.spec.hostNetwrok = true;
    expect((await unknownFields(ds)).sort()).toEqual([
      'apps/v1/DaemonSet/kube-flannel/kube-flannel-ds.spec.template.spec.containers[0].volumeMounts[0].readOnlly',
      'apps/v1/DaemonSet/kube-flannel/kube-flannel-ds.spec.template.spec.hostNetwrok',
    ]);
  });
  test("upstream's fixtures validate too (the validator knows their kinds)", async () => {
    for (const o of [...upstreamFlannel, ...kubeadmProxy]) expect(await unknownFields(o), idOf(o)).toEqual([]);
    for (const o of [...upstreamFlannel, ...kubeadmProxy]) await validateObject(o);
  });
});

describe('kube-flannel.yml swaps in place over upstream v0.28.x', () => {
  test('every upstream object has ours with the same identity, and kubectl apply would change no immutable field', () => {
    expect(upstreamFlannel.map((o) => o.kind).sort()).toEqual(['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet', 'Namespace', 'ServiceAccount']);
    for (const live of upstreamFlannel) {
      const ours = flannel.find((o) => idOf(o) === idOf(live));
      expect(ours, idOf(live)).toBeDefined();
      expect(immutableChanges(live, ours!)).toEqual([]);
    }
    // and nothing beside them: no second DaemonSet or ConfigMap that upstream's users would not know
    expect(flannel.map(idOf).sort()).toEqual(upstreamFlannel.map(idOf).sort());
  });

  test('the check finds the selector change the old manifest had (issue 12, finding 3)', () => {
    const live = daemonSet(upstreamFlannel, 'kube-flannel-ds');
    const old = structuredClone(daemonSet(flannel, 'kube-flannel-ds'));
    old.spec.selector.matchLabels = { app: 'flannel', 'k8s-app': 'flannel' };
    expect(immutableChanges(live, old)).toEqual([
      'apps/v1/DaemonSet/kube-flannel/kube-flannel-ds: spec.selector is immutable ({"matchLabels":{"app":"flannel"}} → {"matchLabels":{"app":"flannel","k8s-app":"flannel"}})',
    ]);
  });

  test('labels, selector, service account, container names and volumes users key on are equal', () => {
    const theirs = daemonSet(upstreamFlannel, 'kube-flannel-ds');
    const ours = daemonSet(flannel, 'kube-flannel-ds');
    expect(ours.spec.selector).toEqual({ matchLabels: { app: 'flannel' } });
    expect(canonical(ours.spec.selector)).toEqual(canonical(theirs.spec.selector));
    expect(ours.spec.template.metadata.labels).toEqual(theirs.spec.template.metadata.labels);
    for (const [k, v] of Object.entries(ours.spec.selector.matchLabels as Obj)) expect(ours.spec.template.metadata.labels[k]).toBe(v);
    expect(ours.metadata.labels).toEqual(theirs.metadata.labels);
    expect(ours.spec.template.spec.serviceAccountName).toBe(theirs.spec.template.spec.serviceAccountName);
    expect(ours.spec.template.spec.serviceAccountName).toBe('flannel');
    // `kubectl logs -c kube-flannel`, `kubectl -n kube-flannel rollout status ds/kube-flannel-ds`
    expect(containersOf(ours).map((c) => c.name)).toEqual(containersOf(theirs).map((c) => c.name));
    // upstream's volumes, each with upstream's source (plus /lib/modules, read-only)
    const volumes = (ds: Obj): Obj => Object.fromEntries((ds.spec.template.spec.volumes as Obj[]).map((v) => [v.name, v]));
    const ourVolumes = volumes(ours);
    for (const [name, v] of Object.entries(volumes(theirs))) expect(ourVolumes[name], name).toEqual(v);
    expect(Object.keys(ourVolumes).sort()).toEqual([...Object.keys(volumes(theirs)), 'lib-modules'].sort());
    for (const k of ['hostNetwork', 'priorityClassName', 'tolerations', 'affinity']) {
      expect(canonical(ours.spec.template.spec[k]), k).toEqual(canonical(theirs.spec.template.spec[k]));
    }
  });

  test('the ConfigMap has upstream name and keys, and the same conflist and net-conf.json', () => {
    const theirs = find(upstreamFlannel, 'ConfigMap', 'kube-flannel-cfg');
    const ours = find(flannel, 'ConfigMap', 'kube-flannel-cfg');
    expect(Object.keys(ours.data).sort()).toEqual(Object.keys(theirs.data).sort());
    expect(Object.keys(ours.data).sort()).toEqual(['cni-conf.json', 'net-conf.json']);
    for (const k of Object.keys(theirs.data)) expect(JSON.parse(ours.data[k] as string), k).toEqual(JSON.parse(theirs.data[k] as string));
  });

  test('namespace, service account and RBAC as upstream', () => {
    for (const kind of ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding']) {
      const theirs = upstreamFlannel.find((o) => o.kind === kind)!;
      const ours = find(flannel, kind, theirs.metadata.name as string);
      const { metadata: _m, ...rest } = ours;
      const { metadata: _t, ...restTheirs } = theirs;
      expect(canonical(rest), kind).toEqual(canonical(restTheirs));
      expect(ours.metadata.labels).toEqual(theirs.metadata.labels);
    }
    expect(find(flannel, 'Namespace', 'kube-flannel').metadata.labels['pod-security.kubernetes.io/enforce']).toBe('privileged');
  });

  test("flanneld runs with upstream's flags, at upstream's path, with the named healthz port and probes", () => {
    const theirs = container(daemonSet(upstreamFlannel, 'kube-flannel-ds'), 'kube-flannel');
    const ours = container(daemonSet(flannel, 'kube-flannel-ds'), 'kube-flannel');
    expect(ours.command).toEqual(theirs.command);
    expect(ours.args).toEqual(theirs.args);
    expect(ours.ports).toEqual([{ name: 'healthz', containerPort: 8081, protocol: 'TCP' }]);
    expect(Number(flagValue(argvOf(ours), 'healthz-port'))).toBe(8081);
    expect(ours.livenessProbe).toEqual(theirs.livenessProbe);
    expect(ours.readinessProbe).toEqual(theirs.readinessProbe);
    expect(ours.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'healthz' });
    expect(ours.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'healthz' });
    expect(ours.securityContext).toEqual(theirs.securityContext);
    expect(ours.securityContext).toEqual({ privileged: false, capabilities: { add: ['NET_ADMIN', 'NET_RAW'] } });
    // upstream's env, plus NODE_NAME (no pod lookup at start)
    expect((ours.env as Obj[]).filter((e) => e.name !== 'NODE_NAME')).toEqual(theirs.env);
    expect((ours.env as Obj[]).find((e) => e.name === 'NODE_NAME')).toEqual({ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
    const mounts = Object.fromEntries((ours.volumeMounts as Obj[]).map((m) => [m.name, m]));
    for (const m of theirs.volumeMounts as Obj[]) expect(mounts[m.name], m.name).toEqual(m);
    expect(mounts['lib-modules']).toEqual({ name: 'lib-modules', mountPath: '/lib/modules', readOnly: true });
  });
});

describe('kube-proxy.yml swaps in place over kubeadm', () => {
  test("the DaemonSet, its selector, labels, service account and ConfigMap are kubeadm's", () => {
    const theirs = daemonSet(kubeadmProxy, 'kube-proxy');
    const ours = daemonSet(proxy, 'kube-proxy');
    expect(immutableChanges(theirs, ours)).toEqual([]);
    expect(ours.spec.selector).toEqual({ matchLabels: { 'k8s-app': 'kube-proxy' } });
    expect(ours.spec.template.metadata.labels).toEqual(theirs.spec.template.metadata.labels);
    expect(ours.metadata.labels).toEqual(theirs.metadata.labels);
    expect(ours.spec.template.spec.serviceAccountName).toBe('kube-proxy');
    expect(containersOf(ours).map((c) => c.name)).toEqual(['kube-proxy']);
    const theirsCm = find(kubeadmProxy, 'ConfigMap', 'kube-proxy');
    const oursCm = find(proxy, 'ConfigMap', 'kube-proxy');
    expect(idOf(oursCm)).toBe(idOf(theirsCm));
    // kubectl apply keeps kubeadm's kubeconfig.conf (a key this manifest does not list); config.conf is replaced
    expect(Object.keys(oursCm.data)).toEqual(['config.conf']);
    expect(Object.keys(theirsCm.data)).toContain('config.conf');
    // the same command line and mounts: kubeadm's DaemonSet runs our image unchanged, and ours reads kubeadm's files
    const c = container(ours, 'kube-proxy');
    const t = container(theirs, 'kube-proxy');
    expect(c.command).toEqual(t.command);
    expect(canonical(c.volumeMounts)).toEqual(canonical(t.volumeMounts));
    expect(canonical(ours.spec.template.spec.volumes)).toEqual(canonical(theirs.spec.template.spec.volumes));
    expect(canonical(ours.spec.template.spec.tolerations)).toEqual(canonical(theirs.spec.template.spec.tolerations));
    expect(ours.spec.template.spec.hostNetwork).toBe(true);
    // kubeadm's capabilities, plus NET_RAW
    expect(c.securityContext).toEqual({ privileged: false, capabilities: { add: ['NET_ADMIN', 'NET_RAW', 'SYS_MODULE'] } });
  });

  test("the KubeProxyConfiguration is one our kube-proxy reads without a warning, with kubeadm's kubeconfig path", () => {
    const text = find(proxy, 'ConfigMap', 'kube-proxy').data['config.conf'] as string;
    const { config, warnings } = parseConfigFile(text, 'config.conf');
    expect(warnings).toEqual([]);
    const mount = (container(daemonSet(proxy, 'kube-proxy'), 'kube-proxy').volumeMounts as Obj[]).find((m) => m.name === 'kube-proxy')!;
    expect(config.kubeconfig).toBe(`${mount.mountPath}/kubeconfig.conf`);
    expect(Object.keys(find(kubeadmProxy, 'ConfigMap', 'kube-proxy').data)).toContain('kubeconfig.conf');
    expect(config.mode).toBe('iptables');
    // the proxy's cluster CIDR is flannel's Network
    expect(config.clusterCIDR).toBe(JSON.parse(find(flannel, 'ConfigMap', 'kube-flannel-cfg').data['net-conf.json'] as string).Network);
    // probes and scrape annotations point at the addresses it binds
    const ds = daemonSet(proxy, 'kube-proxy');
    const ports = Object.fromEntries((container(ds, 'kube-proxy').ports as Obj[]).map((p) => [p.name, p.containerPort]));
    expect(config.healthzBindAddress).toBe(`0.0.0.0:${ports['healthz']}`);
    expect(config.metricsBindAddress).toBe(`0.0.0.0:${ports['metrics']}`);
    expect(ds.spec.template.metadata.annotations['prometheus.io/port']).toBe(String(ports['metrics']));
  });
});

describe('every daemon: probes on a named healthz port, scrape annotations, least privilege', () => {
  const daemons = [
    { file: 'kube-flannel.yml', ds: 'kube-flannel-ds', c: 'kube-flannel', sa: 'flannel' },
    { file: 'kube-proxy.yml', ds: 'kube-proxy', c: 'kube-proxy', sa: 'kube-proxy' },
    { file: 'netpolicy.yml', ds: 'netpolicy', c: 'netpolicy', sa: 'netpolicy' },
  ];
  for (const d of daemons) {
    test(d.ds, () => {
      const docs = manifests.get(d.file)!;
      const ds = daemonSet(docs, d.ds);
      const spec = ds.spec.template.spec as Obj;
      expect(spec.hostNetwork).toBe(true);
      expect(spec.priorityClassName).toBe('system-node-critical');
      expect(spec.tolerations).toContainEqual(expect.objectContaining({ operator: 'Exists' }));
      expect(spec.serviceAccountName).toBe(d.sa);
      const sa = find(docs, 'ServiceAccount', d.sa);
      expect(sa.metadata.namespace).toBe(ds.metadata.namespace);
      // the binding gives this service account, and only it, the role
      const binding = docs.find((o) => o.kind === 'ClusterRoleBinding' && (o.subjects as Obj[]).some((s) => s.name === d.sa))!;
      expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: d.sa, namespace: ds.metadata.namespace }]);
      expect(find(docs, 'ClusterRole', binding.roleRef.name as string)).toBeDefined();
      for (const [k, v] of Object.entries(ds.spec.selector.matchLabels as Obj)) expect(ds.spec.template.metadata.labels[k]).toBe(v);

      const c = container(ds, d.c);
      const healthz = (c.ports as Obj[]).find((p) => p.name === 'healthz');
      expect(healthz, 'named healthz port').toMatchObject({ protocol: 'TCP' });
      expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'healthz' });
      expect(c.readinessProbe.httpGet.port).toBe('healthz');
      const ann = ds.spec.template.metadata.annotations as Obj;
      expect(ann['prometheus.io/scrape']).toBe('true');
      expect(ann['prometheus.io/path']).toBe('/metrics');
      expect(Number(ann['prometheus.io/port'])).toBeGreaterThan(0);
      expect(c.image).toBe(`ghcr.io/kube-netstack/kube-netstack:v${version}`);
      // the xtables lock shared with every other iptables user on the node, /lib/modules read-only
      const volumes = Object.fromEntries((spec.volumes as Obj[]).map((v) => [v.name, v]));
      const hostMounts = Object.fromEntries(
        (c.volumeMounts as Obj[]).filter((m) => volumes[m.name]?.hostPath !== undefined).map((m) => [volumes[m.name].hostPath.path, m]),
      );
      expect(hostMounts['/run/xtables.lock']).toMatchObject({ mountPath: '/run/xtables.lock' });
      expect(hostMounts['/lib/modules']).toMatchObject({ mountPath: '/lib/modules', readOnly: true });
      expect(volumes[hostMounts['/run/xtables.lock'].name].hostPath.type).toBe('FileOrCreate');
    });
  }

  /** A role's rules as "group/resource: verbs". */
  const rules = (docs: Obj[], name: string): string[] =>
    (find(docs, 'ClusterRole', name).rules as Obj[])
      .flatMap((r) => (r.apiGroups as string[]).flatMap((g) => (r.resources as string[]).map((res) => `${g === '' ? 'core' : g}/${res}: ${[...(r.verbs as string[])].sort().join(',')}`)))
      .sort();

  test("RBAC: each daemon gets what it reads and writes, nothing else", () => {
    expect(rules(flannel, 'flannel')).toEqual(['core/nodes/status: patch', 'core/nodes: get,list,watch', 'core/pods: get']);
    expect(rules(proxy, 'kube-netstack:kube-proxy')).toEqual([
      'core/events: create',
      'core/nodes: list,watch',
      'core/services: list,watch',
      'discovery.k8s.io/endpointslices: list,watch',
      'events.k8s.io/events: create',
    ]);
    expect(rules(netpolicy, 'kube-netstack:netpolicy')).toEqual([
      'core/namespaces: list,watch',
      'core/nodes: list,watch',
      'core/pods: list,watch',
      'networking.k8s.io/networkpolicies: list,watch',
    ]);
    // no wildcards, no secrets, no write verbs but the ones above
    for (const o of all.filter((x) => x.kind === 'ClusterRole')) {
      for (const r of o.rules as Obj[]) {
        expect(r.resources, idOf(o)).not.toContain('*');
        expect(r.resources, idOf(o)).not.toContain('secrets');
        expect(r.verbs, idOf(o)).not.toContain('*');
      }
    }
  });

  test('netpolicy: privileged as kube-network-policies (it writes net.bridge sysctls), its flags and ports agree', () => {
    const ds = daemonSet(netpolicy, 'netpolicy');
    const c = container(ds, 'netpolicy');
    expect(c.securityContext).toEqual({ privileged: true, capabilities: { add: ['NET_ADMIN'] } });
    const argv = argvOf(c);
    const ports = Object.fromEntries((c.ports as Obj[]).map((p) => [p.name, p.containerPort]));
    expect(flagValue(argv, 'healthz-bind-address')).toBe(`0.0.0.0:${ports['healthz']}`);
    expect(flagValue(argv, 'metrics-bind-address')).toBe(`0.0.0.0:${ports['metrics']}`);
    expect(ds.spec.template.metadata.annotations['prometheus.io/port']).toBe(String(ports['metrics']));
    expect(flagValue(argv, 'hostname-override')).toBe('$(NODE_NAME)');
    expect((c.env as Obj[]).find((e) => e.name === 'NODE_NAME')!.valueFrom.fieldRef.fieldPath).toBe('spec.nodeName');
  });
});

describe('every flag a manifest passes to our executables is in its --help', () => {
  const uses: { where: string; exe: string; sub: string[]; flags: string[] }[] = [];
  for (const [file, docs] of manifests) {
    for (const o of docs) {
      for (const c of containersOf(o)) {
        const argv = argvOf(c);
        // Debian's coreutils in the image (restore-cni.yml's idle container)
        if (argv[0] === '/bin/sleep') continue;
        const exe = EXECUTABLES[argv[0]!];
        if (exe === undefined) throw new Error(`${file} ${c.name}: ${argv[0]} is not one of our executables`);
        const sub = exe === 'netstack' ? [argv[1]!] : [];
        uses.push({ where: `${file} ${c.name}`, exe, sub, flags: flagNames(argv.slice(1 + sub.length)) });
      }
    }
  }
  test('the manifests run flanneld, kube-proxy, netpolicy and netstack install-cni', () => {
    expect([...new Set(uses.map((u) => [u.exe, ...u.sub].join(' ')))].sort()).toEqual(['flanneld', 'kube-proxy', 'netpolicy', 'netstack install-cni']);
  });
  for (const exe of ['flanneld', 'kube-proxy', 'netpolicy', 'netstack']) {
    test(exe, () => {
      const path = join(ROOT, 'dist/bin', exe);
      expect(existsSync(path), `${path} (npm run build)`).toBe(true);
      for (const u of uses.filter((x) => x.exe === exe)) {
        const r = spawnSync(path, [...u.sub, '--help'], { encoding: 'utf8', timeout: 30_000 });
        const help = `${r.stdout}${r.stderr}`;
        const known = helpFlagNames(help);
        expect(known.size, `${exe} ${u.sub.join(' ')} --help lists options:\n${help}`).toBeGreaterThan(3);
        for (const f of u.flags) expect(known.has(f), `${u.where}: --${f} is not in \`${exe} ${[...u.sub, '--help'].join(' ')}\``).toBe(true);
      }
    });
  }
  test('the flag parser of this test reads both help styles', () => {
    expect([...helpFlagNames('  -ip-masq\n    \tsetup masquerade\n  -healthz-port int\n')]).toEqual(['ip-masq', 'healthz-port']);
    expect([...helpFlagNames('  -v, --v <level>   verbosity\n  --cleanup [bool]  x\nCommands:\n  trace [options]')]).toEqual(['v', 'cleanup']);
    expect(flagNames(['--healthz-port=8081', '--kube-subnet-mgr', 'x', '--config', '/f'])).toEqual(['healthz-port', 'kube-subnet-mgr', 'config']);
  });
});

describe("kube-flannel.yml's and restore-cni.yml's init containers, run with their own arguments against temp host directories", () => {
  let dir: string;
  let host: string;
  let image: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'deploy-init-'));
    host = join(dir, 'host');
    // the image: the CNI executable beside netstack (a stand-in that prints the name it runs as)
    image = join(dir, 'image/opt/kube-netstack/bin');
    mkdirSync(image, { recursive: true });
    writeFileSync(join(image, CNI_EXECUTABLE), '#!/bin/sh\necho "ours $(basename "$0")"\n', { mode: 0o755 });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs a DaemonSet's init containers in order, each seeing only its volume mounts (host paths under `host`). */
  async function runInitContainers(ds: Obj, configMaps: Obj[]): Promise<void> {
    const spec = ds.spec.template.spec as Obj;
    const volumes = Object.fromEntries((spec.volumes as Obj[]).map((v) => [v.name, v]));
    for (const c of spec.initContainers as Obj[]) {
      const mounts = ((c.volumeMounts as Obj[] | undefined) ?? []).map((m) => {
        const v = volumes[m.name];
        const real = v.hostPath !== undefined ? join(host, v.hostPath.path as string) : join(dir, 'configmap', m.name as string);
        mkdirSync(real, { recursive: true });
        if (v.configMap !== undefined) {
          const cm = find(configMaps, 'ConfigMap', v.configMap.name as string);
          for (const [k, text] of Object.entries(cm.data as Obj)) writeFileSync(join(real, k), text as string);
        }
        return { at: (m.mountPath as string).replace(/\/$/, ''), real };
      });
      const inContainer = (p: string): string => {
        const m = mounts.find((x) => p === x.at || p.startsWith(`${x.at}/`));
        if (m === undefined) throw new Error(`${c.name}: ${p} is not in one of its mounts`);
        return m.real + p.slice(m.at.length);
      };
      const argv = argvOf(c);
      expect(argv.slice(0, 2), c.name).toEqual(['/opt/kube-netstack/bin/netstack', 'install-cni']);
      // every path argument must be inside one of the container's mounts (inContainer throws otherwise)
      const args = argv.slice(2).map((a) => a.replace(/^(--(?:bin-dir|conf-dir|conf-source))=(.*)$/, (_all, f: string, p: string) => `${f}=${inContainer(p)}`));
      let err = '';
      const saved = process.exitCode;
      try {
        process.exitCode = 0;
        await installCniCommand({ out: () => {}, err: (s) => (err += s) }).parseAsync([...args, `--src-dir=${image}`], { from: 'user' });
        expect(err, c.name).toBe('');
        expect(process.exitCode, c.name).toBe(0);
      } finally {
        process.exitCode = saved;
      }
    }
  }

  const bin = (): string => join(host, 'opt/cni/bin');
  const conflist = (): string => join(host, 'etc/cni/net.d/10-flannel.conflist');
  const visible = (d: string): string[] => readdirSync(d).filter((n) => !n.startsWith('.')).sort();
  const runPlugin = (n: string): string => spawnSync(join(bin(), n), { encoding: 'utf8' }).stdout;

  test('on a fresh node: the plugins, then the ConfigMap conflist', async () => {
    await runInitContainers(daemonSet(flannel, 'kube-flannel-ds'), flannel);
    expect(visible(bin())).toEqual([CNI_EXECUTABLE, ...CNI_PLUGINS].sort());
    for (const n of CNI_PLUGINS) expect(runPlugin(n)).toBe(`ours ${n}\n`);
    expect(readFileSync(conflist(), 'utf8')).toBe(find(flannel, 'ConfigMap', 'kube-flannel-cfg').data['cni-conf.json']);
  });

  test("in-place swap over upstream flannel, then the rollback puts upstream's files back", async () => {
    // a node as upstream's manifest left it: its flannel plugin, the reference plugins, its conflist
    mkdirSync(bin(), { recursive: true });
    mkdirSync(dirname(conflist()), { recursive: true });
    const upstreamFiles = [...CNI_PLUGINS, 'portmap'];
    for (const n of upstreamFiles) writeFileSync(join(bin(), n), `#!/bin/sh\necho "upstream $(basename "$0")"\n`, { mode: 0o755 });
    const upstreamConf = find(upstreamFlannel, 'ConfigMap', 'kube-flannel-cfg').data['cni-conf.json'] as string;
    writeFileSync(conflist(), upstreamConf.replace('"cbr0"', '"cbr0-upstream"'));

    await runInitContainers(daemonSet(flannel, 'kube-flannel-ds'), flannel);
    for (const n of CNI_PLUGINS) expect(runPlugin(n)).toBe(`ours ${n}\n`);
    expect(runPlugin('portmap')).toBe('upstream portmap\n');
    expect(JSON.parse(readFileSync(conflist(), 'utf8')).name).toBe('cbr0');

    const restore = daemonSet(manifests.get('restore-cni.yml')!, 'kube-netstack-restore-cni');
    expect(restore.metadata.namespace).toBe('kube-flannel');
    await runInitContainers(restore, []);
    expect(readdirSync(bin()).sort()).toEqual(upstreamFiles.sort());
    for (const n of upstreamFiles) expect(runPlugin(n)).toBe(`upstream ${n}\n`);
    expect(JSON.parse(readFileSync(conflist(), 'utf8')).name).toBe('cbr0-upstream');
    expect(readdirSync(dirname(conflist()))).toEqual(['10-flannel.conflist']);
  });
});
