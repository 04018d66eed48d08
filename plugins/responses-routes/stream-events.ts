/**
 * What the Responses plugin does with each upstream SSE event: track `sequence_number`, recognise
 * terminal events, and turn what strict clients cannot use (`event: error`, malformed frames,
 * data-less pings) into something they can.
 */
import type { RequestContext } from '../../core/context.js';
import { UpstreamMalformedError, UpstreamStreamError } from '../../core/errors.js';
import type { SseEvent } from '../../core/types.js';
import { nextSequence } from './synthetic.js';
import { startedByGateway } from './waiting.js';

const TERMINAL = new Set(['response.completed', 'response.failed', 'response.incomplete']);
/** Events with no output yet: held back so an in-200 failure before any output can fail over. */
const PRE_OUTPUT = new Set([
  'response.created',
  'response.in_progress',
  'response.queued',
  'response.metadata',
]);
/** In-200 failures worth another account, when nothing has reached the client yet. */
const RETRYABLE_CODES = new Set(['server_is_overloaded', 'slow_down', 'rate_limit_exceeded']);

/**
 * How events are checked before they are forwarded. `structural` (default): a data line must be a
 * complete JSON object text (`{…}`) — what a cut or garbled frame fails — and only events whose
 * content matters (error, response.failed, unknown types, renumbered streams) are parsed.
 * `json`: every event is parsed.
 */
export type EventValidation = 'structural' | 'json';

export function onResponsesEvent(ev: SseEvent, ctx: RequestContext, validation: EventValidation): SseEvent {
  const data = ev.data;
  const type = ev.event;
  // `event: ping` with no data, or an empty `data:`, makes the SDK throw: drop it. A bare
  // `event: error` still says the upstream failed: dropping it would leave the client waiting.
  if (data.length === 0) {
    if (type === 'error') ev.fail = streamError({});
    else ev.drop = true;
    return ev;
  }
  if (
    validation === 'json' ||
    type === undefined ||
    type === 'error' ||
    type === 'response.failed' ||
    startedByGateway(ctx)
  ) {
    return onParsedEvent(ev, ctx);
  }
  if (!looksLikeJsonObject(data)) {
    ev.fail = new UpstreamMalformedError(`upstream sent a malformed event (not JSON): ${preview(data)}`, {
      phase: 'stream',
    });
    return ev;
  }
  const seq = scanSequenceNumber(data);
  if (seq > ctx.lastSequence) ctx.lastSequence = seq;
  if (TERMINAL.has(type)) ev.terminal = true;
  else if (PRE_OUTPUT.has(type)) ev.hold = true;
  return ev;
}

/** The full path: the event's JSON is parsed, and its own `type` decides. */
function onParsedEvent(ev: SseEvent, ctx: RequestContext): SseEvent {
  const data = ev.data;
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
  if (type === 'response.failed' && ctx.firstByteAt === undefined) {
    const retryable = failedBeforeOutput(obj);
    if (retryable !== undefined) {
      ev.fail = retryable;
      return ev;
    }
  }
  if (startedByGateway(ctx)) return renumber(ev, obj, type, ctx);
  const seq = obj.sequence_number;
  if (typeof seq === 'number' && seq > ctx.lastSequence) ctx.lastSequence = seq;
  if (type === undefined) return ev;
  if (TERMINAL.has(type)) ev.terminal = true;
  else if (PRE_OUTPUT.has(type)) ev.hold = true;
  return ev;
}

/** `{…}` after optional white space: a cut frame fails this. */
function looksLikeJsonObject(data: string): boolean {
  if (data.charCodeAt(0) === 123 && data.charCodeAt(data.length - 1) === 125) return true;
  const t = data.trim();
  return t.startsWith('{') && t.endsWith('}');
}

const SEQ_KEY = '"sequence_number":';

/** The top-level `sequence_number` (no nested object of a Responses event has one), or -1. */
export function scanSequenceNumber(data: string): number {
  let i = data.indexOf(SEQ_KEY);
  if (i < 0) return -1;
  i += SEQ_KEY.length;
  while (data.charCodeAt(i) === 32) i++;
  let n = 0;
  let digits = 0;
  for (let c = data.charCodeAt(i); c >= 48 && c <= 57; c = data.charCodeAt(++i)) {
    n = n * 10 + (c - 48);
    digits++;
  }
  return digits > 0 ? n : -1;
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

/**
 * The client already has the gateway's `response.created` and keepalives: drop the upstream's
 * `response.created` and number the rest after ours, so sequence numbers stay strictly increasing.
 */
function renumber(
  ev: SseEvent,
  obj: Record<string, unknown>,
  type: string | undefined,
  ctx: RequestContext,
): SseEvent {
  if (type === 'response.created') {
    ev.drop = true;
    return ev;
  }
  const sequence = nextSequence(ctx);
  if (typeof obj.sequence_number === 'number') {
    obj.sequence_number = sequence;
    ev.data = JSON.stringify(obj);
    ev.raw = undefined;
  }
  if (type === undefined) return ev;
  if (TERMINAL.has(type)) ev.terminal = true;
  else if (PRE_OUTPUT.has(type)) ev.hold = true;
  return ev;
}

/**
 * A `response.failed` for overload or a rate limit, before any output reached the client: a failure
 * the core may fail over (and, when it cannot, answer as an HTTP 503/429 with the upstream's message).
 */
function failedBeforeOutput(obj: Record<string, unknown>): UpstreamStreamError | undefined {
  const response = obj.response as { error?: { code?: unknown; message?: unknown } } | undefined;
  const code = response?.error?.code;
  if (typeof code !== 'string' || !RETRYABLE_CODES.has(code)) return undefined;
  const message = typeof response?.error?.message === 'string' ? response.error.message : code;
  if (code === 'rate_limit_exceeded') {
    const m = /try again in\s*(\d+(?:\.\d+)?)\s*(ms|s|seconds?)/i.exec(message);
    const seconds =
      m === null
        ? undefined
        : Math.max(1, Math.ceil(Number(m[1]) / (m[2]!.toLowerCase() === 'ms' ? 1000 : 1)));
    return new UpstreamStreamError(message, 'rate_limit_error', code, 429, seconds);
  }
  return new UpstreamStreamError(message, 'service_unavailable_error', code, 503);
}

function preview(data: string): string {
  return JSON.stringify(data.length > 80 ? data.slice(0, 80) + '…' : data);
}
