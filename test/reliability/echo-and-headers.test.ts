/**
 * What the gateway repeats and what it lets through (issue 11, items 5, 12 and 13).
 * - Item 5: client-chosen text (an 8 MB model name, a 15 KB path, a 2 MB upstream message) is cut to
 *   a bound in the access line, in error messages and in every other log line.
 * - Item 12: a client does not choose whose organization or project pays (unless the upstream allows
 *   it), underscore spellings of framing and forwarding headers never go upstream, and a client's
 *   `x-client-request-id` goes upstream only when it is sane.
 * - Item 13: upstream headers that speak for the upstream's own origin (redirects, CORS grants,
 *   authentication challenges, HSTS, Alt-Svc, cookies) never reach the client.
 */
import assert from 'node:assert/strict';
import { basicConfig, CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { parseSse, postJson, rawRequest } from '../helpers/raw.js';
import {
  frame,
  happyStream,
  startUpstream,
  writeSseHead,
  type TestUpstream,
  type UpstreamHandler,
} from '../helpers/upstream.js';

/** Longest access line any case may produce (the bounded fields are 256 and 1024 characters). */
const MAX_ACCESS_LINE = 4096;

let handler: UpstreamHandler;
let up: TestUpstream;
let g: TestGateway;

/** The access line of the request with this `x-request-id`. */
function accessLine(id: string): string {
  const line = g
    .rawLogs()
    .split('\n')
    .find((l) => l.includes(`"reqId":"${id}"`) && l.includes('"outcome"'));
  assert.ok(line !== undefined, `no access line for ${id}`);
  return line;
}

describe('reliability: bounded echoes and the header policy (issue 11)', () => {
  before(async () => {
    up = await startUpstream((req, res, rec) => handler(req, res, rec));
    g = await startGateway(basicConfig(up.url, '  - openai-upstream\n'));
  });
  after(async () => {
    await g.close();
    await up.close();
  });

  describe('item 5: client-chosen text is cut wherever it is repeated', () => {
    it('an 8 MB model name: the access line stays short, and valid JSON', async () => {
      handler = (_req, res) => {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'model not found', type: 'invalid_request_error' } }));
      };
      const model = 'm'.repeat(8 * 1024 * 1024);
      const r = await postJson(
        g.url,
        '/v1/responses',
        { model, input: 'hi' },
        { 'x-request-id': 'echo-model' },
      );
      assert.equal(r.status, 404);
      const line = accessLine('echo-model');
      assert.ok(line.length < MAX_ACCESS_LINE, `access line of ${line.length} chars`);
      const parsed = JSON.parse(line) as { model: string };
      assert.ok(parsed.model.startsWith('mmmm') && parsed.model.length <= 300, parsed.model.slice(-40));
    });

    it('an upstream that echoes a 100 KB model name in its error: the logged message is bounded', async () => {
      handler = (_req, res, rec) => {
        res.writeHead(404, { 'content-type': 'application/json' });
        const message = `The model \`${String(rec.json?.model)}\` does not exist`;
        res.end(
          JSON.stringify({ error: { message, type: 'invalid_request_error', code: 'model_not_found' } }),
        );
      };
      const model = 'q'.repeat(100 * 1024);
      const r = await postJson(
        g.url,
        '/v1/responses',
        { model, input: 'hi' },
        { 'x-request-id': 'echo-upstream' },
      );
      assert.equal(r.status, 404);
      const line = accessLine('echo-upstream');
      assert.ok(line.length < MAX_ACCESS_LINE, `access line of ${line.length} chars`);
      assert.match(line, /"message":"The model `qqq/);
    });

    it('a 15 KB path: the 404 message and the access line quote at most 256 characters of it', async () => {
      const path = '/' + 'p'.repeat(15 * 1024);
      const r = await rawRequest(g.url, {
        method: 'GET',
        path,
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'x-request-id': 'echo-path' },
      });
      assert.equal(r.status, 404);
      const message = (r.json().error as { message: string }).message;
      assert.ok(message.length < 400, `404 message of ${message.length} chars`);
      assert.match(message, /^No route for GET \/ppp.*more characters\)$/);
      assert.ok(accessLine('echo-path').length < MAX_ACCESS_LINE);
    });

    it('a 2 MB message in an upstream error event after output: response.failed and the log are bounded', async () => {
      const frames = happyStream('resp_echo');
      handler = (_req, res) => {
        writeSseHead(res);
        res.end(
          frames.slice(0, 5).join('') +
            frame('error', 5, { code: 'server_error', message: 'x'.repeat(2 * 1024 * 1024) }),
        );
      };
      const r = await postJson(
        g.url,
        '/v1/responses',
        { model: 'gpt-test', input: 'hi', stream: true },
        { 'x-request-id': 'echo-event' },
      );
      const failed = parseSse(r.text()).find((e) => e.event === 'response.failed');
      const message = (failed?.json.response as { error: { message: string } }).error.message;
      assert.ok(message.length <= 4096, `response.failed message of ${message.length} chars`);
      assert.ok(r.body.length < 64 * 1024, `the stream carried ${r.body.length} bytes`);
      assert.ok(accessLine('echo-event').length < MAX_ACCESS_LINE);
    });

    it('any other log line with a huge value is cut per value and stays valid JSON', () => {
      g.gw.logger.warn(
        { plugin: 'echo-test', model: 'z'.repeat(1024 * 1024) },
        'a plugin logged a whole field',
      );
      g.gw.logger.flush();
      const line = g
        .rawLogs()
        .split('\n')
        .find((l) => l.includes('a plugin logged a whole field'));
      assert.ok(line !== undefined);
      assert.ok(line.length < 4096, `log line of ${line.length} chars`);
      const parsed = JSON.parse(line) as { model: string; plugin: string };
      assert.equal(parsed.plugin, 'echo-test');
      assert.match(parsed.model, /^z+…\(\d+ more characters\)$/);
    });
  });

  describe('item 12: what a client may not send upstream', () => {
    const ok: UpstreamHandler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'resp_h', object: 'response', status: 'completed', output: [] }));
    };

    it('OpenAI-Organization and OpenAI-Project from the client are dropped', async () => {
      handler = ok;
      const r = await postJson(
        g.url,
        '/v1/responses',
        { model: 'gpt-test', input: 'hi' },
        { 'openai-organization': 'org-client', 'openai-project': 'proj_client' },
      );
      assert.equal(r.status, 200);
      const seen = up.requests.at(-1)!.headers;
      assert.equal(seen['openai-organization'], undefined);
      assert.equal(seen['openai-project'], undefined);
      assert.equal(seen.authorization, 'Bearer sk-upstream-secret-abcdef');
    });

    it('passBillingHeaders lets them through where the upstream sets none; a configured one wins', async () => {
      const g2 = await startGateway(
        basicConfig(up.url).replace(
          'apiKey: sk-upstream-secret-abcdef',
          'apiKey: sk-upstream-secret-abcdef\n    organization: org-configured\n    passBillingHeaders: true',
        ),
      );
      try {
        await postJson(
          g2.url,
          '/v1/responses',
          { model: 'gpt-test', input: 'hi' },
          { 'openai-organization': 'org-client', 'openai-project': 'proj_client' },
        );
        const seen = up.requests.at(-1)!.headers;
        assert.equal(seen['openai-organization'], 'org-configured');
        assert.equal(seen['openai-project'], 'proj_client');
      } finally {
        await g2.close();
      }
    });

    it('underscore twins of framing and forwarding headers are dropped; other underscore names pass', async () => {
      handler = ok;
      const r = await rawRequest(g.url, {
        path: '/v1/responses',
        headers: {
          authorization: `Bearer ${CLIENT_KEY}`,
          'content-type': 'application/json',
          content_length: '5',
          transfer_encoding: 'chunked',
          x_forwarded_host: 'evil.example',
          x_forwarded_for: '10.9.9.9',
          session_id: 'sess-underscore',
        },
        body: JSON.stringify({ model: 'gpt-test', input: 'hi' }),
      });
      assert.equal(r.status, 200);
      const seen = up.requests.at(-1)!.headers;
      for (const name of ['content_length', 'transfer_encoding', 'x_forwarded_host', 'x_forwarded_for'])
        assert.equal(seen[name], undefined, `${name} reached the upstream`);
      assert.equal(seen.session_id, 'sess-underscore');
    });

    it('x-client-request-id goes upstream when sane, and is dropped when it is not', async () => {
      handler = ok;
      await postJson(
        g.url,
        '/v1/responses',
        { model: 'gpt-test', input: 'hi' },
        { 'x-client-request-id': 'thread-42' },
      );
      assert.equal(up.requests.at(-1)!.headers['x-client-request-id'], 'thread-42');
      for (const bad of ['x'.repeat(300), 'has space', 'semi;colon']) {
        await postJson(
          g.url,
          '/v1/responses',
          { model: 'gpt-test', input: 'hi' },
          { 'x-client-request-id': bad },
        );
        assert.equal(up.requests.at(-1)!.headers['x-client-request-id'], undefined, bad.slice(0, 20));
      }
    });
  });

  describe('item 13: upstream headers that are not the upstream’s to set on the gateway’s origin', () => {
    const ORIGIN_HEADERS = {
      location: 'https://upstream.example/elsewhere',
      'content-location': 'https://upstream.example/v1/responses/1',
      'access-control-allow-origin': '*',
      'access-control-allow-credentials': 'true',
      'www-authenticate': 'Bearer realm="upstream"',
      'strict-transport-security': 'max-age=31536000; includeSubDomains',
      'alt-svc': 'h3=":443"; ma=86400',
      'clear-site-data': '"*"',
      refresh: '0; url=https://upstream.example',
      'set-cookie': 'upstream_session=abc; Path=/',
    };
    const KEPT = { 'x-ratelimit-remaining-requests': '99', 'openai-processing-ms': '12' };

    for (const stream of [true, false]) {
      it(`are dropped from a ${stream ? 'stream' : 'JSON answer'}; rate-limit and timing headers pass`, async () => {
        handler = (_req, res) => {
          if (stream) {
            writeSseHead(res, { ...ORIGIN_HEADERS, ...KEPT });
            res.end(happyStream('resp_headers').join(''));
          } else {
            res.writeHead(200, { 'content-type': 'application/json', ...ORIGIN_HEADERS, ...KEPT });
            res.end(JSON.stringify({ id: 'resp_h', object: 'response', status: 'completed', output: [] }));
          }
        };
        const r = await postJson(g.url, '/v1/responses', { model: 'gpt-test', input: 'hi', stream });
        assert.equal(r.status, 200);
        for (const name of Object.keys(ORIGIN_HEADERS))
          assert.equal(r.headers[name], undefined, `${name} reached the client`);
        for (const [name, value] of Object.entries(KEPT)) assert.equal(r.headers[name], value);
      });
    }

    it('an upstream 401 with a challenge: the client gets the error, not the upstream’s challenge', async () => {
      handler = (_req, res) => {
        res.writeHead(401, {
          'content-type': 'application/json',
          'www-authenticate': 'Bearer realm="upstream"',
          location: 'https://upstream.example/login',
        });
        res.end(
          JSON.stringify({
            error: { message: 'Invalid key', type: 'invalid_request_error', code: 'invalid_api_key' },
          }),
        );
      };
      const r = await postJson(g.url, '/v1/responses', { model: 'gpt-test', input: 'hi' });
      assert.equal(r.status, 401);
      assert.equal(r.headers['www-authenticate'], undefined);
      assert.equal(r.headers.location, undefined);
    });
  });
});
