/**
 * Cooldowns: every upstream cooling answers 429 with the earliest reset; account-wide quota signals
 * (a usage_limit_reached body) cool every model of the account (Codex's usage-window headers: see
 * test/plugins/codex-usage-window.test.ts); transient cooldowns (5xx) are soft, steer traffic away without blocking it, and clear on
 * success, while rate-limit cooldowns are hard.
 */
import assert from 'node:assert/strict';
import type { TestGateway } from '../helpers/gateway.js';
import { jsonError, poolHarness, servedBy, type ScriptedUpstream } from '../helpers/pool.js';
import { deadline, postJson, type RawResponse } from '../helpers/raw.js';

const MODEL = 'gpt-test';
const OTHER_MODEL = 'gpt-other';
const BODY = { model: MODEL, stream: true, input: 'hi' };

const h = poolHarness();

function post(g: TestGateway, body: Record<string, unknown> = BODY): Promise<RawResponse> {
  return deadline(postJson(g.url, '/v1/responses', body), 5000, 'the client response never ended');
}

async function pair(): Promise<{ A: ScriptedUpstream; B: ScriptedUpstream; g: TestGateway }> {
  const A = await h.upstream('A');
  const B = await h.upstream('B');
  const g = await h.gateway([
    { name: 'A', url: A.url, priority: 0 },
    { name: 'B', url: B.url, priority: 1 },
  ]);
  return { A, B, g };
}

function errorOf(r: RawResponse): { message: string; type: string; code: string | null } {
  assert.match(String(r.headers['content-type']), /^application\/json/);
  return r.json().error as { message: string; type: string; code: string | null };
}

/** Asserts a cooldown until about `now + ms` (between the bounds measured around the request). */
function assertUntil(until: number, before: number, ms: number): void {
  assert.ok(
    until >= before + ms && until <= Date.now() + ms,
    `cooldown ends ${until - Date.now()}ms from now, expected about ${ms}ms`,
  );
}

