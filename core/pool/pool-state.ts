/**
 * Per-upstream runtime state: in-flight counts, cooldowns, disabled flags, session bindings. Behind
 * an interface: the in-memory store here serves one process; core/state/redis-pool-state.ts shares
 * the state with other processes (and keeps one of these as its local mirror).
 */
import { normaliseQuota, type UpstreamQuota } from './quota.js';
import { stateKey, stateText } from './state-key.js';

/** `rate_limit`: the upstream said to wait (hard). `transient`: a 5xx or network fault (soft: see UpstreamPool). */
export type CooldownKind = 'rate_limit' | 'transient';

export interface Cooldown {
  until: number;
  reason: string;
  kind: CooldownKind;
}

export type DisableScope = 'shared' | 'process';

/** What a dashboard or an admin API may show about one upstream: no secret in it. */
export interface UpstreamStateView {
  inFlight: number;
  disabled: string | undefined;
  /** Cooldowns in force; `model` null means the whole account. */
  cooldowns: { model: string | null; until: number; reason: string; kind: CooldownKind }[];
  /** The latest quota the upstream reported; absent when it reported none. */
  quota?: UpstreamQuota;
}

/**
 * Session keys and model names arrive as the client sent them: a store keeps stateKey() of them and
 * stateText() of reasons, caps its entries and drops expired ones, so clients cannot grow it at will.
 */
export interface PoolStateStore {
  /** A read-only view of one upstream's state. */
  view(upstream: string, now: number): UpstreamStateView;
  /** Slots this process holds on the upstream. */
  inFlight(upstream: string): number;
  /**
   * Takes one of the upstream's `limit` concurrency slots (0: no limit); false when all are taken.
   * A shared store counts every process's slots and may answer asynchronously.
   */
  acquire(upstream: string, limit: number): boolean | Promise<boolean>;
  release(upstream: string): void;
  /** A shared store calls this when a slot may have freed in another process. */
  onSlotFreed?(listener: () => void): void;
  /** The cooldown in force for (upstream, model), the account-wide one included. */
  cooldown(upstream: string, model: string | undefined, now: number): Cooldown | undefined;
  /** `model` undefined cools the whole account. */
  cool(upstream: string, model: string | undefined, until: number, reason: string, kind: CooldownKind): void;
  clearCooldown(upstream: string, model: string | undefined): void;
  /**
   * Drops every cooldown of the upstream, the account's and every model's (an operator's clear). Optional
   * for an embedder's own store: without it, the cooldowns its view lists are cleared one by one.
   */
  clearCooldowns?(upstream: string): void;
  /**
   * Success clears what a 5xx or network fault left, for the model and the account; rate limits
   * stay. True when there was something to clear.
   */
  clearTransient(upstream: string, model: string | undefined): boolean;
  /** Session affinity: the upstream a session key is bound to, while the binding lives. */
  affinity(key: string, now: number): string | undefined;
  /** Returns when the binding it replaced would have ended (0: there was none, or to another upstream). */
  bind(key: string, upstream: string, until: number): number;
  unbind(key: string): void;
  /** Drops every binding to this upstream (it cooled or failed). */
  unbindUpstream(upstream: string): void;
  /**
   * `scope` 'process': only this process cannot use it (its own config: no key, say); a shared store
   * does not tell the others. By default every process sharing the state sees it disabled.
   */
  disable(upstream: string, reason: string, scope?: DisableScope): void;
  enable(upstream: string): void;
  disabled(upstream: string): string | undefined;
  /**
   * The latest quota (usage windows) the upstream reported. Optional for an embedder's own store:
   * without it every upstream counts as unreported (`most-headroom` then picks by load).
   */
  quota?(upstream: string): UpstreamQuota | undefined;
  /** Keeps the upstream's latest quota (bounded, whole percents); a shared store tells the others when it changed. */
  setQuota?(upstream: string, quota: UpstreamQuota): void;
}

