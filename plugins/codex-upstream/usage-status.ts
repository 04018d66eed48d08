/**
 * The body of `GET /backend-api/wham/usage` (and `/api/codex/usage`) for a pool of Codex accounts,
 * in the shape Codex decodes (codex-backend-openapi-models `RateLimitStatusPayload`): the four window
 * fields are required 32-bit integers (a fraction fails the decode), `reset_at` is unix seconds.
 *
 * The pool's view is the one a client of the pool gets:
 * - Some account usable (enabled, not rate-limit cooling, no window at 100 %): the windows of the
 *   usable account with the most headroom (its most-used window least used, as `most-headroom`
 *   picks; ties to config order). Both windows come from that one account, so they belong together.
 *   `rate_limit` is null while no usable account has reported windows.
 * - None usable, some out for quota reasons: `limit_reached`, with the windows of the account that
 *   comes back first.
 * - None usable otherwise (all disabled): not allowed, no limit reached, no windows.
 * - No Codex account: `rate_limit` null.
 * No account name, id or token is in the body.
 */
import type { QuotaWindow, UpstreamQuota } from '../../core/index.js';

/** One Codex upstream as the pool sees it now. */
export interface AccountView {
  quota: UpstreamQuota | undefined;
  disabled: boolean;
  /** An account-wide rate-limit cooldown in force: until when (ms epoch). */
  coolingUntil: number | undefined;
  /** The account's `chatgpt_plan_type` claim, when its tokens carry one. */
  plan: string | undefined;
}

export interface WindowBody {
  used_percent: number;
  limit_window_seconds: number;
  reset_after_seconds: number;
  reset_at: number;
}

export interface RateLimitBody {
  allowed: boolean;
  limit_reached: boolean;
  primary_window: WindowBody | null;
  secondary_window: WindowBody | null;
}

export interface UsageStatusBody {
  plan_type: string;
  rate_limit: RateLimitBody | null;
  credits: null;
}

/**
 * Plans every Codex version decodes (older ones fail on a name outside their enum); the others
 * (`go`, `guest`, …) are reported as DEFAULT_PLAN.
 */
const PLANS = new Set(['free', 'plus', 'pro', 'team', 'business', 'enterprise', 'edu']);
const PLAN_ALIASES: Record<string, string> = { education: 'edu' };
export const DEFAULT_PLAN = 'plus';
/** A window whose length was not reported: the Codex backend's 5-hour and weekly windows. */
const DEFAULT_WINDOW_SECONDS: Record<string, number> = { primary: 5 * 3600, secondary: 7 * 24 * 3600 };
const INT32_MAX = 2 ** 31 - 1;

export function usageStatus(accounts: readonly AccountView[], now: number): UsageStatusBody {
  const usable = accounts.filter((a) => !a.disabled && resumesAt(a, now) <= now);
  const limited = accounts.filter((a) => !a.disabled && resumesAt(a, now) > now);
  let shown: AccountView | undefined;
  let rateLimit: RateLimitBody | null = null;
  if (usable.length > 0) {
    shown = mostHeadroom(
      usable.filter((a) => a.quota !== undefined),
      now,
    );
    if (shown !== undefined) rateLimit = { allowed: true, limit_reached: false, ...windowsOf(shown, now) };
  } else if (limited.length > 0) {
    shown = limited.reduce((a, b) => (resumesAt(b, now) < resumesAt(a, now) ? b : a));
    rateLimit = { allowed: false, limit_reached: true, ...windowsOf(shown, now) };
  } else if (accounts.length > 0) {
    rateLimit = { allowed: false, limit_reached: false, primary_window: null, secondary_window: null };
  }
  return { plan_type: planOf(shown, accounts), rate_limit: rateLimit, credits: null };
}

/** When the account can serve again: its rate-limit cooldown's end, or a full window's reset (now: it can). */
function resumesAt(a: AccountView, now: number): number {
  let at = a.coolingUntil !== undefined && a.coolingUntil > now ? a.coolingUntil : now;
  for (const w of a.quota?.windows ?? []) {
    if (w.usedPercent < 100) continue;
    // A full window with no reset reported: out for as long as such a window lasts, at most.
    const reset = w.resetsAt ?? now + windowSeconds(w) * 1000;
    if (reset > at) at = reset;
  }
  return at;
}

/** The account whose most-used window (one past its reset counts as empty) is least used; ties to the first. */
function mostHeadroom(accounts: readonly AccountView[], now: number): AccountView | undefined {
  let best: AccountView | undefined;
  let bestUsed = Infinity;
  for (const a of accounts) {
    let used = 0;
    for (const w of a.quota!.windows) if (live(w, now) && w.usedPercent > used) used = w.usedPercent;
    if (used < bestUsed) {
      best = a;
      bestUsed = used;
    }
  }
  return best;
}

function windowsOf(a: AccountView, now: number): Pick<RateLimitBody, 'primary_window' | 'secondary_window'> {
  const find = (id: string) => a.quota?.windows.find((w) => w.id === id);
  const primary = find('primary');
  const secondary = find('secondary');
  return {
    primary_window: primary === undefined ? null : windowBody(primary, now),
    secondary_window: secondary === undefined ? null : windowBody(secondary, now),
  };
}

/**
 * Whole numbers only. A window past its reset is empty (its old reset stays: the new window's is not
 * known yet); a reset never reported is taken as a whole window from now, the latest it can be.
 */
export function windowBody(w: QuotaWindow, now: number): WindowBody {
  const length = windowSeconds(w);
  const nowS = Math.floor(now / 1000);
  if (w.resetsAt === null)
    return {
      used_percent: percent(w.usedPercent),
      limit_window_seconds: int32(length),
      reset_after_seconds: int32(length),
      reset_at: int32(nowS + length),
    };
  if (!live(w, now))
    return {
      used_percent: 0,
      limit_window_seconds: int32(length),
      reset_after_seconds: 0,
      reset_at: int32(Math.round(w.resetsAt / 1000)),
    };
  return {
    used_percent: percent(w.usedPercent),
    limit_window_seconds: int32(length),
    reset_after_seconds: int32(Math.ceil((w.resetsAt - now) / 1000)),
    reset_at: int32(Math.round(w.resetsAt / 1000)),
  };
}

function live(w: QuotaWindow, now: number): boolean {
  return w.resetsAt === null || w.resetsAt > now;
}

function windowSeconds(w: QuotaWindow): number {
  return w.windowMinutes !== null ? w.windowMinutes * 60 : (DEFAULT_WINDOW_SECONDS[w.id] ?? 5 * 3600);
}

/** The shown account's plan, else the first plan any account has, else DEFAULT_PLAN. */
function planOf(shown: AccountView | undefined, accounts: readonly AccountView[]): string {
  const known = (a: AccountView | undefined) => {
    const p = a?.plan === undefined ? undefined : (PLAN_ALIASES[a.plan] ?? a.plan);
    return p !== undefined && PLANS.has(p) ? p : undefined;
  };
  return known(shown) ?? accounts.map(known).find((p) => p !== undefined) ?? DEFAULT_PLAN;
}

function percent(p: number): number {
  return Math.min(100, Math.max(0, Math.round(p)));
}

function int32(n: number): number {
  return Math.min(INT32_MAX, Math.max(0, Math.round(n)));
}
