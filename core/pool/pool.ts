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
  private list: readonly Upstream[];
  private byName = new Map<string, Upstream>();
  /**
   * Slots held per Upstream object (not per name: a changed upstream keeps its name, and its old
   * object drains while the new one serves). Only this process's leases: what a drain waits for.
   */
  private readonly leases = new Map<Upstream, number>();
  /** Upstreams replaced or removed by a reload, and what resolves once their last lease is back. */
  private readonly draining = new Map<Upstream, () => void>();

  constructor(
    upstreams: readonly Upstream[],
    readonly state: PoolStateStore,
    /** Requests waiting for a slot; a release wakes them. */
    readonly queue: SlotQueue,
  ) {
    this.list = upstreams;
    for (const u of upstreams) this.byName.set(u.name, u);
    // A slot freed in another process (shared store) wakes this one's waiters too.
    state.onSlotFreed?.(() => queue.notify());
  }

  /** The current upstreams (a reload replaces the list: read it when needed, do not keep it). */
  get upstreams(): readonly Upstream[] {
    return this.list;
  }

  get(name: string): Upstream | undefined {
    return this.byName.get(name);
  }

  /**
   * Makes `next` the upstreams new requests choose from, at once. Every previous Upstream object not
   * in `next` stops taking attempts and drains: the promise returned for it resolves once the
   * attempts it holds have finished (at once when it holds none).
   */
  replace(next: readonly Upstream[]): Map<Upstream, Promise<void>> {
    const kept = new Set(next);
    const retired = new Map<Upstream, Promise<void>>();
    for (const u of this.list) {
      if (kept.has(u)) continue;
      retired.set(
        u,
        new Promise<void>((resolve) => {
          if ((this.leases.get(u) ?? 0) === 0) resolve();
          else this.draining.set(u, resolve);
        }),
      );
    }
    const byName = new Map<string, Upstream>();
    for (const u of next) byName.set(u.name, u);
    this.list = next;
    this.byName = byName;
    // Waiters may now fit on an added upstream.
    this.queue.notify();
    return retired;
  }

  /** Attempts this process runs on the upstream object right now. */
  leasesOf(upstream: Upstream): number {
    return this.leases.get(upstream) ?? 0;
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
    const got = this.state.acquire(upstream.name, upstream.maxConcurrency);
    if (got === true) this.leased(upstream);
    else if (got !== false)
      return got.then((ok) => {
        if (ok) this.leased(upstream);
        return ok;
      });
    return got;
  }

  release(upstream: Upstream): void {
    this.state.release(upstream.name);
    const left = (this.leases.get(upstream) ?? 1) - 1;
    if (left > 0) this.leases.set(upstream, left);
    else {
      this.leases.delete(upstream);
      const drained = this.draining.get(upstream);
      this.draining.delete(upstream);
      drained?.();
    }
    this.queue.notify();
  }

  private leased(upstream: Upstream): void {
    this.leases.set(upstream, (this.leases.get(upstream) ?? 0) + 1);
  }
}
