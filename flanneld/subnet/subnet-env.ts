// subnet.env: the file the flannel CNI plugin (and Docker, via
// mk-docker-opts.sh) reads. Same keys, order and "first usable IP" convention
// as upstream; written atomically (temp file in the same directory, fsync,
// rename, fsync of the directory).
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NetError, isNotFound } from '../../lib/errors.ts';
import { Prefix } from './prefix.ts';
import type { Lease, NetworkConfig } from './types.ts';

export const DEFAULT_SUBNET_FILE = '/run/flannel/subnet.env';

export interface SubnetEnv {
  network?: Prefix;
  /** As written: the first usable IP with the lease's length (10.244.1.1/24). `.masked()` gives the lease. */
  subnet?: Prefix;
  ipv6Network?: Prefix;
  ipv6Subnet?: Prefix;
  mtu?: number;
  ipMasq?: boolean;
}

export class SubnetEnvError extends NetError {
  constructor(message: string, cause?: unknown) {
    super('SUBNET_ENV', message, { cause });
  }
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

/** Parses KEY=VALUE lines; unknown keys, blanks and # comments are ignored, bad values are errors. */
export function parseSubnetEnv(text: string): SubnetEnv {
  const out: SubnetEnv = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    const prefix = (): Prefix => {
      try {
        // FLANNEL_NETWORK may be a comma list (multi-network); the first one counts here.
        return Prefix.parse(value.split(',')[0]!.trim());
      } catch (err) {
        throw new SubnetEnvError(`subnet.env: invalid ${key} "${value}"`, err);
      }
    };
    switch (key) {
      case 'FLANNEL_NETWORK':
        out.network = prefix();
        break;
      case 'FLANNEL_SUBNET':
        out.subnet = prefix();
        break;
      case 'FLANNEL_IPV6_NETWORK':
        out.ipv6Network = prefix();
        break;
      case 'FLANNEL_IPV6_SUBNET':
        out.ipv6Subnet = prefix();
        break;
      case 'FLANNEL_MTU': {
        if (!/^\d+$/.test(value)) throw new SubnetEnvError(`subnet.env: invalid FLANNEL_MTU "${value}"`);
        out.mtu = Number(value);
        break;
      }
      case 'FLANNEL_IPMASQ':
        out.ipMasq = value === 'true';
        break;
    }
  }
  return out;
}

/** Reads a subnet.env; undefined when the file does not exist. */
export async function readSubnetEnv(path: string): Promise<SubnetEnv | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw new SubnetEnvError(`failed to read ${path}: ${(err as Error).message}`, err);
  }
  return parseSubnetEnv(text);
}

/**
 * Atomically replaces `path` with `content`: directory created 0755, temp
 * file beside the target, fsync, rename, fsync of the directory. An existing
 * file keeps its permissions; a new one gets 0644.
 */
export async function writeFileAtomic(path: string, content: string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  let mode = 0o644;
  try {
    mode = (await stat(path)).mode & 0o7777;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.chmod(mode); // not subject to the umask
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new SubnetEnvError(`failed to write ${path}: ${(err as Error).message}`, err);
  }
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

export async function writeSubnetEnv(path: string, input: SubnetEnvInput): Promise<void> {
  await writeFileAtomic(path, renderSubnetEnv(input));
}
