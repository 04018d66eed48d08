/** The upstream pool: which upstreams may take an attempt, and leases on their concurrency slots. */
import { AllUpstreamsCoolingError, NoUpstreamError, QueueFullError, type GatewayError } from './errors.js';
import type { PoolStateStore } from './pool-state.js';
import type { SlotQueue } from './slot-queue.js';
import type { Upstream } from './upstream.js';

export class UpstreamPool {
  private readonly byName = new Map<string, Upstream>();

  constructor(
    readonly upstreams: readonly Upstream[],
    readonly state: PoolStateStore,
    /** Requests waiting for a slot; a release wakes them. */
    readonly queue: SlotQueue,
  ) {
    for (const u of upstreams) this.byName.set(u.name, u);
  }

  get(name: string): Upstream | undefined {
    return this.byName.get(name);
  }

  /**
   * The upstreams that may take this attempt: serving the model, enabled, not cooling, with a free
   * slot and not tried yet. When there are none, the error says why (the soonest reset included).
   *
   * Transient cooldowns (5xx, network) are soft, like Envoy's panic threshold: when every upstream
   * left is only transiently cooling, they are tried anyway rather than failing every request.
   * Rate-limit cooldowns are hard: the upstream said to wait.
   */
  candidates(model: string | undefined, tried: readonly Upstream[], now: number): Upstream[] | GatewayError {
    const out: Upstream[] = [];
    const soft: Upstream[] = [];
    let serving = 0;
    let busy = 0;
    let earliestReset = Infinity;
    const disabled: string[] = [];
    for (const u of this.upstreams) {
      if (!u.serves(model)) continue;
      serving++;
      const reason = this.state.disabled(u.name);
      if (reason !== undefined) {
        disabled.push(`${u.name}: ${reason}`);
        continue;
      }
      if (tried.includes(u)) continue;
      const cooling = this.state.cooldown(u.name, model, now);
      if (u.maxConcurrency > 0 && this.state.inFlight(u.name) >= u.maxConcurrency) {
        // Full and rate limited: a freed slot would not help, so it counts as cooling, not busy.
        if (cooling?.kind === 'rate_limit') earliestReset = Math.min(earliestReset, cooling.until);
        else busy++;
        continue;
      }
      if (cooling !== undefined) {
        if (cooling.kind === 'transient') soft.push(u);
        else if (cooling.until < earliestReset) earliestReset = cooling.until;
        continue;
      }
      out.push(u);
    }
    if (out.length > 0) return out;
    if (soft.length > 0) return soft;
    if (serving === 0) {
      return new NoUpstreamError(
        model === undefined ? 'No upstream is configured' : `No upstream serves model ${model}`,
        { phase: 'admission' },
      );
    }
    // An upstream that is only busy frees a slot soon: wait for it rather than for the latest reset.
    if (busy > 0)
      return new QueueFullError('Too many pending requests: every upstream is at its concurrency limit', {
        retryAfter: 1,
        phase: 'admission',
      });
    if (earliestReset !== Infinity) {
      const retryAfter = Math.max(1, Math.ceil((earliestReset - now) / 1000));
      return new AllUpstreamsCoolingError(
        `Every upstream for ${model ?? 'this request'} is rate limited or cooling down; retry in ${retryAfter}s`,
        { retryAfter, phase: 'admission' },
      );
    }
    if (disabled.length > 0)
      return new NoUpstreamError(`Every upstream is disabled (${disabled.join('; ')})`, {
        phase: 'admission',
      });
    return new NoUpstreamError('Every upstream was tried and failed', { phase: 'admission' });
  }

  acquire(upstream: Upstream): void {
    this.state.acquire(upstream.name);
  }

  release(upstream: Upstream): void {
    this.state.release(upstream.name);
    this.queue.notify();
  }
}
