/**
 * Per-key limit counters shared on Redis (`state.store: redis`): every worker and instance on the
 * same `keyPrefix` counts in the same keys, so a key's limits hold for the cluster.
 *
 * Admission is one EVALSHA that reads every window and counts the request only when none is used
 * up. Charges (tokens, at a request's end) are fired without waiting. Each counter is a plain key
 * named by its window, with a PEXPIRE a minute past the window's end: Redis drops old windows.
 *
 * This process keeps its own counters too (a mirror of what it counted). While Redis is down or
 * slow (RedisLink), admission uses them alone, with one warning per outage: limits then hold per
 * process. What was counted meanwhile is added to Redis when it is back.
 */
import type { CounterWindow } from '../limits/windows.js';
import type { Logger } from '../observe/logger.js';
import type { LimitCheck, LimitCount, LimitStore, MemoryLimitStore } from './limit-store.js';
import type { RedisLink } from './redis-link.js';
import { RedisScript } from './redis-script.js';

/**
 * KEYS: the request counter, then one per token window. ARGV: the request limit (0: none), the
 * request counter's TTL, then each token window's limit. Returns {admitted, requests, tokens…}.
 */
const ADMIT = new RedisScript(`
local out = {1, 0}
for i = 2, #KEYS do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  out[i + 1] = used
  if used >= tonumber(ARGV[i + 1]) then out[1] = 0 end
end
local limit = tonumber(ARGV[1])
if limit > 0 then
  local n = tonumber(redis.call('GET', KEYS[1]) or '0')
  if n >= limit then out[1] = 0 end
  if out[1] == 1 then
    n = redis.call('INCR', KEYS[1])
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
  out[2] = n
end
return out`);

/** Kept past a window's end, for clocks a little apart across hosts. */
const KEEP_AFTER_END_MS = 60_000;
/** Counts made while Redis was away, kept at most (the oldest windows end first and go). */
const MAX_PENDING = 10_000;

interface Pending {
  n: number;
  end: number;
}

export class RedisLimitStore implements LimitStore {
  /** Redis keys → what this process counted in them while Redis was away. */
  private readonly pending = new Map<string, Pending>();
  /** The outage was reported (once per outage). */
  private warned = false;

  constructor(
    private readonly link: RedisLink,
    private readonly local: MemoryLimitStore,
    private readonly logger: Logger,
    private readonly clock: () => number,
  ) {
    link.onUp(() => this.resume());
  }

  admit(check: LimitCheck): LimitCount | Promise<LimitCount> {
    if (!this.link.up) return this.admitLocally(check);
    const req = check.requests;
    const keys = [this.key(check.key, req ?? { id: 'rm', end: 0, limit: 0 })];
    const args: (string | number)[] = [req?.limit ?? 0, req === undefined ? 1 : this.ttl(req)];
    for (const w of check.tokens) {
      keys.push(this.key(check.key, w));
      args.push(w.limit);
    }
    return this.link
      .run((r) => ADMIT.run(r, keys, args))
      .then(
        (reply) => {
          const out = (reply as unknown[]).map(Number);
          const admitted = out[0] === 1;
          if (admitted) this.local.count(check.key, req);
          return { admitted, requests: out[1]!, tokens: check.tokens.map((_, i) => out[i + 2] ?? 0) };
        },
        // Failed on the way: this process's counters decide, as while Redis is down.
        () => this.admitLocally(check),
      );
  }

  refund(key: string, requests: CounterWindow): void {
    this.local.refund(key, requests);
    const k = this.key(key, requests);
    if (this.link.up) this.link.fire((r) => r.decr(k));
    else this.addPending(k, -1, requests.end);
  }

  charge(key: string, tokens: readonly CounterWindow[], amount: number): void {
    this.local.charge(key, tokens, amount);
    if (amount <= 0 || tokens.length === 0) return;
    if (!this.link.up) {
      for (const w of tokens) this.addPending(this.key(key, w), amount, w.end);
      return;
    }
    this.link.fire((r) => {
      const m = r.pipeline();
      for (const w of tokens) m.incrby(this.key(key, w), amount).pexpire(this.key(key, w), this.ttl(w));
      return m.exec();
    });
  }

  private admitLocally(check: LimitCheck): LimitCount {
    if (!this.warned) {
      this.warned = true;
      this.logger.warn(
        { component: 'limits' },
        'Redis unavailable: per-key limits count in this process only until it is back',
      );
    }
    const count = this.local.admit(check);
    if (count.admitted && check.requests !== undefined)
      this.addPending(this.key(check.key, check.requests), 1, check.requests.end);
    return count;
  }

  private addPending(key: string, n: number, end: number): void {
    const p = this.pending.get(key);
    if (p !== undefined) {
      p.n += n;
      return;
    }
    if (this.pending.size >= MAX_PENDING) this.dropEnded();
    if (this.pending.size < MAX_PENDING) this.pending.set(key, { n, end });
  }

  private dropEnded(): void {
    const now = this.clock();
    for (const [k, p] of this.pending) if (p.end <= now) this.pending.delete(k);
  }

  /** Redis is back: what was counted meanwhile goes in, and the next outage is reported again. */
  private resume(): void {
    this.warned = false;
    this.dropEnded();
    if (this.pending.size === 0) return;
    const now = this.clock();
    const writes = [...this.pending];
    this.pending.clear();
    this.link.fire((r) => {
      const m = r.pipeline();
      for (const [k, p] of writes) m.incrby(k, p.n).pexpire(k, Math.max(1, p.end - now + KEEP_AFTER_END_MS));
      return m.exec();
    });
  }

  private key(name: string, w: CounterWindow): string {
    return this.link.key(`lim:${name}:${w.id}`);
  }

  private ttl(w: CounterWindow): number {
    return Math.max(1, w.end - this.clock() + KEEP_AFTER_END_MS);
  }
}
