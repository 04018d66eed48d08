/**
 * What the Responses plugin does with each upstream SSE event: keep `sequence_number` strictly
 * increasing, recognise terminal events, remember the Response the stream is about, and turn what
 * strict clients cannot use (`event: error`, malformed frames, data-less pings) into something they can.
 */
import {
  retryAfterSeconds,
  serializeEvent,
  tryAgainMs,
  UpstreamMalformedError,
  UpstreamStreamError,
  type RequestContext,
  type SseEvent,
} from '../../core/index.js';
import {
  firstSequenceWarning,
  rememberResponseEvent,
  startedByGateway,
  streamState,
} from './stream-state.js';
import { createdAtFor, nextSequence, responseIdFor } from './synthetic.js';
import { errorFrame } from './terminal.js';

const TERMINAL = new Set(['response.completed', 'response.failed', 'response.incomplete']);
/** Events with no output yet: held back so an in-200 failure before any output can fail over. */
const PRE_OUTPUT = new Set([
  'response.created',
  'response.in_progress',
  'response.queued',
  'response.metadata',
]);
/** Pre-output events that carry the Response object (its id, created_at, model). */
const ANNOUNCES_RESPONSE = new Set(['response.created', 'response.in_progress', 'response.queued']);
/** In-200 failures worth another account, when nothing has reached the client yet. */
const RETRYABLE_CODES = new Set(['server_is_overloaded', 'slow_down', 'rate_limit_exceeded']);

/**
 * How events are checked before they are forwarded. `structural` (default): a data line must be a
 * complete JSON object text (`{…}`) — what a cut or garbled frame fails — and only events whose
 * content matters (error, response.failed, unknown types, renumbered streams) are parsed.
 * `json`: every event is parsed.
 */
export type EventValidation = 'structural' | 'json';

/**
 * What to do with an upstream event whose `sequence_number` is not greater than the last one
 * forwarded. `renumber`: it gets the next number; `fail`: the stream ends with `response.failed`.
 */
export type SequencePolicy = 'renumber' | 'fail';

export interface EventOptions {
  validation: EventValidation;
  sequenceNumbers: SequencePolicy;
  /** Announce a forwarded upstream `response.failed` with an `error` event, as the gateway's own. */
  errorEvent: boolean;
}

export function onResponsesEvent(ev: SseEvent, ctx: RequestContext, opts: EventOptions): SseEvent {
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
    opts.validation === 'json' ||
    type === undefined ||
    type === 'error' ||
    type === 'response.failed' ||
    startedByGateway(ctx)
  ) {
    return onParsedEvent(ev, ctx, opts);
  }
  if (!looksLikeJsonObject(data)) {
    ev.fail = new UpstreamMalformedError(`upstream sent a malformed event (not JSON): ${preview(data)}`, {
      phase: 'stream',
    });
    return ev;
  }
  const seq = scanSequenceNumber(data);
  // What another tap dropped never reaches the client: its number is not the client's to count.
  if (seq >= 0 && ev.drop !== true) {
    const st = streamState(ctx);
    if (seq > st.lastSequence) st.lastSequence = seq;
    else if (outOfOrder(ev, ctx, seq, opts.sequenceNumbers, undefined)) return ev;
  }
  if (TERMINAL.has(type)) ev.terminal = true;
  else if (PRE_OUTPUT.has(type)) {
    ev.hold = true;
    if (ANNOUNCES_RESPONSE.has(type)) rememberResponseEvent(ctx, data);
  }
  return ev;
}

/** The full path: the event's JSON is parsed, and its own `type` decides. */
function onParsedEvent(ev: SseEvent, ctx: RequestContext, opts: EventOptions): SseEvent {
  onParsed(ev, ctx, opts.sequenceNumbers);
  if (ev.failure !== undefined && opts.errorEvent && ev.fail === undefined && ev.drop !== true)
    announceFailure(ev, ctx, ev.failure);
  return ev;
}

function onParsed(ev: SseEvent, ctx: RequestContext, policy: SequencePolicy): SseEvent {
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
  if (type === 'response.failed') {
    if (ctx.firstByteAt === undefined) {
      const retryable = failedBeforeOutput(obj);
      if (retryable !== undefined) {
        ev.fail = retryable;
        return ev;
      }
    }
    // Forwarded as received, and the request counts as failed, with the upstream's reason.
    ev.failure = reportedFailure(obj);
  }
  if (startedByGateway(ctx)) return renumber(ev, obj, type, ctx);
  const seq = obj.sequence_number;
  if (typeof seq === 'number' && ev.drop !== true) {
    const st = streamState(ctx);
    if (seq > st.lastSequence) st.lastSequence = seq;
    else if (outOfOrder(ev, ctx, seq, policy, obj)) return ev;
  }
  if (type === undefined) return ev;
  if (TERMINAL.has(type)) ev.terminal = true;
  else if (PRE_OUTPUT.has(type)) {
    ev.hold = true;
    if (ANNOUNCES_RESPONSE.has(type)) rememberResponseEvent(ctx, ev.data);
  }
  return ev;
}

