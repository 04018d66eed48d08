/**
 * What the plugin remembers about one Responses stream, in `ctx.locals`: whether the gateway opened
 * it (queue keepalive), the upstream's first event that carries the Response object (kept as the
 * data text, parsed only if the gateway must write its own terminal event), and whether the
 * out-of-order warning was logged.
 */
import type { RequestContext } from '../../core/index.js';

const STARTED = 'responses-routes.renumber';
const RESPONSE = 'responses-routes.response';
const SEQ_WARNED = 'responses-routes.seqWarned';

/** The gateway wrote the stream's `response.created` (and keepalives) itself. */
export function markStartedByGateway(ctx: RequestContext): void {
  ctx.locals[STARTED] = true;
}

/** Whether this stream began with our own frames, so upstream events must be renumbered. */
export function startedByGateway(ctx: RequestContext): boolean {
  return ctx.locals[STARTED] === true;
}

/** Keeps a reference to the first upstream event that carries the Response (no parse, no copy). */
export function rememberResponseEvent(ctx: RequestContext, data: string): void {
  if (ctx.locals[RESPONSE] === undefined) ctx.locals[RESPONSE] = data;
}

/** The upstream's Response object as announced at the start of the stream, if it sent one. */
export function upstreamResponse(ctx: RequestContext): Record<string, unknown> | undefined {
  const data = ctx.locals[RESPONSE];
  if (typeof data !== 'string') return undefined;
  try {
    const response = (JSON.parse(data) as { response?: unknown }).response;
    return typeof response === 'object' && response !== null && !Array.isArray(response)
      ? (response as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A new upstream attempt: what an earlier one sent never reached the client (failover happens only
 * before output), so its sequence numbers and Response are forgotten. On a stream the gateway opened,
 * the client has our numbers already: they stay.
 */
export function newAttempt(ctx: RequestContext): void {
  if (!startedByGateway(ctx)) ctx.lastSequence = -1;
  if (ctx.locals[RESPONSE] !== undefined) ctx.locals[RESPONSE] = undefined;
}

/** True the first time it is asked on a stream: one warning per stream, not per event. */
export function firstSequenceWarning(ctx: RequestContext): boolean {
  if (ctx.locals[SEQ_WARNED] === true) return false;
  ctx.locals[SEQ_WARNED] = true;
  return true;
}
