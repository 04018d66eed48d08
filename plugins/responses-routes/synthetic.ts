/**
 * Events tapgate writes itself on a Responses stream: numbered after what was forwarded, and about
 * the same Response the client was told of in `response.created`.
 */
import type { RequestContext } from '../../core/index.js';
import { startedByGateway, streamState, upstreamResponse } from './stream-state.js';

/** Synthesised ids derive from the request id, so a client's error can be found in the logs. */
export function responseIdFor(ctx: RequestContext): string {
  return 'resp_' + ctx.id.replace(/-/g, '');
}

/** The `created_at` of a Response the gateway announced itself. */
export function createdAtFor(ctx: RequestContext): number {
  return Math.floor(ctx.receivedAt / 1000);
}

/** The next `sequence_number` of this stream, recorded as used. */
export function nextSequence(ctx: RequestContext): number {
  return ++streamState(ctx).lastSequence;
}

/**
 * A Response object for an event the gateway writes. It is the upstream's Response (its id,
 * `created_at`, model and the rest, from the stream's first event that carried it) when the client
 * saw that one; else the gateway's own. Either way it carries every field the SDKs' schemas require
 * (the Vercel AI SDK rejects one without `created_at`; openai-node types them all), null where unknown.
 */
export function syntheticResponse(
  ctx: RequestContext,
  status: string,
  error: { code: string; message: string } | null = null,
): Record<string, unknown> {
  const upstream = startedByGateway(ctx) ? undefined : upstreamResponse(ctx);
  return {
    id: responseIdFor(ctx),
    object: 'response',
    created_at: createdAtFor(ctx),
    model: ctx.model ?? '',
    output: [],
    incomplete_details: null,
    instructions: null,
    metadata: {},
    parallel_tool_calls: true,
    temperature: null,
    tool_choice: 'auto',
    tools: [],
    top_p: null,
    usage: null,
    ...upstream,
    status,
    error,
  };
}

export function sseFrame(type: string | undefined, data: unknown): string {
  return (type === undefined ? '' : `event: ${type}\n`) + `data: ${JSON.stringify(data)}\n\n`;
}
