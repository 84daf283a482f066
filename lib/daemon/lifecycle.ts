// A daemon's life, the same for every daemon: SIGINT/SIGTERM abort one
// AbortSignal that every loop takes; the daemon's run() is awaited; its
// outcome is the exit code. Around that:
//   - shutdown is logged ("shutting down") and told to systemd (STOPPING=1);
//   - a second signal while shutting down exits at once, 128+signo;
//   - an unhandled rejection or an uncaught exception is logged and fatal
//     (exit 1): a floating promise is a bug, and state after it is unknown;
//   - run() resolving is a clean exit (0, "exiting cleanly"); run()
//     rejecting is a failure (1, "<name> failed" with the error and its code);
//   - ctx.ready() tells systemd READY=1; the watchdog is pinged meanwhile
//     when systemd asks for it (see notify.ts).
// runDaemon() resolves with the exit code; main.ts hands it to process.exit.
import { constants } from 'node:os';
import type { Logger } from '../log.ts';
import { startWatchdog, systemdNotifier, watchdogTimeout } from './notify.ts';
import type { Notifier } from './notify.ts';

export interface DaemonContext {
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
  /** The daemon serves: READY=1 to systemd. Failures are logged, never thrown. */
  ready(): void;
}

export interface DaemonOptions {
  /** For log lines ("flanneld failed"). */
  name: string;
  log: Logger;
  run(ctx: DaemonContext): Promise<void>;
  /** Default: NOTIFY_SOCKET from the host's environment. */
  notifier?: Notifier;
}

type ShutdownSignal = 'SIGINT' | 'SIGTERM';
type Listener = (arg: unknown) => void;

/** The part of `process` a daemon's life touches (tests pass their own). */
export interface DaemonHost {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly pid: number;
  on(event: ShutdownSignal | 'unhandledRejection' | 'uncaughtException', listener: Listener): unknown;
  off(event: ShutdownSignal | 'unhandledRejection' | 'uncaughtException', listener: Listener): unknown;
  /** Immediate exit (fatal errors, a second signal). */
  exit(code: number): void;
}

const SIGNALS: readonly ShutdownSignal[] = ['SIGINT', 'SIGTERM'];

export async function runDaemon(opts: DaemonOptions, host: DaemonHost = process as unknown as DaemonHost): Promise<number> {
  const { log } = opts;
  const notifier = opts.notifier ?? systemdNotifier(host.env);
  const notify = (state: string): void => {
    try {
      notifier.notify(state);
    } catch (err) {
      log.warn({ err, state }, 'sd_notify failed');
    }
  };
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    notify('STOPPING=1');
  };

  const ac = new AbortController();
  const onSignal = (sig: ShutdownSignal): Listener => () => {
    if (ac.signal.aborted) {
      log.warn({ signal: sig }, 'second signal, exiting now');
      host.exit(128 + constants.signals[sig]);
      return;
    }
    log.info({ signal: sig }, 'shutting down');
    stop();
    ac.abort();
  };
  const fatal = (what: string): Listener => (err) => {
    log.fatal({ err }, what);
    stop();
    host.exit(1);
  };
  const listeners: [Parameters<DaemonHost['on']>[0], Listener][] = [
    ...SIGNALS.map((s) => [s, onSignal(s)] as [ShutdownSignal, Listener]),
    ['unhandledRejection', fatal('unhandled rejection')],
    ['uncaughtException', fatal('uncaught exception')],
  ];
  for (const [event, fn] of listeners) host.on(event, fn);

  const timeout = watchdogTimeout(host.env, host.pid);
  const watchdog = timeout === undefined ? undefined : startWatchdog(notifier, timeout, (err) => log.warn({ err }, 'watchdog ping failed'));
  try {
    await opts.run({ signal: ac.signal, ready: () => notify('READY=1') });
    log.info('exiting cleanly');
    return 0;
  } catch (err) {
    log.error({ err }, `${opts.name} failed`);
    return 1;
  } finally {
    stop();
    watchdog?.stop();
    notifier.close();
    for (const [event, fn] of listeners) host.off(event, fn);
  }
}
