/**
 * The WebSocket scenarios: Codex's provider has `supports_websockets = true`, so Codex opens
 * `GET /v1/responses` as a WebSocket, prewarms with `generate: false` and sends each request as a
 * `response.create` frame (chained with `previous_response_id` on the same socket). The gateway
 * runs each over HTTP to the upstream and sends the events back as frames.
 *
 * What Codex 0.169 does on a failed WS request (seen on the wire, README.md): a retryable failure
 * with no retries left (stream_max_retries = 0 here) makes it print an `error` item
 * "Falling back from WebSockets to HTTPS transport. <reason>" and repeat the request as a POST; a
 * fatal one fails the turn at once. So a retryable scenario expects two upstream requests, the
 * first through the WebSocket and the second from the POST, and checks the reason in both verdicts.
 */
import {
  completesWithHello,
  describe,
  escapeRegExp,
  eventTypes,
  items,
  matches,
  str,
  turnFailsWith,
  type CodexRun,
  type Scenario,
} from './checks.js';
import { MAX_AGE, shortLivedSockets, twoUpstreams } from './gateway-configs.js';
import { failoverCheck, holdsWholeConversation, sessionCheck } from './scenarios.js';
import { RATE_LIMIT_MESSAGE, SERVER_ERROR_MESSAGE, SESSION_COMMANDS } from './upstream-scripts.js';

const FALLBACK_PREFIX = 'Falling back from WebSockets to HTTPS transport.';

/** Codex's "falling back to HTTPS" item, if it gave up on the WebSocket. */
export const fallbackMessage = (run: CodexRun): string | undefined =>
  items(run, 'error')
    .map((i) => str(i.message) ?? '')
    .find((m) => m.startsWith(FALLBACK_PREFIX));

/**
 * Codex used the WebSocket: the gateway accepted an upgrade (101) and the first upstream request
 * came before any POST, so through the bridge.
 */
function usedWebSocket(run: CodexRun): string | undefined {
  const gw = run.gateway;
  if (gw === undefined) return 'no gateway: the WebSocket scenarios need one';
  if (!gw.upgrades.some((u) => u.status === 101)) {
    if (gw.upgrades.length === 0) return 'Codex made no WebSocket upgrade';
    const statuses = gw.upgrades.map((u) => u.status ?? 'no answer').join(', ');
    return `the gateway answered the upgrade with ${statuses}, not 101: Codex fell back to HTTP`;
  }
  const first = run.upstream[0];
  if (first === undefined) return 'the upstream saw no request';
  if (first.postsBefore > 0)
    return `the first upstream request came from an HTTP POST (${gw.posts.join(', ')}), not the WebSocket`;
  // The gateway's own word: the access line of that request's id says it was a WebSocket turn.
  const reqId = str(first.headers['x-request-id']);
  const line = run.accessLines.find((l) => l.reqId === reqId);
  if (line?.transport !== 'websocket')
    return `the gateway's access line for request ${reqId} has transport ${JSON.stringify(line?.transport)}, not "websocket"`;
  return undefined;
}

/**
 * With `fallback`, Codex gave up on the WebSocket once (the item, then exactly one POST, which
 * brought the second upstream request); without, it stayed on it (no item, no POST).
 */
function stayedOnWebSocket(run: CodexRun, fallback: boolean): string | undefined {
  const posts = run.gateway?.posts ?? [];
  const fell = fallbackMessage(run);
  if (!fallback) {
    if (fell !== undefined) return `Codex left the WebSocket: ${JSON.stringify(fell)}`;
    if (posts.length > 0) return `Codex made ${posts.length} HTTP POSTs`;
    return undefined;
  }
  if (fell === undefined) return `no "${FALLBACK_PREFIX}" item (events: ${eventTypes(run)})`;
  if (posts.length !== 1) return `Codex made ${posts.length} HTTP POSTs after falling back, not 1`;
  if (run.upstream[1]?.postsBefore !== 1) return 'the second upstream request did not come from the POST';
  return undefined;
}

/** A scenario on the WebSocket that Codex never leaves. */
const onWebSocket = (s: Omit<Scenario, 'transport' | 'precheck'>): Scenario => ({
  ...s,
  transport: 'ws',
  precheck: usedWebSocket,
  check: (run) => stayedOnWebSocket(run, false) ?? s.check(run),
});

type Want = string | ((run: CodexRun) => RegExp);

/**
 * A retryable failure: the WebSocket attempt's reason is in the fallback item (`want`), then the
 * POST fails the same way and the turn fails with it (`wantHttp`, by default the same).
 */
