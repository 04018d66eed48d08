/**
 * The gateway's Prometheus series, made once at boot on a registry of its own (several gateways in
 * one process each keep theirs). Counters and histograms are updated by the hook taps in
 * request-metrics.ts; the gauges of pool-gauges.ts are computed when scraped.
 */
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

/** Seconds, from a fast local answer to an hour-long stream. */
const SECONDS_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
];

export type RequestLabel = 'route' | 'status_class' | 'outcome' | 'model' | 'upstream' | 'key';
export type TimingLabel = 'route' | 'upstream';
export type TokenLabel = 'direction' | 'model' | 'upstream' | 'key';

export interface MetricSet {
  readonly registry: Registry;
  readonly requests: Counter<RequestLabel>;
  readonly firstByte: Histogram<TimingLabel>;
  readonly duration: Histogram<TimingLabel>;
  readonly tokens: Counter<TokenLabel>;
  readonly cooldowns: Counter<'upstream' | 'kind'>;
  readonly failovers: Counter<'upstream'>;
  readonly tokenRefreshes: Counter<'upstream' | 'result'>;
  readonly terminalFailures: Counter<'code'>;
}

/** `processMetrics`: prom-client's defaults (process_*, nodejs_*), under their usual names. */
export function createMetricSet(processMetrics: boolean): MetricSet {
  const registry = new Registry();
  const registers = [registry];
  if (processMetrics) collectDefaultMetrics({ register: registry });
  return {
    registry,
    requests: new Counter({
      name: 'tapgate_requests_total',
      help: 'Requests finished, by route, status class, outcome (ok, error, client_abort), model, upstream and client key name',
      labelNames: ['route', 'status_class', 'outcome', 'model', 'upstream', 'key'],
      registers,
    }),
    firstByte: new Histogram({
      name: 'tapgate_time_to_first_byte_seconds',
      help: "From a request's arrival until the first byte of the upstream's answer went to the client",
      labelNames: ['route', 'upstream'],
      buckets: SECONDS_BUCKETS,
      registers,
    }),
    duration: new Histogram({
      name: 'tapgate_request_duration_seconds',
      help: "From a request's arrival until it finished (the whole stream)",
      labelNames: ['route', 'upstream'],
      buckets: SECONDS_BUCKETS,
      registers,
    }),
    tokens: new Counter({
      name: 'tapgate_tokens_total',
      help: 'Tokens the upstreams reported, by direction (input, output, and of those cached_input, reasoning)',
      labelNames: ['direction', 'model', 'upstream', 'key'],
      registers,
    }),
    cooldowns: new Counter({
      name: 'tapgate_cooldowns_total',
      help: 'Cooldowns started by a failed attempt, by upstream and kind (rate_limit, transient)',
      labelNames: ['upstream', 'kind'],
      registers,
    }),
    failovers: new Counter({
      name: 'tapgate_failovers_total',
      help: 'Requests that moved on to another upstream after an attempt failed, by the upstream that failed',
      labelNames: ['upstream'],
      registers,
    }),
    tokenRefreshes: new Counter({
      name: 'tapgate_token_refreshes_total',
      help: 'Upstream credential refreshes, by upstream and result (ok, retry, failed)',
      labelNames: ['upstream', 'result'],
      registers,
    }),
    terminalFailures: new Counter({
      name: 'tapgate_terminal_failures_total',
      help: 'Streams that ended in a terminal failure event (response.failed), by error code',
      labelNames: ['code'],
      registers,
    }),
  };
}
