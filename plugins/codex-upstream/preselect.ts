/**
 * Refreshes that decide which account takes the attempt. Today the core fails a request whose
 * `prepareUpstreamRequest` throws, without classifying the error or failing over; so the refreshes
 * that can fail a request (an expired token, or the one forced by a 401) run here first, in
 * `selectUpstream`, where an account that cannot be refreshed is simply left out of the candidates.
 * The retry after a `refresh` verdict is pinned to the same account. The prepare tap still refreshes
 * on its own (ahead of expiry, or when this tap did not run), so this is an optimisation of routing,
 * not the only path.
 */
import type { RequestContext } from '../../core/context.js';
import type { Upstream } from '../../core/upstream.js';
import type { CodexAccount } from './account.js';
import { peekState } from './request-state.js';

export async function preselect(
  ctx: RequestContext,
  candidates: Upstream[],
  accountOf: (u: Upstream) => CodexAccount | undefined,
): Promise<Upstream | undefined> {
  const st = peekState(ctx);
  const pinned =
    st?.refreshNext === undefined ? undefined : candidates.find((u) => u.name === st.refreshNext);
  const now = Date.now();
  const failed = new Set<Upstream>();
  let lastError: unknown;
  const work: Promise<void>[] = [];
  for (const u of candidates) {
    const account = accountOf(u);
    if (account === undefined) continue;
    const forced = u === pinned;
    if (!forced && !account.expired(now)) continue;
    work.push(
      account.ensure(forced, forced ? st!.sent.get(u.name) : undefined).catch((err: unknown) => {
        failed.add(u);
        lastError = err;
      }),
    );
  }
  if (work.length > 0) await Promise.all(work);
  if (failed.size > 0) {
    // In place: the taps after this one choose from the same array.
    for (let i = candidates.length - 1; i >= 0; i--) if (failed.has(candidates[i]!)) candidates.splice(i, 1);
    if (candidates.length === 0) throw lastError;
  }
  return pinned !== undefined && !failed.has(pinned) ? pinned : undefined;
}
