// netpolicy's command line, in pflag syntax (commander): the agent's flags
// (issue 10, DESIGN.md contracts) and the `explain` subcommand. Parsing only:
// values are checked and defaulted here, into readonly objects.
import type { LogFormat } from '../lib/log.ts';
import { VERSION } from '../lib/version.ts';
import { hostname } from 'node:os';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { BackendName } from './backend.ts';
import { PROTOCOLS, type Protocol } from './model/index.ts';

export interface AgentFlags {
  readonly kubeconfig: string | undefined;
  readonly manifests: string | undefined;
  readonly hostnameOverride: string;
  readonly backend: BackendName;
  readonly healthzBindAddress: HostPort | undefined;
  readonly metricsBindAddress: HostPort | undefined;
  readonly logDenied: boolean;
  readonly newPods: 'hold' | 'open';
  readonly cleanup: boolean;
  readonly verbosity: number;
  /** Undefined: the default (text, or env KN_LOG_FORMAT). */
  readonly logFormat: LogFormat | undefined;
}

export interface ExplainFlags {
  readonly manifests: string | undefined;
  readonly agent: string | undefined;
  readonly source: string;
  readonly destination: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly family: 4 | 6 | undefined;
  readonly json: boolean;
}

export type Parsed = { readonly kind: 'agent'; readonly flags: AgentFlags } | { readonly kind: 'explain'; readonly flags: ExplainFlags };

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export const DEFAULT_HEALTHZ = '0.0.0.0:10299';
export const DEFAULT_METRICS = '0.0.0.0:9080';

