// Failures of the test VM itself (not of the command run inside it: that
// one's exit code is a result). Callers switch on `code`.
import { NetError, type NetErrorOptions } from '../../lib/errors.ts';

export type VmErrorCode =
  /** A host tool the VM needs is not installed (qemu, busybox-static, apt, dpkg, kmod). */
  | 'VM_TOOL_MISSING'
  /** The kernel package could not be resolved or fetched. */
  | 'VM_KERNEL'
  /** A module the VM is asked to load is not in the kernel package. */
  | 'VM_MODULE_MISSING'
  /** qemu ended without the guest writing an exit code (boot or mount failed, crash). */
  | 'VM_BOOT_FAILED'
  | 'VM_TIMEOUT'
  | 'VM_ABORTED';

export class VmError extends NetError {
  declare readonly code: VmErrorCode;
  /** Where qemu's console log was kept, when there is one. */
  readonly consoleLog: string | undefined;
  constructor(code: VmErrorCode, message: string, options?: NetErrorOptions & { consoleLog?: string | undefined }) {
    super(code, message, options);
    this.consoleLog = options?.consoleLog;
  }
}
