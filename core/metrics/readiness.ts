/**
 * `/readyz`: can this process serve? At least one upstream usable (not disabled, not cooling for a
 * rate limit across the account), and not draining. The state store never makes it unready: with
 * Redis away, the process serves on its own state (its fallback), which the body reports.
 */
import type { PoolStateStore } from '../pool/pool-state.js';
import type { UpstreamPool } from '../pool/pool.js';

export type StoreCondition = 'memory' | 'redis' | 'fallback';

/** The body of `/readyz`: counts only, no upstream name and no reason (they may name accounts). */
export interface Readiness {
  status: 'ready' | 'unready';
  upstreams: { usable: number; total: number };
  store: StoreCondition;
  draining: boolean;
}

export function upstreamCondition(
  state: PoolStateStore,
  name: string,
  now: number,
): 'ok' | 'cooling' | 'disabled' {
  if (state.disabled(name) !== undefined) return 'disabled';
  return state.view(name, now).cooldowns.length > 0 ? 'cooling' : 'ok';
}

/** Usable: enabled, and no account-wide rate limit (a transient cooldown yields when nothing else is left). */
function usable(state: PoolStateStore, name: string, now: number): boolean {
  return state.disabled(name) === undefined && state.cooldown(name, undefined, now)?.kind !== 'rate_limit';
}

export function readiness(
  pool: UpstreamPool | undefined,
  store: StoreCondition,
  draining: boolean,
): Readiness {
  let count = 0;
  const now = Date.now();
  const upstreams = pool?.upstreams ?? [];
  for (const u of upstreams) if (usable(pool!.state, u.name, now)) count++;
  return {
    status: count > 0 && !draining ? 'ready' : 'unready',
    upstreams: { usable: count, total: upstreams.length },
    store,
    draining,
  };
}
