/**
 * plugin dashboard, secrets: client keys, upstream keys, OAuth tokens (configured and minted at
 * run time) and the admin token never appear in a feed message or a page, even when an upstream
 * echoes a key in its error message or a client puts one in a field the dashboard shows.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import YAML from 'yaml';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import {
  ADMIN_TOKEN,
  get,
  login,
  openFeed,
  type FeedClient,
  type FeedRequest,
} from '../helpers/dashboard-feed.js';
import { accessToken, idToken } from '../helpers/codex-jwt.js';
import { startTokenServer, type TokenServer } from '../helpers/codex-token-server.js';
import { startCodexBackend, type CodexBackend } from '../helpers/codex-backend.js';
import { frame, happyStream, startUpstream, writeSseHead, type TestUpstream } from '../helpers/upstream.js';
import { postJson } from '../helpers/raw.js';

const UPSTREAM_KEY = 'sk-upstream-dashboard-echo-0123456789';
const OTHER_CLIENT_KEY = 'other-client-key-9876543210';
const REFRESH_TOKEN = 'rt-dashboard-initial-secret-0123';
const ACCOUNT = 'acct-dashboard-secret';

/** The bearer token of an upstream request. */
const bearerOf = (headers: http.IncomingHttpHeaders) =>
  String(headers.authorization ?? '').replace(/^Bearer /, '');

