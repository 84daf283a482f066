// CNI_ARGS ("K=V;K2=V2") and the parts of the request config every plugin reads.
import { NetError, wrapError } from '../../lib/errors.ts';
import { CniError, ErrCode } from './errors.ts';
import type { CmdArgs, Result } from './types.ts';
import { parseResult } from './version.ts';
import { goQuote, goQuoteList } from './json.ts';

/** Parses an UnmarshallableBool: 1/true/0/false, case-insensitive. */
export function parseArgsBool(value: string): boolean | undefined {
  switch (value.toLowerCase()) {
    case '1':
    case 'true':
      return true;
    case '0':
    case 'false':
      return false;
    default:
      return undefined;
  }
}

/**
 * Parses CNI_ARGS. Returns the values of the `known` keys (exact,
 * case-sensitive names; the last occurrence wins). `IgnoreUnknown` is always
 * understood and is not returned. Throws CniError:
 *  - code 4 `ARGS: invalid pair "X"` for a pair without exactly one '=',
 *  - code 4 `ARGS: error parsing value of pair "IgnoreUnknown=x": ...`,
 *  - code 2 (UnsupportedField) `ARGS: unknown args ["FOO=bar"]` for unknown
 *    keys unless IgnoreUnknown is true (the reference uses 999 with the same text).
 */
export function parseCniArgs(raw: string, known: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (raw === '') return out;
  const unknown: string[] = [];
  let ignoreUnknown = false;
  for (const pair of raw.split(';')) {
    const kv = pair.split('=');
    if (kv.length !== 2) throw new CniError(ErrCode.InvalidEnvironment, `ARGS: invalid pair ${goQuote(pair)}`);
    const [key = '', value = ''] = kv;
    if (key === 'IgnoreUnknown') {
      const b = parseArgsBool(value);
      if (b === undefined) {
        throw new CniError(
          ErrCode.InvalidEnvironment,
          `ARGS: error parsing value of pair ${goQuote(pair)}: boolean unmarshal error: invalid input ${value.toLowerCase()}`,
        );
      }
      ignoreUnknown = b;
    } else if (known.includes(key)) {
      out.set(key, value);
    } else {
      unknown.push(pair);
    }
  }
  if (unknown.length > 0 && !ignoreUnknown) {
    throw new CniError(ErrCode.UnsupportedField, `ARGS: unknown args ${goQuoteList(unknown)}`);
  }
  return out;
}

/**
 * The config's prevResult in the current shape, or undefined when absent.
 * A prevResult without cniVersion is read as the config's version.
 */
export function getPrevResult(args: CmdArgs): Result | undefined {
  const prev = args.config.prevResult;
  if (prev === undefined || prev === null) return undefined;
  try {
    return parseResult(prev, args.cniVersion);
  } catch (err) {
    if (err instanceof NetError) throw wrapError('could not parse prevResult: ', err);
    throw err;
  }
}

/** The config's runtimeConfig object ({} when absent or not an object). */
export function getRuntimeConfig(args: CmdArgs): Readonly<Record<string, unknown>> {
  const rc = args.config.runtimeConfig;
  return typeof rc === 'object' && rc !== null && !Array.isArray(rc) ? (rc as Record<string, unknown>) : {};
}
