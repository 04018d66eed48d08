/** Writes the one `response.failed` that ends a Responses stream after headers were sent. */
import type { RequestContext } from '../../core/context.js';
import type { GatewayError } from '../../core/errors.js';

/** Synthesised ids derive from the request id, so a client's error can be found in the logs. */
export function responseIdFor(ctx: RequestContext): string {
  return 'resp_' + ctx.id.replace(/-/g, '');
}

export function responseFailedFrame(ctx: RequestContext, error: GatewayError): string {
  const sequence = ctx.lastSequence + 1;
  ctx.lastSequence = sequence;
  const data = {
    type: 'response.failed',
    sequence_number: sequence,
    response: {
      id: responseIdFor(ctx),
      object: 'response',
      created_at: Math.floor(ctx.receivedAt / 1000),
      model: ctx.model ?? null,
      status: 'failed',
      output: [],
      error: { code: error.errorCode ?? 'server_error', message: error.message },
    },
  };
  return `event: response.failed\ndata: ${JSON.stringify(data)}\n\n`;
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
export function errorFrame(ctx: RequestContext, error: GatewayError): string {
  const sequence = ctx.lastSequence + 1;
  ctx.lastSequence = sequence;
  const code = error.errorCode ?? 'server_error';
  const data = {
    type: 'error',
    sequence_number: sequence,
    code,
    message: error.message,
    param: null,
    error: { type: error.type, code, message: error.message, param: null },
  };
  return `event: error\ndata: ${JSON.stringify(data)}\n\n`;
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
  res.end((withErrorEvent ? errorFrame(ctx, error) : '') + responseFailedFrame(ctx, error));
  return true;
}
