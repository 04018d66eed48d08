import assert from 'node:assert/strict';
import net from 'node:net';
import { basicConfig, CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { happyStream, startUpstream, writeSseHead, type TestUpstream } from '../helpers/upstream.js';
import { matchResponsesRoute } from '../../plugins/responses-routes/routes.js';

const auth = { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' };

/** A streamed /v1/responses call: each frame's data, parsed. */
async function streamedData(url: string): Promise<Record<string, unknown>[]> {
  const res = await fetch(`${url}/v1/responses`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ model: 'm', input: 'x', stream: true }),
  });
  const frames = (await res.text()).trim().split('\n\n');
  return frames.map((f) => JSON.parse(f.split('data: ')[1]!) as Record<string, unknown>);
}

describe('plugin responses-routes', () => {
  describe('route table', () => {
    const positives: [string, string][] = [
      ['/v1/responses', 'responses'],
      ['/v1/responses/compact', 'responses.compact'],
      ['/responses', 'responses'],
      ['/responses/compact', 'responses.compact'],
      ['/backend-api/codex/responses', 'responses'],
      ['/backend-api/codex/responses/compact', 'responses.compact'],
      ['/v1/responses/', 'responses'],
      ['/backend-api/codex/responses/compact/', 'responses.compact'],
    ];
    for (const [path, kind] of positives) {
      it(`POST ${path} → ${kind}`, () => assert.equal(matchResponsesRoute('POST', path)?.kind, kind));
    }
    const negatives = [
      '/v1/responsesX',
      '/v1/chat/completions',
      '/v2/responses',
      '/v1/responses//',
      '/v1/responses/compactX',
      '/backend-api/responses',
      '/v1/v1/responses',
      '/',
    ];
    for (const path of negatives) {
      it(`POST ${path} is not a Responses route`, () =>
        assert.equal(matchResponsesRoute('POST', path), undefined));
    }
    it('GET on a Responses path is not proxied', () =>
      assert.equal(matchResponsesRoute('GET', '/v1/responses'), undefined));
  });

  describe('through the gateway', () => {
    let upstream: TestUpstream;
    let gateway: TestGateway;
    before(async () => {
      upstream = await startUpstream((_req, res, recorded) => {
        writeSseHead(res, { 'x-request-id': 'up-id-42' });
        if (recorded.json?.input === 'malformed') {
          res.end(happyStream().slice(0, 3).join('') + 'data: {oops\n\n');
          return;
        }
        for (const f of happyStream()) res.write(f);
        res.end();
      });
      const yaml = basicConfig(upstream.url)
        .replace(
          '    apiKey: sk-upstream-secret-abcdef',
          '    apiKey: sk-upstream-secret-abcdef\n    models: [gpt-a, gpt-b]',
        )
        .replace(
          '  - error-codes',
          '  - name: error-codes\n    options:\n      map: { upstream_error: bad_gateway }',
        );
      gateway = await startGateway(yaml);
    });
    after(async () => {
      await gateway.close();
      await upstream.close();
    });

    it('tolerates a query string and a trailing slash, forwarding to {base}/responses', async () => {
      const res = await fetch(`${gateway.url}/v1/responses/?api-version=x`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ model: 'gpt-a', input: 'hi', stream: true }),
      });
      assert.equal(res.status, 200);
      assert.match(await res.text(), /response\.completed/);
      assert.equal(upstream.requests.at(-1)!.url, '/v1/responses?api-version=x');
    });

    for (const path of ['/v1/responsesX', '/v1/chat/completions', '/v2/responses']) {
      it(`POST ${path} → 404 with an OpenAI-shaped body`, async () => {
        const res = await fetch(gateway.url + path, { method: 'POST', headers: auth, body: '{}' });
        assert.equal(res.status, 404);
        const body = (await res.json()) as { error: Record<string, unknown> };
        assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
      });
    }

    for (const path of ['/v1/models', '/models']) {
      it(`GET ${path} lists the models the upstreams serve`, async () => {
        const res = await fetch(gateway.url + path, { headers: auth });
        assert.equal(res.status, 200);
        const body = (await res.json()) as { object: string; data: { id: string; object: string }[] };
        assert.equal(body.object, 'list');
        assert.deepEqual(
          body.data.map((m) => [m.id, m.object]),
          [
            ['gpt-a', 'model'],
            ['gpt-b', 'model'],
          ],
        );
      });
    }

    it('GET /v1/models needs the client key', async () => {
      const res = await fetch(gateway.url + '/v1/models');
      assert.equal(res.status, 401);
    });

    it('a WebSocket upgrade on /responses/compact with the client key gets 426 (compaction is HTTP only), never 404', async () => {
      const head = await rawRequest(
        gateway.url,
        `GET /responses/compact HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${CLIENT_KEY}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
      );
      assert.match(head, /^HTTP\/1\.1 426 /);
      assert.match(head, /websocket_not_supported/);
    });

    it('a WebSocket upgrade elsewhere with the client key gets 404', async () => {
      const head = await rawRequest(
        gateway.url,
        `GET /elsewhere HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${CLIENT_KEY}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
      );
      assert.match(head, /^HTTP\/1\.1 404 /);
    });

    it('error-codes options.map overrides the table (upstream_error → bad_gateway)', async () => {
      const res = await fetch(`${gateway.url}/v1/responses`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ model: 'gpt-a', input: 'malformed', stream: true }),
      });
      const text = await res.text();
      const failed = JSON.parse(text.split('event: response.failed\ndata: ')[1]!) as {
        sequence_number: number;
        response: { error: { code: string } };
      };
      assert.equal(failed.response.error.code, 'bad_gateway');
      // The default errorEvent takes number 3, just before it.
      assert.match(text, /event: error\ndata: \{"type":"error","sequence_number":3,"code":"bad_gateway"/);
      assert.equal(failed.sequence_number, 4);
    });

    it('codes without a mapping pass through unchanged', async () => {
      const res = await fetch(`${gateway.url}/v1/responses`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ model: 'gpt-z', input: 'hi' }),
      });
      const body = (await res.json()) as { error: { code: string } };
      assert.equal(res.status, 503);
      assert.equal(body.error.code, 'no_upstream_available');
    });
  });
});

