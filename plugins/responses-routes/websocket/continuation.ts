/**
 * Turns on one socket chain with `previous_response_id` and send only the new input. An upstream
 * reached over HTTP keeps nothing between requests, so the socket remembers its last request's input
 * and the output items of its answer, and a continuation of that answer is sent upstream as the full
 * input: what the client would have sent over HTTP. Only the last answer can be continued (Codex
 * chains from the last one only); anything else is never guessed at.
 */

export interface LastResponse {
  id: string;
  /** The full input of the request it answered. */
  input: unknown[];
  /** Its output items, in order. */
  output: unknown[];
}

export type Expansion =
  /** The body now holds the full input (or needed no change). */
  | { kind: 'ok' }
  /** It continues a response this socket cannot rebuild. */
  | { kind: 'unknown'; id: string };

/** `input` as a list of items: a string input is one user message. */
export function inputItems(input: unknown): unknown[] {
  if (Array.isArray(input)) return input;
  if (typeof input === 'string') return [{ type: 'message', role: 'user', content: input }];
  return [];
}

/**
 * Rewrites a `response.create` body that continues `last` into a full-input body (in place).
 * A continuation of another response is left as sent when the client asked the upstream to store
 * responses (the upstream may hold it); with `store: false` it can only be refused.
 */
export function expandContinuation(body: Record<string, unknown>, last: LastResponse | undefined): Expansion {
  const previous = body.previous_response_id;
  if (typeof previous !== 'string' || previous.length === 0) return { kind: 'ok' };
  if (last !== undefined && last.id === previous) {
    body.input = [...last.input, ...last.output, ...inputItems(body.input)];
    delete body.previous_response_id;
    return { kind: 'ok' };
  }
  if (body.store === false) return { kind: 'unknown', id: previous };
  return { kind: 'ok' };
}
