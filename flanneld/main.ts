// flanneld entry point: parse flags and env, wire the real dependencies,
// run the main loop until SIGINT/SIGTERM (lib/daemon/lifecycle.ts), exit.
import { runDaemon } from '../lib/daemon/lifecycle.ts';
import { errorMessage } from '../lib/errors.ts';
import { createLogger, parseLogFormat } from '../lib/log.ts';
import { VERSION } from '../lib/version.ts';
import { run } from './daemon.ts';
import { realDeps } from './deps.ts';
import { FlagError, parseFlags, usage } from './flags.ts';
import type { ParseResult } from './flags.ts';


let parsed: ParseResult;
try {
  parsed = parseFlags(process.argv.slice(2), process.env);
} catch (err) {
  process.stderr.write(`${errorMessage(err)}\n${usage()}`);
  process.exit(err instanceof FlagError ? 2 : 1);
}
if (parsed.kind !== 'run') {
  process.stderr.write(parsed.kind === 'help' ? parsed.usage : `${VERSION}\n`);
  process.exit(0);
}
const opts = parsed.options;
const format = opts.logFormat || opts.loggingFormat;
const log = createLogger({ verbosity: opts.verbosity, name: 'flanneld', ...(format === '' ? {} : { format: parseLogFormat(format) }) });
log.info({ flags: { ...opts, etcdPassword: opts.etcdPassword ? '<redacted>' : '' } }, 'CLI flags config');

runDaemon({
  name: 'flanneld',
  log,
  run: async ({ signal, ready }) => {
    const deps = realDeps(log, ready);
    try {
      await run(opts, signal, deps);
    } finally {
      deps.close();
    }
  },
}).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`flanneld: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
