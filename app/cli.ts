/**
 * `tapgate --config config.yaml [--port N]`: boots the gateway and stops it gracefully on SIGTERM/SIGINT.
 * `tapgate usage …` reads the usage records instead (app/usage-cli.ts).
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import cluster from 'node:cluster';
import { Writable } from 'node:stream';
import { ConfigError, loadConfigFile } from '../core/config/config.js';
import { multiProcessProblem, runPrimary, SHUTDOWN, STOP_SIGNALS, workerCount } from './workers.js';
import type { Gateway } from '../core/gateway.js';
import { PluginError } from '../core/loader/plugin-errors.js';
import { ignoreSignals, type SignalLog } from './signals.js';
import { createGateway } from './gateway.js';
import { runUsage } from './usage-cli.js';
import { askPrimaryForMetrics, serveWorkerMetrics, startPrimaryMetrics } from './cluster-metrics.js';

const HELP = `Usage: tapgate [--config PATH] [--port N]
       tapgate usage [--since 7d] [--by key|account|model|day] [--json|--csv]

A gateway for the OpenAI Responses API.

Options:
  -c, --config PATH   config file (default: ./config.yaml)
  -p, --port N        listen on this port, overriding server.port
  -h, --help          show this help
  -v, --version       print the version

Commands:
  usage               requests and tokens per key, account, model or day
                      (tapgate usage --help)

Signals: SIGTERM, SIGINT or SIGQUIT stop accepting connections, let in-flight
requests finish within server.drainTimeout, then exit 0. SIGHUP, SIGUSR1 and
SIGUSR2 are logged and ignored.`;

/** One pino-shaped line, for what is said before (or outside) a gateway's logger. */
function plainLog(level: number, msg: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(
    JSON.stringify({ level, time: new Date().toISOString(), name: 'tapgate', ...fields, msg }) + '\n',
  );
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'usage') return runUsage(argv.slice(1));
  let signalLog: SignalLog = (signal, message) => plainLog(40, `${signal} ${message}`, { signal });
  ignoreSignals(() => signalLog);
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c', default: './config.yaml' },
        port: { type: 'string', short: 'p' },
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
  try {
    const loaded = loadConfigFile(resolve(args.config!));
    if (port !== undefined) loaded.config.server.port = port;
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
      return runPrimary(workers, (msg) => plainLog(30, msg));
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
