/**
 * The per-request series, from the existing hooks: `finish` (requests, durations, tokens, terminal
 * failures), `attemptFailed` (cooldowns) and `upstreamAttempt` (failovers). Label-bound children are
 * cached by their label values, so a request costs a Map lookup and a few increments, not
 * prom-client's label hashing.
 */
import type { Counter, Histogram } from 'prom-client';
import type { RequestContext } from '../kernel/context.js';
import { createStateKey } from '../kernel/context.js';
import type { GatewayHooks } from '../kernel/hooks.js';
import { Stage } from '../kernel/stages.js';
import type { Outcome } from '../kernel/types.js';
import type { BoundedLabel } from './bounded-label.js';
import { NONE, OTHER } from './bounded-label.js';
import type { MetricSet } from './metric-set.js';

const NAME = 'tapgate:metrics';
const STATUS_CLASSES = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

type Inc = { inc(value?: number): void };
type Observe = { observe(value: number): void };

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

export class RequestMetrics {
  private readonly requestChildren = new Map<string, Inc>();
  private readonly timingChildren = new Map<string, { firstByte: Observe; duration: Observe }>();
  private readonly tokenChildren = new Map<string, Inc[]>();
  private readonly simpleChildren = new Map<Counter<string>, Map<string, Inc>>();

  constructor(
    private readonly set: MetricSet,
    private readonly labels: LabelSets,
  ) {}

  tap(hooks: GatewayHooks): void {
    hooks.finish.tap({ name: NAME, stage: Stage.LATE }, (ctx, outcome) => this.finish(ctx, outcome));
    hooks.attemptFailed.tap({ name: NAME, stage: Stage.LATE }, (ctx, upstream, _error, verdict) => {
      ctx.setState(FAILED_ON, upstream.name);
      if (verdict.cooldownMs !== undefined && verdict.cooldownMs > 0)
        this.simple(this.set.cooldowns, upstream.name, verdict.cooldownKind ?? 'transient').inc();
    });
    hooks.upstreamAttempt.tap({ name: NAME, stage: Stage.LATE }, (ctx, upstream) => {
      if (ctx.attempts < 2) return;
      const from = ctx.peekState(FAILED_ON);
      // A retry on the same upstream (`same`) is no failover.
      if (from !== undefined && from !== upstream.name) this.simple(this.set.failovers, from).inc();
    });
  }

  /** A plugin's count of a credential refresh (context.metrics). */
  tokenRefreshed(upstream: string, result: string): void {
    this.simple(
      this.set.tokenRefreshes,
      this.labels.upstream.of(upstream),
      this.labels.result.of(result),
    ).inc();
  }

  private finish(ctx: RequestContext, outcome: Outcome): void {
    const route = ctx.route?.kind ?? OTHER;
    const upstream = ctx.upstream?.name ?? NONE;
    const model = this.labels.model.of(ctx.model);
    const key = ctx.clientName ?? NONE;
    const status = STATUS_CLASSES[Math.floor(outcome.status / 100)] ?? '0xx';
    const id = `${route}\u0000${status}\u0000${outcome.kind}\u0000${model}\u0000${upstream}\u0000${key}`;
    let counter = this.requestChildren.get(id);
    if (counter === undefined) {
      counter = this.set.requests.labels(route, status, outcome.kind, model, upstream, key);
      this.requestChildren.set(id, counter);
    }
    counter.inc();

    const timing = this.timing(route, upstream);
    timing.duration.observe(outcome.durationMs / 1000);
    if (ctx.firstByteAt !== undefined) timing.firstByte.observe((ctx.firstByteAt - ctx.startedAt) / 1000);

    const usage = ctx.usage;
    if (usage !== undefined) {
      const [input, output, cached, reasoning] = this.tokens(model, upstream, key);
      input!.inc(usage.input);
      output!.inc(usage.output);
      cached!.inc(usage.cachedInput);
      reasoning!.inc(usage.reasoning);
    }

    // Ended by a terminal failure event: the gateway's own, or an upstream's response.failed forwarded.
    const error = outcome.error;
    // (An HTTP error answer has a 4xx/5xx status; a stream that failed keeps the status it started with.)
    if (
      outcome.kind === 'error' &&
      error !== undefined &&
      outcome.status < 400 &&
      ctx.res.headersSent &&
      ctx.route?.requiresTerminalEvent === true
    )
      this.simple(this.set.terminalFailures, this.labels.code.of(error.errorCode ?? error.type)).inc();
  }

  private timing(route: string, upstream: string): { firstByte: Observe; duration: Observe } {
    const id = `${route}\u0000${upstream}`;
    let pair = this.timingChildren.get(id);
    if (pair === undefined) {
      pair = {
        firstByte: (this.set.firstByte as Histogram<string>).labels(route, upstream),
        duration: (this.set.duration as Histogram<string>).labels(route, upstream),
      };
      this.timingChildren.set(id, pair);
    }
    return pair;
  }

  private tokens(model: string, upstream: string, key: string): Inc[] {
    const id = `${model}\u0000${upstream}\u0000${key}`;
    let children = this.tokenChildren.get(id);
    if (children === undefined) {
      const t = this.set.tokens;
      children = ['input', 'output', 'cached_input', 'reasoning'].map((d) =>
        t.labels(d, model, upstream, key),
      );
      this.tokenChildren.set(id, children);
    }
    return children;
  }

  /** A child of a counter with few labels (rare events: a cooldown, a failover, a refresh). */
  private simple(counter: Counter<string>, ...values: string[]): Inc {
    let byId = this.simpleChildren.get(counter);
    if (byId === undefined) this.simpleChildren.set(counter, (byId = new Map()));
    const id = values.join('\u0000');
    let child = byId.get(id);
    if (child === undefined) byId.set(id, (child = counter.labels(...values)));
    return child;
  }
}