describe('plugin dashboard: no secret in any message', () => {
  let tokens: TokenServer;
  let backend: CodexBackend;
  let up1: TestUpstream;
  let g: TestGateway;
  const access = accessToken(ACCOUNT, 60); // due for a refresh at once: a new token is minted at run time
  const id = idToken(ACCOUNT);

  before(async () => {
    tokens = await startTokenServer();
    tokens.register({ access_token: access, refresh_token: REFRESH_TOKEN }, ACCOUNT);
    backend = await startCodexBackend(tokens.accepts);
    // An openai upstream that misbehaves on request: it echoes the key it was sent.
    up1 = await startUpstream(async (req, res, rec) => {
      const key = bearerOf(rec.headers);
      const which = String(req.headers['x-request-id'] ?? '');
      if (which.startsWith('echo-401')) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            error: {
              message: `Incorrect API key provided: ${key}.`,
              type: 'invalid_request_error',
              code: 'invalid_api_key',
            },
          }),
        );
      } else if (which.startsWith('echo-429')) {
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '30' });
        res.end(
          JSON.stringify({
            error: {
              message: `Rate limit reached for key ${key}`,
              type: 'requests',
              code: 'rate_limit_exceeded',
            },
          }),
        );
      } else if (which.startsWith('echo-stream')) {
        writeSseHead(res);
        const frames = happyStream('resp_echo');
        res.write(frames.slice(0, 5).join(''));
        await new Promise((r) => setTimeout(r, 5));
        res.end(
          frame('error', 5, {
            error: { type: 'server_error', code: 'server_error', message: `boom with ${key}` },
          }),
        );
      } else {
        writeSseHead(res);
        res.end(happyStream('resp_ok').join(''));
      }
    });
    const yaml = YAML.stringify({
      server: { host: '127.0.0.1', port: 0 },
      auth: {
        keys: [
          { name: 'tester', key: '${TAPGATE_TEST_KEY}' },
          { name: 'other', key: OTHER_CLIENT_KEY },
        ],
      },
      upstreams: [
        { name: 'up1', type: 'openai', baseUrl: `${up1.url}/v1`, apiKey: UPSTREAM_KEY, models: ['gpt-test'] },
        {
          name: 'cx',
          type: 'codex',
          baseUrl: backend.baseUrl,
          tokenUrl: tokens.url,
          models: ['gpt-codex'],
          tokens: { access_token: access, refresh_token: REFRESH_TOKEN, id_token: id, account_id: ACCOUNT },
        },
      ],
      plugins: [
        'responses-routes',
        'request-id',
        'error-codes',
        { name: 'dashboard', options: { token: '${TAPGATE_ADMIN_TOKEN}' } },
      ],
    });
    g = await startGateway(yaml, { TAPGATE_ADMIN_TOKEN: ADMIN_TOKEN });
  });
  after(async () => {
    await g.close();
    await up1.close();
    await backend.close();
    await tokens.close();
  });

  it('scans every feed message, the page and the login form for each configured secret', async () => {
    const watcher = await openFeed(g.url);
    await watcher.message((m) => m.type === 'snapshot');
    const send = (reqId: string, body: Record<string, unknown>, key = CLIENT_KEY) =>
      postJson(
        g.url,
        '/v1/responses',
        { stream: true, input: 'hi', ...body },
        {
          'x-request-id': reqId,
          authorization: `Bearer ${key}`,
        },
      );

    assert.equal((await send('ok-1', { model: 'gpt-test' })).status, 200);
    assert.equal((await send('ok-other', { model: 'gpt-test' }, OTHER_CLIENT_KEY)).status, 200);
    assert.equal((await send('cx-ok', { model: 'gpt-codex' })).status, 200);
    assert.equal(tokens.requests.length, 1, 'the codex token was refreshed');
    const minted = bearerOf(backend.requests.at(-1)!.headers);
    assert.notEqual(minted, access);
    // The codex backend echoes the token minted at run time, which no config holds.
    backend.answer = (rec, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: {
            message: `Bad token ${bearerOf(rec.headers)}`,
            type: 'invalid_request_error',
            code: 'bad_token',
          },
        }),
      );
    };
    assert.equal((await send('cx-echo', { model: 'gpt-codex' })).status, 400);
    backend.answer = undefined;
    assert.equal((await send('echo-401', { model: 'gpt-test' })).status, 401);
    const midStream = await send('echo-stream', { model: 'gpt-test' });
    assert.equal(midStream.status, 200);
    assert.ok(midStream.text().includes('response.failed'));
    // Secrets in fields the client controls: the model (echoed in the error too), the request id.
    assert.equal((await send('model-secret', { model: ADMIN_TOKEN })).status, 503);
    const keyAsId = await send(UPSTREAM_KEY, { model: 'gpt-test' });
    assert.equal(keyAsId.status, 200);
    // A request id that is a secret is not adopted (it would be echoed, logged and forwarded).
    const generatedId = String(keyAsId.headers['x-request-id']);
    assert.match(generatedId, /^[0-9a-f-]{36}$/);
    assert.equal((await send('bad-client-key', { model: 'gpt-test' }, `wrong-${CLIENT_KEY}`)).status, 401);
    assert.equal((await send('echo-429', { model: 'gpt-test' })).status, 429);

    const ids = [
      generatedId,
      'ok-1',
      'ok-other',
      'cx-ok',
      'cx-echo',
      'echo-401',
      'echo-stream',
      'model-secret',
      'bad-client-key',
      'echo-429',
    ];
    await watcher.until(
      (s) => ids.every((i) => s.requests.get(i)?.state === 'ok' || s.requests.get(i)?.state === 'error'),
      'every request settled',
    );
    await watcher.until(
      (s) => s.upstreams[0]?.state === 'cooling',
      'up1 cooling with the echoed key as its reason',
    );
    // A late viewer's snapshot holds it all at once.
    const late: FeedClient = await openFeed(g.url);
    const snapshot = await late.message((m) => m.type === 'snapshot');
    await late.close();

    // The scrubbing was exercised: each echo is there, with the secret masked.
    const byId = new Map((snapshot.requests as FeedRequest[]).map((r) => [r.id, r]));
    assert.equal(byId.get('echo-401')!.error!.message, 'Incorrect API key provided: [redacted].');
    assert.equal(byId.get('echo-stream')!.error!.message, 'boom with [redacted]');
    assert.equal(byId.get('cx-echo')!.error!.message, 'Bad token [redacted]');
    assert.equal(byId.get('model-secret')!.model, '[redacted]');
    assert.match(byId.get('model-secret')!.error!.message, /No upstream serves model \[redacted\]/);
    assert.ok(byId.has(generatedId), 'the request whose id was a key, under a generated id');
    assert.equal(byId.get('ok-other')!.client, 'other');
    const up = (snapshot.upstreams as { name: string; reason: string; lastError: { message: string } }[])[0]!;
    assert.equal(up.reason, 'gpt-test: Rate limit reached for key [redacted]');
    assert.match(up.lastError.message, /\[redacted\]/);

    const page = await get(g.url, '/dashboard', { authorization: `Bearer ${ADMIN_TOKEN}` });
    assert.equal(page.status, 200);
    const form = await get(g.url, '/dashboard');
    const loggedIn = await login(g.url, ADMIN_TOKEN);
    const failed = await login(g.url, `${ADMIN_TOKEN}-wrong`);

    const secrets: [string, string][] = [
      ['client key', CLIENT_KEY],
      ['second client key', OTHER_CLIENT_KEY],
      ['upstream apiKey', UPSTREAM_KEY],
      ['codex access_token', access],
      ['codex refresh_token', REFRESH_TOKEN],
      ['codex id_token', id],
      ['codex account_id', ACCOUNT],
      ['access token minted at run time', minted],
      ['admin token', ADMIN_TOKEN],
    ];
    const texts: [string, string][] = [
      ...watcher.raw.map((t, i): [string, string] => [`watcher message ${i}`, t]),
      ...late.raw.map((t, i): [string, string] => [`late message ${i}`, t]),
      ['page', page.text()],
      ['login form', form.text()],
      ['login answer', JSON.stringify(loggedIn)],
      ['failed login answer', JSON.stringify(failed)],
    ];
    assert.ok(watcher.raw.length >= 2);
    for (const [what, text] of texts)
      for (const [name, secret] of secrets) assert.ok(!text.includes(secret), `${what} contains the ${name}`);
    await watcher.close();
  });
});
