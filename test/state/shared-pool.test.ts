/**
 * Issue 13: pool state shared on a real Redis by several gateways (in-process here; the headline
 * scenarios run as separate processes in instances.test.ts). Cooldowns, disabled accounts, session
 * bindings and cluster-wide concurrency slots, and what happens when Redis is away, slow or wiped.
 */
import assert from 'node:assert/strict';
import type { TestGateway } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { jsonError, servedBy, until } from '../helpers/pool.js';
import { gatewayConfig, upstreamKey } from '../helpers/proxy-config.js';
import { sharedStateConfig, type SharedStateExtra, type SharedUpstream } from '../helpers/shared-state.js';
import { deadline, postJson, type RawResponse } from '../helpers/raw.js';
import { freePort, startRedis, type TestRedis } from '../helpers/redis.js';

const BODY = { model: 'gpt-test', stream: true, input: 'hi' };

const h = Harness.perTest();

/** A Redis and two accounts, X and Y. */
async function twoAccounts() {
  const redis = h.track(await startRedis());
  const X = await h.scripted('X');
  const Y = await h.scripted('Y');
  const ups: SharedUpstream[] = [
    { name: 'X', up: X },
    { name: 'Y', up: Y },
  ];
  return { redis, X, Y, ups };
}

/** Two gateways on one Redis with the same config. */
async function pair(redis: TestRedis, ups: SharedUpstream[], extra: SharedStateExtra = {}) {
  const yaml = sharedStateConfig(redis.url, ups, extra);
  const A = await h.gatewayYaml(yaml);
  const B = await h.gatewayYaml(yaml);
  return { A, B };
}

function post(g: TestGateway, body: Record<string, unknown> = BODY, headers: Record<string, string> = {}) {
  return deadline(postJson(g.url, '/v1/responses', body, headers), 10_000, 'the client response never ended');
}

function messages(g: TestGateway, msg: string): number {
  return g.logs.filter((l) => l.msg === msg).length;
}

const DOWN = "Redis unavailable: pool state falls back to this process's own until it is back";
const BACK = 'Redis is back: shared state resumed';

