// subnet.env: the file the flannel CNI plugin (and Docker, via
// mk-docker-opts.sh) reads. Same keys, order and "first usable IP" convention
// as upstream; written atomically (lib/fs writeFileAtomic: temp file in the
// same directory, fsync, rename, fsync of the directory). Read back with the
// project's one subnet.env parser (lib/subnet-env), which also explains where
// it is stricter than this file's former reader.
import { readFile } from 'node:fs/promises';
import { isNotFound } from '../../lib/errors.ts';
import { writeFileAtomic } from '../../lib/fs.ts';
import { SubnetEnvError, parseSubnetEnv as parseSubnetEnvValues } from '../../lib/subnet-env.ts';
import type { Lease, NetworkConfig } from './types.ts';
import type { IPPrefix } from '../../lib/ip/index.ts';

export { DEFAULT_SUBNET_FILE, SubnetEnvError } from '../../lib/subnet-env.ts';

/** flanneld's view of a previous subnet.env: what it needs for lease reuse and stale masq rules. */
export interface SubnetEnv {
  network?: IPPrefix;
  /** As written: the first usable IP with the lease's length (10.244.1.1/24). `.masked()` gives the lease. */
  subnet?: IPPrefix;
  ipv6Network?: IPPrefix;
  ipv6Subnet?: IPPrefix;
  mtu?: number;
  ipMasq?: boolean;
}

export interface SubnetEnvInput {
  config: NetworkConfig;
  lease: Lease;
  mtu: number;
  ipMasq: boolean;
}

/** The exact file content upstream writes. */
export function renderSubnetEnv({ config, lease, mtu, ipMasq }: SubnetEnvInput): string {
  const lines: string[] = [];
  if (config.ipv4) {
    if (!lease.subnet) throw new SubnetEnvError('IPv4 is enabled but the lease has no IPv4 subnet');
    lines.push(`FLANNEL_NETWORK=${config.ipv4.network.toString()}`);
    lines.push(`FLANNEL_SUBNET=${lease.subnet.withHost(1n).toString()}`);
  }
  if (config.ipv6) {
    if (!lease.ipv6Subnet) throw new SubnetEnvError('IPv6 is enabled but the lease has no IPv6 subnet');
    lines.push(`FLANNEL_IPV6_NETWORK=${config.ipv6.network.toString()}`);
    lines.push(`FLANNEL_IPV6_SUBNET=${lease.ipv6Subnet.withHost(1n).toString()}`);
  }
  lines.push(`FLANNEL_MTU=${mtu}`);
  lines.push(`FLANNEL_IPMASQ=${ipMasq ? 'true' : 'false'}`);
  return lines.map((l) => l + '\n').join('');
}

/**
 * Parses subnet.env text (see lib/subnet-env for the grammar); bad values
 * are SubnetEnvError, absent keys are absent. Of a FLANNEL_NETWORK list the
 * first item counts: flanneld writes one network per file.
 */
export function parseSubnetEnv(text: string): SubnetEnv {
  const v = parseSubnetEnvValues(text);
  const out: SubnetEnv = {};
  if (v.networks[0]) out.network = v.networks[0];
  if (v.subnet) out.subnet = v.subnet;
  if (v.ipv6Networks[0]) out.ipv6Network = v.ipv6Networks[0];
  if (v.ipv6Subnet) out.ipv6Subnet = v.ipv6Subnet;
  if (v.mtu !== undefined) out.mtu = v.mtu;
  if (v.ipMasq !== undefined) out.ipMasq = v.ipMasq;
  return out;
}

/** Reads a subnet.env; undefined when the file does not exist. */
export async function readSubnetEnv(path: string): Promise<SubnetEnv | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw new SubnetEnvError(`failed to read ${path}: ${(err as Error).message}`, { file: path, cause: err });
  }
  return parseSubnetEnv(text);
}

/** Writes the file upstream writes: directory 0755, a new file 0644, an existing one keeps its permissions. */
export async function writeSubnetEnv(path: string, input: SubnetEnvInput): Promise<void> {
  try {
    await writeFileAtomic(path, renderSubnetEnv(input), { mode: 0o644, keepMode: true, dirMode: 0o755 });
  } catch (err) {
    if (err instanceof SubnetEnvError) throw err;
    throw new SubnetEnvError(`failed to write ${path}: ${(err as Error).message}`, { file: path, cause: err });
  }
}
