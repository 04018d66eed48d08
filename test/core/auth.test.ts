import assert from 'node:assert/strict';
import { ConfigError, parseConfig } from '../../core/config/config.js';
import { basicConfig, CLIENT_KEY, LogCapture, startGateway, type TestGateway } from '../helpers/gateway.js';
import { responseObject, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { createGateway } from '../../app/gateway.js';

const UPSTREAM_KEY = 'sk-upstream-secret-abcdef';
const SECOND_KEY = 'sk-second-client-9876543210';
const WRONG_KEY = 'sk-wrong-key-5555555555';

describe('client auth', () => {
  let upstream: TestUpstream;
  let tg: TestGateway;

  before(async () => {
    upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(responseObject('resp_auth', 'completed')));
    });
    // A second key, and the most verbose log level, for the secret scan.
    const yaml = basicConfig(upstream.url, 'log:\n  level: trace\n').replace(
      '      key: ${TAPGATE_TEST_KEY}\n',
      '      key: ${TAPGATE_TEST_KEY}\n    - name: second\n      key: ${SECOND_KEY}\n',
    );
    tg = await startGateway(yaml, { SECOND_KEY });
  });
  after(async () => {
    await tg?.close();
    await upstream?.close();
  });

  const post = (headers: Record<string, string>) =>
    fetch(`${tg.url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ model: 'gpt-test', input: 'hi' }),
    });

  async function expect401(res: Response, message: string): Promise<void> {
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer');
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await res.json(), {
      error: { message, type: 'authentication_error', param: null, code: 'invalid_api_key' },
    });
  }

  it('answers a request without a key with 401, an OpenAI error body and www-authenticate', async () => {
    const before = upstream.requests.length;
    await expect401(await post({}), 'Missing API key: send Authorization: Bearer <key> or x-api-key');
    const models = await fetch(`${tg.url}/v1/models`);
    await expect401(models, 'Missing API key: send Authorization: Bearer <key> or x-api-key');
    assert.equal(upstream.requests.length, before, 'nothing reached the upstream');
  });

  it('answers a wrong key with 401, in either header and with any scheme but Bearer', async () => {
    const before = upstream.requests.length;
    await expect401(await post({ authorization: `Bearer ${WRONG_KEY}` }), 'Incorrect API key provided');
    await expect401(await post({ 'x-api-key': WRONG_KEY }), 'Incorrect API key provided');
    await expect401(
      await post({ authorization: `Basic ${Buffer.from(`u:${CLIENT_KEY}`).toString('base64')}` }),
      'Incorrect API key provided',
    );
    // The key must match exactly: no prefix, no suffix.
    await expect401(await post({ authorization: `Bearer ${CLIENT_KEY}x` }), 'Incorrect API key provided');
    await expect401(
      await post({ authorization: `Bearer ${CLIENT_KEY.slice(0, -1)}` }),
      'Incorrect API key provided',
    );
    assert.equal(upstream.requests.length, before, 'nothing reached the upstream');
  });

  it('accepts Authorization: Bearer, and sends the upstream its own key instead', async () => {
    const arrived = upstream.nextRequest();
    const res = await post({ authorization: `Bearer ${CLIENT_KEY}` });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { id: string }).id, 'resp_auth');
    const got = await arrived;
    assert.equal(got.headers.authorization, `Bearer ${UPSTREAM_KEY}`);
    assert.equal(got.headers['x-api-key'], undefined);
    assert.equal(got.json?.model, 'gpt-test');
  });

  it('accepts the scheme in any case', async () => {
    const res = await post({ authorization: `bearer ${SECOND_KEY}` });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });

  it('accepts x-api-key, which never reaches the upstream', async () => {
    const arrived = upstream.nextRequest();
    const res = await post({ 'x-api-key': SECOND_KEY });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    const got = await arrived;
    assert.equal(got.headers['x-api-key'], undefined);
    assert.equal(got.headers.authorization, `Bearer ${UPSTREAM_KEY}`);
  });

  it('strips both client credentials when a client sends both', async () => {
    const arrived = upstream.nextRequest();
    const res = await post({ authorization: `Bearer ${CLIENT_KEY}`, 'x-api-key': SECOND_KEY });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    const got = await arrived;
    assert.deepEqual(
      [got.headers.authorization, got.headers['x-api-key']],
      [`Bearer ${UPSTREAM_KEY}`, undefined],
    );
    assert.ok(
      !JSON.stringify(got.headers).includes(CLIENT_KEY) && !JSON.stringify(got.headers).includes(SECOND_KEY),
    );
  });

  it('logs the name of the key that matched, and never a key', async () => {
    const res = await post({ 'x-api-key': SECOND_KEY });
    const id = res.headers.get('x-request-id');
    await res.arrayBuffer();
    // The access line is written by `finish`, after the response: wait for the gateway to be idle.
    await tg.close(5000);
    const line = tg.logs.find((l) => l.reqId === id && l.msg === 'request');
    assert.equal(line?.client, 'second');
    assert.ok(
      tg.logs.some((l) => l.client === 'tester'),
      'the first key was logged by name too',
    );
    const raw = tg.rawLogs();
    for (const secret of [CLIENT_KEY, SECOND_KEY, WRONG_KEY, UPSTREAM_KEY])
      assert.ok(!raw.includes(secret), `the logs contain ${secret}`);
  });
});

describe('client auth: no keys configured', () => {
  const noKeys = (host: string, upstreamUrl = 'http://127.0.0.1:9') => `server:
  host: '${host}'
  port: 0
auth:
  keys: []
upstreams:
  - name: up1
    type: openai
    baseUrl: ${upstreamUrl}/v1
    apiKey: ${UPSTREAM_KEY}
plugins:
  - responses-routes
`;

  it('refuses to boot on a non-loopback host, naming auth.keys', async () => {
    for (const host of ['0.0.0.0', '::', '192.0.2.10']) {
      const logs = new LogCapture();
      await assert.rejects(
        createGateway(parseConfig(noKeys(host), 'config.yaml', {}), { logDestination: logs }),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.equal(
            err.message,
            `config.yaml: invalid configuration\n  - config.yaml:5:3 auth.keys: no client keys are configured, so tapgate listens only on a loopback host; server.host is ${host}`,
          );
          assert.deepEqual(err.issues[0]?.path, ['auth', 'keys']);
          return true;
        },
      );
    }
  });

  it('boots on 127.0.0.1 with a warning, and lets requests through to the upstream with its own key', async () => {
    const upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(responseObject('resp_open', 'completed')));
    });
    const tg = await startGateway(noKeys('127.0.0.1', upstream.url));
    try {
      const warn = tg.logs.find(
        (l) =>
          l.msg === 'no client keys configured: accepting unauthenticated requests, on a loopback host only',
      );
      assert.ok(warn, 'the warning is logged');
      assert.equal(warn.level, 40);
      assert.equal(warn.host, '127.0.0.1');

      const arrived = upstream.nextRequest();
      const res = await fetch(`${tg.url}/v1/responses`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer whatever-the-client-sends' },
        body: JSON.stringify({ model: 'gpt-test', input: 'hi' }),
      });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      assert.equal((await arrived).headers.authorization, `Bearer ${UPSTREAM_KEY}`);
      assert.ok(!tg.rawLogs().includes(UPSTREAM_KEY));
      assert.ok(!tg.rawLogs().includes('whatever-the-client-sends'));
    } finally {
      await tg.close();
      await upstream.close();
    }
  });
});
