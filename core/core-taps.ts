/**
 * The core's own taps. Security (client auth) runs first, at Stage.GUARD; every default sits at
 * Stage.FALLBACK, so a plugin tapping at DEFAULT replaces it.
 */
import type { ClientAuth } from './auth.js';
import type { RequestContext } from './context.js';
import {
  AuthenticationError,
  type GatewayError,
  openAIErrorBody,
  UpstreamConnectionRefusedError,
  UpstreamConnectTimeoutError,
  UpstreamDnsError,
  UpstreamFirstByteTimeoutError,
  UpstreamHttpError,
  UpstreamResetError,
} from './errors.js';
import type { GatewayHooks } from './hooks.js';
import type { Logger } from './logger.js';
import { retryAfterMs } from './retry-after.js';
import { Stage } from './stages.js';
import type { Classification } from './types.js';
import type { Upstream } from './upstream.js';

const CORE = 'tapgate:core';

/** Request faults: the same request fails on any account, so it never rotates. */
const REQUEST_FAULT_STATUS = new Set([400, 404, 413, 415, 422]);
const REQUEST_FAULT_CODES = new Set([
  'context_length_exceeded',
  'previous_response_not_found',
  'invalid_prompt',
  'invalid_request_error',
]);

/** Headers of an upstream error that the client needs to act on it. */
const ERROR_PASS_HEADERS = ['retry-after', 'retry-after-ms', 'x-should-retry', 'content-type'];

export interface CoreTapOptions {
  auth: ClientAuth;
  transientCooldownMs: number;
  logger: Logger;
}

export function tapCore(hooks: GatewayHooks, opts: CoreTapOptions): void {
  hooks.request.tap({ name: CORE, stage: Stage.GUARD }, (ctx) => {
    if (ctx.route?.auth === 'none' || !opts.auth.enabled) return undefined;
    const name = opts.auth.authenticate(ctx.req.headers);
    if (name === undefined) {
      const presented =
        ctx.req.headers.authorization !== undefined || ctx.req.headers['x-api-key'] !== undefined;
      throw new AuthenticationError(
        presented
          ? 'Incorrect API key provided'
          : 'Missing API key: send Authorization: Bearer <key> or x-api-key',
        {
          phase: 'admission',
        },
      );
    }
    ctx.clientName = name;
    return undefined;
  });

  let cursor = 0;
  hooks.selectUpstream.tap({ name: CORE, stage: Stage.FALLBACK }, (_ctx, candidates) => {
    // Round-robin within the best priority tier (lower number = preferred).
    let best = Infinity;
    for (const u of candidates) if (u.priority < best) best = u.priority;
    const tier: Upstream[] = candidates.filter((u) => u.priority === best);
    return tier[cursor++ % tier.length];
  });

  hooks.classifyError.tap({ name: CORE, stage: Stage.FALLBACK }, (error) =>
    classify(error, opts.transientCooldownMs),
  );

  hooks.errorResponse.tap({ name: CORE, stage: Stage.FALLBACK }, (ctx, error) => {
    writeErrorResponse(ctx, error);
    return true;
  });

  // After headers the core cannot speak the route's protocol: cut the response so the truncation shows.
  hooks.terminateStream.tap({ name: CORE, stage: Stage.FALLBACK }, (ctx) => {
    ctx.res.destroy();
    return true;
  });

  hooks.finish.tap({ name: CORE, stage: Stage.FALLBACK }, (ctx, outcome) => {
    const fields: Record<string, unknown> = {
      method: ctx.method,
      path: ctx.pathname,
      route: ctx.route?.kind,
      status: outcome.status,
      outcome: outcome.kind,
      ms: Math.round(outcome.durationMs * 10) / 10,
    };
    if (ctx.clientName !== undefined) fields.client = ctx.clientName;
    if (ctx.model !== undefined) fields.model = ctx.model;
    if (ctx.upstream !== undefined) fields.upstream = ctx.upstream.name;
    if (ctx.attempts > 1) fields.attempts = ctx.attempts;
    if (ctx.firstByteAt !== undefined)
      fields.ttfbMs = Math.round((ctx.firstByteAt - ctx.startedAt) * 10) / 10;
    if (outcome.error !== undefined) {
      const e = outcome.error;
      const error: Record<string, unknown> = { code: e.code, errorCode: e.errorCode, message: e.message };
      // An internal error is a gateway bug: keep where it came from.
      if (e.status >= 500 && e.cause instanceof Error)
        error.cause = e.cause.stack?.split('\n').slice(0, 4).join(' | ');
      fields.error = error;
      ctx.log.warn(fields, 'request failed');
    } else {
      ctx.log.info(fields, 'request');
    }
  });
}

export function classify(error: GatewayError, transientCooldownMs: number): Classification {
  if (error instanceof UpstreamHttpError) {
    const status = error.status;
    if (
      REQUEST_FAULT_STATUS.has(status) ||
      (error.errorCode !== null && REQUEST_FAULT_CODES.has(error.errorCode))
    )
      return { retry: 'none' };
    if (status === 429) {
      const wait = retryAfterMs(error.upstreamHeaders);
      return {
        retry: 'switch',
        cooldownMs: wait ?? transientCooldownMs,
        cooldownScope: 'model',
        cooldownKind: 'rate_limit',
      };
    }
    if (status === 401 || status === 403)
      return {
        retry: 'switch',
        cooldownMs: transientCooldownMs,
        cooldownScope: 'account',
        cooldownKind: 'transient',
      };
    if (status === 408 || status >= 500)
      return {
        retry: 'switch',
        cooldownMs: transientCooldownMs,
        cooldownScope: 'model',
        cooldownKind: 'transient',
      };
    return { retry: 'none' };
  }
  if (
    error instanceof UpstreamConnectionRefusedError ||
    error instanceof UpstreamDnsError ||
    error instanceof UpstreamConnectTimeoutError ||
    error instanceof UpstreamResetError ||
    error instanceof UpstreamFirstByteTimeoutError
  ) {
    return {
      retry: 'switch',
      cooldownMs: transientCooldownMs,
      cooldownScope: 'account',
      cooldownKind: 'transient',
    };
  }
  return { retry: 'none' };
}

/** Writes an HTTP error: the upstream's own OpenAI-shaped body when it has one, else a gateway body. */
export function writeErrorResponse(ctx: RequestContext, error: GatewayError): void {
  const res = ctx.res;
  if (error instanceof UpstreamHttpError && isOpenAIErrorBody(error.body)) {
    const headers: Record<string, string | string[]> = {};
    for (const name of ERROR_PASS_HEADERS) {
      const v = error.upstreamHeaders[name];
      if (v !== undefined) headers[name] = v;
    }
    res.writeHead(error.status, headers);
    res.end(error.body);
    return;
  }
  const body = JSON.stringify(openAIErrorBody(error.message, error.type, error.errorCode, error.param));
  const headers: Record<string, string | number> = { 'content-type': 'application/json' };
  const retryAfter =
    error instanceof UpstreamHttpError ? error.upstreamHeaders['retry-after'] : error.retryAfter;
  if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
  if (error instanceof AuthenticationError) headers['www-authenticate'] = 'Bearer';
  res.writeHead(error.status, headers);
  res.end(body);
}

function isOpenAIErrorBody(body: Buffer): boolean {
  if (body.length === 0 || body[0] !== 0x7b) return false;
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { error?: unknown };
    return typeof parsed.error === 'object' && parsed.error !== null;
  } catch {
    return false;
  }
}
