/**
 * codex-upstream token refresh against a loopback token endpoint and Codex backend: ahead of expiry,
 * once after a 401 on the same account, single-flight under concurrency, terminal failures that
 * disable the account (and fail over), transient ones that do not, and write-back to auth.json.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CodexAccount } from '../../plugins/codex-upstream/account.js';
import { loadAuthFile } from '../../plugins/codex-upstream/credentials.js';
import { createLogger } from '../../core/observe/logger.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { postJson, type RawResponse } from '../helpers/raw.js';
import { accessToken, idToken, writeAuthFile, type CodexLogin } from '../helpers/codex-jwt.js';
import { startTokenServer, type TokenServer } from '../helpers/codex-token-server.js';
import { startCodexBackend, type CodexBackend } from '../helpers/codex-backend.js';
import { codexGatewayConfig } from '../helpers/codex-config.js';
import { happyStream, startUpstream, writeSseHead, type TestUpstream } from '../helpers/upstream.js';

const BODY = { model: 'gpt-5', input: 'hi', stream: true };

/** Resolves once `cond` holds, checking on every turn of the event loop (bounded). */
async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

function bearer(rec: { headers: Record<string, unknown> }): string {
  return String(rec.headers.authorization).slice('Bearer '.length);
}

describe('plugin codex-upstream: token refresh', () => {
  let dir: string;
  let tokens: TokenServer;
  let backend: CodexBackend;
  let fallback: TestUpstream;
  let g: TestGateway | undefined;
  let n = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapgate-codex-refresh-'));
    fallback = await startUpstream((_req, res) => {
      writeSseHead(res);
      res.end(happyStream('resp_fallback').join(''));
    });
  });
  after(async () => {
    await fallback.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    tokens = await startTokenServer();
    backend = await startCodexBackend(tokens.accepts);
  });
  afterEach(async () => {
    await g?.close();
    g = undefined;
    await backend.close();
    await tokens.close();
  });

  function authFile(l: CodexLogin, extra: Record<string, unknown> = {}): string {
    return writeAuthFile(dir, l, extra, `auth-${++n}.json`);
  }

  function codex(name: string, auth: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { name, type: 'codex', baseUrl: backend.baseUrl, tokenUrl: tokens.url, auth, ...extra };
  }

  const openai = (priority = 1) => ({
    name: 'oa',
    type: 'openai',
    baseUrl: fallback.url + '/v1',
    apiKey: 'sk-fallback-upstream',
    priority,
  });

  async function gateway(
    upstreams: Record<string, unknown>[],
    proxy?: Record<string, unknown>,
  ): Promise<TestGateway> {
    g = await startGateway(codexGatewayConfig(upstreams, proxy === undefined ? {} : { proxy }));
    return g;
  }

  function assertNoSecrets(gw: TestGateway, ...secrets: string[]): void {
    const logs = gw.rawLogs();
    for (const s of secrets) assert.ok(!logs.includes(s), 'a token appeared in the logs');
  }

  describe('ahead of expiry', () => {
    it('refreshes before sending, with the form the token endpoint expects, and writes the file back atomically', async () => {
      const l = tokens.login('acct-a', 60); // inside the default refreshAhead of 5m
      const path = authFile(l, { OPENAI_API_KEY: null, custom_field: { keep: true } });
      const gw = await gateway([codex('cx', path)]);
      const before = Date.now();
      const res = await postJson(gw.url, '/v1/responses', BODY);
      assert.equal(res.status, 200);
      assert.equal(tokens.requests.length, 1);
      const req = tokens.requests[0]!;
      assert.deepEqual(req.form, {
        grant_type: 'refresh_token',
        client_id: 'app_EMoamEEZ73f0CkXaXp7hrann',
        refresh_token: 'rt-acct-a-0',
        scope: 'openid profile email',
      });
      assert.equal(req.headers['content-type'], 'application/x-www-form-urlencoded');
      const sent = bearer(backend.requests[0]!);
      assert.notEqual(sent, l.access_token, 'the backend got the new token');
      assert.ok(tokens.accepts(sent));

      const doc = JSON.parse(readFileSync(path, 'utf8')) as Record<string, Record<string, unknown>>;
      assert.equal(doc.tokens!.access_token, sent);
      assert.equal(doc.tokens!.refresh_token, 'rt-acct-a-1');
      assert.notEqual(doc.tokens!.id_token, l.id_token);
      assert.equal(doc.tokens!.account_id, 'acct-a');
      assert.deepEqual(doc.custom_field, { keep: true });
      assert.equal(doc.OPENAI_API_KEY, null);
      assert.ok(Date.parse(String(doc.last_refresh)) >= before - 1000);
      assert.equal(statSync(path).mode & 0o777, 0o600);

      await postJson(gw.url, '/v1/responses', BODY);
      assert.equal(tokens.requests.length, 1, 'a fresh token is not refreshed again');
      assert.equal(bearer(backend.requests[1]!), sent);
      assertNoSecrets(gw, l.access_token, l.refresh_token, sent, 'rt-acct-a-1');
    });

    for (const [state, expiresInSec] of [
      ['due (still valid)', 60],
      ['expired', -60],
    ] as const) {
      it(`refreshes exactly once for 20 concurrent requests, token ${state} (single-flight)`, async () => {
        const l = tokens.login(`acct-b${expiresInSec}`, expiresInSec);
        const gw = await gateway([codex('cx', authFile(l))]);
        const release = tokens.hold();
        const all = Array.from({ length: 20 }, () => postJson(gw.url, '/v1/responses', BODY));
        try {
          await tokens.arrived(1);
          // Expired: all 20 wait for the one refresh. Still valid: 19 go out with the old token meanwhile.
          if (expiresInSec < 0) await until(() => gw.gw.inflight === 20, '20 requests in flight');
          else await until(() => backend.requests.length === 19, '19 requests sent with the old token');
        } finally {
          release();
        }
        const results = await Promise.all(all);
        assert.deepEqual(
          results.map((r) => r.status),
          Array(20).fill(200),
        );
        assert.equal(tokens.requests.length, 1);
        const sent = backend.requests.map(bearer);
        const fresh = sent.filter((t) => t !== l.access_token);
        assert.equal(new Set(fresh).size, 1, 'one new token');
        if (expiresInSec < 0) assert.equal(fresh.length, 20, 'an expired token is never sent');
      });
    }

    it('requests whose token still works do not wait for a slow refresh ahead of expiry', async () => {
      const l = tokens.login('acct-b2', 60);
      const gw = await gateway([codex('cx', authFile(l))]);
      const release = tokens.hold();
      const first = postJson(gw.url, '/v1/responses', BODY);
      try {
        await tokens.arrived(1);
        const others = await Promise.all(
          Array.from({ length: 3 }, () => postJson(gw.url, '/v1/responses', BODY)),
        );
        assert.deepEqual(
          others.map((r) => r.status),
          [200, 200, 200],
        );
        assert.ok(backend.requests.every((r) => bearer(r) === l.access_token));
      } finally {
        release();
      }
      assert.equal((await first).status, 200);
      assert.equal(tokens.requests.length, 1);
    });

    it('a refresh that fails transiently while the token is still valid does not fail the request, nor retry at once', async () => {
      const l = tokens.login('acct-c', 120);
      const gw = await gateway([codex('cx', authFile(l))]);
      tokens.script = () => ({ status: 503, body: { error: { message: 'try later', code: 'unavailable' } } });
      const r1 = await postJson(gw.url, '/v1/responses', BODY);
      assert.equal(r1.status, 200);
      assert.equal(bearer(backend.requests[0]!), l.access_token, 'sent with the still-valid token');
      const r2 = await postJson(gw.url, '/v1/responses', BODY);
      assert.equal(r2.status, 200);
      assert.equal(tokens.requests.length, 1, 'no second refresh within the back-off');
      assert.equal(gw.gw.pool.state.disabled('cx'), undefined);
    });

    it('inline tokens are refreshed in memory only', async () => {
      const l = tokens.login('acct-d', 30);
      const gw = await gateway([
        {
          name: 'cx',
          type: 'codex',
          baseUrl: backend.baseUrl,
          tokenUrl: tokens.url,
          tokens: l,
          refreshAhead: '1m',
        },
      ]);
      assert.equal((await postJson(gw.url, '/v1/responses', BODY)).status, 200);
      assert.equal((await postJson(gw.url, '/v1/responses', BODY)).status, 200);
      assert.equal(tokens.requests.length, 1);
      assert.notEqual(bearer(backend.requests[0]!), l.access_token);
      assert.equal(bearer(backend.requests[1]!), bearer(backend.requests[0]!));
    });

    it('adopts newer tokens that Codex CLI wrote to the file instead of spending its own refresh token', async () => {
      const l = tokens.login('acct-e', 60);
      const path = authFile(l);
      const gw = await gateway([codex('cx', path)]);
      // Codex CLI refreshed the same login meanwhile: its refresh token is now the only live one.
      const newer = { ...l, access_token: accessToken('acct-e', 3600), refresh_token: 'rt-acct-e-cli' };
      tokens.register(newer, 'acct-e');
      writeFileSync(path, JSON.stringify({ OPENAI_API_KEY: null, tokens: newer, last_refresh: 'x' }), {
        mode: 0o600,
      });
      const res = await postJson(gw.url, '/v1/responses', BODY);
      assert.equal(res.status, 200);
      assert.equal(tokens.requests.length, 0, 'no refresh: the file had a fresh token');
      assert.equal(bearer(backend.requests[0]!), newer.access_token);
    });
    it('refresh_token_reused because Codex CLI refreshed at the same moment: adopts its tokens, not disabled', async () => {
      const l = tokens.login('acct-e2', 60);
      const path = authFile(l);
      const gw = await gateway([codex('cx', path)]);
      const newer = { ...l, access_token: accessToken('acct-e2', 3600), refresh_token: 'rt-acct-e2-cli' };
      tokens.register(newer, 'acct-e2');
      tokens.script = () => {
        // Codex CLI won the race: it spent the refresh token and wrote its new login.
        writeFileSync(path, JSON.stringify({ OPENAI_API_KEY: null, tokens: newer }), { mode: 0o600 });
        return { status: 401, body: { error: { code: 'refresh_token_reused', message: 'already used' } } };
      };
      const res = await postJson(gw.url, '/v1/responses', BODY);
      assert.equal(res.status, 200);
      assert.equal(tokens.requests.length, 1);
      assert.equal(bearer(backend.requests[0]!), newer.access_token);
      assert.equal(gw.gw.pool.state.disabled('cx'), undefined);
    });
  });

  describe('after a 401', () => {
    it('refreshes once and retries the same account before failing over', async () => {
      const a = tokens.login('acct-f');
      const b = tokens.login('acct-g');
      const gw = await gateway([codex('cx-a', authFile(a)), codex('cx-b', authFile(b))]);
      tokens.revoke(a.access_token);
      const res = await postJson(gw.url, '/v1/responses', BODY);
      assert.equal(res.status, 200);
      assert.deepEqual(
        backend.requests.map((r) => r.headers['chatgpt-account-id']),
        ['acct-f', 'acct-f'],
        'the retry went to the same account',
      );
      assert.equal(bearer(backend.requests[0]!), a.access_token);
      assert.notEqual(bearer(backend.requests[1]!), a.access_token);
      assert.equal(tokens.requests.length, 1);
      assert.equal(tokens.requests[0]!.form.refresh_token, a.refresh_token);
      assert.equal(
        gw.gw.pool.state.cooldown('cx-a', 'gpt-5', Date.now()),
        undefined,
        'no cooldown for a 401 fixed by a refresh',
      );
    });

    it('20 concurrent 401s cause exactly one refresh, and all 20 succeed', async () => {
      const a = tokens.login('acct-h');
      const gw = await gateway([codex('cx', authFile(a))]);
      tokens.revoke(a.access_token);
      // All 20 reach the backend with the old token, then get their 401s at once.
      const releaseBackend = backend.hold();
      const releaseTokens = tokens.hold();
      const all = Array.from({ length: 20 }, () => postJson(gw.url, '/v1/responses', BODY));
      await until(() => backend.requests.length === 20, '20 attempts with the old token');
      releaseBackend();
      await tokens.arrived(1);
      releaseTokens();
      const results = await Promise.all(all);
      assert.deepEqual(
        results.map((r) => r.status),
        Array(20).fill(200),
      );
      assert.equal(tokens.requests.length, 1);
      assert.equal(backend.requests.length, 40);
      assert.ok(backend.requests.slice(0, 20).every((r) => bearer(r) === a.access_token));
      assert.equal(new Set(backend.requests.slice(20).map(bearer)).size, 1);
    });

    it('requests that arrive while a 401-driven refresh runs wait for it instead of sending a dead token', async () => {
      const a = tokens.login('acct-h2');
      const gw = await gateway([codex('cx', authFile(a))]);
      tokens.revoke(a.access_token);
      const releaseTokens = tokens.hold();
      const first = postJson(gw.url, '/v1/responses', BODY);
      await tokens.arrived(1);
      const later = Array.from({ length: 5 }, () => postJson(gw.url, '/v1/responses', BODY));
      await until(() => gw.gw.inflight === 6, '6 requests in flight');
      releaseTokens();
      const results = await Promise.all([first, ...later]);
      assert.deepEqual(
        results.map((r) => r.status),
        Array(6).fill(200),
      );
      assert.equal(tokens.requests.length, 1);
      assert.equal(backend.requests.filter((r) => bearer(r) === a.access_token).length, 1);
    });

    it('a second 401 after the refresh switches account and cools the first', async () => {
      const a = tokens.login('acct-i');
      const b = tokens.login('acct-j');
      const gw = await gateway([codex('cx-a', authFile(a)), codex('cx-b', authFile(b), { priority: 1 })]);
      const rejected = new Set<string>();
      backend.answer = undefined;
      const accepts = tokens.accepts;
      tokens.accepts = (t) => !rejected.has(t) && accepts(t);
      // Every token of account a is refused, even a fresh one.
      tokens.revoke(a.access_token);
      tokens.script = (req) => {
        if (req.form.refresh_token !== a.refresh_token) return undefined;
        const access = accessToken('acct-i');
        rejected.add(access);
        return {
          status: 200,
          body: { access_token: access, refresh_token: 'rt-acct-i-1', id_token: idToken('acct-i') },
        };
      };
      const res = await postJson(gw.url, '/v1/responses', BODY);
      assert.equal(res.status, 200);
      assert.deepEqual(
        backend.requests.map((r) => r.headers['chatgpt-account-id']),
        ['acct-i', 'acct-i', 'acct-j'],
      );
      assert.equal(tokens.requests.length, 1);
      const cooling = gw.gw.pool.state.cooldown('cx-a', 'gpt-5', Date.now());
      assert.equal(cooling?.kind, 'transient');
      assert.equal(gw.gw.pool.state.disabled('cx-a'), undefined);
    });
  });

  describe('terminal refresh failures', () => {
    async function expectDisabled(gw: TestGateway, name: string, code: string): Promise<void> {
      assert.equal(gw.gw.pool.state.disabled(name), `refresh failed: ${code}`);
      const warning = gw.logs.find((l) => l.msg === 'codex token refresh failed for good: upstream disabled');
      assert.ok(warning, 'a warning says why');
      assert.equal(warning.code, code);
    }

    it('refresh_token_reused disables the account, with no loop, and the request fails over (expired token)', async () => {
      const a = tokens.login('acct-k', -60);
      const path = authFile(a);
      const before = readFileSync(path, 'utf8');
      const gw = await gateway([codex('cx', path), openai()]);
      tokens.script = () => ({
        status: 401,
        body: {
          error: {
            message: 'Your refresh token has already been used.',
            type: 'invalid_request_error',
            code: 'refresh_token_reused',
          },
        },
      });
      const res = await postJson(gw.url, '/v1/responses', BODY);
      assert.equal(res.status, 200);
      assert.match(res.text(), /resp_fallback/);
      assert.equal(tokens.requests.length, 1);
      assert.equal(backend.requests.length, 0, 'the expired token was never sent');
      await expectDisabled(gw, 'cx', 'refresh_token_reused');

      const again = await postJson(gw.url, '/v1/responses', BODY);
      assert.equal(again.status, 200);
      assert.equal(tokens.requests.length, 1, 'never refreshed again');
      assert.equal(readFileSync(path, 'utf8'), before, 'the file is left alone');
      assertNoSecrets(gw, a.access_token, a.refresh_token);
    });

    it('after a 401, refresh_token_reused disables the account and the same request fails over', async () => {
      const a = tokens.login('acct-l');
      const gw = await gateway([codex('cx', authFile(a)), openai()]);
      tokens.revoke(a.access_token);
      tokens.script = () => ({
        status: 401,
        body: { error: { code: 'refresh_token_reused', message: 'used' } },
      });
      const res = await postJson(gw.url, '/v1/responses', BODY);
      assert.equal(res.status, 200);
      assert.match(res.text(), /resp_fallback/);
      assert.equal(backend.requests.length, 1);
      assert.equal(tokens.requests.length, 1);
      await expectDisabled(gw, 'cx', 'refresh_token_reused');
    });

    it('a dead account fails over to another codex account in the same request, and is never tried again', async () => {
      const a = tokens.login('acct-k2', -60);
      const b = tokens.login('acct-k3');
      const gw = await gateway([codex('cx-a', authFile(a)), codex('cx-b', authFile(b), { priority: 1 })]);
      tokens.script = (req) =>
        req.form.refresh_token === a.refresh_token
          ? { status: 401, body: { error: { code: 'refresh_token_reused', message: 'used' } } }
          : undefined;
      const res = await postJson(gw.url, '/v1/responses', BODY);
      assert.equal(res.status, 200);
      assert.deepEqual(
        backend.requests.map((r) => r.headers['chatgpt-account-id']),
        ['acct-k3'],
      );
      assert.equal(tokens.requests.length, 1, 'cx-a (preferred) was tried first');
      await expectDisabled(gw, 'cx-a', 'refresh_token_reused');
      assert.equal((await postJson(gw.url, '/v1/responses', BODY)).status, 200);
      assert.equal(tokens.requests.length, 1, 'one refresh in all');
      assert.equal(backend.requests.length, 2);
      assert.equal(backend.requests[1]!.headers['chatgpt-account-id'], 'acct-k3');
    });

    it('an OAuth invalid_grant (400) is terminal too; alone, the client gets a clear error and then a 503 naming the reason', async () => {
      const a = tokens.login('acct-m', -60);
      const gw = await gateway([codex('cx', authFile(a))]);
      tokens.script = () => ({
        status: 400,
        body: { error: 'invalid_grant', error_description: 'Refresh token expired' },
      });
      const res = await postJson(gw.url, '/v1/responses', BODY);
      assert.equal(res.status, 502);
      const error = res.json().error as Record<string, unknown>;
      assert.equal(error.type, 'upstream_error');
      assert.match(String(error.message), /token refresh failed.*invalid_grant.*Refresh token expired/);
      await expectDisabled(gw, 'cx', 'invalid_grant');

      const again: RawResponse = await postJson(gw.url, '/v1/responses', BODY);
      assert.equal(again.status, 503);
      assert.match(
        String((again.json().error as Record<string, unknown>).message),
        /cx: refresh failed: invalid_grant/,
      );
      assert.equal(tokens.requests.length, 1);
    });
  });

  describe('transient refresh failures', () => {
    it('an expired token and a 5xx token endpoint: a clear 502, a short cooldown, not disabled, no hammering', async () => {
      const gw = await gateway([codex('cx', authFile(tokens.login('acct-n', -60)))], {
        transientCooldown: '20s',
      });
      tokens.script = () => ({ status: 503, body: 'upstream connect error' });
      const res = await postJson(gw.url, '/v1/responses', BODY);
      assert.equal(res.status, 502);
      assert.match(
        String((res.json().error as Record<string, unknown>).message),
        /token refresh failed \(token endpoint answered HTTP 503/,
      );
      assert.equal(gw.gw.pool.state.disabled('cx'), undefined);
      const cooling = gw.gw.pool.state.cooldown('cx', undefined, Date.now());
      assert.equal(cooling?.kind, 'transient');
      assert.ok(cooling.until - Date.now() <= 20_000);
      assert.equal((await postJson(gw.url, '/v1/responses', BODY)).status, 502);
      assert.equal(tokens.requests.length, 1, 'not retried within the back-off');
      assert.equal(backend.requests.length, 0);
    });

    it('after a 401, a 5xx token endpoint fails the same request over, cools the account, does not disable it', async () => {
      const a = tokens.login('acct-o2');
      const gw = await gateway([codex('cx', authFile(a)), openai()]);
      tokens.revoke(a.access_token);
      tokens.script = () => ({ status: 503, body: 'upstream connect error' });
      const res = await postJson(gw.url, '/v1/responses', BODY);
      assert.equal(res.status, 200);
      assert.match(res.text(), /resp_fallback/);
      assert.equal(backend.requests.length, 1, 'the rejected token was not sent again');
      assert.equal(tokens.requests.length, 1);
      assert.equal(gw.gw.pool.state.disabled('cx'), undefined);
      assert.equal(gw.gw.pool.state.cooldown('cx', undefined, Date.now())?.kind, 'transient');
    });

    it('an unreachable token endpoint fails over to another upstream', async () => {
      const a = tokens.login('acct-o', -60);
      const gw = await gateway([
        {
          name: 'cx',
          type: 'codex',
          baseUrl: backend.baseUrl,
          tokenUrl: 'http://127.0.0.1:1/oauth/token',
          auth: authFile(a),
        },
        openai(),
      ]);
      const res = await postJson(gw.url, '/v1/responses', BODY);
      assert.equal(res.status, 200);
      assert.match(res.text(), /resp_fallback/);
      assert.equal(gw.gw.pool.state.disabled('cx'), undefined);
      assert.equal(gw.gw.pool.state.cooldown('cx', undefined, Date.now())?.kind, 'transient');
    });
  });

  it('shutdown waits for a running refresh, so the rotated refresh token reaches the file', async () => {
    const path = authFile(tokens.login('acct-q', -60));
    const gw = await gateway([codex('cx', path)]);
    const release = tokens.hold();
    const pending = postJson(gw.url, '/v1/responses', BODY);
    await tokens.arrived(1);
    const closing = gw.close(0);
    release();
    await closing;
    await pending;
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { tokens: Record<string, unknown> };
    assert.equal(doc.tokens.refresh_token, 'rt-acct-q-1');
  });

  it('CodexAccount.idle() (awaited by the plugin on close) resolves only after the refresh and its write-back', async () => {
    const l = tokens.login('acct-r', -60);
    const path = authFile(l);
    const { tokens: t, doc } = loadAuthFile('cx', path);
    const account = new CodexAccount(
      t,
      { kind: 'file', path, doc },
      {
        tokenUrl: tokens.url,
        clientId: 'app_test',
        userAgent: 'codex_cli_rs/0.169.0 (tapgate)',
        refreshAheadMs: 300_000,
        retryBackoffMs: 5000,
        log: createLogger('silent'),
        onDead: () => assert.fail('not dead'),
        onUnusable: () => assert.fail('not unusable'),
      },
    );
    const release = tokens.hold();
    const ensuring = account.ensure(false, undefined);
    await tokens.arrived(1);
    let idle = false;
    const idling = account.idle().then(() => (idle = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(idle, false, 'idle while the refresh runs');
    release();
    await idling;
    const onDisk = JSON.parse(readFileSync(path, 'utf8')) as { tokens: Record<string, unknown> };
    assert.equal(onDisk.tokens.refresh_token, 'rt-acct-r-1', 'written back before idle() resolved');
    await ensuring;
    await account.idle(); // nothing running: resolves at once
  });

  it('two upstreams on one auth file share one account: one refresh for both', async () => {
    const path = authFile(tokens.login('acct-p', 60));
    const gw = await gateway([
      codex('cx-1', path, { models: ['m1'] }),
      codex('cx-2', path, { models: ['m2'] }),
    ]);
    assert.equal((await postJson(gw.url, '/v1/responses', { ...BODY, model: 'm1' })).status, 200);
    assert.equal((await postJson(gw.url, '/v1/responses', { ...BODY, model: 'm2' })).status, 200);
    assert.equal(tokens.requests.length, 1);
    assert.equal(bearer(backend.requests[0]!), bearer(backend.requests[1]!));
  });
});