describe('pool: cooldowns', () => {
  afterEach(() => h.cleanup());

  describe('every upstream cooling', () => {
    it('answers 429 with Retry-After = the earliest reset (ceil, in seconds) and says every upstream is cooling', async () => {
      const { A, B, g } = await pair();
      const limited = {
        error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' },
      };
      A.fallback = jsonError(429, limited, { 'retry-after': '30' });
      B.fallback = jsonError(429, limited, { 'retry-after-ms': '7500' });

      // Both answer 429: the client gets the last upstream's 429, and both are now cooling.
      const r1 = await post(g);
      assert.equal(r1.status, 429);
      assert.equal(r1.headers['retry-after-ms'], '7500');
      assert.equal(A.requests.length, 1);
      assert.equal(B.requests.length, 1);
      const untilB = g.gw.pool.state.cooldown('B', MODEL, Date.now())!.until;

      const before = Date.now();
      const r2 = await post(g);
      const after = Date.now();
      assert.equal(r2.status, 429);
      const retryAfter = r2.headers['retry-after'];
      assert.match(String(retryAfter), /^\d+$/, 'Retry-After in whole seconds');
      // B resets first (7.5 s, not A's 30 s), rounded up.
      const lo = Math.ceil((untilB - after) / 1000);
      const hi = Math.ceil((untilB - before) / 1000);
      assert.ok(
        Number(retryAfter) >= lo && Number(retryAfter) <= hi,
        `Retry-After ${retryAfter}, expected ${lo}..${hi}`,
      );
      assert.ok(Number(retryAfter) >= 7 && Number(retryAfter) <= 8);
      const err = errorOf(r2);
      assert.match(err.message, /every upstream .*rate limited or cooling/i);
      assert.equal(err.type, 'rate_limit_error');
      assert.equal(err.code, 'rate_limit_exceeded');
      assert.equal(A.requests.length, 1, 'no upstream is called while all are cooling');
      assert.equal(B.requests.length, 1);
    });

    it('Retry-After as an HTTP date cools until that date', async () => {
      const { A, g } = await pair();
      const resetAt = Math.ceil(Date.now() / 1000) * 1000 + 20_000; // HTTP dates have whole seconds
      A.answer(
        jsonError(
          429,
          { error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } },
          { 'retry-after': new Date(resetAt).toUTCString() },
        ),
      );
      const r = await post(g);
      assert.equal(servedBy(r), 'B');
      const cooldown = g.gw.pool.state.cooldown('A', MODEL, Date.now());
      assert.ok(cooldown, 'A should be cooling');
      assert.equal(cooldown.kind, 'rate_limit');
      assert.ok(
        Math.abs(cooldown.until - resetAt) < 50,
        `until is ${cooldown.until - resetAt}ms off the date`,
      );
    });

    it('a 429 usage_limit_reached body (resets_in_seconds) cools every model of that account', async () => {
      const { A, B, g } = await pair();
      A.answer(
        jsonError(429, {
          error: {
            type: 'usage_limit_reached',
            message: 'The usage limit has been reached',
            plan_type: 'plus',
            resets_in_seconds: 120,
          },
        }),
      );
      const t0 = Date.now();
      const r1 = await post(g);
      assert.equal(r1.status, 200);
      assert.equal(servedBy(r1), 'B');

      const other = g.gw.pool.state.cooldown('A', OTHER_MODEL, Date.now());
      assert.ok(other, 'another model of the account should be cooling too');
      assert.equal(other.kind, 'rate_limit');
      assertUntil(other.until, t0, 120_000);

      // A serves any model, and is preferred; still, the other model goes to B.
      const r2 = await post(g, { ...BODY, model: OTHER_MODEL });
      assert.equal(servedBy(r2), 'B');
      assert.equal(A.requests.length, 1);
      assert.equal(B.requests.length, 2);
    });
  });

  describe('soft transient cooldowns', () => {
    it('one upstream: after a 500 the next request is still sent to it, and its success clears the cooldown', async () => {
      const A = await h.upstream('A');
      const g = await h.gateway([{ name: 'A', url: A.url }]);
      A.answer(jsonError(500, { error: { message: 'A exploded', type: 'server_error', code: null } }));
      const t0 = Date.now();
      const r1 = await post(g);
      assert.equal(r1.status, 500);
      assert.equal(errorOf(r1).message, 'A exploded');
      const cooldown = g.gw.pool.state.cooldown('A', MODEL, Date.now());
      assert.ok(cooldown, 'A should be cooling after the 500');
      assert.equal(cooldown.kind, 'transient');
      assertUntil(cooldown.until, t0, 30_000); // proxy.transientCooldown default

      const started = performance.now();
      const r2 = await post(g);
      assert.ok(performance.now() - started < 1000, 'the request must not wait for the cooldown');
      assert.equal(r2.status, 200);
      assert.equal(servedBy(r2), 'A');
      assert.equal(A.requests.length, 2);
      assert.equal(g.gw.pool.state.cooldown('A', MODEL, Date.now()), undefined, 'success clears it');
    });

    it('two upstreams: after A’s 500 the next request prefers B, though A has the better priority', async () => {
      const { A, B, g } = await pair();
      A.answer(jsonError(500, { error: { message: 'A exploded', type: 'server_error', code: null } }));
      const r1 = await post(g);
      assert.equal(servedBy(r1), 'B');
      const r2 = await post(g);
      assert.equal(servedBy(r2), 'B');
      assert.equal(A.requests.length, 1);
      assert.equal(B.requests.length, 2);
      // B's successes do not clear A's cooldown.
      assert.equal(g.gw.pool.state.cooldown('A', MODEL, Date.now())?.kind, 'transient');
    });

    it('a rate-limit cooldown is hard: with one upstream, the next request gets 429 without reaching it', async () => {
      const A = await h.upstream('A');
      const g = await h.gateway([{ name: 'A', url: A.url }]);
      A.answer(
        jsonError(
          429,
          { error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } },
          { 'retry-after': '30' },
        ),
      );
      const r1 = await post(g);
      assert.equal(r1.status, 429);
      assert.equal(r1.headers['retry-after'], '30');
      const r2 = await post(g);
      assert.equal(r2.status, 429);
      assert.ok(['29', '30'].includes(String(r2.headers['retry-after'])), `got ${r2.headers['retry-after']}`);
      assert.equal(A.requests.length, 1);
    });
  });
});
