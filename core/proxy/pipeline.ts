/**
 * The request pipeline, in fixed phases: start → routing → admission → body → upstream attempts
 * (select → prepare → send, with failover before the first byte) → finish. Every failure ends in
 * exactly one of errorResponse / terminateStream, and `finish` runs once on every path.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AttemptResult } from './attempt.js';
import { isRefused } from '../guard/auth.js';
import { lingerOnClose } from '../guard/lingering-close.js';
import { decodeBody, parseJsonBody, readBody } from './body.js';
import { RequestContext } from '../kernel/context.js';
import type { GatewayConfig } from '../config/config-schema.js';
import {
  ClientAbortError,
  ClientStalledError,
  derive,
  GatewayError,
  InvalidRequestError,
  NotFoundError,
  QueueFullError,
  requestTotalTimeout,
  ShuttingDownError,
  toGatewayError,
  UpstreamHttpError,
} from '../kernel/errors.js';
import { forwardableRequestHeaders, UPSTREAM_ACCEPT_ENCODING } from './headers.js';
import type { GatewayHooks } from '../kernel/hooks.js';
import type { KeyLimits } from '../limits/key-limits.js';
import type { Logger } from '../observe/logger.js';
import type { UpstreamPool } from '../pool/pool.js';
import type { Secrets } from '../observe/secrets.js';
import type { Transport } from './transport.js';
import { truncate } from '../observe/truncate.js';
import { HANDLED, type OutgoingRequest, type Outcome, type Reply } from '../kernel/types.js';
import type { Upstream } from '../pool/upstream.js';
import {
  InternalRequest,
  InternalResponse,
  type ExchangeSink,
  type InternalExchange,
  type InternalRequestInit,
} from './internal-exchange.js';

export class Pipeline {
  /** Requests not finished yet: what a graceful shutdown waits for. */
  readonly inflight = new Set<RequestContext>();
  draining = false;
  private drained: (() => void) | undefined;

  constructor(
    private readonly hooks: GatewayHooks,
    /** The current config: a reload replaces it, each request reads it as it goes. */
    public config: GatewayConfig,
    private readonly pool: UpstreamPool,
    private readonly transport: Transport,
    private readonly logger: Logger,
    private readonly secrets: Secrets,
    /** Per-key limits: the model check, once the body is parsed. */
    private readonly limits?: KeyLimits,
  ) {}

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const ctx = new RequestContext(randomUUID(), req, res, this.logger);
    this.inflight.add(ctx);
    // A shared listener that finds its request on the response: no closure per request.
    (res as Tracked)[CONTEXT] = ctx;
    (res as Tracked)[PIPELINE] = this;
    res.once('close', onResponseClose);
    void this.run(ctx);
  };

  /**
   * Runs a request that arrived another way (a WebSocket turn) through the same phases, with its
   * body already read and parsed; what the pipeline writes goes to `sink`.
   */
  dispatch(init: InternalRequestInit, sink: ExchangeSink): InternalExchange {
    const req = new InternalRequest(init);
    const res = new InternalResponse(sink);
    const ctx = new RequestContext(randomUUID(), req as never, res as never, this.logger, init.transport);
    ctx.body = init.body;
    const json = init.json;
    ctx.json = json;
    if (typeof json.model === 'string') ctx.model = json.model;
    ctx.stream = json.stream === true;
    init.onContext?.(ctx);
    this.inflight.add(ctx);
    res.once('close', () => this.onClose(ctx));
    const done = this.run(ctx);
    return {
      ctx,
      done,
      drained: () => res.drained(),
      cancel: () => res.clientGone(),
    };
  }

  private async run(ctx: RequestContext): Promise<void> {
    const hooks = this.hooks;
    try {
      hooks.start.call(ctx);
      if (this.draining) throw new ShuttingDownError('Gateway is shutting down; retry on a new connection');
      // Only a path selects a route: an absolute URI or `*` would otherwise be joined onto an upstream origin.
      if (ctx.pathname.charCodeAt(0) !== 47)
        throw new InvalidRequestError('The request target must be a path such as /v1/responses', {
          phase: 'admission',
        });
      ctx.route = hooks.matchRoute.call(ctx) ?? undefined;
      const reply = await hooks.request.promise(ctx);
      if (reply !== undefined) {
        if (reply !== HANDLED) writeReply(ctx, reply);
      } else if (ctx.route?.proxy === true) {
        await this.proxy(ctx);
      } else {
        throw new NotFoundError(`No route for ${ctx.method} ${truncate(ctx.pathname)}`, {
          phase: 'admission',
        });
      }
    } catch (err) {
      this.fail(ctx, toGatewayError(err));
    } finally {
      this.finish(ctx);
    }
  }

  private async proxy(ctx: RequestContext): Promise<void> {
    // An internal request (a WebSocket turn) comes read and parsed.
    const encoding = ctx.body === undefined ? await this.readRequestBody(ctx) : undefined;
    // Before any upstream is chosen: a model the key may not use never reaches one.
    this.limits?.checkModel(ctx);
    const maxAttempts = this.config.proxy.maxAttempts;
    let lastError: GatewayError | undefined;
    /** After `same`, the next attempt goes to this upstream again. */
    let pinned: Upstream | undefined;
    /** Upstreams whose slot was refused since the last wait (taken by another request or process). */
    let full: Upstream[] = [];
    for (;;) {
      if (responseOver(ctx)) return;
      const candidates = this.pool.candidates(ctx.model, ctx.tried, Date.now(), full);
      if (candidates instanceof QueueFullError) {
        await this.waitForSlot(ctx, candidates);
        full = [];
        continue;
      }
      if (candidates instanceof GatewayError) throw lastError ?? candidates;
      let upstream =
        pinned !== undefined && candidates.includes(pinned)
          ? pinned
          : ((await this.hooks.selectUpstream.promise(ctx, candidates)) ?? candidates[0]!);
      pinned = undefined;
      // A tap's pick outside the candidates (disabled, cooling, full or tried) is not used: the first
      // candidate goes instead (and a refused slot below could otherwise be picked again and again).
      if (!candidates.includes(upstream)) upstream = candidates[0]!;
      // Selection may yield, and a shared store counts other processes' slots: the slot can be gone.
      const slot = this.pool.acquire(upstream);
      if (slot !== true && (slot === false || !(await slot))) {
        full.push(upstream);
        continue;
      }
      if (responseOver(ctx)) {
        this.pool.release(upstream);
        return;
      }
      ctx.upstream = upstream;
      ctx.tried.push(upstream);
      ctx.attempts++;
      const result = await this.attempt(ctx, upstream, encoding);
      if (result.kind !== 'failed') {
        if (result.kind === 'ok') this.pool.state.clearTransient(upstream.name, ctx.model);
        return;
      }
      const error = result.error;
      if (result.committed) throw error;
      const verdict = this.hooks.classifyError.call(error, ctx) ?? { retry: 'none' };
      if (verdict.cooldownMs !== undefined && verdict.cooldownMs > 0) {
        const model = verdict.cooldownScope === 'account' ? undefined : ctx.model;
        const until = Date.now() + verdict.cooldownMs;
        // Scrubbed before the store cuts it: a cut through a secret would leave a part no scrub knows.
        const reason = this.secrets.clip(error.message, MAX_ERROR_MESSAGE_CHARS);
        this.pool.state.cool(upstream.name, model, until, reason, verdict.cooldownKind ?? 'transient');
      }
      ctx.log.debug({ upstream: upstream.name, code: error.code, retry: verdict.retry }, 'attempt failed');
      try {
        this.hooks.attemptFailed.call(ctx, upstream, error, verdict);
      } catch (err) {
        // An observer: its failure is logged, the request goes on.
        this.logger.error({ err, reqId: ctx.id }, 'an attemptFailed tap threw');
      }
      if (verdict.retry === 'none' || ctx.attempts >= maxAttempts || ctx.clientGone) throw error;
      if (verdict.retry === 'same') {
        ctx.tried.pop();
        pinned = upstream;
      }
      lastError = error;
    }
  }

  /** Reads, decodes and (on a JSON route) parses the body; the content-encoding to forward, if left encoded. */
  private async readRequestBody(ctx: RequestContext): Promise<string | string[] | undefined> {
    const server = this.config.server;
    const limit = server.bodyLimit;
    const raw = await readBody(ctx.req, limit);
    const decoded = decodeBody(raw, ctx.req.headers['content-encoding'], limit);
    ctx.body = decoded.body;
    if (ctx.route!.jsonBody === true && !decoded.opaque) {
      const type = ctx.req.headers['content-type'];
      const json = parseJsonBody(ctx.body, type, server.maxJsonDepth, server.maxJsonValues);
      ctx.json = json;
      if (typeof json.model === 'string') ctx.model = json.model;
      ctx.stream = json.stream === true;
    }
    return decoded.opaque ? ctx.req.headers['content-encoding'] : undefined;
  }

  /**
   * Every upstream for this model is at its concurrency limit: wait in the bounded queue (headers
   * held back) until a slot frees, the wait times out, the request's total time runs out, or the
   * client leaves.
   */
  private async waitForSlot(ctx: RequestContext, busy: GatewayError): Promise<void> {
    const queue = this.pool.queue;
    const deadline = (ctx.queueDeadline ??= performance.now() + queue.waitTimeout);
    // No upstream is chosen yet: the gateway-wide total applies (an upstream's own applies to its attempts).
    const total = this.config.proxy.timeouts.total;
    const totalLeft = total > 0 ? ctx.startedAt + total - performance.now() : Infinity;
    if (totalLeft <= 0) throw requestTotalTimeout(total, 'admission');
    const left = deadline - performance.now();
    if (queue.full || left <= 0 || queue.maxQueue === 0) throw busy;
    const wait = queue.wait(Math.min(left, totalLeft));
    ctx.activeAttempt = { cancel: wait.cancel };
    const ticker = this.keepWaitingClientAlive(ctx);
    const result = await wait.done;
    if (ticker !== undefined) clearInterval(ticker);
    ctx.activeAttempt = undefined;
    if (result === 'timeout' && totalLeft < left) throw requestTotalTimeout(total, 'admission');
    if (result === 'timeout')
      throw new QueueFullError(
        `Too many pending requests: no upstream slot freed within ${queue.waitTimeout}ms`,
        { retryAfter: 1, phase: 'admission' },
      );
    if (result === 'cancelled' && this.draining) throw new ShuttingDownError();
  }

  /**
   * Keepalive mode: a streamed request that waits starts its stream with the protocol's opening
   * frame, then ticks, so clients with an idle timeout (Codex) keep waiting. Failover is still
   * possible until upstream output reaches the client.
   */
  private keepWaitingClientAlive(ctx: RequestContext): NodeJS.Timeout | undefined {
    const q = this.config.pool.queue;
    const frames = ctx.route?.waitingFrames;
    if (q.mode !== 'keepalive' || !ctx.stream || frames === undefined) return undefined;
    const res = ctx.res;
    if (!res.headersSent) {
      ctx.responseHeaders = {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
      };
      res.writeHead(200, ctx.responseHeaders);
      res.write(frames.open(ctx));
    }
    return setInterval(() => {
      if (!res.writableEnded) res.write(frames.tick(ctx));
    }, q.keepaliveInterval);
  }

  /** One attempt, on a slot of the upstream's taken by the caller, released when the response is done. */
  private async attempt(
    ctx: RequestContext,
    upstream: Upstream,
    encoding: string | string[] | undefined,
  ): Promise<AttemptResult> {
    try {
      const headers = forwardableRequestHeaders(ctx.req.headers);
      delete headers['content-encoding'];
      if (encoding !== undefined) headers['content-encoding'] = String(encoding);
      headers['accept-encoding'] = UPSTREAM_ACCEPT_ENCODING;
      const base: OutgoingRequest = {
        // The upstream's own origin, then a path: a client path like `//host/x` stays a path.
        url: new URL(
          upstream.origin + upstream.basePath + (ctx.route!.upstreamPath ?? ctx.pathname) + ctx.search,
        ),
        headers,
        body: ctx.body!,
      };
      let outgoing: OutgoingRequest;
      try {
        outgoing = await this.hooks.prepareUpstreamRequest.promise(base, ctx, upstream);
      } catch (err) {
        // E.g. a credential refresh that failed: a failure of this attempt, classified like any other.
        return { kind: 'failed', error: toGatewayError(err), committed: false };
      }
      // The origin is the upstream's, whatever a tap did: the gateway never proxies to a client-chosen host.
      if (!sameOrigin(outgoing.url, upstream.origin))
        throw new GatewayError(
          'BAD_UPSTREAM_URL',
          500,
          'server_error',
          'a plugin pointed the request away from its upstream',
        );
      // Preparing may take long (a token refresh): the client may have left, or been answered by a
      // shutdown meanwhile. Then nothing goes upstream.
      if (responseOver(ctx)) return { kind: 'aborted' };
      this.hooks.upstreamAttempt.call(ctx, upstream, outgoing);
      return await this.transport.send(ctx, upstream, outgoing);
    } finally {
      ctx.activeAttempt = undefined;
      this.pool.release(upstream);
    }
  }

  /** Ends a failed request: an HTTP error before headers, the protocol's terminal event after. */
  fail(ctx: RequestContext, error: GatewayError): void {
    ctx.error ??= error;
    const res = ctx.res;
    if (ctx.clientGone || res.writableEnded || res.destroyed) return;
    // Gone, or not reading (the output it has not drained would hold a terminal event too): just close.
    if (error instanceof ClientAbortError || error instanceof ClientStalledError) {
      res.destroy();
      return;
    }
    const shown = this.clientView(error, ctx);
    // The request's log line and finish taps read what the client read.
    if (ctx.error === error) ctx.error = shown;
    // Refused before its body was read (too large…): close rather than read the rest to reuse it. Refused
    // for its credentials: close, so a client without a key cannot hold the connection (and a descriptor).
    if (!res.headersSent && (!ctx.req.complete || isRefused(ctx.req.socket))) {
      res.setHeader('connection', 'close');
      // A body still arriving: close so that the client reads this answer before any reset.
      if (!ctx.req.complete) lingerOnClose(ctx.req.socket);
    }
    try {
      if (res.headersSent) this.hooks.terminateStream.call(ctx, shown);
      else this.hooks.errorResponse.call(ctx, shown);
    } catch (err) {
      this.logger.error({ err, reqId: ctx.id }, 'error writer failed');
      res.destroy();
    }
  }

  /**
   * The error as the client gets it: the `mapErrorCode` code, and no credential an upstream quoted
   * ("Incorrect API key provided: sk-…") in its message or body. A derived copy: taps that kept the
   * error still hold it as it was raised.
   */
  private clientView(error: GatewayError, ctx: RequestContext): GatewayError {
    const errorCode = this.hooks.mapErrorCode.call(error.errorCode ?? error.type, error.type, ctx);
    const message = this.secrets.clip(error.message, MAX_ERROR_MESSAGE_CHARS);
    let body: Buffer | undefined;
    if (error instanceof UpstreamHttpError && error.body.length > 0) {
      const text = error.body.toString('utf8');
      const clean = this.secrets.scrub(text);
      if (clean !== text) body = Buffer.from(clean);
    }
    if (errorCode === error.errorCode && message === error.message && body === undefined) return error;
    return derive(error, { errorCode, message, body });
  }

  onClose(ctx: RequestContext): void {
    if (!ctx.res.writableFinished) {
      ctx.clientGone = true;
      ctx.activeAttempt?.cancel();
    }
  }

  private finish(ctx: RequestContext): void {
    if (ctx.finished) return;
    ctx.finished = true;
    const res = ctx.res;
    const kind =
      ctx.clientGone && !res.writableFinished ? 'client_abort' : ctx.error !== undefined ? 'error' : 'ok';
    const outcome: Outcome = {
      kind,
      status: kind === 'client_abort' ? 499 : res.statusCode,
      error: ctx.error,
      durationMs: performance.now() - ctx.startedAt,
    };
    try {
      this.hooks.finish.call(ctx, outcome);
    } catch (err) {
      this.logger.error({ err, reqId: ctx.id }, 'a finish tap threw');
    }
    this.inflight.delete(ctx);
    if (this.inflight.size === 0) this.drained?.();
  }

  /** Resolves when no request is in flight, or after `ms`; returns the requests still running. */
  waitForIdle(ms: number): Promise<RequestContext[]> {
    if (this.inflight.size === 0) return Promise.resolve([]);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.drained = undefined;
        resolve([...this.inflight]);
      }, ms);
      this.drained = () => {
        clearTimeout(timer);
        this.drained = undefined;
        resolve([]);
      };
    });
  }
}