/** host:port as pflag daemons take it ("0.0.0.0:10299", ":9080", "[::1]:80"); empty disables the server. */
export function parseHostPort(s: string): HostPort | undefined {
  if (s === '') return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new InvalidArgumentError(`"${s}" is not host:port`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

function parseVerbosity(s: string): number {
  const v = Number(s.replace(/^=/, ''));
  if (!Number.isInteger(v) || v < 0) throw new InvalidArgumentError(`"${s}" is not a verbosity level`);
  return v;
}

function parsePort(s: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < 1 || n > 65535) throw new InvalidArgumentError(`"${s}" is not a port (1-65535)`);
  return n;
}

function parseProtocol(s: string): Protocol {
  const p = s.toUpperCase() as Protocol;
  if (!PROTOCOLS.includes(p)) throw new InvalidArgumentError(`"${s}" is not one of ${PROTOCOLS.join(', ')}`);
  return p;
}

export interface ParseIO {
  /** Where help and errors go; default stderr. */
  readonly write?: (s: string) => void;
  /** The default of --hostname-override; default os.hostname(). */
  readonly hostname?: string;
}

/**
 * Parses argv (without node and script). Throws CommanderError for --help
 * (exitCode 0) and usage errors (exitCode 2 here, as pflag daemons exit).
 */
export function parseArgs(argv: readonly string[], io: ParseIO = {}): Parsed {
  const write = io.write ?? ((s: string) => void process.stderr.write(s));
  let parsed: Parsed | undefined;
  const program = new Command('netpolicy')
    .description('NetworkPolicy agent for the pods of one node (nftables or iptables + ipset)')
    .exitOverride()
    .configureOutput({ writeOut: write, writeErr: write })
    .allowExcessArguments(false)
    // `explain --manifests DIR` is the subcommand's option, not the agent's.
    .enablePositionalOptions()
    .option('--kubeconfig <path>', 'kubeconfig file (default: in-cluster config)')
    .option('--manifests <dir>', 'read Pods, Namespaces, Nodes and NetworkPolicies from this directory (watched) instead of the API')
    .option('--hostname-override <name>', 'the node whose pods are policed (spec.nodeName)', io.hostname ?? hostname())
    .addOption(new Option('--backend <backend>', 'enforcement backend').choices(['nftables', 'iptables']).default('nftables'))
    .option('--healthz-bind-address <host:port>', 'health endpoint (200 once the first sync is applied); empty disables', DEFAULT_HEALTHZ)
    .option('--metrics-bind-address <host:port>', 'Prometheus /metrics and /debug/state; empty disables', DEFAULT_METRICS)
    .option('--log-denied', 'log denied packets (rate-limited kernel log)', false)
    .addOption(new Option('--new-pods <mode>', 'hold: drop traffic of a local pod address until its policies are applied; open: let it pass (upstream agents)').choices(['hold', 'open']).default('hold'))
    .option('--cleanup', 'remove the rules and sets of the chosen backend, then exit', false)
    .option('-v, --v <level>', 'log verbosity (0 info, 1-3 debug, 4+ trace)', parseVerbosity, 0)
    .addOption(new Option('--log-format <format>', 'log format: text (klog lines, the default) or json').choices(['text', 'json']))
    .addOption(new Option('--logging-format <format>', 'same as --log-format (the name kube-proxy uses)').choices(['text', 'json']))
    .version(`netpolicy ${VERSION} (kube-netstack)`, '--version', 'print the version and exit')
    .action((o: Record<string, unknown>) => {
      parsed = {
        kind: 'agent',
        flags: {
          kubeconfig: o['kubeconfig'] as string | undefined,
          manifests: o['manifests'] as string | undefined,
          hostnameOverride: o['hostnameOverride'] as string,
          backend: o['backend'] as BackendName,
          healthzBindAddress: hostPortFlag('--healthz-bind-address', o['healthzBindAddress'] as string),
          metricsBindAddress: hostPortFlag('--metrics-bind-address', o['metricsBindAddress'] as string),
          logDenied: o['logDenied'] === true,
          newPods: o['newPods'] as 'hold' | 'open',
          cleanup: o['cleanup'] === true,
          verbosity: o['v'] as number,
          logFormat: (o['logFormat'] ?? o['loggingFormat']) as LogFormat | undefined,
        },
      };
    });
  program
    .command('explain')
    .description('allowed or denied, and which policies and rules decide it in each direction')
    .argument('<source>', 'a pod (namespace/name) or an IP address')
    .argument('<destination>', 'a pod (namespace/name)')
    .argument('<port>', 'destination port', parsePort)
    .argument('[protocol]', 'TCP, UDP or SCTP', parseProtocol, 'TCP')
    .option('--manifests <dir>', 'read the cluster from this manifest directory')
    .option('--agent <url>', "read a running agent's cluster state (its metrics address, e.g. http://127.0.0.1:9080)")
    .addOption(new Option('--family <family>', 'address family when both pods have two').choices(['4', '6']))
    .option('--json', 'print the verdict as JSON', false)
    .exitOverride()
    .configureOutput({ writeOut: write, writeErr: write })
    .action((source: string, destination: string, port: number, protocol: Protocol, o: Record<string, unknown>) => {
      const manifests = o['manifests'] as string | undefined;
      const agent = o['agent'] as string | undefined;
      if ((manifests === undefined) === (agent === undefined)) throw new CommanderError(2, 'netpolicy.explain', 'error: give exactly one of --manifests DIR or --agent URL\n');
      parsed = {
        kind: 'explain',
        flags: { manifests, agent, source, destination, port, protocol, family: o['family'] === undefined ? undefined : (Number(o['family']) as 4 | 6), json: o['json'] === true },
      };
    });
  try {
    program.parse([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError && err.exitCode !== 0) {
      if (err.code.startsWith('netpolicy.')) write(err.message);
      throw new CommanderError(2, err.code, err.message);
    }
    throw err;
  }
  if (!parsed) throw new CommanderError(2, 'netpolicy.noaction', 'error: nothing to do\n');
  return parsed;
}

function hostPortFlag(flag: string, value: string): HostPort | undefined {
  try {
    return parseHostPort(value);
  } catch (err) {
    throw new CommanderError(2, 'netpolicy.invalidArgument', `error: option '${flag}' argument ${(err as Error).message}\n`);
  }
}
