/**
 * `tapgate --config config.yaml [--port N]`: boots the gateway and stops it gracefully on SIGTERM/SIGINT.
 * `tapgate usage …` reads the usage records instead (app/usage-cli.ts); `tapgate login codex …`
 * signs an account in (app/login-cli.ts).
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import cluster from 'node:cluster';
import { Writable } from 'node:stream';
import { ConfigError, loadConfigFile } from '../core/config/config.js';
import {
  multiProcessProblem,
  RELOAD,
  reloadWorkers,
  runPrimary,
  SHUTDOWN,
  STOP_SIGNALS,
  workerCount,
} from './workers.js';
import { watchConfig } from './config-watch.js';
import type { Gateway } from '../core/gateway.js';
import { PluginError } from '../core/loader/plugin-errors.js';
import { stdoutLogStyle, type LogFormat } from '../core/observe/logger.js';
import { prettyLine } from '../core/observe/pretty-lines.js';
import { ignoreSignals, type SignalLog } from './signals.js';
import { createGateway } from './gateway.js';
import { runUsage } from './usage-cli.js';
import { runLogin } from './login-cli.js';
import { askPrimaryForMetrics, serveWorkerMetrics, startPrimaryMetrics } from './cluster-metrics.js';

const HELP = `Usage: tapgate [--config PATH] [--port N] [--watch]
       tapgate usage [--since 7d] [--by key|account|model|day] [--json|--csv]
       tapgate login codex --out accounts/NAME.json [--device]

A gateway for the OpenAI Responses API.

Options:
  -c, --config PATH   config file (default: ./config.yaml)
  -p, --port N        listen on this port, overriding server.port
  -w, --watch         reload the config when its file changes (as SIGHUP does)
  -h, --help          show this help
  -v, --version       print the version

Commands:
  usage               requests and tokens per key, account, model or day
                      (tapgate usage --help)
  login codex         sign a ChatGPT account in (Codex CLI's OAuth flow) and write its
                      auth.json (tapgate login codex --help)

Signals: SIGTERM, SIGINT or SIGQUIT stop accepting connections, let in-flight
requests finish within server.drainTimeout, then exit 0. SIGHUP reloads the
config file and the auth files without dropping a stream (an invalid config
changes nothing; with server.workers > 1 every worker reloads). SIGUSR1 and
SIGUSR2 are logged and ignored.`;

/** `log.format` once the config is read; until then, `auto`. */
let logFormat: LogFormat = 'auto';

