/**
 * What upstreams say about their limits, turned into cooldowns: `Retry-After` / `retry-after-ms`
 * and a 429 body's `resets_at` / `resets_in_seconds`, plus the error codes of an account-wide quota.
 * (A type's own signals, like Codex's usage-window headers, live in its plugin.)
 */
import type { IncomingHttpHeaders } from 'node:http';
import { retryAfterMs } from './retry-after.js';

/** Error types and codes that mean the whole account is out of quota, not just one model. */
const ACCOUNT_WIDE = new Set([
  'usage_limit_reached',
  'usage_not_included',
  'insufficient_quota',
  'credit_balance_exhausted',
  'organization_spend_limit_exceeded',
  'project_spend_limit_exceeded',
  'organization_usage_limit_exceeded',
]);

export interface LimitSignal {
  /** ms to wait, when the upstream said. */
  waitMs: number | undefined;
  accountWide: boolean;
}

/** Reads a 429 (or 503) response: headers first, then the body's reset fields. */
export function limitSignal(headers: IncomingHttpHeaders, body: Buffer, now = Date.now()): LimitSignal {
  let waitMs = retryAfterMs(headers, now);
  let accountWide = false;
  if (body.length > 0 && body[0] === 0x7b) {
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { error?: Record<string, unknown> } & Record<
        string,
        unknown
      >;
      const err = (
        typeof parsed.error === 'object' && parsed.error !== null ? parsed.error : parsed
      ) as Record<string, unknown>;
      if (typeof err.resets_at === 'number') waitMs ??= Math.max(0, err.resets_at * 1000 - now);
      if (typeof err.resets_in_seconds === 'number') waitMs ??= Math.max(0, err.resets_in_seconds * 1000);
      accountWide = ACCOUNT_WIDE.has(String(err.type)) || ACCOUNT_WIDE.has(String(err.code));
    } catch {
      // Not JSON after all: the headers are all we have.
    }
  }
  return { waitMs, accountWide };
}
