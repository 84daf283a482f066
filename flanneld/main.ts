// flanneld entry point: parse flags and env, wire the real dependencies,
// run the main loop until SIGINT/SIGTERM, exit. Nothing else happens here.
import { errorMessage } from '../lib/errors.ts';
import { createLogger } from '../lib/log.ts';
import type { Logger } from '../lib/log.ts';
import { newRegistry } from '../lib/metrics.ts';
import { Handle } from '../lib/netlink/index.ts';
import { RealIptables, saveParsed } from '../lib/netfilter/iptables.ts';
import { RealNft } from '../lib/netfilter/nft.ts';
import { backends } from './backend/index.ts';
import { run } from './daemon.ts';
import type { TrafficRules } from './daemon.ts';
import { FlagError, parseFlags, usage } from './flags.ts';
import type { FlanneldOptions } from './flags.ts';
import { EtcdSubnetManager } from './subnet/etcd.ts';
import { KubeSubnetManager } from './subnet/kube.ts';
import type { SubnetEnv } from './subnet/subnet-env.ts';
import type { Family, NetworkConfig } from './subnet/types.ts';
import {
  forwardChain,
  iptFamily,
  masqChain,
  nftCleanupTransaction,
  nftForwardTransaction,
  nftMasqTransaction,
  planIptables,
  planIptablesCleanup,
} from './traffic/rules.ts';

export const VERSION = 'v0.1.0';

const families = (c: NetworkConfig): { family: Family; net: NonNullable<NetworkConfig['ipv4']> }[] => [
  ...(c.ipv4 ? [{ family: 4 as const, net: c.ipv4 }] : []),
  ...(c.ipv6 ? [{ family: 6 as const, net: c.ipv6 }] : []),
];

/** Traffic rules over iptables-restore (compare-and-patch, one --noflush batch) or nft (one transaction per family). */
function trafficRules(mode: 'iptables' | 'nftables', log: Logger): TrafficRules {
  if (mode === 'iptables') {
    const ipt = new RealIptables({ waitSeconds: 5 });
    const apply = async (family: Family, table: 'nat' | 'filter', specs: Parameters<typeof planIptables>[1]): Promise<void> => {
      const text = planIptables(await saveParsed(ipt, iptFamily(family), table), specs);
      if (text === '') return;
      log.info({ family, table }, 'patching iptables rules');
      await ipt.restore(iptFamily(family), text, { noflush: true });
    };
    return {
      async cleanUp() {
        for (const family of [4, 6] as const) {
          const text = planIptablesCleanup(await saveParsed(ipt, iptFamily(family)));
          if (text !== '') await ipt.restore(iptFamily(family), text, { noflush: true });
        }
      },
      async ensureMasq({ config, lease, fullyRandom }) {
        // The chain is patched to exactly the wanted rules, so rules for a previous network or subnet go too.
        for (const { family, net } of families(config)) {
          const subnet = family === 4 ? lease.subnet : lease.ipv6Subnet;
          if (!subnet) continue;
          await apply(family, 'nat', [masqChain({ family, network: net.network, subnet, randomFully: fullyRandom })]);
        }
      },
      async ensureForward({ config }) {
        for (const { family, net } of families(config)) await apply(family, 'filter', [forwardChain(net.network)]);
      },
    };
  }
  const nft = new RealNft();
  return {
    async cleanUp() {
      for (const family of [4, 6] as const) await nft.run(nftCleanupTransaction(family));
    },
    async ensureMasq({ config, lease, fullyRandom }) {
      for (const { family, net } of families(config)) {
        const subnet = family === 4 ? lease.subnet : lease.ipv6Subnet;
        if (subnet) await nft.run(nftMasqTransaction({ family, network: net.network, subnet, randomFully: fullyRandom }));
      }
    },
    async ensureForward({ config }) {
      for (const { family, net } of families(config)) await nft.run(nftForwardTransaction(family, net.network));
    },
  };
}

function subnetManagerFactory(log: Logger) {
  return async (o: FlanneldOptions, prev: SubnetEnv | undefined, signal: AbortSignal) => {
    if (o.kubeSubnetMgr) {
      const kl = log.child({ component: 'kube-subnet-mgr' });
      return KubeSubnetManager.create(
        {
          ...(o.kubeconfigFile ? { kubeconfig: o.kubeconfigFile } : {}),
          ...(o.kubeApiUrl ? { apiUrl: o.kubeApiUrl } : {}),
          annotationPrefix: o.kubeAnnotationPrefix,
          netConfigPath: o.netConfigPath,
          setNodeNetworkUnavailable: o.setNodeNetworkUnavailable,
          env: process.env,
          log: (msg: string) => kl.info(msg),
        },
        signal,
      );
    }
    const el = log.child({ component: 'etcd-subnet-mgr' });
    return new EtcdSubnetManager({
      endpoints: o.etcdEndpoints,
      prefix: o.etcdPrefix,
      ...(o.etcdKeyfile ? { keyFile: o.etcdKeyfile } : {}),
      ...(o.etcdCertfile ? { certFile: o.etcdCertfile } : {}),
      ...(o.etcdCAFile ? { caFile: o.etcdCAFile } : {}),
      ...(o.etcdUsername ? { username: o.etcdUsername } : {}),
      ...(o.etcdPassword ? { password: o.etcdPassword } : {}),
      previousSubnet: prev?.subnet,
      previousIPv6Subnet: prev?.ipv6Subnet,
      log: {
        debug: (obj, msg) => el.debug(obj, msg),
        info: (obj, msg) => el.info(obj, msg),
        warn: (obj, msg) => el.warn(obj, msg),
        error: (obj, msg) => el.error(obj, msg),
      },
    });
  };
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseFlags(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`${errorMessage(err)}\n${usage()}`);
    return err instanceof FlagError ? 2 : 1;
  }
  if (parsed.kind === 'help') {
    process.stderr.write(parsed.usage);
    return 0;
  }
  const opts = parsed.options;
  if (opts.version) {
    process.stderr.write(`${VERSION}\n`);
    return 0;
  }
  const log = createLogger({ verbosity: opts.verbosity, name: 'flanneld' });
  log.info({ flags: { ...opts, etcdPassword: opts.etcdPassword ? '<redacted>' : '' } }, 'CLI flags config');

  const ac = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      log.info({ signal: sig }, 'shutting down');
      ac.abort();
    });
  }
  process.on('unhandledRejection', (err) => {
    log.fatal({ err: errorMessage(err) }, 'unhandled rejection');
    process.exit(1);
  });

  const handle = Handle.open();
  try {
    await run(opts, ac.signal, {
      log,
      registry: newRegistry({ defaultMetrics: true }),
      handle,
      subnetManager: subnetManagerFactory(log),
      backends,
      traffic: (mode) => trafficRules(mode, log.child({ traffic: mode })),
    });
    log.info('exiting cleanly');
    return 0;
  } catch (err) {
    log.error({ err: errorMessage(err), code: (err as { code?: unknown }).code }, 'flanneld failed');
    return 1;
  } finally {
    handle.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`flanneld: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
