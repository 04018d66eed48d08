/** The upstream pool: which upstreams may take an attempt, and leases on their concurrency slots. */
import {
  AllUpstreamsCoolingError,
  NoUpstreamError,
  QueueFullError,
  type GatewayError,
} from '../kernel/errors.js';
import type { Cooldown, PoolStateStore } from './pool-state.js';
import type { SlotQueue } from './slot-queue.js';
import { MAX_ECHO_CHARS, truncate } from '../observe/truncate.js';
import type { Upstream } from './upstream.js';

/** A stored reason is already cut to MAX_ECHO_CHARS (stateText); this bounds a store that does not. */
const REASON_CHARS = MAX_ECHO_CHARS + 64;

export class UpstreamPool {
  private readonly byName = new Map<string, Upstream>();

  constructor(
    readonly upstreams: readonly Upstream[],
    readonly state: PoolStateStore,
    /** Requests waiting for a slot; a release wakes them. */
    readonly queue: SlotQueue,
  ) {
    for (const u of upstreams) this.byName.set(u.name, u);
    // A slot freed in another process (shared store) wakes this one's waiters too.
    state.onSlotFreed?.(() => queue.notify());
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
  candidates(
    model: string | undefined,
    tried: readonly Upstream[],
    now: number,
    /** Upstreams whose slot was refused since the last wait: busy, whatever the local count says. */
    full: readonly Upstream[] = [],
  ): Upstream[] | GatewayError {
    const out: Upstream[] = [];
    const soft: Upstream[] = [];
    let serving = 0;
    let busy = 0;
    /** The rate limit that ends soonest (it sets Retry-After), and whose it is: its reason goes in the answer. */
    let earliest: { upstream: Upstream; cooldown: Cooldown } | undefined;
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
      if (
        u.maxConcurrency > 0 &&
        (this.state.inFlight(u.name) >= u.maxConcurrency || (full.length > 0 && full.includes(u)))
      ) {
        // Full and rate limited: a freed slot would not help, so it counts as cooling, not busy.
        if (cooling?.kind !== 'rate_limit') busy++;
        else if (earliest === undefined || cooling.until < earliest.cooldown.until)
          earliest = { upstream: u, cooldown: cooling };
        continue;
      }
      if (cooling !== undefined) {
        if (cooling.kind === 'transient') soft.push(u);
        else if (earliest === undefined || cooling.until < earliest.cooldown.until)
          earliest = { upstream: u, cooldown: cooling };
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
    if (earliest !== undefined) {
      const retryAfter = Math.max(1, Math.ceil((earliest.cooldown.until - now) / 1000));
      // The local answer protects the account; the upstream's own words say why (Pipeline.fail scrubs them).
      const why = `${earliest.upstream.name}: ${truncate(earliest.cooldown.reason, REASON_CHARS)}`;
      return new AllUpstreamsCoolingError(
        `Every upstream for ${model === undefined ? 'this request' : truncate(model)} is rate limited or cooling down; retry in ${retryAfter}s (${why})`,
        { retryAfter, phase: 'admission' },
      );
    }
    if (disabled.length > 0)
      return new NoUpstreamError(`Every upstream is disabled (${disabled.join('; ')})`, {
        phase: 'admission',
      });
    return new NoUpstreamError('Every upstream was tried and failed', { phase: 'admission' });
  }

  /** One of the upstream's slots (see PoolStateStore.acquire); false when all are taken. */
  acquire(upstream: Upstream): boolean | Promise<boolean> {
    return this.state.acquire(upstream.name, upstream.maxConcurrency);
  }

  release(upstream: Upstream): void {
    this.state.release(upstream.name);
    this.queue.notify();
  }
}
