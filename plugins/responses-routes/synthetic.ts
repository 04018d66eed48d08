/** Events tapgate writes itself on a Responses stream: numbered after what was forwarded, ids from the request id. */
import type { RequestContext } from '../../core/context.js';

/** Synthesised ids derive from the request id, so a client's error can be found in the logs. */
export function responseIdFor(ctx: RequestContext): string {
  return 'resp_' + ctx.id.replace(/-/g, '');
}

/** The next `sequence_number` of this stream, recorded as used. */
export function nextSequence(ctx: RequestContext): number {
  return ++ctx.lastSequence;
}

/** A minimal Response object for a synthesised event. */
export function syntheticResponse(
  ctx: RequestContext,
  status: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    id: responseIdFor(ctx),
    object: 'response',
    created_at: Math.floor(ctx.receivedAt / 1000),
    model: ctx.model ?? null,
    status,
    output: [],
    ...extra,
  };
}

export function sseFrame(type: string | undefined, data: unknown): string {
  return (type === undefined ? '' : `event: ${type}\n`) + `data: ${JSON.stringify(data)}\n\n`;
}
