/**
 * codex-upstream responses: a non-streaming client on the stream-only Codex backend gets the JSON
 * Response built from the stream (or an HTTP error), seen through the real openai SDK; and
 * Codex-only events are dropped for SDK clients but kept for Codex (protocol §5 case 22).
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import OpenAI from 'openai';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { recordingFetch } from '../helpers/secret-scan.js';
import { parseSse, postJson } from '../helpers/raw.js';
import { accessToken, idToken } from '../helpers/codex-jwt.js';
import { startTokenServer, type TokenServer } from '../helpers/codex-token-server.js';
import { startCodexBackend, type CodexBackend } from '../helpers/codex-backend.js';
import { codexGatewayConfig } from '../helpers/codex-config.js';
import {
  frame,
  happyStream,
  MESSAGE_ITEM,
  responseObject,
  startUpstream,
  USAGE,
  writeSseHead,
} from '../helpers/upstream.js';

const ITEM_A = { id: 'rs_1', type: 'reasoning', summary: [], encrypted_content: 'enc' };
const ITEM_B = MESSAGE_ITEM;

function sse(res: http.ServerResponse, frames: string[]): void {
  writeSseHead(res);
  res.end(frames.join(''));
}

describe('plugin codex-upstream: stream→JSON and SDK events', () => {
  let tokens: TokenServer;
  let backend: CodexBackend;
  let g: TestGateway;
  let client: OpenAI;

  before(async () => {
    tokens = await startTokenServer();
    backend = await startCodexBackend(tokens.accepts);
  });
  after(async () => {
    await backend.close();
    await tokens.close();
  });
  beforeEach(async () => {
    const login = {
      access_token: accessToken('acct-sj'),
      refresh_token: 'rt-sj',
      id_token: idToken('acct-sj'),
    };
    tokens.register(login, 'acct-sj');
    g = await startGateway(
      codexGatewayConfig([
        { name: 'cx', type: 'codex', baseUrl: backend.baseUrl, tokenUrl: tokens.url, tokens: login },
      ]),
    );
    client = new OpenAI({
      fetch: recordingFetch,
      apiKey: CLIENT_KEY,
      baseURL: `${g.url}/v1`,
      maxRetries: 0,
      timeout: 10_000,
    });
  });
  afterEach(async () => {
    backend.answer = undefined;
    await g.close();
  });

  describe('a non-streaming client', () => {
    it('gets the Response object of response.completed as JSON; the backend was asked to stream', async () => {
      const resp = await client.responses.create({ model: 'gpt-5', input: 'say hello', stream: false });
      assert.equal(resp.id, 'resp_codex');
      assert.equal(resp.object, 'response');
      assert.equal(resp.status, 'completed');
      assert.equal(resp.output_text, 'Hello!');
      assert.equal(resp.usage?.total_tokens, 12);
      const sent = backend.requests.at(-1)!;
      assert.equal(sent.json?.stream, true);
      assert.equal(sent.headers.accept, 'text/event-stream');
    });

    it('answers application/json with the whole object and nothing of the stream', async () => {
      const res = await postJson(g.url, '/v1/responses', { model: 'gpt-5', input: 'x' });
      assert.equal(res.status, 200);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      assert.equal(res.headers['content-length'], undefined);
      const body = res.json();
      assert.equal(body.id, 'resp_codex');
      assert.doesNotMatch(res.text(), /event:|response\.metadata|sequence_number/);
      assert.equal(res.headers['x-codex-primary-used-percent'], '12', 'upstream headers still pass');
    });

    it('rebuilds an empty output from response.output_item.done items, in output_index order', async () => {
      backend.answer = (_rec, res) =>
        sse(res, [
          frame('response.created', 0, { response: responseObject('resp_rb', 'in_progress') }),
          frame('response.output_item.done', 1, { output_index: 1, item: ITEM_B }),
          frame('keepalive', 2),
          frame('response.output_item.done', 3, { output_index: 0, item: ITEM_A }),
          frame('response.completed', 4, {
            response: responseObject('resp_rb', 'completed', { output: [], usage: USAGE }),
          }),
        ]);
      const resp = await client.responses.create({ model: 'gpt-5', input: 'x' });
      assert.equal(resp.id, 'resp_rb');
      assert.deepEqual(resp.output, [ITEM_A, ITEM_B]);
      assert.equal(resp.output_text, 'Hello!');
    });

    it('keeps a non-empty output as the backend sent it', async () => {
      backend.answer = (_rec, res) =>
        sse(res, [
          frame('response.output_item.done', 0, { output_index: 0, item: ITEM_A }),
          frame('response.completed', 1, {
            response: responseObject('resp_k', 'completed', { output: [ITEM_B] }),
          }),
        ]);
      const resp = await client.responses.create({ model: 'gpt-5', input: 'x' });
      assert.deepEqual(resp.output, [ITEM_B]);
    });

    it('response.incomplete is a 200 Response too, with its status and reason', async () => {
      backend.answer = (_rec, res) =>
        sse(res, [
          frame('response.output_item.done', 0, { output_index: 0, item: ITEM_B }),
          frame('response.incomplete', 1, {
            response: responseObject('resp_inc', 'incomplete', {
              incomplete_details: { reason: 'max_output_tokens' },
            }),
          }),
        ]);
      const resp = await client.responses.create({ model: 'gpt-5', input: 'x' });
      assert.equal(resp.status, 'incomplete');
      assert.equal(resp.incomplete_details?.reason, 'max_output_tokens');
      assert.deepEqual(resp.output, [ITEM_B]);
    });

    it('response.failed with a rate limit becomes HTTP 429 with the upstream message and Retry-After', async () => {
      backend.answer = (_rec, res) =>
        sse(res, [
          frame('response.created', 0, { response: responseObject('resp_f', 'in_progress') }),
          frame('response.failed', 1, {
            response: responseObject('resp_f', 'failed', {
              error: {
                code: 'rate_limit_exceeded',
                message: 'Rate limit reached for gpt-5. Please try again in 1.5s.',
              },
            }),
          }),
        ]);
      const err = await client.responses.create({ model: 'gpt-5', input: 'x' }).then(
        () => assert.fail('expected a RateLimitError'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof OpenAI.RateLimitError, `got ${String(err)}`);
      assert.equal(err.status, 429);
      assert.equal(err.code, 'rate_limit_exceeded');
      assert.match(err.message, /Rate limit reached for gpt-5/);
      assert.equal(err.headers?.get('retry-after'), '2');
      assert.equal(backend.requests.length > 0, true);
    });

    it('response.failed with server_error becomes HTTP 502 upstream_error with the upstream message', async () => {
      backend.answer = (_rec, res) =>
        sse(res, [
          frame('response.failed', 0, {
            response: responseObject('resp_f', 'failed', {
              error: { code: 'server_error', message: 'the model exploded' },
            }),
          }),
        ]);
      const res = await postJson(g.url, '/v1/responses', { model: 'gpt-5', input: 'x' });
      assert.equal(res.status, 502);
      assert.match(String(res.headers['content-type']), /application\/json/);
      const error = res.json().error as Record<string, unknown>;
      assert.equal(error.type, 'upstream_error');
      assert.equal(error.code, 'server_error');
      assert.equal(error.message, 'the model exploded');
    });

    it('an error event (nested, rate limit) becomes HTTP 429, not the generic 502', async () => {
      backend.answer = (_rec, res) =>
        sse(res, [
          frame('response.created', 0, { response: responseObject('resp_e', 'in_progress') }),
          frame('error', 1, {
            error: { type: 'tokens', code: 'rate_limit_exceeded', message: 'slow down please' },
          }),
        ]);
      const res = await postJson(g.url, '/v1/responses', { model: 'gpt-5', input: 'x' });
      assert.equal(res.status, 429);
      const error = res.json().error as Record<string, unknown>;
      assert.equal(error.code, 'rate_limit_exceeded');
      assert.equal(error.message, 'slow down please');
    });

    it('an EOF without a terminal event becomes an HTTP 502 error, never a 200', async () => {
      backend.answer = (_rec, res) =>
        sse(res, [
          frame('response.created', 0, { response: responseObject('resp_eof', 'in_progress') }),
          frame('response.output_item.done', 1, { output_index: 0, item: ITEM_B }),
        ]);
      const err = await client.responses.create({ model: 'gpt-5', input: 'x' }).then(
        () => assert.fail('expected an APIError'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof OpenAI.InternalServerError, `got ${String(err)}`);
      assert.equal(err.status, 502);
    });

    it('a stream:true client still gets the SSE stream', async () => {
      const res = await postJson(g.url, '/v1/responses', { model: 'gpt-5', input: 'x', stream: true });
      assert.equal(res.status, 200);
      assert.match(String(res.headers['content-type']), /^text\/event-stream/);
      assert.equal(parseSse(res.text()).at(-1)!.event, 'response.completed');
    });
  });

  describe('Codex-only events (case 22)', () => {
    it('are dropped for an SDK client: responses.stream().finalResponse() works', async () => {
      const stream = client.responses.stream({ model: 'gpt-5', input: 'say hello' });
      const types: string[] = [];
      stream.on('event', (e) => types.push(e.type));
      const final = await stream.finalResponse();
      assert.equal(final.output_text, 'Hello!');
      assert.ok(!types.includes('response.metadata' as never), types.join(','));
      assert.equal(types[0], 'response.created');
    });

    it('are dropped from the raw SSE for a client without a codex originator, keeping sequence numbers increasing', async () => {
      const res = await postJson(
        g.url,
        '/v1/responses',
        { model: 'gpt-5', input: 'x', stream: true },
        { originator: 'my_app' },
      );
      const events = parseSse(res.text());
      assert.ok(events.every((e) => e.event !== 'response.metadata'));
      const seqs = events.map((e) => e.json.sequence_number as number);
      assert.ok(
        seqs.every((s, i) => i === 0 || s > seqs[i - 1]!),
        `sequence numbers: ${seqs.join(',')}`,
      );
    });

    it('pass through for a Codex client (originator: codex_exec)', async () => {
      const res = await postJson(
        g.url,
        '/v1/responses',
        { model: 'gpt-5', input: 'x', stream: true },
        { originator: 'codex_exec' },
      );
      const events = parseSse(res.text());
      assert.equal(events[1]!.event, 'response.metadata');
      assert.equal(events.at(-1)!.event, 'response.completed');
    });

    for (const [who, originator] of [
      ['an SDK client (the event is dropped)', 'my_app'],
      ['a Codex client (the event is forwarded)', 'codex_exec'],
    ] as const) {
      it(`response.metadata keeps the pre-output hold for ${who}: an overload before output still fails over`, async () => {
        const fallback = await startUpstream((_req, res) => sse(res, happyStream('resp_fb')));
        const tokens2 = {
          access_token: accessToken('acct-hold'),
          refresh_token: 'rt-hold',
          account_id: 'acct-hold',
        };
        tokens.register(tokens2, 'acct-hold');
        const gw = await startGateway(
          codexGatewayConfig([
            { name: 'cx', type: 'codex', baseUrl: backend.baseUrl, tokenUrl: tokens.url, tokens: tokens2 },
            {
              name: 'oa',
              type: 'openai',
              baseUrl: fallback.url + '/v1',
              apiKey: 'sk-fallback-upstream',
              priority: 1,
            },
          ]),
        );
        backend.answer = (_rec, res) =>
          sse(res, [
            frame('response.created', 0, { response: responseObject('resp_ov', 'in_progress') }),
            frame('response.metadata', 1, { metadata: {} }),
            frame('response.in_progress', 2, { response: responseObject('resp_ov', 'in_progress') }),
            frame('response.failed', 3, {
              response: responseObject('resp_ov', 'failed', {
                error: { code: 'server_is_overloaded', message: 'Selected model is at capacity' },
              }),
            }),
          ]);
        try {
          const res = await postJson(
            gw.url,
            '/v1/responses',
            { model: 'gpt-5', input: 'x', stream: true },
            { originator },
          );
          assert.equal(res.status, 200);
          const types = parseSse(res.text()).map((e) => e.json.type);
          assert.deepEqual(
            types,
            happyStream().map((f) => /^event: (\S+)/.exec(f)![1]),
          );
          assert.match(res.text(), /resp_fb/);
          assert.doesNotMatch(res.text(), /resp_ov/);
        } finally {
          await gw.close();
          await fallback.close();
        }
      });
    }

    it('drops other non-union types too, named by the event line or only by the data', async () => {
      backend.answer = (_rec, res) =>
        sse(res, [
          frame('response.created', 0, { response: responseObject('resp_x', 'in_progress') }),
          frame('codex.rate_limits', 1, { primary: {} }),
          `data: ${JSON.stringify({ type: 'gateway.ping', sequence_number: 2 })}\n\n`,
          frame('keepalive', 3),
          frame('response.completed', 4, {
            response: responseObject('resp_x', 'completed', { output: [ITEM_B] }),
          }),
        ]);
      const res = await postJson(g.url, '/v1/responses', { model: 'gpt-5', input: 'x', stream: true });
      assert.deepEqual(
        parseSse(res.text()).map((e) => e.json.type),
        ['response.created', 'keepalive', 'response.completed'],
      );
    });
  });
});
