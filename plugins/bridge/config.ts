// Bridge network configuration: parsed, validated and defaulted in one place.
// Field names, defaults and error texts follow the reference plugin
// (research cni.md §2.1); config errors are ErrorCode.InvalidConfig (CNI
// code 7, mapped by the skeleton).
import { ErrorCode, NetError } from '../../lib/errors.ts';
import { parseCniArgs, getRuntimeConfig } from '../skel/args.ts';
import type { CmdArgs, DNS } from '../skel/types.ts';
import { defaultIPMasqBackend, type IPMasqBackend } from '../common/ipmasq.ts';

export interface VlanRange {
  min: number;
  max: number;
}

export interface BridgeConf {
  readonly name: string;
  readonly cniVersion: string;
  readonly bridge: string;
  readonly isGateway: boolean;
  readonly isDefaultGateway: boolean;
  readonly forceAddress: boolean;
  readonly ipMasq: boolean;
  readonly ipMasqBackend: IPMasqBackend;
  readonly mtu: number | undefined;
  readonly hairpinMode: boolean;
  readonly promiscMode: boolean;
  readonly vlan: number;
  readonly vlanTrunk: readonly VlanRange[];
  readonly preserveDefaultVlan: boolean;
  readonly macspoofchk: boolean;
  readonly enableDad: boolean;
  readonly disableContainerInterface: boolean;
  readonly portIsolation: boolean;
  /** IPAM plugin type; undefined = L2 only (no addresses). */
  readonly ipamType: string | undefined;
  readonly dns: DNS | undefined;
  /** Container MAC from runtimeConfig.mac > args.cni.mac > CNI_ARGS MAC. */
  readonly mac: string | undefined;
}

const invalid = (msg: string): NetError => new NetError(ErrorCode.InvalidConfig, msg);

