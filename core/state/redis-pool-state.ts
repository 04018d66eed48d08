/**
 * Pool state shared on Redis by every worker and instance (`state.store: redis`).
 *
 * Reads stay local and synchronous: each process keeps a mirror (a MemoryPoolState) that every
 * change reaches, from this process at once and from the others through one channel, so choosing
 * an upstream costs no round trip. Writes (cooldowns, disabled accounts, session bindings) go to
 * the mirror, then to Redis and the channel in one pipelined write that nothing waits for.
 *
 * Concurrency slots are the exception: `maxConcurrency` holds for the whole cluster, so taking one
 * is the one Redis round trip on a request's path (none for an upstream without a limit). A slot is
 * a lease in a sorted set, scored by when it expires; a heartbeat renews this process's leases, so
 * the slots of a process that died come back within `state.leaseTtl`. A release publishes, which
 * wakes the waiters of every process.
 *
 * Quotas (the usage windows an upstream reports) are shared the same way, but only when a value
 * changes (a window, a whole percent, a new reset): every process then prefers the same accounts.
 *
 * When Redis is down or slow (RedisLink), every operation uses the mirror alone: limits then hold
 * per process. When it is back, this process writes what it knows (its cooldowns, disabled
 * accounts and leases: a Redis restarted empty is rebuilt) and reads what the others wrote.
 */
import type {
  Cooldown,
  CooldownKind,
  DisableScope,
  PoolStateStore,
  UpstreamStateView,
} from '../pool/pool-state.js';
import type { MemoryPoolState } from '../pool/pool-state.js';
import { quotaChanged, type UpstreamQuota } from '../pool/quota.js';
import { stateKey } from '../pool/state-key.js';
import { RedisScript } from './redis-script.js';
import type { ChainableCommander } from 'ioredis';
import type { RedisLink } from './redis-link.js';

export interface RedisPoolStateOptions {
  leaseTtlMs: number;
  /** `pool.affinity.ttl`: a binding renewed locally is re-shared once half of it has passed. */
  bindingTtlMs: number;
}

/** Takes a slot if fewer than the limit are live; expired leases go first. Redis's clock scores them. */
const ACQUIRE = new RedisScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return 1`);

/**
 * Gives a slot back (one command on the release path). Only a release from a full set is announced:
 * no process waits for an upstream that had a free slot.
 */
const RELEASE = new RedisScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('ZCARD', KEYS[1]) + 1 >= tonumber(ARGV[2]) then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return 1`);

/** Renews (or, after a Redis restart, re-creates) this process's leases on one upstream. */
const RENEW = new RedisScript(`
local t = redis.call('TIME')
local until = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], until, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return 1`);

