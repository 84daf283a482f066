// Upstream's chain names and probability strings, exactly
// (pkg/proxy/iptables/proxier.go: portProtoHash, servicePortChainName,
// servicePortEndpointChainName, computeProbability).
import * as crypto from 'node:crypto';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 (standard alphabet, upper case, no padding: callers truncate). */
export function base32(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const b of bytes) {
    buffer = ((buffer << 8) | b) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32[(buffer >>> bits) & 31];
    }
  }
  if (bits > 0) out += BASE32[(buffer << (5 - bits)) & 31];
  return out;
}

// crypto.hash (Node ≥ 20.12) skips the Hash object: a third faster for 100,000 short strings.
const oneShot = (crypto as { hash?: (alg: string, data: string, enc: 'buffer') => Buffer }).hash;
const sha256 = (s: string): Buffer => (oneShot ? oneShot('sha256', s, 'buffer') : crypto.createHash('sha256').update(s).digest());

/** The first 16 base32 characters of SHA-256(s): 80 of the 256 bits, as upstream keeps. */
export function hash16(s: string): string {
  // 10 bytes are exactly 16 base32 characters.
  return base32(sha256(s).subarray(0, 10));
}

/** Chain-name hash of a service port: base32(sha256(nameString + protocol)). */
export function portProtoHash(nameString: string, protocolLower: string): string {
  return hash16(nameString + protocolLower);
}

export const KUBE_SVC = 'KUBE-SVC-';
export const KUBE_SVL = 'KUBE-SVL-';
export const KUBE_EXT = 'KUBE-EXT-';
export const KUBE_FW = 'KUBE-FW-';
export const KUBE_SEP = 'KUBE-SEP-';
/** Pre-1.24 name of the SVL/EXT chains; still deleted when found. */
export const KUBE_XLB = 'KUBE-XLB-';

export interface ServicePortChains {
  readonly cluster: string;
  readonly local: string;
  readonly external: string;
  readonly firewall: string;
}

export function servicePortChains(nameString: string, protocolLower: string): ServicePortChains {
  const h = portProtoHash(nameString, protocolLower);
  return { cluster: KUBE_SVC + h, local: KUBE_SVL + h, external: KUBE_EXT + h, firewall: KUBE_FW + h };
}

/** KUBE-SEP- + hash of nameString + protocol + "ip:port". */
export function endpointChainName(nameString: string, protocolLower: string, endpoint: string): string {
  return KUBE_SEP + hash16(nameString + protocolLower + endpoint);
}

/** Chains kube-proxy owns per service (isServiceChainName): the ones stale-chain cleanup may delete. */
export function isServiceChainName(chain: string): boolean {
  return (
    chain.startsWith(KUBE_SVC) ||
    chain.startsWith(KUBE_SVL) ||
    chain.startsWith(KUBE_EXT) ||
    chain.startsWith(KUBE_FW) ||
    chain.startsWith(KUBE_SEP) ||
    chain.startsWith(KUBE_XLB)
  );
}

/**
 * Go's fmt.Sprintf("%0.10f", 1.0/float64(n)). toFixed rounds the exact binary
 * value to nearest, like Go; 1/n is never exactly halfway at 10 digits.
 */
export function computeProbability(n: number): string {
  return (1 / n).toFixed(10);
}

/** computeProbability memoised by n, as upstream's precomputedProbabilities. */
export class Probabilities {
  private readonly cache: string[] = [];

  get(n: number): string {
    return (this.cache[n] ??= computeProbability(n));
  }
}

/** Go's fmt.Sprintf("%#08x", v): at least 8 hex digits after the 0x ("0x00004000"). */
export function formatMark(v: number): string {
  return `0x${v.toString(16).padStart(8, '0')}`;
}

/** The masquerade mark for --masquerade-bit (default 14 → 0x00004000). */
export function masqueradeMark(bit: number): string {
  if (!Number.isInteger(bit) || bit < 0 || bit > 31) throw new RangeError(`masquerade bit ${bit} is not in [0, 31]`);
  return formatMark((1 << bit) >>> 0);
}
