// kube-proxy entry point: `kube-proxy [flags]` runs the proxy until
// SIGINT/SIGTERM (or, with --cleanup, removes every mode's rules and exits);
// `kube-proxy trace [flags]` prints where a packet goes. Only this file exits.
import { CommanderError } from 'commander';
import { runDaemon } from '../lib/daemon/lifecycle.ts';
import { errorMessage } from '../lib/errors.ts';
import { createLogger } from '../lib/log.ts';
import { VERSION } from '../lib/version.ts';
import { RealConntrack } from '../lib/netfilter/conntrack.ts';
import { RealIpset } from '../lib/netfilter/ipset.ts';
import { RealIptables } from '../lib/netfilter/iptables.ts';
import { RealNft } from '../lib/netfilter/nft.ts';
import { Handle } from '../lib/netlink/handle.ts';
import { openIpvs } from '../lib/netlink/ipvs.ts';
import { cleanupAll, runProxy } from './cmd/run.ts';
import { parseTraceArgs, runTrace } from './cmd/trace.ts';
import { loadConfig } from './config/index.ts';

// Upstream's lock options: -w 5 -W 100000.
const iptables = new RealIptables({ waitSeconds: 5, waitIntervalUsec: 100_000 });

/** Exit code of a failure before the daemon runs: 0 after --help, 2 for a bad command line or config, else 1. */
function exitCode(err: unknown): number {
  if (err instanceof CommanderError && err.code === 'commander.helpDisplayed') return 0;
  const code = (err as { code?: unknown }).code;
  return code === 'USAGE' || code === 'INVALID_CONFIG' ? 2 : 1;
}

async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === 'trace') {
    const out = await runTrace(await parseTraceArgs(argv.slice(1)), { iptables, warn: (m) => process.stderr.write(`warning: ${m}\n`) });
    process.stdout.write(out.text);
    return 0;
  }
  const cfg = await loadConfig(argv);
  if (cfg.version) {
    process.stdout.write(`kube-proxy ${VERSION} (kube-netstack)\n`);
    return 0;
  }
  const log = createLogger({ verbosity: cfg.verbosity, name: 'kube-proxy', ...(cfg.logFormat === undefined ? {} : { format: cfg.logFormat }) });
  const deps = { iptables, conntrack: new RealConntrack(), nft: new RealNft(), ipset: new RealIpset(), log, openIpvs: () => openIpvs(), openNetlink: () => Handle.open() };
  if (cfg.cleanup) return (await cleanupAll(deps)) ? 0 : 1;
  return runDaemon({ name: 'kube-proxy', log, run: ({ signal, ready }) => runProxy(cfg, signal, ready, deps) });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const code = exitCode(err);
    if (code !== 0) process.stderr.write(`kube-proxy: ${errorMessage(err)}\n`);
    process.exit(code);
  },
);
