/**
 * The core's upstream selection (the `selectUpstream` fallback): session affinity first, then the
 * configured strategy within the best priority tier (lower `priority` is preferred).
 */
import type { RequestContext } from '../kernel/context.js';
import { SelectionPolicyRegistry, type SelectionPolicy } from './policies.js';
import type { PoolStateStore } from './pool-state.js';
import { stateKey } from './state-key.js';
import type { Upstream } from './upstream.js';

export interface SchedulerOptions {
  /** A registered selection policy: `round-robin`, `least-in-flight`, `fill-first`, or a plugin's. */
  strategy: string;
  affinity: { enabled: boolean; ttl: number };
  /** Where `strategy` is looked up (the built-in three when omitted). */
  policies?: SelectionPolicyRegistry;
}

export class Scheduler {
  /** Made on first use: plugins register their policies after the core's taps exist (the boot checks the name). */
  private policy: SelectionPolicy | undefined;

  constructor(
    private readonly state: PoolStateStore,
    private readonly options: SchedulerOptions,
  ) {}

  private makePolicy(): SelectionPolicy {
    const factory = (this.options.policies ?? new SelectionPolicyRegistry()).get(this.options.strategy);
    if (factory === undefined) throw new Error(`unknown selection policy "${this.options.strategy}"`);
    return factory();
  }

  /**
   * The session key of a request: `session-id`/`session_id` → `prompt_cache_key` → `previous_response_id`.
   * Bounded here (a long one hashed once per request); the store's own stateKey() then leaves it as it is.
   */
  static sessionKey(ctx: RequestContext): string | undefined {
    const h = ctx.req.headers;
    const header = h['session-id'] ?? h['session_id'];
    if (typeof header === 'string' && header.length > 0) return stateKey('s:' + header);
    const json = ctx.json;
    if (json === undefined) return undefined;
    if (typeof json.prompt_cache_key === 'string' && json.prompt_cache_key.length > 0)
      return stateKey('p:' + json.prompt_cache_key);
    if (typeof json.previous_response_id === 'string' && json.previous_response_id.length > 0)
      return stateKey('r:' + json.previous_response_id);
    return undefined;
  }

  select(ctx: RequestContext, candidates: readonly Upstream[]): Upstream {
    const affinity = this.options.affinity;
    const key = affinity.enabled ? Scheduler.sessionKey(ctx) : undefined;
    const now = Date.now();
    if (key !== undefined) {
      const bound = this.state.affinity(key, now);
      if (bound !== undefined) {
        const hit = candidates.find((u) => u.name === bound);
        if (hit !== undefined) {
          this.state.bind(key, bound, now + affinity.ttl);
          return hit;
        }
        // Bound elsewhere: if that account is cooling or disabled, let the session move for good;
        // if it is only busy (or already tried), serve this request elsewhere and keep the binding.
        if (
          this.state.disabled(bound) !== undefined ||
          this.state.cooldown(bound, ctx.model, now) !== undefined
        ) {
          this.state.unbind(key);
        } else {
          return this.pick(candidates);
        }
      }
      const chosen = this.pick(candidates);
      this.state.bind(key, chosen.name, now + affinity.ttl);
      return chosen;
    }
    return this.pick(candidates);
  }

  private pick(candidates: readonly Upstream[]): Upstream {
    let best = Infinity;
    for (const u of candidates) if (u.priority < best) best = u.priority;
    const tier = candidates.length === 1 ? candidates : candidates.filter((u) => u.priority === best);
    return tier.length === 1 ? tier[0]! : (this.policy ??= this.makePolicy()).pick(tier, this.state);
  }
}
