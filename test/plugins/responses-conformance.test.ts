/**
 * The Responses conformance suite (responses-protocol.md §5): the real openai SDK drives the
 * gateway against a loopback upstream scripted per scenario, on all six Responses routes.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import OpenAI from 'openai';
import { basicConfig, CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { recordingFetch } from '../helpers/secret-scan.js';
import {
  frame,
  happyStream,
  MESSAGE_ITEM,
  responseObject,
  startUpstream,
  USAGE,
  writeSseHead,
  type TestUpstream,
} from '../helpers/upstream.js';

type Scenario = (res: http.ServerResponse) => void;

const created = frame('response.created', 0, { response: responseObject('resp_up1', 'in_progress') });
const inProgress = frame('response.in_progress', 1, { response: responseObject('resp_up1', 'in_progress') });
const delta = frame('response.output_text.delta', 2, {
  item_id: 'msg_1',
  output_index: 0,
  content_index: 0,
  delta: 'Hel',
});

/** Upstream behaviours, chosen by the request's `input`. */
const SCENARIOS: Record<string, Scenario> = {
  happy(res) {
    writeSseHead(res, { 'x-request-id': 'upstream-req-1' });
    for (const f of happyStream()) res.write(f);
    res.end();
  },
  'rate-limited'(res) {
    res.writeHead(429, {
      'content-type': 'application/json',
      'retry-after': '7',
      'x-request-id': 'upstream-req-429',
    });
    res.end(
      JSON.stringify({
        error: {
          message: 'Rate limit reached for gpt-test. Please try again in 7s.',
          type: 'requests',
          param: null,
          code: 'rate_limit_exceeded',
        },
      }),
    );
  },
  'server-error'(res) {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        error: { message: 'The server had an error', type: 'server_error', param: null, code: null },
      }),
    );
  },
  'tcp-drop'(res) {
    writeSseHead(res);
    res.write(created + inProgress + delta, () => res.socket?.destroy());
  },
  'error-event'(res) {
    writeSseHead(res);
    res.write(created + inProgress + delta);
    res.write(
      `event: error\ndata: ${JSON.stringify({ type: 'error', sequence_number: 3, error: { type: 'tokens', code: 'rate_limit_exceeded', message: 'Rate limit reached: try again in 1.5s', param: null } })}\n\n`,
    );
    // The upstream holds the socket open: the gateway must still end the stream.
  },
  'eof-no-terminal'(res) {
    writeSseHead(res);
    res.end(created + inProgress + delta);
  },
  stall(res) {
    writeSseHead(res);
    res.write(created + inProgress + delta);
  },
  malformed(res) {
    writeSseHead(res);
    res.write(
      created +
        inProgress +
        delta +
        'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",\n\n',
    );
  },
  'overloaded-before-output'(res) {
    writeSseHead(res);
    const response = responseObject('resp_up1', 'failed', {
      error: { code: 'server_is_overloaded', message: 'Our servers are busy (e2e)' },
    });
    res.end(created + frame('response.failed', 1, { response }));
  },
  'eof-before-output'(res) {
    writeSseHead(res);
    res.end(created + inProgress);
  },
  incomplete(res) {
    writeSseHead(res);
    const response = responseObject('resp_up1', 'incomplete', {
      incomplete_details: { reason: 'max_output_tokens' },
      usage: USAGE,
    });
    // Held open after the terminal event: the gateway closes promptly.
    res.write(created + inProgress + frame('response.incomplete', 2, { response }));
  },
};

interface Route {
  path: string;
  baseURL: (gw: string) => string;
  /** Path relative to baseURL that the SDK posts to. */
  post: string;
}

const ROUTES: Route[] = [
  { path: '/v1/responses', baseURL: (g) => `${g}/v1`, post: '/responses' },
  { path: '/responses', baseURL: (g) => g, post: '/responses' },
  { path: '/backend-api/codex/responses', baseURL: (g) => `${g}/backend-api/codex`, post: '/responses' },
  { path: '/v1/responses/compact', baseURL: (g) => `${g}/v1`, post: '/responses/compact' },
  { path: '/responses/compact', baseURL: (g) => g, post: '/responses/compact' },
  {
    path: '/backend-api/codex/responses/compact',
    baseURL: (g) => `${g}/backend-api/codex`,
    post: '/responses/compact',
  },
];

