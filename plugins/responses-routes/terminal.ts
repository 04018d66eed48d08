/** Writes the one `response.failed` that ends a Responses stream after headers were sent. */
import type { GatewayError, RequestContext } from '../../core/index.js';
import { nextSequence, sseFrame, syntheticResponse } from './synthetic.js';

export function responseFailedFrame(ctx: RequestContext, error: GatewayError): string {
  return sseFrame('response.failed', {
    type: 'response.failed',
    sequence_number: nextSequence(ctx),
    response: syntheticResponse(ctx, 'failed', {
      code: error.errorCode ?? 'server_error',
      message: error.message,
    }),
  });
}

/** Whether the client is reading an SSE stream (as opposed to a JSON body) on this request. */
export function isEventStream(ctx: RequestContext): boolean {
  const type = ctx.responseHeaders?.['content-type'];
  return typeof type === 'string' && type.startsWith('text/event-stream');
}

/**
 * An `error` frame with both the documented flat fields and the live API's nested ones, so the
 * raw SDK stream throws an APIError carrying the real reason (Codex ignores it).
 */
export function errorFrame(sequence: number, error: GatewayError): string {
  const code = error.errorCode ?? 'server_error';
  return sseFrame('error', {
    type: 'error',
    sequence_number: sequence,
    code,
    message: error.message,
    param: null,
    error: { type: error.type, code, message: error.message, param: null },
  });
}

export function terminateResponsesStream(
  ctx: RequestContext,
  error: GatewayError,
  withErrorEvent: boolean,
): true | undefined {
  if (!isEventStream(ctx)) return undefined;
  const res = ctx.res;
  if (ctx.terminated) {
    // A terminal event already went out; only the close is missing.
    res.end();
    return true;
  }
  ctx.terminated = true;
  res.end((withErrorEvent ? errorFrame(nextSequence(ctx), error) : '') + responseFailedFrame(ctx, error));
  return true;
}