describe('plugin request-id', () => {
  let upstream: TestUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startUpstream((_req, res) => {
      writeSseHead(res, { 'x-request-id': 'up-id-42' });
      for (const f of happyStream()) res.write(f);
      res.end();
    });
    gateway = await startGateway(basicConfig(upstream.url));
  });
  after(async () => {
    await gateway.close();
    await upstream.close();
  });

  const post = (headers: Record<string, string> = {}) =>
    fetch(`${gateway.url}/v1/responses`, {
      method: 'POST',
      headers: { ...auth, ...headers },
      body: JSON.stringify({ model: 'm', input: 'hi', stream: true }),
    });

  it('accepts a sane inbound X-Request-Id, returns and forwards it, and logs with it', async () => {
    const res = await post({ 'x-request-id': 'client.trace:42-a_b' });
    await res.text();
    assert.equal(res.headers.get('x-request-id'), 'client.trace:42-a_b');
    assert.equal(res.headers.get('x-upstream-request-id'), 'up-id-42');
    assert.equal(upstream.requests.at(-1)!.headers['x-request-id'], 'client.trace:42-a_b');
    const line = gateway.logs.find((l) => l.reqId === 'client.trace:42-a_b' && l.msg === 'request');
    assert.ok(line, 'the request line carries the inbound id');
  });

  it('falls back to X-Client-Request-Id', async () => {
    const res = await post({ 'x-client-request-id': 'thread-123' });
    await res.text();
    assert.equal(res.headers.get('x-request-id'), 'thread-123');
  });

  for (const bad of ['has space', 'x'.repeat(129), 'semi;colon', 'quote"d', '']) {
    it(`replaces an insane id (${JSON.stringify(bad.slice(0, 12))}) with a generated UUID`, async () => {
      const res = await post({ 'x-request-id': bad });
      await res.text();
      assert.match(
        res.headers.get('x-request-id')!,
        /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
      );
    });
  }

  it('puts the id on error responses too, and derives synthesized response ids from it', async () => {
    const res = await fetch(`${gateway.url}/v1/responses`, {
      method: 'POST',
      headers: { ...auth, 'x-request-id': 'abc-def-123' },
      body: '{not json',
    });
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('x-request-id'), 'abc-def-123');
    const body = (await res.json()) as { error: { type: string; message: string } };
    assert.equal(body.error.type, 'invalid_request_error');
    assert.match(body.error.message, /not valid JSON/);
  });
});

