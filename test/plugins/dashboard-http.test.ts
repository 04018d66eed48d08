/**
 * plugin dashboard, HTTP: the page and the assets need the admin token (a bearer header, or the
 * session cookie the login form sets); the login form, logout, and an asset allow-list that no
 * path trick gets around.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { startGateway, CLIENT_KEY, type TestGateway } from '../helpers/gateway.js';
import {
  ADMIN_TOKEN,
  cookiePair,
  dashboardConfig,
  get,
  login,
  openFeed,
  rawPathGet,
  refusal,
} from '../helpers/dashboard-feed.js';
import { rawRequest } from '../helpers/raw.js';

const BEARER = { authorization: `Bearer ${ADMIN_TOKEN}` };
const PUBLIC = new URL('../../plugins/dashboard/public/', import.meta.url);
const requireHere = createRequire(import.meta.url);

const ASSETS: [string, string, () => Buffer][] = [
  ['app.js', 'text/javascript; charset=utf-8', () => readFileSync(new URL('app.js', PUBLIC))],
  ['app.css', 'text/css; charset=utf-8', () => readFileSync(new URL('app.css', PUBLIC))],
  [
    'uPlot.iife.min.js',
    'text/javascript; charset=utf-8',
    () => readFileSync(requireHere.resolve('uplot/dist/uPlot.iife.min.js')),
  ],
  [
    'uPlot.min.css',
    'text/css; charset=utf-8',
    () => readFileSync(requireHere.resolve('uplot/dist/uPlot.min.css')),
  ],
];

describe('plugin dashboard: HTTP', () => {
  let g: TestGateway;

  before(async () => {
    g = await startGateway(
      dashboardConfig({
        upstreams: [{ name: 'up1', baseUrl: 'http://127.0.0.1:9/v1', apiKey: 'sk-upstream-http-secret' }],
      }),
    );
  });
  after(() => g.close());

  describe('the page', () => {
    it('without a token: 401 and the login form, never cached', async () => {
      for (const path of ['/dashboard', '/dashboard/']) {
        const res = await get(g.url, path);
        assert.equal(res.status, 401, path);
        assert.match(String(res.headers['content-type']), /^text\/html/);
        assert.equal(res.headers['cache-control'], 'no-store');
        assert.match(res.text(), /<form method="post" action="\/dashboard\/login">/);
        assert.match(res.text(), /name="token" type="password"/);
        assert.equal(res.headers['set-cookie'], undefined);
      }
    });

    it('a wrong bearer token, a client key, or the token in the URL: 401', async () => {
      assert.equal((await get(g.url, '/dashboard', { authorization: 'Bearer nope-nope-nope' })).status, 401);
      assert.equal((await get(g.url, '/dashboard', { authorization: `Bearer ${CLIENT_KEY}` })).status, 401);
      assert.equal((await get(g.url, '/dashboard', { 'x-api-key': ADMIN_TOKEN })).status, 401);
      assert.equal((await get(g.url, `/dashboard?token=${ADMIN_TOKEN}`)).status, 401);
      assert.equal(
        (await get(g.url, `/dashboard`, { cookie: `tapgate_dash=${'a'.repeat(64)}` })).status,
        401,
      );
    });

    it('with Authorization: Bearer: 200, the page, with a strict CSP', async () => {
      for (const path of ['/dashboard', '/dashboard/']) {
        const res = await get(g.url, path, BEARER);
        assert.equal(res.status, 200, path);
        assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
        assert.equal(res.headers['cache-control'], 'no-store');
        assert.equal(res.headers['x-frame-options'], 'DENY');
        assert.equal(res.headers['x-content-type-options'], 'nosniff');
        const csp = String(res.headers['content-security-policy']);
        assert.match(csp, /script-src 'self'/);
        assert.match(csp, /frame-ancestors 'none'/);
        assert.deepEqual(res.body, readFileSync(new URL('index.html', PUBLIC)));
      }
    });

    it('other methods: 405', async () => {
      const res = await rawRequest(g.url, { method: 'DELETE', path: '/dashboard', headers: BEARER });
      assert.equal(res.status, 405);
    });
  });

  describe('login and logout', () => {
    it('GET /dashboard/login shows the form with 200', async () => {
      const res = await get(g.url, '/dashboard/login');
      assert.equal(res.status, 200);
      assert.match(res.text(), /action="\/dashboard\/login"/);
    });

    it('the right token: 303 to the page and an HttpOnly, SameSite=Strict session cookie', async () => {
      const res = await login(g.url, ADMIN_TOKEN);
      assert.equal(res.status, 303);
      assert.equal(res.location, '/dashboard');
      assert.match(
        res.setCookie ?? '',
        /^tapgate_dash=[0-9a-f]{64}; HttpOnly; SameSite=Strict; Path=\/dashboard; Max-Age=43200$/,
      );
      assert.ok(!(res.setCookie ?? '').includes(ADMIN_TOKEN));
    });

    it('behind a TLS proxy (x-forwarded-proto: https) the cookie is Secure too', async () => {
      const res = await rawRequest(g.url, {
        method: 'POST',
        path: '/dashboard/login',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-proto': 'https' },
        body: `token=${encodeURIComponent(ADMIN_TOKEN)}`,
      });
      assert.equal(res.status, 303);
      assert.match(String(res.headers['set-cookie']?.[0]), /; Secure$/);
    });

    it('the cookie opens the page and the feed', async () => {
      const cookie = cookiePair((await login(g.url, ADMIN_TOKEN)).setCookie!);
      const page = await get(g.url, '/dashboard', { cookie });
      assert.equal(page.status, 200);
      assert.match(page.text(), /<html/);
      const feed = await openFeed(g.url, { cookie, origin: new URL(g.url).origin });
      assert.equal((await feed.message((m) => m.type === 'snapshot')).v, 1);
      await feed.close();
      // Logged in already: the login page sends you to the dashboard.
      const again = await get(g.url, '/dashboard/login', { cookie });
      assert.equal(again.status, 303);
    });

    it('a wrong token: 401, the form again with a message, no cookie', async () => {
      for (const token of ['wrong-token', '', ADMIN_TOKEN + 'x', ADMIN_TOKEN.slice(0, -1)]) {
        const res = await login(g.url, token);
        assert.equal(res.status, 401, token);
        assert.equal(res.setCookie, undefined);
        assert.match(res.body, /Wrong token\./);
        assert.match(res.body, /<form method="post"/);
      }
    });

    it('refuses a form that is not urlencoded (415), too large (413), or cross-origin (403)', async () => {
      const post = (headers: Record<string, string>, body: string) =>
        rawRequest(g.url, { method: 'POST', path: '/dashboard/login', headers, body });
      assert.equal(
        (await post({ 'content-type': 'application/json' }, JSON.stringify({ token: ADMIN_TOKEN }))).status,
        415,
      );
      const big = await post(
        { 'content-type': 'application/x-www-form-urlencoded' },
        `token=${ADMIN_TOKEN}&pad=${'x'.repeat(10_000)}`,
      );
      assert.equal(big.status, 413);
      const cross = await post(
        { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example' },
        `token=${ADMIN_TOKEN}`,
      );
      assert.equal(cross.status, 403);
      assert.equal(cross.headers['set-cookie'], undefined);
    });

    it('logout ends the session: the cookie stops working, its viewers are closed (4401)', async () => {
      const cookie = cookiePair((await login(g.url, ADMIN_TOKEN)).setCookie!);
      const other = cookiePair((await login(g.url, ADMIN_TOKEN)).setCookie!);
      const feed = await openFeed(g.url, { cookie });
      const otherFeed = await openFeed(g.url, { cookie: other });
      await feed.message((m) => m.type === 'snapshot');
      const res = await rawRequest(g.url, { method: 'POST', path: '/dashboard/logout', headers: { cookie } });
      assert.equal(res.status, 303);
      assert.equal(res.headers.location, '/dashboard');
      assert.match(
        String(res.headers['set-cookie']?.[0]),
        /^tapgate_dash=; HttpOnly; SameSite=Strict; Path=\/dashboard; Max-Age=0/,
      );
      assert.equal(await feed.closed, 4401);
      assert.equal((await get(g.url, '/dashboard', { cookie })).status, 401);
      assert.equal(await refusal(g.url, { cookie }), 401);
      // Another session is not affected.
      assert.equal((await get(g.url, '/dashboard', { cookie: other })).status, 200);
      assert.equal(otherFeed.ws.readyState, otherFeed.ws.OPEN);
      await otherFeed.close();
      assert.equal((await get(g.url, '/dashboard/logout')).status, 405);
    });

    it('the feed URL answers a plain GET: 401 without a session, 426 with one', async () => {
      assert.equal((await get(g.url, '/dashboard/ws')).status, 401);
      assert.equal((await get(g.url, '/dashboard/ws', BEARER)).status, 426);
    });
  });

  describe('assets', () => {
    for (const [name, type, content] of ASSETS) {
      it(`serves ${name} as ${type}`, async () => {
        const res = await get(g.url, `/dashboard/assets/${name}`, BEARER);
        assert.equal(res.status, 200);
        assert.equal(res.headers['content-type'], type);
        assert.equal(res.headers['x-content-type-options'], 'nosniff');
        assert.deepEqual(res.body, content());
      });
    }

    it('needs the token too', async () => {
      assert.equal((await get(g.url, '/dashboard/assets/app.js')).status, 401);
      const cookie = cookiePair((await login(g.url, ADMIN_TOKEN)).setCookie!);
      assert.equal((await get(g.url, '/dashboard/assets/app.js', { cookie })).status, 200);
    });

    it('anything off the allow-list is 404, however the path is spelled', async () => {
      const pkg = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
      const paths = [
        '/dashboard/assets/../../package.json',
        '/dashboard/assets/../../../../../../etc/passwd',
        '/dashboard/assets/..%2f..%2fpackage.json',
        '/dashboard/assets/%2e%2e%2f%2e%2e%2fpackage.json',
        '/dashboard/assets/%2E%2E%2F%2E%2E%2Fpackage.json',
        '/dashboard/assets/%252e%252e%252f%252e%252e%252fpackage.json',
        '/dashboard/assets/..%5c..%5cpackage.json',
        '/dashboard/assets/app.js/../../../package.json',
        '/dashboard/assets/%2Fetc%2Fpasswd',
        '/dashboard/assets//etc/passwd',
        '/dashboard/assets/./app.js',
        '/dashboard/assets/APP.JS',
        '/dashboard/assets/app.js%00.png',
        '/dashboard/assets/index.html',
        '/dashboard/assets/uPlot.js',
        '/dashboard/assets/',
        '/dashboard/../package.json',
        '/dashboard/public/app.js',
        '/dashboard/index.ts',
      ];
      for (const path of paths) {
        const res = await rawPathGet(g.url, path, BEARER);
        assert.equal(res.status, 404, path);
        assert.ok(!res.body.toString().includes('"name": "tapgate"'), path);
        assert.ok(!res.body.toString().includes(pkg.slice(0, 40)), path);
        assert.ok(!res.body.toString().includes('root:'), path);
      }
    });
  });
});
