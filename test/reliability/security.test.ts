/**
 * Security (issue 7): who gets in, what crosses the proxy, and where it may go.
 *  - Every route needs a valid client key, however a wrong one is presented, the WebSocket upgrade
 *    included; the dashboard (page, assets, feed) needs the admin token, and a client key is not it.
 *  - The client's Authorization and x-api-key never reach the upstream, on every route and for both
 *    upstream types; hop-by-hop headers are stripped in both directions.
 *  - No open proxy: no Host, absolute-URI, header, CONNECT or userinfo trick makes the gateway open
 *    a connection anywhere but its configured upstream.
 *
 * Not repeated here: test/core/auth.test.ts (the 401 body, Bearer in any case, the key name in logs),
 * test/core/proxy.test.ts (hop-by-hop stripping on a request to /v1/responses, `//evil.example` on a
 * route without a fixed upstream path), test/plugins/dashboard-http.test.ts (login, cookie, logout).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCodexBackend, type CodexBackend } from '../helpers/codex-backend.js';
import { codexGatewayConfig } from '../helpers/codex-config.js';
import { accessToken, idToken, writeAuthFile, type CodexLogin } from '../helpers/codex-jwt.js';
import { startTokenServer, type TokenServer } from '../helpers/codex-token-server.js';
import {
  ADMIN_TOKEN,
  cookiePair,
  dashboardConfig,
  login,
  openFeed,
  refusal,
} from '../helpers/dashboard-feed.js';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { proxyConfig, upstreamKey } from '../helpers/proxy-config.js';
import {
  connectRaw,
  deadline,
  parseHttpResponse,
  rawHttpRequest,
  rawRequest,
  readToEnd,
  type ParsedHttpResponse,
} from '../helpers/raw.js';
import {
  happyStream,
  startUpstream,
  writeSseHead,
  type RecordedRequest,
  type TestUpstream,
} from '../helpers/upstream.js';
import { RESPONSES_POST_ROUTES } from '../helpers/routes.js';
import { ResponsesWsClient } from '../helpers/responses-ws.js';

const POST_ROUTES = RESPONSES_POST_ROUTES;
const BODY = JSON.stringify({ model: 'gpt-test', input: 'hi' });
const JSON_TYPE = { 'content-type': 'application/json' };
const WS_HEADERS = {
  connection: 'Upgrade',
  upgrade: 'websocket',
  'sec-websocket-version': '13',
  'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
};

/** One request on its own connection, sent byte for byte; `head` is the whole request head if given. */
async function send(
  baseUrl: string,
  method: string,
  target: string,
  headers: Record<string, string> = {},
  body = '',
  host = new URL(baseUrl).host,
): Promise<ParsedHttpResponse> {
  const socket = await connectRaw(baseUrl);
  socket.write(rawHttpRequest(method, target, host, { connection: 'close', ...headers }, body));
  return parseHttpResponse(await deadline(readToEnd(socket), 5000, `${method} ${target}`));
}

function errorOf(r: ParsedHttpResponse): Record<string, unknown> {
  assert.match(r.headers['content-type'] ?? '', /^application\/json/, `${r.status} ${r.body.toString()}`);
  return (JSON.parse(r.body.toString()) as { error: Record<string, unknown> }).error;
}

/** A 401 in the OpenAI shape, asking for a bearer key. */
function assertUnauthenticated(r: ParsedHttpResponse, what: string): void {
  assert.equal(r.status, 401, `${what}: ${r.status} ${r.body.toString().slice(0, 200)}`);
  assert.equal(r.headers['www-authenticate'], 'Bearer', what);
  const err = errorOf(r);
  assert.equal(err.type, 'authentication_error', what);
  assert.equal(err.code, 'invalid_api_key', what);
}

const h = new Harness();

/** An upstream that answers every request with a small completed Response. */
function completedUpstream(): Promise<TestUpstream> {
  return startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"id":"resp_1","object":"response","status":"completed"}');
  });
}

