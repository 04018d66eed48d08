/**
 * Bad input (issue 7): every malformed request gets a clear answer, an OpenAI-shaped error
 * (`{error: {message, type, param, code}}`) unless a browser page of the dashboard owns the path,
 * nothing reaches the upstream, and the gateway stays usable: a normal request succeeds after each
 * case, nothing is left in flight and every client connection is closed.
 *
 * Not repeated here: test/core/proxy.test.ts has a 413 for a small body sent whole (by
 * content-length and chunked) and a truncated JSON body; test/plugins/dashboard-http.test.ts has the
 * asset allow-list against traversal spelled under /dashboard/assets/.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import zlib from 'node:zlib';
import { ADMIN_TOKEN, dashboardConfig, openFeed } from '../helpers/dashboard-feed.js';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { until } from '../helpers/pool.js';
import {
  connectRaw,
  deadline,
  parseHttpResponse,
  postJson,
  rawHttpRequest,
  readToEnd,
  type ParsedHttpResponse,
} from '../helpers/raw.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { RESPONSES_POST_ROUTES } from '../helpers/routes.js';
import { ResponsesWsClient } from '../helpers/responses-ws.js';

const LIMIT = 2 * 1024 * 1024;
const KEY = { authorization: `Bearer ${CLIENT_KEY}` };
const JSON_HEADERS = { ...KEY, 'content-type': 'application/json' };
const OK_BODY = JSON.stringify({ model: 'gpt-test', input: 'hi' });

const ROUTES = RESPONSES_POST_ROUTES;
const MODEL_ROUTES = ['/v1/models', '/models'];

/** Text that would show a file outside the dashboard's public folder was served. */
const LEAK_MARKERS = [
  '"name": "tapgate"', // package.json
  readFileSync(new URL('../../config.yaml', import.meta.url), 'utf8').split('\n')[0]!, // config.yaml
  'root:x:0:0', // /etc/passwd
  'export class DashboardRoutes', // the plugin's own source
];

let up: TestUpstream;
let g: TestGateway;
/** Client connections the gateway holds open right now (every case's connections must close). */
let clientSockets = 0;

/** One request on its own connection, its target sent byte for byte (no URL normalisation). */
async function send(
  method: string,
  target: string | Buffer,
  headers: Record<string, string> = {},
  body: Buffer | string = '',
): Promise<ParsedHttpResponse> {
  const socket = await connectRaw(g.url);
  const host = new URL(g.url).host;
  socket.write(
    Buffer.isBuffer(target)
      ? target
      : rawHttpRequest(method, target, host, { connection: 'close', ...headers }, body),
  );
  return parseHttpResponse(await deadline(readToEnd(socket), 5000, `${method} ${String(target)}`));
}

/** The body is `{error: {message, type, param, code}}` with these values, and says it is JSON. */
function assertOpenAIError(
  r: ParsedHttpResponse,
  status: number,
  expect: { type?: string; code?: string | null; param?: string | null; message?: RegExp } = {},
): Record<string, unknown> {
  const what = `${r.status} ${r.body.toString().slice(0, 300)}`;
  assert.equal(r.status, status, what);
  assert.match(r.headers['content-type'] ?? '', /^application\/json/, what);
  const body = JSON.parse(r.body.toString()) as { error: Record<string, unknown> };
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type'], what);
  assert.equal(typeof body.error.message, 'string', what);
  assert.equal(body.error.type, expect.type ?? 'invalid_request_error', what);
  if (expect.code !== undefined) assert.equal(body.error.code, expect.code, what);
  if (expect.param !== undefined) assert.equal(body.error.param, expect.param, what);
  if (expect.message !== undefined) assert.match(String(body.error.message), expect.message, what);
  return body.error;
}

/** A normal request still works, nothing is in flight, and every client connection was closed. */
async function assertStable(): Promise<void> {
  const r = await postJson(g.url, '/v1/responses', { model: 'gpt-test', input: 'after' });
  assert.equal(r.status, 200, r.text());
  await until(() => g.gw.inflight === 0, 'in-flight requests back to 0');
  await until(() => clientSockets === 0, `client connections closed (${clientSockets} open)`);
}

/** A test case that must leave the gateway as it found it. */
function check(title: string, fn: () => Promise<void>): void {
  it(title, async () => {
    await fn();
    await assertStable();
  });
}

