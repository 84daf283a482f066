// The GC request's list of live attachments (CNI 1.1.0, research cni.md
// §1.10): `cni.dev/valid-attachments`, or `cni.dev/attachments` as the 1.1.0
// tag named it (libcni sends both). GC removes whatever is NOT on the list,
// so a list we cannot read completely must stop the GC: an entry skipped
// because it is malformed would get a live attachment's resources released.
// Hence: no list → undefined (GC does nothing); a list that is not an array
// of {containerID: string, ifname: string} objects → a decoding error (6).
import { ErrorCode, NetError } from '../../lib/errors.ts';

export interface Attachment {
  readonly containerId: string;
  readonly ifName: string;
}

export const VALID_ATTACHMENTS_KEYS = ['cni.dev/valid-attachments', 'cni.dev/attachments'] as const;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The attachments a GC must keep; undefined when the request carries no list. */
export function validAttachments(config: Readonly<Record<string, unknown>>): Attachment[] | undefined {
  const key = VALID_ATTACHMENTS_KEYS.find((k) => config[k] !== undefined && config[k] !== null);
  if (key === undefined) return undefined;
  const raw = config[key];
  if (!Array.isArray(raw)) throw new NetError(ErrorCode.DecodingFailure, `${key}: expected an array`);
  return raw.map((a: unknown, i) => {
    if (!isObject(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string') {
      throw new NetError(ErrorCode.DecodingFailure, `${key}[${i}]: expected {"containerID": string, "ifname": string}`);
    }
    return { containerId: a.containerID, ifName: a.ifname };
  });
}

/** A set key for an attachment (container IDs and interface names cannot contain NUL). */
export function attachmentKey(a: Attachment): string {
  return `${a.containerId}\0${a.ifName}`;
}
