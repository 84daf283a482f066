// subnet.env, the file flanneld writes and the flannel CNI plugin reads
// (research flannel.md §1.5, §5.2). The one reader of the project: the CNI
// plugin and flanneld (re-reading its previous file on restart) both use it.
//
// The grammar is what upstream's CNI plugin accepts (flannel-io/cni-plugin
// flannel.go loadFlannelSubnetEnv: a bufio.Scanner over lines, each split at
// the first '=' with strings.SplitN, the value used as is). flanneld's own
// reader used to be laxer; where the two disagreed, this is the decision:
//   - Whitespace is NOT trimmed, neither around keys nor values. Upstream's
//     plugin does not trim, so "FLANNEL_MTU=1450 " is unusable for the
//     plugin; flanneld accepting it would only hide a file the CNI plugin
//     rejects. (flanneld writes no whitespace; only a hand-edited file has it.)
//   - FLANNEL_NETWORK and FLANNEL_IPV6_NETWORK are comma lists and EVERY item
//     must be a CIDR, as upstream's plugin requires. flanneld's reader took
//     the first item and ignored the rest, bad or not; its view still uses
//     the first network (flanneld writes exactly one), but a list with a bad
//     item is an error for both.
//   - A line without '=' is ignored, unless its key is a known one: that is
//     an error (upstream's plugin indexes parts[1] and panics; flanneld
//     skipped it). Blank lines and '#' comments are unknown keys: ignored,
//     which is what flanneld's reader did explicitly.
//   - "\r\n" line ends are accepted (bufio.ScanLines drops the '\r').
//   - A later line for the same key wins (both readers agreed).
//   - FLANNEL_MTU is a decimal uint32 with Go's ParseUint wording in errors
//     (flanneld accepted any digit string).
//   - FLANNEL_IPMASQ is true only for exactly "true" (both agreed).
// Values are returned as written: FLANNEL_SUBNET keeps its host bits
// (10.244.1.1/24, the bridge's address); callers mask when they need the lease.
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { NetError, errnoOf } from './errors.ts';
import { IPPrefix } from './ip/index.ts';

export const DEFAULT_SUBNET_FILE = '/run/flannel/subnet.env';

/** The file's values, as written; a key absent from the file is undefined (networks: empty). */
export interface SubnetEnv {
  /** FLANNEL_NETWORK items in file order. */
  readonly networks: readonly IPPrefix[];
  /** FLANNEL_SUBNET: the first usable address with the lease's length. */
  readonly subnet: IPPrefix | undefined;
  readonly ipv6Networks: readonly IPPrefix[];
  readonly ipv6Subnet: IPPrefix | undefined;
  readonly mtu: number | undefined;
  readonly ipMasq: boolean | undefined;
}

/** subnet.env cannot be read or used (a bad value, a missing key, an unreadable file). */
export class SubnetEnvError extends NetError {
  /** The file concerned, when there is one. */
  readonly file: string | undefined;
  constructor(message: string, options: { file?: string; cause?: unknown } = {}) {
    super('SUBNET_ENV_INVALID', message, { cause: options.cause });
    this.file = options.file;
  }
}

/** subnet.env does not exist: flanneld has not written it (yet). */
export class SubnetEnvNotFoundError extends NetError {
  readonly file: string;
  constructor(file: string, cause: unknown) {
    super('SUBNET_ENV_NOT_FOUND', `open ${file}: no such file or directory`, {
      cause,
      details: `flanneld has not written ${file} yet: it does so once it holds a subnet lease for this node`,
    });
    this.file = file;
  }
}

const KEYS = ['FLANNEL_NETWORK', 'FLANNEL_SUBNET', 'FLANNEL_IPV6_NETWORK', 'FLANNEL_IPV6_SUBNET', 'FLANNEL_MTU', 'FLANNEL_IPMASQ'] as const;
type Key = (typeof KEYS)[number];
const isKey = (k: string): k is Key => (KEYS as readonly string[]).includes(k);

