// The backend registry (upstream backends register themselves by name; here
// the list is explicit). The daemon looks up NetworkConfig.backend.type.
import { hostGw } from './host-gw.ts';
import type { BackendFactory } from './types.ts';
import { udp } from './udp.ts';
import { vxlan } from './vxlan.ts';

export const backends = { vxlan, 'host-gw': hostGw, udp } satisfies Record<string, BackendFactory>;

export type BackendType = keyof typeof backends;

/** The factory for a config's backend type, or undefined when unknown. */
export function backendFor(type: string): BackendFactory | undefined {
  return Object.hasOwn(backends, type) ? backends[type as BackendType] : undefined;
}

export type { Backend, BackendContext, BackendFactory, BackendHooks, ExternalInterface, Network } from './types.ts';
export { BackendConfigError } from './types.ts';
