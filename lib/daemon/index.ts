// What every daemon shares (see README.md in this folder): lifecycle,
// systemd notification, the health/metrics HTTP server, retry/backoff and
// the Go-syntax flag parser.
export { runDaemon } from './lifecycle.ts';
export type { DaemonContext, DaemonHost, DaemonOptions } from './lifecycle.ts';
export { startWatchdog, systemdNotifier, watchdogTimeout } from './notify.ts';
export type { Notifier } from './notify.ts';
export { daemonHandlers, metricsHandler, startHttpServer } from './http.ts';
export type { HttpHandler, HttpReply, HttpServer, HttpServerOptions, Readiness } from './http.ts';
export { Backoff, retry } from './retry.ts';
export type { BackoffOptions, RetryOptions } from './retry.ts';
export { FlagError, GoFlagSet, parseGoBool, parseGoInt } from './flags.ts';
export type { GoFlag, GoFlagKind, GoFlagSetOptions, GoParseResult } from './flags.ts';