interface Collected {
  events: Record<string, unknown>[];
  error: unknown;
  /** ms between the last event and the end of the stream. */
  closeLagMs: number;
}

let modelCounter = 0;
/** A model per request: cooldowns are per (upstream, model), so one test's 429 cannot leak into the next. */
const freshModel = () => `gpt-test-${++modelCounter}`;

async function streamVia(client: OpenAI, route: Route, scenario: string): Promise<Collected> {
  const events: Record<string, unknown>[] = [];
  let error: unknown;
  let last = performance.now();
  try {
    const stream = (await client.post(route.post, {
      body: { model: freshModel(), input: scenario, stream: true, some_future_field: { keep: true } },
      stream: true,
    })) as AsyncIterable<Record<string, unknown>>;
    for await (const ev of stream) {
      events.push(ev);
      last = performance.now();
    }
  } catch (err) {
    error = err;
  }
  return { events, error, closeLagMs: performance.now() - last };
}

const types = (c: Collected) => c.events.map((e) => e.type);
const seqs = (c: Collected) => c.events.map((e) => e.sequence_number);
/**
 * A failure after output, as the SDK reports it: the gateway's `error` event (errorEvent, on by
 * default) just before its `response.failed` makes the SDK's stream throw the real reason.
 */
const failure = (c: Collected) => {
  assert.ok(c.error instanceof OpenAI.APIError, String(c.error));
  return { code: c.error.code, message: c.error.message };
};
/** What the client read before a failure after output. */
const BEFORE_FAILURE = ['response.created', 'response.in_progress', 'response.output_text.delta'];