describe('reliability: security', () => {
  describe('every route needs a valid client key', () => {
    let up: TestUpstream;
    let g: TestGateway;
    before(async () => {
      up = h.track(await completedUpstream());
      g = h.track(
        await startGateway(
          dashboardConfig({
            upstreams: [{ name: 'up1', baseUrl: `${up.url}/v1`, apiKey: upstreamKey('up1') }],
            // Hundreds of wrong keys from one address: the failure limit (connections.test.ts) is off here.
            auth: { bruteForce: { maxFailures: 0 } },
          }),
        ),
      );
    });
    after(() => h.cleanup());

    /** Ways to present a key that is not a valid client key, as headers and a query string. */
    const WRONG: [string, Record<string, string>, string][] = [
      ['no credentials', {}, ''],
      ['a wrong key', { authorization: 'Bearer sk-wrong-key-0123456789' }, ''],
      ['the key cut short by one character', { authorization: `Bearer ${CLIENT_KEY.slice(0, -1)}` }, ''],
      ['the key with one character more', { authorization: `Bearer ${CLIENT_KEY}x` }, ''],
      ['the key in upper case', { authorization: `Bearer ${CLIENT_KEY.toUpperCase()}` }, ''],
      ['the key with no scheme', { authorization: CLIENT_KEY }, ''],
      [
        'the key as Basic user',
        { authorization: `Basic ${Buffer.from(`${CLIENT_KEY}:`).toString('base64')}` },
        '',
      ],
      [
        'the key as Basic password',
        { authorization: `Basic ${Buffer.from(`:${CLIENT_KEY}`).toString('base64')}` },
        '',
      ],
      ['the key under the scheme Token', { authorization: `Token ${CLIENT_KEY}` }, ''],
      ['Bearer with an empty key', { authorization: 'Bearer ' }, ''],
      ['Bearer and nothing else', { authorization: 'Bearer' }, ''],
      ['Bearer with only spaces', { authorization: 'Bearer      ' }, ''],
      ['x-api-key with a wrong key', { 'x-api-key': 'sk-wrong-key-0123456789' }, ''],
      ['x-api-key with "Bearer <key>"', { 'x-api-key': `Bearer ${CLIENT_KEY}` }, ''],
      ['x-api-key empty', { 'x-api-key': '' }, ''],
      [
        'a wrong bearer next to a valid x-api-key',
        { authorization: 'Bearer sk-wrong', 'x-api-key': CLIENT_KEY },
        '',
      ],
      ['the key as api-key (Azure)', { 'api-key': CLIENT_KEY }, ''],
      ['the key as Proxy-Authorization', { 'proxy-authorization': `Bearer ${CLIENT_KEY}` }, ''],
      ['the key in a cookie', { cookie: `api_key=${CLIENT_KEY}; key=${CLIENT_KEY}` }, ''],
      ['the admin token', { authorization: `Bearer ${ADMIN_TOKEN}` }, ''],
      ['the key as ?api_key=', {}, `?api_key=${CLIENT_KEY}`],
      ['the key as ?key=', {}, `?key=${CLIENT_KEY}`],
      ['the key as ?access_token=', {}, `?access_token=${CLIENT_KEY}`],
    ];
    const KEY = { authorization: `Bearer ${CLIENT_KEY}` };

    const ROUTES: {
      what: string;
      method: string;
      path: string;
      body: string;
      ok: number;
      upgrade?: boolean;
    }[] = [
      ...POST_ROUTES.map((path) => ({ what: `POST ${path}`, method: 'POST', path, body: BODY, ok: 200 })),
      { what: 'GET /v1/models', method: 'GET', path: '/v1/models', body: '', ok: 200 },
      { what: 'GET /models', method: 'GET', path: '/models', body: '', ok: 200 },
      ...['/v1/responses', '/responses', '/backend-api/codex/responses'].map((path) => ({
        what: `a WebSocket upgrade on ${path}`,
        method: 'GET',
        path,
        body: '',
        ok: 101,
        upgrade: true,
      })),
      {
        what: 'a WebSocket upgrade on /responses/compact (HTTP only)',
        method: 'GET',
        path: '/responses/compact',
        body: '',
        ok: 426,
        upgrade: true,
      },
      // Not routes: without a key they say 401 too, so that nothing tells what exists.
      {
        what: 'POST /v1/chat/completions',
        method: 'POST',
        path: '/v1/chat/completions',
        body: BODY,
        ok: 404,
      },
      { what: 'GET /', method: 'GET', path: '/', body: '', ok: 404 },
      {
        what: 'a WebSocket upgrade on /elsewhere',
        method: 'GET',
        path: '/elsewhere',
        body: '',
        ok: 404,
        upgrade: true,
      },
    ];

    for (const route of ROUTES) {
      it(`${route.what}: ${WRONG.length} wrong ways to present a key all get 401, nothing goes upstream`, async () => {
        const extra = route.upgrade === true ? WS_HEADERS : route.body === '' ? {} : JSON_TYPE;
        const before = up.requests.length;
        for (const [what, headers, query] of WRONG) {
          const r = await send(g.url, route.method, route.path + query, { ...extra, ...headers }, route.body);
          assertUnauthenticated(r, `${route.what} with ${what}`);
        }
        assert.equal(up.requests.length, before, 'a request without a valid key reached the upstream');
        // The control: with the key, the route answers as it should.
        if (route.ok === 101) {
          // The socket opens (a raw read would wait for its end): a real client, then closed.
          const ws = await ResponsesWsClient.connect(g.url, { path: route.path });
          await ws.close();
          return;
        }
        const ok = await send(g.url, route.method, route.path, { ...extra, ...KEY }, route.body);
        assert.equal(ok.status, route.ok, `${route.what} with the key: ${ok.body.toString().slice(0, 200)}`);
      });
    }

    describe('the dashboard needs the admin token, and a client key is not it', () => {
      const NOT_ADMIN: [string, Record<string, string>][] = [
        ['no credentials', {}],
        ['the client key as Bearer', { authorization: `Bearer ${CLIENT_KEY}` }],
        ['the client key as x-api-key', { 'x-api-key': CLIENT_KEY }],
        ['the admin token as x-api-key', { 'x-api-key': ADMIN_TOKEN }],
        ['the admin token with no scheme', { authorization: ADMIN_TOKEN }],
        [
          'the admin token as Basic',
          { authorization: `Basic ${Buffer.from(`:${ADMIN_TOKEN}`).toString('base64')}` },
        ],
        ['the admin token cut short', { authorization: `Bearer ${ADMIN_TOKEN.slice(0, -1)}` }],
        ['the admin token as a cookie', { cookie: `tapgate_dash=${ADMIN_TOKEN}` }],
        ['a made-up session cookie', { cookie: `tapgate_dash=${'ab'.repeat(32)}` }],
      ];
      const PAGES = [
        '/dashboard',
        '/dashboard/',
        '/dashboard/assets/app.js',
        '/dashboard/assets/app.css',
        '/dashboard/assets/uPlot.iife.min.js',
        '/dashboard/assets/uPlot.min.css',
        '/dashboard/ws',
      ];

      it('the page, each asset and the feed URL: 401 without the admin token', async () => {
        for (const path of PAGES) {
          for (const [what, headers] of NOT_ADMIN) {
            const r = await send(g.url, 'GET', path, headers);
            assert.equal(r.status, 401, `GET ${path} with ${what}`);
            assert.ok(!r.body.toString().includes('uPlot'), `GET ${path} with ${what} served the asset`);
          }
          for (const [what, query] of [
            ['?token=', `?token=${ADMIN_TOKEN}`],
            ['?access_token=', `?access_token=${ADMIN_TOKEN}`],
          ]) {
            assert.equal((await send(g.url, 'GET', path + query)).status, 401, `GET ${path} with ${what}`);
          }
          // The control (the feed URL's 426 with the token keeps the connection for an upgrade).
          if (path !== '/dashboard/ws') {
            const ok = await send(g.url, 'GET', path, { authorization: `Bearer ${ADMIN_TOKEN}` });
            assert.equal(ok.status, 200, `GET ${path} with the admin token`);
          }
        }
      });

      it('the feed’s WebSocket: refused (401) without the admin token, opened with it or its session', async () => {
        for (const [what, headers] of NOT_ADMIN) assert.equal(await refusal(g.url, headers), 401, what);
        const cookie = cookiePair((await login(g.url, ADMIN_TOKEN)).setCookie!);
        for (const headers of [{ authorization: `Bearer ${ADMIN_TOKEN}` }, { cookie }] as Record<
          string,
          string
        >[]) {
          const feed = await openFeed(g.url, headers);
          await feed.message((m) => m.type === 'snapshot');
          await feed.close();
        }
      });
    });
  });

  describe('client credentials never reach the upstream', () => {
    afterEach(() => h.cleanup());
    /** The client's key in every form a client may send it. */
    const FORMS: [string, Record<string, string>][] = [
      ['Authorization: Bearer', { authorization: `Bearer ${CLIENT_KEY}` }],
      ['x-api-key', { 'x-api-key': CLIENT_KEY }],
      ['both', { authorization: `Bearer ${CLIENT_KEY}`, 'x-api-key': CLIENT_KEY }],
    ];

    function assertOwnCredentials(rec: RecordedRequest, expected: string, what: string): void {
      assert.equal(rec.headers.authorization, expected, what);
      assert.equal(rec.headers['x-api-key'], undefined, what);
      assert.ok(
        !JSON.stringify(rec.headers).includes(CLIENT_KEY),
        `${what}: the client key reached the upstream`,
      );
    }

    it('openai upstream: on all six routes, in every form, the upstream sees only its own key', async () => {
      const up = h.track(await completedUpstream());
      const g = h.track(await startGateway(proxyConfig([up.url])));
      for (const route of POST_ROUTES) {
        for (const [form, headers] of FORMS) {
          const r = await send(g.url, 'POST', route, { ...JSON_TYPE, ...headers }, BODY);
          assert.equal(r.status, 200, `${route} ${form}`);
          assertOwnCredentials(up.requests.at(-1)!, `Bearer ${upstreamKey('up1')}`, `${route} ${form}`);
        }
      }
    });

    it('codex upstream: on all six routes, in every form, the backend sees only the account’s token', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'tapgate-security-codex-'));
      const tokens: TokenServer = h.track(await startTokenServer());
      const backend: CodexBackend = h.track(await startCodexBackend(tokens.accepts));
      const acct: CodexLogin = {
        access_token: accessToken('acct-sec'),
        refresh_token: 'rt-security-0123456789',
        id_token: idToken('acct-sec'),
      };
      tokens.register(acct, 'acct-sec');
      try {
        const g = h.track(
          await startGateway(
            codexGatewayConfig([
              {
                name: 'cx',
                type: 'codex',
                baseUrl: backend.baseUrl,
                tokenUrl: tokens.url,
                auth: writeAuthFile(dir, acct),
              },
            ]),
          ),
        );
        for (const route of POST_ROUTES) {
          for (const [form, headers] of FORMS) {
            const body = JSON.stringify({ model: 'gpt-5', input: 'hi', stream: !route.endsWith('/compact') });
            const r = await send(g.url, 'POST', route, { ...JSON_TYPE, ...headers }, body);
            assert.equal(r.status, 200, `${route} ${form}: ${r.body.toString().slice(0, 200)}`);
            const rec = backend.requests.at(-1)!;
            assert.equal(
              rec.url,
              `/backend-api/codex${route.endsWith('/compact') ? '/responses/compact' : '/responses'}`,
            );
            assertOwnCredentials(rec, `Bearer ${acct.access_token}`, `${route} ${form}`);
          }
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('hop-by-hop headers are stripped both ways', () => {
    afterEach(() => h.cleanup());
    /** Hop-by-hop headers (RFC 9110 §7.6.1), one named only in Connection, and a set-cookie. */
    const HOP = {
      connection: 'keep-alive, x-hop-named',
      'x-hop-named': 'hop',
      'keep-alive': 'timeout=999, max=7',
      'proxy-authenticate': 'Basic realm="up"',
      'proxy-authorization': 'Basic c2VjcmV0',
      'proxy-connection': 'keep-alive',
      te: 'trailers',
      trailer: 'x-checksum',
      upgrade: 'h2c',
    };

    /** None of HOP, and Node's own `keep-alive`/`connection` rather than the other side's. */
    function assertNoHop(headers: Record<string, unknown>, what: string): void {
      for (const name of [
        'x-hop-named',
        'proxy-authenticate',
        'proxy-authorization',
        'proxy-connection',
        'te',
        'trailer',
        'upgrade',
        'set-cookie',
      ])
        assert.equal(headers[name], undefined, `${what}: ${name} crossed the proxy`);
      assert.doesNotMatch(
        String(headers['keep-alive'] ?? ''),
        /999|max=7/,
        `${what}: the other side's keep-alive`,
      );
      assert.doesNotMatch(
        String(headers.connection ?? ''),
        /x-hop-named/i,
        `${what}: the other side's connection`,
      );
      assert.equal(headers['x-end-to-end'], 'kept', `${what}: an end-to-end header was dropped`);
    }

    it('openai upstream: the response’s hop-by-hop headers never reach the client (JSON, SSE, error)', async () => {
      let mode = 'json';
      const up = h.track(
        await startUpstream((_req, res) => {
          const common = { ...HOP, 'set-cookie': 'session=up', 'x-end-to-end': 'kept' };
          if (mode === 'sse') {
            writeSseHead(res, common);
            res.end(happyStream().join(''));
          } else {
            res.writeHead(mode === 'error' ? 400 : 200, { 'content-type': 'application/json', ...common });
            res.end(
              mode === 'error'
                ? '{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}'
                : '{"id":"resp_1"}',
            );
          }
        }),
      );
      const g = h.track(await startGateway(proxyConfig([up.url])));
      const key = { ...JSON_TYPE, authorization: `Bearer ${CLIENT_KEY}` };
      for (mode of ['json', 'sse']) {
        const body = JSON.stringify({ model: 'gpt-test', input: 'hi', stream: mode === 'sse' });
        const r = await send(g.url, 'POST', '/v1/responses', key, body);
        assert.equal(r.status, 200, mode);
        assertNoHop(r.headers, mode);
      }
      mode = 'error';
      const r = await send(g.url, 'POST', '/v1/responses', key, BODY);
      assert.equal(r.status, 400);
      for (const name of Object.keys(HOP).filter((n) => n !== 'connection' && n !== 'keep-alive'))
        assert.equal(r.headers[name], undefined, `error: ${name}`);
      assert.equal(r.headers['set-cookie'], undefined);

      // A chunked upload goes upstream with its exact length, never with the client's framing.
      mode = 'json';
      const chunked = await rawRequest(g.url, {
        path: '/v1/responses',
        headers: key,
        chunks: [BODY.slice(0, 10), BODY.slice(10)],
      });
      assert.equal(chunked.status, 200);
      const rec = up.requests.at(-1)!;
      assert.equal(rec.headers['transfer-encoding'], undefined);
      assert.equal(rec.headers['content-length'], String(Buffer.byteLength(BODY)));
    });

    it('codex upstream: none of the client’s hop-by-hop headers reach the backend, none of its come back', async () => {
      const tokens: TokenServer = h.track(await startTokenServer());
      const backend: CodexBackend = h.track(await startCodexBackend(tokens.accepts));
      const acct: CodexLogin = {
        access_token: accessToken('acct-hop'),
        refresh_token: 'rt-hop-0123456789',
        account_id: 'acct-hop',
      };
      tokens.register(acct, 'acct-hop');
      backend.answer = (_rec, res) => {
        writeSseHead(res, { ...HOP, 'set-cookie': 'session=up', 'x-end-to-end': 'kept' });
        res.end(happyStream('resp_codex').join(''));
      };
      const g = h.track(
        await startGateway(
          codexGatewayConfig([
            { name: 'cx', type: 'codex', baseUrl: backend.baseUrl, tokenUrl: tokens.url, tokens: acct },
          ]),
        ),
      );
      const r = await send(
        g.url,
        'POST',
        '/v1/responses',
        {
          ...JSON_TYPE,
          ...HOP,
          connection: 'close, x-hop-named',
          'x-end-to-end': 'kept',
          authorization: `Bearer ${CLIENT_KEY}`,
        },
        JSON.stringify({ model: 'gpt-5', input: 'hi', stream: true }),
      );
      assert.equal(r.status, 200, r.body.toString().slice(0, 200));
      assertNoHop(r.headers, 'codex response');
      const sent = backend.requests.at(-1)!.headers;
      for (const name of Object.keys(HOP).filter((n) => n !== 'connection'))
        assert.equal(sent[name], undefined, `codex request: ${name}`);
    });
  });

  describe('no open proxy: the gateway only ever connects to its configured upstream', () => {
    let up: TestUpstream;
    let evil: TestUpstream;
    let evilConnections = 0;
    let evilHost: string;
    let gateways: { name: string; g: TestGateway; upstreamPath: string }[];

    before(async () => {
      up = h.track(
        await startUpstream((_req, res) => {
          res.writeHead(200, { 'content-type': 'application/json', 'x-served-by': 'real' });
          res.end('{"id":"resp_real"}');
        }),
      );
      evil = h.track(
        await startUpstream((_req, res) => {
          res.writeHead(200, { 'content-type': 'application/json', 'x-served-by': 'evil' });
          res.end('{"id":"resp_evil"}');
        }),
      );
      evil.server.on('connection', () => evilConnections++);
      evilHost = new URL(evil.url).host;
      // Also a route with no fixed upstream path (a plugin's), where the client's path goes upstream.
      const catchAll = new URL('../fixtures/plugins/catch-all-route.js', import.meta.url).pathname;
      gateways = [
        {
          name: 'the Responses routes',
          g: h.track(await startGateway(proxyConfig([up.url]))),
          upstreamPath: '/v1/responses',
        },
        {
          name: 'a catch-all route, base path ""',
          g: h.track(
            await startGateway(
              proxyConfig([{ url: up.url, basePath: '' }]).replace(
                'plugins:\n',
                `plugins:\n  - ${catchAll}\n`,
              ),
            ),
          ),
          upstreamPath: '/responses',
        },
      ];
    });
    after(() => h.cleanup());

    /** Headers that name another host, scheme, port, path or method. */
    const STEERING = (evilHost: string): Record<string, string> => ({
      'x-forwarded-host': evilHost,
      'x-forwarded-proto': 'http',
      'x-forwarded-port': evilHost.split(':')[1]!,
      'x-forwarded-server': evilHost,
      'x-forwarded-for': '127.0.0.1',
      'x-real-ip': '127.0.0.1',
      forwarded: `host=${evilHost};proto=http;for=127.0.0.1`,
      'x-original-url': `http://${evilHost}/v1/responses`,
      'x-rewrite-url': `http://${evilHost}/v1/responses`,
      'x-host': evilHost,
      'x-http-method-override': 'DELETE',
      'x-http-method': 'DELETE',
      'x-method-override': 'DELETE',
    });

    /** The request reached the real upstream as a POST to its own host, with no steering header. */
    function assertReal(rec: RecordedRequest, path: string, what: string): void {
      assert.equal(rec.method, 'POST', what);
      assert.equal(rec.headers.host, new URL(up.url).host, `${what}: the upstream saw another host`);
      assert.equal(rec.url, path, what);
      for (const name of Object.keys(STEERING('x:1')))
        assert.equal(rec.headers[name], undefined, `${what}: ${name} forwarded`);
    }

    it('Host, X-Forwarded-*, Forwarded, X-Original-URL, X-Rewrite-URL, X-Host, method overrides: the real upstream, its own host', async () => {
      const key = { ...JSON_TYPE, authorization: `Bearer ${CLIENT_KEY}` };
      for (const { name, g } of gateways) {
        const before = up.requests.length;
        const r1 = await send(g.url, 'POST', '/v1/responses', key, BODY, evilHost);
        assert.equal(r1.status, 200, `${name}: Host`);
        assert.equal(r1.headers['x-served-by'], 'real');
        for (const [header, value] of Object.entries(STEERING(evilHost))) {
          const r = await send(g.url, 'POST', '/v1/responses', { ...key, [header]: value }, BODY);
          assert.equal(r.status, 200, `${name}: ${header}`);
          assert.equal(r.headers['x-served-by'], 'real', `${name}: ${header}`);
        }
        const all = await send(
          g.url,
          'POST',
          '/v1/responses',
          { ...key, ...STEERING(evilHost) },
          BODY,
          evilHost,
        );
        assert.equal(all.status, 200);
        const seen = up.requests.slice(before);
        assert.equal(seen.length, 2 + Object.keys(STEERING(evilHost)).length);
        for (const rec of seen) assertReal(rec, gateways.find((x) => x.g === g)!.upstreamPath, name);
      }
      assert.equal(evilConnections, 0, 'the evil server was reached');
    });

    it('absolute-URI and `*` request targets: 400, never proxied', async () => {
      const key = { ...JSON_TYPE, authorization: `Bearer ${CLIENT_KEY}` };
      const upPort = new URL(up.url).port;
      const targets = [
        `http://${evilHost}/v1/responses`,
        `https://${evilHost}/v1/responses`,
        `http://user:pass@${evilHost}/v1/responses`,
        `http://127.0.0.1:${upPort}@${evilHost}/v1/responses`,
        `http://${new URL(up.url).host}/v1/responses`,
        '*',
      ];
      for (const { name, g } of gateways) {
        const before = up.requests.length;
        for (const target of targets) {
          const r = await send(g.url, 'POST', target, key, BODY);
          assert.equal(
            r.status,
            400,
            `${name}: POST ${target}: ${r.status} ${r.body.toString().slice(0, 200)}`,
          );
          assert.match(String(errorOf(r).message), /request target must be a path/, target);
        }
        assert.equal(up.requests.length, before, `${name}: an absolute URI was proxied`);
      }
      assert.equal(evilConnections, 0, 'the evil server was reached');
    });

    it('`//host` paths and `@host` userinfo tricks stay paths on the real upstream, or are refused', async () => {
      const key = { ...JSON_TYPE, authorization: `Bearer ${CLIENT_KEY}` };
      const targets = [
        `//${evilHost}/v1/responses`,
        `///${evilHost}/v1/responses`,
        `/@${evilHost}/v1/responses`,
        `/v1/responses@${evilHost}`,
        `@${evilHost}/v1/responses`,
        `/v1/responses/..//${evilHost}/`,
        `/\\${evilHost}/v1/responses`,
        `/%2f%2f${evilHost}/v1/responses`,
        `:${evilHost.split(':')[1]}/v1/responses`,
      ];
      for (const { name, g } of gateways) {
        for (const target of targets) {
          const before = up.requests.length;
          const r = await send(g.url, 'POST', target, key, BODY);
          const what = `${name}: POST ${target}: ${r.status} ${r.body.toString().slice(0, 160)}`;
          if (r.status === 200) {
            assert.equal(r.headers['x-served-by'], 'real', what);
            assert.equal(up.requests.length, before + 1, what);
            assert.equal(up.requests.at(-1)!.headers.host, new URL(up.url).host, what);
          } else {
            assert.ok(r.status === 400 || r.status === 404, what);
            errorOf(r);
            assert.equal(up.requests.length, before, what);
          }
        }
      }
      assert.equal(evilConnections, 0, 'the evil server was reached');
    });

    it('CONNECT to the evil server: the connection is closed, nothing is tunnelled', async () => {
      for (const { g } of gateways) {
        for (const headers of [{}, { authorization: `Bearer ${CLIENT_KEY}` }] as Record<string, string>[]) {
          const socket = await connectRaw(g.url);
          socket.write(rawHttpRequest('CONNECT', evilHost, evilHost, headers));
          const bytes = await deadline(readToEnd(socket), 3000, 'CONNECT');
          assert.doesNotMatch(bytes.toString('latin1'), /^HTTP\/1\.1 2\d\d/, 'CONNECT was accepted');
        }
      }
      assert.equal(evilConnections, 0, 'the evil server was reached');
    });
  });

  describe('with no client keys (loopback only), a web page in the browser cannot use the gateway', () => {
    let up: TestUpstream;
    let g: TestGateway;
    before(async () => {
      up = h.track(await completedUpstream());
      // No keys: a browser needs no key either, so whatever marks its requests is refused.
      g = h.track(
        await startGateway(
          proxyConfig([up.url]).replace(/auth:\n {2}keys:\n( {4}.*\n)+/, 'auth:\n  keys: []\n'),
        ),
      );
    });
    after(() => h.cleanup());

    it('a CLI or SDK request (no Origin, a loopback Host) is served', async () => {
      const r = await send(g.url, 'POST', '/v1/responses', JSON_TYPE, BODY);
      assert.equal(r.status, 200, r.body.toString());
    });

    it('a cross-site POST (Origin / Sec-Fetch-Site), typeless or JSON: 403, nothing goes upstream', async () => {
      const before = up.requests.length;
      const marks: Record<string, string>[] = [
        { origin: 'https://evil.example' },
        { origin: 'null' },
        { 'sec-fetch-site': 'cross-site' },
        { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'no-cors' },
      ];
      for (const mark of marks) {
        for (const type of [{}, JSON_TYPE]) {
          const r = await send(g.url, 'POST', '/v1/responses', { ...type, ...mark }, BODY);
          const what = `${JSON.stringify(mark)} ${JSON.stringify(type)}: ${r.status}`;
          assert.equal(r.status, 403, what);
          assert.equal(errorOf(r).type, 'permission_error', what);
        }
      }
      assert.equal(up.requests.length, before, 'a browser request reached the upstream');
    });

    it('DNS rebinding (a foreign Host name on loopback): 403, nothing goes upstream', async () => {
      const before = up.requests.length;
      const port = new URL(g.url).port;
      for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.evil.example:${port}`]) {
        const r = await send(g.url, 'POST', '/v1/responses', JSON_TYPE, BODY, host);
        assert.equal(r.status, 403, `${host}: ${r.status}`);
        assert.match(String(errorOf(r).message), /not a loopback name/);
      }
      for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]) {
        const r = await send(g.url, 'POST', '/v1/responses', JSON_TYPE, BODY, host);
        assert.equal(r.status, 200, `${host}: ${r.status}`);
      }
      assert.equal(up.requests.length, before + 3);
    });
  });

  it('credentials in the query string (?api_key=, ?access_token=…) are not forwarded; other parameters are', async () => {
    const up = h.track(await completedUpstream());
    const g = h.track(await startGateway(proxyConfig([up.url])));
    const cases: [string, string][] = [
      [`?api_key=${CLIENT_KEY}&api-version=2025-01-01`, '?api-version=2025-01-01'],
      [`?api-version=1&Access_Token=${CLIENT_KEY}&key=${CLIENT_KEY}`, '?api-version=1'],
      [`?token=${CLIENT_KEY}`, ''],
      ['?api-version=1', '?api-version=1'],
    ];
    for (const [query, forwarded] of cases) {
      const r = await send(
        g.url,
        'POST',
        `/v1/responses${query}`,
        { ...JSON_TYPE, authorization: `Bearer ${CLIENT_KEY}` },
        BODY,
      );
      assert.equal(r.status, 200, query);
      assert.equal(up.requests.at(-1)!.url, `/v1/responses${forwarded}`, query);
    }
    await h.cleanup();
  });
});