describe('state.store: redis — pool state shared by several gateways', () => {
  it('a 429 with Retry-After seen by one gateway keeps the other off that account until it ends', async () => {
    const { redis, X, ups } = await twoAccounts();
    const { A, B } = await pair(redis, ups, { pool: { strategy: 'fill-first' } });
    X.answer(
      jsonError(
        429,
        { error: { message: 'Rate limit reached for gpt-test', type: 'rate_limit_error' } },
        { 'retry-after': '40' },
      ),
    );

    const first = await post(A);
    assert.equal(first.status, 200);
    assert.equal(servedBy(first), 'Y', 'A fails over from the rate-limited X');
    const onA = A.gw.pool.state.cooldown('X', 'gpt-test', Date.now());
    assert.ok(onA !== undefined && onA.kind === 'rate_limit');
    await until(
      () => B.gw.pool.state.cooldown('X', 'gpt-test', Date.now()) !== undefined,
      'B learns the cooldown',
    );
    const onB = B.gw.pool.state.cooldown('X', 'gpt-test', Date.now())!;
    assert.equal(onB.until, onA.until, 'the same end time');
    assert.match(onB.reason, /Rate limit reached/);

    // fill-first would pick X: B never sends it a request while the cooldown lasts.
    for (let i = 0; i < 3; i++) assert.equal(servedBy(await post(B)), 'Y');
    assert.equal(X.requests.length, 1, 'only the request that got the 429 reached X');
  });

  it('a session started on one gateway stays on its account when the next turn goes to the other', async () => {
    const { redis, ups } = await twoAccounts();
    const { A, B } = await pair(redis, ups);
    // B's round robin is moved one step, so without shared bindings each session would land elsewhere.
    await post(B);
    const sessions = ['s1', 's2', 's3', 's4'];
    const onA = new Map<string, string | undefined>();
    for (const s of sessions) onA.set(s, servedBy(await post(A, BODY, { session_id: s })));
    assert.deepEqual(new Set(onA.values()), new Set(['X', 'Y']), 'the sessions spread over both accounts');
    for (const s of sessions)
      assert.equal(servedBy(await post(B, BODY, { session_id: s })), onA.get(s), `session ${s}`);
  });

  it('maxConcurrency holds across gateways: the third request waits, and goes when a slot frees on the other one', async () => {
    const redis = h.track(await startRedis());
    const X = await h.scripted('X');
    // A lease heartbeat far away: the wake-up must come from the release itself.
    const { A, B } = await pair(redis, [{ name: 'X', up: X, maxConcurrency: 2 }], {
      state: { leaseTtl: '60s' },
      pool: { queue: { waitTimeout: '20s' } },
    });
    const held1 = X.holdNext();
    const r1 = post(A);
    const s1 = await held1;
    const held2 = X.holdNext();
    const r2 = post(B);
    const s2 = await held2;
    assert.equal(await redis.client.zcard('tapgate:slots:X'), 2, 'two leases in Redis');

    const r3 = post(A);
    await until(() => A.gw.pool.queue.length === 1, 'the third request waits on A (A holds only one slot)');
    assert.equal(X.requests.length, 2);

    const freed = performance.now();
    s2.finish(); // on B
    const third = await r3;
    assert.equal(third.status, 200);
    assert.ok(performance.now() - freed < 3000, 'woken by the release on the other gateway, not a timer');
    assert.equal(X.requests.length, 3);
    s1.finish();
    assert.equal((await r1).status, 200);
    assert.equal((await r2).status, 200);
    await until(
      () => A.gw.pool.state.inFlight('X') === 0 && B.gw.pool.state.inFlight('X') === 0,
      'slots released',
    );
    assert.equal(await redis.client.zcard('tapgate:slots:X'), 0, 'every lease released in Redis');
  });

  it('a disabled account is disabled everywhere', async () => {
    const { redis, ups } = await twoAccounts();
    const { A, B } = await pair(redis, ups, { pool: { strategy: 'fill-first' } });
    A.gw.pool.state.disable('X', 'refresh failed: invalid_grant');
    await until(() => B.gw.pool.state.disabled('X') !== undefined, 'B learns X is disabled');
    assert.equal(B.gw.pool.state.disabled('X'), 'refresh failed: invalid_grant');
    assert.equal(servedBy(await post(B)), 'Y');
    A.gw.pool.state.enable('X');
    await until(() => B.gw.pool.state.disabled('X') === undefined, 'B learns X is enabled again');
    assert.equal(servedBy(await post(B)), 'X');
  });

  it('an upstream one gateway cannot use (its key is unset there) stays usable on the other', async () => {
    const { redis, X, Y } = await twoAccounts();
    const yaml = gatewayConfig({
      state: { store: 'redis', url: redis.url },
      pool: { strategy: 'fill-first' },
      upstreams: [
        { name: 'X', type: 'openai', baseUrl: X.url + '/v1', apiKey: '${X_KEY:-}' },
        { name: 'Y', type: 'openai', baseUrl: Y.url + '/v1', apiKey: upstreamKey('Y') },
      ],
    });
    const A = await h.gatewayYaml(yaml, { X_KEY: '' });
    const B = await h.gatewayYaml(yaml, { X_KEY: upstreamKey('X') });
    assert.match(String(A.gw.pool.state.disabled('X')), /no API key/);
    assert.equal(servedBy(await post(A)), 'Y');
    // B changes something shared after A's boot: it has arrived, and X is still B's to use.
    B.gw.pool.state.cool('Y', 'other', Date.now() + 60_000, 'r', 'rate_limit');
    await until(() => A.gw.pool.state.cooldown('Y', 'other', Date.now()) !== undefined, 'A hears from B');
    assert.equal(B.gw.pool.state.disabled('X'), undefined);
    assert.equal(servedBy(await post(B)), 'X');
    assert.equal(await redis.client.exists('tapgate:disabled:X'), 0);
  });

  it('a gateway that starts later reads the cooldowns, disabled accounts and bindings already in Redis', async () => {
    const { redis, ups } = await twoAccounts();
    const A = await h.gatewayYaml(sharedStateConfig(redis.url, ups));
    A.gw.pool.state.cool('X', 'gpt-test', Date.now() + 60_000, 'Rate limit reached', 'rate_limit');
    A.gw.pool.state.disable('Y', 'revoked');
    A.gw.pool.state.bind('s:late', 'X', Date.now() + 60_000);
    await until(() => A.gw.pool.state.disabled('Y') !== undefined, 'noop');
    // Written without waiting: wait for Redis to hold them before the second gateway boots.
    await untilAsync(
      async () =>
        (await redis.client.exists('tapgate:cool:X', 'tapgate:disabled:Y', 'tapgate:aff:s:late')) === 3,
    );
    const C = await h.gatewayYaml(sharedStateConfig(redis.url, ups));
    await until(
      () =>
        C.gw.pool.state.cooldown('X', 'gpt-test', Date.now())?.kind === 'rate_limit' &&
        C.gw.pool.state.disabled('Y') === 'revoked' &&
        C.gw.pool.state.affinity('s:late', Date.now()) === 'X',
      'the new gateway holds the shared state',
    );
  });
});

