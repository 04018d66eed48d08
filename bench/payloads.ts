/**
 * What the bench upstream answers, built once: a ~1 KB Responses JSON body for `stream:false`, and a
 * 40-event Responses SSE stream for `stream:true` (response.created … response.completed, valid JSON
 * data, sequence numbers 0–39). Shared by the upstream (to send) and the runner (to check answers).
 */

import { responseObject } from '../test/helpers/upstream.js';

export const SSE_EVENTS = 40;
/** Deltas between the four opening events and the four closing ones: 4 + 32 + 4 = 40. */
const DELTAS = SSE_EVENTS - 8;
const WORD = 'token ';

/** The Response object the SDK requires, from the test helpers (one definition for tests, bench and demo). */
function response(status: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return responseObject('resp_bench', status, { model: 'gpt-bench', ...extra });
}

const USAGE = {
  input_tokens: 10,
  input_tokens_details: { cached_tokens: 0 },
  output_tokens: DELTAS,
  output_tokens_details: { reasoning_tokens: 0 },
  total_tokens: 10 + DELTAS,
};

function message(text: string, status = 'completed'): Record<string, unknown> {
  return {
    id: 'msg_bench',
    type: 'message',
    status,
    role: 'assistant',
    content: status === 'completed' ? [{ type: 'output_text', text, annotations: [] }] : [],
  };
}

function frame(type: string, seq: number, extra: Record<string, unknown>): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq, ...extra })}\n\n`;
}

/** The non-streamed answer: about 1 KB of JSON. */
export const JSON_BODY: Buffer = (() => {
  // Pad the message so that the whole body is close to 1,024 bytes.
  const base = JSON.stringify(response('completed', { output: [message('')], usage: USAGE }));
  const text = 'x'.repeat(Math.max(0, 1024 - base.length));
  return Buffer.from(JSON.stringify(response('completed', { output: [message(text)], usage: USAGE })));
})();

const TEXT = WORD.repeat(DELTAS);
const part = (seq: number, type: string, extra: Record<string, unknown> = {}) =>
  frame(type, seq, { item_id: 'msg_bench', output_index: 0, content_index: 0, ...extra });

/** The streamed answer: 40 frames, one string each (the upstream writes them one by one). */
export const SSE_FRAMES: readonly string[] = (() => {
  const frames = [
    frame('response.created', 0, { response: response('in_progress') }),
    frame('response.in_progress', 1, { response: response('in_progress') }),
    frame('response.output_item.added', 2, { output_index: 0, item: message('', 'in_progress') }),
    part(3, 'response.content_part.added', { part: { type: 'output_text', text: '', annotations: [] } }),
  ];
  for (let i = 0; i < DELTAS; i++) frames.push(part(4 + i, 'response.output_text.delta', { delta: WORD }));
  let seq = 4 + DELTAS;
  frames.push(part(seq++, 'response.output_text.done', { text: TEXT }));
  frames.push(
    part(seq++, 'response.content_part.done', { part: { type: 'output_text', text: TEXT, annotations: [] } }),
  );
  frames.push(frame('response.output_item.done', seq++, { output_index: 0, item: message(TEXT) }));
  frames.push(
    frame('response.completed', seq, {
      response: response('completed', { output: [message(TEXT)], usage: USAGE }),
    }),
  );
  if (frames.length !== SSE_EVENTS) throw new Error(`bench: built ${frames.length} SSE frames`);
  return frames;
})();

export const SSE_BYTES = SSE_FRAMES.reduce((n, f) => n + Buffer.byteLength(f), 0);

/**
 * The held stream of the RSS test: response.created and one delta now, the rest on release. Its
 * model name tells the upstream to hold it.
 */
export const HOLD_MODEL = 'gpt-bench-hold';
export const HOLD_OPENING: string = SSE_FRAMES[0]! + SSE_FRAMES[4]!;
export const HOLD_CLOSING: string = frame('response.completed', 5, {
  response: response('completed', { output: [message(WORD)], usage: USAGE }),
});

/** The request every load test sends. */
export function requestBody(stream: boolean, model = 'gpt-bench'): string {
  return JSON.stringify({ model, input: 'hi', stream });
}

/** Checks a streamed answer: 40 events with JSON data, increasing sequence numbers, ends in completed. */
export function checkSse(text: string): string | undefined {
  const blocks = text.split('\n\n').filter((b) => b.trim() !== '');
  if (blocks.length !== SSE_EVENTS) return `expected ${SSE_EVENTS} SSE events, got ${blocks.length}`;
  let last = -1;
  let type = '';
  for (const b of blocks) {
    const data = b
      .split('\n')
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).trim())
      .join('\n');
    let obj: { type?: string; sequence_number?: number };
    try {
      obj = JSON.parse(data) as typeof obj;
    } catch {
      return `event data is not JSON: ${data.slice(0, 80)}`;
    }
    if (typeof obj.sequence_number !== 'number' || obj.sequence_number <= last)
      return `sequence_number not increasing at ${String(obj.sequence_number)}`;
    last = obj.sequence_number;
    type = obj.type ?? '';
  }
  return type === 'response.completed' ? undefined : `last event is ${type}, not response.completed`;
}
