/**
 * Frames for a Responses stream that waits for an upstream slot (the queue's keepalive mode):
 * `response.created` (status `queued`) first, then `keepalive` data events — which, unlike `: ping`
 * comments, reset Codex's idle timer (protocol case 12). The upstream's own `response.created` is
 * then dropped and its sequence numbers shifted past ours (see stream-events.ts).
 */
import type { RequestContext } from '../../core/context.js';
import { nextSequence, sseFrame, syntheticResponse } from './synthetic.js';

const KEY = 'responses-routes.renumber';

export const waitingFrames = {
  open(ctx: RequestContext): string {
    ctx.lastSequence = -1;
    ctx.locals[KEY] = true;
    return sseFrame('response.created', {
      type: 'response.created',
      sequence_number: nextSequence(ctx),
      response: syntheticResponse(ctx, 'queued'),
    });
  },
  tick(ctx: RequestContext): string {
    return sseFrame(undefined, { type: 'keepalive', sequence_number: nextSequence(ctx) });
  },
};

/** Whether this stream began with our own frames, so upstream events must be renumbered. */
export function startedByGateway(ctx: RequestContext): boolean {
  return ctx.locals[KEY] === true;
}