/** Runs `fn` and checks that the upstream was not asked anything meanwhile. */
async function notProxied<T>(fn: () => Promise<T>): Promise<T> {
  const before = up.requests.length;
  const out = await fn();
  assert.equal(up.requests.length, before, `proxied upstream: ${up.requests.at(-1)?.url}`);
  return out;
}

describe('reliability: bad input', () => {
  before(async () => {
    up = await startUpstream((_req, res, rec) => {
      const json = rec.json;
      // The upstream, not the gateway, judges field types, as api.openai.com does.
      if (
        json !== undefined &&
        (typeof json.model !== 'string' || !['boolean', 'undefined'].includes(typeof json.stream))
      ) {
        res.writeHead(400, { 'content-type': 'application/json', 'x-upstream-said': 'no' });
        res.end(
          JSON.stringify({
            error: {
              message: "Invalid type for 'model'",
              type: 'invalid_request_error',
              param: 'model',
              code: 'invalid_type',
            },
          }),
        );
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'resp_ok', object: 'response', status: 'completed' }));
    });
    const yaml = dashboardConfig({
      upstreams: [{ name: 'up1', baseUrl: `${up.url}/v1`, apiKey: 'sk-upstream-bad-input-secret' }],
      // Many requests without credentials from one address: the failure limit (connections.test.ts) is off here.
      auth: { bruteForce: { maxFailures: 0 } },
    }).replace('  port: 0\n', '  port: 0\n  bodyLimit: 2mb\n');
    g = await startGateway(yaml);
    g.gw.server.on('connection', (socket: Socket) => {
      clientSockets++;
      socket.once('close', () => clientSockets--);
    });
  });
  after(async () => {
    await g.close();
    await up.close();
  });

  describe('JSON bodies', () => {
    const malformed: [string, RegExp][] = [
      ['{"model": "gpt-test", "input": ', /Unexpected end of JSON input/],
      ['{"model": }', /Unexpected token '}'/],
      ['{"model": "gpt-test"} trailing', /Unexpected non-whitespace character after JSON at position 22/],
      ["{'model': 'gpt-test'}", /Expected property name or '}' in JSON at position 1/],
      ['{"model": "gpt-test",}', /Expected double-quoted property name in JSON at position 21/],
      ['{"model": "gpt\u0001"}', /Bad control character in string literal in JSON at position 14/],
    ];
    for (const [body, problem] of malformed) {
      check(
        `malformed JSON ${JSON.stringify(body)}: 400 invalid_request_error naming the problem`,
        async () => {
          const r = await notProxied(() => send('POST', '/v1/responses', JSON_HEADERS, body));
          const err = assertOpenAIError(r, 400, { code: 'invalid_request', param: null });
          assert.match(String(err.message), /^Request body is not valid JSON: /);
          assert.match(String(err.message), problem);
        },
      );
    }

    check('bytes that are not UTF-8 text: 400, not valid JSON', async () => {
      const r = await notProxied(() =>
        send('POST', '/v1/responses', JSON_HEADERS, Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0x7d])),
      );
      assertOpenAIError(r, 400, { code: 'invalid_request', message: /^Request body is not valid JSON/ });
    });

    for (const body of ['[]', '[{"model":"gpt-test"}]', '"gpt-test"', 'null', '42', 'true']) {
      check(`JSON that is not an object (${body}): 400 "must be a JSON object"`, async () => {
        const r = await notProxied(() => send('POST', '/v1/responses/compact', JSON_HEADERS, body));
        assertOpenAIError(r, 400, {
          code: 'invalid_request',
          message: /^Request body must be a JSON object$/,
        });
      });
    }

    check('an empty body: 400 "expected a JSON object"', async () => {
      const r = await notProxied(() =>
        send('POST', '/responses', { ...JSON_HEADERS, 'content-length': '0' }),
      );
      assertOpenAIError(r, 400, { message: /^Request body is empty: expected a JSON object$/ });
    });

    // The routes do not validate field types: the body goes upstream untouched and the upstream's
    // own 400 comes back verbatim, once (a request fault is never retried elsewhere).
    for (const body of [
      '{"model": 42, "input": "hi"}',
      '{"model": ["gpt-test"], "input": "hi"}',
      '{"model": "gpt-test", "input": "hi", "stream": "yes"}',
    ]) {
      check(`a wrong field type (${body}) is the upstream's to refuse: its 400 passes through`, async () => {
        const before = up.requests.length;
        const r = await send('POST', '/v1/responses', JSON_HEADERS, body);
        assertOpenAIError(r, 400, {
          code: 'invalid_type',
          param: 'model',
          message: /Invalid type for 'model'/,
        });
        assert.equal(r.headers['x-upstream-said'], undefined, 'only the error headers a client needs pass');
        assert.equal(up.requests.length, before + 1);
        assert.equal(up.requests.at(-1)!.body.toString(), body, 'the body went upstream byte for byte');
      });
    }
  });

  describe('body size', () => {
    check(
      'a chunked upload that keeps growing: 413 while it is still being sent, then the gateway hangs up',
      async () => {
        const socket = await connectRaw(g.url);
        const head =
          `POST /v1/responses HTTP/1.1\r\nhost: ${new URL(g.url).host}\r\n` +
          `authorization: Bearer ${CLIENT_KEY}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`;
        socket.write(head);
        const received: Buffer[] = [];
        const hungUp = new Promise<void>((resolve) => {
          socket.once('end', resolve);
          socket.once('close', () => resolve());
        });
        socket.on('data', (c: Buffer) => received.push(c));
        socket.on('error', () => {});
        // The client means to send 256 MB; it stops when the gateway answers and hangs up.
        const chunk = Buffer.from(`10000\r\n${'x'.repeat(0x10000)}\r\n`);
        let sent = 0;
        let stopped = false;
        void hungUp.then(() => (stopped = true));
        const writer = (async () => {
          while (!stopped && sent < 256 * 1024 * 1024 && !socket.destroyed) {
            sent += 0x10000;
            if (!socket.write(chunk))
              await Promise.race([new Promise((r) => socket.once('drain', r)), hungUp]);
          }
        })();
        await notProxied(() => deadline(hungUp, 5000, 'the gateway hanging up on an upload past the limit'));
        await writer;
        socket.destroy();
        const r = parseHttpResponse(Buffer.concat(received));
        assertOpenAIError(r, 413, {
          code: 'request_too_large',
          message: /larger than the limit of 2097152 bytes/,
        });
        assert.equal(r.headers.connection, 'close');
        // Loopback socket buffers hold a few MB; the rest of the 256 MB was never read.
        assert.ok(sent < 64 * 1024 * 1024, `the gateway kept reading: ${sent} bytes sent`);
      },
    );

    check(
      'a declared content-length over the limit: 413 before any body byte, then the gateway hangs up',
      async () => {
        const socket = await connectRaw(g.url);
        socket.write(
          `POST /v1/responses HTTP/1.1\r\nhost: ${new URL(g.url).host}\r\nauthorization: Bearer ${CLIENT_KEY}\r\n` +
            `content-type: application/json\r\ncontent-length: ${10 * 1024 ** 3}\r\n\r\n{"model":`,
        );
        const bytes = await notProxied(() =>
          deadline(readToEnd(socket), 3000, 'the gateway closing after a 413'),
        );
        assertOpenAIError(parseHttpResponse(bytes), 413, { code: 'request_too_large' });
      },
    );

    check('a compression bomb: 413 without inflating past the limit', async () => {
      // 1024 gzip members of 1 MB of zeros: 1 MB on the wire (under the limit), 1 GB inflated.
      const member = zlib.gzipSync(Buffer.alloc(1024 * 1024));
      const bomb = Buffer.concat(Array.from({ length: 1024 }, () => member));
      assert.ok(bomb.length < LIMIT);
      // The process's high-water mark of memory: inflating the whole bomb would lift it by a gigabyte.
      const peakBefore = process.resourceUsage().maxRSS * 1024;
      const r = await notProxied(() =>
        send('POST', '/v1/responses', { ...JSON_HEADERS, 'content-encoding': 'gzip' }, bomb),
      );
      const peakGrowth = process.resourceUsage().maxRSS * 1024 - peakBefore;
      assertOpenAIError(r, 413, {
        code: 'request_too_large',
        message: /larger than the limit of 2097152 bytes/,
      });
      // Stopping at the 2 MB limit costs a few MB at most; the whole gigabyte would show here.
      assert.ok(
        peakGrowth < 256 * 1024 * 1024,
        `peak memory grew by ${Math.round(peakGrowth / 1048576)} MB: the body was inflated past the limit`,
      );
    });
  });

  describe('content type', () => {
    for (const type of [
      'text/plain',
      'text/plain;charset=UTF-8',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/jsonx',
      'text/html',
    ]) {
      check(`Content-Type ${type}: 415 naming the type, nothing sent upstream`, async () => {
        const r = await notProxied(() =>
          send('POST', '/v1/responses', { ...KEY, 'content-type': type }, OK_BODY),
        );
        assertOpenAIError(r, 415, {
          code: 'unsupported_media_type',
          message: new RegExp(`^Content-Type must be application/json, got ${type.split(';')[0]}$`),
        });
      });
    }

    // Decided: a JSON route takes application/json (any case, any parameters, +json suffixes); a body
    // with no Content-Type at all is read as JSON, since clients that leave it out still send JSON.
    for (const type of [
      'application/json',
      'Application/JSON; charset=utf-8',
      'application/vnd.api+json',
      undefined,
    ]) {
      check(`Content-Type ${type ?? '(none)'}: accepted as JSON`, async () => {
        const headers: Record<string, string> = type === undefined ? KEY : { ...KEY, 'content-type': type };
        const r = await send('POST', '/v1/responses', headers, OK_BODY);
        assert.equal(r.status, 200, r.body.toString());
        assert.equal(up.requests.at(-1)!.body.toString(), OK_BODY);
      });
    }
  });

  describe('content-encoding', () => {
    const garbage = Buffer.from(OK_BODY);
    for (const encoding of ['gzip', 'x-gzip', 'deflate', 'br']) {
      check(
        `Content-Encoding ${encoding} on bytes that are not ${encoding}: 400 naming the encoding`,
        async () => {
          const r = await notProxied(() =>
            send('POST', '/v1/responses', { ...JSON_HEADERS, 'content-encoding': encoding }, garbage),
          );
          assertOpenAIError(r, 400, {
            code: 'invalid_request',
            param: 'content-encoding',
            message: new RegExp(`^Request body is not valid ${encoding}$`),
          });
        },
      );
    }

    for (const encoding of ['compress', 'gzip, gzip', 'snappy']) {
      check(`an unsupported Content-Encoding (${encoding}): 400 naming it`, async () => {
        const r = await notProxied(() =>
          send('POST', '/v1/responses', { ...JSON_HEADERS, 'content-encoding': encoding }, garbage),
        );
        assertOpenAIError(r, 400, {
          param: 'content-encoding',
          message: new RegExp(`^Unsupported Content-Encoding: ${encoding}$`),
        });
      });
    }

    check(
      'a gzip or br body that is valid is decoded: the upstream gets plain JSON with no content-encoding',
      async () => {
        for (const [encoding, encoded] of [
          ['gzip', zlib.gzipSync(OK_BODY)],
          ['br', zlib.brotliCompressSync(OK_BODY)],
        ] as const) {
          const r = await send(
            'POST',
            '/v1/responses',
            { ...JSON_HEADERS, 'content-encoding': encoding },
            encoded,
          );
          assert.equal(r.status, 200, r.body.toString());
          const rec = up.requests.at(-1)!;
          assert.equal(rec.body.toString(), OK_BODY, encoding);
          assert.equal(rec.headers['content-encoding'], undefined, encoding);
        }
      },
    );
  });

  describe('request heads', () => {
    check('a 100 KB header: 431 from the HTTP parser, JSON, and the connection closed', async () => {
      const r = await notProxied(() =>
        send('POST', '/v1/responses', { ...JSON_HEADERS, 'x-big': 'a'.repeat(100 * 1024) }, OK_BODY),
      );
      assertOpenAIError(r, 431, { message: /HPE_HEADER_OVERFLOW/ });
      assert.equal(r.headers.connection, 'close');
    });

    check('a thousand small headers adding up past the limit: 431 too', async () => {
      const many: Record<string, string> = { ...JSON_HEADERS };
      for (let i = 0; i < 1000; i++) many[`x-h${i}`] = 'v'.repeat(64);
      const r = await notProxied(() => send('POST', '/v1/responses', many, OK_BODY));
      assertOpenAIError(r, 431, { message: /HPE_HEADER_OVERFLOW/ });
    });

    const broken: [string, string][] = [
      ['a NUL byte in the path', 'POST /v1/responses\0/x HTTP/1.1\r\nhost: h\r\n\r\n'],
      ['a NUL byte in a header value', 'POST /v1/responses HTTP/1.1\r\nhost: h\r\nx-a: b\0c\r\n\r\n'],
      ['a space in a header name', 'POST /v1/responses HTTP/1.1\r\nhost: h\r\nx a: b\r\n\r\n'],
      ['a bare LF inside a header line', 'POST /v1/responses HTTP/1.1\r\nhost: h\r\nx-a: b\nc\r\n\r\n'],
      [
        'two content-lengths that disagree',
        'POST /v1/responses HTTP/1.1\r\nhost: h\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}',
      ],
      [
        'content-length and transfer-encoding together',
        'POST /v1/responses HTTP/1.1\r\nhost: h\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n',
      ],
    ];
    for (const [what, bytes] of broken) {
      check(`${what}: 400 JSON, and the connection closed`, async () => {
        const r = await notProxied(() => send('POST', Buffer.from(bytes, 'latin1')));
        assertOpenAIError(r, 400, { message: /^Bad request \(HPE_/ });
        assert.equal(r.headers.connection, 'close');
      });
    }
  });

  describe('paths: traversal and encoded-slash tricks never reach a file or the upstream', () => {
    /** Spellings of `route` that are not `route`; none may be routed, proxied or served. */
    function tricks(route: string): string[] {
      const cut = route.lastIndexOf('/');
      const dir = route.slice(0, cut);
      const last = route.slice(cut + 1);
      const spellings = [
        `${route}/..%2f..%2fadmin`,
        `${route}/../../package.json`,
        `${route}/%2e%2e/%2e%2e/package.json`,
        `${route}/..%5c..%5cpackage.json`,
        `${route}\\..\\..\\package.json`,
        `${route}/..%252f..%252fconfig.yaml`,
        `/x/..${route}`,
        `/x/%2e%2e${route}`,
        `${dir}/./${last}`,
        `${dir}/x/../${last}`,
        `/${route.slice(1).replaceAll('/', '%2f')}`,
        `/${route.slice(1).replaceAll('/', '%2F')}`,
        `/${route}`,
        `${dir}//${last}`,
        `${route}//`,
        `${route}/.`,
        `${route};x`,
        `${route};/../admin`,
        `${route}%00`,
        `${route}%2500`,
        `${route}%2f`,
        `${route}%20`,
        `${route}%09`,
        `${route}..`,
        `${route}.json`,
        `${route}#x`,
        route.toUpperCase(),
        `${route}/%c0%ae%c0%ae/%c0%ae%c0%ae/package.json`,
      ];
      // A one-segment route (`/models`) has no inner slash to encode.
      return spellings.filter((t) => t !== route);
    }

    /** A clean 4xx, OpenAI-shaped, with no file in it. */
    function assertRefused(r: ParsedHttpResponse, what: string): void {
      assert.ok(
        r.status === 404 || r.status === 400,
        `${what}: ${r.status} ${r.body.toString().slice(0, 200)}`,
      );
      assertOpenAIError(r, r.status, r.status === 404 ? { code: 'not_found' } : {});
      for (const m of LEAK_MARKERS) assert.ok(!r.body.toString().includes(m), `${what} served a file`);
    }

    check('the Responses routes themselves are served (so a 404 below means something)', async () => {
      for (const route of ROUTES) {
        const r = await send('POST', route, JSON_HEADERS, OK_BODY);
        assert.equal(r.status, 200, route);
      }
      assert.equal(up.requests.length >= ROUTES.length, true);
    });

    for (const route of ROUTES) {
      check(`POST ${route}: every trick is a 404 (or 400), never proxied`, async () => {
        for (const target of tricks(route)) {
          const r = await notProxied(() => send('POST', target, JSON_HEADERS, OK_BODY));
          assertRefused(r, `POST ${target}`);
        }
      });
    }

    for (const route of MODEL_ROUTES) {
      check(`GET ${route}: every trick is a 404 (or 400), never the model list`, async () => {
        const ok = await send('GET', route, KEY);
        assert.equal(ok.status, 200);
        for (const target of tricks(route)) {
          const r = await notProxied(() => send('GET', target, KEY));
          assertRefused(r, `GET ${target}`);
          assert.ok(!r.body.toString().includes('"object":"list"'), `GET ${target} listed the models`);
        }
      });
    }

    // With the admin token, so that a 401 does not hide what the path would have served.
    const DASHBOARD_TRICKS = [
      '/dashboard/../package.json',
      '/dashboard/%2e%2e/%2e%2e/package.json',
      '/dashboard/..%2f..%2fpackage.json',
      '/dashboard/%2e%2e%5c..%5cpackage.json',
      '/dashboard/assets/..%252f..%252fconfig.yaml',
      '/dashboard/assets/..%2f..%2f..%2f..%2fconfig.yaml',
      '/dashboard/assets/%2e%2e/%2e%2e/%2e%2e/%2e%2e/config.yaml',
      '/dashboard/assets/..;/..;/..;/..;/package.json',
      '/dashboard/assets/....//....//....//....//package.json',
      '/dashboard/assets/%c0%ae%c0%ae/%c0%ae%c0%ae/%c0%ae%c0%ae/%c0%ae%c0%ae/package.json',
      '/dashboard/assets/app.js%00',
      '/dashboard/assets/app.js%00.css',
      '/dashboard/assets/app.js/',
      '/dashboard/assets//app.js',
      '/dashboard/assets/../public/app.js',
      '/dashboard/%00',
      '/dashboard/public/index.html',
      '/dashboard/index.html',
      '/dashboard/routes.ts',
      '/dashboard/.%2e/.%2e/package.json',
      '/dashboard/..',
      '/dashboard%2f..%2fpackage.json',
      '/dashboard%2fassets%2fapp.js',
      '/dashboard/../../../../../../etc/passwd',
      '/%2e%2e/%2e%2e/package.json',
      '/package.json',
      '/config.yaml',
    ];

    for (const auth of ['admin token', 'no credentials']) {
      check(`the dashboard, ${auth}: every trick is a clean 4xx with no file, never proxied`, async () => {
        const headers: Record<string, string> =
          auth === 'admin token' ? { authorization: `Bearer ${ADMIN_TOKEN}` } : {};
        const control = await send('GET', '/dashboard/assets/app.js', headers);
        assert.equal(control.status, auth === 'admin token' ? 200 : 401);
        for (const target of DASHBOARD_TRICKS) {
          const r = await notProxied(() => send('GET', target, headers));
          const what = `GET ${target}: ${r.status} ${r.body.toString().slice(0, 120)}`;
          assert.ok(r.status >= 400 && r.status < 500, what);
          for (const m of LEAK_MARKERS) assert.ok(!r.body.toString().includes(m), `${what} served a file`);
          if (target.startsWith('/dashboard/')) {
            // The dashboard's own paths answer in plain text, for a browser, never sniffed.
            assert.match(r.headers['content-type'] ?? '', /^text\/(plain|html)/, what);
            assert.equal(r.headers['x-content-type-options'], 'nosniff', what);
          } else {
            assertOpenAIError(r, r.status, {
              type: r.status === 401 ? 'authentication_error' : 'invalid_request_error',
            });
          }
        }
      });
    }

    check('a WebSocket upgrade on a trick path is never accepted, nor proxied', async () => {
      const upgrade = {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      };
      const admin = { ...upgrade, authorization: `Bearer ${ADMIN_TOKEN}` };
      const client = { ...upgrade, ...KEY };
      // The real paths, as controls: the feed opens, and so does a Responses socket.
      await (await openFeed(g.url)).close();
      await (await ResponsesWsClient.connect(g.url)).close();
      const cases: [string, Record<string, string>][] = [
        ['/dashboard/ws/../ws', admin],
        ['/dashboard/%77s', admin],
        ['/dashboard%2fws', admin],
        ['/dashboard/ws;x', admin],
        ['/dashboard//ws', admin],
        ['/dashboard/ws/', admin],
        ['/v1/../v1/responses', client],
        ['/v1%2fresponses', client],
        ['//v1/responses', client],
        ['/v1/responses;x', client],
      ];
      for (const [target, headers] of cases) {
        const r = await notProxied(() => send('GET', target, headers));
        assert.ok(r.status >= 400 && r.status < 500, `${target}: ${r.status}`);
      }
    });
  });
});
