/**
 * The scripted upstream's behaviours, one per scenario name. The upstream learns the scenario from
 * the `x-tapgate-e2e-scenario` header (Codex sends it through `env_http_headers`, the gateway
 * forwards it) or, failing that, from the marker in the prompt, which every request carries in its
 * input whatever the transport.
 */
import type http from 'node:http';
import type { RecordedRequest } from '../../helpers/upstream.js';
import {
  frame,
  happyStream,
  MESSAGE_ITEM,
  responseObject,
  USAGE,
  writeSseHead,
} from '../../helpers/upstream.js';
import { SCENARIO_HEADER } from './common.js';

export interface ScriptRequest {
  /** 1-based: which request of the current scenario this is. */
  n: number;
  recorded: RecordedRequest;
}

export type UpstreamScript = (res: http.ServerResponse, req: ScriptRequest) => void;

/** The prompt Codex is given; the marker names the scenario. */
export const promptFor = (scenario: string): string => `Say hello. (tapgate e2e scenario: ${scenario})`;
const MARKER = /tapgate e2e scenario: ([\w-]+)/;

/** The scenario a request belongs to, and where the upstream learnt it. */
export function scenarioOf(
  recorded: RecordedRequest,
): { name: string; from: 'header' | 'prompt' } | undefined {
  const header = recorded.headers[SCENARIO_HEADER];
  if (typeof header === 'string') return { name: header, from: 'header' };
  const m = MARKER.exec(recorded.body.toString());
  return m === null ? undefined : { name: m[1]!, from: 'prompt' };
}

const created = frame('response.created', 0, { response: responseObject('resp_up1', 'in_progress') });
const inProgress = frame('response.in_progress', 1, { response: responseObject('resp_up1', 'in_progress') });
const itemAdded = frame('response.output_item.added', 2, {
  output_index: 0,
  item: { ...MESSAGE_ITEM, status: 'in_progress', content: [] },
});
const delta = frame('response.output_text.delta', 3, {
  item_id: 'msg_1',
  output_index: 0,
  content_index: 0,
  delta: 'Hel',
});

export const RATE_LIMIT_MESSAGE =
  'Rate limit reached for gpt-5.5 in organization org-e2e on tokens per min: try again in 1.5s';
export const SERVER_ERROR_MESSAGE = 'The server had an error while processing your request (e2e)';
const CONTEXT_MESSAGE =
  'Your input exceeds the context window of this model. Please adjust your input and try again.';

/** The commands the session scenario has Codex run, in order: read-only and harmless. */
export const SESSION_COMMANDS = ['pwd', 'echo tapgate-e2e'];

/** A response that asks Codex to run `cmd` with its `exec_command` tool (the shell tool of 0.169). */
function functionCallStream(id: string, callId: string, cmd: string): string[] {
  const item = {
    type: 'function_call',
    id: `fc_${callId}`,
    call_id: callId,
    name: 'exec_command',
    arguments: JSON.stringify({ cmd }),
    status: 'completed',
  };
  return [
    frame('response.created', 0, { response: responseObject(id, 'in_progress') }),
    frame('response.in_progress', 1, { response: responseObject(id, 'in_progress') }),
    frame('response.output_item.added', 2, {
      output_index: 0,
      item: { ...item, status: 'in_progress', arguments: '' },
    }),
    frame('response.function_call_arguments.delta', 3, {
      item_id: item.id,
      output_index: 0,
      delta: item.arguments,
    }),
    frame('response.function_call_arguments.done', 4, {
      item_id: item.id,
      output_index: 0,
      arguments: item.arguments,
    }),
    frame('response.output_item.done', 5, { output_index: 0, item }),
    frame('response.completed', 6, {
      response: responseObject(id, 'completed', { output: [item], usage: USAGE }),
    }),
  ];
}

const happy: UpstreamScript = (res) => {
  writeSseHead(res, { 'x-request-id': 'upstream-req-happy' });
  for (const f of happyStream()) res.write(f);
  res.end();
};

