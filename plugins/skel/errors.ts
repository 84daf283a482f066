// The one place where errors become CNI error numbers (research cni.md §1.6).
// Plugins and lib throw NetErrors with stable string codes; runPlugin calls
// toCniError on whatever reaches it. A plugin pins a number itself only when
// the spec leaves the choice to the plugin (host-local's 110–112) or when it
// relays a delegate's error: those are CniErrors.
import { ErrorCode, NetError, isTemporary, type NetErrorOptions } from '../../lib/errors.ts';

/** CNI spec error codes. */
export const ErrCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IOFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  InvalidNetNS: 8,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  PluginNotAvailableLimitedConnectivity: 51,
  Internal: 999,
} as const;

/** Error codes with a spec meaning; an errno-named code maps through the errno rules below. */
const CODE_TABLE: Readonly<Record<string, number>> = {
  [ErrorCode.IncompatibleVersion]: ErrCode.IncompatibleVersion,
  [ErrorCode.UnsupportedField]: ErrCode.UnsupportedField,
  [ErrorCode.UnknownContainer]: ErrCode.UnknownContainer,
  [ErrorCode.InvalidEnvironment]: ErrCode.InvalidEnvironment,
  [ErrorCode.IoFailure]: ErrCode.IOFailure,
  [ErrorCode.DecodingFailure]: ErrCode.DecodingFailure,
  [ErrorCode.InvalidConfig]: ErrCode.InvalidNetworkConfig,
  [ErrorCode.NetnsNotFound]: ErrCode.InvalidNetNS,
  [ErrorCode.NotANetns]: ErrCode.InvalidNetNS,
  [ErrorCode.InvalidNetns]: ErrCode.InvalidNetNS,
  [ErrorCode.Unavailable]: ErrCode.PluginNotAvailable,
};

/** The stable string code of a spec number, so a CniError reads like any NetError. */
const NAME_OF: ReadonlyMap<number, string> = new Map([
  [ErrCode.IncompatibleVersion, ErrorCode.IncompatibleVersion],
  [ErrCode.UnsupportedField, ErrorCode.UnsupportedField],
  [ErrCode.UnknownContainer, ErrorCode.UnknownContainer],
  [ErrCode.InvalidEnvironment, ErrorCode.InvalidEnvironment],
  [ErrCode.IOFailure, ErrorCode.IoFailure],
  [ErrCode.DecodingFailure, ErrorCode.DecodingFailure],
  [ErrCode.InvalidNetworkConfig, ErrorCode.InvalidConfig],
  [ErrCode.InvalidNetNS, ErrorCode.InvalidNetns],
  [ErrCode.TryAgainLater, ErrorCode.TryAgain],
  [ErrCode.PluginNotAvailable, ErrorCode.Unavailable],
  [ErrCode.Internal, 'INTERNAL'],
]);

/**
 * An error that carries its CNI number explicitly. Use it only for numbers the
 * spec leaves to the plugin (100+) or for a delegate's error passed on; every
 * other error is a NetError and gets its number from the table.
 */
export class CniError extends NetError {
  readonly cniCode: number;
  constructor(cniCode: number, msg: string, details?: string, options?: NetErrorOptions & { code?: string }) {
    super(options?.code ?? NAME_OF.get(cniCode) ?? `CNI_${cniCode}`, msg, { cause: options?.cause, details });
    this.cniCode = cniCode;
  }
  override get name(): string {
    return 'CniError';
  }
  override withMessage(message: string, opts: { keepDetails?: boolean } = {}): CniError {
    const details = opts.keepDetails === false ? undefined : this.details;
    return new CniError(this.cniCode, message, details, { cause: this, code: this.code });
  }
}

/**
 * The CNI number for any thrown value: a CniError's own number; else the
 * code table (4 env, 6 decode, 7 config, 3 unknown container, 8 netns, 50
 * unavailable, ...); else 11 for anything transient (EAGAIN, EINTR, an
 * interrupted netlink dump, a lock timeout); else 999.
 */
export function cniCodeOf(err: unknown): number {
  if (err instanceof CniError) return err.cniCode;
  // A CniError from another copy of this module (a second bundle) still counts.
  const n = typeof err === 'object' && err !== null ? (err as { cniCode?: unknown }).cniCode : undefined;
  if (typeof n === 'number') return n;
  if (err instanceof NetError && Object.hasOwn(CODE_TABLE, err.code)) return CODE_TABLE[err.code]!;
  if (isTemporary(err)) return ErrCode.TryAgainLater;
  return ErrCode.Internal;
}

/** Maps any thrown value to the CniError the runtime will see (message and details unchanged). */
export function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (typeof err === 'object' && err !== null) {
    const e = err as { message?: unknown; details?: unknown; code?: unknown };
    const msg = typeof e.message === 'string' ? e.message : String(err);
    const details = typeof e.details === 'string' ? e.details : undefined;
    const code = err instanceof NetError ? { code: err.code } : {};
    return new CniError(cniCodeOf(err), msg, details, { cause: err, ...code });
  }
  return new CniError(ErrCode.Internal, String(err));
}

