/**
 * Per-upstream runtime state: in-flight counts, cooldowns, disabled flags. Behind an interface so a
 * shared store (Redis) can replace the in-memory one when several gateway processes share accounts.
 */

/** `rate_limit`: the upstream said to wait (hard). `transient`: a 5xx or network fault (soft: see UpstreamPool). */
export type CooldownKind = 'rate_limit' | 'transient';

export interface Cooldown {
  until: number;
  reason: string;
  kind: CooldownKind;
}

/** What a dashboard or an admin API may show about one upstream: no secret in it. */
export interface UpstreamStateView {
  inFlight: number;
  disabled: string | undefined;
  /** Cooldowns in force; `model` null means the whole account. */
  cooldowns: { model: string | null; until: number; reason: string; kind: CooldownKind }[];
}

export interface PoolStateStore {
  /** A read-only view of one upstream's state. */
  view(upstream: string, now: number): UpstreamStateView;
  inFlight(upstream: string): number;
  acquire(upstream: string): void;
  release(upstream: string): void;
  /** The cooldown in force for (upstream, model), the account-wide one included. */
  cooldown(upstream: string, model: string | undefined, now: number): Cooldown | undefined;
  /** `model` undefined cools the whole account. */
  cool(upstream: string, model: string | undefined, until: number, reason: string, kind: CooldownKind): void;
  clearCooldown(upstream: string, model: string | undefined): void;
  /** Success clears what a 5xx or network fault left, for the model and the account; rate limits stay. */
  clearTransient(upstream: string, model: string | undefined): void;
  /** Session affinity: the upstream a session key is bound to, while the binding lives. */
  affinity(key: string, now: number): string | undefined;
  bind(key: string, upstream: string, until: number): void;
  unbind(key: string): void;
  /** Drops every binding to this upstream (it cooled or failed). */
  unbindUpstream(upstream: string): void;
  disable(upstream: string, reason: string): void;
  enable(upstream: string): void;
  disabled(upstream: string): string | undefined;
}

const ACCOUNT = '*';

export class MemoryPoolState implements PoolStateStore {
  private readonly inflight = new Map<string, number>();
  private readonly cooldowns = new Map<string, Map<string, Cooldown>>();
  private readonly disabledReasons = new Map<string, string>();
  private readonly bindings = new Map<string, { upstream: string; until: number }>();
  private bindsSinceSweep = 0;

  inFlight(upstream: string): number {
    return this.inflight.get(upstream) ?? 0;
  }
  view(upstream: string, now: number): UpstreamStateView {
    const cooldowns: UpstreamStateView['cooldowns'] = [];
    for (const [key, c] of this.cooldowns.get(upstream) ?? []) {
      if (c.until > now)
        cooldowns.push({
          model: key === ACCOUNT ? null : key,
          until: c.until,
          reason: c.reason,
          kind: c.kind,
        });
    }
    return { inFlight: this.inFlight(upstream), disabled: this.disabledReasons.get(upstream), cooldowns };
  }
  acquire(upstream: string): void {
    this.inflight.set(upstream, this.inFlight(upstream) + 1);
  }
  release(upstream: string): void {
    const n = this.inFlight(upstream);
    if (n <= 0) throw new Error(`tapgate: lease released twice for upstream ${upstream}`);
    this.inflight.set(upstream, n - 1);
  }
  cooldown(upstream: string, model: string | undefined, now: number): Cooldown | undefined {
    const byModel = this.cooldowns.get(upstream);
    if (byModel === undefined || byModel.size === 0) return undefined;
    let found: Cooldown | undefined;
    for (const key of model === undefined ? [ACCOUNT] : [ACCOUNT, model]) {
      const c = byModel.get(key);
      if (c === undefined) continue;
      if (c.until <= now) byModel.delete(key);
      // A hard cooldown outranks a soft one; otherwise the later reset wins.
      else if (
        found === undefined ||
        (c.kind === 'rate_limit') > (found.kind === 'rate_limit') ||
        (c.kind === found.kind && c.until > found.until)
      )
        found = c;
    }
    return found;
  }
  cool(upstream: string, model: string | undefined, until: number, reason: string, kind: CooldownKind): void {
    let byModel = this.cooldowns.get(upstream);
    if (byModel === undefined) this.cooldowns.set(upstream, (byModel = new Map()));
    const key = model ?? ACCOUNT;
    const existing = byModel.get(key);
    if (
      existing === undefined ||
      existing.until < until ||
      (kind === 'rate_limit' && existing.kind === 'transient')
    ) {
      byModel.set(key, { until, reason, kind });
    }
  }
  clearCooldown(upstream: string, model: string | undefined): void {
    const byModel = this.cooldowns.get(upstream);
    if (byModel === undefined || byModel.size === 0) return;
    byModel.delete(model ?? ACCOUNT);
  }
  clearTransient(upstream: string, model: string | undefined): void {
    const byModel = this.cooldowns.get(upstream);
    if (byModel === undefined || byModel.size === 0) return;
    for (const key of model === undefined ? [ACCOUNT] : [ACCOUNT, model]) {
      if (byModel.get(key)?.kind === 'transient') byModel.delete(key);
    }
  }
  affinity(key: string, now: number): string | undefined {
    const b = this.bindings.get(key);
    if (b === undefined) return undefined;
    if (b.until <= now) {
      this.bindings.delete(key);
      return undefined;
    }
    return b.upstream;
  }
  bind(key: string, upstream: string, until: number): void {
    this.bindings.set(key, { upstream, until });
    // Expired bindings are dropped as new ones arrive, so the map stays bounded by live sessions.
    if (++this.bindsSinceSweep >= 1024) {
      this.bindsSinceSweep = 0;
      const now = Date.now();
      for (const [k, v] of this.bindings) if (v.until <= now) this.bindings.delete(k);
    }
  }
  unbind(key: string): void {
    this.bindings.delete(key);
  }
  unbindUpstream(upstream: string): void {
    for (const [k, v] of this.bindings) if (v.upstream === upstream) this.bindings.delete(k);
  }
  disable(upstream: string, reason: string): void {
    this.disabledReasons.set(upstream, reason);
  }
  enable(upstream: string): void {
    this.disabledReasons.delete(upstream);
  }
  disabled(upstream: string): string | undefined {
    return this.disabledReasons.get(upstream);
  }
}
