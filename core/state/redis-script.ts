/**
 * A Lua script run by its SHA1 (EVALSHA), so a hot one costs its arguments, not its text. A Redis
 * that does not know it (restarted, or flushed) gets the text once (EVAL), which also loads it.
 */
import { createHash } from 'node:crypto';
import type { Redis, ChainableCommander } from 'ioredis';

export class RedisScript {
  private readonly sha: string;

  constructor(private readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  async run(redis: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(this.lua, keys.length, ...keys, ...args);
    }
  }

  /** In a pipeline: by its text (EVAL), since a NOSCRIPT there could not be retried alone. Rare writes only. */
  queue(pipeline: ChainableCommander, keys: readonly string[], args: readonly (string | number)[]): void {
    pipeline.eval(this.lua, keys.length, ...keys, ...args);
  }
}
