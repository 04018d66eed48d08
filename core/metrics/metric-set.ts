/**
 * The gateway's Prometheus series, made once at boot on a registry of its own (several gateways in
 * one process each keep theirs). The counters and histograms (fast-series.ts) are updated by the
 * hook taps in request-metrics.ts; the gauges of pool-gauges.ts are computed when scraped.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from './fast-series.js';

/** Seconds, from a fast local answer to an hour-long stream. */
const SECONDS_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
];

export interface MetricSet {
  readonly registry: Registry;
  /** Labels: route, status_class, outcome, model, upstream, key. */
  readonly requests: FastCounter;
  /** Labels: route, upstream. */
  readonly firstByte: FastHistogram;
  readonly duration: FastHistogram;
  /** Labels: direction, model, upstream, key. */
  readonly tokens: FastCounter;
  readonly cooldowns: FastCounter;
  readonly failovers: FastCounter;
  readonly tokenRefreshes: FastCounter;
  readonly terminalFailures: FastCounter;
}

/** `processMetrics`: prom-client's defaults (process_*, nodejs_*), under their usual names. */
export function createMetricSet(processMetrics: boolean): MetricSet {
  const registry = new Registry();
  if (processMetrics) collectDefaultMetrics({ register: registry });
  const counter = (name: string, help: string, labels: string[]) =>
    new FastCounter(name, help, labels, registry);
  const histogram = (name: string, help: string) =>
    new FastHistogram(name, help, ['route', 'upstream'], registry, SECONDS_BUCKETS);
  return {
    registry,
    requests: counter(
      'tapgate_requests_total',
      'Requests finished, by route, status class, outcome (ok, error, client_abort), model, upstream and client key name',
      ['route', 'status_class', 'outcome', 'model', 'upstream', 'key'],
    ),
    firstByte: histogram(
      'tapgate_time_to_first_byte_seconds',
      "From a request's arrival until the first byte of the upstream's answer went to the client",
    ),
    duration: histogram(
      'tapgate_request_duration_seconds',
      "From a request's arrival until it finished (the whole stream)",
    ),
    tokens: counter(
      'tapgate_tokens_total',
      'Tokens the upstreams reported, by direction (input, output, and of those cached_input, reasoning)',
      ['direction', 'model', 'upstream', 'key'],
    ),
    cooldowns: counter(
      'tapgate_cooldowns_total',
      'Cooldowns started by a failed attempt, by upstream and kind (rate_limit, transient)',
      ['upstream', 'kind'],
    ),
    failovers: counter(
      'tapgate_failovers_total',
      'Requests that moved on to another upstream after an attempt failed, by the upstream that failed',
      ['upstream'],
    ),
    tokenRefreshes: counter(
      'tapgate_token_refreshes_total',
      'Upstream credential refreshes, by upstream and result (ok, retry, failed)',
      ['upstream', 'result'],
    ),
    terminalFailures: counter(
      'tapgate_terminal_failures_total',
      'Streams that ended in a terminal failure event (response.failed), by error code',
      ['code'],
    ),
  };
}