/** Stores a cooldown in the upstream's hash; the hash lives as long as its longest cooldown. */
const COOL = new RedisScript(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local ttl = tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1`);

/** Drops the named fields that hold a transient cooldown (a rate limit stays). */
const CLEAR_TRANSIENT = new RedisScript(`
for i = 1, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v and string.find(v, '"kind":"transient"', 1, true) then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 1`);

/**
 * A change one process made, for the others' mirrors. On the channel it follows the id of the
 * process that made it and a space, so a process skips its own without parsing them.
 */
type Change =
  | { t: 'cool'; u: string; m: string | null; until: number; reason: string; kind: CooldownKind }
  | { t: 'clear'; u: string; m: string | null; transient: boolean }
  | { t: 'clearAll'; u: string }
  | { t: 'disable'; u: string; reason: string }
  | { t: 'enable'; u: string }
  | { t: 'bind'; k: string; u: string; until: number }
  | { t: 'unbind'; k: string }
  | { t: 'unbindUpstream'; u: string }
  | { t: 'slot'; u: string }
  | { t: 'quota'; u: string; q: UpstreamQuota };

/** A cooldown as stored in Redis (the field is the model's state key, or `*` for the account). */
interface StoredCooldown {
  until: number;
  reason: string;
  kind: CooldownKind;
  /** The model as sent (views show it); absent for the account. */
  model?: string;
}

const CHANNEL = 'pool';
const ACCOUNT_FIELD = '*';
/** A quota with no reset to outlive is kept in Redis this long (a new instance still reads it). */
const QUOTA_TTL_MS = 7 * 24 * 3600_000;
/** Bindings read back from Redis when it (re)connects, at most. */
const MAX_BINDINGS_LOADED = 100_000;

export class RedisPoolState implements PoolStateStore {
  /** This process's leases per upstream: ids, any of which a release gives back. */
  private readonly leases = new Map<string, string[]>();
  private leaseSeq = 0;
  /** Each upstream's `maxConcurrency`, as acquire() was told. */
  private readonly limits = new Map<string, number>();
  /** Disabled by this process's own config (`scope` 'process'): never shared, never enabled by others. */
  private readonly ownDisabled = new Set<string>();
  /** What this process's messages start with. */
  private readonly origin: string;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly slotListeners: (() => void)[] = [];
  private readonly unsubscribe: () => void;
  /** Upstreams this process knows (configured): what it pushes and reads back on reconnect. */
  private upstreams: readonly string[] = [];

  constructor(
    private readonly link: RedisLink,
    private readonly local: MemoryPoolState,
    private readonly options: RedisPoolStateOptions,
  ) {
    this.origin = link.id + ' ';
    this.unsubscribe = link.subscribe(CHANNEL, (message) => this.apply(message));
    this.heartbeat = setInterval(() => this.renew(), Math.max(250, Math.floor(options.leaseTtlMs / 3)));
    this.heartbeat.unref();
    link.onUp(() => void this.resync());
  }

  /** The configured upstreams: their state is read from Redis now, and pushed after an outage. */
  track(upstreams: readonly string[]): void {
    this.upstreams = upstreams;
    if (this.link.up) void this.resync();
  }

  close(): void {
    clearInterval(this.heartbeat);
    this.unsubscribe();
  }

  // Reads: the mirror's.
  view(upstream: string, now: number): UpstreamStateView {
    return this.local.view(upstream, now);
  }
  inFlight(upstream: string): number {
    return this.local.inFlight(upstream);
  }
  cooldown(upstream: string, model: string | undefined, now: number): Cooldown | undefined {
    return this.local.cooldown(upstream, model, now);
  }
  affinity(key: string, now: number): string | undefined {
    return this.local.affinity(key, now);
  }
  disabled(upstream: string): string | undefined {
    return this.local.disabled(upstream);
  }
  quota(upstream: string): UpstreamQuota | undefined {
    return this.local.quota(upstream);
  }

  setQuota(upstream: string, quota: UpstreamQuota): void {
    const previous = this.local.quota(upstream);
    this.local.setQuota(upstream, quota);
    const kept = this.local.quota(upstream);
    if (kept === undefined || !quotaChanged(previous, kept)) return;
    const json = JSON.stringify(kept);
    this.share({ t: 'quota', u: upstream, q: kept }, (m) =>
      m.set(this.quotaKey(upstream), json, 'PX', quotaTtl(kept, Date.now())),
    );
  }

  // Slots.
  acquire(upstream: string, limit: number): boolean | Promise<boolean> {
    // This process's slots are among the cluster's: if it alone holds the limit, no need to ask.
    if (limit > 0) this.limits.set(upstream, limit);
    if (limit === 0 || !this.link.up || this.local.inFlight(upstream) >= limit)
      return this.takeLocal(upstream, limit);
    const id = `${this.link.id}:${++this.leaseSeq}`;
    const key = this.slotsKey(upstream);
    return this.link
      .run((r) => ACQUIRE.run(r, [key], [id, limit, this.options.leaseTtlMs]))
      .then(
        (ok) => {
          if (Number(ok) !== 1) return false;
          // Counted locally too: the mirror's in-flight is this process's share.
          this.local.acquire(upstream, 0);
          this.held(upstream).push(id);
          return true;
        },
        // Redis failed on the way: this process's own count decides, as while it is down.
        () => this.takeLocal(upstream, limit),
      );
  }

  release(upstream: string): void {
    this.local.release(upstream);
    const id = this.leases.get(upstream)?.pop();
    if (id === undefined) return;
    const change: Change = { t: 'slot', u: upstream };
    const limit = this.limits.get(upstream) ?? 0;
    this.link.fire((r) =>
      RELEASE.run(r, [this.slotsKey(upstream)], [id, limit, this.link.channel(CHANNEL), this.encode(change)]),
    );
  }

  onSlotFreed(listener: () => void): void {
    this.slotListeners.push(listener);
  }

  // Cooldowns and disabled accounts.
  cool(upstream: string, model: string | undefined, until: number, reason: string, kind: CooldownKind): void {
    this.local.cool(upstream, model, until, reason, kind);
    this.shareCooldown(upstream, model);
  }

  clearCooldown(upstream: string, model: string | undefined): void {
    this.local.clearCooldown(upstream, model);
    this.share({ t: 'clear', u: upstream, m: modelKey(model), transient: false }, (m) =>
      m.hdel(this.coolKey(upstream), model === undefined ? ACCOUNT_FIELD : stateKey(model)),
    );
  }

  clearCooldowns(upstream: string): void {
    this.local.clearCooldowns(upstream);
    this.share({ t: 'clearAll', u: upstream }, (m) => m.del(this.coolKey(upstream)));
  }

  clearTransient(upstream: string, model: string | undefined): boolean {
    // On every success: it costs Redis something only when there was a transient cooldown to clear.
    if (!this.local.clearTransient(upstream, model)) return false;
    const fields = model === undefined ? [ACCOUNT_FIELD] : [ACCOUNT_FIELD, stateKey(model)];
    this.share({ t: 'clear', u: upstream, m: modelKey(model), transient: true }, (m) =>
      CLEAR_TRANSIENT.queue(m, [this.coolKey(upstream)], fields),
    );
    return true;
  }

  disable(upstream: string, reason: string, scope: DisableScope = 'shared'): void {
    this.local.disable(upstream, reason);
    if (scope === 'process') {
      this.ownDisabled.add(upstream);
      return;
    }
    const stored = this.local.disabled(upstream)!;
    this.share({ t: 'disable', u: upstream, reason: stored }, (m) =>
      m.set(this.disabledKey(upstream), stored),
    );
  }

  enable(upstream: string): void {
    this.ownDisabled.delete(upstream);
    this.local.enable(upstream);
    this.share({ t: 'enable', u: upstream }, (m) => m.del(this.disabledKey(upstream)));
  }

  // Session bindings.
  bind(key: string, upstream: string, until: number): number {
    const previous = this.local.bind(key, upstream, until);
    const now = Date.now();
    // A renewal is shared only once half the TTL has passed: a busy session is not one write per request.
    if (previous - now > this.options.bindingTtlMs / 2) return previous;
    const k = stateKey(key);
    this.share({ t: 'bind', k, u: upstream, until }, (m) =>
      m.set(this.bindingKey(k), upstream, 'PX', Math.max(1, until - now)),
    );
    return previous;
  }

  unbind(key: string): void {
    this.local.unbind(key);
    const k = stateKey(key);
    this.share({ t: 'unbind', k }, (m) => m.del(this.bindingKey(k)));
  }

  unbindUpstream(upstream: string): void {
    this.local.unbindUpstream(upstream);
    // Bindings stored in Redis are left to their TTL: a process reading one finds its upstream
    // cooling or disabled, and the scheduler moves the session then.
    this.share({ t: 'unbindUpstream', u: upstream }, (m) => m);
  }

  private takeLocal(upstream: string, limit: number): boolean {
    if (!this.local.acquire(upstream, limit)) return false;
    // Named anyway: the heartbeat registers it in Redis when Redis is (back) up.
    if (limit > 0) this.held(upstream).push(`${this.link.id}:${++this.leaseSeq}`);
    return true;
  }

  private held(upstream: string): string[] {
    let ids = this.leases.get(upstream);
    if (ids === undefined) this.leases.set(upstream, (ids = []));
    return ids;
  }

  /** Renews this process's leases, and lets local waiters look again (a dead process's leases expire unannounced). */
  private renew(): void {
    for (const l of this.slotListeners) l();
    if (!this.link.up) return;
    const ttl = this.options.leaseTtlMs;
    for (const [upstream, ids] of this.leases) {
      if (ids.length === 0) continue;
      this.link.fire((r) => RENEW.run(r, [this.slotsKey(upstream)], [ttl, ...ids]));
    }
  }

  private shareCooldown(upstream: string, model: string | undefined): void {
    // What the mirror now holds (a later or harder cooldown already there wins over this one).
    const c = this.local.ownCooldown(upstream, model);
    if (c === undefined) return;
    const ttl = c.until - Date.now();
    if (ttl <= 0) return;
    const m = modelKey(model);
    const stored: StoredCooldown = { until: c.until, reason: c.reason, kind: c.kind };
    if (m !== null) stored.model = m;
    const field = m ?? ACCOUNT_FIELD;
    this.share({ t: 'cool', u: upstream, m, until: c.until, reason: c.reason, kind: c.kind }, (m) =>
      COOL.queue(m, [this.coolKey(upstream)], [field, JSON.stringify(stored), ttl]),
    );
  }

  /** One pipelined write (not a transaction): the change in Redis, then on the channel. Nothing waits for it. */
  private share(change: Change, write: (m: ChainableCommander) => unknown): void {
    this.link.fire((r) => {
      const m = r.pipeline();
      write(m);
      m.publish(this.link.channel(CHANNEL), this.encode(change));
      return m.exec();
    });
  }

  /** Another process's change, applied to the mirror. */
  private encode(change: Change): string {
    return this.origin + JSON.stringify(change);
  }

  private apply(message: string): void {
    if (message.startsWith(this.origin)) return;
    let c: Change;
    try {
      c = JSON.parse(message.slice(message.indexOf(' ') + 1)) as Change;
    } catch {
      return;
    }
    const local = this.local;
    switch (c.t) {
      case 'cool':
        local.cool(c.u, c.m ?? undefined, c.until, c.reason, c.kind);
        break;
      case 'clear':
        if (c.transient) local.clearTransient(c.u, c.m ?? undefined);
        else local.clearCooldown(c.u, c.m ?? undefined);
        break;
      case 'clearAll':
        local.clearCooldowns(c.u);
        break;
      case 'disable':
        local.disable(c.u, c.reason);
        break;
      case 'enable':
        // Enabled elsewhere; this process still cannot use it if its own config disabled it.
        if (!this.ownDisabled.has(c.u)) local.enable(c.u);
        break;
      case 'bind':
        local.bind(c.k, c.u, c.until);
        break;
      case 'unbind':
        local.unbind(c.k);
        break;
      case 'unbindUpstream':
        local.unbindUpstream(c.u);
        break;
      case 'slot':
        for (const l of this.slotListeners) l();
        break;
      case 'quota':
        local.setQuota(c.u, c.q);
        break;
    }
  }

  /**
   * Redis (re)connected: what this process knows goes in (a Redis restarted empty is rebuilt), then
   * what the others wrote comes into the mirror. Leases are renewed right away.
   */
  private async resync(): Promise<void> {
    const now = Date.now();
    const link = this.link;
    try {
      await link.run((r) => {
        const m = r.pipeline();
        for (const u of this.upstreams) {
          const reason = this.ownDisabled.has(u) ? undefined : this.local.disabled(u);
          if (reason !== undefined) m.set(this.disabledKey(u), reason);
          const quota = this.local.quota(u);
          if (quota !== undefined)
            m.set(this.quotaKey(u), JSON.stringify(quota), 'PX', quotaTtl(quota, now), 'NX');
          for (const c of this.local.view(u, now).cooldowns) {
            const field = c.model === null ? ACCOUNT_FIELD : stateKey(c.model);
            const stored: StoredCooldown = { until: c.until, reason: c.reason, kind: c.kind };
            if (c.model !== null) stored.model = c.model;
            COOL.queue(m, [this.coolKey(u)], [field, JSON.stringify(stored), Math.max(1, c.until - now)]);
          }
        }
        return m.exec();
      });
      this.renew();
      const replies = await link.run((r) => {
        const p = r.pipeline();
        for (const u of this.upstreams)
          p.hgetall(this.coolKey(u)).get(this.disabledKey(u)).get(this.quotaKey(u));
        return p.exec();
      });
      this.upstreams.forEach((u, i) => {
        const cools = replies?.[3 * i]?.[1] as Record<string, string> | null;
        const disabled = replies?.[3 * i + 1]?.[1] as string | null;
        const quota = parseQuota(replies?.[3 * i + 2]?.[1]);
        if (typeof disabled === 'string') this.local.disable(u, disabled);
        // Another process's report is newer only if it was observed later.
        if (quota !== undefined && quota.observedAt > (this.local.quota(u)?.observedAt ?? 0))
          this.local.setQuota(u, quota);
        for (const [field, json] of Object.entries(cools ?? {})) {
          const c = parseCooldown(json);
          if (c === undefined || c.until <= Date.now()) continue;
          this.local.cool(
            u,
            field === ACCOUNT_FIELD ? undefined : (c.model ?? field),
            c.until,
            c.reason,
            c.kind,
          );
        }
      });
      await this.loadBindings();
    } catch {
      // Redis went away again: the next reconnect runs this again.
    }
  }

  /** Session bindings stored by any process, into the mirror (bounded). */
  private async loadBindings(): Promise<void> {
    const pattern = this.link.key('aff:*');
    let cursor = '0';
    let loaded = 0;
    do {
      const [next, keys] = await this.link.run((r) => r.scan(cursor, 'MATCH', pattern, 'COUNT', 1000));
      cursor = next;
      if (keys.length === 0) continue;
      const replies = await this.link.run((r) => {
        const p = r.pipeline();
        for (const k of keys) p.get(k).pttl(k);
        return p.exec();
      });
      const now = Date.now();
      const prefix = this.link.key('aff:').length;
      keys.forEach((k, i) => {
        const upstream = replies?.[2 * i]?.[1];
        const ttl = Number(replies?.[2 * i + 1]?.[1]);
        if (typeof upstream === 'string' && ttl > 0) this.local.bind(k.slice(prefix), upstream, now + ttl);
      });
      loaded += keys.length;
    } while (cursor !== '0' && loaded < MAX_BINDINGS_LOADED);
  }

  private slotsKey(upstream: string): string {
    return this.link.key('slots:' + upstream);
  }
  private coolKey(upstream: string): string {
    return this.link.key('cool:' + upstream);
  }
  private disabledKey(upstream: string): string {
    return this.link.key('disabled:' + upstream);
  }
  private quotaKey(upstream: string): string {
    return this.link.key('quota:' + upstream);
  }
  private bindingKey(k: string): string {
    return this.link.key('aff:' + k);
  }
}

/**
 * How a model travels and is stored: its state key, so a client's megabyte model name costs a
 * 50-character digest (the mirror's own stateKey() leaves a digest as it is).
 */
function modelKey(model: string | undefined): string | null {
  return model === undefined ? null : stateKey(model);
}

function parseCooldown(json: string): StoredCooldown | undefined {
  try {
    const c = JSON.parse(json) as StoredCooldown;
    if (typeof c.until !== 'number' || typeof c.reason !== 'string') return undefined;
    if (c.kind !== 'rate_limit' && c.kind !== 'transient') return undefined;
    return c;
  } catch {
    return undefined;
  }
}

/** Until the last of its windows resets (the report says nothing after that), a week without one. */
function quotaTtl(quota: UpstreamQuota, now: number): number {
  let until = 0;
  for (const w of quota.windows) {
    if (w.resetsAt === null) return QUOTA_TTL_MS;
    until = Math.max(until, w.resetsAt);
  }
  return Math.max(1000, until - now);
}

/** A stored quota, checked for shape (MemoryPoolState.setQuota bounds and cleans the rest). */
function parseQuota(json: unknown): UpstreamQuota | undefined {
  if (typeof json !== 'string') return undefined;
  try {
    const q = JSON.parse(json) as UpstreamQuota;
    return typeof q === 'object' && q !== null && typeof q.observedAt === 'number' ? q : undefined;
  } catch {
    return undefined;
  }
}
