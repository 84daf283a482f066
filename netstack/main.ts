// netstack: the whole stack as a cluster in network namespaces. Parses,
// wires and runs; the commands live beside this file.
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { Command, Option } from 'commander';
import { errorMessage, NetError } from '../lib/errors.ts';
import { enterNetns } from '../lib/netns/index.ts';
import { installCniCommand } from './install-cni.ts';
import { VERSION } from '../lib/version.ts';
import { DAEMONS, DEFAULT_STATE_DIR, StateStore, lockStateDir, requireState } from './state.ts';
import type { Backend, Family, PolicyBackend, ProxyMode } from './state.ts';
// Each command loads its modules when it runs: the pods' servers (`serve`)
// start this same executable and need none of etcd, yaml or the prober.

const log = (msg: string): void => void process.stdout.write(msg + '\n');

const stateDirOption = (): Option => new Option('--state-dir <dir>', 'where the cluster state lives').default(DEFAULT_STATE_DIR);

/** Removes the lock file and the state dir when nothing else is in it. */
async function removeLockDir(stateDir: string): Promise<void> {
  const { rm, rmdir } = await import('node:fs/promises');
  const { loadState, LOCK_FILE } = await import('./state.ts');
  if ((await loadState(stateDir).catch(() => undefined)) !== undefined) return;
  await rm(`${stateDir}/${LOCK_FILE}`, { force: true });
  await rmdir(stateDir).catch(() => undefined);
}

function fail(err: unknown): never {
  const code = err instanceof NetError ? ` [${err.code}]` : '';
  process.stderr.write(`netstack: ${errorMessage(err)}${code}\n`);
  if (err instanceof NetError && err.details) process.stderr.write(`${err.details}\n`);
  process.exit(1);
}

const program = new Command('netstack')
  .description('the kube-netstack stack (flanneld, kube-proxy, netpolicy, CNI plugins) as a cluster in network namespaces')
  .version(`netstack ${VERSION} (kube-netstack)`, '--version', 'print the version and exit')
  .showHelpAfterError();

program
  .command('up')
  .description('create the cluster: underlay, etcd, nodes with flanneld, kube-proxy and netpolicy, pods through CNI, the sample app')
  .addOption(stateDirOption())
  .option('--nodes <n>', 'number of nodes', (v) => Number.parseInt(v, 10), 3)
  .addOption(new Option('--backend <backend>', 'flannel backend').choices(['vxlan', 'host-gw', 'udp']).default('vxlan'))
  .addOption(new Option('--proxy-mode <mode>', 'kube-proxy mode').choices(['iptables', 'nftables', 'ipvs']).default('iptables'))
  .addOption(new Option('--policy-backend <backend>', 'netpolicy backend').choices(['nftables', 'iptables']).default('nftables'))
  .option('--dual-stack', 'IPv6 pod and service ranges beside IPv4', false)
  .option('--manifests <dir>', 'the app to deploy (default: the sample app, netstack/sample)')
  .action(async (o: { stateDir: string; nodes: number; backend: Backend; proxyMode: ProxyMode; policyBackend: PolicyBackend; dualStack: boolean; manifests?: string }) => {
    const { up } = await import('./up.ts');
    const { loadState } = await import('./state.ts');
    if (process.getuid?.() !== 0) throw new NetError('EPERM', 'netstack up needs root (it creates network namespaces)');
    const unlock = lockStateDir(o.stateDir, 'up');
    try {
      await up({ stateDir: o.stateDir, nodes: o.nodes, backend: o.backend, proxyMode: o.proxyMode, policyBackend: o.policyBackend, dualStack: o.dualStack, log, ...(o.manifests ? { manifests: o.manifests } : {}) });
    } catch (err) {
      // What was made stays for a look (status, logs); down removes it.
      const before = err instanceof NetError && ['CLUSTER_EXISTS', 'STATE_DIR_NOT_EMPTY', 'EPERM', 'TOOL_NOT_FOUND', 'INVALID_CONFIG'].includes(err.code);
      const s = before ? undefined : await loadState(o.stateDir).catch(() => undefined);
      if (s?.phase === 'creating') process.stderr.write(`netstack up failed midway; inspect with netstack status/logs --state-dir ${o.stateDir}, remove with netstack down --state-dir ${o.stateDir}\n`);
      unlock();
      // Refused before making anything: leave no lock file or empty dir behind.
      if (before && !s) await removeLockDir(o.stateDir);
      throw err;
    }
    unlock();
  });

