/**
 * What the plugin remembers about one Responses stream, in its typed request state: the last
 * sequence number the client saw, whether the gateway opened the stream (queue keepalive), the
 * upstream's first event that carries the Response object (kept as the data text, parsed only if the
 * gateway must write its own terminal event), and whether the out-of-order warning was logged.
 */
import { createStateKey, type RequestContext } from '../../core/index.js';

export interface ResponsesStreamState {
  /** Last `sequence_number` forwarded or written (-1: none yet). */
  lastSequence: number;
  /** The gateway wrote the stream's `response.created` (and keepalives) itself. */
  startedByGateway: boolean;
  /** The data text of the upstream's first event that carried the Response. */
  responseEvent: string | undefined;
  seqWarned: boolean;
}

const STREAM = createStateKey<ResponsesStreamState>('responses-routes.stream', () => ({
  lastSequence: -1,
  startedByGateway: false,
  responseEvent: undefined,
  seqWarned: false,
}));

export function streamState(ctx: RequestContext): ResponsesStreamState {
  return ctx.state(STREAM);
}

/** The gateway wrote the stream's `response.created` (and keepalives) itself. */
export function markStartedByGateway(ctx: RequestContext): void {
  streamState(ctx).startedByGateway = true;
}

/** Whether this stream began with our own frames, so upstream events must be renumbered. */
export function startedByGateway(ctx: RequestContext): boolean {
  return ctx.peekState(STREAM)?.startedByGateway === true;
}

/** Keeps a reference to the first upstream event that carries the Response (no parse, no copy). */
export function rememberResponseEvent(ctx: RequestContext, data: string): void {
  const st = streamState(ctx);
  if (st.responseEvent === undefined) st.responseEvent = data;
}

/** The upstream's Response object as announced at the start of the stream, if it sent one. */
export function upstreamResponse(ctx: RequestContext): Record<string, unknown> | undefined {
  const data = ctx.peekState(STREAM)?.responseEvent;
  if (data === undefined) return undefined;
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
  const st = ctx.peekState(STREAM);
  if (st === undefined) return;
  if (!st.startedByGateway) st.lastSequence = -1;
  st.responseEvent = undefined;
}

/** True the first time it is asked on a stream: one warning per stream, not per event. */
export function firstSequenceWarning(ctx: RequestContext): boolean {
  const st = streamState(ctx);
  if (st.seqWarned) return false;
  st.seqWarned = true;
  return true;
}