/** One pino-shaped line, for what is said before (or outside) a gateway's logger. */
function plainLog(level: number, msg: string, fields: Record<string, unknown> = {}): void {
  const line =
    JSON.stringify({ level, time: new Date().toISOString(), name: 'tapgate', ...fields, msg }) + '\n';
  const { pretty, color } = stdoutLogStyle(logFormat);
  process.stdout.write(pretty ? prettyLine(line, color) : line);
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'usage') return runUsage(argv.slice(1));
  if (argv[0] === 'login') return runLogin(argv.slice(1));
  let signalLog: SignalLog = (signal, message) => plainLog(40, `${signal} ${message}`, { signal });
  /** What SIGHUP (and --watch) runs, once there is something to reload; `why`: the signal or the watch. */
  let reload: ((why: string) => void) | undefined;
  ignoreSignals(
    () => signalLog,
    () => reload,
  );
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c', default: './config.yaml' },
        port: { type: 'string', short: 'p' },
        watch: { type: 'boolean', short: 'w' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`tapgate: ${(err as Error).message}\n\n${HELP}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (args.version) {
    const pkg = (await import('../package.json', { with: { type: 'json' } })).default as { version: string };
    process.stdout.write(pkg.version + '\n');
    return 0;
  }
  let port: number | undefined;
  if (args.port !== undefined) {
    port = Number(args.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      process.stderr.write(`tapgate: --port must be a whole number from 0 to 65535, got ${args.port}\n`);
      return 2;
    }
  }

  let gateway: Gateway;
  const file = resolve(args.config!);
  let unwatch: (() => void) | undefined;
  try {
    const loaded = loadConfigFile(file);
    if (port !== undefined) loaded.config.server.port = port;
    logFormat = loaded.config.log.format;
    const workers = workerCount(loaded.config);
    if (workers > 1 && cluster.isPrimary) {
      const problem = multiProcessProblem(loaded.config);
      if (problem !== undefined)
        throw new ConfigError(loaded.source.file, [
          {
            path: ['server', 'workers'],
            ...loaded.source.locate(['server', 'workers']),
            message: problem,
          } as never,
        ]);
      // Boot once here so a bad plugin or upstream, or a type that cannot run in several processes,
      // is reported before any worker starts.
      const probe = await createGateway(loaded, {
        logDestination: new Writable({ write: (_c, _e, cb) => cb() }),
        processes: workers,
      });
      await probe.close(0);
      await startPrimaryMetrics(loaded);
      plainLog(30, 'starting workers', { workers });
      // The primary holds no config of its own to apply: each worker reloads, and logs its result.
      reload = (why) =>
        plainLog(30, 'reloading the config in every worker', { signal: why, workers: reloadWorkers() });
      if (args.watch === true) unwatch = watchFile(file, () => reload?.('watch'));
      const code = await runPrimary(workers, (msg) => plainLog(30, msg));
      unwatch?.();
      return code;
    }
    // A worker leaves metrics.listen to the primary, which adds every worker's series up.
    const worker = workers > 1 && cluster.isWorker;
    gateway = await createGateway(
      loaded,
      worker ? { metricsListener: false, clusterMetrics: askPrimaryForMetrics } : {},
    );
    if (worker && loaded.config.metrics.enabled) serveWorkerMetrics(gateway);
    const logger = gateway.logger;
    signalLog = (signal, message) => logger.warn({ signal }, `${signal} ${message}`);
    await gateway.listen();
    const running = gateway;
    // Its result (applied, or refused with every error) is logged by the gateway.
    const reloadNow = (why: string) => {
      logger.info({ signal: why }, 'reloading the config');
      void running.reload();
    };
    if (cluster.isWorker) {
      // The primary tells every worker (a SIGHUP to the process group reaches them all: one reload each).
      reload = (signal) =>
        logger.info({ signal }, `${signal} ignored in a worker: the primary reloads every worker`);
      process.on('message', (m) => m === RELOAD && reloadNow('primary'));
    } else {
      reload = reloadNow;
      if (args.watch === true) unwatch = watchFile(file, () => reload?.('watch'));
    }
  } catch (err) {
    if (err instanceof ConfigError || err instanceof PluginError) {
      process.stderr.write(`tapgate: ${err.name === 'ConfigError' ? '' : err.name + ': '}${err.message}\n`);
    } else {
      process.stderr.write(`tapgate: failed to start: ${(err as Error).stack ?? String(err)}\n`);
    }
    return 1;
  }

  return new Promise<number>((done) => {
    let stopping = false;
    let signals = 0;
    /** `signal`: a real signal. Only a second signal forces the exit; the primary's message never does. */
    const stop = (reason: string, signal: boolean) => {
      if (signal) signals++;
      if (stopping) {
        if (signals < 2) return;
        gateway.logger.warn({ signal: reason }, 'second signal: exiting now');
        done(1);
        return;
      }
      stopping = true;
      reload = undefined;
      unwatch?.();
      gateway.logger.info({ signal: reason, inflight: gateway.inflight }, 'shutting down');
      gateway.close().then(
        () => done(0),
        (err: unknown) => {
          gateway.logger.error({ err }, 'shutdown failed');
          done(1);
        },
      );
    };
    for (const signal of STOP_SIGNALS) process.on(signal, () => stop(signal, true));
    // In a worker, the primary asks by message; it never counts as a second signal.
    if (cluster.isWorker) process.on('message', (m) => m === SHUTDOWN && stop('primary', false));
  });
}

/** `--watch`: a change of the file runs `reload`; a watch that fails is logged, the gateway goes on. */
function watchFile(file: string, reload: () => void): () => void {
  plainLog(30, 'watching the config file: a change reloads it', { file });
  return watchConfig(file, reload, (err) =>
    plainLog(50, `watching the config file failed: ${err.message}; reload with SIGHUP`, { file }),
  );
}
