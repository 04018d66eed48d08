/**
 * The HTTP scenarios: Codex's provider has `supports_websockets = false`, so every request is a POST.
 * Each names the upstream behaviour (upstream-scripts.ts) and what Codex must print.
 */
import {
  completesWithHello,
  escapeRegExp,
  items,
  str,
  turnFailsWith,
  type CodexRun,
  type Scenario,
} from './checks.js';
import { GATEWAY_IDLE } from './common.js';
import { twoUpstreams } from './gateway-configs.js';
import {
  FAILOVER_PATHS,
  promptFor,
  RATE_LIMIT_MESSAGE,
  SERVER_ERROR_MESSAGE,
  SESSION_COMMANDS,
} from './upstream-scripts.js';

/** A failed turn whose message contains `want` (a string, or a pattern built from the run). */
function failsWith(
  name: string,
  what: string,
  want: string | ((run: CodexRun) => RegExp),
  extra: Partial<Scenario> = {},
): Scenario {
  return {
    name,
    what,
    transport: 'http',
    ...extra,
    check: (run) => extra.check?.(run) ?? turnFailsWith(run, want),
  };
}

/** `type/role(call_id)` of each input item: enough to compare two requests' histories. */
const signature = (json: Record<string, unknown> | undefined): string[] =>
  ((json?.input ?? []) as Record<string, unknown>[]).map(
    (i) => `${str(i.type)}${i.role ? `/${str(i.role)}` : ''}${i.call_id ? `(${str(i.call_id)})` : ''}`,
  );

const textOf = (item: Record<string, unknown>): string =>
  ((item.content ?? []) as Record<string, unknown>[]).map((c) => str(c.text) ?? '').join('');

/**
 * The first upstream request holds Codex's system prompt and ends with the prompt. Over the
 * WebSocket the system prompt came only in the prewarm (`generate: false`), so this shows the
 * gateway kept the prewarm's input and put it before the turn's.
 */
export function holdsWholeConversation(run: CodexRun, scenario: string): string | undefined {
  const first = (run.upstream[0]?.json?.input ?? []) as Record<string, unknown>[];
  const items = () => signature(run.upstream[0]?.json).join(', ');
  if (!first.some((i) => i.role === 'developer' && textOf(i).startsWith('You are Codex')))
    return `upstream request 1 lacks Codex's system prompt: ${items()}`;
  if (!textOf(first.at(-1) ?? {}).includes(promptFor(scenario)))
    return `upstream request 1 does not end with the prompt: ${items()}`;
  return undefined;
}

/**
 * The tool-call session, whatever the transport: Codex runs each SESSION_COMMAND and then says
 * "Hello!", and every upstream request carries the whole conversation so far, with no
 * `previous_response_id` and no `generate`: the upstream (an HTTP one) keeps no state.
 */
export function sessionCheck(run: CodexRun, scenario: string): string | undefined {
  const done = completesWithHello(run);
  if (done !== undefined) return done;
  const commands = items(run, 'command_execution');
  if (commands.length !== SESSION_COMMANDS.length)
    return `Codex ran ${commands.length} commands, not ${SESSION_COMMANDS.length}`;
  for (const [i, req] of run.upstream.entries()) {
    const body = req.json ?? {};
    if ('previous_response_id' in body)
      return `upstream request ${i + 1} has previous_response_id ${JSON.stringify(body.previous_response_id)}`;
    if ('generate' in body) return `upstream request ${i + 1} has generate: ${JSON.stringify(body.generate)}`;
  }
  const whole = holdsWholeConversation(run, scenario);
  if (whole !== undefined) return whole;
  // Each later request = the one before + the call it answered + Codex's output for it.
  for (let n = 2; n <= run.upstream.length; n++) {
    const call = `call_e2e_${n - 1}`;
    const want = [
      ...signature(run.upstream[n - 2]?.json),
      `function_call(${call})`,
      `function_call_output(${call})`,
    ];
    const got = signature(run.upstream[n - 1]?.json);
    if (got.join() !== want.join())
      return `upstream request ${n} input is [${got.join(', ')}], expected [${want.join(', ')}]`;
  }
  return undefined;
}

/** Two upstreams: the first answers 429, so the gateway must serve the turn from the second. */
export function failoverCheck(run: CodexRun): string | undefined {
  const done = completesWithHello(run);
  if (done !== undefined) return done;
  const paths = run.upstream.map((r) => r.url);
  if (!paths[0]?.startsWith(`${FAILOVER_PATHS.first}/`) || !paths[1]?.startsWith(`${FAILOVER_PATHS.second}/`))
    return `upstream requests went to ${paths.join(', ')}: expected up1, then up2`;
  return undefined;
}

export const HTTP_SCENARIOS: Scenario[] = [
  {
    name: 'happy',
    what: 'complete stream → turn.completed, "Hello!"',
    transport: 'http',
    check: completesWithHello,
  },
  {
    name: 'session',
    what: `${SESSION_COMMANDS.length} tool calls, then "Hello!": each request carries the whole history`,
    transport: 'http',
    requests: SESSION_COMMANDS.length + 1,
    check: (run) => sessionCheck(run, 'session'),
  },
  failsWith('error-event', 'event: error mid-stream (socket held open)', RATE_LIMIT_MESSAGE),
  failsWith('error-event-retry', 'the same, Codex retrying once (stream_max_retries=1)', RATE_LIMIT_MESSAGE, {
    upstream: 'error-event',
    retries: 1,
    check(run) {
      // Codex parses "try again in 1.5s" from the message and waits that long before its retry.
      const gap = (run.upstream[1]?.at ?? 0) - (run.upstream[0]?.at ?? 0);
      return run.upstream.length === 2 && gap < 1400
        ? `Codex retried after ${Math.round(gap)} ms, not ~1.5 s`
        : undefined;
    },
  }),
  failsWith('tcp-drop', 'TCP connection dropped mid-stream', 'upstream connection lost'),
  failsWith(
    'eof-no-terminal',
    'clean EOF without a terminal event',
    'upstream closed the stream without a terminal event',
  ),
  failsWith('stall', `silence past the gateway idle timeout (${GATEWAY_IDLE})`, () => /stalled/),
  failsWith('malformed', 'a frame that is not JSON', () => /malformed event/),
  failsWith(
    'context-length',
    'response.failed context_length_exceeded',
    "Codex ran out of room in the model's context window",
  ),
  failsWith('failed-held-open', 'response.failed server_error, socket held open', SERVER_ERROR_MESSAGE),
  failsWith(
    'incomplete',
    'response.incomplete max_output_tokens (held open)',
    'Incomplete response returned, reason: max_output_tokens',
  ),
  failsWith('http-429', 'HTTP 429 + Retry-After before the first byte', (run) =>
    run.requestId === undefined
      ? /429 Too Many Requests, request id: \S+/
      : new RegExp(`429 Too Many Requests, request id: ${escapeRegExp(run.requestId)}`),
  ),
  {
    name: 'failover-429',
    what: 'two upstreams: 429 before output on up1, the gateway fails over to up2',
    transport: 'http',
    upstream: 'failover-429',
    requests: 2,
    gatewayYaml: twoUpstreams,
    check: failoverCheck,
  },
];
