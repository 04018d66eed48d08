/**
 * The proxy leg end to end, on real loopback servers: what the client sends reaches the upstream
 * untouched (minus credentials and hop-by-hop headers), what the upstream answers reaches the client
 * byte for byte, and every failure before or after the first byte ends the way clients expect.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import type { Socket } from 'node:net';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { proxyConfig, upstreamKey, type UpstreamSpec } from '../helpers/proxy-config.js';
import {
  closedPort,
  connectRaw,
  deadline,
  parseHttpResponse,
  parseSse,
  postJson,
  rawHttpRequest,
  rawRequest,
  readToEnd,
} from '../helpers/raw.js';
import {
  frame,
  happyStream,
  MESSAGE_ITEM,
  responseObject,
  USAGE,
  writeSseHead,
  type UpstreamHandler,
} from '../helpers/upstream.js';

const h = new Harness();
const upstream = (handler: UpstreamHandler) => h.upstream(handler);
const gateway = (upstreams: (string | UpstreamSpec)[], opts: Parameters<typeof proxyConfig>[1] = {}) =>
  h.gateway(upstreams, opts);

/** Writes each piece as its own chunk, waiting for each to be flushed to the socket. */
async function writeEach(res: http.ServerResponse, pieces: string[]): Promise<void> {
  for (const p of pieces) await new Promise<void>((r) => res.write(p, () => r()));
}

const STREAM_BODY = { model: 'gpt-test', stream: true, input: 'hi' };

function failedLog(g: TestGateway): Record<string, unknown> {
  const line = g.logs.find((l) => l.msg === 'request failed');
  assert.ok(line, `no "request failed" log line in:\n${g.rawLogs()}`);
  return line;
}

