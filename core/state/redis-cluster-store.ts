/** The ClusterStore on Redis: what plugins share across workers and instances (`state.store: redis`). */
import type { ClusterLock, ClusterStore } from './cluster-store.js';
import type { RedisLink } from './redis-link.js';

/** Takes the lock when free: a new fence from the counter, stored as the lock's value. */
const LOCK = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], fence, 'PX', ARGV[1])
return fence`;
/** The fenced write: only while the lock still holds this fence. */
const SET_IF_HELD = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == '' then redis.call('SET', KEYS[2], ARGV[2]) else redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
return 1`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1`;

export class RedisClusterStore implements ClusterStore {
  readonly shared = true;

  constructor(private readonly link: RedisLink) {}

  get(key: string): Promise<string | undefined> {
    return this.link.run(async (r) => (await r.get(this.link.key('kv:' + key))) ?? undefined);
  }

  set(key: string, value: string, ttlMs?: number): Promise<void> {
    const k = this.link.key('kv:' + key);
    return this.link.run(async (r) => {
      await (ttlMs === undefined ? r.set(k, value) : r.set(k, value, 'PX', ttlMs));
    });
  }

  claim(key: string, value: string, ttlMs: number): Promise<boolean> {
    const k = this.link.key('kv:' + key);
    return this.link.run(async (r) => (await r.set(k, value, 'PX', ttlMs, 'NX')) === 'OK');
  }

  async lock(name: string, ttlMs: number): Promise<ClusterLock | undefined> {
    const link = this.link;
    const lockKey = link.key('lock:' + name);
    const fence = Number(
      await link.run((r) => r.eval(LOCK, 2, lockKey, link.key('fence'), String(ttlMs)) as Promise<number>),
    );
    if (fence === 0) return undefined;
    const token = String(fence);
    return {
      fence,
      setIfHeld: async (key, value, ttl) =>
        Number(
          await link.run(
            (r) =>
              r.eval(
                SET_IF_HELD,
                2,
                lockKey,
                link.key('kv:' + key),
                token,
                value,
                ttl === undefined ? '' : String(ttl),
              ) as Promise<number>,
          ),
        ) === 1,
      release: async () => {
        await link.run((r) => r.eval(RELEASE, 1, lockKey, token));
      },
    };
  }

  publish(channel: string, message: string): Promise<void> {
    return this.link.run(async (r) => {
      await r.publish(this.link.channel(channel), message);
    });
  }

  subscribe(channel: string, listener: (message: string) => void): () => void {
    return this.link.subscribe(channel, listener);
  }
}