/**
 * An event numbered at or below the last one forwarded (strict clients require a strictly increasing
 * sequence). `renumber`: the number in the data text is replaced by the next one, where the scan
 * found it (no parse); `fail`: the event becomes the stream's failure. True when the event failed.
 */
function outOfOrder(
  ev: SseEvent,
  ctx: RequestContext,
  seq: number,
  policy: SequencePolicy,
  obj: Record<string, unknown> | undefined,
): boolean {
  const last = streamState(ctx).lastSequence;
  if (policy === 'fail') {
    ev.fail = new UpstreamMalformedError(`upstream sent sequence_number ${seq} after ${last}`, {
      phase: 'stream',
    });
    return true;
  }
  if (firstSequenceWarning(ctx))
    ctx.log.warn(
      { upstream: ctx.upstream?.name, sequenceNumber: seq, after: last },
      'upstream sent a sequence_number out of order: renumbering this stream',
    );
  const next = nextSequence(ctx);
  const data = ev.data;
  if (obj === undefined || scanSequenceNumber(data) === seq) {
    ev.data = data.slice(0, scanned.from) + next + data.slice(scanned.to);
  } else {
    // Written in a way the scan does not read (e.g. `3.0`): the parsed object is re-serialised.
    obj.sequence_number = next;
    ev.data = JSON.stringify(obj);
  }
  ev.raw = undefined;
  return false;
}

/**
 * An upstream `response.failed`, forwarded: the same `error` event the gateway writes before its own
 * goes just before it (clients without a case for `response.failed`, like LangChain, then throw the
 * reason). The error event takes the number the upstream's event had; that one the next.
 */
function announceFailure(ev: SseEvent, ctx: RequestContext, failure: UpstreamStreamError): void {
  const seq = scanSequenceNumber(ev.data);
  let errorSeq: number;
  if (seq >= 0 && seq === streamState(ctx).lastSequence) {
    errorSeq = seq;
    ev.data = ev.data.slice(0, scanned.from) + nextSequence(ctx) + ev.data.slice(scanned.to);
  } else {
    errorSeq = nextSequence(ctx);
  }
  ev.raw = errorFrame(errorSeq, failure) + serializeEvent(ev);
}

/** `{…}` after optional white space: a cut frame fails this. */
function looksLikeJsonObject(data: string): boolean {
  if (data.charCodeAt(0) === 123 && data.charCodeAt(data.length - 1) === 125) return true;
  const t = data.trim();
  return t.startsWith('{') && t.endsWith('}');
}

const SEQ_KEY = '"sequence_number":';

/** Where the last successful scan found the number's digits, so a renumber can splice the text. */
const scanned = { from: 0, to: 0 };

/**
 * The top-level `sequence_number` (no nested object of a Responses event has one), or -1. A string
 * value cannot match: inside one, every quote is escaped.
 */
export function scanSequenceNumber(data: string): number {
  let i = data.indexOf(SEQ_KEY);
  if (i < 0) return -1;
  i += SEQ_KEY.length;
  while (data.charCodeAt(i) === 32) i++;
  const from = i;
  let n = 0;
  for (let c = data.charCodeAt(i); c >= 48 && c <= 57; c = data.charCodeAt(++i)) n = n * 10 + (c - 48);
  if (i === from) return -1;
  scanned.from = from;
  scanned.to = i;
  return n;
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
 * A Response the upstream describes later (in_progress, the terminal event) takes the id and
 * `created_at` the client was given first, so the stream speaks of one Response throughout.
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
  const response = obj.response;
  const describes = typeof response === 'object' && response !== null && !Array.isArray(response);
  const numbered = typeof obj.sequence_number === 'number' && ev.drop !== true;
  if (numbered) obj.sequence_number = nextSequence(ctx);
  if (describes) {
    const r = response as Record<string, unknown>;
    r.id = responseIdFor(ctx);
    r.created_at = createdAtFor(ctx);
  }
  if (numbered || describes) {
    ev.data = JSON.stringify(obj);
    ev.raw = undefined;
  }
  if (type === undefined) return ev;
  if (TERMINAL.has(type)) ev.terminal = true;
  else if (PRE_OUTPUT.has(type)) ev.hold = true;
  return ev;
}

/** A forwarded upstream `response.failed`: its `response.error`, as the request's failure. */
function reportedFailure(obj: Record<string, unknown>): UpstreamStreamError {
  const response = obj.response as { error?: { code?: unknown; message?: unknown } | null } | undefined;
  const error = typeof response === 'object' && response !== null ? response.error : undefined;
  const code = typeof error?.code === 'string' && error.code.length > 0 ? error.code : null;
  const message =
    typeof error?.message === 'string' && error.message.length > 0
      ? error.message
      : 'upstream reported response.failed';
  return new UpstreamStreamError(message, 'server_error', code ?? 'server_error');
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
    const wait = tryAgainMs(message);
    const seconds = wait === undefined ? undefined : retryAfterSeconds(wait);
    return new UpstreamStreamError(message, 'rate_limit_error', code, 429, seconds);
  }
  return new UpstreamStreamError(message, 'service_unavailable_error', code, 503);
}

function preview(data: string): string {
  return JSON.stringify(data.length > 80 ? data.slice(0, 80) + '…' : data);
}
