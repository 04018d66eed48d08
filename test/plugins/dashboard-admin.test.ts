/**
 * plugin dashboard, admin API: the upstreams with their state, and enable / disable / clear-cooldown
 * / refresh by name, behind the admin token, one audit line per action, no secret in any answer or
 * line; a Codex account disabled by a failed refresh brought back after a new login on disk; a
 * disable on one instance seen by another on the same Redis; /readyz follows disable and enable.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_HEADER } from '../../plugins/dashboard/admin-api.js';
import { CLIENT_KEY, type TestGateway } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { ADMIN_TOKEN, cookiePair, dashboardConfig, login, openFeed } from '../helpers/dashboard-feed.js';
import { jsonError, servedBy, until, type ScriptedUpstream } from '../helpers/pool.js';
import { DEFAULT_PLUGINS, gatewayConfig, upstreamKey } from '../helpers/proxy-config.js';
import { postJson, rawRequest, type RawResponse } from '../helpers/raw.js';
import { writeAuthFile } from '../helpers/codex-jwt.js';
import { startRedis } from '../helpers/redis.js';

const BODY = { model: 'gpt-test', stream: true, input: 'hi' };
const BEARER = { authorization: `Bearer ${ADMIN_TOKEN}` };
const API = '/dashboard/api/upstreams';
const DASHBOARD = { name: 'dashboard', options: { token: ADMIN_TOKEN } };

interface View {
  name: string;
  type: string;
  state: string;
  disabledReason: string | null;
  cooldowns: { model: string | null; until: number; kind: string; reason: string }[];
  inFlight: number;
  maxConcurrency: number;
  refreshable: boolean;
}

function list(g: TestGateway, headers: Record<string, string> = BEARER): Promise<RawResponse> {
  return rawRequest(g.url, { method: 'GET', path: API, headers });
}

function act(
  g: TestGateway,
  name: string,
  action: string,
  opts: { headers?: Record<string, string>; body?: unknown } = {},
): Promise<RawResponse> {
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return rawRequest(g.url, {
    method: 'POST',
    path: `${API}/${encodeURIComponent(name)}/${action}`,
    headers: {
      ...(opts.headers ?? BEARER),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body,
  });
}

function views(res: RawResponse): Map<string, View> {
  assert.equal(res.status, 200, res.text());
  const data = res.json().data as View[];
  return new Map(data.map((v) => [v.name, v]));
}

function audits(g: TestGateway): Record<string, unknown>[] {
  return g.logs.filter((l) => l.msg === 'admin action').map((l) => l.audit as Record<string, unknown>);
}

function errorOf(res: RawResponse): { message: string; type: string; code: string } {
  return res.json().error as { message: string; type: string; code: string };
}

const post = (g: TestGateway) => postJson(g.url, '/v1/responses', BODY);

describe('plugin dashboard: admin API', function () {
  this.timeout(20_000);
  const h = Harness.perTest();

  async function twoUpstreams(): Promise<{ g: TestGateway; A: ScriptedUpstream; B: ScriptedUpstream }> {
    const A = await h.scripted('A');
    const B = await h.scripted('B');
    const g = await h.gatewayYaml(
      dashboardConfig({
        pool: { strategy: 'fill-first' },
        upstreams: [
          { name: 'A', baseUrl: A.url + '/v1', apiKey: upstreamKey('A') },
          { name: 'B', baseUrl: B.url + '/v1', apiKey: upstreamKey('B') },
        ],
      }),
    );
    return { g, A, B };
  }

  describe('the admin token', () => {
    it('is required: 401 without it, with a wrong one, or with a client key; nothing changes, no audit line', async () => {
      const { g } = await twoUpstreams();
      const tries: Record<string, string>[] = [
        {},
        { authorization: 'Bearer wrong-token-wrong-token' },
        { authorization: `Bearer ${CLIENT_KEY}` },
      ];
      for (const headers of tries) {
        const res = await list(g, headers);
        assert.equal(res.status, 401);
        assert.equal(errorOf(res).type, 'invalid_request_error');
        for (const action of ['disable', 'enable', 'clear-cooldown', 'refresh']) {
          const r = await act(g, 'A', action, { headers });
          assert.equal(r.status, 401, action);
          assert.equal(errorOf(r).code, 'invalid_api_key');
        }
      }
      assert.equal(g.gw.pool.state.disabled('A'), undefined);
      assert.deepEqual(audits(g), []);
      assert.equal(servedBy(await post(g)), 'A');
    });

    it('a browser session may act only from the page: same Origin and the page header', async () => {
      const { g } = await twoUpstreams();
      const session = await login(g.url, ADMIN_TOKEN);
      const cookie = cookiePair(session.setCookie!);
      const host = new URL(g.url).host;
      // The list is a read: the cookie alone does (SameSite=Strict keeps other sites' pages out).
      assert.equal((await list(g, { cookie })).status, 200);
      const refused: Record<string, string>[] = [
        { cookie },
        { cookie, origin: `http://${host}` },
        { cookie, [ADMIN_HEADER]: '1' },
        { cookie, origin: 'http://evil.example', [ADMIN_HEADER]: '1' },
        { cookie, origin: 'null', [ADMIN_HEADER]: '1' },
      ];
      for (const headers of refused) {
        const res = await act(g, 'A', 'disable', { headers });
        assert.equal(res.status, 403, JSON.stringify(headers));
        assert.equal(errorOf(res).code, 'cross_origin_refused');
      }
      assert.equal(g.gw.pool.state.disabled('A'), undefined);
      const ok = await act(g, 'A', 'disable', {
        headers: { cookie, origin: `http://${host}`, [ADMIN_HEADER]: '1' },
      });
      assert.equal(ok.status, 200, ok.text());
      assert.equal(g.gw.pool.state.disabled('A'), 'disabled by an admin');
      const lines = audits(g);
      assert.equal(lines.length, refused.length + 1, 'one line per attempted action');
      assert.deepEqual(
        lines.map((l) => [l.by, l.status]),
        [...refused.map(() => ['session', 403]), ['session', 200]],
      );
    });
  });

  describe('wrong tokens from one address', () => {
    it('past the limit: an OpenAI-shaped 429, even with the right token, and no action', async () => {
      const A = await h.scripted('A');
      const g = await h.gatewayYaml(
        dashboardConfig({
          auth: { bruteForce: { maxFailures: 2, window: '1m' } },
          upstreams: [{ name: 'A', baseUrl: A.url + '/v1', apiKey: upstreamKey('A') }],
        }),
      );
      const wrong = { authorization: 'Bearer wrong-token-wrong-token' };
      assert.equal((await act(g, 'A', 'disable', { headers: wrong })).status, 401);
      assert.equal((await act(g, 'A', 'disable', { headers: wrong })).status, 401);
      const res = await act(g, 'A', 'disable');
      assert.equal(res.status, 429);
      assert.equal(errorOf(res).code, 'rate_limit_exceeded');
      assert.ok(Number(res.headers['retry-after']) > 0);
      assert.equal(g.gw.pool.state.disabled('A'), undefined);
      assert.deepEqual(audits(g), []);
    });
  });

  describe('the list', () => {
    it('names every upstream with its type, state and slots, and no key', async () => {
      const A = await h.scripted('A');
      const g = await h.gatewayYaml(
        dashboardConfig({
          upstreams: [
            { name: 'A', baseUrl: A.url + '/v1', apiKey: upstreamKey('A'), maxConcurrency: 3 },
            { name: 'nokey', baseUrl: A.url + '/v1', apiKey: '' },
          ],
        }),
      );
      const res = await list(g);
      const v = views(res);
      assert.deepEqual(
        { ...v.get('A')!, cooldowns: undefined },
        {
          name: 'A',
          type: 'openai',
          state: 'ok',
          disabledReason: null,
          cooldowns: undefined,
          inFlight: 0,
          maxConcurrency: 3,
          quota: null,
          refreshable: false,
        },
      );
      assert.equal(v.get('nokey')!.state, 'disabled');
      assert.match(String(v.get('nokey')!.disabledReason), /API key/);
      assert.ok(!res.text().includes(upstreamKey('A')));
      assert.equal(res.headers['cache-control'], 'no-store');
    });
  });

  describe('actions', () => {
    it('disable: requests avoid it, a 503 when none is left; enable: it serves again; one audit line each', async () => {
      const { g, A, B } = await twoUpstreams();
      const feed = h.track(await openFeed(g.url));
      const off = await act(g, 'A', 'disable', { body: { reason: 'maintenance window' } });
      assert.equal(off.status, 200, off.text());
      const upstream = off.json().upstream as View;
      assert.equal(upstream.state, 'disabled');
      assert.equal(upstream.disabledReason, 'maintenance window');
      for (let i = 0; i < 3; i++) assert.equal(servedBy(await post(g)), 'B');
      assert.equal(A.requests.length, 0);
      assert.equal(B.requests.length, 3);
      // The card follows: the feed sends the new state.
      await feed.until(
        (s) => s.upstreams.find((u) => u.name === 'A')?.state === 'disabled',
        'the feed shows A disabled',
      );
      assert.equal(feed.state.upstreams.find((u) => u.name === 'A')!.reason, 'maintenance window');

      assert.equal((await act(g, 'B', 'disable')).status, 200);
      assert.equal(g.gw.pool.state.disabled('B'), 'disabled by an admin');
      const none = await post(g);
      assert.equal(none.status, 503);
      assert.match(errorOf(none).message, /Every upstream is disabled/);
      // A load balancer sees it too: unready while nothing can serve, ready again after the enable.
      const unready = await rawRequest(g.url, { method: 'GET', path: '/readyz' });
      assert.equal(unready.status, 503, unready.text());
      assert.deepEqual(unready.json().upstreams, { usable: 0, total: 2 });

      const on = await act(g, 'A', 'enable');
      assert.equal(on.status, 200);
      assert.equal((on.json().upstream as View).state, 'ok');
      const ready = await rawRequest(g.url, { method: 'GET', path: '/readyz' });
      assert.equal(ready.status, 200, ready.text());
      assert.deepEqual(ready.json().upstreams, { usable: 1, total: 2 });
      assert.equal(servedBy(await post(g)), 'A');
      await feed.until(
        (s) => s.upstreams.find((u) => u.name === 'A')?.state === 'ok',
        'the feed shows A enabled',
      );

      const lines = audits(g);
      assert.deepEqual(
        lines.map((l) => [l.action, l.upstream, l.by, l.result, l.status]),
        [
          ['disable', 'A', 'bearer', 'ok', 200],
          ['disable', 'B', 'bearer', 'ok', 200],
          ['enable', 'A', 'bearer', 'ok', 200],
        ],
      );
      assert.equal(lines[0]!.reason, 'maintenance window');
      assert.equal(lines[0]!.address, '127.0.0.1');
      assert.ok(!g.rawLogs().includes(ADMIN_TOKEN));
    });

    it('clear-cooldown after an upstream 429: used again before the cooldown ends', async () => {
      const A = await h.scripted('A');
      const g = await h.gatewayYaml(
        dashboardConfig({ upstreams: [{ name: 'A', baseUrl: A.url + '/v1', apiKey: upstreamKey('A') }] }),
      );
      A.answer(
        jsonError(
          429,
          { error: { message: 'Rate limit reached', type: 'rate_limit_error' } },
          { 'retry-after': '3600' },
        ),
      );
      assert.equal((await post(g)).status, 429);
      const cooling = views(await list(g)).get('A')!;
      assert.equal(cooling.state, 'cooling');
      assert.equal(cooling.cooldowns[0]!.kind, 'rate_limit');
      assert.ok(cooling.cooldowns[0]!.until > Date.now() + 3_000_000);
      assert.equal((await post(g)).status, 429, 'the gateway keeps the client off it');
      assert.equal(A.requests.length, 1);

      const cleared = await act(g, 'A', 'clear-cooldown');
      assert.equal(cleared.status, 200);
      assert.deepEqual((cleared.json().upstream as View).cooldowns, []);
      assert.equal(servedBy(await post(g)), 'A');
      assert.equal(A.requests.length, 2);
      assert.deepEqual(
        audits(g).map((l) => [l.action, l.result]),
        [['clear-cooldown', 'ok']],
      );
    });

    it('an unknown upstream: 404; refresh on an openai upstream: 409; a bad body: 400; each one audit line', async () => {
      const { g } = await twoUpstreams();
      const missing = await act(g, 'nope', 'enable');
      assert.equal(missing.status, 404);
      assert.deepEqual(
        { ...errorOf(missing), message: undefined },
        { message: undefined, type: 'invalid_request_error', param: null, code: 'upstream_not_found' },
      );
      const refresh = await act(g, 'A', 'refresh');
      assert.equal(refresh.status, 409);
      assert.equal(errorOf(refresh).code, 'refresh_not_supported');
      assert.match(errorOf(refresh).message, /A \(type openai\) has no token to refresh/);
      const bad = await rawRequest(g.url, {
        method: 'POST',
        path: `${API}/A/disable`,
        headers: { ...BEARER, 'content-type': 'application/json' },
        body: '{not json',
      });
      assert.equal(bad.status, 400);
      assert.equal(g.gw.pool.state.disabled('A'), undefined);
      assert.deepEqual(
        audits(g).map((l) => [l.action, l.upstream, l.result, l.status]),
        [
          ['enable', 'nope', 'refused', 404],
          ['refresh', 'A', 'refused', 409],
          ['disable', 'A', 'refused', 400],
        ],
      );
      // Not actions: no audit line.
      assert.equal(
        (await rawRequest(g.url, { method: 'GET', path: `${API}/A/enable`, headers: BEARER })).status,
        405,
      );
      assert.equal((await act(g, 'A', 'explode')).status, 404);
      assert.equal(audits(g).length, 3);
    });
  });

  describe('Codex accounts', () => {
    let dir: string;
    before(() => (dir = mkdtempSync(join(tmpdir(), 'tapgate-admin-'))));
    after(() => rmSync(dir, { recursive: true, force: true }));

    async function codexGateway(authPath: string, tokenUrl: string, baseUrl: string): Promise<TestGateway> {
      return h.gatewayYaml(
        gatewayConfig({
          upstreams: [{ name: 'cx', type: 'codex', baseUrl, tokenUrl, auth: authPath }],
          plugins: [...DEFAULT_PLUGINS, DASHBOARD],
        }),
      );
    }

    it('refresh: the token endpoint is called once and the new token is used; no token in the answer', async () => {
      const tokens = await h.tokenServer();
      const backend = await h.codexBackend(tokens.accepts);
      const first = tokens.login('acct-r', 3600);
      const path = writeAuthFile(dir, first, {}, 'refresh.json');
      const g = await codexGateway(path, tokens.url, backend.baseUrl);
      assert.equal((await post(g)).status, 200);
      assert.equal(tokens.requests.length, 0, 'a fresh token needs no refresh');

      const res = await act(g, 'cx', 'refresh');
      assert.equal(res.status, 200, res.text());
      assert.equal(res.json().result, 'refreshed');
      assert.ok(Number(res.json().expiresAt) > Date.now());
      assert.equal(tokens.requests.length, 1);
      assert.equal(tokens.requests[0]!.form.refresh_token, first.refresh_token);

      assert.equal((await post(g)).status, 200);
      const sent = String(backend.requests.at(-1)!.headers.authorization).slice('Bearer '.length);
      assert.notEqual(sent, first.access_token, 'the new access token is sent');
      assert.ok(tokens.accepts(sent));
      assert.equal(tokens.requests.length, 1, 'one refresh in all');
      assert.ok(!res.text().includes(sent) && !res.text().includes(first.access_token));
      assert.ok(!g.rawLogs().includes(sent));
      assert.equal(views(await list(g)).get('cx')!.refreshable, true);
      assert.deepEqual(
        audits(g).map((l) => [l.action, l.upstream, l.result]),
        [['refresh', 'cx', 'ok']],
      );
    });

    it('an account disabled after a failed refresh comes back by enable once a new login is on disk', async () => {
      const tokens = await h.tokenServer();
      const backend = await h.codexBackend(tokens.accepts);
      const dead = tokens.login('acct-d', -60);
      const path = writeAuthFile(dir, dead, {}, 'dead.json');
      const g = await codexGateway(path, tokens.url, backend.baseUrl);
      tokens.script = () => ({ status: 400, body: { error: 'invalid_grant', error_description: 'expired' } });
      assert.equal((await post(g)).status, 502);
      assert.equal(g.gw.pool.state.disabled('cx'), 'refresh failed: invalid_grant');
      tokens.script = undefined;

      // The file still holds the dead login: enabling would only fail again.
      const early = await act(g, 'cx', 'enable');
      assert.equal(early.status, 409);
      assert.equal(errorOf(early).code, 'upstream_cannot_serve');
      assert.match(errorOf(early).message, /log in again/);
      assert.equal(g.gw.pool.state.disabled('cx'), 'refresh failed: invalid_grant');

      // The user logs in again (`codex login` rewrites the file).
      const fresh = tokens.login('acct-d', 3600);
      writeAuthFile(dir, { ...fresh, refresh_token: 'rt-acct-d-new' }, {}, 'dead.json');
      tokens.register({ ...fresh, refresh_token: 'rt-acct-d-new' }, 'acct-d');
      const on = await act(g, 'cx', 'enable');
      assert.equal(on.status, 200, on.text());
      assert.equal(g.gw.pool.state.disabled('cx'), undefined);
      assert.equal((await post(g)).status, 200);
      const sent = String(backend.requests.at(-1)!.headers.authorization).slice('Bearer '.length);
      assert.equal(sent, fresh.access_token);
      // And its refresh works again (it is not dead any more).
      assert.equal((await act(g, 'cx', 'refresh')).status, 200);
      assert.equal(tokens.requests.at(-1)!.form.refresh_token, 'rt-acct-d-new');
      assert.deepEqual(
        audits(g).map((l) => [l.action, l.status]),
        [
          ['enable', 409],
          ['enable', 200],
          ['refresh', 200],
        ],
      );
    });
  });

  describe('one Codex account behind two upstreams', () => {
    let dir: string;
    beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'tapgate-admin-shared-'))));
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('enabling one after a new login brings back every upstream the dead login disabled', async () => {
      const tokens = await h.tokenServer();
      const backend = await h.codexBackend(tokens.accepts);
      const path = writeAuthFile(dir, tokens.login('acct-s', -60), {}, 'shared.json');
      const g = await h.gatewayYaml(
        gatewayConfig({
          upstreams: ['cx-a', 'cx-b'].map((name) => ({
            name,
            type: 'codex',
            baseUrl: backend.baseUrl,
            tokenUrl: tokens.url,
            auth: path,
          })),
          plugins: [...DEFAULT_PLUGINS, DASHBOARD],
        }),
      );
      tokens.script = () => ({ status: 400, body: { error: 'invalid_grant', error_description: 'expired' } });
      assert.equal((await post(g)).status, 502);
      const state = g.gw.pool.state;
      assert.equal(state.disabled('cx-a'), 'refresh failed: invalid_grant');
      assert.equal(state.disabled('cx-b'), 'refresh failed: invalid_grant');
      tokens.script = undefined;

      const fresh = { ...tokens.login('acct-s', 3600), refresh_token: 'rt-acct-s-new' };
      writeAuthFile(dir, fresh, {}, 'shared.json');
      tokens.register(fresh, 'acct-s');
      assert.equal((await act(g, 'cx-a', 'enable')).status, 200);
      assert.equal(state.disabled('cx-a'), undefined);
      assert.equal(state.disabled('cx-b'), undefined, 'the other upstream on the account is back too');
      for (let i = 0; i < 2; i++) assert.equal((await post(g)).status, 200);
      assert.deepEqual(
        audits(g).map((l) => [l.action, l.upstream, l.status]),
        [['enable', 'cx-a', 200]],
      );
    });
  });

  describe('on Redis', () => {
    it('a disable on instance A is seen by instance B; an enable too', async () => {
      const redis = h.track(await startRedis());
      const X = await h.scripted('X');
      const Y = await h.scripted('Y');
      const yaml = gatewayConfig({
        state: { store: 'redis', url: redis.url },
        pool: { strategy: 'fill-first' },
        upstreams: [
          { name: 'X', type: 'openai', baseUrl: X.url + '/v1', apiKey: upstreamKey('X') },
          { name: 'Y', type: 'openai', baseUrl: Y.url + '/v1', apiKey: upstreamKey('Y') },
        ],
        plugins: [...DEFAULT_PLUGINS, DASHBOARD],
      });
      const A = await h.gatewayYaml(yaml);
      const B = await h.gatewayYaml(yaml);
      assert.equal((await act(A, 'X', 'disable', { body: { reason: 'draining' } })).status, 200);
      await until(() => B.gw.pool.state.disabled('X') !== undefined, 'B learns X is disabled');
      assert.equal(views(await list(B)).get('X')!.disabledReason, 'draining');
      assert.equal(servedBy(await post(B)), 'Y');
      assert.equal((await act(A, 'X', 'enable')).status, 200);
      await until(() => B.gw.pool.state.disabled('X') === undefined, 'B learns X is enabled');
      assert.equal(servedBy(await post(B)), 'X');

      // A cooldown cleared on A is cleared on B (every model's, from Redis too).
      B.gw.pool.state.cool('X', 'gpt-test', Date.now() + 60_000, 'Rate limit reached', 'rate_limit');
      await until(() => A.gw.pool.state.cooldown('X', 'gpt-test', Date.now()) !== undefined, 'A hears');
      assert.equal((await act(A, 'X', 'clear-cooldown')).status, 200);
      await until(() => B.gw.pool.state.cooldown('X', 'gpt-test', Date.now()) === undefined, 'B clears');
      assert.equal(await redis.client.exists('tapgate:cool:X'), 0);
    });

    it('a refresh forced on two instances at once sends the refresh token once (the cluster lock)', async () => {
      const redis = h.track(await startRedis());
      const tokens = await h.tokenServer();
      const backend = await h.codexBackend(tokens.accepts);
      const dir = mkdtempSync(join(tmpdir(), 'tapgate-admin-cluster-'));
      h.track({ close: async () => rmSync(dir, { recursive: true, force: true }) });
      const first = tokens.login('acct-c', 3600);
      const auth = writeAuthFile(dir, first);
      const yaml = gatewayConfig({
        log: { level: 'debug' },
        state: { store: 'redis', url: redis.url },
        upstreams: [{ name: 'cx', type: 'codex', baseUrl: backend.baseUrl, tokenUrl: tokens.url, auth }],
        plugins: [...DEFAULT_PLUGINS, DASHBOARD],
      });
      const A = await h.gatewayYaml(yaml);
      const B = await h.gatewayYaml(yaml);
      const release = tokens.hold();
      const onA = act(A, 'cx', 'refresh');
      await tokens.arrived(1);
      const onB = act(B, 'cx', 'refresh');
      await until(
        () =>
          B.logs.some(
            (l) => l.msg === 'codex token refresh running in another process: waiting for its tokens',
          ),
        'B waits for the refresh A holds the lock for',
        10_000,
      );
      release();
      const [a, b] = await Promise.all([onA, onB]);
      assert.equal(a.status, 200, a.text());
      assert.equal(a.json().result, 'refreshed');
      assert.equal(b.status, 200, b.text());
      assert.equal(b.json().result, 'adopted');
      assert.equal(tokens.requests.length, 1, 'one refresh for the cluster');
      assert.equal((await post(B)).status, 200);
      const sent = String(backend.requests.at(-1)!.headers.authorization).slice('Bearer '.length);
      assert.notEqual(sent, first.access_token);
      assert.ok(tokens.accepts(sent), 'B sends the token A got');
    });

    it('a login dead on both instances, revived by an enable on A after a new login on disk, serves on B too', async () => {
      const redis = h.track(await startRedis());
      const tokens = await h.tokenServer();
      const backend = await h.codexBackend(tokens.accepts);
      const dir = mkdtempSync(join(tmpdir(), 'tapgate-admin-revive-'));
      h.track({ close: async () => rmSync(dir, { recursive: true, force: true }) });
      const auth = writeAuthFile(dir, tokens.login('acct-v', -60));
      const yaml = gatewayConfig({
        state: { store: 'redis', url: redis.url },
        upstreams: [{ name: 'cx', type: 'codex', baseUrl: backend.baseUrl, tokenUrl: tokens.url, auth }],
        plugins: [...DEFAULT_PLUGINS, DASHBOARD],
      });
      const A = await h.gatewayYaml(yaml);
      const B = await h.gatewayYaml(yaml);
      tokens.script = () => ({ status: 400, body: { error: 'invalid_grant', error_description: 'expired' } });
      assert.equal((await post(A)).status, 502);
      const reason = 'refresh failed: invalid_grant';
      assert.equal(A.gw.pool.state.disabled('cx'), reason);
      await until(() => B.gw.pool.state.disabled('cx') === reason, 'B learns the login died', 10_000);
      tokens.script = undefined;

      const fresh = { ...tokens.login('acct-v', 3600), refresh_token: 'rt-acct-v-new' };
      tokens.register(fresh, 'acct-v');
      writeAuthFile(dir, fresh);
      assert.equal((await act(A, 'cx', 'enable')).status, 200);
      await until(() => B.gw.pool.state.disabled('cx') === undefined, 'B revives the account', 10_000);
      assert.equal((await post(B)).status, 200);
      assert.equal(String(backend.requests.at(-1)!.headers.authorization), `Bearer ${fresh.access_token}`);
      assert.equal(tokens.requests.length, 1, 'nothing was refreshed to bring it back');
      assert.equal(audits(B).length, 0, 'B took no action of its own');
    });
  });
});
