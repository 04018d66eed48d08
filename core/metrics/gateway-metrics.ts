/**
 * The `metrics` section made real: the registry and its series, built once at boot; the request
 * taps; the scrape-time gauges; and what plugins get as `context.metrics`.
 */
import type { Registry } from 'prom-client';
import type { GatewayConfig } from '../config/config-schema.js';
import type { GatewayHooks } from '../kernel/hooks.js';
import type { Secrets } from '../observe/secrets.js';
import { BoundedLabel } from './bounded-label.js';
import { createMetricSet } from './metric-set.js';
import type { Exposition } from './ops-endpoints.js';
import { registerPoolGauges, type GaugeSource } from './pool-gauges.js';
import { RequestMetrics, type LabelSets } from './request-metrics.js';

/** Model names beyond those the config lists, admitted as first seen; then `other`. */
const EXTRA_MODELS = 50;
/** Terminal failure codes kept apart; then `other`. */
const CODES = 100;

export type TokenRefreshResult = 'ok' | 'retry' | 'failed';

/** What a plugin gets as `context.metrics`. */
export interface PluginMetrics {
  /** `metrics.enabled`: when false, nothing is scraped and the calls below do nothing. */
  readonly enabled: boolean;
  /**
   * The gateway's prom-client registry, for a plugin's own series (name them `tapgate_<plugin>_…`,
   * keep their labels bounded). With `server.workers` above 1 each worker's are added up.
   */
  readonly registry: Registry;
  /** One credential refresh of an upstream: `ok`, `retry` (failed, tried again later), `failed` (for good). */
  tokenRefreshed(upstream: string, result: TokenRefreshResult): void;
  /**
   * The `model` label the core's series give this name: a model the pool lists, one of the first 50
   * others seen, else `other` (`none` when absent). A plugin's series labelled by model stay bounded
   * the same way, and share the budget, so a client cannot mint a new series per name.
   */
  modelLabel(model: string | undefined): string;
}

export class GatewayMetrics implements PluginMetrics {
  readonly enabled: boolean;
  readonly registry: Registry;
  private readonly requests: RequestMetrics;
  private readonly labels: LabelSets;

  constructor(config: Readonly<GatewayConfig>, secrets: Secrets) {
    this.enabled = config.metrics.enabled;
    const set = createMetricSet(this.enabled);
    this.registry = set.registry;
    const models = config.upstreams.flatMap((u) => (u as { models?: string[] }).models ?? []);
    this.labels = {
      model: new BoundedLabel(EXTRA_MODELS, secrets, models),
      code: new BoundedLabel(CODES, secrets),
      upstream: new BoundedLabel(
        1000,
        secrets,
        config.upstreams.map((u) => u.name),
      ),
      result: new BoundedLabel(0, secrets, ['ok', 'retry', 'failed']),
    };
    this.requests = new RequestMetrics(set, this.labels);
  }

  /** The upstreams in the pool (at boot and after a reload): their names and models are labels of their own. */
  learn(upstreams: readonly { name: string; models: readonly string[] }[]): void {
    this.labels.upstream.know(upstreams.map((u) => u.name));
    this.labels.model.know(upstreams.flatMap((u) => u.models));
  }

  /** Taps the request hooks and registers the gauges; nothing when metrics are off. */
  start(hooks: GatewayHooks, source: GaugeSource): void {
    if (!this.enabled) return;
    this.requests.tap(hooks);
    registerPoolGauges(this.registry, source);
  }

  tokenRefreshed(upstream: string, result: TokenRefreshResult): void {
    if (this.enabled) this.requests.tokenRefreshed(upstream, result);
  }

  modelLabel(model: string | undefined): string {
    return this.labels.model.of(model);
  }

  /** This process's exposition. */
  async exposition(): Promise<Exposition> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
