/**
 * Metrics with `server.workers` above 1: the primary serves `metrics.listen` with every worker's
 * series added up (prom-client's AggregatorRegistry asks each worker over IPC), and answers the
 * workers that serve `/metrics` on the main port (`metrics.token`) with the same cluster totals.
 * `/readyz` there asks the workers: ready when any worker is.
 */
import cluster from 'node:cluster';
import type http from 'node:http';
import { AggregatorRegistry } from 'prom-client';
import type { LoadedConfig } from '../core/config/config.js';
import type { Gateway } from '../core/gateway.js';
import type { Exposition, Readiness } from '../core/index.js';
import { createLogger, defaultLogDestination } from '../core/observe/logger.js';
import { Secrets } from '../core/observe/secrets.js';
import { ListenError, listenAddress, startMetricsListener } from '../core/metrics/metrics-listener.js';
import { OpsEndpoints } from '../core/metrics/ops-endpoints.js';

const METRICS_REQ = 'tapgate:metrics-req';
const METRICS_RES = 'tapgate:metrics-res';
const READY_REQ = 'tapgate:ready-req';
const READY_RES = 'tapgate:ready-res';
/** A worker that does not answer within this is left out of a readiness answer. */
const ASK_MS = 2000;

interface Message {
  type?: string;
  id?: number;
  body?: string;
  error?: string;
  readiness?: Readiness;
}

/**
 * In the primary: binds `metrics.listen` (when metrics are on) and answers workers' scrapes. An
 * explicit address that cannot be bound throws a ConfigError naming metrics.listen.
 */
export async function startPrimaryMetrics(loaded: LoadedConfig): Promise<http.Server | undefined> {
  const m = loaded.config.metrics;
  if (!m.enabled) return undefined;
  const config = loaded.config;
  const log = createLogger(config.log.level, defaultLogDestination(), new Secrets(config));
  const registry = new AggregatorRegistry();
  const aggregated = async (): Promise<Exposition> => ({
    contentType: registry.contentType,
    body: await registry.clusterMetrics(),
  });
  cluster.on('message', (worker, message: Message) => {
    if (message?.type !== METRICS_REQ) return;
    aggregated().then(
      (e) => worker.send({ type: METRICS_RES, id: message.id, body: e.body }),
      (err: Error) => worker.send({ type: METRICS_RES, id: message.id, error: err.message }),
    );
  });
  const address = listenAddress(m.listen);
  if (address === undefined) return undefined;
  const ops = new OpsEndpoints({
    path: m.path,
    token: undefined,
    metrics: aggregated,
    readiness: askWorkersReady,
    logger: log,
  });
  try {
    return (await startMetricsListener(address, ops.handleListener)).server;
  } catch (err) {
    if (!(err instanceof ListenError)) throw err;
    if (m.listen === undefined) {
      log.warn(
        { listen: address, reason: err.message },
        'metrics listener not started: the default metrics.listen is taken (set metrics.listen, or false)',
      );
      return undefined;
    }
    const source = loaded.source;
    throw source.error([
      { path: ['metrics', 'listen'], ...source.locate(['metrics', 'listen']), message: err.message } as never,
    ]);
  }
}

/** Readiness of the cluster: the workers' answers merged (ready when any worker is). */
async function askWorkersReady(): Promise<Readiness> {
  const workers = Object.values(cluster.workers ?? {}).filter((w) => w?.isConnected());
  const answers = await Promise.all(
    workers.map(
      (w) =>
        new Promise<Readiness | undefined>((resolve) => {
          const id = nextId++;
          const timer = setTimeout(() => done(undefined), ASK_MS);
          const onMessage = (m: Message) => {
            if (m?.type === READY_RES && m.id === id) done(m.readiness);
          };
          const done = (r: Readiness | undefined) => {
            clearTimeout(timer);
            w!.off('message', onMessage);
            resolve(r);
          };
          w!.on('message', onMessage);
          w!.send({ type: READY_REQ, id });
        }),
    ),
  );
  const got = answers.filter((a): a is Readiness => a !== undefined);
  const best = got.find((a) => a.status === 'ready') ?? got[0];
  return best ?? { status: 'unready', upstreams: { usable: 0, total: 0 }, store: 'memory', draining: false };
}

let nextId = 0;
const pending = new Map<number, { resolve: (e: Exposition) => void; reject: (e: Error) => void }>();

/** In a worker: what `/metrics` on the main port answers (the primary's cluster totals). */
export function askPrimaryForMetrics(): Promise<Exposition> {
  return new Promise((resolve, reject) => {
    const id = nextId++;
    const timer = setTimeout(() => {
      pending.delete(id);
      reject(new Error('the primary did not send the cluster metrics in time'));
    }, 6000);
    pending.set(id, {
      resolve: (e) => (clearTimeout(timer), resolve(e)),
      reject: (e) => (clearTimeout(timer), reject(e)),
    });
    process.send!({ type: METRICS_REQ, id });
  });
}

/** In a worker: answer the primary's scrapes (prom-client's protocol) and readiness questions. */
export function serveWorkerMetrics(gateway: Gateway): void {
  AggregatorRegistry.setRegistries([gateway.metrics.registry]);
  // Constructing one installs prom-client's listener for the primary's requests.
  new AggregatorRegistry();
  process.on('message', (m: Message) => {
    if (m?.type === READY_REQ) process.send!({ type: READY_RES, id: m.id, readiness: gateway.readiness() });
    if (m?.type !== METRICS_RES || m.id === undefined) return;
    const waiter = pending.get(m.id);
    pending.delete(m.id);
    if (m.error !== undefined) waiter?.reject(new Error(m.error));
    else waiter?.resolve({ contentType: AggregatorRegistry.PROMETHEUS_CONTENT_TYPE, body: m.body ?? '' });
  });
}
