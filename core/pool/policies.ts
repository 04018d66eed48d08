/**
 * Selection policies: how the scheduler picks among the eligible upstreams of the best priority tier.
 * Registered by name, like upstream types; `pool.strategy` names one. tapgate's four are built in;
 * a plugin registers its own in apply() (`context.selectionPolicies.register`).
 */
import type { PoolStateStore } from './pool-state.js';
import { quotaUsed } from './quota.js';
import type { Upstream } from './upstream.js';

export interface SelectionPolicy {
  /** One of `tier` (never empty, config order): the upstream for this attempt. */
  pick(tier: readonly Upstream[], state: PoolStateStore): Upstream;
}

/** Called once per scheduler, so a policy may keep state (round-robin's weights). */
export type SelectionPolicyFactory = () => SelectionPolicy;

/** Candidates keep config order: the first with a free slot takes everything it can (one warm cache). */
const fillFirst: SelectionPolicyFactory = () => ({ pick: (tier) => tier[0]! });

/** The fewest requests in flight per unit of weight. */
const leastInFlight: SelectionPolicyFactory = () => ({
  pick(tier, state) {
    let chosen = tier[0]!;
    let load = Infinity;
    for (const u of tier) {
      const l = state.inFlight(u.name) / u.weight;
      if (l < load) {
        load = l;
        chosen = u;
      }
    }
    return chosen;
  },
});

/**
 * The most headroom on the provider's own quota (the usage windows its plugin reports): the upstream
 * whose most-used window is the least used. A window past its reset counts as empty, an upstream
 * that reported nothing as unused (so it gets tried, and reports). Ties (the same whole percent) go
 * to the fewest in flight per weight, then to config order.
 */
const mostHeadroom: SelectionPolicyFactory = () => ({
  pick(tier, state) {
    const now = Date.now();
    let chosen = tier[0]!;
    let used = Infinity;
    let load = Infinity;
    for (const u of tier) {
      const q = quotaUsed(state.quota?.(u.name), now);
      const l = state.inFlight(u.name) / u.weight;
      if (q < used || (q === used && l < load)) {
        used = q;
        load = l;
        chosen = u;
      }
    }
    return chosen;
  },
});

/** Smooth weighted round-robin (nginx's): picks in proportion to `weight`, without bursts. */
const roundRobin: SelectionPolicyFactory = () => {
  const current = new Map<string, number>();
  return {
    pick(tier) {
      let total = 0;
      let chosen = tier[0]!;
      let chosenWeight = -Infinity;
      for (const u of tier) {
        const w = (current.get(u.name) ?? 0) + u.weight;
        current.set(u.name, w);
        total += u.weight;
        if (w > chosenWeight) {
          chosenWeight = w;
          chosen = u;
        }
      }
      current.set(chosen.name, chosenWeight - total);
      return chosen;
    },
  };
};

export class SelectionPolicyRegistry {
  private readonly policies = new Map<string, SelectionPolicyFactory>([
    ['round-robin', roundRobin],
    ['least-in-flight', leastInFlight],
    ['fill-first', fillFirst],
    ['most-headroom', mostHeadroom],
  ]);

  register(name: string, factory: SelectionPolicyFactory): void {
    if (this.policies.has(name)) throw new Error(`selection policy "${name}" is already registered`);
    this.policies.set(name, factory);
  }

  get(name: string): SelectionPolicyFactory | undefined {
    return this.policies.get(name);
  }

  names(): string[] {
    return [...this.policies.keys()];
  }
}