describe('state.store: redis — when Redis fails', () => {
  it('unreachable at boot: the gateway starts, says so, serves on its own state, and joins once Redis is up', async () => {
    const port = await freePort();
    const X = await h.scripted('X');
    const Y = await h.scripted('Y');
    const ups: SharedUpstream[] = [
      { name: 'X', up: X },
      { name: 'Y', up: Y },
    ];
    const A = await h.gatewayYaml(sharedStateConfig(`redis://127.0.0.1:${port}`, ups));
    assert.equal(
      messages(
        A,
        "Redis unreachable at boot: serving on this process's own state, reconnecting in the background",
      ),
      1,
    );
    assert.equal((await post(A)).status, 200);
    A.gw.pool.state.cool('X', undefined, Date.now() + 60_000, 'usage window exhausted', 'rate_limit');

    const redis = h.track(await startRedis(port));
    await until(() => messages(A, BACK) === 1, 'A reconnects on its own', 10_000);
    // What A learned while alone is pushed: a gateway that starts now sees it.
    await untilAsync(async () => (await redis.client.exists('tapgate:cool:X')) === 1);
    const B = await h.gatewayYaml(sharedStateConfig(redis.url, ups));
    await until(
      () => B.gw.pool.state.cooldown('X', undefined, Date.now()) !== undefined,
      'B reads the cooldown',
    );
  });

  it('killed under load: no request fails, one warning per gateway, and sharing resumes after a restart (empty)', async () => {
    const { redis, X, Y } = await twoAccounts();
    const { A, B } = await pair(redis, [
      { name: 'X', up: X, maxConcurrency: 50 },
      { name: 'Y', up: Y },
    ]);
    const results: RawResponse[] = [];
    let stop = false;
    const load = async (g: TestGateway, n: number) => {
      for (let i = 0; !stop; i++) {
        const stream = i % 2 === 0;
        results.push(
          await post(g, { ...BODY, stream }, i % 3 === 0 ? { session_id: `load-${n}-${i % 7}` } : {}),
        );
      }
    };
    const workers = [load(A, 1), load(B, 2), load(A, 3), load(B, 4)];
    await until(() => results.length >= 20, 'load running');
    // Known before the crash: it must be in Redis again once Redis is back, empty.
    A.gw.pool.state.cool('Y', 'other-model', Date.now() + 60_000, 'Rate limit reached', 'rate_limit');
    await untilAsync(async () => (await redis.client.hexists('tapgate:cool:Y', 'other-model')) === 1);
    await redis.kill();
    await until(() => messages(A, DOWN) === 1 && messages(B, DOWN) === 1, 'each gateway warns', 5000);
    const atKill = results.length;
    await until(() => results.length >= atKill + 40, 'requests go on without Redis', 10_000);
    await redis.restart();
    await until(
      () => messages(A, BACK) === 1 && messages(B, BACK) === 1,
      'both recover on their own',
      10_000,
    );
    await untilAsync(async () => (await redis.client.hexists('tapgate:cool:Y', 'other-model')) === 1);
    const atBack = results.length;
    await until(() => results.length >= atBack + 20, 'load after the restart', 10_000);
    stop = true;
    await Promise.all(workers);

    assert.deepEqual(
      results.filter((r) => r.status !== 200).map((r) => r.status),
      [],
      'no client request failed',
    );
    assert.equal(messages(A, DOWN), 1, 'one warning, not one per request');
    assert.equal(messages(B, DOWN), 1);
    // Shared again: a cooldown set on A now reaches B.
    A.gw.pool.state.cool('Y', 'gpt-test', Date.now() + 60_000, 'Rate limit reached', 'rate_limit');
    await until(
      () => B.gw.pool.state.cooldown('Y', 'gpt-test', Date.now()) !== undefined,
      'B learns it',
      5000,
    );
    await until(
      () => A.gw.pool.state.inFlight('X') === 0 && B.gw.pool.state.inFlight('X') === 0,
      'slots released',
    );
  });

  it('slower than state.timeout: requests go on after the timeout at most, one warning, then recovery', async () => {
    const redis = h.track(await startRedis());
    const X = await h.scripted('X');
    const A = await h.gatewayYaml(
      sharedStateConfig(redis.url, [{ name: 'X', up: X, maxConcurrency: 4 }], {
        state: { timeout: '200ms' },
      }),
    );
    assert.equal((await post(A)).status, 200);
    redis.pause();
    try {
      const started = performance.now();
      const answers = await Promise.all([post(A), post(A), post(A)]);
      assert.deepEqual(
        answers.map((r) => r.status),
        [200, 200, 200],
      );
      assert.ok(performance.now() - started < 5000, 'not held for long by a Redis that does not answer');
      assert.equal(messages(A, DOWN), 1);
      // While it is down, requests do not wait for it at all.
      const t = performance.now();
      assert.equal((await post(A)).status, 200);
      assert.ok(performance.now() - t < 2000);
    } finally {
      redis.resume();
    }
    await until(() => messages(A, BACK) === 1, 'recovers when Redis answers again', 10_000);
    assert.equal(messages(A, DOWN), 1);
  });
});

async function untilAsync(cond: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = performance.now() + ms;
  // The test's own client may be reconnecting after a restart: an error is a "not yet".
  while (!(await cond().catch(() => false))) {
    if (performance.now() > end) throw new Error(`not true after ${ms}ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
