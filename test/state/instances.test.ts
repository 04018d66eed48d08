/**
 * Issue 13, as operators run it: two tapgate processes (the real CLI) on one real Redis, in front of
 * the same loopback upstreams. A rate limit one instance saw, a session's account, the accounts'
 * concurrency limits, and the slots of an instance killed with SIGKILL, all hold for the pair.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killStrayClis, runCli, type Cli } from '../helpers/cli.js';
import { CLIENT_KEY } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { jsonError, servedBy, until } from '../helpers/pool.js';
import { sharedStateConfig, type SharedStateExtra, type SharedUpstream } from '../helpers/shared-state.js';
import { deadline, postJson } from '../helpers/raw.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const BODY = { model: 'gpt-test', stream: true, input: 'hi' };

interface Instance {
  cli: Cli;
  url: string;
}

describe('two tapgate instances on one Redis (real processes)', function () {
  this.timeout(30_000);
  const h = Harness.perTest();
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'tapgate-instances-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => killStrayClis());

  async function instances(
    redis: TestRedis,
    ups: SharedUpstream[],
    extra: SharedStateExtra = {},
  ): Promise<[Instance, Instance]> {
    const file = join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, sharedStateConfig(redis.url, ups, extra));
    const start = async (): Promise<Instance> => {
      const cli = runCli(['--config', file], { env: { TAPGATE_TEST_KEY: CLIENT_KEY } });
      const line = await cli.logLine('tapgate listening');
      return { cli, url: `http://127.0.0.1:${line.port as number}` };
    };
    return [await start(), await start()];
  }

  const post = (i: Instance, headers: Record<string, string> = {}) =>
    deadline(postJson(i.url, '/v1/responses', BODY, headers), 20_000, 'the client response never ended');

  it('a 429 with Retry-After seen by A keeps B off that account for that time', async () => {
    const redis = h.track(await startRedis());
    const X = await h.scripted('X');
    const Y = await h.scripted('Y');
    const [A, B] = await instances(
      redis,
      [
        { name: 'X', up: X },
        { name: 'Y', up: Y },
      ],
      { pool: { strategy: 'fill-first' } },
    );
    X.answer(
      jsonError(
        429,
        { error: { message: 'Rate limit reached', type: 'rate_limit_error' } },
        { 'retry-after': '30' },
      ),
    );
    assert.equal(servedBy(await post(A)), 'Y');
    // fill-first prefers X: B keeps off it while the cooldown lasts.
    for (let i = 0; i < 4; i++) assert.equal(servedBy(await post(B)), 'Y');
    assert.equal(X.requests.length, 1);
    const stored = await redis.client.hget('tapgate:cool:X', 'gpt-test');
    const until = (JSON.parse(stored!) as { until: number }).until;
    assert.ok(until > Date.now() + 20_000 && until <= Date.now() + 31_000, 'ends when Retry-After says');
  });

  it('a session started on A stays on the same account when its next turn goes to B', async () => {
    const redis = h.track(await startRedis());
    const X = await h.scripted('X');
    const Y = await h.scripted('Y');
    const [A, B] = await instances(redis, [
      { name: 'X', up: X },
      { name: 'Y', up: Y },
    ]);
    await post(B); // B's round robin one step ahead of A's
    for (const s of ['t1', 't2', 't3', 't4']) {
      const first = servedBy(await post(A, { session_id: s }));
      assert.equal(servedBy(await post(B, { session_id: s })), first, `session ${s}`);
    }
    assert.ok(X.requests.length > 1 && Y.requests.length > 1, 'the sessions used both accounts');
  });

  it('maxConcurrency 2 over both: the third request waits and goes when a slot frees on either', async () => {
    const redis = h.track(await startRedis());
    const X = await h.scripted('X');
    const [A, B] = await instances(redis, [{ name: 'X', up: X, maxConcurrency: 2 }], {
      state: { leaseTtl: '60s' },
      pool: { queue: { waitTimeout: '20s' } },
    });
    const held1 = X.holdNext();
    const r1 = post(A);
    const s1 = await held1;
    const held2 = X.holdNext();
    const r2 = post(B);
    const s2 = await held2;
    const r3 = post(B);
    // The third one is queued on B (no event crosses the process boundary: poll Redis and the upstream).
    await until(() => X.requests.length === 2, 'two at the upstream');
    assert.equal(await redis.client.zcard('tapgate:slots:X'), 2);
    const held3 = X.holdNext();
    const freed = performance.now();
    s1.finish(); // the slot frees on A; the waiter is on B
    const s3 = await deadline(held3, 5000, 'the waiting request never reached the upstream');
    assert.ok(performance.now() - freed < 3000, 'woken by the release, not by the 60 s lease');
    s2.finish();
    s3.finish();
    for (const r of [r1, r2, r3]) assert.equal((await r).status, 200);
    assert.equal(X.requests.length, 3, 'never more than 2 at once, and nothing lost');
  });

  it('Redis killed under mixed load: no failed request, one warning per instance, sharing back after a restart', async () => {
    const redis = h.track(await startRedis());
    const X = await h.scripted('X');
    const Y = await h.scripted('Y');
    const [A, B] = await instances(redis, [
      { name: 'X', up: X, maxConcurrency: 20 },
      { name: 'Y', up: Y },
    ]);
    const statuses: number[] = [];
    let stop = false;
    const load = async (i: Instance, n: number) => {
      for (let k = 0; !stop; k++) {
        const body = { ...BODY, stream: k % 2 === 0 };
        const headers: Record<string, string> = k % 3 === 0 ? { session_id: `mixed-${n}-${k % 5}` } : {};
        const r = await deadline(postJson(i.url, '/v1/responses', body, headers), 20_000, 'no answer');
        statuses.push(r.status);
      }
    };
    const lines = (i: Instance, msg: string) => i.cli.stdout().split(msg).length - 1;
    const DOWN = "Redis unavailable: pool state falls back to this process's own until it is back";
    const BACK = 'Redis is back: shared state resumed';
    const running = [load(A, 1), load(B, 2), load(A, 3), load(B, 4)];
    await until(() => statuses.length >= 20, 'load running', 10_000);
    await redis.kill();
    await until(() => lines(A, DOWN) === 1 && lines(B, DOWN) === 1, 'both warn', 10_000);
    const atKill = statuses.length;
    await until(() => statuses.length >= atKill + 40, 'load goes on without Redis', 10_000);
    await redis.restart();
    await until(() => lines(A, BACK) === 1 && lines(B, BACK) === 1, 'both recover', 10_000);
    const atBack = statuses.length;
    await until(() => statuses.length >= atBack + 20, 'load after the restart', 10_000);
    stop = true;
    await Promise.all(running);
    assert.deepEqual(
      statuses.filter((s) => s !== 200),
      [],
      'no client request failed',
    );
    assert.equal(lines(A, DOWN), 1, 'one warning, not one per request');
    assert.equal(lines(B, DOWN), 1);
    // Shared again: a 429 that A gets from X keeps B off X.
    X.answer(
      jsonError(
        429,
        { error: { message: 'Rate limit reached', type: 'rate_limit_error' } },
        { 'retry-after': '30' },
      ),
    );
    const xBefore = X.requests.length;
    // Round robin reaches X within two requests; A fails over to Y, so each one succeeds.
    for (let k = 0; X.requests.length === xBefore; k++) {
      assert.ok(k < 5, 'A never reached X');
      assert.equal((await post(A)).status, 200);
    }
    const xAfter = X.requests.length;
    for (let k = 0; k < 4; k++) assert.equal(servedBy(await post(B)), 'Y');
    assert.equal(X.requests.length, xAfter, 'B kept off X');
  });

  it('SIGKILL of an instance holding slots: the slots come back within the lease TTL', async () => {
    const redis = h.track(await startRedis());
    const X = await h.scripted('X');
    const [A, B] = await instances(redis, [{ name: 'X', up: X, maxConcurrency: 2 }], {
      state: { leaseTtl: '2s' },
      pool: { queue: { waitTimeout: '20s' } },
    });
    const held = [X.holdNext(), X.holdNext()];
    const doomed = [post(A), post(A)].map((p) => p.catch(() => undefined));
    await Promise.all(held);
    assert.equal(await redis.client.zcard('tapgate:slots:X'), 2);

    const waiting = post(B);
    await until(() => X.requests.length === 2, 'B waits: both slots are A’s');
    A.cli.child.kill('SIGKILL');
    const killed = performance.now();
    await A.cli.closed;
    const answer = await waiting;
    const took = performance.now() - killed;
    assert.equal(answer.status, 200);
    assert.equal(servedBy(answer), 'X');
    assert.ok(took < 2000 + 2500, `B got a slot ${Math.round(took)} ms after the kill (lease TTL 2 s)`);
    await Promise.all(doomed);
  });
});
