/** How long an upstream asked us to wait: its headers, or the wording of its rate-limit message. */
import type { IncomingHttpHeaders } from 'node:http';

/** From `retry-after-ms` or `Retry-After` (seconds or HTTP date): ms, or undefined when neither says. */
export function retryAfterMs(headers: IncomingHttpHeaders, now = Date.now()): number | undefined {
  const ms = Number(headers['retry-after-ms']);
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers['retry-after'];
  if (value === undefined || value === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

const TRY_AGAIN = /try again in\s*(\d+(?:\.\d+)?)\s*(ms|s|seconds?)/i;

/**
 * The one reader of OpenAI's rate-limit wording, "Please try again in 1.5s" (or `350ms`, `2 seconds`),
 * which Codex CLI reads too: the wait in ms, or undefined when the message gives none.
 */
export function tryAgainMs(message: string): number | undefined {
  const m = TRY_AGAIN.exec(message);
  if (m === null) return undefined;
  return m[2]!.toLowerCase() === 'ms' ? Number(m[1]) : Number(m[1]) * 1000;
}

/** A wait in ms as a `Retry-After` value: whole seconds, at least 1. */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
