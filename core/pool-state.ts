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

export interface PoolStateStore {
  inFlight(upstream: string): number;
  acquire(upstream: string): void;
  release(upstream: string): void;
  /** The cooldown in force for (upstream, model), the account-wide one included. */
  cooldown(upstream: string, model: string | undefined, now: number): Cooldown | undefined;
  /** `model` undefined cools the whole account. */
  cool(upstream: string, model: string | undefined, until: number, reason: string, kind: CooldownKind): void;
  clearCooldown(upstream: string, model: string | undefined): void;
  disable(upstream: string, reason: string): void;
  enable(upstream: string): void;
  disabled(upstream: string): string | undefined;
}

const ACCOUNT = '*';

export class MemoryPoolState implements PoolStateStore {
  private readonly inflight = new Map<string, number>();
  private readonly cooldowns = new Map<string, Map<string, Cooldown>>();
  private readonly disabledReasons = new Map<string, string>();

  inFlight(upstream: string): number {
    return this.inflight.get(upstream) ?? 0;
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
