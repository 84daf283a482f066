// Errors the shared CNI pieces and the plugins raise for failures without a
// kind of their own. They carry no CNI number: the skeleton
// (plugins/skel/errors.ts) maps an unclassified NetError to 999.
import { NetError } from '../../lib/errors.ts';

/** A failure with no ErrorCode kind ("INTERNAL"; CNI 999 at the boundary). */
export function internal(msg: string, cause?: unknown): NetError {
  return new NetError('INTERNAL', msg, cause === undefined ? undefined : { cause });
}
