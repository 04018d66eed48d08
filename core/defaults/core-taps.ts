/**
 * The core's own taps. Security (client auth) runs first, at Stage.GUARD; every default sits at
 * Stage.FALLBACK, so a plugin tapping at DEFAULT replaces it.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { isDeepStrictEqual } from 'node:util';
import type { AccessLog } from '../observe/access-log.js';
import { isLoopbackHost, isRefused, markRefused, type ClientAuth } from '../guard/auth.js';
import type { FailureThrottle } from '../guard/auth-throttle.js';
import type { KeyLimits } from '../limits/key-limits.js';
import type { RequestContext } from '../kernel/context.js';
import {
  AuthenticationError,
  AuthThrottledError,
  GatewayResourceError,
  type GatewayError,
  PermissionDeniedError,
  openAIErrorBody,
  UpstreamHttpError,
} from '../kernel/errors.js';
import type { PoolStateStore } from '../pool/pool-state.js';
import { Scheduler, type SchedulerOptions } from '../pool/scheduler.js';
import type { GatewayHooks } from '../kernel/hooks.js';
import type { Logger } from '../observe/logger.js';
import { Occasional } from '../observe/occasional.js';
import { Stage } from '../kernel/stages.js';
import type { Classification } from '../kernel/types.js';
import { classify } from './classify.js';

const CORE = 'tapgate:core';

/** Headers of an upstream error that the client needs to act on it. */
const ERROR_PASS_HEADERS = ['retry-after', 'retry-after-ms', 'x-should-retry', 'content-type'];

export interface CoreTapOptions {
  auth: ClientAuth;
  /** Failed authentication per source address. */
  throttle: FailureThrottle;
  logger: Logger;
  transientCooldownMs: number;
  /** The per-request access line. */
  access: AccessLog;
  scheduler: SchedulerOptions;
  /** The pool's state store: built before the pool (which waits for plugins' upstream types). */
  state: PoolStateStore;
  /** Per-key limits (the gateway passes them even when no key has any: a reload may add some). */
  limits?: KeyLimits;
}

/** What a config reload may change in the core's taps (read per request, swapped in one step). */
export interface CoreReloadable {
  auth: ClientAuth;
  transientCooldownMs: number;
  scheduler: SchedulerOptions;
}

export interface CoreTaps {
  /** New requests use these from now on; requests past authentication keep what they had. */
  reconfigure(next: CoreReloadable): void;
}