const http429: UpstreamScript = (res) => {
  res.writeHead(429, {
    'content-type': 'application/json',
    'retry-after': '1',
    'x-request-id': 'upstream-req-429',
  });
  const error = {
    message: 'Rate limit reached for gpt-5.5. Please try again in 1s.',
    type: 'requests',
    param: null,
    code: 'rate_limit_exceeded',
  };
  res.end(JSON.stringify({ error }));
};

/** How long `session-slow` holds its first answer: longer than MAX_AGE in gateway-configs.ts. */
export const SLOW_FIRST_ANSWER_MS = 1300;

/** Upstream paths in the two-upstream config: `/up1/v1/…` and `/up2/v1/…` on this one server. */
export const FAILOVER_PATHS = { first: '/up1', second: '/up2' };

export const UPSTREAM: Record<string, UpstreamScript> = {
  happy,
  'error-event'(res) {
    writeSseHead(res);
    const error = { type: 'tokens', code: 'rate_limit_exceeded', message: RATE_LIMIT_MESSAGE, param: null };
    // After output (a delta), so that the gateway cannot fail over or answer with an HTTP error.
    res.write(
      created +
        inProgress +
        itemAdded +
        delta +
        `event: error\ndata: ${JSON.stringify({ type: 'error', sequence_number: 4, error })}\n\n`,
    );
    // The socket is held open: the gateway has to end the stream itself.
  },
  'tcp-drop'(res) {
    writeSseHead(res);
    res.write(created + inProgress + itemAdded + delta, () => res.socket?.destroy());
  },
  'eof-no-terminal'(res) {
    writeSseHead(res);
    res.end(created + inProgress + itemAdded + delta);
  },
  stall(res) {
    writeSseHead(res);
    res.write(created + inProgress);
  },
  malformed(res) {
    writeSseHead(res);
    res.write(
      created +
        inProgress +
        'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",\n\n',
    );
  },
  'context-length'(res) {
    writeSseHead(res);
    const response = responseObject('resp_up1', 'failed', {
      error: { code: 'context_length_exceeded', message: CONTEXT_MESSAGE },
    });
    res.write(created + inProgress + frame('response.failed', 2, { response }));
  },
  'failed-held-open'(res) {
    writeSseHead(res);
    const response = responseObject('resp_up1', 'failed', {
      error: { code: 'server_error', message: SERVER_ERROR_MESSAGE },
    });
    // Held open after the terminal event: the gateway must close promptly.
    res.write(created + inProgress + itemAdded + delta + frame('response.failed', 4, { response }));
  },
  incomplete(res) {
    writeSseHead(res);
    const response = responseObject('resp_up1', 'incomplete', {
      incomplete_details: { reason: 'max_output_tokens' },
      usage: USAGE,
    });
    res.write(created + inProgress + frame('response.incomplete', 2, { response }));
  },
  'http-429': http429,
  /** One tool call per request until SESSION_COMMANDS run out, then "Hello!". */
  session(res, { n }) {
    writeSseHead(res);
    const cmd = SESSION_COMMANDS[n - 1];
    const frames =
      cmd === undefined ? happyStream(`resp_s${n}`) : functionCallStream(`resp_s${n}`, `call_e2e_${n}`, cmd);
    for (const f of frames) res.write(f);
    res.end();
  },
  /**
   * The session, with the first answer held back SLOW_FIRST_ANSWER_MS: the socket's next create
   * then comes after the gateway's `websocket.maxAge` (the time is what is under test).
   */
  'session-slow'(res, req) {
    if (req.n !== 1) return UPSTREAM.session!(res, req);
    setTimeout(() => UPSTREAM.session!(res, req), SLOW_FIRST_ANSWER_MS);
  },
  /** The first upstream answers 429, the second "Hello!": the gateway must fail over. */
  'failover-429'(res, req) {
    if (req.recorded.url.startsWith(`${FAILOVER_PATHS.first}/`)) return http429(res, req);
    return happy(res, req);
  },
};