/** Read-only sizes, for tests and diagnostics: how much a client has made the store keep. */
export interface PoolStateStats {
  bindings: number;
  /** Characters of every binding key together. */
  bindingKeyChars: number;
  /** Per-model cooldowns, every upstream together (account-wide ones not counted). */
  cooldowns: number;
  cooldownKeyChars: number;
}

export interface MemoryPoolStateOptions {
  /** Session bindings kept at most (`pool.affinity.maxEntries`); beyond, the least recently used goes. */
  maxBindings?: number;
  /** Per-model cooldowns kept per upstream, besides its account-wide one. */
  maxModelCooldowns?: number;
}

export const DEFAULT_MAX_BINDINGS = 100_000;
export const DEFAULT_MAX_MODEL_COOLDOWNS = 1000;
/**
 * Expired bindings are swept on a bind at most this often (and whenever over the cap); expired
 * cooldowns on a write at least this often, and every SWEEP_EVERY_WRITES writes.
 */
const SWEEP_EVERY_MS = 1000;
const SWEEP_EVERY_WRITES = 256;
/** A long model name is shown cut to this in views. */
const MAX_MODEL_LABEL = 64;

interface ModelCooldown extends Cooldown {
  /** The model as views show it (the key may be a digest). */
  label: string;
}

interface UpstreamCooldowns {
  account: Cooldown | undefined;
  /** By stateKey(model). Apart from the account's, so no model name can stand for the account. */
  readonly models: Map<string, ModelCooldown>;
}

interface Binding {
  upstream: string;
  until: number;
  /** Used again since it was last put at the back of the map. */
  renewed: boolean;
}

/**
 * One gateway process's state. Bounded whatever clients send: keys go through stateKey(), kept text
 * through stateText(), bindings and per-model cooldowns are capped, and expired entries are swept as
 * the store is used (no timer: nothing keeps the process alive).
 */
export class MemoryPoolState implements PoolStateStore {
  private readonly inflight = new Map<string, number>();
  private readonly cooldowns = new Map<string, UpstreamCooldowns>();
  private readonly disabledReasons = new Map<string, string>();
  /** One per upstream that reported (replaced, never grown per request). */
  private readonly quotas = new Map<string, UpstreamQuota>();
  /** In order of insertion, renewed ones moved to the back as the sweep meets them (second chance). */
  private readonly bindings = new Map<string, Binding>();
  private readonly maxBindings: number;
  private readonly maxModelCooldowns: number;
  private writesSinceSweep = 0;
  private bindingsSweptAt = 0;
  private cooldownsSweptAt = 0;

  constructor(options: MemoryPoolStateOptions = {}) {
    this.maxBindings = options.maxBindings ?? DEFAULT_MAX_BINDINGS;
    this.maxModelCooldowns = options.maxModelCooldowns ?? DEFAULT_MAX_MODEL_COOLDOWNS;
  }

