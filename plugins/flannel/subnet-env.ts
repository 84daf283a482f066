// The flannel plugin's view of subnet.env (parsed by lib/subnet-env, the
// project's one reader): every key upstream requires present, networks and
// subnets masked (flanneld writes the gateway address, 10.244.1.1/24 →
// 10.244.1.0/24), networks deduplicated in file order.
import type { IPPrefix } from '../../lib/ip/index.ts';
import { SubnetEnvError, missingKeys, parseSubnetEnv, readSubnetEnvFile, type SubnetEnv } from '../../lib/subnet-env.ts';

export { SubnetEnvNotFoundError, osErrorText } from '../../lib/subnet-env.ts';
/** subnet.env exists but cannot be read or used (the plugin's name for lib's SubnetEnvError). */
export { SubnetEnvError as SubnetEnvInvalidError };

export interface FlannelSubnetEnv {
  /** FLANNEL_NETWORK, masked, deduplicated, in file order. */
  readonly networks: readonly IPPrefix[];
  /** FLANNEL_SUBNET, masked. */
  readonly subnet: IPPrefix | undefined;
  /** FLANNEL_IPV6_NETWORK, masked, deduplicated. */
  readonly ipv6Networks: readonly IPPrefix[];
  /** FLANNEL_IPV6_SUBNET, masked. */
  readonly ipv6Subnet: IPPrefix | undefined;
  readonly mtu: number;
  readonly ipMasq: boolean;
}

function maskedUnique(list: readonly IPPrefix[]): IPPrefix[] {
  const out: IPPrefix[] = [];
  for (const p of list.map((q) => q.masked())) {
    if (!out.some((q) => q.equals(p))) out.push(p);
  }
  return out;
}

/** Throws SubnetEnvError (`<file> is missing FLANNEL_NETWORK, ...`) unless every required key is there. */
function complete(file: string, env: SubnetEnv): FlannelSubnetEnv {
  const missing = missingKeys(env);
  if (missing.length > 0 || env.mtu === undefined || env.ipMasq === undefined) {
    throw new SubnetEnvError(`${file} is missing ${missing.join(', ')}`, { file });
  }
  return {
    networks: maskedUnique(env.networks),
    subnet: env.subnet?.masked(),
    ipv6Networks: maskedUnique(env.ipv6Networks),
    ipv6Subnet: env.ipv6Subnet?.masked(),
    mtu: env.mtu,
    ipMasq: env.ipMasq,
  };
}

/** Parses subnet.env text. `file` only names the file in errors. Throws SubnetEnvError. */
export function parseFlannelSubnetEnv(file: string, text: string): FlannelSubnetEnv {
  return complete(file, parseSubnetEnv(text, file));
}

/** Reads and parses subnet.env; a missing file is SubnetEnvNotFoundError, anything else unusable SubnetEnvError. */
export function loadFlannelSubnetEnv(file: string): FlannelSubnetEnv {
  return complete(file, readSubnetEnvFile(file));
}
