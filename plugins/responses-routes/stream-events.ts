/**
 * What the Responses plugin does with each upstream SSE event: track `sequence_number`, recognise
 * terminal events, and turn what strict clients cannot use (`event: error`, malformed frames,
 * data-less pings) into something they can.
 */
import type { RequestContext } from '../../core/context.js';
import { UpstreamMalformedError, UpstreamStreamError } from '../../core/errors.js';
import type { SseEvent } from '../../core/types.js';

const TERMINAL = new Set(['response.completed', 'response.failed', 'response.incomplete']);

export function onResponsesEvent(ev: SseEvent, ctx: RequestContext): SseEvent {
  const data = ev.data;
  // `event: ping` with no data, or an empty `data:`, makes the SDK throw: drop it.
  if (data.length === 0) {
    ev.drop = true;
    return ev;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    ev.fail = new UpstreamMalformedError(`upstream sent a malformed event (not JSON): ${preview(data)}`, {
      phase: 'stream',
    });
    return ev;
  }
  if (typeof parsed !== 'object' || parsed === null) {
    ev.fail = new UpstreamMalformedError(
      `upstream sent a malformed event (not a JSON object): ${preview(data)}`,
      { phase: 'stream' },
    );
    return ev;
  }
  const obj = parsed as Record<string, unknown>;
  const type = typeof obj.type === 'string' ? obj.type : ev.event;
  if (type === 'error') {
    // Replaced by response.failed, so its sequence number is not the client's to count.
    ev.fail = streamError(obj);
    return ev;
  }
  const seq = obj.sequence_number;
  if (typeof seq === 'number' && seq > ctx.lastSequence) ctx.lastSequence = seq;
  if (type !== undefined && TERMINAL.has(type)) ev.terminal = true;
  return ev;
}

/** `event: error` comes flat (`{code,message}`) or nested (`{error:{type,code,message}}`). */
function streamError(obj: Record<string, unknown>): UpstreamStreamError {
  const nested =
    typeof obj.error === 'object' && obj.error !== null ? (obj.error as Record<string, unknown>) : undefined;
  const pick = (k: string) => {
    const v = nested?.[k] ?? obj[k];
    return typeof v === 'string' && v.length > 0 ? v : undefined;
  };
  const message = pick('message') ?? 'upstream reported an error in the stream';
  return new UpstreamStreamError(message, pick('type') ?? 'server_error', pick('code') ?? null);
}

function preview(data: string): string {
  return JSON.stringify(data.length > 80 ? data.slice(0, 80) + '…' : data);
}
