/**
 * A stream failure as the HTTP error a non-streaming client gets, when its answer is built from a
 * stream (stream-to-json.ts): what the upstream would have answered on a unary call.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { retryAfterSeconds, tryAgainMs, UpstreamHttpError } from '../../core/index.js';

/** The HTTP status a Responses error code stands for, when a failure must become an HTTP error. */
const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  rate_limit_exceeded: 429,
  usage_limit_reached: 429,
  usage_not_included: 429,
  insufficient_quota: 429,
  server_is_overloaded: 503,
  slow_down: 503,
  context_length_exceeded: 400,
  invalid_prompt: 400,
  invalid_request_error: 400,
  cyber_policy: 400,
  bio_policy: 400,
};

const TYPE_BY_STATUS: Readonly<Record<number, string>> = {
  400: 'invalid_request_error',
  429: 'rate_limit_error',
  503: 'service_unavailable_error',
};

/**
 * A `response.failed` (its `response.error`) or an `error` event, as the upstream HTTP error it would
 * have been on a unary call: 429 for rate limits, 503 for overload, 400 for request faults, else 502
 * `upstream_error`. Being an UpstreamHttpError, it is classified (failover, cooldown) and written
 * (OpenAI-shaped body, `Retry-After`) like any upstream error answered before the first byte.
 */
export function streamFailureError(
  error: Record<string, unknown> | undefined,
  fallback: string,
): UpstreamHttpError {
  const code = str(error?.code) ?? null;
  const message = str(error?.message) ?? fallback;
  const status = (code !== null ? STATUS_BY_CODE[code] : undefined) ?? 502;
  const type = TYPE_BY_STATUS[status] ?? 'upstream_error';
  const headers: IncomingHttpHeaders = { 'content-type': 'application/json' };
  // Codex's "Please try again in 1.5s" hint, as the header a unary client reads.
  const wait = status === 429 ? tryAgainMs(message) : undefined;
  if (wait !== undefined) headers['retry-after'] = String(retryAfterSeconds(wait));
  const body = Buffer.from(
    JSON.stringify({ error: { ...error, message, type, param: error?.param ?? null, code } }),
  );
  return new UpstreamHttpError(status, headers, body, message, type, code ?? type);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}