describe('Responses conformance (real openai SDK, all six routes)', function () {
  let upstream: TestUpstream;
  let gateway: TestGateway;

  before(async () => {
    upstream = await startUpstream((_req, res, recorded) => {
      const scenario = String(recorded.json?.input ?? 'happy');
      if (recorded.json?.stream !== true && scenario === 'happy') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify(responseObject('resp_json', 'completed', { output: [MESSAGE_ITEM], usage: USAGE })),
        );
        return;
      }
      SCENARIOS[scenario]!(res);
    });
    gateway = await startGateway(
      basicConfig(upstream.url).replace('plugins:', 'proxy:\n  timeouts: { idle: 400ms }\nplugins:'),
    );
  });
  after(async () => {
    await gateway.close();
    await upstream.close();
  });

  for (const route of ROUTES) {
    describe(route.path, () => {
      const client = () =>
        new OpenAI({
          fetch: recordingFetch,
          apiKey: CLIENT_KEY,
          baseURL: route.baseURL(gateway.url),
          maxRetries: 0,
        });

      it('happy path: every event in order, sequence 0…8, then the stream closes', async () => {
        const c = await streamVia(client(), route, 'happy');
        assert.equal(c.error, undefined);
        assert.deepEqual(seqs(c), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert.equal(types(c).at(-1), 'response.completed');
        assert.ok(c.closeLagMs < 1000, `closed ${c.closeLagMs}ms after the terminal event`);
        // Unknown request fields reach the upstream untouched.
        assert.deepEqual(upstream.requests.at(-1)!.json!.some_future_field, { keep: true });
        assert.equal(
          upstream.requests.at(-1)!.url,
          route.path.includes('compact') ? '/v1/responses/compact' : '/v1/responses',
        );
      });

      it('happy path without stream: the JSON Response object', async () => {
        const r = (await client().post(route.post, { body: { model: freshModel(), input: 'happy' } })) as {
          id: string;
          output: unknown[];
        };
        assert.equal(r.id, 'resp_json');
        assert.deepEqual(r.output, [MESSAGE_ITEM]);
      });

      it('429 with Retry-After before the first byte: status, body and header pass through', async () => {
        const c = await streamVia(client(), route, 'rate-limited');
        assert.ok(c.error instanceof OpenAI.RateLimitError, String(c.error));
        assert.equal(c.error.status, 429);
        assert.equal(c.error.code, 'rate_limit_exceeded');
        assert.match(c.error.message, /try again in 7s/);
        assert.equal(c.error.headers?.get('retry-after'), '7');
        assert.equal(c.error.headers?.get('x-upstream-request-id'), 'upstream-req-429');
        assert.match(c.error.requestID ?? '', /^[0-9a-f-]{36}$/);
        assert.deepEqual(c.events, []);
      });

      it('500 before the first byte: an HTTP error, never a 200 stream', async () => {
        const c = await streamVia(client(), route, 'server-error');
        assert.ok(c.error instanceof OpenAI.InternalServerError, String(c.error));
        assert.equal(c.error.status, 500);
        assert.deepEqual(c.events, []);
      });

      it('TCP drop mid-stream: the SDK throws "upstream connection lost"', async () => {
        const c = await streamVia(client(), route, 'tcp-drop');
        assert.deepEqual(types(c), BEFORE_FAILURE);
        assert.deepEqual(seqs(c), [0, 1, 2]);
        assert.deepEqual(failure(c), { code: 'server_error', message: 'upstream connection lost' });
        assert.ok(c.closeLagMs < 1000);
      });

      it('event: error mid-stream: the SDK throws the mapped code and the real message', async () => {
        const c = await streamVia(client(), route, 'error-event');
        assert.deepEqual(types(c), BEFORE_FAILURE);
        assert.deepEqual(seqs(c), [0, 1, 2]);
        assert.deepEqual(failure(c), {
          code: 'rate_limit_exceeded',
          message: 'Rate limit reached: try again in 1.5s',
        });
        assert.ok(c.closeLagMs < 1000, `closed ${c.closeLagMs}ms after response.failed`);
      });

      it('EOF without a terminal event: the SDK throws, not a silent end', async () => {
        const c = await streamVia(client(), route, 'eof-no-terminal');
        assert.deepEqual(types(c), BEFORE_FAILURE);
        assert.deepEqual(seqs(c), [0, 1, 2]);
        assert.deepEqual(failure(c), {
          code: 'server_error',
          message: 'upstream closed the stream without a terminal event',
        });
      });

      it('a stall past the idle timeout: the SDK throws, naming the stall', async () => {
        const c = await streamVia(client(), route, 'stall');
        assert.deepEqual(types(c), BEFORE_FAILURE);
        assert.deepEqual(seqs(c), [0, 1, 2]);
        assert.equal(failure(c).code, 'upstream_error');
        assert.match(failure(c).message, /stalled/);
      });

      it('a malformed frame is not forwarded: the SDK throws instead', async () => {
        const c = await streamVia(client(), route, 'malformed');
        assert.deepEqual(types(c), BEFORE_FAILURE);
        assert.deepEqual(seqs(c), [0, 1, 2]);
        assert.equal(failure(c).code, 'upstream_error', failure(c).message);
        assert.match(failure(c).message, /malformed event/);
      });

      it('response.failed (server_is_overloaded) before any output: an HTTP 503 with the real message, not a 200', async () => {
        const c = await streamVia(client(), route, 'overloaded-before-output');
        assert.ok(c.error instanceof OpenAI.APIError, String(c.error));
        assert.equal(c.error.status, 503);
        assert.equal(c.error.code, 'server_is_overloaded');
        assert.match(c.error.message, /Our servers are busy \(e2e\)/);
        assert.deepEqual(c.events, []);
      });

      it('EOF inside a 200 before any output: an HTTP 502, not a 200', async () => {
        const c = await streamVia(client(), route, 'eof-before-output');
        assert.ok(c.error instanceof OpenAI.APIError, String(c.error));
        assert.equal(c.error.status, 502);
        assert.match(c.error.message, /without a terminal event/);
      });

      it('response.incomplete is forwarded verbatim and the stream closes promptly', async () => {
        const c = await streamVia(client(), route, 'incomplete');
        assert.deepEqual(types(c), ['response.created', 'response.in_progress', 'response.incomplete']);
        assert.deepEqual((c.events[2]!.response as { incomplete_details: unknown }).incomplete_details, {
          reason: 'max_output_tokens',
        });
        assert.ok(c.closeLagMs < 1000, `closed ${c.closeLagMs}ms after response.incomplete`);
      });
    });
  }
});
