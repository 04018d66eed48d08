/**
 * Frames for a Responses stream that waits for an upstream slot (the queue's keepalive mode):
 * `response.created` (status `queued`) first, then `keepalive` data events — which, unlike `: ping`
 * comments, reset Codex's idle timer (protocol case 12). The upstream's own `response.created` is
 * then dropped and its sequence numbers shifted past ours (see stream-events.ts).
 */
import type { RequestContext } from '../../core/context.js';
import { responseIdFor } from './terminal.js';

const KEY = 'responses-routes.renumber';

export const waitingFrames = {
  open(ctx: RequestContext): string {
    ctx.lastSequence = 0;
    ctx.locals[KEY] = true;
    const data = {
      type: 'response.created',
      sequence_number: 0,
      response: {
        id: responseIdFor(ctx),
        object: 'response',
        created_at: Math.floor(ctx.receivedAt / 1000),
        model: ctx.model ?? null,
        status: 'queued',
        output: [],
      },
    };
    return `event: response.created\ndata: ${JSON.stringify(data)}\n\n`;
  },
  tick(ctx: RequestContext): string {
    ctx.lastSequence++;
    return `data: {"type":"keepalive","sequence_number":${ctx.lastSequence}}\n\n`;
  },
};

/** Whether this stream began with our own frames, so upstream events must be renumbered. */
export function startedByGateway(ctx: RequestContext): boolean {
  return ctx.locals[KEY] === true;
}