function wsFailsOverToHttpWith(
  name: string,
  upstream: string,
  what: string,
  want: Want,
  wantHttp: Want = want,
): Scenario {
  return {
    name,
    what,
    transport: 'ws',
    upstream,
    requests: 2,
    precheck: usedWebSocket,
    check(run) {
      const ws = stayedOnWebSocket(run, true);
      if (ws !== undefined) return ws;
      const fell = fallbackMessage(run)!;
      if (!matches(fell, want, run))
        return `the WebSocket attempt: ${JSON.stringify(fell)} lacks ${describe(want, run)}`;
      return turnFailsWith(run, wantHttp);
    },
  };
}

/** Codex's words for a 429, with the gateway's request id of upstream request `i` (0-based). */
const status429 =
  (i: number) =>
  (run: CodexRun): RegExp => {
    const id = str(run.upstream[i]?.headers['x-request-id']);
    return new RegExp(`429 Too Many Requests, request id: ${id === undefined ? '\\S+' : escapeRegExp(id)}`);
  };

export const WS_SCENARIOS: Scenario[] = [
  onWebSocket({
    name: 'ws-happy',
    what: 'WS: prewarm answered by the gateway, one create → "Hello!"',
    upstream: 'happy',
    check: (run) => completesWithHello(run) ?? holdsWholeConversation(run, 'happy'),
  }),
  onWebSocket({
    name: 'ws-session',
    what: `WS: ${SESSION_COMMANDS.length} tool calls chained by previous_response_id, expanded to full input`,
    upstream: 'session',
    requests: SESSION_COMMANDS.length + 1,
    check: (run) => sessionCheck(run, 'session'),
  }),
  wsFailsOverToHttpWith(
    'ws-failed-held-open',
    'failed-held-open',
    'WS: response.failed server_error after output',
    SERVER_ERROR_MESSAGE,
  ),
  wsFailsOverToHttpWith(
    'ws-error-event',
    'error-event',
    'WS: event: error mid-stream (socket held open)',
    RATE_LIMIT_MESSAGE,
  ),
  wsFailsOverToHttpWith('ws-tcp-drop', 'tcp-drop', 'WS: TCP drop mid-stream', 'upstream connection lost'),
  wsFailsOverToHttpWith(
    'ws-eof-no-terminal',
    'eof-no-terminal',
    'WS: clean EOF without a terminal event',
    'upstream closed the stream without a terminal event',
  ),
  wsFailsOverToHttpWith(
    'ws-http-429',
    'http-429',
    'WS: 429 before output → error frame with status and headers',
    status429(0),
    status429(1),
  ),
  onWebSocket({
    name: 'ws-context-length',
    what: 'WS: response.failed context_length_exceeded (fatal: no fallback)',
    upstream: 'context-length',
    check: (run) => turnFailsWith(run, "Codex ran out of room in the model's context window"),
  }),
  onWebSocket({
    name: 'ws-max-age',
    what: `WS: socket older than websocket.maxAge (${MAX_AGE}) → Codex reconnects, resends all (1 retry)`,
    upstream: 'session-slow',
    retries: 1,
    requests: SESSION_COMMANDS.length + 1,
    gatewayYaml: shortLivedSockets,
    check(run) {
      const upgrades = run.gateway?.upgrades ?? [];
      if (upgrades.length !== 2 || upgrades.some((u) => u.status !== 101))
        return `upgrades ${JSON.stringify(upgrades)}: expected two accepted sockets`;
      return sessionCheck(run, 'session-slow');
    },
  }),
  {
    name: 'ws-max-age-no-retry',
    what: `WS: the same with stream_max_retries = 0 → Codex falls back to HTTP for the rest`,
    transport: 'ws',
    upstream: 'session-slow',
    requests: SESSION_COMMANDS.length + 1,
    gatewayYaml: shortLivedSockets,
    precheck: usedWebSocket,
    check(run) {
      const fell = fallbackMessage(run);
      if (fell?.includes('websocket connection limit reached') !== true)
        return `no fallback item naming the connection limit: ${JSON.stringify(fell)}`;
      const later = run.upstream.slice(1).map((r) => r.postsBefore);
      if (later.some((p) => p === 0))
        return `requests after the limit came through the WebSocket: ${later.join()}`;
      return sessionCheck(run, 'session-slow');
    },
  },
  onWebSocket({
    name: 'ws-failover-429',
    what: 'WS: two upstreams, 429 before output on up1 → served by up2',
    upstream: 'failover-429',
    requests: 2,
    gatewayYaml: twoUpstreams,
    check: failoverCheck,
  }),
];
