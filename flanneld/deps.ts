// The real dependencies of flanneld's main loop (tests pass fakes to run()
// instead): the netlink handle of our namespace, the subnet manager for the
// flags (etcd or Kubernetes), the backends, iptables/nft.
import type { Logger } from '../lib/log.ts';
import { newRegistry } from '../lib/metrics.ts';
import { Handle } from '../lib/netlink/index.ts';
import { RealIptables } from '../lib/netfilter/iptables.ts';
import { RealNft } from '../lib/netfilter/nft.ts';
import { backends } from './backend/index.ts';
import type { DaemonDeps } from './daemon.ts';
import type { FlanneldOptions } from './flags.ts';
import { EtcdSubnetManager } from './subnet/etcd.ts';
import { KubeSubnetManager } from './subnet/kube.ts';
import type { SubnetEnv } from './subnet/subnet-env.ts';
import type { SubnetManager } from './subnet/types.ts';
import { iptablesTrafficRules, nftTrafficRules } from './traffic/apply.ts';

function subnetManagerFactory(log: Logger) {
  return async (o: FlanneldOptions, prev: SubnetEnv | undefined, signal: AbortSignal): Promise<SubnetManager> => {
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

/** Opens the real dependencies; close() releases the netlink handle. */
export function realDeps(log: Logger, onReady: () => void): DaemonDeps & { close(): void } {
  const handle = Handle.open();
  return {
    log,
    registry: newRegistry({ defaultMetrics: true, component: 'flanneld' }),
    handle,
    subnetManager: subnetManagerFactory(log),
    backends,
    traffic: (mode) =>
      mode === 'iptables' ? iptablesTrafficRules(new RealIptables({ waitSeconds: 5 }), log.child({ traffic: mode })) : nftTrafficRules(new RealNft()),
    onReady,
    close: () => handle.close(),
  };
}