program
  .command('status')
  .description('nodes, leases, pods, services with endpoints, policies and the health of every daemon')
  .addOption(stateDirOption())
  .action(async (o: { stateDir: string }) => {
    const { status } = await import('./status.ts');
    const r = await status(await requireState(o.stateDir));
    log(r.text);
    if (!r.healthy) process.exitCode = 1;
  });

program
  .command('check')
  .description('probe pod↔pod, pod→ClusterIP, external→NodePort and the policy matrix against what should be; exit 1 on any mismatch')
  .addOption(stateDirOption())
  .addOption(new Option('--family <family>', 'probe only this family').choices(['4', '6']))
  .action(async (o: { stateDir: string; family?: string }) => {
    const s = await requireState(o.stateDir);
    const { runCheck } = await import('./check/index.ts');
    const r = await runCheck(s, o.family ? { families: [Number(o.family) as Family] } : {});
    log(r.report);
    if (!r.ok) process.exitCode = 1;
  });

program
  .command('apply')
  .description('add or change manifests (Namespaces, Services, EndpointSlices, NetworkPolicies; new Pods are created)')
  .addOption(stateDirOption())
  .argument('<path>', 'a manifest file or a directory of them')
  .option('--no-wait', 'return without waiting for the daemons to sync the change')
  .action(async (path: string, o: { stateDir: string; wait: boolean }) => {
    const s = await requireState(o.stateDir);
    const { readObjects } = await import('./manifests.ts');
    const { applyObjects } = await import('./apply.ts');
    const objects = await readObjects(path);
    const unlock = lockStateDir(o.stateDir, 'apply');
    const leave = enterNetns(s.underlay.netns.path);
    try {
      // Read again under the lock: the state this apply changes.
      await applyObjects(new StateStore(await requireState(o.stateDir)), objects, log, { waitSync: o.wait });
    } finally {
      leave();
      unlock();
    }
  });

program
  .command('exec')
  .description('run a command inside a node or pod namespace (NODE, POD or NAMESPACE/POD; also underlay, etcd, external)')
  .addOption(stateDirOption())
  .argument('<target>')
  .argument('<cmd...>')
  .action(async (target: string, cmd: string[], o: { stateDir: string }) => {
    const s = await requireState(o.stateDir);
    const { targetNetns } = await import('./inspect.ts');
    const path = targetNetns(s, target);
    const r = spawnSync('nsenter', [`--net=${path}`, '--', ...cmd], { stdio: 'inherit' });
    if (r.error) throw new NetError('EXEC_SPAWN', `nsenter: ${r.error.message}`);
    process.exitCode = r.status ?? 128 + (r.signal ? (constants.signals[r.signal] ?? 0) : 0);
  });

program
  .command('logs')
  .description(`print a daemon's log (${DAEMONS.join(', ')}, etcd; or a pod's server)`)
  .addOption(stateDirOption())
  .argument('<daemon>', `${DAEMONS.join(' | ')} | etcd | server`)
  .argument('[node]', 'the node (or, for server, the pod)')
  .action(async (daemon: string, node: string | undefined, o: { stateDir: string }) => {
    const s = await requireState(o.stateDir);
    const { logPath } = await import('./inspect.ts');
    const path = logPath(s, daemon, node);
    process.stdout.write(await readFile(path, 'utf8').catch((err: unknown) => fail(new NetError('NOT_FOUND', `${path}: ${errorMessage(err)}`))));
  });

program
  .command('down')
  .description('stop every process and delete every namespace and file of the cluster (also after a crashed or killed up)')
  .addOption(stateDirOption())
  .action(async (o: { stateDir: string }) => {
    if (process.getuid?.() !== 0) throw new NetError('EPERM', 'netstack down needs root');
    const { down } = await import('./down.ts');
    const r = await down(o.stateDir, log);
    if (r.problems.length > 0) process.exitCode = 1;
  });

program.addCommand(installCniCommand());

// The small server `up` starts in each pod.
program
  .command('serve', { hidden: true })
  .requiredOption('--name <ns/name>')
  .option('--tcp <ports>', 'comma-separated TCP ports', '')
  .option('--udp <ports>', 'comma-separated UDP ports', '')
  .action(async (o: { name: string; tcp: string; udp: string }) => {
    const ports = (v: string): number[] => v.split(',').filter(Boolean).map(Number);
    const ac = new AbortController();
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => ac.abort());
    const { serve } = await import('./serve.ts');
    await serve({ name: o.name, tcp: ports(o.tcp), udp: ports(o.udp) }, ac.signal);
  });

program.parseAsync(process.argv).catch(fail);
