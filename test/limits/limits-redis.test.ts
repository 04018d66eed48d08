/**
 * Per-key limits across instances (issue 14): two gateways on one real Redis count a key's
 * requests, tokens and requests at once together; with Redis killed, each serves on its own
 * counters with one warning, and what it counted meanwhile reaches Redis when it is back.
 */
import assert from 'node:assert/strict';
import type { TestGateway } from '../helpers/gateway.js';
import { Harness } from '../helpers/harness.js';
import { until, type ScriptedUpstream } from '../helpers/pool.js';
import { deadline, postJson, type RawResponse } from '../helpers/raw.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { limitsConfig, startClockedGateway, STREAM_BODY, TestClock } from './limit-helpers.js';

describe('per-key limits on Redis: two gateways, one key', function () {
  this.timeout(30_000);
  const h = Harness.perTest();
  let clock: TestClock;
  let up: ScriptedUpstream;
  let redis: TestRedis;

  async function pair(limits: Record<string, unknown>): Promise<[TestGateway, TestGateway]> {
    clock = new TestClock();
    redis = h.track(await startRedis());
    up = await h.scripted('X');
    const yaml = limitsConfig([{ name: 'X', url: up.url }], limits, { store: 'redis', url: redis.url });
    const a = h.track(await startClockedGateway(yaml, clock));
    const b = h.track(await startClockedGateway(yaml, clock));
    return [a, b];
  }

  const post = (g: TestGateway): Promise<RawResponse> =>
    deadline(postJson(g.url, '/v1/responses', STREAM_BODY), 10_000, 'no answer');

  const minuteKey = (kind: string) => `tapgate:lim:tester:${kind}:${Math.floor(clock.now / 60_000)}`;

  it('requestsPerMinute holds across both: the limit is the pair’s, and the next minute admits again', async () => {
    const [a, b] = await pair({ requestsPerMinute: 4 });
    const seen: string[] = [];
    for (const g of [a, b, a, b]) {
      const r = await post(g);
      assert.equal(r.status, 200);
      seen.push(String(r.headers['x-ratelimit-remaining-requests']));
    }
    assert.deepEqual(seen, ['3', '2', '1', '0'], 'each instance sees the other’s requests');
    for (const g of [a, b]) {
      const r = await post(g);
      assert.equal(r.status, 429);
      assert.match((r.json().error as { message: string }).message, /Limit 4, Used 4/);
    }
    assert.equal(up.requests.length, 4);
    assert.equal(await redis.client.get(minuteKey('rm')), '4');
    const ttl = await redis.client.pttl(minuteKey('rm'));
    assert.ok(ttl > 60_000 && ttl <= 120_000, `expires a minute past its window (${ttl} ms)`);
    clock.nextMinute(5);
    assert.equal((await post(b)).status, 200);
  });

  it('tokensPerMinute: tokens one instance charged refuse the key on the other', async () => {
    const [a, b] = await pair({ tokensPerMinute: 20 });
    assert.equal((await post(a)).status, 200);
    // The charge is fired without waiting: it lands in Redis shortly after the answer.
    await eventually(async () => (await redis.client.get(minuteKey('tm'))) === '12', 'the charge in Redis');
    const r = await post(b);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-ratelimit-remaining-tokens'], '8');
    await eventually(async () => (await redis.client.get(minuteKey('tm'))) === '24', 'the second charge');
    const over = await post(a);
    assert.equal(over.status, 429);
    assert.match((over.json().error as { message: string }).message, /tokens per minute.*Used 24/);
  });

  it('concurrency holds across both; a slot freed on one admits on the other', async () => {
    const [a, b] = await pair({ concurrency: 1 });
    const held = up.holdNext(5);
    const first = post(a);
    const stream = await held;
    const refused = await post(b);
    assert.equal(refused.status, 429);
    assert.match((refused.json().error as { message: string }).message, /concurrent requests.*Limit 1/);
    assert.equal((await post(a)).status, 429);
    stream.finish();
    assert.equal((await first).status, 200);
    // The release is sent without waiting: it lands in Redis shortly after the answer.
    await eventually(
      async () => (await redis.client.zcard('tapgate:slots:key:tester')) === 0,
      'the lease released in Redis',
    );
    assert.equal((await post(b)).status, 200);
    assert.equal(await redis.client.zcard('tapgate:slots:key:tester'), 0, 'every lease released');
  });

  it('Redis killed: requests are served on local counters with one warning; the counts reach Redis when it is back', async () => {
    const [a] = await pair({ requestsPerMinute: 3 });
    assert.equal((await post(a)).status, 200);
    await redis.kill();
    // The first request after the kill may be the one that finds Redis gone.
    const during: number[] = [];
    for (let i = 0; i < 3; i++) during.push((await post(a)).status);
    // Its own count (1 before, 2 now) holds the limit of 3 locally.
    assert.deepEqual(during, [200, 200, 429]);
    const warnings = a.logs.filter((l) => String(l.msg).startsWith('Redis unavailable: per-key limits'));
    assert.equal(warnings.length, 1);
    await redis.restart();
    await until(() => a.logs.some((l) => l.msg === 'Redis is back: shared state resumed'), 'back', 10_000);
    // What was counted while away (two requests) went in: the restarted (empty) Redis knows of them.
    await eventually(
      async () => (await redis.client.get(minuteKey('rm'))) === '2',
      'the outage’s count reached Redis',
    );
    const r = await post(a);
    assert.equal(r.status, 200, 'shared again: 2 in Redis, under 3');
    assert.equal(r.headers['x-ratelimit-remaining-requests'], '0');
    assert.equal(await redis.client.get(minuteKey('rm')), '3');
    assert.equal(
      a.logs.filter((l) => String(l.msg).startsWith('Redis unavailable: per-key limits')).length,
      1,
    );
  });
});

/** Polls an asynchronous condition (a Redis read) until it holds; fails with `what` after `ms`. */
async function eventually(cond: () => Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const end = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > end) throw new Error(`${what}: not true after ${ms}ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
