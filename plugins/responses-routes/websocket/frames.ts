/**
 * Frames the WebSocket front end writes itself. An error is one `error` frame with the HTTP status it
 * stands for and the response headers a client would have read (Codex maps it exactly like an HTTP
 * error: 429 + retry-after is retried, 400 is fatal…); without `status` Codex would not map it at all.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { openAIErrorBody, type GatewayError } from '../../../core/index.js';

/** Response headers that describe the connection or the body, not the answer: never in a frame. */
const NOT_FOR_FRAMES = new Set([
  'content-type',
  'content-length',
  'content-encoding',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'cache-control',
]);

export interface ErrorFrameBody {
  type: 'error';
  status: number;
  error: object;
  headers: Record<string, string>;
}

/** The `headers` of an error frame: each as one string, lower-case names. */
export function frameHeaders(headers: OutgoingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in headers) {
    const value = headers[name];
    const lower = name.toLowerCase();
    if (value === undefined || NOT_FOR_FRAMES.has(lower)) continue;
    out[lower] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return out;
}

/**
 * The error frame for an HTTP error the pipeline wrote (status, headers, body): the body's OpenAI
 * `error` object when it has one, else the body's text as the message.
 */
export function errorFrameFromHttp(status: number, headers: OutgoingHttpHeaders, body: string): string {
  let error: object | undefined;
  try {
    const parsed = JSON.parse(body) as { error?: unknown; detail?: unknown };
    if (typeof parsed.error === 'object' && parsed.error !== null && !Array.isArray(parsed.error))
      error = parsed.error;
    else if (typeof parsed.detail === 'string')
      error = openAIErrorBody(parsed.detail, typeFor(status), null).error;
  } catch {
    // Not JSON: the text is the message.
  }
  error ??= openAIErrorBody(
    body.trim().length > 0 ? body.trim() : `HTTP ${status}`,
    typeFor(status),
    null,
  ).error;
  const frame: ErrorFrameBody = { type: 'error', status, error, headers: frameHeaders(headers) };
  return JSON.stringify(frame);
}

/** An error frame for a refusal of the front end's own (a bad frame, a busy socket). */
export function errorFrame(error: GatewayError, headers: Record<string, string> = {}): string {
  const body = openAIErrorBody(error.message, error.type, error.errorCode, error.param);
  const frame: ErrorFrameBody = {
    type: 'error',
    status: error.status,
    error: body.error,
    headers:
      error.retryAfter === undefined ? headers : { ...headers, 'retry-after': String(error.retryAfter) },
  };
  return JSON.stringify(frame);
}

function typeFor(status: number): string {
  return status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error';
}

/**
 * A prewarm (`generate: false`) answered by the gateway: the Response it announces and completes
 * at once. Nothing is generated, so nothing is used; its id is what the next turn chains from.
 */
export function prewarmFrames(id: string, model: unknown, createdAt: number): [string, string] {
  const response = {
    id,
    object: 'response',
    created_at: createdAt,
    status: 'in_progress',
    model: typeof model === 'string' ? model : '',
    output: [],
    error: null,
    incomplete_details: null,
    usage: null,
  };
  const usage = {
    input_tokens: 0,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: 0,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 0,
  };
  return [
    JSON.stringify({ type: 'response.created', sequence_number: 0, response }),
    JSON.stringify({
      type: 'response.completed',
      sequence_number: 1,
      response: { ...response, status: 'completed', usage },
    }),
  ];
}
