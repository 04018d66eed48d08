/** The answer to Codex's usage routes (usage-routes.ts): the pool's Codex accounts as they are now. */
import type { Reply, Upstream, UpstreamPool } from '../../core/index.js';
import type { CodexAccount } from './account.js';
import { jwtPlanType } from './jwt.js';
import { usageStatus, type AccountView } from './usage-status.js';

/** `account` gives an upstream's account (undefined: not a Codex upstream, or not set up). */
export function usageReply(
  pool: UpstreamPool,
  account: (upstream: Upstream) => CodexAccount | undefined,
  now = Date.now(),
): Reply {
  const views: AccountView[] = [];
  for (const u of pool.upstreams) {
    const acct = account(u);
    if (acct === undefined) continue;
    const cooling = pool.state.cooldown(u.name, undefined, now);
    views.push({
      quota: pool.state.quota?.(u.name),
      disabled: pool.state.disabled(u.name) !== undefined,
      // A transient cooldown does not stop the pool from using the account (it is soft).
      coolingUntil: cooling?.kind === 'rate_limit' ? cooling.until : undefined,
      plan: planOf(acct),
    });
  }
  return {
    status: 200,
    headers: { 'cache-control': 'no-store' },
    body: usageStatus(views, now),
  };
}

function planOf(account: CodexAccount): string | undefined {
  const { idToken, accessToken } = account.tokens;
  return (idToken === undefined ? undefined : jwtPlanType(idToken)) ?? jwtPlanType(accessToken);
}
