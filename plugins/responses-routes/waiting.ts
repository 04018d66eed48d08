/**
 * Frames for a Responses stream that waits for an upstream slot (the queue's keepalive mode):
 * `response.created` (status `queued`) first, then `keepalive` data events — which, unlike `: ping`
 * comments, reset Codex's idle timer (protocol case 12). The upstream's own `response.created` is
 * then dropped, its sequence numbers shifted past ours, and the Response it describes given our id
 * and `created_at`, so nothing later contradicts what the client was told first (see stream-events.ts).
 */
import type { RequestContext } from '../../core/index.js';
import { markStartedByGateway, streamState } from './stream-state.js';
import { nextSequence, sseFrame, syntheticResponse } from './synthetic.js';

export const waitingFrames = {
  open(ctx: RequestContext): string {
    streamState(ctx).lastSequence = -1;
    markStartedByGateway(ctx);
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
