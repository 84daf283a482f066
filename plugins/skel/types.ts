// CNI protocol types shared by all plugins. Plugins work with the current
// (1.1.0) result shape; the skeleton converts to the requested cniVersion.

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';

/** Everything a plugin command receives, already validated by the skeleton. */
export interface CmdArgs {
  readonly command: CniCommand;
  readonly containerId: string;
  /** CNI_NETNS; may be '' for DEL/GC/STATUS. */
  readonly netns: string;
  readonly ifName: string;
  /** Raw CNI_ARGS string ("K=V;K2=V2"). */
  readonly args: string;
  /** CNI_PATH split on ':' (empty entries dropped). */
  readonly path: readonly string[];
  /** Raw stdin bytes (the network configuration). */
  readonly stdinData: Buffer;
  /** Parsed stdin object (already checked to be a JSON object with a valid name). */
  readonly config: Readonly<Record<string, unknown>>;
  /** The config's cniVersion ('0.1.0' when absent). */
  readonly cniVersion: string;
  /** The process environment the plugin was started with (for delegation). */
  readonly env: Readonly<Record<string, string | undefined>>;
}

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface IPConfig {
  /** Index into interfaces[]; absent in IPAM results. */
  interface?: number;
  /** CIDR notation with the host address, e.g. "10.1.0.5/24". */
  address: string;
  gateway?: string;
}

export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface DNS {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A result in the 1.0.0/1.1.0 shape (types/100), independent of cniVersion. */
export interface Result {
  interfaces?: Interface[];
  ips?: IPConfig[];
  routes?: Route[];
  dns?: DNS;
}

export interface PluginFuncs {
  add(args: CmdArgs): Promise<Result>;
  del(args: CmdArgs): Promise<void>;
  check(args: CmdArgs): Promise<void>;
  gc?(args: CmdArgs): Promise<void>;
  status?(args: CmdArgs): Promise<void>;
}

// Errors live in errors.ts; re-exported here for the plugins that import them with the types.
export { CniError, ErrCode } from './errors.ts';

export const SUPPORTED_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const CURRENT_VERSION = '1.1.0';
