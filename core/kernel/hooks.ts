/**
 * The gateway's hooks: created once at boot, tapped by plugins in `apply`, frozen before the
 * first request. tapable compiles each hook on its first call, so nothing here is per request.
 */
import {
  AsyncSeriesBailHook,
  AsyncSeriesWaterfallHook,
  SyncBailHook,
  SyncHook,
  SyncWaterfallHook,
} from 'tapable';
import type { RequestContext } from './context.js';
import type { GatewayError } from './errors.js';
import type { Upstream } from '../pool/upstream.js';
import type {
  Classification,
  GatewayClosing,
  GatewayReady,
  OutgoingRequest,
  Outcome,
  Reply,
  RouteMatch,
  SseEvent,
  UpgradeRequest,
  UpstreamResponseHead,
} from './types.js';

export interface GatewayHooks {
  // The gateway's lifecycle: observe only, each called once.
  /**
   * The gateway accepts connections: the pool is built, the address bound. Called after listen and
   * before the first request is read, so a tap may keep what it gets for request time.
   */
  readonly ready: SyncHook<[GatewayReady]>;
  /**
   * Shutdown began: the server accepts no new connection; in-flight requests drain for up to
   * `drainMs`, then plugins close. For what must act when the drain starts (tell viewers to go).
   */
  readonly closing: SyncHook<[GatewayClosing]>;

  // Request events: observe only.
  /** A request arrived (before routing). */
  readonly start: SyncHook<[RequestContext]>;
  /** An upstream attempt is about to be sent. */
  readonly upstreamAttempt: SyncHook<[RequestContext, Upstream, OutgoingRequest]>;
  /** The upstream's response headers arrived (any status). */
  readonly upstreamResponse: SyncHook<[RequestContext, Upstream, UpstreamResponseHead]>;
  /** The first body byte went to the client. */
  readonly firstByte: SyncHook<[RequestContext]>;
  /** Exactly once per request, on every path. */
  readonly finish: SyncHook<[RequestContext, Outcome]>;

  // Phases: admission → routing → upstream → response → log.
  /** Which route is this? The first match wins. */
  readonly matchRoute: SyncBailHook<[RequestContext], RouteMatch | void>;
  /** Admission. A returned Reply answers locally and ends the chain. */
  readonly request: AsyncSeriesBailHook<[RequestContext], Reply | void>;
  /** Picks the upstream for an attempt from the candidates (the pool's eligible upstreams). */
  readonly selectUpstream: AsyncSeriesBailHook<[RequestContext, Upstream[]], Upstream | void>;
  /** Builds the outgoing request: URL, headers, body. */
  readonly prepareUpstreamRequest: AsyncSeriesWaterfallHook<[OutgoingRequest, RequestContext, Upstream]>;
  /** Observe or rewrite one SSE event of a streamed response. */
  readonly streamEvent: SyncWaterfallHook<[SseEvent, RequestContext]>;
  /**
   * A complete JSON answer on a `jsonBody` route, checked and about to be sent: the chunks as
   * received (not copied; do not change them). The core calls it only while tapped, so an answer
   * nobody reads is never looked at. For reading what the answer reports (`ctx.usage`).
   */
  readonly responseBody: SyncHook<[RequestContext, readonly Buffer[]]>;

  // Errors.
  /** How to react to a failure: retry, switch, cool down. A verdict only: to watch failures, tap attemptFailed. */
  readonly classifyError: SyncBailHook<[GatewayError, RequestContext], Classification | void>;
  /**
   * Observe a failed attempt with the verdict classifyError gave (any cooldown already applied):
   * every attempt that failed before output reached the client, including one that failed while it
   * was being prepared. A failure after output ends the request instead (see `finish`).
   */
  readonly attemptFailed: SyncHook<[RequestContext, Upstream, GatewayError, Classification]>;
  /** The client-visible `error.code` for an error (code, type). */
  readonly mapErrorCode: SyncWaterfallHook<[string | null, string, RequestContext]>;
  /** Writes the error while no header has been sent. Exactly one of this and terminateStream runs per failure. */
  readonly errorResponse: SyncBailHook<[RequestContext, GatewayError], true | void>;
  /** Ends a response whose headers were already sent (a Responses stream: `response.failed`). */
  readonly terminateStream: SyncBailHook<[RequestContext, GatewayError], true | void>;

  /** A connection upgrade (WebSocket). A tap that takes the socket returns true. */
  readonly upgrade: SyncBailHook<[UpgradeRequest], true | void>;
}

export function createHooks(): GatewayHooks {
  return {
    ready: new SyncHook(['ready']),
    closing: new SyncHook(['closing']),
    start: new SyncHook(['ctx']),
    upstreamAttempt: new SyncHook(['ctx', 'upstream', 'outgoing']),
    upstreamResponse: new SyncHook(['ctx', 'upstream', 'response']),
    firstByte: new SyncHook(['ctx']),
    finish: new SyncHook(['ctx', 'outcome']),
    matchRoute: new SyncBailHook(['ctx']),
    request: new AsyncSeriesBailHook(['ctx']),
    selectUpstream: new AsyncSeriesBailHook(['ctx', 'candidates']),
    prepareUpstreamRequest: new AsyncSeriesWaterfallHook(['outgoing', 'ctx', 'upstream']),
    streamEvent: new SyncWaterfallHook(['event', 'ctx']),
    responseBody: new SyncHook(['ctx', 'chunks']),
    classifyError: new SyncBailHook(['error', 'ctx']),
    attemptFailed: new SyncHook(['ctx', 'upstream', 'error', 'verdict']),
    mapErrorCode: new SyncWaterfallHook(['code', 'type', 'ctx']),
    errorResponse: new SyncBailHook(['ctx', 'error']),
    terminateStream: new SyncBailHook(['ctx', 'error']),
    upgrade: new SyncBailHook(['request']),
  };
}

/** After boot no plugin may tap: a tap per request would recompile the hook every time. */
export function sealHooks(hooks: GatewayHooks): Readonly<GatewayHooks> {
  for (const hook of Object.values(hooks) as { tap: unknown; tapAsync?: unknown; tapPromise?: unknown }[]) {
    const refuse = () => {
      throw new Error('tapgate: hooks are sealed after boot; tap them in a plugin apply()');
    };
    hook.tap = refuse;
    if (hook.tapAsync) hook.tapAsync = refuse;
    if (hook.tapPromise) hook.tapPromise = refuse;
  }
  return Object.freeze(hooks);
}
