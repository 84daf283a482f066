// Reading flanneld's subnet.env the way the upstream flannel CNI plugin does
// (flannel-io/cni-plugin flannel.go loadFlannelSubnetEnv): KEY=VALUE lines,
// unknown keys ignored, a later line for the same key wins, values are not
// trimmed. Networks are comma lists, deduplicated; subnets lose their host
// bits (flanneld writes the gateway address, 10.244.1.1/24 → 10.244.1.0/24).
import { readFileSync } from 'node:fs';
import { IPPrefix } from '../../lib/ip/index.ts';
import { errnoOf } from '../../lib/errors.ts';
import { constants } from 'node:os';
import { CniError, ErrCode } from '../skel/types.ts';

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

/** subnet.env does not exist: flanneld has not written it (yet). Transient, so code 11. */
export class SubnetEnvNotFoundError extends CniError {
  readonly file: string;
  constructor(file: string, cause: unknown) {
    super(
      ErrCode.TryAgainLater,
      `open ${file}: no such file or directory`,
      `flanneld has not written ${file} yet: it does so once it holds a subnet lease for this node`,
      { cause },
    );
    this.file = file;
  }
}

/** subnet.env exists but cannot be read or used. */
export class SubnetEnvInvalidError extends CniError {
  readonly file: string;
  constructor(file: string, msg: string, options?: { cause?: unknown }) {
    super(ErrCode.Internal, msg, undefined, options);
    this.file = file;
  }
}

function parseNetwork(file: string, text: string): IPPrefix {
  const p = IPPrefix.parse(text);
  if (!p) throw new SubnetEnvInvalidError(file, `invalid CIDR address: ${text}`);
  return p.masked();
}

function parseNetworkList(file: string, text: string): IPPrefix[] {
  const out: IPPrefix[] = [];
  for (const item of text.split(',')) {
    const p = parseNetwork(file, item);
    if (!out.some((q) => q.length === p.length && q.addr.equals(p.addr))) out.push(p);
  }
  return out;
}

const UINT32_MAX = 0xffff_ffff;

function parseMtu(file: string, text: string): number {
  if (!/^[0-9]+$/.test(text)) throw new SubnetEnvInvalidError(file, `strconv.ParseUint: parsing "${text}": invalid syntax`);
  const n = Number(text);
  if (n > UINT32_MAX) throw new SubnetEnvInvalidError(file, `strconv.ParseUint: parsing "${text}": value out of range`);
  return n;
}

/**
 * Parses subnet.env text. `file` only names the file in errors. Throws
 * SubnetEnvInvalidError for a bad value or when required keys are missing
 * (`<file> is missing FLANNEL_NETWORK, FLANNEL_IPV6_NETWORK, ...`).
 */
export function parseFlannelSubnetEnv(file: string, text: string): FlannelSubnetEnv {
  let networks: IPPrefix[] = [];
  let ipv6Networks: IPPrefix[] = [];
  let subnet: IPPrefix | undefined;
  let ipv6Subnet: IPPrefix | undefined;
  let mtu: number | undefined;
  let ipMasq: boolean | undefined;

  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (const raw of lines) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const eq = line.indexOf('=');
    const key = eq === -1 ? line : line.slice(0, eq);
    const value = line.slice(eq + 1);
    const known = ['FLANNEL_NETWORK', 'FLANNEL_SUBNET', 'FLANNEL_IPV6_NETWORK', 'FLANNEL_IPV6_SUBNET', 'FLANNEL_MTU', 'FLANNEL_IPMASQ'];
    if (!known.includes(key)) continue;
    if (eq === -1) throw new SubnetEnvInvalidError(file, `${file}: line "${line}" has no value`);
    switch (key) {
      case 'FLANNEL_NETWORK':
        networks = parseNetworkList(file, value);
        break;
      case 'FLANNEL_IPV6_NETWORK':
        ipv6Networks = parseNetworkList(file, value);
        break;
      case 'FLANNEL_SUBNET':
        subnet = parseNetwork(file, value);
        break;
      case 'FLANNEL_IPV6_SUBNET':
        ipv6Subnet = parseNetwork(file, value);
        break;
      case 'FLANNEL_MTU':
        mtu = parseMtu(file, value);
        break;
      case 'FLANNEL_IPMASQ':
        ipMasq = value === 'true';
        break;
    }
  }

  const missing: string[] = [];
  if (networks.length === 0 && ipv6Networks.length === 0) missing.push('FLANNEL_NETWORK', 'FLANNEL_IPV6_NETWORK');
  if (subnet === undefined && ipv6Subnet === undefined) missing.push('FLANNEL_SUBNET', 'FLANNEL_IPV6_SUBNET');
  if (mtu === undefined) missing.push('FLANNEL_MTU');
  if (ipMasq === undefined) missing.push('FLANNEL_IPMASQ');
  if (missing.length > 0 || mtu === undefined || ipMasq === undefined) {
    throw new SubnetEnvInvalidError(file, `${file} is missing ${missing.join(', ')}`);
  }
  return { networks, subnet, ipv6Networks, ipv6Subnet, mtu, ipMasq };
}

/** The OS error text without Node's "CODE: ... , syscall 'path'" decoration (Go's wording). */
export function osErrorText(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const m = /^[A-Z0-9_]+: (.*?), [a-z_]+(?: '.*')?$/.exec(msg);
  return m?.[1] ?? msg;
}

/** Reads and parses subnet.env; a missing file is SubnetEnvNotFoundError (code 11). */
export function loadFlannelSubnetEnv(file: string): FlannelSubnetEnv {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === constants.errno.ENOENT || errno === constants.errno.ENOTDIR) throw new SubnetEnvNotFoundError(file, err);
    throw new SubnetEnvInvalidError(file, `open ${file}: ${osErrorText(err)}`, { cause: err });
  }
  return parseFlannelSubnetEnv(file, text);
}