function parseCidr(file: string, text: string): IPPrefix {
  const p = IPPrefix.parse(text);
  if (!p) throw new SubnetEnvError(`invalid CIDR address: ${text}`, { file });
  return p;
}

const parseCidrList = (file: string, text: string): IPPrefix[] => text.split(',').map((item) => parseCidr(file, item));

const UINT32_MAX = 0xffff_ffff;

function parseMtu(file: string, text: string): number {
  if (!/^[0-9]+$/.test(text)) throw new SubnetEnvError(`strconv.ParseUint: parsing "${text}": invalid syntax`, { file });
  const n = Number(text);
  if (n > UINT32_MAX) throw new SubnetEnvError(`strconv.ParseUint: parsing "${text}": value out of range`, { file });
  return n;
}

/** The KEY=VALUE lines of the known keys, in file order. `file` only names the file in errors. */
function* scan(file: string, text: string): Generator<[Key, string]> {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (const raw of lines) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const eq = line.indexOf('=');
    const key = eq === -1 ? line : line.slice(0, eq);
    if (!isKey(key)) continue;
    if (eq === -1) throw new SubnetEnvError(`${file}: line "${line}" has no value`, { file });
    yield [key, line.slice(eq + 1)];
  }
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Parses subnet.env text; throws SubnetEnvError for a bad value, on the line
 * where it occurs (as upstream: a later good line does not excuse an earlier
 * bad one). Missing keys are not an error here (see missingKeys).
 */
export function parseSubnetEnv(text: string, file = 'subnet.env'): SubnetEnv {
  const env: Mutable<SubnetEnv> = {
    networks: [],
    subnet: undefined,
    ipv6Networks: [],
    ipv6Subnet: undefined,
    mtu: undefined,
    ipMasq: undefined,
  };
  for (const [key, value] of scan(file, text)) {
    switch (key) {
      case 'FLANNEL_NETWORK':
        env.networks = parseCidrList(file, value);
        break;
      case 'FLANNEL_SUBNET':
        env.subnet = parseCidr(file, value);
        break;
      case 'FLANNEL_IPV6_NETWORK':
        env.ipv6Networks = parseCidrList(file, value);
        break;
      case 'FLANNEL_IPV6_SUBNET':
        env.ipv6Subnet = parseCidr(file, value);
        break;
      case 'FLANNEL_MTU':
        env.mtu = parseMtu(file, value);
        break;
      case 'FLANNEL_IPMASQ':
        env.ipMasq = value === 'true';
        break;
    }
  }
  return env;
}

/**
 * The keys a usable file lacks, named like upstream's plugin (missingFields):
 * a network and a subnet of at least one family, the MTU and IPMASQ.
 */
export function missingKeys(env: SubnetEnv): string[] {
  const missing: string[] = [];
  if (env.networks.length === 0 && env.ipv6Networks.length === 0) missing.push('FLANNEL_NETWORK', 'FLANNEL_IPV6_NETWORK');
  if (env.subnet === undefined && env.ipv6Subnet === undefined) missing.push('FLANNEL_SUBNET', 'FLANNEL_IPV6_SUBNET');
  if (env.mtu === undefined) missing.push('FLANNEL_MTU');
  if (env.ipMasq === undefined) missing.push('FLANNEL_IPMASQ');
  return missing;
}

/** The OS error text without Node's "CODE: ... , syscall 'path'" decoration (Go's wording). */
export function osErrorText(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const m = /^[A-Z0-9_]+: (.*?), [a-z_]+(?: '.*')?$/.exec(msg);
  return m?.[1] ?? msg;
}

/**
 * Reads and parses `file`. A missing file (or a missing directory above it,
 * /run/flannel before flanneld ran) is SubnetEnvNotFoundError; any other read
 * failure or bad value is SubnetEnvError.
 */
export function readSubnetEnvFile(file: string): SubnetEnv {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === constants.errno.ENOENT || errno === constants.errno.ENOTDIR) throw new SubnetEnvNotFoundError(file, err);
    throw new SubnetEnvError(`open ${file}: ${osErrorText(err)}`, { file, cause: err });
  }
  return parseSubnetEnv(text, file);
}