const CONTEXT = Symbol('tapgate.context');
type Tracked = ServerResponse & { [CONTEXT]?: RequestContext; [PIPELINE]?: Pipeline };
const PIPELINE = Symbol('tapgate.pipeline');

function onResponseClose(this: Tracked): void {
  const ctx = this[CONTEXT];
  this[CONTEXT] = undefined;
  if (ctx !== undefined) this[PIPELINE]!.onClose(ctx);
}

/** Nothing more can reach the client: it left, or its answer is already written (a shutdown cut it). */
function responseOver(ctx: RequestContext): boolean {
  return ctx.clientGone || ctx.res.writableEnded;
}

function writeReply(ctx: RequestContext, reply: Exclude<Reply, typeof HANDLED>): void {
  const res = ctx.res;
  let body = reply.body;
  const headers = { ...reply.headers };
  if (body !== undefined && typeof body === 'object' && !Buffer.isBuffer(body)) {
    body = JSON.stringify(body);
    headers['content-type'] ??= 'application/json';
  }
  res.writeHead(reply.status, headers);
  res.end(body);
}

/** An error message the client reads (and the log keeps): an upstream's own text can be megabytes. */
const MAX_ERROR_MESSAGE_CHARS = 4096;

/** Whether `url` is on `origin`. `href` is stored by the URL (no string is built, unlike `origin`). */
function sameOrigin(url: URL, origin: string): boolean {
  const href = url.href;
  return href.startsWith(origin) && href.charCodeAt(origin.length) === 47; // '/'
}
