// netpolicy entry point: parse the command line, then run the agent until
// SIGINT/SIGTERM (lib/daemon/lifecycle.ts), `--cleanup`, or `explain`.
import { CommanderError } from 'commander';
import { runDaemon } from '../lib/daemon/lifecycle.ts';
import { errorMessage } from '../lib/errors.ts';
import { createLogger } from '../lib/log.ts';
import { runAgent, runExplain } from './daemon.ts';
import { parseArgs, type Parsed } from './flags.ts';

let parsed: Parsed;
try {
  parsed = parseArgs(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof CommanderError)) throw err;
  process.exit(err.exitCode);
}

const fail = (err: unknown): never => {
  process.stderr.write(`netpolicy: ${errorMessage(err)}\n`);
  process.exit(parsed.kind === 'explain' ? 2 : 1);
};

if (parsed.kind === 'explain') {
  runExplain(parsed.flags, (s) => void process.stdout.write(s)).then((code) => process.exit(code), fail);
} else {
  const flags = parsed.flags;
  const log = createLogger({ verbosity: flags.verbosity, name: 'netpolicy', ...(flags.logFormat === undefined ? {} : { format: flags.logFormat }) });
  log.info({ flags }, 'CLI flags config');
  runDaemon({ name: 'netpolicy', log, run: ({ signal, ready }) => runAgent(flags, log, signal, ready) }).then((code) => process.exit(code), fail);
}