  inFlight(upstream: string): number {
    return this.inflight.get(upstream) ?? 0;
  }
  view(upstream: string, now: number): UpstreamStateView {
    const cooldowns: UpstreamStateView['cooldowns'] = [];
    const cs = this.cooldowns.get(upstream);
    if (cs !== undefined) {
      const a = cs.account;
      if (a !== undefined && a.until <= now) cs.account = undefined;
      else if (a !== undefined)
        cooldowns.push({ model: null, until: a.until, reason: a.reason, kind: a.kind });
      // A dashboard reads this every second: it sweeps as it goes.
      for (const [key, c] of cs.models) {
        if (c.until <= now) cs.models.delete(key);
        else cooldowns.push({ model: c.label, until: c.until, reason: c.reason, kind: c.kind });
      }
    }
    const view: UpstreamStateView = {
      inFlight: this.inFlight(upstream),
      disabled: this.disabledReasons.get(upstream),
      cooldowns,
    };
    const quota = this.quotas.get(upstream);
    if (quota !== undefined) view.quota = quota;
    return view;
  }
  acquire(upstream: string, limit: number): boolean {
    const n = this.inFlight(upstream);
    if (limit > 0 && n >= limit) return false;
    this.inflight.set(upstream, n + 1);
    return true;
  }
  release(upstream: string): void {
    const n = this.inFlight(upstream);
    if (n <= 0) throw new Error(`tapgate: lease released twice for upstream ${upstream}`);
    this.inflight.set(upstream, n - 1);
  }
  cooldown(upstream: string, model: string | undefined, now: number): Cooldown | undefined {
    const cs = this.cooldowns.get(upstream);
    if (cs === undefined) return undefined;
    let found = cs.account;
    if (found !== undefined && found.until <= now) found = cs.account = undefined;
    if (model === undefined || cs.models.size === 0) return found;
    const key = stateKey(model);
    const c = cs.models.get(key);
    if (c === undefined) return found;
    if (c.until <= now) {
      cs.models.delete(key);
      return found;
    }
    // A hard cooldown outranks a soft one; otherwise the later reset wins.
    return found === undefined ||
      (c.kind === 'rate_limit') > (found.kind === 'rate_limit') ||
      (c.kind === found.kind && c.until > found.until)
      ? c
      : found;
  }
  /** The cooldown set on exactly (upstream, model): the account's own when `model` is undefined. */
  ownCooldown(upstream: string, model: string | undefined): Cooldown | undefined {
    const cs = this.cooldowns.get(upstream);
    if (cs === undefined) return undefined;
    return model === undefined ? cs.account : cs.models.get(stateKey(model));
  }
  cool(upstream: string, model: string | undefined, until: number, reason: string, kind: CooldownKind): void {
    let cs = this.cooldowns.get(upstream);
    if (cs === undefined) this.cooldowns.set(upstream, (cs = { account: undefined, models: new Map() }));
    const now = Date.now();
    if (model === undefined) {
      if (replaces(cs.account, until, kind)) cs.account = { until, reason: stateText(reason), kind };
    } else {
      const key = stateKey(model);
      const existing = cs.models.get(key);
      if (replaces(existing, until, kind)) {
        if (existing === undefined && cs.models.size >= this.maxModelCooldowns)
          makeRoom(cs.models, this.maxModelCooldowns, now);
        const label = model.length <= MAX_MODEL_LABEL ? model : stateText(model, MAX_MODEL_LABEL);
        cs.models.set(key, { until, reason: stateText(reason), kind, label });
      }
    }
    if (++this.writesSinceSweep >= SWEEP_EVERY_WRITES || now - this.cooldownsSweptAt >= SWEEP_EVERY_MS)
      this.sweepCooldowns(now);
  }
  clearCooldown(upstream: string, model: string | undefined): void {
    const cs = this.cooldowns.get(upstream);
    if (cs === undefined) return;
    if (model === undefined) cs.account = undefined;
    else if (cs.models.size > 0) cs.models.delete(stateKey(model));
  }
  clearCooldowns(upstream: string): void {
    this.cooldowns.delete(upstream);
  }
  clearTransient(upstream: string, model: string | undefined): boolean {
    const cs = this.cooldowns.get(upstream);
    if (cs === undefined) return false;
    let cleared = false;
    if (cs.account?.kind === 'transient') {
      cs.account = undefined;
      cleared = true;
    }
    if (model === undefined || cs.models.size === 0) return cleared;
    const key = stateKey(model);
    return (cs.models.get(key)?.kind === 'transient' && cs.models.delete(key)) || cleared;
  }
  affinity(key: string, now: number): string | undefined {
    const k = stateKey(key);
    const b = this.bindings.get(k);
    if (b === undefined) return undefined;
    if (b.until <= now) {
      this.bindings.delete(k);
      return undefined;
    }
    return b.upstream;
  }
  bind(key: string, upstream: string, until: number): number {
    const k = stateKey(key);
    const b = this.bindings.get(k);
    let previous = 0;
    if (b === undefined) this.bindings.set(k, { upstream, until, renewed: false });
    else {
      if (b.upstream === upstream) previous = b.until;
      // Renewed in place (a delete and re-insert costs more than the rest of the lookup); the sweep
      // moves it to the back when it reaches the front.
      b.upstream = upstream;
      b.until = until;
      b.renewed = true;
    }
    const now = Date.now();
    if (this.bindings.size <= this.maxBindings && now - this.bindingsSweptAt < SWEEP_EVERY_MS)
      return previous;
    this.bindingsSweptAt = now;
    this.sweepBindings(now);
    return previous;
  }
  unbind(key: string): void {
    this.bindings.delete(stateKey(key));
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
  quota(upstream: string): UpstreamQuota | undefined {
    return this.quotas.get(upstream);
  }
  setQuota(upstream: string, quota: UpstreamQuota): void {
    const kept = normaliseQuota(quota);
    if (kept !== undefined) this.quotas.set(upstream, kept);
  }

  stats(): PoolStateStats {
    let bindingKeyChars = 0;
    for (const k of this.bindings.keys()) bindingKeyChars += k.length;
    let cooldowns = 0;
    let cooldownKeyChars = 0;
    for (const cs of this.cooldowns.values()) {
      cooldowns += cs.models.size;
      for (const k of cs.models.keys()) cooldownKeyChars += k.length;
    }
    return { bindings: this.bindings.size, bindingKeyChars, cooldowns, cooldownKeyChars };
  }

  /**
   * From the front: expired bindings go; a renewed one moves to the back (it was used since); while
   * over the cap, an unrenewed one goes (the least recently used). Stops at the first live, unrenewed
   * binding within the cap: every binding after it was placed later, and the scheduler binds every
   * session for the same TTL, so none of them has expired. A binding moves at most once per pass
   * and only if renewed: amortised O(1) per bind.
   */
  private sweepBindings(now: number): void {
    const bindings = this.bindings;
    for (const [k, b] of bindings) {
      if (b.until <= now) bindings.delete(k);
      else if (b.renewed) {
        b.renewed = false;
        bindings.delete(k);
        bindings.set(k, b);
      } else if (bindings.size > this.maxBindings) bindings.delete(k);
      else break;
    }
  }

  /** Drops every expired cooldown, so a model never looked up again does not keep its entry. */
  private sweepCooldowns(now: number): void {
    this.writesSinceSweep = 0;
    this.cooldownsSweptAt = now;
    for (const cs of this.cooldowns.values()) {
      if (cs.account !== undefined && cs.account.until <= now) cs.account = undefined;
      for (const [k, c] of cs.models) if (c.until <= now) cs.models.delete(k);
    }
  }
}

/** Whether a new cooldown replaces `existing`: it ends later, or it is hard and the existing one soft. */
function replaces(existing: Cooldown | undefined, until: number, kind: CooldownKind): boolean {
  return (
    existing === undefined ||
    existing.until < until ||
    (kind === 'rate_limit' && existing.kind === 'transient')
  );
}

/**
 * A full per-model map makes room for one: the expired go, else the soft (transient) one that ends
 * soonest, else the one that ends soonest. Rate limits go last: they protect the account.
 */
function makeRoom(models: Map<string, ModelCooldown>, max: number, now: number): void {
  for (const [k, c] of models) if (c.until <= now) models.delete(k);
  if (models.size < max) return;
  let victim: string | undefined;
  let best: ModelCooldown | undefined;
  for (const [k, c] of models) {
    if (
      best === undefined ||
      (c.kind === 'transient') > (best.kind === 'transient') ||
      (c.kind === best.kind && c.until < best.until)
    ) {
      victim = k;
      best = c;
    }
  }
  if (victim !== undefined) models.delete(victim);
}
