/**
 * The per-request series, from the existing hooks: `finish` (requests, durations, tokens, terminal
 * failures), `attemptFailed` (cooldowns) and `upstreamAttempt` (failovers). A request costs a few Map
 * lookups and additions to plain numbers (fast-series.ts); nothing is formatted until a scrape.
 */
import type { RequestContext } from '../kernel/context.js';
import { createStateKey } from '../kernel/context.js';
import type { GatewayHooks } from '../kernel/hooks.js';
import { Stage } from '../kernel/stages.js';
import type { Outcome } from '../kernel/types.js';
import type { BoundedLabel } from './bounded-label.js';
import { NONE, OTHER } from './bounded-label.js';
import type { CounterChild, HistogramChild } from './fast-series.js';
import type { MetricSet } from './metric-set.js';

const NAME = 'tapgate:metrics';
const STATUS_CLASSES = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

/** The upstream whose attempt failed last (a retry elsewhere is a failover from it). */
const FAILED_ON = createStateKey<string | undefined>('metrics.failedOn', () => undefined);

export interface LabelSets {
  model: BoundedLabel;
  /** Terminal failure codes (an upstream's `response.failed` brings its own). */
  code: BoundedLabel;
  /** What plugins report: upstream names and refresh results. */
  upstream: BoundedLabel;
  result: BoundedLabel;
}

/** The children one (route, upstream, model, key) uses, looked up once per request with one key. */
interface Bound {
  route: string;
  upstream: string;
  model: string;
  key: string;
  firstByte: HistogramChild;
  duration: HistogramChild;
  /** input, output, cached_input, reasoning. */
  tokens: CounterChild[];
  /** tapgate_requests_total children by status class and outcome (made on first use). */
  requests: (CounterChild | undefined)[];
}

const OUTCOMES = ['ok', 'error', 'client_abort'] as const;

export class RequestMetrics {
  private readonly bound = new Map<string, Bound>();

  constructor(
    private readonly set: MetricSet,
    private readonly labels: LabelSets,
  ) {}

  tap(hooks: GatewayHooks): void {
    hooks.finish.tap({ name: NAME, stage: Stage.LATE }, (ctx, outcome) => this.finish(ctx, outcome));
    hooks.attemptFailed.tap({ name: NAME, stage: Stage.LATE }, (ctx, upstream, _error, verdict) => {
      ctx.setState(FAILED_ON, upstream.name);
      if (verdict.cooldownMs !== undefined && verdict.cooldownMs > 0)
        this.set.cooldowns.labels(upstream.name, verdict.cooldownKind ?? 'transient').inc();
    });
    hooks.upstreamAttempt.tap({ name: NAME, stage: Stage.LATE }, (ctx, upstream) => {
      if (ctx.attempts < 2) return;
      const from = ctx.peekState(FAILED_ON);
      // A retry on the same upstream (`same`) is no failover.
      if (from !== undefined && from !== upstream.name) this.set.failovers.labels(from).inc();
    });
  }

  /** A plugin's count of a credential refresh (context.metrics). */
  tokenRefreshed(upstream: string, result: string): void {
    this.set.tokenRefreshes.labels(this.labels.upstream.of(upstream), this.labels.result.of(result)).inc();
  }

  private finish(ctx: RequestContext, outcome: Outcome): void {
    const b = this.children(
      ctx.route?.kind ?? OTHER,
      ctx.upstream?.name ?? NONE,
      this.labels.model.of(ctx.model),
      ctx.clientName ?? NONE,
    );
    const statusClass = Math.min(Math.max(Math.floor(outcome.status / 100), 0), 5);
    const outcomeIndex = OUTCOMES.indexOf(outcome.kind);
    const slot = statusClass * OUTCOMES.length + outcomeIndex;
    let counter = b.requests[slot];
    if (counter === undefined)
      b.requests[slot] = counter = this.set.requests.labels(
        b.route,
        STATUS_CLASSES[statusClass]!,
        outcome.kind,
        b.model,
        b.upstream,
        b.key,
      );
    counter.inc();

    b.duration.observe(outcome.durationMs / 1000);
    if (ctx.firstByteAt !== undefined) b.firstByte.observe((ctx.firstByteAt - ctx.startedAt) / 1000);

    const usage = ctx.usage;
    if (usage !== undefined) {
      const t = b.tokens;
      t[0]!.inc(usage.input);
      t[1]!.inc(usage.output);
      t[2]!.inc(usage.cachedInput);
      t[3]!.inc(usage.reasoning);
    }

    // Ended by a terminal failure event: the gateway's own, or an upstream's response.failed forwarded.
    // (An HTTP error answer has a 4xx/5xx status; a stream that failed keeps the status it started with.)
    const error = outcome.error;
    if (
      outcome.kind === 'error' &&
      error !== undefined &&
      outcome.status < 400 &&
      ctx.res.headersSent &&
      ctx.route?.requiresTerminalEvent === true
    )
      this.set.terminalFailures.labels(this.labels.code.of(error.errorCode ?? error.type)).inc();
  }

  private children(route: string, upstream: string, model: string, key: string): Bound {
    const id = `${route}\u0000${upstream}\u0000${model}\u0000${key}`;
    let b = this.bound.get(id);
    if (b === undefined) {
      const t = this.set.tokens;
      b = {
        route,
        upstream,
        model,
        key,
        firstByte: this.set.firstByte.labels(route, upstream),
        duration: this.set.duration.labels(route, upstream),
        tokens: ['input', 'output', 'cached_input', 'reasoning'].map((d) =>
          t.labels(d, model, upstream, key),
        ),
        requests: [],
      };
      this.bound.set(id, b);
    }
    return b;
  }
}