function rawRequest(base: string, text: string): Promise<string> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(text));
    let data = '';
    socket.on('data', (d) => (data += d.toString()));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}

describe('plugin responses-routes, errorEvent (the default)', () => {
  let upstream: TestUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startUpstream((_req, res) => {
      writeSseHead(res);
      res.write(happyStream().slice(0, 3).join(''), () => res.socket?.destroy());
    });
    gateway = await startGateway(basicConfig(upstream.url));
  });
  after(async () => {
    await gateway.close();
    await upstream.close();
  });

  it('sends an error event with flat and nested fields, then response.failed, numbered in order', async () => {
    const data = await streamedData(gateway.url);
    assert.deepEqual(
      data.map((d) => [d.type, d.sequence_number]),
      [
        ['response.created', 0],
        ['response.in_progress', 1],
        ['response.output_item.added', 2],
        ['error', 3],
        ['response.failed', 4],
      ],
    );
    assert.equal(data[3]!.code, 'server_error');
    assert.equal(data[3]!.message, 'upstream connection lost');
    assert.deepEqual(data[3]!.error, {
      type: 'server_error',
      code: 'server_error',
      message: 'upstream connection lost',
      param: null,
    });
  });

  it('errorEvent: false leaves response.failed alone', async () => {
    const g = await startGateway(
      basicConfig(upstream.url).replace(
        '  - responses-routes',
        '  - name: responses-routes\n    options: { errorEvent: false }',
      ),
    );
    try {
      const data = await streamedData(g.url);
      assert.deepEqual(
        data.map((d) => [d.type, d.sequence_number]),
        [
          ['response.created', 0],
          ['response.in_progress', 1],
          ['response.output_item.added', 2],
          ['response.failed', 3],
        ],
      );
    } finally {
      await g.close();
    }
  });
});

describe('responses-routes event validation', () => {
  it('scans the top-level sequence_number without parsing the event', async () => {
    const { scanSequenceNumber } = await import('../../plugins/responses-routes/stream-events.js');
    assert.equal(scanSequenceNumber('{"type":"x","sequence_number":42,"item":{}}'), 42);
    assert.equal(scanSequenceNumber('{"type":"x","item":{"a":1},"sequence_number": 7}'), 7);
    assert.equal(scanSequenceNumber('{"type":"x"}'), -1);
    assert.equal(scanSequenceNumber('{"sequence_number":"7"}'), -1);
  });

  for (const mode of ['structural', 'json'] as const) {
    it(`${mode}: a cut event is not forwarded; response.failed follows what was`, async () => {
      const up = await startUpstream((_req, res) => {
        writeSseHead(res);
        res.end(
          happyStream().slice(0, 3).join('') +
            'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"Hel\n\n',
        );
      });
      const g = await startGateway(
        basicConfig(up.url).replace(
          '  - responses-routes',
          `  - name: responses-routes\n    options: { eventValidation: ${mode} }`,
        ),
      );
      try {
        const res = await fetch(`${g.url}/v1/responses`, {
          method: 'POST',
          headers: auth,
          body: JSON.stringify({ model: 'm', input: 'x', stream: true }),
        });
        const text = await res.text();
        assert.ok(!text.includes('"delta":"Hel'), 'the cut event must not reach the client');
        const failed = JSON.parse(text.split('event: response.failed\ndata: ')[1]!) as {
          sequence_number: number;
          response: { error: { message: string } };
        };
        // After the default errorEvent (3).
        assert.equal(failed.sequence_number, 4);
        assert.match(failed.response.error.message, /malformed event/);
      } finally {
        await g.close();
        await up.close();
      }
    });
  }

  it('json: a brace-balanced event that is not JSON is caught too', async () => {
    const up = await startUpstream((_req, res) => {
      writeSseHead(res);
      res.end(happyStream().slice(0, 3).join('') + 'event: response.output_text.delta\ndata: {not json}\n\n');
    });
    const g = await startGateway(
      basicConfig(up.url).replace(
        '  - responses-routes',
        '  - name: responses-routes\n    options: { eventValidation: json }',
      ),
    );
    try {
      const res = await fetch(`${g.url}/v1/responses`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ model: 'm', input: 'x', stream: true }),
      });
      const text = await res.text();
      assert.ok(!text.includes('data: {not json}'), 'the bad event must not be forwarded');
      assert.match(text, /event: response\.failed/);
    } finally {
      await g.close();
      await up.close();
    }
  });
});
