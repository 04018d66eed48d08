/**
 * One soak request, from the client's side: it sends the plan's request, hangs up when the plan
 * says so, and names how the request ended. A terminal answer is `ok`, `response.failed <code>`,
 * `HTTP <status> <code>` or a deliberate `client abort (…)`; any other ending (a stream closed
 * without a terminal event, a truncated body, a broken connection, no answer at all) is `bad`.
 */
import http from 'node:http';
import { checkSse, JSON_BODY, requestBody } from '../payloads.js';
import { FAULT_HEADER, HOLD_HEAD, HOLD_STREAM } from './fault-upstream.js';
import type { Plan } from './plan.js';
import { goneKey, outputKey, reachedKey, type Rendezvous } from './rendezvous.js';

/** A request with no answer after this long is counted as hung (and dropped). */
export const ANSWER_LIMIT_MS = 30_000;
const TERMINAL = new Set(['response.completed', 'response.failed', 'response.incomplete']);
const JSON_ID = (JSON.parse(JSON_BODY.toString('utf8')) as { id: string }).id;

export interface ClientDeps {
  /** The gateway's origin, e.g. http://127.0.0.1:1234. */
  origin: string;
  key: string;
  agent: http.Agent;
  meet: Rendezvous;
  /** Strings no answer may contain (client and upstream keys). */
  secrets: readonly string[];
}

export interface Result {
  outcome: string;
  /** Why the ending is not a terminal answer; undefined when it is one. */
  bad?: string;
  /** A secret appeared in what the gateway said. */
  leak?: boolean;
}

/** How a Responses stream the client read in full ended: the terminal event's outcome, or a problem. */
export function readStream(text: string): Result {
  let last = -1;
  let terminal: Record<string, unknown> | undefined;
  for (const block of text.split('\n\n')) {
    const data = block
      .split('\n')
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).trimStart())
      .join('\n');
    if (data === '') continue; // a comment or keepalive line
    if (terminal !== undefined) return { outcome: 'bad', bad: 'an event after the terminal event' };
    let ev: { type?: string; sequence_number?: number; response?: { error?: { code?: string } } };
    try {
      ev = JSON.parse(data) as typeof ev;
    } catch {
      return { outcome: 'bad', bad: 'an event that is not JSON reached the client' };
    }
    if (typeof ev.sequence_number !== 'number' || ev.sequence_number <= last)
      return { outcome: 'bad', bad: 'sequence_number not increasing' };
    last = ev.sequence_number;
    if (TERMINAL.has(ev.type ?? '')) terminal = ev as Record<string, unknown>;
  }
  if (terminal === undefined) return { outcome: 'bad', bad: 'stream ended without a terminal event' };
  if (terminal.type === 'response.completed') {
    const problem = checkSse(text);
    return problem === undefined
      ? { outcome: 'ok' }
      : { outcome: 'bad', bad: `completed stream: ${problem}` };
  }
  const code = (terminal as { response?: { error?: { code?: string } } }).response?.error?.code;
  return { outcome: `${String(terminal.type)} ${code ?? '(no code)'}` };
}

/** Names an answer the client read to its end. */
function classify(plan: Plan, status: number, type: string, text: string, complete: boolean): Result {
  if (status === 200 && type.startsWith('text/event-stream')) {
    const r = readStream(text);
    // A stream cut before its end with a terminal event already read is still truncated.
    if (!complete && r.bad === undefined)
      return { outcome: 'bad', bad: 'stream connection broken after the terminal event' };
    if (!complete) return { outcome: 'bad', bad: `stream connection broken (${r.bad})` };
    return r;
  }
  if (!complete) return { outcome: 'bad', bad: `HTTP ${status} body truncated` };
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { outcome: 'bad', bad: `HTTP ${status} body is not JSON` };
  }
  if (status >= 400) {
    const err = json.error as { code?: unknown; message?: unknown } | undefined;
    if (typeof err?.message !== 'string')
      return { outcome: 'bad', bad: `HTTP ${status} error body not OpenAI-shaped` };
    return { outcome: `HTTP ${status} ${String(err.code ?? '(no code)')}` };
  }
  if (status !== 200) return { outcome: `HTTP ${status}` };
  if (plan.method === 'GET')
    return Array.isArray(json.data) ? { outcome: 'ok' } : { outcome: 'bad', bad: 'models list without data' };
  return json.id === JSON_ID && json.status === 'completed'
    ? { outcome: 'ok' }
    : { outcome: 'bad', bad: 'JSON answer is not the upstream Response' };
}

export function runRequest(plan: Plan, deps: ClientDeps): Promise<Result> {
  const body = plan.method === 'POST' ? requestBody(plan.stream, plan.model) : '';
  const headers: http.OutgoingHttpHeaders = {
    authorization: `Bearer ${deps.key}`,
    'x-request-id': plan.id,
  };
  if (plan.method === 'POST') {
    headers['content-type'] = 'application/json';
    headers['content-length'] = Buffer.byteLength(body);
    const hold =
      plan.abort === 'while-upstream-waits'
        ? HOLD_HEAD
        : plan.abort === 'mid-stream'
          ? HOLD_STREAM
          : plan.fault;
    headers[FAULT_HEADER] = hold;
  }
  const aborted: Result = { outcome: `client abort (${plan.abort})` };
  const midFault = plan.fault.endsWith('mid-stream') || plan.fault === 'malformed-sse';

  return new Promise<Result>((resolve) => {
    let settled = false;
    const done = (r: Result) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      deps.meet.forget(plan.id);
      resolve(r);
    };
    const req = http.request(new URL(plan.path, deps.origin), {
      method: plan.method,
      headers,
      agent: deps.agent,
    });
    const timer = setTimeout(() => {
      req.destroy();
      done({ outcome: 'bad', bad: `no answer within ${ANSWER_LIMIT_MS / 1000}s` });
    }, ANSWER_LIMIT_MS);
    const hangUp = () => {
      req.destroy();
      // The upstream now times how long the gateway takes to cancel its request.
      deps.meet.fire(goneKey(plan.id));
      done(aborted);
    };
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (plan.abort !== undefined) return done(aborted);
      done({ outcome: 'bad', bad: `request failed before an answer (${err.code ?? err.message})` });
    });
    if (plan.abort === 'before-response') req.once('finish', hangUp);
    if (plan.abort === 'while-upstream-waits')
      void deps.meet.wait(reachedKey(plan.id), ANSWER_LIMIT_MS).then((reached) => reached && hangUp());
    req.on('response', (res) => {
      if (plan.abort === 'before-response' || plan.abort === 'while-upstream-waits') return hangUp();
      const type = String(res.headers['content-type'] ?? '');
      const status = res.statusCode ?? 0;
      let text = '';
      let sawOutput = false;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        if (sawOutput || !text.includes('response.output_text.delta')) return;
        sawOutput = true;
        if (plan.abort === 'mid-stream') hangUp();
        else if (midFault) deps.meet.fire(outputKey(plan.id));
      });
      res.on('close', () => {
        if (settled) return;
        const r = classify(plan, status, type, text, res.complete);
        if (r.outcome !== 'ok' && deps.secrets.some((s) => text.includes(s))) r.leak = true;
        done(r);
      });
    });
    req.end(body);
  });
}
