/**
 * Issue 16: `GET /backend-api/wham/usage` and `GET /api/codex/usage`, where Codex reads its limits
 * (the path it builds from `chatgpt_base_url`). Answered by the codex-upstream plugin from the pool's
 * Codex accounts, as their latest `x-codex-*` windows left them, in the body Codex decodes: the four
 * window fields required 32-bit integers, `reset_at` in unix seconds. The pool's view: the usable
 * account with the most headroom; `limit_reached` with the soonest back when none is usable for quota
 * reasons; `rate_limit: null` when nothing is known. The client key is required like on any route.
 */
import assert from 'node:assert/strict';
import { codexStream, type CodexBackend } from '../helpers/codex-backend.js';
import { accessToken, AUTH_CLAIM, makeJwt } from '../helpers/codex-jwt.js';
import type { TokenServer } from '../helpers/codex-token-server.js';
import { CLIENT_KEY, type TestGateway } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { DEFAULT_PLUGINS, gatewayConfig } from '../helpers/proxy-config.js';
import { deadline, postJson, rawRequest, type RawResponse } from '../helpers/raw.js';
import { happyStream, writeSseHead } from '../helpers/upstream.js';

const BODY = { model: 'gpt-5', input: 'hi', stream: true };
const HOUR_S = 3600;
const WEEK_S = 7 * 24 * HOUR_S;
const PATHS = ['/backend-api/wham/usage', '/api/codex/usage'];

// ---- A strict decoder: what Codex's serde models accept, nothing more ----------------------------

interface Window {
  used_percent: number;
  limit_window_seconds: number;
  reset_after_seconds: number;
  reset_at: number;
}
interface Status {
  plan_type: string;
  rate_limit: {
    allowed: boolean;
    limit_reached: boolean;
    primary_window: Window | null;
    secondary_window: Window | null;
  } | null;
  credits: null;
}

const PLANS = ['free', 'plus', 'pro', 'team', 'business', 'enterprise', 'edu'];

function keysOf(o: object): string[] {
  return Object.keys(o).sort();
}

function int32(v: unknown, what: string): number {
  assert.ok(typeof v === 'number' && Number.isInteger(v), `${what}: ${String(v)} is not an integer`);
  assert.ok(v >= -(2 ** 31) && v <= 2 ** 31 - 1, `${what}: ${v} is not a 32-bit integer`);
  return v;
}

function decodeWindow(v: unknown, what: string): Window | null {
  if (v === null) return null;
  assert.ok(typeof v === 'object' && !Array.isArray(v), `${what}: not an object`);
  const w = v as Record<string, unknown>;
  assert.deepEqual(
    keysOf(w),
    ['limit_window_seconds', 'reset_after_seconds', 'reset_at', 'used_percent'],
    `${what}: the four required fields`,
  );
  for (const k of Object.keys(w)) int32(w[k], `${what}.${k}`);
  return w as unknown as Window;
}

/** The body as Codex decodes it (RateLimitStatusPayload): throws on any field it would reject. */
function decodeStatus(r: RawResponse): Status {
  assert.equal(r.status, 200, r.text());
  assert.match(String(r.headers['content-type']), /^application\/json/);
  const body = r.json();
  assert.deepEqual(keysOf(body), ['credits', 'plan_type', 'rate_limit']);
  assert.ok(PLANS.includes(body.plan_type as string), `plan_type ${String(body.plan_type)}`);
  assert.equal(body.credits, null);
  const rl = body.rate_limit;
  if (rl !== null) {
    assert.ok(typeof rl === 'object' && !Array.isArray(rl));
    const d = rl as Record<string, unknown>;
    assert.deepEqual(keysOf(d), ['allowed', 'limit_reached', 'primary_window', 'secondary_window']);
    assert.equal(typeof d.allowed, 'boolean');
    assert.equal(typeof d.limit_reached, 'boolean');
    decodeWindow(d.primary_window, 'primary_window');
    decodeWindow(d.secondary_window, 'secondary_window');
  }
  return body as unknown as Status;
}