function bool(conf: Record<string, unknown>, key: string, dflt = false): boolean {
  const v = conf[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw invalid(`failed to load netconf: ${key}: cannot unmarshal ${typeof v} into a bool`);
  return v;
}

function int(conf: Record<string, unknown>, key: string): number | undefined {
  const v = conf[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw invalid(`failed to load netconf: ${key}: cannot unmarshal ${typeof v} into an int`);
  return v;
}

function str(conf: Record<string, unknown>, key: string): string | undefined {
  const v = conf[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalid(`failed to load netconf: ${key}: cannot unmarshal ${typeof v} into a string`);
  return v;
}

const MAC_RE = /^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/;

function validMac(mac: string, where: string): string {
  if (!MAC_RE.test(mac)) throw invalid(`invalid MAC address ${JSON.stringify(mac)} in ${where}`);
  return mac.toLowerCase().replaceAll('-', ':');
}

/** vlanTrunk entries: `{id}` or `{minID, maxID}` (errors as the reference). */
export function parseVlanTrunk(raw: unknown): VlanRange[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalid('failed to load netconf: vlanTrunk must be a list');
  const out: VlanRange[] = [];
  for (const item of raw) {
    const t = (item ?? {}) as { id?: unknown; minID?: unknown; maxID?: unknown };
    const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x);
    if (t.minID !== undefined) {
      if (!isInt(t.minID) || t.minID <= 0 || t.minID > 4094) throw invalid('incorrect trunk minID parameter');
      if (!isInt(t.maxID) || t.maxID <= 0 || t.maxID > 4094) throw invalid('incorrect trunk maxID parameter');
      if (t.maxID < t.minID) throw invalid('minID is greater than maxID in trunk parameter');
      out.push({ min: t.minID, max: t.maxID });
    } else if (t.maxID !== undefined) {
      throw invalid('minID and maxID should be configured simultaneously, minID is missing');
    }
    if (t.id !== undefined) {
      if (!isInt(t.id) || t.id <= 0 || t.id > 4094) throw invalid('incorrect trunk id parameter');
      out.push({ min: t.id, max: t.id });
    }
  }
  return out;
}

export function loadBridgeConf(args: Pick<CmdArgs, 'config' | 'cniVersion' | 'args' | 'env'>): BridgeConf {
  const c = args.config as Record<string, unknown>;
  const ipam = c.ipam;
  if (ipam !== undefined && ipam !== null && (typeof ipam !== 'object' || Array.isArray(ipam))) {
    throw invalid('failed to load netconf: ipam must be an object');
  }
  const ipamType = ipam ? (ipam as Record<string, unknown>).type : undefined;
  if (ipamType !== undefined && typeof ipamType !== 'string') throw invalid('failed to load netconf: ipam.type must be a string');

  const vlan = int(c, 'vlan') ?? 0;
  if (vlan < 0 || vlan > 4094) throw invalid(`invalid VLAN ID ${vlan} (must be between 0 and 4094)`);
  const vlanTrunk = parseVlanTrunk(c.vlanTrunk);
  const mtu = int(c, 'mtu');
  if (mtu !== undefined && (mtu < 0 || mtu > 65535)) throw invalid(`invalid MTU ${mtu}`);

  const isDefaultGateway = bool(c, 'isDefaultGateway');
  const hairpinMode = bool(c, 'hairpinMode');
  const promiscMode = bool(c, 'promiscMode');
  if (hairpinMode && promiscMode) throw invalid('cannot set hairpin mode and promiscuous mode at the same time.');
  const disableContainerInterface = bool(c, 'disableContainerInterface');
  if (disableContainerInterface && ipamType) throw invalid('cannot use IPAM when DisableContainerInterface flag is set');

  const backendRaw = str(c, 'ipMasqBackend');
  if (backendRaw !== undefined && backendRaw !== 'iptables' && backendRaw !== 'nftables') {
    throw invalid(`unrecognized ipMasqBackend "${backendRaw}"`);
  }

  // MAC precedence: CNI_ARGS < args.cni.mac < runtimeConfig.mac.
  let mac: string | undefined;
  const cniArgs = parseCniArgs(args.args, ['MAC']);
  const envMac = cniArgs.get('MAC');
  if (envMac) mac = validMac(envMac, 'CNI_ARGS');
  const argsMac = ((c.args as { cni?: { mac?: unknown } } | undefined)?.cni?.mac);
  if (typeof argsMac === 'string' && argsMac !== '') mac = validMac(argsMac, 'args.cni.mac');
  const rcMac = getRuntimeConfig(args as CmdArgs).mac;
  if (typeof rcMac === 'string' && rcMac !== '') mac = validMac(rcMac, 'runtimeConfig.mac');

  const dnsRaw = c.dns as DNS | undefined;
  const dnsSet =
    dnsRaw && typeof dnsRaw === 'object' && ((dnsRaw.nameservers?.length ?? 0) > 0 || !!dnsRaw.domain || (dnsRaw.search?.length ?? 0) > 0 || (dnsRaw.options?.length ?? 0) > 0);

  return {
    name: String(c.name),
    cniVersion: args.cniVersion,
    bridge: str(c, 'bridge') || 'cni0',
    isGateway: bool(c, 'isGateway') || isDefaultGateway,
    isDefaultGateway,
    forceAddress: bool(c, 'forceAddress'),
    ipMasq: bool(c, 'ipMasq'),
    ipMasqBackend: (backendRaw as IPMasqBackend | undefined) ?? defaultIPMasqBackend(args.env['PATH']),
    mtu: mtu === 0 ? undefined : mtu,
    hairpinMode,
    promiscMode,
    vlan,
    vlanTrunk,
    preserveDefaultVlan: bool(c, 'preserveDefaultVlan', false),
    macspoofchk: bool(c, 'macspoofchk'),
    enableDad: bool(c, 'enabledad'),
    disableContainerInterface,
    portIsolation: bool(c, 'portIsolation'),
    ipamType: ipamType || undefined,
    dns: dnsSet ? dnsRaw : undefined,
    mac,
  };
}