describe('proxy', () => {
  afterEach(() => h.cleanup());

  describe('pass-through', () => {
    it('relays a streamed SSE body byte for byte, comments and odd spacing included', async () => {
      const created = JSON.stringify({
        type: 'response.created',
        sequence_number: 0,
        response: responseObject('resp_x', 'in_progress'),
      });
      const inProgress = `{ "type" : "response.in_progress",  "sequence_number":1, "response": ${JSON.stringify(responseObject('resp_x', 'in_progress'))} }`;
      const delta = JSON.stringify({
        type: 'response.output_text.delta',
        sequence_number: 2,
        item_id: 'msg_1',
        output_index: 0,
        content_index: 0,
        delta: 'Hé\u00a0llo ✓',
      });
      const pieces = [
        ': hello from upstream\n\n',
        `event:response.created\ndata:${created}\n\n`,
        `event:  response.in_progress\ndata:    ${inProgress}\n\n`,
        // One event split across three writes, with an id field and a comment line inside it.
        'id: 42\nevent: response.output_text.delta\n',
        `: inline comment\ndata: ${delta.slice(0, 20)}`,
        `${delta.slice(20)}\n\n`,
        ':\n\n',
        frame('response.completed', 3, {
          response: responseObject('resp_x', 'completed', { output: [MESSAGE_ITEM], usage: USAGE }),
        }),
      ];
      const up = await upstream(async (_req, res) => {
        writeSseHead(res, { 'openai-model': 'gpt-test-2025' });
        await writeEach(res, pieces);
        res.end();
      });
      const g = await gateway([up.url]);

      const r = await postJson(g.url, '/v1/responses', STREAM_BODY);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], 'text/event-stream');
      assert.equal(r.headers['openai-model'], 'gpt-test-2025');
      assert.equal(r.complete, true);
      assert.equal(r.error, undefined);
      assert.equal(r.body.equals(Buffer.from(pieces.join(''))), true, `client got:\n${r.text()}`);
    });

    it('relays a non-stream JSON response unchanged: bytes and content-type', async () => {
      const json = `{\n  "id": "resp_json",\n  "object" : "response",\n  "status":"completed",\n  "output": [ ${JSON.stringify(MESSAGE_ITEM)} ],\n  "x_unknown": {"é": [1, 2.50, null]}\n}\n`;
      const up = await upstream((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'x-custom-upstream': 'yes' });
        res.end(json);
      });
      const g = await gateway([up.url]);

      const r = await postJson(g.url, '/v1/responses', { model: 'gpt-test', input: 'hi' });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
      assert.equal(r.headers['x-custom-upstream'], 'yes');
      assert.equal(r.complete, true);
      assert.equal(r.body.equals(Buffer.from(json)), true, `client got:\n${r.text()}`);
    });

    it('forwards unknown request fields and unknown input items untouched', async () => {
      const up = await upstream((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(responseObject('resp_1', 'completed')));
      });
      const g = await gateway([up.url]);
      const body = {
        model: 'gpt-test',
        stream: false,
        store: false,
        client_metadata: { session: 'abc', nested: { deep: [1, { x: null }] } },
        prompt_cache_key: 'thread-1',
        some_future_field: { anything: true },
        tools: [{ type: 'namespace', name: 'ns', tools: [{ type: 'function', name: 'f', parameters: {} }] }],
        input: [
          { type: 'message', role: 'developer', content: [{ type: 'input_text', text: 'be brief' }] },
          { type: 'additional_tools', tools: [{ type: 'custom', name: 'apply_patch' }] },
          {
            type: 'message',
            role: 'user',
            content: 'hi',
            internal_chat_message_metadata_passthrough: { k: 'v' },
          },
          { type: 'compaction', encrypted_content: 'gAAAA…' },
          { type: 'compaction_trigger' },
          { type: 'totally_unknown_item', payload: [true, false, 0.5, 'ünïcode'] },
        ],
      };

      const r = await postJson(g.url, '/v1/responses', body);
      assert.equal(r.status, 200);
      assert.equal(up.requests.length, 1);
      assert.deepEqual(up.requests[0]!.json, body);
    });

    it('sends the upstream its own Authorization, never the client key', async () => {
      const up = await upstream((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
      const g = await gateway([up.url]);

      assert.equal((await postJson(g.url, '/v1/responses', { model: 'm', input: 'a' })).status, 200);
      // The same with x-api-key instead of Authorization.
      const r2 = await rawRequest(g.url, {
        path: '/v1/responses',
        headers: { 'x-api-key': CLIENT_KEY, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', input: 'b' }),
      });
      assert.equal(r2.status, 200);

      assert.equal(up.requests.length, 2);
      for (const rec of up.requests) {
        assert.equal(rec.headers.authorization, `Bearer ${upstreamKey('up1')}`);
        assert.equal(rec.headers['x-api-key'], undefined);
        assert.ok(!JSON.stringify(rec.headers).includes(CLIENT_KEY), 'the client key reached the upstream');
      }
    });

    it('strips hop-by-hop headers, including those named in Connection', async () => {
      const up = await upstream((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
      const g = await gateway([up.url]);

      // A raw socket, so that every header goes out exactly as written (Node's client refuses some).
      const socket = await connectRaw(g.url);
      const body = JSON.stringify({ model: 'm', input: 'a' });
      socket.write(
        rawHttpRequest(
          'POST',
          '/v1/responses',
          new URL(g.url).host,
          {
            authorization: `Bearer ${CLIENT_KEY}`,
            'content-type': 'application/json',
            connection: 'close, X-Foo, x-bar',
            'x-foo': 'hop',
            'x-bar': 'hop too',
            te: 'trailers',
            upgrade: 'h2c',
            'proxy-authorization': 'Basic c2VjcmV0OnNlY3JldA==',
            'proxy-connection': 'keep-alive',
            'keep-alive': 'timeout=5',
            trailer: 'x-checksum',
            'x-keep-me': 'end-to-end',
            'session-id': 'sess-1',
          },
          body,
        ),
      );
      const r = parseHttpResponse(await readToEnd(socket));
      assert.equal(r.status, 200);
      const h = up.requests[0]!.headers;
      for (const name of [
        'x-foo',
        'x-bar',
        'te',
        'upgrade',
        'proxy-authorization',
        'proxy-connection',
        'keep-alive',
        'trailer',
      ]) {
        assert.equal(h[name], undefined, `${name} reached the upstream`);
      }
      assert.ok(!/x-foo|x-bar/i.test(String(h.connection)), `connection: ${h.connection}`);
      // End-to-end headers still go through.
      assert.equal(h['x-keep-me'], 'end-to-end');
      assert.equal(h['session-id'], 'sess-1');
    });

    it('maps each client path to {base path}/responses or /responses/compact, query included', async () => {
      const up = await upstream((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
      const g = await gateway([up.url]);
      const cases: [string, string][] = [
        ['/v1/responses', '/v1/responses'],
        ['/responses', '/v1/responses'],
        ['/backend-api/codex/responses', '/v1/responses'],
        ['/v1/responses/compact', '/v1/responses/compact'],
        ['/responses/compact', '/v1/responses/compact'],
        ['/v1/responses?api-version=2025-01', '/v1/responses?api-version=2025-01'],
      ];
      for (const [clientPath] of cases)
        assert.equal((await postJson(g.url, clientPath, { model: 'm', input: 'x' })).status, 200, clientPath);
      assert.deepEqual(
        up.requests.map((r) => `${r.method} ${r.url}`),
        cases.map(([, upstreamPath]) => `POST ${upstreamPath}`),
      );

      // A deeper base path, written with a trailing slash.
      const g2 = await gateway([{ url: up.url, basePath: '/openai/deployments/x/' }]);
      assert.equal((await postJson(g2.url, '/v1/responses', { model: 'm', input: 'x' })).status, 200);
      assert.equal((await postJson(g2.url, '/v1/responses/compact', { model: 'm', input: 'x' })).status, 200);
      assert.deepEqual(
        up.requests.slice(-2).map((r) => r.url),
        ['/openai/deployments/x/responses', '/openai/deployments/x/responses/compact'],
      );
    });

    it('keeps the upstream connection alive across sequential requests', async () => {
      const ports: number[] = [];
      const up = await upstream((req, res) => {
        ports.push(req.socket.remotePort!);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(responseObject('resp_ka', 'completed')));
      });
      let connections = 0;
      up.server.on('connection', () => connections++);
      const g = await gateway([up.url]);

      for (let i = 0; i < 4; i++) {
        const r = await postJson(g.url, '/v1/responses', { model: 'm', input: String(i) });
        assert.equal(r.status, 200);
      }
      assert.equal(up.requests.length, 4);
      assert.equal(connections, 1, 'each request opened a new upstream connection');
      assert.equal(new Set(ports).size, 1);
      for (const rec of up.requests) assert.notEqual(rec.headers.connection, 'close');
    });
  });

  describe('request validation', () => {
    for (const mode of ['content-length', 'chunked'] as const) {
      it(`answers 413 with an OpenAI error for a body over server.bodyLimit (${mode})`, async () => {
        const up = await upstream((_req, res) => void res.end('{}'));
        const g = await gateway([up.url], { server: { bodyLimit: '1kb' } });
        const big = JSON.stringify({ model: 'm', input: 'x'.repeat(3000) });
        const headers = { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' };
        const r =
          mode === 'content-length'
            ? await rawRequest(g.url, { path: '/v1/responses', headers, body: big })
            : await rawRequest(g.url, {
                path: '/v1/responses',
                headers,
                chunks: [big.slice(0, 700), big.slice(700, 1400), big.slice(1400)],
              });
        assert.equal(r.status, 413);
        assert.match(String(r.headers['content-type']), /^application\/json/);
        const err = r.json().error as Record<string, unknown>;
        assert.equal(err.type, 'invalid_request_error');
        assert.equal(err.code, 'request_too_large');
        assert.match(String(err.message), /larger than the limit of 1024 bytes/);
        assert.equal(up.requests.length, 0);
      });
    }

    it('answers 400 invalid_request_error for a body that is not JSON', async () => {
      const up = await upstream((_req, res) => void res.end('{}'));
      const g = await gateway([up.url]);
      const r = await postJson(g.url, '/v1/responses', '{"model": "m", "input": ');
      assert.equal(r.status, 400);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      const err = r.json().error as Record<string, unknown>;
      assert.equal(err.type, 'invalid_request_error');
      assert.match(String(err.message), /not valid JSON/);
      assert.equal(up.requests.length, 0);
    });
  });

  describe('upstream errors before the first byte', () => {
    it('passes an upstream 400 through unchanged and does not try another upstream', async () => {
      const body =
        '{\n  "error": {"message": "input too long", "type": "invalid_request_error", "param": "input", "code": "context_length_exceeded"}\n}';
      const handler: UpstreamHandler = (_req, res) => {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(body);
      };
      const up1 = await upstream(handler);
      const up2 = await upstream(handler);
      const g = await gateway([
        { url: up1.url, priority: 0 },
        { url: up2.url, priority: 1 },
      ]);
      const r = await postJson(g.url, '/v1/responses', STREAM_BODY);
      assert.equal(r.status, 400);
      assert.equal(r.headers['content-type'], 'application/json');
      assert.equal(r.text(), body);
      assert.equal(up1.requests.length + up2.requests.length, 1);
    });

    it('passes a 429 with Retry-After through with its body and headers (one upstream)', async () => {
      const body = JSON.stringify({
        error: {
          message: 'Rate limit reached. Please try again in 7s.',
          type: 'requests',
          param: null,
          code: 'rate_limit_exceeded',
        },
      });
      const up = await upstream((_req, res) => {
        res.writeHead(429, {
          'content-type': 'application/json',
          'retry-after': '7',
          'retry-after-ms': '7000',
        });
        res.end(body);
      });
      const g = await gateway([up.url]);
      const r = await postJson(g.url, '/v1/responses', STREAM_BODY);
      assert.equal(r.status, 429);
      assert.equal(r.headers['retry-after'], '7');
      assert.equal(r.headers['retry-after-ms'], '7000');
      assert.equal(r.text(), body);
      assert.equal(up.requests.length, 1);
    });

    it('answers a 5xx OpenAI-shaped JSON error when the only upstream fails with 500', async () => {
      const up = await upstream((_req, res) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('Internal Server Error');
      });
      const g = await gateway([up.url]);
      const r = await postJson(g.url, '/v1/responses', STREAM_BODY);
      assert.ok(r.status >= 500 && r.status < 600, `status ${r.status}`);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      const err = r.json().error as Record<string, unknown>;
      assert.equal(typeof err.message, 'string');
      assert.match(String(err.message), /500/);
      assert.equal(typeof err.type, 'string');
      assert.ok('code' in err && 'param' in err);
      assert.equal(up.requests.length, 1);
    });

    it('fails over to a second upstream when the first answers 500', async () => {
      const up1 = await upstream((_req, res) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            error: { message: 'boom', type: 'server_error', param: null, code: 'server_error' },
          }),
        );
      });
      const up2 = await upstream((_req, res) => {
        writeSseHead(res);
        res.end(happyStream('resp_up2').join(''));
      });
      const g = await gateway([
        { url: up1.url, priority: 0 },
        { url: up2.url, priority: 1 },
      ]);
      const r = await postJson(g.url, '/v1/responses', STREAM_BODY);
      assert.equal(r.status, 200);
      assert.equal(r.text(), happyStream('resp_up2').join(''));
      assert.equal(up1.requests.length, 1);
      assert.equal(up2.requests.length, 1);
      assert.deepEqual(up2.requests[0]!.json, STREAM_BODY);
      assert.equal(up2.requests[0]!.headers.authorization, `Bearer ${upstreamKey('up2')}`);
      const line = g.logs.find((l) => l.msg === 'request');
      assert.equal(line?.attempts, 2);
      assert.equal(line?.upstream, 'up2');
    });

    it('answers 503 JSON when the upstream refuses the connection', async () => {
      const port = await closedPort();
      const g = await gateway([`http://127.0.0.1:${port}`]);
      const r = await postJson(g.url, '/v1/responses', STREAM_BODY);
      assert.equal(r.status, 503);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      const err = r.json().error as Record<string, unknown>;
      assert.match(String(err.message), /refused/);
      assert.equal((failedLog(g).error as Record<string, unknown>).code, 'UPSTREAM_CONNECTION_REFUSED');
    });
  });

  describe('upstream dies mid-response', () => {
    it('ends a Responses stream with one response.failed (server_error, next sequence_number)', async () => {
      // A content event first: after output, a loss can only end the stream (before it, see failover tests).
      const sent = [
        frame('response.created', 0, { response: responseObject('resp_d', 'in_progress') }),
        frame('response.in_progress', 1, { response: responseObject('resp_d', 'in_progress') }),
        frame('response.output_text.delta', 2, {
          item_id: 'msg_1',
          output_index: 0,
          content_index: 0,
          delta: 'Hel',
        }),
      ];
      const up = await upstream(async (_req, res) => {
        writeSseHead(res);
        await writeEach(res, sent);
        (res.socket as Socket).destroy();
      });
      const g = await gateway([up.url]);

      const r = await deadline(
        postJson(g.url, '/v1/responses', STREAM_BODY),
        5000,
        'the client stream never ended',
      );
      assert.equal(r.status, 200);
      assert.equal(r.complete, true, 'the stream should end with a terminal event, not be cut');
      const text = r.text();
      assert.ok(
        text.startsWith(sent.join('')),
        `the events before the loss were not forwarded intact:\n${text}`,
      );
      const events = parseSse(text);
      assert.deepEqual(
        events.map((e) => e.json.type),
        // The default errorEvent announces it.
        [
          'response.created',
          'response.in_progress',
          'response.output_text.delta',
          'error',
          'response.failed',
        ],
      );
      const failed = events[4]!;
      assert.equal(failed.event, 'response.failed');
      assert.equal(failed.json.sequence_number, 4);
      const response = failed.json.response as Record<string, unknown>;
      assert.equal(response.status, 'failed');
      assert.deepEqual(response.error, { code: 'server_error', message: 'upstream connection lost' });
      assert.equal((failedLog(g).error as Record<string, unknown>).code, 'UPSTREAM_CONNECTION_LOST');
    });

    it('an upstream that dies after its headers but before any event → 502 JSON, not a 200 opening with response.failed', async () => {
      const up = await upstream((_req, res) => {
        // A 200 SSE head straight onto the socket, then the connection drops before any body byte.
        const socket = res.socket as Socket;
        socket.write(
          'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n',
          () => socket.destroy(),
        );
      });
      const g = await gateway([up.url]);
      const r = await deadline(
        postJson(g.url, '/v1/responses', STREAM_BODY),
        5000,
        'the client response never ended',
      );
      assert.equal(r.status, 502);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      const err = r.json().error as Record<string, unknown>;
      assert.equal(err.message, 'upstream connection lost');
      assert.equal(err.code, 'server_error');
      assert.equal((failedLog(g).error as Record<string, unknown>).code, 'UPSTREAM_CONNECTION_LOST');
    });

    // A JSON answer is held until complete (issue 11 item 9): a cut one is an error before any output.
    it('a JSON response that dies mid-body (content-length) → 502, none of the cut body, no hang', async () => {
      const full = JSON.stringify(
        responseObject('resp_cut', 'completed', { output: [MESSAGE_ITEM], usage: USAGE }),
      );
      const part = full.slice(0, 200);
      const up = await upstream(async (_req, res) => {
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(full)),
        });
        await writeEach(res, [part]);
        (res.socket as Socket).destroy();
      });
      const g = await gateway([up.url]);
      const r = await deadline(
        postJson(g.url, '/v1/responses', { model: 'm', input: 'x' }),
        5000,
        'the client response never ended',
      );
      assert.equal(r.status, 502, r.text());
      assert.equal(r.complete, true);
      assert.match(String((r.json().error as Record<string, unknown>).message), /upstream connection lost/);
      assert.ok(!r.text().includes('resp_cut'));
    });

    it('a chunked JSON response that dies mid-body → 502, never a clean 200', async () => {
      const part = '{"id":"resp_cut","object":"response","output":[';
      const up = await upstream(async (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        await writeEach(res, [part]);
        (res.socket as Socket).destroy();
      });
      const g = await gateway([up.url]);
      const r = await deadline(
        postJson(g.url, '/v1/responses', { model: 'm', input: 'x' }),
        5000,
        'the client response never ended',
      );
      assert.equal(r.status, 502, r.text());
      assert.equal(r.complete, true);
      assert.match(String((r.json().error as Record<string, unknown>).message), /upstream connection lost/);
      assert.ok(!r.text().includes('resp_cut'));
    });
  });
});

describe('proxy: the upstream host is never the client’s choice', () => {
  afterEach(() => h.cleanup());

  it('a path like //evil.example/x on a route without a fixed upstream path stays a path on the upstream', async () => {
    const up = await upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
      res.end('{}');
    });
    const plugin = new URL('../fixtures/plugins/catch-all-route.js', import.meta.url).pathname;
    const yaml = proxyConfig([{ url: up.url, basePath: '' }]).replace(
      'plugins:\n',
      `plugins:\n  - ${plugin}\n`,
    );
    const g = h.track(await startGateway(yaml));
    // Raw bytes to the gateway's own socket: an HTTP client would resolve `//evil.example` as a host.
    const socket = await connectRaw(g.url);
    socket.write(
      rawHttpRequest(
        'POST',
        '//evil.example/steal',
        new URL(g.url).host,
        {
          authorization: `Bearer ${CLIENT_KEY}`,
          'content-type': 'application/json',
          connection: 'close',
        },
        '{"model":"m"}',
      ),
    );
    const reply = parseHttpResponse(await readToEnd(socket));
    assert.equal(reply.status, 200);
    assert.equal(up.requests.length, 1, 'the configured upstream got the request');
    assert.equal(up.requests[0]!.url, '//evil.example/steal');
  });
});