export function tapCore(hooks: GatewayHooks, opts: CoreTapOptions): CoreTaps {
  const throttle = opts.throttle;
  let auth = opts.auth;
  let transientCooldownMs = opts.transientCooldownMs;
  let schedulerOptions = opts.scheduler;
  let scheduler = new Scheduler(opts.state, schedulerOptions);
  hooks.request.tap({ name: CORE, stage: Stage.GUARD }, (ctx) => {
    if (ctx.route?.auth === 'none') return undefined;
    const socket = ctx.req.socket;
    if (isRefused(socket)) {
      // Pipelined behind a refused request: never served, and its answer is never sent.
      ctx.skipAccessLog = true;
      throw new AuthenticationError('The connection closes after a refused request', { phase: 'admission' });
    }
    if (!auth.enabled) {
      const refusal = browserRefusal(ctx.req.headers);
      if (refusal === undefined) return undefined;
      markRefused(socket);
      throw new PermissionDeniedError(refusal, { phase: 'admission' });
    }
    const address = socket.remoteAddress ?? '';
    // Before the key is checked: while over the limit, even the right key is refused.
    const wait = throttle.refusal(address);
    if (wait > 0) {
      markRefused(socket);
      ctx.skipAccessLog = true;
      throw throttledError(wait);
    }
    const name = auth.authenticate(ctx.req.headers);
    if (name === undefined) {
      markRefused(socket);
      if (!throttle.fail(address)) ctx.skipAccessLog = true;
      throw authenticationError(ctx.req.headers);
    }
    ctx.clientName = name;
    return undefined;
  });
  if (opts.limits !== undefined) tapLimits(hooks, opts.limits);

  hooks.selectUpstream.tap({ name: CORE, stage: Stage.FALLBACK }, (ctx, candidates) =>
    scheduler.select(ctx, candidates),
  );

  // The gateway's own lack of resources: no plugin may cool an upstream for it. Logged once in a while.
  const outOfResources = new Occasional<string>(10_000, (count, message) =>
    opts.logger.error({ count }, `gateway out of resources: ${message}`),
  );
  hooks.classifyError.tap({ name: CORE, stage: Stage.EARLY }, (error) => {
    if (!(error instanceof GatewayResourceError)) return undefined;
    outOfResources.hit(error.message);
    return NO_RETRY;
  });

  hooks.classifyError.tap({ name: CORE, stage: Stage.FALLBACK }, (error) =>
    classify(error, transientCooldownMs),
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

  hooks.finish.tap({ name: CORE, stage: Stage.FALLBACK }, (ctx, outcome) =>
    opts.access.request(ctx, outcome),
  );

  return {
    reconfigure(next) {
      auth = next.auth;
      transientCooldownMs = next.transientCooldownMs;
      // A new policy only when it changed: a policy's own state (a round-robin turn) survives a reload.
      if (
        !isDeepStrictEqual(next.scheduler.strategy, schedulerOptions.strategy) ||
        !isDeepStrictEqual(next.scheduler.affinity, schedulerOptions.affinity)
      ) {
        schedulerOptions = next.scheduler;
        scheduler = new Scheduler(opts.state, schedulerOptions);
      }
    },
  };
}

/** Per-key limits: admission after authentication (same stage, tapped after it), the rest at the end. */
function tapLimits(hooks: GatewayHooks, limits: KeyLimits): void {
  hooks.request.tapPromise(
    { name: CORE + ':limits', stage: Stage.GUARD },
    (ctx) => limits.admit(ctx)?.then(NOTHING) ?? ADMITTED,
  );
  // Early: a plugin may still set its own headers after the upstream's are dropped.
  hooks.upstreamResponse.tap({ name: CORE + ':limits', stage: Stage.EARLY }, (ctx) =>
    limits.dropUpstreamHeaders(ctx),
  );
  hooks.finish.tap({ name: CORE + ':limits', stage: Stage.GUARD }, (ctx) => limits.finish(ctx));
}

/**
 * With no client keys the gateway listens on loopback only, but a web page in the user's browser
 * can still reach loopback: a cross-site POST that needs no preflight, or DNS rebinding (a page's
 * own host name re-pointed at 127.0.0.1). Browsers mark both (Origin, Sec-Fetch-Site, a foreign
 * Host); CLI and SDK clients send none of them. Why the request is refused, or undefined.
 */
export function browserRefusal(headers: IncomingHttpHeaders): string | undefined {
  if (headers.origin !== undefined || (headers['sec-fetch-site'] ?? 'none') !== 'none')
    return 'Browser requests are refused when no client keys are configured (set auth.keys to allow them)';
  const host = hostName(headers.host ?? '');
  if (host !== '' && !isLoopbackHost(host))
    return `Host "${host.slice(0, 64)}" is not a loopback name; with no client keys only loopback names are served`;
  return undefined;
}

/** The host part of a Host header (`[::1]:8787` → `[::1]`, `localhost:8787` → `localhost`). */
function hostName(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.indexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}

/** The 401 for a request (or upgrade) without a valid client key: says whether a key was sent at all. */
export function authenticationError(headers: IncomingHttpHeaders): GatewayError {
  const presented = headers.authorization !== undefined || headers['x-api-key'] !== undefined;
  return new AuthenticationError(
    presented
      ? 'Incorrect API key provided'
      : 'Missing API key: send Authorization: Bearer <key> or x-api-key',
    { phase: 'admission' },
  );
}

/** The 429 for an address over the failed-authentication limit. */
export function throttledError(retryAfter: number): GatewayError {
  return new AuthThrottledError(
    `Too many failed authentication attempts from this address; retry in ${retryAfter}s`,
    { retryAfter, phase: 'admission' },
  );
}

const NO_RETRY: Classification = { retry: 'none' };
/** What the limits tap resolves to: no local reply, the chain goes on (one settled promise, reused). */
const ADMITTED: Promise<undefined> = Promise.resolve(undefined);
const NOTHING = (): undefined => undefined;

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
