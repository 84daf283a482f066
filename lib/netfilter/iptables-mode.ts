// Which iptables a host uses: legacy (x_tables) or nft (iptables-nft on
// nf_tables). The two keep separate rulesets, so a component that writes with
// the other one than the host's kubelet, firewall or CNI splits the ruleset:
// its rules are evaluated before or after everything else, whatever
// `-I`/`-A` says. Upstream's images run iptables-wrapper once at start; this
// is the same decision, made in the one place every component's iptables
// runner goes through (RealIptables):
//
//   1. Only one flavour installed (no iptables-legacy-restore, or no
//      iptables-nft-restore beside it): the plain `iptables-restore`.
//   2. No legacy table exists in the namespace (/proc/net/ip_tables_names and
//      ip6_tables_names empty or absent: x_tables registers every legacy table
//      there, iptables-nft none): nft, without starting a process. This is the
//      common case and what keeps the bridge plugin's ADD cheap.
//   3. kubelet's hint chains (KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY in
//      mangle), looked for with iptables-nft first and then legacy, as
//      iptables-wrapper does.
//   4. No hint: the flavour with more rules (`-A` lines of iptables-save for
//      both families), nft on a tie, as iptables-wrapper's installer did.
//
// The answer is kept per namespace for the life of the process.
import { accessSync, closeSync, constants, readFileSync } from 'node:fs';
import { openNetns, withNetnsSync } from '../netns/index.ts';
import { run } from '../exec.ts';

export type IptablesMode = 'legacy' | 'nft';
/** What chooses the binaries: a mode, `auto` (detect), or `default` (the plain names, no detection). */
export type IptablesModeSetting = IptablesMode | 'auto' | 'default';

export interface ModeProbe {
  /** Whether an executable of that name is in one of the sbin directories. */
  hasBinary(name: string): boolean;
  /** Contents of /proc/net/<name> in the namespace, or undefined when absent. */
  procNet(name: string): string | undefined;
  /** stdout of a save command (errors give ''). */
  save(command: string, args: readonly string[]): Promise<string>;
}

export interface Detection {
  /** The binaries' flavour; undefined: the plain names (only one flavour installed). */
  mode: IptablesMode | undefined;
  /** Why, for the log. */
  reason: string;
}

const HINT = /^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY)\b/m;
const ruleLines = (text: string): number => text.split('\n').filter((l) => l.startsWith('-A ')).length;

/** The decision of the header comment, over a probe of the system (pure apart from the probe). */
export async function detectIptablesMode(probe: ModeProbe): Promise<Detection> {
  if (!probe.hasBinary('iptables-legacy-restore') || !probe.hasBinary('iptables-nft-restore')) {
    return { mode: undefined, reason: 'only one iptables flavour is installed' };
  }
  const legacyTables = `${probe.procNet('ip_tables_names') ?? ''}${probe.procNet('ip6_tables_names') ?? ''}`.trim();
  if (legacyTables === '') return { mode: 'nft', reason: 'no legacy iptables table exists' };
  for (const cmd of ['iptables-nft-save', 'ip6tables-nft-save']) {
    if (HINT.test(await probe.save(cmd, ['-t', 'mangle']))) return { mode: 'nft', reason: `kubelet's hint chain found by ${cmd}` };
  }
  // Not `-t mangle` for legacy: that would create the table.
  const legacy = [await probe.save('iptables-legacy-save', []), await probe.save('ip6tables-legacy-save', [])];
  if (legacy.some((t) => HINT.test(t))) return { mode: 'legacy', reason: "kubelet's hint chain found by iptables-legacy-save" };
  const nft = [await probe.save('iptables-nft-save', []), await probe.save('ip6tables-nft-save', [])];
  const nLegacy = legacy.reduce((n, t) => n + ruleLines(t), 0);
  const nNft = nft.reduce((n, t) => n + ruleLines(t), 0);
  return nLegacy > nNft
    ? { mode: 'legacy', reason: `${nLegacy} legacy rules against ${nNft} nft rules` }
    : { mode: 'nft', reason: `${nNft} nft rules against ${nLegacy} legacy rules` };
}

const SBIN = ['/usr/sbin', '/sbin', '/usr/local/sbin', '/usr/bin', '/bin'];

/** The probe of the real system, in the namespace at `netns` (default: the caller's). */
export function systemProbe(netns?: string): ModeProbe {
  return {
    hasBinary(name) {
      const dirs = [...SBIN, ...(process.env['PATH'] ?? '').split(':').filter(Boolean)];
      return dirs.some((d) => {
        try {
          accessSync(`${d}/${name}`, constants.X_OK);
          return true;
        } catch {
          return false;
        }
      });
    },
    procNet(name) {
      const read = (): string | undefined => {
        try {
          return readFileSync(`/proc/thread-self/net/${name}`, 'utf8');
        } catch {
          return undefined;
        }
      };
      if (netns === undefined) return read();
      const fd = openNetns(netns);
      try {
        return withNetnsSync(fd, read);
      } finally {
        closeSync(fd);
      }
    },
    async save(command, args) {
      try {
        return (await run(command, [...args], netns === undefined ? { timeoutMs: 5000 } : { netns, timeoutMs: 5000 })).stdout;
      } catch {
        return '';
      }
    },
  };
}

const cache = new Map<string, Promise<Detection>>();

/** detectIptablesMode over the system, once per namespace and process. */
export function iptablesModeOf(netns?: string): Promise<Detection> {
  const key = netns ?? '';
  let d = cache.get(key);
  if (!d) {
    d = detectIptablesMode(systemProbe(netns));
    cache.set(key, d);
  }
  return d;
}

/** `iptables-restore`, `ip6tables-nft-save`, …: the binary for a family, tool and flavour. */
export function iptablesBinary(family: 'ip' | 'ip6', tool: 'restore' | 'save', mode: IptablesMode | undefined): string {
  const base = family === 'ip' ? 'iptables' : 'ip6tables';
  return mode === undefined ? `${base}-${tool}` : `${base}-${mode}-${tool}`;
}

/** Parses a mode setting (flag or env value); undefined for anything else. */
export function parseModeSetting(v: string | undefined): IptablesModeSetting | undefined {
  return v === 'legacy' || v === 'nft' || v === 'auto' || v === 'default' ? v : undefined;
}
