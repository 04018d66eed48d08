/**
 * The `state` section made real: the pool's state store and the plugins' ClusterStore, in this
 * process (`memory`) or on Redis (`redis`), built once at boot and closed last at shutdown.
 */
import type { GatewayConfig } from '../config/config-schema.js';
import type { Logger } from '../observe/logger.js';
import type { Secrets } from '../observe/secrets.js';
import { MemoryPoolState, type PoolStateStore } from '../pool/pool-state.js';
import { MemoryClusterStore, type ClusterStore } from './cluster-store.js';
import { MemoryLimitStore, type LimitStore } from './limit-store.js';
import { RedisClusterStore } from './redis-cluster-store.js';
import { RedisLimitStore } from './redis-limit-store.js';
import { RedisLink } from './redis-link.js';
import { RedisPoolState } from './redis-pool-state.js';

export interface StateStores {
  readonly pool: PoolStateStore;
  readonly cluster: ClusterStore;
  /** Per-key limit counters (`auth.keys[].limits`). */
  readonly limits: LimitStore;
  /** The Redis connection, with `store: redis`. */
  readonly link: RedisLink | undefined;
  /** Connects (briefly waited for: the gateway serves on local state without it). */
  start(): Promise<void>;
  /** The configured upstreams, once the pool is built: their shared state is read in. */
  track(upstreams: readonly string[]): void;
  close(): Promise<void>;
}

export function createStateStores(
  config: Readonly<GatewayConfig>,
  logger: Logger,
  secrets: Secrets,
  /** The limits' clock (GatewayOptions.clock). */
  clock: () => number = Date.now,
): StateStores {
  const local = new MemoryPoolState({ maxBindings: config.pool.affinity.maxEntries });
  const state = config.state;
  if (state.store === 'memory' || state.url === undefined) {
    return {
      pool: local,
      cluster: new MemoryClusterStore(),
      limits: new MemoryLimitStore(),
      link: undefined,
      start: () => Promise.resolve(),
      track: () => undefined,
      close: () => Promise.resolve(),
    };
  }
  const link = new RedisLink({
    url: state.url,
    keyPrefix: state.keyPrefix,
    timeoutMs: state.timeout,
    logger,
    secrets,
  });
  const pool = new RedisPoolState(link, local, {
    leaseTtlMs: state.leaseTtl,
    bindingTtlMs: config.pool.affinity.ttl,
  });
  return {
    pool,
    cluster: new RedisClusterStore(link),
    limits: new RedisLimitStore(link, new MemoryLimitStore(), logger, clock),
    link,
    start: () => link.start(),
    track: (upstreams) => pool.track(upstreams),
    close: async () => {
      pool.close();
      await link.close();
    },
  };
}