describe('plugin codex-upstream: /backend-api/wham/usage and /api/codex/usage', function () {
  this.timeout(30_000);
  const h = Harness.perTest();
  let tokens: TokenServer;
  let backend: CodexBackend;
  /** The usage headers each account (by chatgpt-account-id) sends, on every answer. */
  let headersOf: Map<string, Record<string, string>>;
  let served: string[];

  beforeEach(async () => {
    tokens = await h.tokenServer();
    backend = await h.codexBackend(() => true);
    headersOf = new Map();
    served = [];
    backend.answer = (rec, res) => {
      const account = String(rec.headers['chatgpt-account-id']);
      served.push(account);
      writeSseHead(res, headersOf.get(account) ?? {});
      res.end(codexStream().join(''));
    };
  });

  /** Codex upstreams named after their accounts; `plans` gives an account an id_token with that plan. */
  function codexUpstreams(names: string[], plans: Record<string, string> = {}): Record<string, unknown>[] {
    return names.map((name) => ({
      name,
      type: 'codex',
      baseUrl: backend.baseUrl,
      tokenUrl: tokens.url,
      tokens: {
        access_token: accessToken(name),
        refresh_token: `rt-${name}`,
        account_id: name,
        ...(plans[name] === undefined
          ? {}
          : {
              id_token: makeJwt({
                exp: Math.floor(Date.now() / 1000) + 3600,
                [AUTH_CLAIM]: { chatgpt_account_id: name, chatgpt_plan_type: plans[name] },
              }),
            }),
      },
    }));
  }

  function gateway(upstreams: Record<string, unknown>[]): Promise<TestGateway> {
    return h.gatewayYaml(
      gatewayConfig({
        // Unreported accounts first, then by headroom: each test's requests reach the accounts in order.
        pool: { strategy: 'most-headroom' },
        upstreams,
        plugins: [...DEFAULT_PLUGINS, 'codex-upstream'],
      }),
    );
  }

  async function post(g: TestGateway): Promise<void> {
    const r = await deadline(
      postJson(g.url, '/v1/responses', BODY),
      10_000,
      'the client response never ended',
    );
    assert.equal(r.status, 200, r.text());
  }

  /** `key` null: no credential at all. */
  function get(g: TestGateway, path: string, key: string | null = CLIENT_KEY): Promise<RawResponse> {
    return rawRequest(g.url, {
      method: 'GET',
      path,
      headers: key === null ? {} : { authorization: `Bearer ${key}` },
    });
  }

  /** Both paths, decoded strictly; their bodies must agree. */
  async function status(g: TestGateway): Promise<Status> {
    const [a, b] = await Promise.all(PATHS.map(async (p) => decodeStatus(await get(g, p))));
    const stable = (s: Status) => JSON.stringify(s, (k, v: unknown) => (k === 'reset_after_seconds' ? 0 : v));
    assert.equal(stable(a!), stable(b!), 'both paths give the same view');
    return a!;
  }

  /** The usage headers of an account at `primary` % and `secondary` %, with the given resets. */
  function usage(
    primary: number,
    secondary: number,
    primaryResetS = 2 * HOUR_S,
    secondaryResetS = 3 * 24 * HOUR_S,
  ) {
    return {
      'x-codex-primary-used-percent': String(primary),
      'x-codex-primary-window-minutes': '300',
      'x-codex-primary-reset-after-seconds': String(primaryResetS),
      'x-codex-secondary-used-percent': String(secondary),
      'x-codex-secondary-window-minutes': '10080',
      'x-codex-secondary-reset-after-seconds': String(secondaryResetS),
    };
  }

  it('one account: its windows as whole numbers, lengths in seconds, resets in unix seconds, its plan', async () => {
    const g = await gateway(codexUpstreams(['acct-a'], { 'acct-a': 'pro' }));
    const resetAt = Math.floor(Date.now() / 1000) + WEEK_S - 100;
    headersOf.set('acct-a', {
      'x-codex-primary-used-percent': '12.6',
      'x-codex-primary-window-minutes': '300',
      'x-codex-primary-reset-after-seconds': '7980',
      'x-codex-secondary-used-percent': '40.2',
      'x-codex-secondary-window-minutes': '10080',
      'x-codex-secondary-reset-at': String(resetAt),
    });
    const t0 = Date.now();
    await post(g);
    const t1 = Date.now();
    const s = await status(g);
    const t2 = Date.now();
    assert.equal(s.plan_type, 'pro', 'the chatgpt_plan_type claim of the account');
    assert.deepEqual(
      { allowed: s.rate_limit!.allowed, limit_reached: s.rate_limit!.limit_reached },
      { allowed: true, limit_reached: false },
    );
    const p = s.rate_limit!.primary_window!;
    const w = s.rate_limit!.secondary_window!;
    assert.equal(p.used_percent, 13, '12.6 rounds to 13');
    assert.equal(p.limit_window_seconds, 300 * 60);
    // The reset was reported as "in 7980 s" when the answer came (between t0 and t1).
    assert.ok(
      p.reset_at >= Math.round((t0 + 7_980_000) / 1000) && p.reset_at <= Math.round((t1 + 7_980_000) / 1000),
    );
    assert.ok(
      p.reset_after_seconds >= 7980 - Math.ceil((t2 - t0) / 1000) - 1 && p.reset_after_seconds <= 7980,
    );
    assert.equal(w.used_percent, 40);
    assert.equal(w.limit_window_seconds, WEEK_S);
    assert.equal(w.reset_at, resetAt, 'reset-at passes through as unix seconds');
    assert.ok(
      w.reset_after_seconds <= resetAt - Math.floor(t0 / 1000) &&
        w.reset_after_seconds >= resetAt - Math.ceil(t2 / 1000),
    );

    // Nothing that names or opens the account.
    const text = (await get(g, PATHS[0]!)).text();
    for (const secret of ['acct-a', 'rt-acct-a', 'Bearer', 'eyJ']) assert.ok(!text.includes(secret), secret);
  });

  it('a query string is ignored; no key or a wrong key is 401; another method is not this route', async () => {
    const g = await gateway(codexUpstreams(['acct-a']));
    headersOf.set('acct-a', usage(5, 6));
    await post(g);
    for (const path of PATHS) {
      const s = decodeStatus(await get(g, `${path}?client=codex&x=1`));
      assert.equal(s.rate_limit!.primary_window!.used_percent, 5);
      assert.equal((await get(g, path, null)).status, 401, `${path} without a key`);
      const wrong = await get(g, path, 'sk-not-the-client-key-000');
      assert.equal(wrong.status, 401, `${path} with a wrong key`);
      assert.ok(!wrong.text().includes('rate_limit'));
      const postIt = await rawRequest(g.url, {
        path,
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(postIt.status, 404, `POST ${path}`);
    }
    assert.equal(backend.requests.length, 1, 'the usage routes never reach an upstream');
  });

  it('two accounts: the usable one with the most headroom, both windows from it; the plan defaults to plus', async () => {
    const g = await gateway(codexUpstreams(['acct-a', 'acct-b']));
    headersOf.set('acct-a', usage(70, 20));
    headersOf.set('acct-b', usage(10, 50, 4 * HOUR_S));
    await post(g);
    await post(g);
    assert.deepEqual(served, ['acct-a', 'acct-b']);
    const s = await status(g);
    assert.equal(s.plan_type, 'plus');
    assert.equal(s.rate_limit!.allowed, true);
    assert.equal(s.rate_limit!.limit_reached, false);
    // a's most-used window is 70 %, b's 50 %: b's windows, both of them (not a's 20 % weekly).
    assert.equal(s.rate_limit!.primary_window!.used_percent, 10);
    assert.ok(s.rate_limit!.primary_window!.reset_after_seconds > 3 * HOUR_S, 'b’s reset, not a’s');
    assert.equal(s.rate_limit!.secondary_window!.used_percent, 50);

    // b out of rotation (an operator's disable, then a rate-limit cooldown): a is the view.
    g.gw.pool.state.disable('acct-b', 'test');
    assert.equal((await status(g)).rate_limit!.primary_window!.used_percent, 70);
    g.gw.pool.state.enable('acct-b');
    assert.equal((await status(g)).rate_limit!.primary_window!.used_percent, 10);
    g.gw.pool.state.cool('acct-b', undefined, Date.now() + 60_000, 'test 429', 'rate_limit');
    assert.equal((await status(g)).rate_limit!.primary_window!.used_percent, 70);
    // A transient cooldown (a 5xx) does not keep the pool from the account.
    g.gw.pool.state.clearCooldown('acct-b', undefined);
    g.gw.pool.state.cool('acct-b', undefined, Date.now() + 60_000, 'test 502', 'transient');
    assert.equal((await status(g)).rate_limit!.primary_window!.used_percent, 10);
  });

  it('exhausted accounts: the others are the view; when every one is, limit_reached with the soonest back', async () => {
    const g = await gateway(codexUpstreams(['acct-a', 'acct-b']));
    headersOf.set('acct-a', usage(100, 80, 600));
    headersOf.set('acct-b', usage(30, 40));
    await post(g);
    await post(g);
    assert.deepEqual(served, ['acct-a', 'acct-b']);
    let s = await status(g);
    assert.deepEqual(
      [s.rate_limit!.allowed, s.rate_limit!.limit_reached, s.rate_limit!.primary_window!.used_percent],
      [true, false, 30],
      'a is out, b serves',
    );

    headersOf.set('acct-b', usage(100, 90, 1200));
    await post(g);
    assert.deepEqual(served, ['acct-a', 'acct-b', 'acct-b']);
    s = await status(g);
    assert.equal(s.rate_limit!.allowed, false);
    assert.equal(s.rate_limit!.limit_reached, true);
    // a comes back in ~600 s, b in ~1200 s: a's windows.
    const p = s.rate_limit!.primary_window!;
    assert.equal(p.used_percent, 100);
    assert.ok(p.reset_after_seconds > 500 && p.reset_after_seconds <= 600, String(p.reset_after_seconds));
    assert.equal(s.rate_limit!.secondary_window!.used_percent, 80);

    // Every account disabled: nothing usable, but not for quota reasons.
    g.gw.pool.state.disable('acct-a', 'test');
    g.gw.pool.state.disable('acct-b', 'test');
    s = await status(g);
    assert.deepEqual(s.rate_limit, {
      allowed: false,
      limit_reached: false,
      primary_window: null,
      secondary_window: null,
    });
  });

  it('nothing known yet: rate_limit null; a window with only its percent gets the default length and reset', async () => {
    const g = await gateway(codexUpstreams(['acct-a']));
    let s = await status(g);
    assert.deepEqual(s, { plan_type: 'plus', rate_limit: null, credits: null });

    headersOf.set('acct-a', { 'x-codex-primary-used-percent': '12' });
    const t0 = Date.now();
    await post(g);
    s = await status(g);
    const t1 = Date.now();
    assert.equal(s.rate_limit!.secondary_window, null, 'not reported');
    const p = s.rate_limit!.primary_window!;
    assert.equal(p.used_percent, 12);
    assert.equal(p.limit_window_seconds, 5 * HOUR_S, 'the 5-hour window');
    assert.equal(
      p.reset_after_seconds,
      5 * HOUR_S,
      'a reset not reported: a whole window, the latest it can be',
    );
    assert.ok(
      p.reset_at >= Math.floor(t0 / 1000) + 5 * HOUR_S && p.reset_at <= Math.floor(t1 / 1000) + 5 * HOUR_S,
    );
  });

  it('a window past its reset is empty', async () => {
    const g = await gateway(codexUpstreams(['acct-a']));
    const past = Math.floor(Date.now() / 1000) - 60;
    headersOf.set('acct-a', {
      'x-codex-primary-used-percent': '95',
      'x-codex-primary-window-minutes': '300',
      'x-codex-primary-reset-at': String(past),
    });
    await post(g);
    const p = (await status(g)).rate_limit!.primary_window!;
    assert.deepEqual(p, {
      used_percent: 0,
      limit_window_seconds: 5 * HOUR_S,
      reset_after_seconds: 0,
      reset_at: past,
    });
  });

  it('no Codex upstream in the pool: rate_limit null', async () => {
    const openai = await h.upstream((_req, res) => {
      writeSseHead(res, { 'x-codex-primary-used-percent': '50' });
      res.end(happyStream().join(''));
    });
    const g = await gateway([
      { name: 'oa', type: 'openai', baseUrl: `${openai.url}/v1`, apiKey: 'sk-upstream-oa-secret' },
    ]);
    await post(g);
    assert.deepEqual(await status(g), { plan_type: 'plus', rate_limit: null, credits: null });
  });
});
